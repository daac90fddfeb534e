package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
)

// The MCP protocol revisions the official Go SDK (v1.8.0) speaks over
// streamable HTTP and these tests run: 2025-11-25 (initialize, stateful
// Mcp-Session-Id) and 2026-07-28 (server/discover, stateless, Mcp-Method
// and Mcp-Name headers), chosen with ClientSessionOptions.ProtocolVersion.
var e2eProtocolVersions = []string{"2025-11-25", "2026-07-28"}

// demoCaller is the called_by part of every demo tool's answer: the
// identity the gateway vouched for in the Kavach-* headers.
type demoCaller struct {
	Subject string   `json:"subject"`
	Actor   string   `json:"actor"`
	Chain   []string `json:"chain"`
	Scope   string   `json:"scope"`
}

// callDemoTool calls a demo tool and returns who the server says called.
func callDemoTool(ctx context.Context, s *mcp.ClientSession, tool string, args map[string]any) (demoCaller, error) {
	res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		return demoCaller{}, err
	}
	if res.IsError {
		return demoCaller{}, fmt.Errorf("%s: tool error %+v", tool, res.Content)
	}
	raw, err := json.Marshal(res.StructuredContent)
	if err != nil {
		return demoCaller{}, err
	}
	var out struct {
		CalledBy demoCaller `json:"called_by"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return demoCaller{}, fmt.Errorf("%s result %s: %v", tool, raw, err)
	}
	return out.CalledBy, nil
}

func toolNames(ctx context.Context, t *testing.T, s *mcp.ClientSession) []string {
	t.Helper()
	list, err := s.ListTools(ctx, nil)
	if err != nil {
		t.Fatalf("tools/list: %v", err)
	}
	var names []string
	for _, tool := range list.Tools {
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	return names
}

// httpExchange is one HTTP exchange of an MCP client, as statusLog saw it.
type httpExchange struct {
	Method    string
	MCPMethod string // the JSON-RPC method of a POST
	Status    int
	Challenge string // WWW-Authenticate, if any
}

func (e httpExchange) String() string {
	return fmt.Sprintf("%s %s %d %s", e.Method, e.MCPMethod, e.Status, e.Challenge)
}

// statusLog records every exchange an MCP client makes through it.
type statusLog struct {
	base http.RoundTripper

	mu  sync.Mutex
	log []httpExchange
}

func (l *statusLog) RoundTrip(req *http.Request) (*http.Response, error) {
	var mcpMethod string
	if req.GetBody != nil {
		if b, err := req.GetBody(); err == nil {
			var m struct {
				Method string `json:"method"`
			}
			data, _ := io.ReadAll(io.LimitReader(b, 1<<20))
			b.Close()
			if json.Unmarshal(data, &m) == nil {
				mcpMethod = m.Method
			}
		}
	}
	resp, err := l.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.log = append(l.log, httpExchange{req.Method, mcpMethod, resp.StatusCode, resp.Header.Get("WWW-Authenticate")})
	l.mu.Unlock()
	return resp, nil
}

// take returns and forgets what was recorded so far.
func (l *statusLog) take() []httpExchange {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.log
	l.log = nil
	return out
}

// TestMCPE2EOAuth: the official MCP Go SDK client against what `make demo`
// runs (demo/server behind bin/kavach with Caddyfile.example), knowing
// only the endpoint URL: it finds the issuer from the gateway's 401 and
// RFC 9728 metadata, registers (by dynamic registration, and separately
// with a client ID metadata document the issuer fetches), and alice signs
// in and consents on the real login and consent pages. The app asks for
// the read-only subset of the demo's scopes: tools/list shows only the
// tools that subset may call, an allowed tool works, a write is refused
// with a 403 insufficient_scope naming the tool's scope, and the SDK's
// step-up (a new authorization adding that scope) makes the same call
// succeed. Both protocol revisions.
func TestMCPE2EOAuth(t *testing.T) {
	// The client ID metadata document, on https (the SDK accepts only a
	// non-root https URL). The issuer trusts this test server's
	// certificate through SSL_CERT_FILE and, with
	// dev_loopback_client_metadata, fetches from loopback.
	redirectURL := fmt.Sprintf("http://127.0.0.1:%d/callback", freePort(t))
	var cimdURL string
	var cimdFetches sync.Map
	docSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/clients/kavach-e2e.json" {
			http.NotFound(w, r)
			return
		}
		cimdFetches.Store(r.RemoteAddr, true)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"client_id": cimdURL, "client_name": "Kavach e2e CIMD app",
			"redirect_uris": []string{redirectURL}, "token_endpoint_auth_method": "none",
			"grant_types": []string{"authorization_code"}, "response_types": []string{"code"},
		})
	}))
	t.Cleanup(docSrv.Close)
	cimdURL = docSrv.URL + "/clients/kavach-e2e.json"
	certFile := filepath.Join(t.TempDir(), "cimd-ca.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: docSrv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}

	sdkHTTP := &http.Client{Timeout: 15 * time.Second}
	readOnly := []string{"mcp:review", "pullrequest:read", "repository:read"}
	for _, version := range e2eProtocolVersions {
		// The SDK's server offers 2026-07-28 only on its stateless
		// transport (demo/server -stateless); on the stateful one its
		// client falls back to 2025-11-25.
		s := startDemoStack(t, demoStackOptions{
			Stateless:   version >= "2026-07-28",
			IssuerLines: []string{"dev_loopback_client_metadata"},
			Env:         []string{"SSL_CERT_FILE=" + certFile},
		})
		s.seedAlice(t)
		endpoint := s.resource
		metaURL := s.gateway + "/.well-known/oauth-protected-resource/mcp"
		for _, reg := range []string{"dcr", "cimd"} {
			t.Run(version+"/"+reg, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				defer cancel()
				var authURLs []string
				cfg := &auth.AuthorizationCodeHandlerConfig{
					RedirectURL: redirectURL,
					AuthorizationCodeFetcher: func(ctx context.Context, args *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
						authURLs = append(authURLs, args.URL)
						return signInOverHTTP(ctx, args.URL, redirectURL, "alice", demoPassword)
					},
					// The app first asks for what it needs to review (not
					// everything the metadata advertises); later, for what
					// the server's step-up challenge names.
					ScopeFilter: func(discovered []string) []string {
						if len(authURLs) == 0 {
							return readOnly
						}
						return discovered
					},
					Client: sdkHTTP,
				}
				var regs *registerOnce
				if reg == "dcr" {
					// go-sdk v1.8.0 registers anew at every authorization,
					// so its step-up would come from another client_id, a
					// principal the session is not bound to. A real client
					// keeps its registration (RFC 7591): so does this one.
					regs = &registerOnce{base: http.DefaultTransport, endpoint: s.issuer + "/oauth/register"}
					cfg.Client = &http.Client{Timeout: 15 * time.Second, Transport: regs}
					cfg.DynamicClientRegistrationConfig = &auth.DynamicClientRegistrationConfig{Metadata: &oauthex.ClientRegistrationMetadata{
						ClientName:              "Kavach e2e DCR app",
						RedirectURIs:            []string{redirectURL},
						TokenEndpointAuthMethod: "none",
						GrantTypes:              []string{"authorization_code"},
						ResponseTypes:           []string{"code"},
					}}
				} else {
					cfg.ClientIDMetadataDocumentConfig = &auth.ClientIDMetadataDocumentConfig{URL: cimdURL}
				}
				h, err := auth.NewAuthorizationCodeHandler(cfg)
				if err != nil {
					t.Fatal(err)
				}
				rec := &statusLog{base: http.DefaultTransport}
				client := mcp.NewClient(&mcp.Implementation{Name: "kavach-e2e-" + reg, Version: "1.0.0"}, nil)
				session, err := client.Connect(ctx, &mcp.StreamableClientTransport{
					Endpoint: endpoint, OAuthHandler: h, HTTPClient: &http.Client{Transport: rec},
				}, &mcp.ClientSessionOptions{ProtocolVersion: version})
				if err != nil {
					t.Fatalf("MCP connect: %v", err)
				}
				defer session.Close()
				if got := session.InitializeResult().ProtocolVersion; got != version {
					t.Fatalf("negotiated protocol version %s, want %s", got, version)
				}

				// Discovery: the first request was a 401 naming the
				// metadata; then the authorization request named the
				// endpoint as resource, S256 and the registered client.
				first := rec.take()
				if len(first) < 2 || first[0].Status != http.StatusUnauthorized || first[0].Challenge != `Bearer scope="`+strings.Join(demoScopes, " ")+`", resource_metadata="`+metaURL+`"` {
					t.Fatalf("first exchanges %v: want a 401 naming %s", first, metaURL)
				}
				if len(authURLs) != 1 {
					t.Fatalf("%d authorization flows, want 1", len(authURLs))
				}
				au, _ := url.Parse(authURLs[0])
				q := au.Query()
				clientID := q.Get("client_id")
				if au.Scheme+"://"+au.Host+au.Path != s.issuer+"/oauth/authorize" || q.Get("resource") != endpoint || q.Get("code_challenge_method") != "S256" {
					t.Errorf("authorization request %s: want the issuer's endpoint, resource %s, S256", authURLs[0], endpoint)
				}
				switch reg {
				case "dcr":
					if !strings.HasPrefix(clientID, "cli_") {
						t.Errorf("client_id %q: want a dynamically registered cli_…", clientID)
					}
				case "cimd":
					if clientID != cimdURL {
						t.Errorf("client_id %q: want the metadata document URL %s", clientID, cimdURL)
					}
				}
				if got := sortedFields(q.Get("scope")); !slices.Equal(got, sortedFields(strings.Join(readOnly, " "))) {
					t.Errorf("first authorization asked for %q, want %v", q.Get("scope"), readOnly)
				}

				// The consented subset decides what the app sees and may do.
				if got := toolNames(ctx, t, session); !slices.Equal(got, []string{"read_diff", "read_file"}) {
					t.Errorf("tools/list = %v, want the tools of the granted scopes: read_diff read_file", got)
				}
				who, err := callDemoTool(ctx, session, "read_diff", nil)
				if err != nil {
					t.Fatalf("read_diff: %v", err)
				}
				if who.Subject != "usr_alice" || who.Actor != clientID || !slices.Equal(sortedFields(who.Scope), sortedFields(strings.Join(readOnly, " "))) {
					t.Errorf("read_diff called by %+v, want usr_alice through %s with %v", who, clientID, readOnly)
				}

				// The same token on a forbidden tool: 403, and the
				// challenge names the scope to step up to.
				ts, err := h.TokenSource(ctx)
				if err != nil || ts == nil {
					t.Fatalf("token source: %v", err)
				}
				tok, err := ts.Token()
				if err != nil {
					t.Fatal(err)
				}
				req := newReq(t, http.MethodPost, endpoint, tok.AccessToken, strings.NewReader(
					`{"jsonrpc":"2.0","id":70,"method":"tools/call","params":{"name":"write_file","arguments":{"path":"x","content":"y"}}}`))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Accept", "application/json, text/event-stream")
				r := do(t, req)
				ch, err := parseChallenge(r.Header.Get("WWW-Authenticate"))
				if r.Status != http.StatusForbidden || err != nil || ch.Params["error"] != "insufficient_scope" || ch.Params["scope"] != "mcp:review repository:write" {
					t.Fatalf("write_file with the read-only token: %d, WWW-Authenticate %q; want 403 insufficient_scope, scope \"mcp:review repository:write\"",
						r.Status, r.Header.Get("WWW-Authenticate"))
				}

				// Through the SDK: the same 403, then its step-up (alice
				// consents again, to the union), and the retried call
				// succeeds.
				rec.take()
				path := fmt.Sprintf("notes/%s-%s.md", version, reg)
				who, err = callDemoTool(ctx, session, "write_file", map[string]any{"path": path, "content": "stepped up\n"})
				if err != nil {
					t.Fatalf("write_file after step-up: %v (exchanges %v)", err, rec.take())
				}
				steps := rec.take()
				var saw403 bool
				for _, e := range steps {
					if e.Status == http.StatusForbidden && e.MCPMethod == "tools/call" && strings.Contains(e.Challenge, `error="insufficient_scope"`) &&
						strings.Contains(e.Challenge, "repository:write") {
						saw403 = true
					}
				}
				if !saw403 || steps[len(steps)-1].Status != http.StatusOK {
					t.Errorf("write_file exchanges %v: want a 403 insufficient_scope naming repository:write, then 200", steps)
				}
				if len(authURLs) != 2 {
					t.Fatalf("%d authorization flows after the step-up, want 2", len(authURLs))
				}
				au2, _ := url.Parse(authURLs[1])
				wantScopes := sortedFields(strings.Join(append(slices.Clone(readOnly), "repository:write"), " "))
				if got := sortedFields(au2.Query().Get("scope")); !slices.Equal(got, wantScopes) || au2.Query().Get("client_id") != clientID {
					t.Errorf("step-up authorization %s: want client %s and scopes %v", authURLs[1], clientID, wantScopes)
				}
				if who.Actor != clientID || !slices.Equal(sortedFields(who.Scope), wantScopes) {
					t.Errorf("write_file called by %+v, want %s with %v", who, clientID, wantScopes)
				}
				if got := toolNames(ctx, t, session); !slices.Equal(got, []string{"read_diff", "read_file", "write_file"}) {
					t.Errorf("tools/list after the step-up = %v, want read_diff read_file write_file", got)
				}
				if _, err := callDemoTool(ctx, session, "read_file", map[string]any{"path": path}); err != nil {
					t.Errorf("reading back %s: %v", path, err)
				}
				if regs != nil && regs.registered() != 1 {
					t.Errorf("%d dynamic registrations, want 1", regs.registered())
				}
			})
		}
	}
	n := 0
	cimdFetches.Range(func(any, any) bool { n++; return true })
	if n == 0 {
		t.Error("the issuer never fetched the client metadata document")
	}
}

// registerOnce sends the first RFC 7591 registration to the issuer and
// answers every later one with the first answer: a client that keeps the
// client_id it registered.
type registerOnce struct {
	base     http.RoundTripper
	endpoint string

	mu     sync.Mutex
	status int
	header http.Header
	body   []byte
	real   int
}

func (r *registerOnce) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodPost || req.URL.String() != r.endpoint {
		return r.base.RoundTrip(req)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.body == nil {
		resp, err := r.base.RoundTrip(req)
		if err != nil {
			return nil, err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		r.real++
		if resp.StatusCode != http.StatusCreated {
			resp.Body = io.NopCloser(strings.NewReader(string(body)))
			return resp, nil
		}
		r.status, r.header, r.body = resp.StatusCode, resp.Header.Clone(), body
	}
	if req.Body != nil {
		req.Body.Close()
	}
	return &http.Response{
		Status: http.StatusText(r.status), StatusCode: r.status, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: r.header.Clone(), Body: io.NopCloser(strings.NewReader(string(r.body))),
		ContentLength: int64(len(r.body)), Request: req,
	}, nil
}

func (r *registerOnce) registered() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.real
}

// TestMCPE2EAgentChain: the delegation story of DESIGN.md §10 through MCP,
// on what `make demo` runs: alice's orchestrator makes a reviewer child
// with a subset of its scopes; the child, an SDK client holding a client
// credentials token, reads the diff through the gateway (the server sees
// "child of the orchestrator, acting for alice") and may not write;
// revoking the orchestrator makes the child's next call a 401; after a
// graceful stop `kavach audit verify` passes on the trail and `kavach
// audit query --agent <child>` tells the chain.
func TestMCPE2EAgentChain(t *testing.T) {
	s := startDemoStack(t, demoStackOptions{SSE: true})
	s.seedAlice(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	orch, child := demoAgents(t, s)

	tok, err := s.clientToken(ctx, child)
	if err != nil {
		t.Fatal(err)
	}
	rec := &statusLog{base: bearerTransport{tok}}
	session := connectBearer(ctx, t, s.resource, rec)
	who, err := callDemoTool(ctx, session, "read_diff", nil)
	if err != nil {
		t.Fatalf("child's read_diff: %v", err)
	}
	if who.Subject != "usr_alice" || who.Actor != child.ID || !slices.Equal(who.Chain, []string{orch.ID, child.ID}) {
		t.Errorf("read_diff called by %+v, want %s, child of %s, acting for usr_alice", who, child.ID, orch.ID)
	}
	if got := toolNames(ctx, t, session); !slices.Equal(got, []string{"read_diff", "read_file"}) {
		t.Errorf("child's tools/list = %v, want read_diff read_file", got)
	}
	// A forbidden call, in a session of its own. The 403 carries a
	// JSON-RPC error, so the SDK sees the call fail and keeps the session;
	// it is closed here, as its open GET stream would hold the gateway's
	// graceful stop below (Caddy's grace period is unbounded by default).
	wrec := &statusLog{base: bearerTransport{tok}}
	ws := connectBearer(ctx, t, s.resource, wrec)
	if _, err := callDemoTool(ctx, ws, "write_file", map[string]any{"path": "x", "content": "y"}); err == nil {
		t.Error("the child wrote a file without repository:write")
	}
	if err := ws.Close(); err != nil {
		t.Errorf("closing the session after a refused call: %v", err)
	}
	var refused bool
	for _, e := range wrec.take() {
		if e.MCPMethod == "tools/call" {
			refused = e.Status == http.StatusForbidden && strings.Contains(e.Challenge, `error="insufficient_scope"`) && strings.Contains(e.Challenge, "repository:write")
		}
	}
	if !refused {
		t.Error("child's write_file: want a 403 insufficient_scope naming repository:write")
	}

	var rev struct {
		Revoked []string `json:"revoked"`
	}
	s.cli(t, &rev, "agent", "revoke", orch.ID)
	if !slices.Contains(rev.Revoked, child.ID) {
		t.Errorf("revoking %s did not revoke its child %s: %v", orch.ID, child.ID, rev.Revoked)
	}
	rec.take()
	if _, err := callDemoTool(ctx, session, "read_diff", nil); err == nil {
		t.Fatal("the child's call after its parent was revoked succeeded")
	}
	if got := rec.take(); len(got) == 0 || got[0].MCPMethod != "tools/call" || got[0].Status != http.StatusUnauthorized || !strings.Contains(got[0].Challenge, `error="invalid_token"`) {
		t.Errorf("child's call after the revoke: exchanges %v, want 401 invalid_token", got)
	}

	// A graceful stop completes the trail (final checkpoint).
	s.stop(t)
	if out := kavach(t, s.dir, "audit", "verify", s.auditPath); !strings.HasPrefix(out, "ok:") {
		t.Errorf("audit verify: %s", out)
	}
	out := kavach(t, s.dir, "audit", "query", "--agent", child.ID, s.auditPath)
	chain := child.ID + ", child of " + orch.ID + ", acting for usr_alice"
	var allowed, denied bool
	for line := range strings.Lines(out) {
		if !strings.Contains(line, chain) {
			continue
		}
		allowed = allowed || strings.Contains(line, "allow") && strings.Contains(line, "read_diff")
		denied = denied || strings.Contains(line, "deny") && strings.Contains(line, "write_file")
	}
	if !allowed || !denied {
		t.Errorf("audit query --agent %s does not show %q allowed read_diff and denied write_file:\n%s", child.ID, chain, out)
	}
}

// TestMCPE2EMultiNode: two gateways sharing one Redis, the issuer on
// PostgreSQL: the child's MCP calls work on both, and once its parent is
// revoked its next call is a 401 on both.
func TestMCPE2EMultiNode(t *testing.T) {
	rd := startRevRedis(t)
	s := startDemoStack(t, demoStackOptions{Postgres: true, Redis: rd.url()})
	gw2 := s.addGateway(t)
	s.seedAlice(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	orch, child := demoAgents(t, s)
	tok, err := s.clientToken(ctx, child)
	if err != nil {
		t.Fatal(err)
	}

	gateways := []string{s.gateway, gw2}
	sessions := make([]*mcp.ClientSession, len(gateways))
	recs := make([]*statusLog, len(gateways))
	for i, gw := range gateways {
		recs[i] = &statusLog{base: bearerTransport{tok}}
		sessions[i] = connectBearer(ctx, t, gw+"/mcp", recs[i])
		who, err := callDemoTool(ctx, sessions[i], "read_diff", nil)
		if err != nil {
			t.Fatalf("gateway %s: child's read_diff: %v", gw, err)
		}
		if !slices.Equal(who.Chain, []string{orch.ID, child.ID}) {
			t.Errorf("gateway %s: read_diff called by %+v", gw, who)
		}
	}

	s.cli(t, nil, "agent", "revoke", orch.ID)
	// The issuer's own gateway hears the revoke in-process, the other
	// through Redis: milliseconds, not zero.
	init := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"it","version":"0"}}}`
	waitStatus(t, func() int {
		req := newReq(t, http.MethodPost, gw2+"/mcp", tok, strings.NewReader(init))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		return do(t, req).Status
	}, http.StatusUnauthorized, "second gateway after the revoke")
	for i, gw := range gateways {
		recs[i].take()
		if _, err := callDemoTool(ctx, sessions[i], "read_diff", nil); err == nil {
			t.Errorf("gateway %s: the child's call after its parent was revoked succeeded", gw)
		}
		if got := recs[i].take(); len(got) == 0 || got[0].MCPMethod != "tools/call" || got[0].Status != http.StatusUnauthorized {
			t.Errorf("gateway %s: child's call after the revoke: exchanges %v, want 401", gw, got)
		}
	}
}

// demoAgents creates, as demo.sh does, alice's orchestrator (every demo
// scope) and its reviewer child (mcp:review pullrequest:read
// repository:read).
func demoAgents(t *testing.T, s *demoStack) (orch, child agentOut) {
	t.Helper()
	s.cli(t, &orch, "agent", "create", "--name", "orchestrator", "--owner", "usr_alice",
		"--scope", strings.Join(demoScopes, " "), "--ttl", "1h")
	s.cli(t, &child, "agent", "child", orch.ID, "--name", "reviewer",
		"--scope", "mcp:review pullrequest:read repository:read", "--ttl", "10m", "--constraint", "hosts=127.0.0.1")
	if child.Parent != orch.ID || !slices.Equal(child.Agents, []string{orch.ID, child.ID}) {
		t.Fatalf("child: %+v", child)
	}
	return orch, child
}

// connectBearer connects an SDK client that sends a fixed token.
func connectBearer(ctx context.Context, t *testing.T, endpoint string, rt http.RoundTripper) *mcp.ClientSession {
	t.Helper()
	c := mcp.NewClient(&mcp.Implementation{Name: "kavach-e2e-agent", Version: "1.0.0"}, nil)
	s, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: endpoint, HTTPClient: &http.Client{Transport: rt}}, nil)
	if err != nil {
		t.Fatalf("MCP connect to %s: %v", endpoint, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// streamUpstream is an MCP server written by hand, to control timing:
// SSE answers send one event, then wait for the test to release them
// before the next, and every request's headers are recorded.
type streamUpstream struct {
	mu      sync.Mutex
	release chan struct{} // for the next request: closed by the test
	seen    []seen
	held    bool // a held event was sent after the release
}

// arm makes a new release channel for the next streamed answer.
func (u *streamUpstream) arm() chan struct{} {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.release, u.held = make(chan struct{}), false
	return u.release
}

const e2eSession = "e2e-session-7f3a"

func (u *streamUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	u.mu.Lock()
	u.seen = append(u.seen, seen{Method: r.Method, Header: r.Header.Clone(), Body: body})
	release := u.release
	u.mu.Unlock()
	var msg struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
	}
	_ = json.Unmarshal(body, &msg)
	rc := http.NewResponseController(w)
	sse := func(events ...string) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		w.WriteHeader(http.StatusOK)
		for i, e := range events {
			if i > 0 {
				select {
				case <-release:
					u.mu.Lock()
					u.held = true
					u.mu.Unlock()
				case <-time.After(30 * time.Second):
				case <-r.Context().Done():
					return
				}
			}
			_, _ = io.WriteString(w, e)
			_ = rc.Flush()
		}
	}
	switch {
	case r.Method == http.MethodDelete:
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodGet:
		sse("id: 6\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"level\":\"info\",\"data\":\"first\"}}\n\n",
			"id: 7\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"level\":\"info\",\"data\":\"second\"}}\n\n")
	case msg.Method == "initialize":
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Mcp-Session-Id", e2eSession)
		fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":"2025-11-25","capabilities":{"tools":{}},"serverInfo":{"name":"e2e","version":"0"}}}`, msg.ID)
	case msg.Method == "tools/list":
		sse("data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"level\":\"info\",\"data\":\"listing\"}}\n\n",
			fmt.Sprintf("data: {\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"tools\":[{\"name\":\"read_file\",\"inputSchema\":{\"type\":\"object\"}},{\"name\":\"write_file\",\"inputSchema\":{\"type\":\"object\"}}]}}\n\n", msg.ID))
	case msg.Method == "tools/call":
		sse("data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":1,\"progress\":1}}\n\n",
			fmt.Sprintf("data: {\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"done\"}]}}\n\n", msg.ID))
	case msg.ID == nil:
		w.WriteHeader(http.StatusAccepted)
	default:
		http.Error(w, "unexpected", http.StatusBadRequest)
	}
}

func (u *streamUpstream) take() []seen {
	u.mu.Lock()
	defer u.mu.Unlock()
	s := u.seen
	u.seen = nil
	return s
}

// startStreamRoute puts h behind a gateway MCP route (mcpFixture's).
func startStreamRoute(t *testing.T, h http.Handler) *mcpFixture {
	t.Helper()
	up := httptest.NewServer(h)
	t.Cleanup(up.Close)
	f := &mcpFixture{dir: t.TempDir()}
	f.startGateway(t, up.Listener.Addr().String())
	return f
}

// sseReader reads a streamed response event by event.
type sseReader struct {
	resp *http.Response
	br   *bufio.Reader
}

// next returns the data of the next event, failing the test if none
// arrives within d (the upstream is holding the one after it).
func (s *sseReader) next(t *testing.T, d time.Duration) string {
	t.Helper()
	type result struct {
		data string
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		var data []string
		for {
			line, err := s.br.ReadString('\n')
			if err != nil {
				ch <- result{strings.Join(data, "\n"), err}
				return
			}
			line = strings.TrimRight(line, "\r\n")
			if line == "" {
				if len(data) > 0 {
					ch <- result{strings.Join(data, "\n"), nil}
					return
				}
				continue
			}
			if v, ok := strings.CutPrefix(line, "data:"); ok {
				data = append(data, strings.TrimPrefix(v, " "))
			}
		}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("reading an event: %v (got %q)", r.err, r.data)
		}
		return r.data
	case <-time.After(d):
		s.resp.Body.Close()
		t.Fatalf("no event within %s while the upstream holds the next one: the gateway buffers the stream", d)
		return ""
	}
}

// TestMCPE2EStreaming: the gateway proxies MCP without losing anything
// (DESIGN.md §4.1): an SSE answer's first event reaches the client while
// the upstream still holds the second (for a tools/call passed through and
// for a tools/list the gateway filters), the GET stream and DELETE (session
// termination) pass, and Mcp-* and Last-Event-ID headers reach the
// upstream unchanged.
func TestMCPE2EStreaming(t *testing.T) {
	up := &streamUpstream{}
	f := startStreamRoute(t, up)
	tok := f.token(t, "agt_streamer", "mcp:tools files:read")
	streamClient := &http.Client{} // no timeout: the streams are held open on purpose

	send := func(method, body string, hdr ...string) *http.Response {
		t.Helper()
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req := newReq(t, method, f.endpoint, tok, rd)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		req.Header.Set("Accept", "application/json, text/event-stream")
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := streamClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, f.endpoint, err)
		}
		return resp
	}
	// expectHeaders: the upstream's one request carried these unchanged.
	expectHeaders := func(what string, want ...string) {
		t.Helper()
		got := up.take()
		if len(got) != 1 {
			t.Fatalf("%s: the upstream saw %d requests, want 1", what, len(got))
		}
		for i := 0; i+1 < len(want); i += 2 {
			if v := got[0].Header.Values(want[i]); len(v) != 1 || v[0] != want[i+1] {
				t.Errorf("%s: the upstream got %s %q, want %q", what, want[i], v, want[i+1])
			}
		}
	}
	// stream reads a held SSE answer: the first event while the upstream
	// holds the second, then the second once released.
	stream := func(what string, release chan struct{}, resp *http.Response) (first, second string) {
		t.Helper()
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("%s: %d %s %s", what, resp.StatusCode, resp.Header.Get("Content-Type"), b)
		}
		r := &sseReader{resp: resp, br: bufio.NewReader(resp.Body)}
		first = r.next(t, 15*time.Second)
		close(release)
		second = r.next(t, 15*time.Second)
		up.mu.Lock()
		held := up.held
		up.mu.Unlock()
		if !held {
			t.Errorf("%s: the upstream sent its second event without being released", what)
		}
		return first, second
	}
	// initialize: the session id comes back to the client and is bound to
	// this agent's chain.
	resp := send(http.MethodPost, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"it","version":"0"}}}`,
		"Mcp-Protocol-Version", "2025-11-25")
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Mcp-Session-Id") != e2eSession {
		t.Fatalf("initialize: %d, Mcp-Session-Id %q", resp.StatusCode, resp.Header.Get("Mcp-Session-Id"))
	}
	up.take()
	sessionHdr := []string{"Mcp-Session-Id", e2eSession, "Mcp-Protocol-Version", "2025-11-25"}

	// tools/call answered as SSE: passed through event by event; the
	// 2026-07-28 Mcp-Method / Mcp-Name headers reach the upstream as sent.
	call := `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"read_file","arguments":{}}}`
	hdr := append(slices.Clone(sessionHdr), "Mcp-Method", "tools/call", "Mcp-Name", "read_file")
	first, second := stream("tools/call", up.arm(), send(http.MethodPost, call, hdr...))
	if !strings.Contains(first, "notifications/progress") || !strings.Contains(second, `"text":"done"`) {
		t.Errorf("tools/call events %q, %q", first, second)
	}
	expectHeaders("tools/call", hdr...)

	// tools/list answered as SSE: the gateway filters it, still event by
	// event, and shows only the callable tool.
	first, second = stream("tools/list", up.arm(), send(http.MethodPost, `{"jsonrpc":"2.0","id":3,"method":"tools/list"}`, sessionHdr...))
	if !strings.Contains(first, "listing") || !strings.Contains(second, `"read_file"`) || strings.Contains(second, "write_file") {
		t.Errorf("tools/list events %q, %q: want the notification, then only read_file", first, second)
	}
	expectHeaders("tools/list", sessionHdr...)

	// The GET stream (server-initiated messages), resumed after event 5.
	getHdr := append(slices.Clone(sessionHdr), "Accept", "text/event-stream", "Last-Event-ID", "5")
	first, second = stream("GET stream", up.arm(), send(http.MethodGet, "", getHdr...))
	if !strings.Contains(first, `"first"`) || !strings.Contains(second, `"second"`) {
		t.Errorf("GET stream events %q, %q", first, second)
	}
	expectHeaders("GET stream", getHdr...)

	// DELETE ends the session at the upstream.
	resp = send(http.MethodDelete, "", sessionHdr...)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("DELETE: %d, want the upstream's 204", resp.StatusCode)
	}
	expectHeaders("DELETE", sessionHdr...)
}
