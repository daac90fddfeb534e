package integration

// The request pipeline of DESIGN.md §4 and §4.1 tried as an attacker would,
// with a valid low-privilege token and nothing else, through the built
// binary (issue 13 §2; the black-box ../shared/acceptance/pipeline is the
// floor). Every check looks at what a recording upstream really received,
// not only at the status code. "Refused" means 400, 403, 404 or 405 and
// the upstream never saw the request; where the contract names a status,
// that status is required.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/kavachgate/kavach/token"
)

// pipelineGW is one gateway process of a pipeline config in front of a
// recording upstream that answers JSON-RPC like a stateful MCP server.
type pipelineGW struct {
	keys       *gwFixture // its dir holds key.jwk (trusted as gwIssuer); mint
	up         *upstream
	addr, base string
	marks      atomic.Int64
}

// startPipelineGW runs site (with $ADDR, $GW and $UP replaced by the
// gateway's host:port, its base URL and the upstream's host:port) behind
// the global options every pipeline config shares: a Kavach issuer with
// offline keys, the external issuer ext when not nil, the trail off.
func startPipelineGW(t *testing.T, ext *extIssuer, site string) *pipelineGW {
	t.Helper()
	dir := t.TempDir()
	newKeys(t, dir)
	port := freePort(t)
	g := &pipelineGW{keys: &gwFixture{dir: dir}, up: newUpstreamReplying(t, rpcUpstreamReply)}
	g.addr = fmt.Sprintf("127.0.0.1:%d", port)
	g.base = "http://" + g.addr
	external := ""
	if ext != nil {
		external = fmt.Sprintf("\t\texternal_issuer %s {\n\t\t\tjwks %s\n\t\t\talgs ES256\n\t\t}\n", ext.id, ext.jwksURL)
	}
	config := fmt.Sprintf("{\n\tadmin off\n\tpersist_config off\n\tkavach {\n\t\ttrusted_keys %s ./jwks.json\n%s\t\taudit off\n\t}\n}\n\n", gwIssuer, external) +
		strings.NewReplacer("$ADDR", g.addr, "$GW", g.base, "$UP", g.up.addr()).Replace(site)
	if err := os.WriteFile(filepath.Join(dir, "Caddyfile"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	startGateway(t, dir, nil, port)
	return g
}

// rpcUpstreamReply answers a JSON-RPC POST like a stateful MCP server
// (initialize opens a session, a notification gets 202), a GET of /mcp
// with a one-event SSE stream, and anything else with 200 "upstream ok".
func rpcUpstreamReply(w http.ResponseWriter, r *http.Request, body []byte) {
	if r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/mcp") {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"level\":\"info\",\"data\":\"hello\"}}\n\n")
		return
	}
	var m struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
	}
	if r.Method != http.MethodPost || json.Unmarshal(body, &m) != nil || m.Method == "" {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "upstream ok")
		return
	}
	if m.ID == nil {
		w.WriteHeader(http.StatusAccepted)
		return
	}
	result := `{}`
	switch m.Method {
	case "initialize":
		sid := make([]byte, 12)
		_, _ = rand.Read(sid)
		w.Header().Set("Mcp-Session-Id", "sess-"+hex.EncodeToString(sid))
		result = `{"protocolVersion":"2025-11-25","capabilities":{"tools":{},"resources":{"subscribe":true},"prompts":{},"completions":{}},"serverInfo":{"name":"rec","version":"0"}}`
	case "tools/list":
		result = `{"tools":[{"name":"read_file","inputSchema":{"type":"object"}},{"name":"write_file","inputSchema":{"type":"object"}}]}`
	case "tools/call":
		result = `{"content":[{"type":"text","text":"ok"}]}`
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":%s}`, m.ID, result)
}

func (g *pipelineGW) mark() string { return fmt.Sprintf("check-%d", g.marks.Add(1)) }

// received takes the upstream's record and returns the requests sent with
// X-Check: mark (a stray request of an earlier case is dropped).
func (g *pipelineGW) received(mark string) []seen {
	var out []seen
	for _, s := range g.up.take() {
		if s.Header.Get("X-Check") == mark {
			out = append(out, s)
		}
	}
	return out
}

// send marks req, sends it and returns the answer with what the upstream
// received of it.
func (g *pipelineGW) send(t *testing.T, req *http.Request) (response, []seen) {
	t.Helper()
	mark := g.mark()
	req.Header.Set("X-Check", mark)
	r := do(t, req)
	return r, g.received(mark)
}

// raw sends a request exactly as written (no client-side path cleaning),
// with the header name/value pairs hdr and, if not empty, body.
func (g *pipelineGW) raw(t *testing.T, method, target, bearer, body string, hdr ...string) (response, []seen) {
	t.Helper()
	mark := g.mark()
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nX-Check: %s\r\nConnection: close\r\n", method, target, g.addr, mark)
	if bearer != "" {
		b.WriteString("Authorization: Bearer " + bearer + "\r\n")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		b.WriteString(hdr[i] + ": " + hdr[i+1] + "\r\n")
	}
	if body != "" {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(body))
	}
	b.WriteString("\r\n" + body)
	return rawHTTP(t, g.addr, b.String()), g.received(mark)
}

// mcpReq is a request to the MCP endpoint /mcp as an MCP client sends it,
// with the header name/value pairs hdr. A chunked body is sent without a
// length (Transfer-Encoding: chunked).
func (g *pipelineGW) mcpReq(t *testing.T, method, bearer, body string, chunked bool, hdr ...string) *http.Request {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
		if chunked {
			rd = struct{ io.Reader }{rd}
		}
	}
	req := newReq(t, method, g.base+"/mcp", bearer, rd)
	if chunked {
		req.ContentLength = -1
	}
	req.Header.Set("Accept", "application/json, text/event-stream")
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return req
}

// rpc is a JSON-RPC request body; id is a JSON literal.
func rpc(id, method, params string) string {
	return `{"jsonrpc":"2.0","id":` + id + `,"method":"` + method + `","params":` + params + `}`
}

func toolCall(id, tool string) string {
	return rpc(id, "tools/call", `{"name":"`+tool+`","arguments":{"path":"/repo/a"}}`)
}

const rpcInitialize = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"pipeline","version":"0"}}}`

// expectRefused: the gateway answered one of want (any of 400, 403, 404,
// 405 when want is empty) and the upstream received nothing.
func expectRefused(t *testing.T, r response, got []seen, want ...int) {
	t.Helper()
	if len(want) == 0 {
		want = []int{400, 403, 404, 405}
	}
	if !slices.Contains(want, r.Status) {
		t.Errorf("status %d, want one of %v (body %q, WWW-Authenticate %q)", r.Status, want, r.Body, r.Header.Get("WWW-Authenticate"))
	}
	for _, s := range got {
		t.Errorf("the upstream received %s %s (Kavach-Actor %q, body %q); the client got %d", s.Method, s.RequestURI, s.Header.Get("Kavach-Actor"), s.Body, r.Status)
	}
}

// expectForwarded: a 2xx answer, and the upstream received the request
// exactly once; it returns what the upstream received.
func expectForwarded(t *testing.T, r response, got []seen) seen {
	t.Helper()
	if r.Status/100 != 2 || len(got) != 1 {
		t.Fatalf("status %d (body %q, WWW-Authenticate %q), the upstream received %d request(s); want 2xx and 1", r.Status, r.Body, r.Header.Get("WWW-Authenticate"), len(got))
	}
	return got[0]
}

// expectIdentity: the upstream received each identity header once, with
// the value the token vouches for.
func expectIdentity(t *testing.T, s seen, subject, actor, chain, scope string) {
	t.Helper()
	for name, want := range map[string]string{"Kavach-Subject": subject, "Kavach-Actor": actor, "Kavach-Chain": chain, "Kavach-Scope": scope} {
		if got := s.Header.Values(name); len(got) != 1 || got[0] != want {
			t.Errorf("the upstream received %s %q, want [%q]", name, got, want)
		}
	}
}

// expectNoOverride: no method-override header reached the upstream.
func expectNoOverride(t *testing.T, got []seen) {
	t.Helper()
	for _, s := range got {
		for _, h := range []string{"X-Http-Method-Override", "X-Http-Method", "X-Method-Override"} {
			if v, ok := s.Header[h]; ok {
				t.Errorf("the upstream received %s %s with %s %q", s.Method, s.RequestURI, h, v)
			}
		}
	}
}

// expectRPCError: the body is a JSON-RPC error answering request id (a
// JSON literal) with code (any non-zero code when code is 0), served as
// application/json.
func expectRPCError(t *testing.T, r response, id string, code int) {
	t.Helper()
	var msg struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   *struct {
			Code int `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(r.Body), &msg); err != nil || msg.JSONRPC != "2.0" || msg.Error == nil {
		t.Errorf("status %d body %q: not a JSON-RPC error (%v)", r.Status, r.Body, err)
		return
	}
	if string(msg.ID) != id {
		t.Errorf("JSON-RPC error id %s, want %s (body %q)", msg.ID, id, r.Body)
	}
	if (code != 0 && msg.Error.Code != code) || msg.Error.Code == 0 {
		t.Errorf("JSON-RPC error code %d, want %d (body %q)", msg.Error.Code, code, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("JSON-RPC error served as %q, want application/json", ct)
	}
}

// extIssuer is an external (non-Kavach) issuer: an ES256 key whose JWK set
// a loopback server publishes.
type extIssuer struct {
	id, jwksURL, kid string
	key              *ecdsa.PrivateKey
}

func newExtIssuer(t *testing.T) *extIssuer {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := token.NewSigningKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	set, err := token.PublicSet(sk)
	if err != nil {
		t.Fatal(err)
	}
	jwks, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(jwks)
	}))
	t.Cleanup(srv.Close)
	return &extIssuer{id: "https://idp.pipeline.test", jwksURL: srv.URL + "/jwks.json", kid: sk.KID, key: priv}
}

// token is an RFC 9068 access token of the external issuer for user
// usr_alice, issued to clientID.
func (e *extIssuer) token(t *testing.T, aud, clientID, scope string) string {
	t.Helper()
	now := time.Now().Unix()
	payload, err := json.Marshal(map[string]any{
		"iss": e.id, "sub": "usr_alice", "aud": []string{aud}, "client_id": clientID, "scope": scope,
		"iat": now, "exp": now + 300, "jti": token.NewID("ext_"),
	})
	if err != nil {
		t.Fatal(err)
	}
	hdr := jws.NewHeaders()
	if err := hdr.Set(jws.TypeKey, token.TypeAccessToken); err != nil {
		t.Fatal(err)
	}
	if err := hdr.Set(jws.KeyIDKey, e.kid); err != nil {
		t.Fatal(err)
	}
	signed, err := jws.Sign(payload, jws.WithKey(jwa.ES256, e.key, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatal(err)
	}
	return string(signed)
}

// TestPipeline: issue 13 §2, holes 1-9, on one gateway with a plain API
// route with a narrower admin rule and an MCP route marked `mcp`.
func TestPipeline(t *testing.T) {
	t.Parallel()
	ext := newExtIssuer(t)
	g := startPipelineGW(t, ext, `http://$ADDR {
	bind 127.0.0.1
	kavach /api/* {
		resource $GW/api
		scope GET /api/* repo:read
		scope GET /api/admin/* admin:all
	}
	reverse_proxy /api/* $UP
	kavach /mcp* {
		mcp
		resource $GW/mcp
		scope mcp:call
		tool read_file repo:read
		tool write_file repo:write
		prompt greet repo:read
	}
	reverse_proxy /mcp* $UP
}
`)
	api, mcpURL := g.base+"/api", g.base+"/mcp"
	mint := g.keys.mint
	// reader acts for usr_alice through agt_root → agt_reader.
	reader := mint(t, "--aud", api, "--aud", mcpURL, "--scope", "repo:read mcp:call", "--agent", "agt_root", "--agent", "agt_reader")
	other := mint(t, "--aud", mcpURL, "--scope", "repo:read mcp:call", "--agent", "agt_other")
	otherUser := mint(t, "--aud", mcpURL, "--scope", "repo:read mcp:call", "--sub", "usr_bob", "--agent", "agt_root", "--agent", "agt_reader")
	public := mint(t, "--aud", api, "--scope", "repo:read", "--agent", "agt_public", "--constraint", "paths=/api/public/*")
	getOnly := mint(t, "--aud", api, "--scope", "repo:read", "--agent", "agt_getonly", "--constraint", "methods=GET")
	const rSub, rActor, rChain, rScope = "usr_alice", "agt_reader", "agt_root,agt_reader", "repo:read mcp:call"
	foreign := "http://evil.example"

	// §2.1: the upstream always receives the identity the gateway set.
	t.Run("identity/plain GET", func(t *testing.T) {
		r, got := g.send(t, newReq(t, "GET", api+"/x", reader, nil))
		expectIdentity(t, expectForwarded(t, r, got), rSub, rActor, rChain, rScope)
	})
	connection := "keep-alive, Kavach-Actor, Kavach-Chain, Kavach-Subject, Kavach-Scope, Kavach-Issuer"
	t.Run("identity/Connection names the identity headers (API route)", func(t *testing.T) {
		req := newReq(t, "GET", api+"/x", reader, nil)
		req.Header.Set("Connection", connection)
		r, got := g.send(t, req)
		expectIdentity(t, expectForwarded(t, r, got), rSub, rActor, rChain, rScope)
	})
	t.Run("identity/Connection names the identity headers (MCP route)", func(t *testing.T) {
		r, got := g.send(t, g.mcpReq(t, "POST", reader, toolCall("2", "read_file"), false, "Connection", connection))
		expectIdentity(t, expectForwarded(t, r, got), rSub, rActor, rChain, rScope)
	})
	t.Run("identity/Connection: Authorization", func(t *testing.T) {
		req := newReq(t, "GET", api+"/x", reader, nil)
		req.Header.Set("Connection", "Authorization")
		r, got := g.send(t, req)
		s := expectForwarded(t, r, got)
		if v, ok := s.Header["Authorization"]; ok {
			t.Errorf("the upstream received Authorization %q", v)
		}
		expectIdentity(t, s, rSub, rActor, rChain, rScope)
	})
	t.Run("identity/no client-sent Kavach header survives", func(t *testing.T) {
		spoof := func(req *http.Request) *http.Request {
			// Set through the map so each spelling goes on the wire as
			// written: an upstream behind CGI, WSGI or nginx reads '_' as '-'.
			for _, name := range []string{"Kavach_Actor", "KAVACH-SUBJECT", "kavach_chain", "Kavach-Scope", "Kavach-Issuer", "Kavach_Issuer", "Kavach-Extra"} {
				req.Header[name] = []string{"evil"}
			}
			return req
		}
		preflight := spoof(g.mcpReq(t, "OPTIONS", "", "", false, "Origin", g.base, "Access-Control-Request-Method", "POST"))
		for name, req := range map[string]*http.Request{
			"API GET":       spoof(newReq(t, "GET", api+"/x", reader, nil)),
			"MCP POST":      spoof(g.mcpReq(t, "POST", reader, toolCall("3", "read_file"), false)),
			"MCP preflight": preflight,
		} {
			t.Run(name, func(t *testing.T) {
				r, got := g.send(t, req)
				s := expectForwarded(t, r, got)
				for h, vals := range s.Header {
					norm := strings.ToLower(strings.ReplaceAll(h, "_", "-"))
					if slices.Contains(vals, "evil") || (strings.HasPrefix(norm, "kavach-") &&
						!slices.Contains([]string{"kavach-subject", "kavach-actor", "kavach-chain", "kavach-scope", "kavach-issuer"}, norm)) {
						t.Errorf("the upstream received client-sent %s %q", h, vals)
					}
				}
			})
		}
	})

	// §2.8: an upstream can always tell whose identity it is.
	t.Run("Kavach-Issuer names the token's issuer", func(t *testing.T) {
		for name, req := range map[string]*http.Request{
			"API GET":              newReq(t, "GET", api+"/x", reader, nil),
			"MCP POST":             g.mcpReq(t, "POST", reader, toolCall("4", "read_file"), false),
			"Connection names it":  g.mcpReq(t, "POST", reader, toolCall("5", "read_file"), false, "Connection", "Kavach-Issuer"),
			"client sends its own": g.mcpReq(t, "POST", reader, toolCall("6", "read_file"), false, "Kavach-Issuer", ext.id),
		} {
			t.Run(name, func(t *testing.T) {
				r, got := g.send(t, req)
				if v := expectForwarded(t, r, got).Header.Values("Kavach-Issuer"); len(v) != 1 || v[0] != gwIssuer {
					t.Errorf("the upstream received Kavach-Issuer %q, want [%q]", v, gwIssuer)
				}
			})
		}
	})
	t.Run("external identity is distinguishable", func(t *testing.T) {
		// An IdP's client may be called agt_reader, its user usr_alice.
		r, got := g.send(t, newReq(t, "GET", api+"/x", ext.token(t, api, "agt_reader", "repo:read"), nil))
		s := expectForwarded(t, r, got)
		if v := s.Header.Values("Kavach-Issuer"); len(v) != 1 || v[0] != ext.id {
			t.Errorf("the upstream received Kavach-Issuer %q, want [%q]", v, ext.id)
		}
		for h, orig := range map[string]string{"Kavach-Subject": "usr_alice", "Kavach-Actor": "agt_reader"} {
			if v := s.Header.Values(h); len(v) != 1 || !strings.HasPrefix(v[0], "ext:") || !strings.HasSuffix(v[0], orig) {
				t.Errorf("the upstream received %s %q, want one value ext:…%s that no Kavach id can equal", h, v, orig)
			}
		}
		if chain := s.Header.Get("Kavach-Chain"); chain != "" {
			for _, id := range strings.Split(chain, ",") {
				if !strings.HasPrefix(id, "ext:") {
					t.Errorf("the upstream received Kavach-Chain %q: %q could be a Kavach agent", chain, id)
				}
			}
		}
	})
	t.Run("external Kavach-Scope carries only honoured scopes", func(t *testing.T) {
		r, got := g.send(t, newReq(t, "GET", api+"/x", ext.token(t, api, "app_ext", "repo:read repo:* *"), nil))
		if v := expectForwarded(t, r, got).Header.Values("Kavach-Scope"); len(v) != 1 || v[0] != "repo:read" {
			t.Errorf("the upstream received Kavach-Scope %q, want [\"repo:read\"]: the gateway ignored the wildcards", v)
		}
	})

	// §2.2: rules and the paths constraint match paths as Caddy's
	// (case-insensitive) path matcher routes them.
	adminDenied := func(t *testing.T, target string) {
		t.Helper()
		r, got := g.raw(t, "GET", target, reader, "")
		expectRefused(t, r, got, 403)
		if c, err := parseChallenge(r.Header.Get("WWW-Authenticate")); err != nil || c.Params["error"] != "insufficient_scope" || !strings.Contains(c.Params["scope"], "admin:all") {
			t.Errorf("WWW-Authenticate %q: want insufficient_scope naming admin:all (the admin rule applies)", r.Header.Get("WWW-Authenticate"))
		}
	}
	t.Run("case/narrower rule applies", func(t *testing.T) { adminDenied(t, "/api/admin/users") })
	t.Run("case/narrower rule applies to /api/ADMIN", func(t *testing.T) { adminDenied(t, "/api/ADMIN/users") })
	t.Run("case/narrower rule applies to /API/Admin", func(t *testing.T) { adminDenied(t, "/API/Admin/users") })
	t.Run("case/route rule matches /API/x", func(t *testing.T) {
		r, got := g.raw(t, "GET", "/API/x", reader, "")
		expectForwarded(t, r, got)
	})
	t.Run("case/paths constraint allows /API/Public", func(t *testing.T) {
		r, got := g.raw(t, "GET", "/API/Public/a", public, "")
		expectForwarded(t, r, got)
	})
	t.Run("case/paths constraint refuses /API/Admin", func(t *testing.T) {
		r, got := g.raw(t, "GET", "/API/Admin/a", public, "")
		expectRefused(t, r, got, 403)
	})

	// §2.3: path spellings that common upstreams read differently → 400.
	t.Run("path spellings", func(t *testing.T) {
		for _, target := range []string{
			"/api/admin;x/secret",
			"/api/x/..;/admin/secret",
			"/api/x/%2e%2e;/admin/secret",
			"/api/x/%2e%2e/admin/secret",
			"/api/admin%3bx/secret",
			"/api/admin./secret",
			"/api/x/.../admin/secret",
			"/api/%252e%252e/admin/secret",
			"/api/a%25b",
			"/api/x%00y",
		} {
			t.Run(target, func(t *testing.T) {
				r, got := g.raw(t, "GET", target, reader, "")
				expectRefused(t, r, got, 400)
			})
		}
		t.Run("a dot inside a name is fine", func(t *testing.T) {
			r, got := g.raw(t, "GET", "/api/x.json", reader, "")
			expectForwarded(t, r, got)
		})
	})
	t.Run("paths constraint/escapes", func(t *testing.T) {
		for _, target := range []string{"/api/public/..;/private/a", "/api/public/%2e%2e;/private/a", "/api/public;x/../private/a"} {
			t.Run(target, func(t *testing.T) {
				r, got := g.raw(t, "GET", target, public, "")
				expectRefused(t, r, got, 400)
			})
		}
		t.Run("inside", func(t *testing.T) {
			r, got := g.raw(t, "GET", "/api/public/a", public, "")
			expectForwarded(t, r, got)
		})
	})

	// §2.4: a preflight is forwarded only without a body, and on MCP routes
	// only from an allowed Origin.
	preflight := func(url, origin, body string, chunked bool, hdr ...string) *http.Request {
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
			if chunked {
				rd = struct{ io.Reader }{rd}
			}
		}
		req := newReq(t, "OPTIONS", url, "", rd)
		if chunked {
			req.ContentLength = -1
		}
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		return req
	}
	t.Run("preflight/bodyless from the resource's origin is forwarded", func(t *testing.T) {
		r, got := g.send(t, preflight(mcpURL, g.base, "", false))
		if s := expectForwarded(t, r, got); s.Method != "OPTIONS" || len(s.Body) != 0 {
			t.Errorf("the upstream received %s with body %q", s.Method, s.Body)
		}
	})
	t.Run("preflight/with a body (MCP route)", func(t *testing.T) {
		r, got := g.send(t, preflight(mcpURL, g.base, toolCall("7", "write_file"), false, "Content-Type", "application/json"))
		expectRefused(t, r, got)
	})
	t.Run("preflight/with a chunked body (MCP route)", func(t *testing.T) {
		r, got := g.send(t, preflight(mcpURL, g.base, toolCall("8", "write_file"), true, "Content-Type", "application/json"))
		expectRefused(t, r, got)
	})
	t.Run("preflight/with a body (API route)", func(t *testing.T) {
		r, got := g.send(t, preflight(api+"/x", g.base, "payload", false))
		expectRefused(t, r, got)
	})
	t.Run("preflight/from a foreign Origin (MCP route)", func(t *testing.T) {
		r, got := g.send(t, preflight(mcpURL, foreign, "", false))
		expectRefused(t, r, got, 403)
	})
	t.Run("preflight/method override never forwarded", func(t *testing.T) {
		_, got := g.send(t, preflight(api+"/x", g.base, "", false, "X-HTTP-Method-Override", "DELETE", "X-HTTP-Method", "DELETE", "X-Method-Override", "DELETE"))
		expectNoOverride(t, got)
	})

	// §2.5: on MCP routes only POST, GET without a body and DELETE; no
	// method override reaches an upstream.
	for _, tc := range []struct {
		name, method, body string
		chunked            bool
		hdr                []string
		want               int
	}{
		{"PUT with a tools/call body", "PUT", toolCall("9", "write_file"), false, nil, 405},
		{"PATCH with a tools/call body", "PATCH", toolCall("10", "write_file"), false, nil, 405},
		{"HEAD", "HEAD", "", false, nil, 405},
		{"OPTIONS that is not a preflight", "OPTIONS", "", false, nil, 405},
		{"GET with a body and X-HTTP-Method-Override", "GET", toolCall("11", "write_file"), false, []string{"X-HTTP-Method-Override", "POST"}, 400},
		{"GET with a chunked body", "GET", toolCall("12", "write_file"), true, nil, 400},
	} {
		t.Run("MCP methods/"+tc.name, func(t *testing.T) {
			r, got := g.send(t, g.mcpReq(t, tc.method, reader, tc.body, tc.chunked, tc.hdr...))
			expectRefused(t, r, got, tc.want)
		})
	}
	t.Run("MCP methods/GET without a body passes", func(t *testing.T) {
		r, got := g.send(t, g.mcpReq(t, "GET", reader, "", false))
		expectForwarded(t, r, got)
	})
	t.Run("MCP methods/POST with X-HTTP-Method-Override", func(t *testing.T) {
		r, got := g.send(t, g.mcpReq(t, "POST", reader, toolCall("13", "read_file"), false, "X-HTTP-Method-Override", "DELETE", "X-Method-Override", "DELETE"))
		if len(got) == 0 {
			expectRefused(t, r, got)
		}
		expectNoOverride(t, got)
	})
	t.Run("method override on an API route", func(t *testing.T) {
		// A token limited to GET; an upstream honouring the override would
		// run a DELETE.
		req := newReq(t, "GET", api+"/x", getOnly, nil)
		for _, h := range []string{"X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override"} {
			req.Header.Set(h, "DELETE")
		}
		r, got := g.send(t, req)
		if len(got) == 0 {
			expectRefused(t, r, got)
		}
		expectNoOverride(t, got)
	})

	// §2.6: a session belongs to the chain that opened it; an id the
	// gateway does not know is 404, never forwarded.
	r, got := g.send(t, g.mcpReq(t, "POST", reader, rpcInitialize, false))
	sid := r.Header.Get("Mcp-Session-Id")
	t.Run("session/initialize", func(t *testing.T) {
		expectForwarded(t, r, got)
		if sid == "" {
			t.Fatal("initialize: no Mcp-Session-Id in the answer")
		}
	})
	if sid == "" {
		sid = "sess-none"
	}
	session := func(id string) []string {
		return []string{"Mcp-Session-Id", id, "MCP-Protocol-Version", "2025-11-25"}
	}
	unknown := "sess-" + strings.Repeat("0", 24)
	t.Run("session/own session is forwarded", func(t *testing.T) {
		r, got := g.send(t, g.mcpReq(t, "POST", reader, toolCall("14", "read_file"), false, session(sid)...))
		expectForwarded(t, r, got)
		r, got = g.send(t, g.mcpReq(t, "GET", reader, "", false, session(sid)...))
		expectForwarded(t, r, got)
	})
	for _, tc := range []struct {
		name, tok, method, body, id string
		want                        int
	}{
		{"another chain POST", other, "POST", toolCall("15", "read_file"), sid, 403},
		{"another chain GET", other, "GET", "", sid, 403},
		{"another chain DELETE", other, "DELETE", "", sid, 403},
		{"same agents, another user", otherUser, "POST", toolCall("16", "read_file"), sid, 403},
		{"unknown id POST", reader, "POST", toolCall("17", "read_file"), unknown, 404},
		{"unknown id GET", reader, "GET", "", unknown, 404},
		{"unknown id DELETE", reader, "DELETE", "", unknown, 404},
	} {
		t.Run("session/"+tc.name, func(t *testing.T) {
			r, got := g.send(t, g.mcpReq(t, tc.method, tc.tok, tc.body, false, session(tc.id)...))
			expectRefused(t, r, got, tc.want)
		})
	}

	// §2.9: MCP denials are JSON-RPC errors answering the request's id.
	v2026 := []string{"MCP-Protocol-Version", "2026-07-28"}
	for _, tc := range []struct {
		name, tok, body string
		hdr             []string
		status          int
		id              string
		code            int
	}{
		{"unknown method", reader, rpc("41", "tools/frobnicate", `{}`), v2026, 404, "41", -32601},
		{"unknown method, string id", reader, rpc(`"q-41"`, "tools/frobnicate", `{}`), v2026, 404, `"q-41"`, -32601},
		{"case-variant method", reader, rpc("44", "Tools/Call", `{"name":"read_file"}`), v2026, 404, "44", -32601},
		{"Mcp-Method disagrees with the body", reader, toolCall("42", "read_file"), append([]string{"Mcp-Method", "tools/list"}, v2026...), 400, "42", -32020},
		{"Mcp-Name disagrees with the body", reader, toolCall("45", "read_file"), append([]string{"Mcp-Method", "tools/call", "Mcp-Name", "write_file"}, v2026...), 400, "45", -32020},
		{"tool without scope", reader, toolCall("43", "write_file"), nil, 403, "43", 0},
		{"tool without a rule", reader, toolCall("46", "admin_reset"), nil, 403, "46", 0},
		{"another chain's session", other, toolCall("47", "read_file"), session(sid), 403, "47", 0},
		{"unknown session", reader, toolCall("48", "read_file"), session(unknown), 404, "48", 0},
	} {
		t.Run("JSON-RPC errors/"+tc.name, func(t *testing.T) {
			r, got := g.send(t, g.mcpReq(t, "POST", tc.tok, tc.body, false, tc.hdr...))
			expectRefused(t, r, got, tc.status)
			expectRPCError(t, r, tc.id, tc.code)
		})
	}
	t.Run("scope denial keeps insufficient_scope", func(t *testing.T) {
		r, got := g.send(t, g.mcpReq(t, "POST", reader, toolCall("49", "write_file"), false))
		expectRefused(t, r, got, 403)
		if c, err := parseChallenge(r.Header.Get("WWW-Authenticate")); err != nil || c.Params["error"] != "insufficient_scope" || !strings.Contains(c.Params["scope"], "repo:write") {
			t.Errorf("WWW-Authenticate %q: want insufficient_scope naming repo:write", r.Header.Get("WWW-Authenticate"))
		}
	})

	// DNS-rebinding protection comes before anything else on MCP routes.
	for _, tc := range []struct {
		name, tok, method, origin string
	}{
		{"foreign Origin without a token", "", "POST", foreign},
		{"foreign Origin without a token, GET", "", "GET", foreign},
		{"foreign Origin with a token", reader, "POST", foreign},
		{"rebinding host on the gateway's port", reader, "POST", "http://localhost.evil.example:" + strings.TrimPrefix(g.addr, "127.0.0.1:")},
		{"Origin null", reader, "POST", "null"},
	} {
		t.Run("Origin/"+tc.name, func(t *testing.T) {
			body := ""
			if tc.method == "POST" {
				body = toolCall("50", "read_file")
			}
			r, got := g.send(t, g.mcpReq(t, tc.method, tc.tok, body, false, "Origin", tc.origin))
			expectRefused(t, r, got, 403)
		})
	}
	t.Run("Origin/own origin without a token gets the 401 challenge", func(t *testing.T) {
		r, got := g.send(t, g.mcpReq(t, "POST", "", toolCall("51", "read_file"), false, "Origin", g.base))
		if r.Status != 401 || len(got) != 0 {
			t.Errorf("status %d, %d forwarded; want 401 and none", r.Status, len(got))
		}
	})

	// §2.7: methods that passed on the route rule alone meet the resource
	// and prompt rules; here no resource rule matches.
	for _, tc := range []struct {
		name, body string
		allowed    bool
	}{
		{"resources/subscribe with no rule", rpc("60", "resources/subscribe", `{"uri":"file:///etc/passwd"}`), false},
		{"completion/complete on a prompt with no rule", rpc("61", "completion/complete", `{"ref":{"type":"ref/prompt","name":"secret"},"argument":{"name":"a","value":"b"}}`), false},
		{"completion/complete on a resource with no rule", rpc("62", "completion/complete", `{"ref":{"type":"ref/resource","uri":"file:///etc/{name}"},"argument":{"name":"name","value":"pass"}}`), false},
		{"prompts/get with no rule", rpc("63", "prompts/get", `{"name":"secret"}`), false},
		{"completion/complete on an allowed prompt", rpc("64", "completion/complete", `{"ref":{"type":"ref/prompt","name":"greet"},"argument":{"name":"a","value":"b"}}`), true},
	} {
		t.Run("rules/"+tc.name, func(t *testing.T) {
			r, got := g.send(t, g.mcpReq(t, "POST", reader, tc.body, false))
			if tc.allowed {
				expectForwarded(t, r, got)
			} else {
				expectRefused(t, r, got)
			}
		})
	}

	t.Run("session/own DELETE is forwarded", func(t *testing.T) {
		r, got := g.send(t, g.mcpReq(t, "DELETE", reader, "", false, session(sid)...))
		expectForwarded(t, r, got)
	})
}

// TestPipelinePathParamsOptOut: `allow_path_params` lets one route's
// matrix parameters through (§2.3); dot segments in any spelling and the
// other routes stay refused.
func TestPipelinePathParamsOptOut(t *testing.T) {
	t.Parallel()
	g := startPipelineGW(t, nil, `http://$ADDR {
	bind 127.0.0.1
	kavach /matrix/* {
		resource $GW/matrix
		scope GET /matrix/* repo:read
		allow_path_params
	}
	reverse_proxy /matrix/* $UP
	kavach /strict/* {
		resource $GW/strict
		scope GET /strict/* repo:read
	}
	reverse_proxy /strict/* $UP
}
`)
	tok := g.keys.mint(t, "--aud", g.base+"/matrix", "--aud", g.base+"/strict", "--scope", "repo:read", "--agent", "agt_matrix")
	for _, target := range []string{"/matrix/a;v=1", "/matrix/a;v=1/b;w=2"} {
		t.Run(target, func(t *testing.T) {
			r, got := g.raw(t, "GET", target, tok, "")
			if s := expectForwarded(t, r, got); s.RequestURI != target {
				t.Errorf("the upstream received %s, want %s", s.RequestURI, target)
			}
		})
	}
	for _, target := range []string{"/matrix/x/..;/admin", "/matrix/x/.;v=1/admin", "/matrix/admin./x", "/strict/a;v=1"} {
		t.Run(target, func(t *testing.T) {
			r, got := g.raw(t, "GET", target, tok, "")
			expectRefused(t, r, got, 400)
		})
	}
}

// TestPipelineMCPResourceRules: resources/read, resources/subscribe and
// completion/complete meet the same resource rule, and no URI spelling
// escapes it (§2.7).
func TestPipelineMCPResourceRules(t *testing.T) {
	t.Parallel()
	g := startPipelineGW(t, nil, `http://$ADDR {
	bind 127.0.0.1
	kavach /mcp* {
		mcp
		resource $GW/mcp
		scope mcp:call
		resource_uri file:///repo/* repo:read
	}
	reverse_proxy /mcp* $UP
}
`)
	tok := g.keys.mint(t, "--aud", g.base+"/mcp", "--scope", "repo:read mcp:call", "--agent", "agt_res")
	for i, tc := range []struct {
		method, uri string
		allowed     bool
	}{
		{"resources/read", "file:///repo/a", true},
		{"resources/subscribe", "file:///repo/a", true},
		{"resources/read", "file:///repo/..;/etc/passwd", false},
		{"resources/read", "file:///repo/%2e%2e/etc/passwd", false},
		{"resources/read", "file:///repo/%2E%2E%2Fetc/passwd", false},
		{"resources/read", "file:///repo/../etc/passwd", false},
		{"resources/subscribe", "file:///etc/passwd", false},
		{"resources/subscribe", "file:///repo/..;/etc/passwd", false},
		{"resources/subscribe", "file:///repo/%2e%2e/etc/passwd", false},
		{"resources/unsubscribe", "file:///repo/a", true},
	} {
		t.Run(tc.method+" "+tc.uri, func(t *testing.T) {
			body := rpc(fmt.Sprint(70+i), tc.method, `{"uri":"`+tc.uri+`"}`)
			r, got := g.send(t, g.mcpReq(t, "POST", tok, body, false))
			if tc.allowed {
				expectForwarded(t, r, got)
			} else {
				expectRefused(t, r, got)
			}
		})
	}
	t.Run("completion/complete on a resource outside the rule", func(t *testing.T) {
		body := rpc("90", "completion/complete", `{"ref":{"type":"ref/resource","uri":"file:///etc/{name}"},"argument":{"name":"name","value":"passwd"}}`)
		r, got := g.send(t, g.mcpReq(t, "POST", tok, body, false))
		expectRefused(t, r, got)
	})
	t.Run("completion/complete on a resource inside the rule", func(t *testing.T) {
		body := rpc("91", "completion/complete", `{"ref":{"type":"ref/resource","uri":"file:///repo/{name}"},"argument":{"name":"name","value":"a"}}`)
		r, got := g.send(t, g.mcpReq(t, "POST", tok, body, false))
		expectForwarded(t, r, got)
	})
}

// TestPipelineValidate: configuration that must fail loudly (issue 13 §3,
// as far as the acceptance check goes): refused by `kavach validate`,
// naming the file and the line at fault, never with a crash.
func TestPipelineValidate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	newKeys(t, dir)
	for _, tc := range []struct {
		name  string
		lines []string // the route's lines after resource; the last is at fault
		ok    bool
	}{
		{"good rule", []string{"scope GET /x/* a:b"}, true},
		{"good MCP route", []string{"mcp", "scope mcp:call", "tool read_file repo:read", "prompt greet repo:read"}, true},
		{"method that is not a method", []string{"scope PTU /x/* a:b"}, false},
		{"method without a path", []string{"scope GET a:b"}, false},
		{"method alone", []string{"scope GET"}, false},
		{"rule without a scope", []string{"scope GET /x/*"}, false},
		{"path without a leading slash", []string{"scope GET x/* a:b"}, false},
		{"empty path", []string{`scope GET "" x:y`}, false},
		{"empty scope", []string{`scope ""`}, false},
		{"tool on a route not marked mcp", []string{"scope mcp:call", "tool read_file repo:read"}, false},
		{"prompt on a route not marked mcp", []string{"scope mcp:call", "prompt greet repo:read"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			name := "pipeline-" + strings.ReplaceAll(tc.name, " ", "-") + ".Caddyfile"
			config := "{\n\tadmin off\n\tkavach {\n\t\ttrusted_keys " + gwIssuer + " ./jwks.json\n\t\taudit off\n\t}\n}\n\n" +
				"http://127.0.0.1:8080 {\n\tkavach /x/* {\n\t\tresource http://127.0.0.1:8080/x\n\t\t" +
				strings.Join(tc.lines, "\n\t\t") + "\n\t}\n\trespond ok\n}\n"
			if err := os.WriteFile(filepath.Join(dir, name), []byte(config), 0o600); err != nil {
				t.Fatal(err)
			}
			out, errOut, err := kavachEnv(dir, nil, "validate", "--config", name, "--adapter", "caddyfile")
			text := logText(out + errOut)
			if tc.ok {
				if err != nil {
					t.Fatalf("kavach validate refused:\n%s\n%s", config, text)
				}
				return
			}
			if err == nil {
				t.Fatalf("kavach validate accepted:\n%s", config)
			}
			for _, crash := range []string{"panic", "index out of range", "goroutine "} {
				if strings.Contains(text, crash) {
					t.Errorf("kavach validate crashed (%q):\n%s", crash, text)
				}
			}
			line := 1 + slices.Index(strings.Split(config, "\n"), "\t\t"+tc.lines[len(tc.lines)-1])
			if want := fmt.Sprintf("%s:%d", name, line); !strings.Contains(text, want) {
				t.Errorf("the refusal does not name %s:\n%s", want, text)
			}
		})
	}
}
