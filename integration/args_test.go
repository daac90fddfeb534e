package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/kavachgate/kavach/policy"
	"github.com/kavachgate/kavach/token"
)

// startArgsRoute runs an SDK MCP server with read_file(path) and
// fetch(url) behind bin/kavach, whose route holds read_file to /repo/**
// and fetch to *.corp.example (README: Argument rules). Every argument the
// server receives goes to the returned channel.
func startArgsRoute(t *testing.T) (*mcpFixture, chan string) {
	t.Helper()
	got := make(chan string, 64)
	f := &mcpFixture{dir: t.TempDir(), calls: make(chan string, 64)}
	server := mcp.NewServer(&mcp.Implementation{Name: "kavach-it-args", Version: "1.0.0"}, nil)
	type pathIn struct {
		Path string `json:"path"`
	}
	type urlIn struct {
		URL string `json:"url"`
	}
	mcp.AddTool(server, &mcp.Tool{Name: "read_file"}, func(_ context.Context, _ *mcp.CallToolRequest, in pathIn) (*mcp.CallToolResult, map[string]string, error) {
		got <- "read_file " + in.Path
		return nil, map[string]string{"read": in.Path}, nil
	})
	mcp.AddTool(server, &mcp.Tool{Name: "fetch"}, func(_ context.Context, _ *mcp.CallToolRequest, in urlIn) (*mcp.CallToolResult, map[string]string, error) {
		got <- "fetch " + in.URL
		return nil, map[string]string{"fetched": in.URL}, nil
	})
	up := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil))
	t.Cleanup(up.Close)

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
		resource %s
		scope mcp:tools
		tool read_file files:read {
			arg path /repo/**
		}
		tool fetch net:fetch {
			arg url url *.corp.example
		}
	}
	reverse_proxy /mcp* %s
}
`, mcpIssuer, f.gateway, f.endpoint, up.Listener.Addr().String())
	if err := os.WriteFile(filepath.Join(f.dir, "Caddyfile"), []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	startGateway(t, f.dir, nil, p)
	return f, got
}

// TestToolArgumentRules: through bin/kavach and the official MCP Go SDK,
// a read_file outside /repo, a ".." traversal, a URL on a forbidden host
// and an IP literal are refused with 403 before the server sees them, the
// JSON-RPC error names the argument and the rule, and the trail records
// the same; calls inside the rules reach the server. A token carrying its
// own argument rules (kvc.cnst.args) and hosts narrows further.
func TestToolArgumentRules(t *testing.T) {
	f, got := startArgsRoute(t)
	tok := f.token(t, "agt_reviewer", "mcp:tools files:read net:fetch")
	s := f.connect(t, tok)
	ctx := context.Background()

	call := func(s *mcp.ClientSession, tool, arg, value string) error {
		_, err := s.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: map[string]any{arg: value}})
		return err
	}
	for _, tc := range []struct{ tool, arg, value string }{
		{"read_file", "path", "/repo/src/main.go"},
		{"fetch", "url", "https://api.corp.example/v1/items"},
	} {
		if err := call(s, tc.tool, tc.arg, tc.value); err != nil {
			t.Fatalf("%s %s: %v", tc.tool, tc.value, err)
		}
		if g := <-got; g != tc.tool+" "+tc.value {
			t.Fatalf("server got %q", g)
		}
	}

	denied := []struct{ tool, arg, value, reason string }{
		{"read_file", "path", "/etc/passwd", `argument \"path\" is outside /repo/*`},
		{"read_file", "path", "/repo/../etc/passwd", `argument \"path\" has a '..' segment`},
		{"read_file", "path", "/repo/a/../../etc/shadow", `'..'`},
		{"fetch", "url", "https://evil.example/", `argument \"url\" names a host outside *.corp.example`},
		{"fetch", "url", "https://api.corp.example.evil.example/", `names a host outside`},
		{"fetch", "url", "http://169.254.169.254/latest/meta-data/", `names a host outside`},
		{"fetch", "url", "http://[::ffff:a9fe:a9fe]/", `names a host outside`},
		{"fetch", "url", "http://2852039166/", `non-canonical`},
		{"fetch", "url", "https://api.corp.example@evil.example/", `userinfo`},
	}
	for _, tc := range denied {
		body := fmt.Sprintf(`{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":%q,"arguments":{%q:%q}}}`, tc.tool, tc.arg, tc.value)
		r := f.post(t, tok, body)
		if r.Status != http.StatusForbidden || !strings.Contains(r.Body, `"id":9`) || !strings.Contains(r.Body, tc.reason) {
			t.Errorf("%s %s: %d %s, want 403 saying %s", tc.tool, tc.value, r.Status, r.Body, tc.reason)
		}
		// The SDK client sees the refusal as an error, and the server
		// never runs the tool.
		if err := call(s, tc.tool, tc.arg, tc.value); err == nil {
			t.Errorf("%s %s: the SDK call succeeded", tc.tool, tc.value)
		}
	}

	// The token's own rules and hosts narrow the route's.
	at := time.Now()
	narrow, err := token.Mint(f.key, &token.Claims{
		Issuer: mcpIssuer, Subject: "usr_alice", Actor: token.ActorFor([]string{"agt_docs"}), ClientID: "agt_docs",
		Audience: token.Audience{f.endpoint}, Scope: "mcp:tools files:read net:fetch", ID: token.NewID(token.PrefixToken),
		IssuedAt: at.Unix(), Expiry: at.Add(5 * time.Minute).Unix(),
		Kavach: &token.Kavach{Version: token.KavachVersion, Chain: []string{token.NewID(token.PrefixGrant)}, Agents: []string{"agt_docs"},
			Constraints: &policy.Constraints{
				Hosts: policy.StringList{"127.0.0.1", "api.corp.example"},
				Args:  policy.Args{"read_file": {"path": {Paths: policy.StringList{"/repo/docs/*"}}}},
			}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ns := f.connect(t, narrow)
	if err := call(ns, "read_file", "path", "/repo/docs/guide.md"); err != nil {
		t.Fatalf("inside the token's paths: %v", err)
	}
	<-got
	if err := call(ns, "fetch", "url", "https://api.corp.example/x"); err != nil {
		t.Fatalf("inside the token's hosts: %v", err)
	}
	<-got
	for _, tc := range []struct{ tool, arg, value, reason string }{
		{"read_file", "path", "/repo/src/main.go", `is outside /repo/docs/*`},
		{"fetch", "url", "https://www.corp.example/x", `names a host outside the token's hosts`},
	} {
		body := fmt.Sprintf(`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":%q,"arguments":{%q:%q}}}`, tc.tool, tc.arg, tc.value)
		if r := f.post(t, narrow, body); r.Status != http.StatusForbidden || !strings.Contains(r.Body, tc.reason) {
			t.Errorf("narrow token %s %s: %d %s", tc.tool, tc.value, r.Status, r.Body)
		}
	}

	select {
	case g := <-got:
		t.Fatalf("a denied call reached the server: %s", g)
	default:
	}

	// The trail names the argument and the rule.
	var trail []byte
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		trail, _ = os.ReadFile(filepath.Join(f.dir, "audit.jsonl"))
		if strings.Contains(string(trail), `mcp_argument: tool read_file: argument \"path\" is outside /repo/*`) {
			return
		}
	}
	t.Fatalf("no decision record names the argument rule:\n%s", trail)
}

// TestArgsNarrowAtExchange: argument rules set by the CLI at agent
// creation reach the agent's tokens; a child (at creation) or an exchange
// that would widen one is refused, one that narrows is granted.
func TestArgsNarrowAtExchange(t *testing.T) {
	f := startIssuer(t, "sqlite ./data/kavach.db")
	f.cli(t, nil, "user", "create", "--id", "usr_alice", "--name", "alice", "--entitle", f.resource+"=repo:read")
	var a agentOut
	f.cli(t, &a, "agent", "create", "--name", "reviewer", "--owner", "usr_alice", "--scope", "repo:read", "--ttl", "1h",
		"--arg", "read_file path /repo/**", "--arg", "fetch url host *.corp.example")
	tok, err := f.clientToken(context.Background(), a, "repo:read")
	if err != nil {
		t.Fatal(err)
	}
	if c := inspectConstraints(t, f, tok); !strings.Contains(c, `"/repo/*"`) || !strings.Contains(c, `"*.corp.example"`) {
		t.Fatalf("token constraints %s", c)
	}

	// A child may not widen at creation.
	if _, stderr, err := kavachEnv(f.dir, f.env, "agent", "child", a.ID, "--name", "wide", "--scope", "repo:read",
		"--arg", "read_file path /*", "--admin", f.admin); err == nil || !strings.Contains(stderr, "args") {
		t.Fatalf("wider child created (err %v): %s", err, stderr)
	}
	// Nor at exchange.
	for name, cnst := range map[string]string{
		"path outside":   `{"args":{"read_file":{"path":{"paths":["/etc/*"]}}}}`,
		"path optional":  `{"args":{"read_file":{"path":{"optional":true,"max_len":64}}}}`,
		"metadata host":  `{"args":{"fetch":{"url":{"hosts":["169.254.169.254"]}}}}`,
		"another scheme": `{"args":{"fetch":{"url":{"hosts":["api.corp.example"],"schemes":["file"]}}}}`,
	} {
		r := f.exchange(t, a, tok, url.Values{"constraints": {cnst}})
		if r.Status != http.StatusBadRequest || !strings.Contains(r.Body, "invalid_scope") || !strings.Contains(r.Body, "args") {
			t.Errorf("%s: %d %s, want 400 invalid_scope naming args", name, r.Status, r.Body)
		}
	}
	r := f.exchange(t, a, tok, url.Values{"constraints": {`{"args":{"read_file":{"path":{"paths":["/repo/docs/*"]}}}}`}})
	if r.Status != http.StatusOK {
		t.Fatalf("narrowing exchange: %d %s", r.Status, r.Body)
	}
	nt := jsonField(t, r.Body, "access_token")
	if c := inspectConstraints(t, f, nt); !strings.Contains(c, `"/repo/docs/*"`) || !strings.Contains(c, `"*.corp.example"`) {
		t.Fatalf("narrowed token constraints %s", c)
	}
}

// inspectConstraints is the kvc.cnst of tok as `kavach token inspect`
// prints it.
func inspectConstraints(t *testing.T, f *issuerFixture, tok string) string {
	t.Helper()
	out := kavach(t, f.dir, "token", "inspect", tok)
	i := strings.Index(out, `"cnst"`)
	if i < 0 {
		return ""
	}
	return out[i:]
}

// jsonField is the string member name of a JSON object body.
func jsonField(t *testing.T, body, name string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	s, _ := m[name].(string)
	return s
}
