package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/kavachgate/kavach/token"
)

// MCP session binding through real gateways (DESIGN.md §4.1, issue 13
// hole 6): a session id the gateway does not know is answered 404 and
// never forwarded; with Redis every gateway of a cluster knows every
// session; in single-node memory mode a restart forgets them all.

const (
	sessIssuer   = "https://issuer.sessions.test"
	sessResource = "https://mcp.sessions.test/mcp" // fixed in config; requests go to 127.0.0.1
)

// sessUpstream is a stateful SDK MCP server (JSON responses) that records
// the Mcp-Session-Id and JSON-RPC method of every request it receives.
type sessUpstream struct {
	srv  *httptest.Server
	mu   sync.Mutex
	reqs []sessSeen
}

type sessSeen struct{ Method, Session, RPC string }

func newSessUpstream(t *testing.T) *sessUpstream {
	t.Helper()
	server := mcp.NewServer(&mcp.Implementation{Name: "kavach-it-sessions", Version: "1.0.0"}, nil)
	mcp.AddTool(server, &mcp.Tool{Name: "whoami", Description: "whoami"},
		func(_ context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, map[string]string, error) {
			return nil, map[string]string{"actor": req.Extra.Header.Get("Kavach-Actor")}, nil
		})
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, &mcp.StreamableHTTPOptions{JSONResponse: true})
	u := &sessUpstream{}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var msg struct {
			Method string `json:"method"`
		}
		_ = json.Unmarshal(body, &msg)
		u.mu.Lock()
		u.reqs = append(u.reqs, sessSeen{Method: r.Method, Session: r.Header.Get("Mcp-Session-Id"), RPC: msg.Method})
		u.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *sessUpstream) take() []sessSeen {
	u.mu.Lock()
	defer u.mu.Unlock()
	r := u.reqs
	u.reqs = nil
	return r
}

// sessGateway is one `kavach run` with an MCP route in front of the
// upstream; redisURL empty is single-node memory mode.
type sessGateway struct {
	dir, base string
	port      int
	proc      *gatewayProc
}

func startSessGateway(t *testing.T, keyDir, upstream, redisURL string) *sessGateway {
	t.Helper()
	g := &sessGateway{dir: t.TempDir(), port: freePort(t)}
	g.base = fmt.Sprintf("http://127.0.0.1:%d", g.port)
	jwks, err := os.ReadFile(filepath.Join(keyDir, "jwks.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(g.dir, "jwks.json"), jwks, 0o644); err != nil {
		t.Fatal(err)
	}
	redisLine := ""
	if redisURL != "" {
		redisLine = "redis " + redisURL
	}
	caddyfile := fmt.Sprintf(`{
	admin off
	persist_config off
	kavach {
		trusted_keys %s ./jwks.json
		%s
	}
}

http://127.0.0.1:%d {
	bind 127.0.0.1
	kavach /mcp* {
		mcp
		resource %s
		scope mcp:tools
		tool whoami mcp:tools
	}
	reverse_proxy /mcp* %s
}
`, sessIssuer, redisLine, g.port, sessResource, upstream)
	if err := os.WriteFile(filepath.Join(g.dir, "Caddyfile"), []byte(caddyfile), 0o644); err != nil {
		t.Fatal(err)
	}
	g.start(t)
	return g
}

func (g *sessGateway) start(t *testing.T) {
	t.Helper()
	g.proc = startGateway(t, g.dir, nil, g.port)
}

// restart kills the gateway (by its pid) and starts it again on the same
// port with the same config: a new process.
func (g *sessGateway) restart(t *testing.T) {
	t.Helper()
	_ = g.proc.cmd.Process.Kill()
	select {
	case <-g.proc.exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("kavach run (pid %d) did not exit after SIGKILL", g.proc.cmd.Process.Pid)
	}
	g.start(t)
}

// post sends one JSON-RPC message to the gateway's /mcp with tok and,
// when sid is not empty, Mcp-Session-Id.
func (g *sessGateway) post(t *testing.T, tok, sid, body string) response {
	t.Helper()
	req := newReq(t, http.MethodPost, g.base+"/mcp", tok, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	if sid != "" {
		req.Header.Set("Mcp-Session-Id", sid)
	}
	return do(t, req)
}

// send is a bodyless GET or DELETE with a session id.
func (g *sessGateway) send(t *testing.T, method, tok, sid string) response {
	t.Helper()
	req := newReq(t, method, g.base+"/mcp", tok, nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	req.Header.Set("Mcp-Session-Id", sid)
	return do(t, req)
}

const (
	sessInit        = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"it","version":"0"}}}`
	sessInitialized = `{"jsonrpc":"2.0","method":"notifications/initialized"}`
	sessCall        = `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"whoami","arguments":{}}}`
)

// sessToken mints a token of agent's chain (root agent, one grant). Two
// tokens of one agent are two tokens of one chain (gateway.ChainKeyOf:
// issuer, user, root actor).
func sessToken(t *testing.T, key *token.SigningKey, agent string) string {
	t.Helper()
	at := time.Now()
	tok, err := token.Mint(key, &token.Claims{
		Issuer: sessIssuer, Subject: "usr_alice", Actor: token.ActorFor([]string{agent}), ClientID: agent,
		Audience: token.Audience{sessResource}, Scope: "mcp:tools", ID: token.NewID(token.PrefixToken),
		IssuedAt: at.Unix(), Expiry: at.Add(5 * time.Minute).Unix(),
		Kavach: &token.Kavach{Version: token.KavachVersion, Chain: []string{token.NewID(token.PrefixGrant)}, Agents: []string{agent}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// openSession initializes a session through g and returns its id.
func openSession(t *testing.T, g *sessGateway, up *sessUpstream, tok string) string {
	t.Helper()
	r := g.post(t, tok, "", sessInit)
	sid := r.Header.Get("Mcp-Session-Id")
	if r.Status != http.StatusOK || sid == "" {
		t.Fatalf("initialize: %d, Mcp-Session-Id %q: %s", r.Status, sid, r.Body)
	}
	if r := g.post(t, tok, sid, sessInitialized); r.Status != http.StatusAccepted {
		t.Fatalf("notifications/initialized: %d %s", r.Status, r.Body)
	}
	up.take()
	return sid
}

// sessForwarded: r is the upstream's answer to tools/call whoami on
// session sid, which the upstream received exactly once.
func sessForwarded(t *testing.T, up *sessUpstream, r response, sid, what string) {
	t.Helper()
	if r.Status != http.StatusOK || !strings.Contains(r.Body, "agt_") {
		t.Errorf("%s: %d %s, want 200 with the upstream's whoami result", what, r.Status, r.Body)
	}
	got := up.take()
	if len(got) != 1 || got[0].Session != sid || got[0].RPC != "tools/call" {
		t.Errorf("%s: the upstream received %+v, want one tools/call on session %s", what, got, sid)
	}
}

// sessRefused: r is the gateway's own answer with status want, and the
// upstream received nothing.
func sessRefused(t *testing.T, up *sessUpstream, r response, want int, what string) {
	t.Helper()
	if r.Status != want {
		t.Errorf("%s: %d %s, want %d", what, r.Status, r.Body, want)
	}
	if got := up.take(); len(got) != 0 {
		t.Errorf("%s: the upstream received %+v, want nothing", what, got)
	}
}

func sessKeys(t *testing.T) (string, *token.SigningKey) {
	t.Helper()
	dir := t.TempDir()
	newKeys(t, dir)
	return dir, signingKey(t, filepath.Join(dir, "key.jwk"))
}

// TestMCPSessionsCluster: two gateways sharing a Redis. A session opened
// through one works through the other for the same chain (another token
// of it too); another chain with that id is refused there and never
// reaches the upstream; an id no gateway bound is 404 and never reaches
// the upstream, for POST, GET and DELETE alike.
func TestMCPSessionsCluster(t *testing.T) {
	rd := startRevRedis(t)
	up := newSessUpstream(t)
	keyDir, key := sessKeys(t)
	gw1 := startSessGateway(t, keyDir, up.srv.Listener.Addr().String(), rd.url())
	gw2 := startSessGateway(t, keyDir, up.srv.Listener.Addr().String(), rd.url())

	alice, alice2, mallory := sessToken(t, key, "agt_alice"), sessToken(t, key, "agt_alice"), sessToken(t, key, "agt_mallory")
	sid := openSession(t, gw1, up, alice)

	sessForwarded(t, up, gw2.post(t, alice, sid, sessCall), sid, "gateway 2, the chain that opened the session")
	sessForwarded(t, up, gw2.post(t, alice2, sid, sessCall), sid, "gateway 2, another token of that chain")
	sessRefused(t, up, gw2.post(t, mallory, sid, sessCall), http.StatusForbidden, "gateway 2, another chain with the session id")
	sessRefused(t, up, gw1.post(t, mallory, sid, sessCall), http.StatusForbidden, "gateway 1, another chain with the session id")

	const unknown = "f00dfeed-never-bound"
	sessRefused(t, up, gw2.post(t, alice, unknown, sessCall), http.StatusNotFound, "an unknown session id, POST")
	sessRefused(t, up, gw2.send(t, http.MethodGet, alice, unknown), http.StatusNotFound, "an unknown session id, GET")
	sessRefused(t, up, gw2.send(t, http.MethodDelete, alice, unknown), http.StatusNotFound, "an unknown session id, DELETE")

	// The session is closed through gateway 2: its binding goes with it.
	if r := gw2.send(t, http.MethodDelete, alice, sid); r.Status/100 != 2 {
		t.Fatalf("DELETE of the session through gateway 2: %d %s", r.Status, r.Body)
	}
	up.take()
	sessRefused(t, up, gw2.post(t, alice, sid, sessCall), http.StatusNotFound, "gateway 2, the closed session")
}

// TestMCPSessionsRestartMemory: a single gateway without Redis keeps its
// bindings in memory; after a restart the old session id is 404 (the
// client starts a new session), never forwarded, and a new session works.
func TestMCPSessionsRestartMemory(t *testing.T) {
	up := newSessUpstream(t)
	keyDir, key := sessKeys(t)
	gw := startSessGateway(t, keyDir, up.srv.Listener.Addr().String(), "")
	alice := sessToken(t, key, "agt_alice")

	sid := openSession(t, gw, up, alice)
	sessForwarded(t, up, gw.post(t, alice, sid, sessCall), sid, "before the restart")

	gw.restart(t)
	sessRefused(t, up, gw.post(t, alice, sid, sessCall), http.StatusNotFound, "the old session after the restart")

	sid2 := openSession(t, gw, up, alice)
	sessForwarded(t, up, gw.post(t, alice, sid2, sessCall), sid2, "a new session after the restart")
}
