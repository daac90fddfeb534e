package integration

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/kavachgate/kavach/token"
)

// bearerTransport adds a fixed token to every request (a client that
// already holds one).
type bearerTransport struct{ tok string }

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.tok)
	return http.DefaultTransport.RoundTrip(r)
}

type mcpFixture struct {
	dir, gateway, endpoint string
	key                    *token.SigningKey
	calls                  chan string // tools the upstream ran
}

const mcpIssuer = "https://issuer.mcp.test"

// startMCPRoute runs an SDK MCP server with four tools behind a gateway
// route with per-tool rules (DESIGN.md §4.1).
func startMCPRoute(t *testing.T) *mcpFixture {
	t.Helper()
	return startMCPRouteWith(t, nil)
}

// startMCPRouteWith is startMCPRoute with the SDK server's transport
// options (stateless, JSON responses).
func startMCPRouteWith(t *testing.T, opts *mcp.StreamableHTTPOptions) *mcpFixture {
	t.Helper()
	f := &mcpFixture{dir: t.TempDir(), calls: make(chan string, 64)}
	server := mcp.NewServer(&mcp.Implementation{Name: "kavach-it-tools", Version: "1.0.0"}, nil)
	for _, name := range []string{"read_file", "write_file", "whoami", "admin_reset"} {
		mcp.AddTool(server, &mcp.Tool{Name: name, Description: name},
			func(_ context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, map[string]string, error) {
				f.calls <- name
				return nil, map[string]string{"tool": name, "actor": req.Extra.Header.Get("Kavach-Actor")}, nil
			})
	}
	up := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, opts))
	t.Cleanup(up.Close)
	f.startGateway(t, up.Listener.Addr().String())
	return f
}

// startGateway runs a gateway with offline keys whose MCP route /mcp
// (scope mcp:tools; tools read_file files:read, write_file files:write,
// whoami mcp:tools) proxies to upstream, auditing to ./audit.jsonl.
func (f *mcpFixture) startGateway(t *testing.T, upstream string) {
	t.Helper()
	newKeys(t, f.dir)
	f.key = signingKey(t, filepath.Join(f.dir, "key.jwk"))
	p := freePort(t)
	f.gateway = fmt.Sprintf("http://127.0.0.1:%d", p)
	f.endpoint = f.gateway + "/mcp"
	caddyfile := fmt.Sprintf(`{
	admin off
	persist_config off
	kavach {
		trusted_keys %s ./jwks.json
		audit file ./audit.jsonl
	}
}
%s {
	kavach /mcp* {
		mcp
		resource %s
		scope mcp:tools
		tool read_file files:read
		tool write_file files:write
		tool whoami mcp:tools
	}
	reverse_proxy /mcp* %s
}
`, mcpIssuer, f.gateway, f.endpoint, upstream)
	if err := os.WriteFile(filepath.Join(f.dir, "Caddyfile"), []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	startGateway(t, f.dir, nil, p)
}

func (f *mcpFixture) token(t *testing.T, agent, scope string) string {
	t.Helper()
	at := time.Now()
	tok, err := token.Mint(f.key, &token.Claims{
		Issuer: mcpIssuer, Subject: "usr_alice", Actor: token.ActorFor([]string{agent}), ClientID: agent,
		Audience: token.Audience{f.endpoint}, Scope: scope, ID: token.NewID(token.PrefixToken),
		IssuedAt: at.Unix(), Expiry: at.Add(5 * time.Minute).Unix(),
		Kavach: &token.Kavach{Version: token.KavachVersion, Chain: []string{token.NewID(token.PrefixGrant)}, Agents: []string{agent}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (f *mcpFixture) connect(t *testing.T, tok string) *mcp.ClientSession {
	t.Helper()
	c := mcp.NewClient(&mcp.Implementation{Name: "kavach-it", Version: "1.0.0"}, nil)
	s, err := c.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: f.endpoint, HTTPClient: &http.Client{Transport: bearerTransport{tok}}}, nil)
	if err != nil {
		t.Fatalf("MCP connect: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// post sends one raw JSON-RPC body.
func (f *mcpFixture) post(t *testing.T, tok, body string, hdr ...string) response {
	t.Helper()
	req := newReq(t, http.MethodPost, f.endpoint, tok, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return do(t, req)
}

// expectReaderView: a session of a token with files:read sees exactly the
// tools it may call, calls read_file, and cannot call write_file.
func (f *mcpFixture) expectReaderView(t *testing.T, s *mcp.ClientSession) {
	t.Helper()
	ctx := context.Background()
	list, err := s.ListTools(ctx, nil)
	if err != nil {
		t.Fatalf("tools/list: %v", err)
	}
	var names []string
	for _, tool := range list.Tools {
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"read_file", "whoami"}) {
		t.Errorf("tools/list shows %v, want exactly the callable read_file and whoami", names)
	}
	if res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: "read_file"}); err != nil || res.IsError {
		t.Fatalf("read_file: %v %+v", err, res)
	}
	if got := <-f.calls; got != "read_file" {
		t.Fatalf("upstream ran %s", got)
	}
	if _, err := s.CallTool(ctx, &mcp.CallToolParams{Name: "write_file"}); err == nil {
		t.Error("write_file without files:write succeeded")
	}
}

// TestMCPRoute: per-tool rules through the gateway with the official Go
// SDK as client and server: tools/list shows exactly the callable tools, a
// forbidden call is a 403 naming the scope to step up to, malformed or
// ambiguous messages never reach the server, and a session cannot be
// borrowed by another chain.
func TestMCPRoute(t *testing.T) {
	f := startMCPRoute(t)
	reader := f.token(t, "agt_reader", "mcp:tools files:read")

	f.expectReaderView(t, f.connect(t, reader))

	call := func(tool string) string {
		return `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"` + tool + `","arguments":{}}}`
	}
	// The step-up challenge names the route's and the tool's scope.
	r := f.post(t, reader, call("write_file"))
	if r.Status != http.StatusForbidden {
		t.Fatalf("write_file: %d %s", r.Status, r.Body)
	}
	ch, err := parseChallenge(r.Header.Get("WWW-Authenticate"))
	if err != nil || ch.Params["error"] != "insufficient_scope" || ch.Params["scope"] != "mcp:tools files:write" {
		t.Errorf("write_file challenge %q", r.Header.Get("WWW-Authenticate"))
	}
	// A tool no rule names is denied (fail closed).
	if r := f.post(t, reader, call("admin_reset")); r.Status != http.StatusForbidden {
		t.Errorf("admin_reset (no rule): %d", r.Status)
	}

	for name, tc := range map[string]struct {
		body string
		hdr  []string
		want int
	}{
		"batch":             {`[` + call("read_file") + `]`, nil, http.StatusBadRequest},
		"case variant":      {`{"jsonrpc":"2.0","id":1,"method":"Tools/Call","params":{"name":"read_file"}}`, nil, http.StatusNotFound},
		"duplicate member":  {`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_file","name":"write_file"}}`, nil, http.StatusBadRequest},
		"member case":       {`{"jsonrpc":"2.0","id":1,"method":"tools/call","Method":"ping","params":{"name":"read_file"}}`, nil, http.StatusBadRequest},
		"trailing data":     {call("read_file") + `{}`, nil, http.StatusBadRequest},
		"header disagrees":  {call("read_file"), []string{"Mcp-Name", "write_file"}, http.StatusBadRequest},
		"encoded body":      {call("read_file"), []string{"Content-Encoding", "gzip"}, http.StatusUnsupportedMediaType},
		"foreign origin":    {call("read_file"), []string{"Origin", "http://evil.test"}, http.StatusForbidden},
		"too large":         {`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_file","arguments":{"x":"` + strings.Repeat("a", 1<<20) + `"}}}`, nil, http.StatusRequestEntityTooLarge},
		"own origin passes": {`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"it","version":"0"}}}`, []string{"Origin", f.gateway}, http.StatusOK},
	} {
		t.Run(name, func(t *testing.T) {
			r := f.post(t, reader, tc.body, tc.hdr...)
			if r.Status != tc.want {
				t.Errorf("status %d, want %d (%s)", r.Status, tc.want, r.Body)
			}
		})
	}
	select {
	case got := <-f.calls:
		t.Errorf("a refused message reached the server: %s ran", got)
	default:
	}

	// A session belongs to the chain that opened it.
	init := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"it","version":"0"}}}`
	r = f.post(t, reader, init)
	sid := r.Header.Get("Mcp-Session-Id")
	if r.Status != http.StatusOK || sid == "" {
		t.Fatalf("initialize: %d, session %q", r.Status, sid)
	}
	other := f.token(t, "agt_other", "mcp:tools files:read")
	if r := f.post(t, other, call("read_file"), "Mcp-Session-Id", sid); r.Status != http.StatusForbidden {
		t.Errorf("another chain used the session: %d %s", r.Status, r.Body)
	}

	// The audit trail names the MCP method and tool of each decision.
	want := []string{
		`"decision":"allow"` + `.*"mcp_method":"tools/call","tool":"read_file"`,
		`"decision":"deny"` + `.*"mcp_method":"tools/call","tool":"write_file"`,
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		trail, _ := os.ReadFile(filepath.Join(f.dir, "audit.jsonl"))
		missing := ""
		for _, w := range want {
			if !regexp.MustCompile(w).Match(trail) {
				missing = w
			}
		}
		if missing == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no audit record matching %s in:\n%s", missing, trail)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestMCPRouteTransports: the stateless transport and JSON (non-SSE)
// responses work through the gateway too, with the same filtering and
// rules (DESIGN.md §4.1).
func TestMCPRouteTransports(t *testing.T) {
	for name, opts := range map[string]*mcp.StreamableHTTPOptions{
		"stateless":      {Stateless: true},
		"json responses": {JSONResponse: true},
	} {
		t.Run(name, func(t *testing.T) {
			f := startMCPRouteWith(t, opts)
			f.expectReaderView(t, f.connect(t, f.token(t, "agt_reader", "mcp:tools files:read")))
		})
	}
}
