package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kavachgate/kavach/audit"
	"github.com/kavachgate/kavach/mcp"
	"github.com/kavachgate/kavach/policy"
	"github.com/kavachgate/kavach/revocation"
	"github.com/kavachgate/kavach/token"
)

// trail is a Recorder that keeps what it is given, or refuses it.
type trail struct {
	mu       sync.Mutex
	recs     []audit.Record
	durable  int
	junk     map[string]int
	refuse   error // Write and WriteDurable fail with it
	notDurab bool  // WriteDurable fails with ErrNotDurable (the record stays queued)
}

func (t *trail) Write(rec *audit.Record) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.refuse != nil {
		return t.refuse
	}
	t.recs = append(t.recs, *rec)
	return nil
}

func (t *trail) WriteDurable(_ context.Context, rec *audit.Record) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.refuse != nil {
		return t.refuse
	}
	t.recs = append(t.recs, *rec)
	if t.notDurab {
		return errors.Join(audit.ErrNotDurable, audit.ErrSinkFailing)
	}
	t.durable++
	return nil
}

func (t *trail) CountJunk(reason string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.junk == nil {
		t.junk = map[string]int{}
	}
	t.junk[reason]++
}

func (t *trail) records() []audit.Record {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]audit.Record(nil), t.recs...)
}

const mcpResource = "https://api.example/mcp"

// mcpRoute is an MCP route: tools/call read_file needs repo:read,
// write_file repo:write, every request mcp:call.
func mcpRoute(t testing.TB, sessions mcp.SessionStore) *Route {
	t.Helper()
	rt := &Route{Resource: mcpResource, Scopes: []string{"mcp:call"}, MCP: &MCP{
		Rules: mcp.Rules{
			Tools:     []mcp.Rule{{Pattern: "read_file", Scopes: []string{"repo:read"}}, {Pattern: "write_file", Scopes: []string{"repo:write"}}},
			Resources: []mcp.Rule{{Pattern: "file:///repo/*", Scopes: []string{"repo:read"}}},
			Prompts:   []mcp.Rule{{Pattern: "review", Scopes: []string{"repo:read"}}},
		},
		Sessions: sessions,
	}}
	if err := rt.Compile(); err != nil {
		t.Fatal(err)
	}
	return rt
}

// upstream is a next handler that notes what reached it.
type upstream struct {
	calls  int
	header http.Header
	body   string
	status int
	reply  string
	ctype  string
	setHdr map[string]string
}

func (u *upstream) serve(w http.ResponseWriter, r *http.Request) error {
	u.calls++
	u.header = r.Header.Clone()
	b, err := io.ReadAll(r.Body)
	u.body = string(b)
	if err != nil {
		return err
	}
	for k, v := range u.setHdr {
		w.Header().Set(k, v)
	}
	if u.ctype != "" {
		w.Header().Set("Content-Type", u.ctype)
	}
	if u.status != 0 {
		w.WriteHeader(u.status)
	}
	_, _ = io.WriteString(w, u.reply)
	return nil
}

// serve runs the whole pipeline as the Caddy glue does: Admit, then Deny
// or Forward. It returns the response and the error Forward returned.
func serve(g *Gateway, rt *Route, r *http.Request, u *upstream) (*httptest.ResponseRecorder, *Admission, error) {
	w := httptest.NewRecorder()
	a := new(Admission)
	g.Admit(rt, Request{HTTP: r, ClientIP: netip.MustParseAddr("127.0.0.1")}, a)
	if !a.Allowed() {
		if !a.Deny(w, rt) {
			w.WriteHeader(a.Status)
		}
		return w, a, nil
	}
	err := g.Forward(w, r, a, u.serve, nil)
	return w, a, err
}

func rpc(id int, method, params string) string {
	return `{"jsonrpc":"2.0","id":` + itoaTest(id) + `,"method":"` + method + `","params":` + params + `}`
}

func itoaTest(n int) string { b, _ := json.Marshal(n); return string(b) }

func mcpPost(tok, body string) *http.Request {
	r := httptest.NewRequest("POST", "/mcp", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	if tok != "" {
		r.Header.Set("Authorization", "Bearer "+tok)
	}
	return r
}

func (f *fixture) mcpToken(t testing.TB, scope string) string {
	return f.mint(t, func(c *token.Claims) {
		c.Audience = token.Audience{mcpResource}
		c.Scope = scope
	})
}

// rpcError decodes a JSON-RPC error body.
func rpcError(t *testing.T, body string) (id any, code int) {
	t.Helper()
	var m struct {
		JSONRPC string `json:"jsonrpc"`
		ID      any    `json:"id"`
		Error   struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &m); err != nil || m.JSONRPC != "2.0" || m.Error.Message == "" {
		t.Fatalf("not a JSON-RPC error body: %q (%v)", body, err)
	}
	return m.ID, m.Error.Code
}

// TestAdmitOrder: when a request breaks two rules, the earlier step of the
// documented order answers; nothing denied reaches the upstream, and an
// MCP route's denials carry a JSON-RPC error with the request's id.
func TestAdmitOrder(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	sessions := mcp.NewMemorySessions(0, 0)
	rt := mcpRoute(t, sessions)
	read := f.mcpToken(t, "mcp:call repo:read")
	call := func(id int, tool string) string {
		return rpc(id, "tools/call", `{"name":"`+tool+`","arguments":{}}`)
	}
	with := func(r *http.Request, kv ...string) *http.Request {
		for i := 0; i < len(kv); i += 2 {
			r.Header.Set(kv[i], kv[i+1])
		}
		return r
	}
	cases := []struct {
		name    string
		req     *http.Request
		outcome Outcome
		status  int
		rpcCode int // 0: not checked
		rpcID   any
	}{
		{"foreign origin before the token", with(mcpPost("", call(1, "read_file")), "Origin", "https://evil.example"), BadOrigin, 403, rpcForbidden, nil},
		{"foreign origin with a good token", with(mcpPost(read, call(2, "read_file")), "Origin", "https://evil.example"), BadOrigin, 403, 0, nil},
		{"token before path spelling", func() *http.Request { r := mcpPost("", call(3, "read_file")); r.URL.Path = "/mcp;x"; return r }(), MissingToken, 401, rpcForbidden, nil},
		{"path spelling before the MCP method", func() *http.Request {
			r := mcpPost(read, call(4, "read_file"))
			r.Method, r.URL.Path = "PUT", "/mcp/..;/x"
			return r
		}(), BadPath, 400, 0, nil},
		{"PUT is 405", func() *http.Request { r := mcpPost(read, call(5, "write_file")); r.Method = "PUT"; return r }(), BadMethod, 405, 0, nil},
		{"PATCH is 405", func() *http.Request { r := mcpPost(read, call(6, "write_file")); r.Method = "PATCH"; return r }(), BadMethod, 405, 0, nil},
		{"GET with a body", func() *http.Request {
			r := with(mcpPost(read, call(7, "write_file")), "X-HTTP-Method-Override", "POST")
			r.Method = "GET"
			return r
		}(), BadRequest, 400, 0, nil},
		{"unknown method is 404 -32601", mcpPost(read, rpc(8, "tools/frobnicate", `{}`)), UnknownMethod, 404, rpcMethodNotFound, float64(8)},
		{"case-variant method is 404", mcpPost(read, rpc(9, "Tools/Call", `{"name":"read_file"}`)), UnknownMethod, 404, rpcMethodNotFound, float64(9)},
		{"Mcp-Method mismatch is 400 -32020", with(mcpPost(read, call(10, "read_file")), "Mcp-Method", "tools/list"), BadRequest, 400, rpcHeaderMismatch, float64(10)},
		{"header mismatch before the tool rule", with(mcpPost(read, call(11, "write_file")), "Mcp-Name", "read_file"), BadRequest, 400, rpcHeaderMismatch, float64(11)},
		{"tool rule", mcpPost(read, call(12, "write_file")), InsufficientScope, 403, rpcForbidden, float64(12)},
		{"batch", mcpPost(read, "["+call(13, "read_file")+"]"), BadRequest, 400, 0, nil},
		{"route scope before the tool rule", mcpPost(f.mcpToken(t, "repo:read repo:write"), call(14, "write_file")), InsufficientScope, 403, rpcForbidden, nil},
		{"allowed", mcpPost(read, call(15, "read_file")), Allowed, 0, 0, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tr := &trail{}
			g := *f.gw
			g.Audit = tr
			u := &upstream{reply: "{}", ctype: "application/json"}
			w, a, _ := serve(&g, rt, tc.req, u)
			if a.Outcome != tc.outcome || a.Status != tc.status {
				t.Fatalf("%s %d (%s), want %s %d", a.Outcome, a.Status, a.Detail, tc.outcome, tc.status)
			}
			if tc.status == 0 {
				if u.calls != 1 {
					t.Fatal("allowed request not forwarded")
				}
				return
			}
			if u.calls != 0 {
				t.Fatal("denied request reached the upstream")
			}
			if got := w.Header().Get("WWW-Authenticate"); !strings.Contains(got, `resource_metadata="https://api.example/.well-known/oauth-protected-resource/mcp"`) {
				t.Errorf("WWW-Authenticate = %q", got)
			}
			id, code := rpcError(t, w.Body.String())
			if tc.rpcCode != 0 && code != tc.rpcCode {
				t.Errorf("JSON-RPC code %d, want %d", code, tc.rpcCode)
			}
			if tc.rpcID != nil && id != tc.rpcID {
				t.Errorf("JSON-RPC id %v, want %v", id, tc.rpcID)
			}
			if tc.status == 405 && w.Header().Get("Allow") != mcpAllow {
				t.Errorf("405 without Allow: %q", w.Header().Get("Allow"))
			}
		})
	}
}

// TestPreflight: a CORS preflight passes without a token only as what it
// is, and is counted, never recorded as a decision.
func TestPreflight(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	rt := mcpRoute(t, mcp.NewMemorySessions(0, 0))
	pre := func(origin, body string) *http.Request {
		r := httptest.NewRequest("OPTIONS", "/mcp", strings.NewReader(body))
		if body == "" {
			r.Body, r.ContentLength = http.NoBody, 0
		}
		r.Header.Set("Access-Control-Request-Method", "POST")
		r.Header.Set("Kavach-Actor", "agt_spoofed")
		r.Header.Set("X-HTTP-Method-Override", "POST")
		if origin != "" {
			r.Header.Set("Origin", origin)
		}
		return r
	}
	for _, tc := range []struct {
		name    string
		req     *http.Request
		status  int
		forward bool
	}{
		{"bodyless from the resource's origin", pre("https://api.example", ""), 0, true},
		{"with a JSON-RPC body", pre("https://api.example", rpc(1, "tools/call", `{"name":"write_file"}`)), 400, false},
		{"with a chunked body", func() *http.Request {
			r := pre("https://api.example", "x")
			r.ContentLength, r.TransferEncoding = -1, []string{"chunked"}
			return r
		}(), 400, false},
		{"from a foreign origin", pre("https://evil.example", ""), 403, false},
		{"on a bad path", func() *http.Request { r := pre("", ""); r.URL.Path = "/mcp;jsessionid=1"; return r }(), 400, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := &trail{}
			g := *f.gw
			g.Audit = tr
			u := &upstream{status: 204}
			_, a, err := serve(&g, rt, tc.req, u)
			if err != nil || a.Status != tc.status || (u.calls == 1) != tc.forward {
				t.Fatalf("status %d forwarded %v err %v, want %d %v", a.Status, u.calls == 1, err, tc.status, tc.forward)
			}
			if tc.forward {
				for _, h := range []string{"Kavach-Actor", "X-Http-Method-Override", "Authorization"} {
					if u.header.Get(h) != "" {
						t.Errorf("%s forwarded with a preflight", h)
					}
				}
				if tr.junk[string(Preflight)] != 1 {
					t.Errorf("preflight not counted: %v", tr.junk)
				}
			}
			if len(tr.records()) != 0 {
				t.Error("a request without a token left a decision record")
			}
		})
	}
}

// TestForwardRewrite: the upstream learns exactly who calls, whatever the
// client sends.
func TestForwardRewrite(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := request("GET", "/api/x", f.mint(t, nil))
	r.Header.Set("Connection", "keep-alive, Kavach-Actor, kavach_chain, Authorization, X-HTTP-Method-Override, X-Keep")
	r.Header.Add("Connection", "Kavach-Subject")
	r.Header["Kavach_Actor"] = []string{"agt_spoofed"}
	r.Header["KAVACH-ISSUER"] = []string{"https://evil.example"}
	r.Header.Set("X-HTTP-Method-Override", "DELETE")
	r.Header.Set("X-Method-Override", "DELETE")
	r.Header["X_http_method"] = []string{"DELETE"}
	u := &upstream{}
	if _, a, err := serve(f.gw, f.rt, r, u); err != nil || !a.Allowed() {
		t.Fatalf("%v %s", err, a.Detail)
	}
	want := map[string]string{"Kavach-Subject": "usr_alice", "Kavach-Actor": "agt_child", "Kavach-Chain": "agt_parent,agt_child", "Kavach-Scope": "repo:read", "Kavach-Issuer": testIssuer, "Connection": "keep-alive, X-Keep"}
	for k, v := range want {
		if got := u.header.Values(k); len(got) != 1 || got[0] != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	for name := range u.header {
		if isOverrideSpelling(name) || name == "Authorization" || strings.EqualFold(name, "Kavach_Actor") {
			t.Errorf("%s reached the upstream", name)
		}
	}
}

// TestExternalIdentity: a token of an external issuer can never pass for
// a Kavach identity, and Kavach-Scope holds only the scopes honoured.
func TestExternalIdentity(t *testing.T) {
	t.Parallel()
	tok := &token.Token{External: true, Scopes: []string{"repo:read"}, Claims: token.Claims{
		Issuer: "https://idp.example", Subject: "usr_alice", ClientID: "agt_real", Scope: "repo:read repo:*",
	}}
	id := IdentityOf(tok)
	if id.Actor != "ext:agt_real" || id.Subject != "ext:usr_alice" || id.Chain != "ext:agt_real" || id.Scope != "repo:read" || id.Issuer != "https://idp.example" {
		t.Fatalf("identity %+v", id)
	}
	h := http.Header{}
	rewrite(h, &id)
	if h.Get(HeaderIssuer) != "https://idp.example" || h.Get(HeaderActor) != "ext:agt_real" {
		t.Fatalf("headers %v", h)
	}
}

// TestAuditRules: the decision record comes before the upstream, durable
// when the route or the token asks; a trail that refuses means 503 and
// no forward; a token that requires a trail is refused without one.
func TestAuditRules(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	required := f.mint(t, func(c *token.Claims) { c.Kavach.Constraints = &policy.Constraints{Audit: "required"} })
	plain := f.mint(t, nil)
	durableRoute := *f.rt
	durableRoute.AuditRequired = true
	for _, tc := range []struct {
		name    string
		rt      *Route
		tok     string
		tr      *trail // nil: trail off
		status  int
		durable int
		recs    []audit.Kind
	}{
		{"queued", f.rt, plain, &trail{}, 0, 0, []audit.Kind{audit.KindDecision, audit.KindOutcome}},
		{"durable for the token", f.rt, required, &trail{}, 0, 1, []audit.Kind{audit.KindDecision, audit.KindOutcome}},
		{"durable for the route", &durableRoute, plain, &trail{}, 0, 1, []audit.Kind{audit.KindDecision, audit.KindOutcome}},
		{"trail refuses", f.rt, plain, &trail{refuse: audit.ErrQueueFull}, 503, 0, nil},
		{"not durable", &durableRoute, plain, &trail{notDurab: true}, 503, 0, []audit.Kind{audit.KindDecision, audit.KindOutcome}},
		{"trail off, token requires it", f.rt, required, nil, 403, 0, nil},
		{"trail off", f.rt, plain, nil, 0, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := *f.gw
			if tc.tr != nil {
				g.Audit = tc.tr
			}
			u := &upstream{}
			w, a, _ := serve(&g, tc.rt, request("GET", "/api/x", tc.tok), u)
			if a.Status != tc.status || (u.calls == 1) != (tc.status == 0) {
				t.Fatalf("status %d forwarded %v (%s)", a.Status, u.calls == 1, a.Detail)
			}
			if tc.status == 503 && w.Header().Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
			if tc.tr == nil {
				return
			}
			recs := tc.tr.records()
			if len(recs) != len(tc.recs) {
				t.Fatalf("%d records, want %d", len(recs), len(tc.recs))
			}
			for i, k := range tc.recs {
				if recs[i].Kind != k {
					t.Errorf("record %d is %s, want %s", i, recs[i].Kind, k)
				}
			}
			if len(recs) == 2 {
				if recs[0].RequestID == "" || recs[1].RequestID != recs[0].RequestID {
					t.Error("outcome not linked to its decision")
				}
				if tc.status == 503 && recs[1].Status != 503 {
					t.Errorf("refused request's outcome says %d", recs[1].Status)
				}
				if recs[0].Actor != "agt_child" || recs[0].Sub != "usr_alice" || len(recs[0].Agents) != 2 {
					t.Errorf("decision record %+v", recs[0])
				}
			}
			if tc.tr.durable != tc.durable {
				t.Errorf("%d durable writes, want %d", tc.tr.durable, tc.durable)
			}
		})
	}
}

// TestOutcomeAfterPanic: a handler that panics (an aborted stream) still
// leaves the outcome of the request it was given.
func TestOutcomeAfterPanic(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tr := &trail{}
	g := *f.gw
	g.Audit = tr
	r := request("GET", "/api/x", f.mint(t, nil))
	a := new(Admission)
	g.Admit(f.rt, Request{HTTP: r, ClientIP: netip.MustParseAddr("127.0.0.1")}, a)
	func() {
		defer func() {
			if p := recover(); p != http.ErrAbortHandler {
				t.Errorf("panic %v not passed on", p)
			}
		}()
		_ = g.Forward(httptest.NewRecorder(), r, a, func(http.ResponseWriter, *http.Request) error { panic(http.ErrAbortHandler) }, nil)
	}()
	recs := tr.records()
	if len(recs) != 2 || recs[1].Kind != audit.KindOutcome || recs[1].Status != 500 {
		t.Fatalf("records %+v", recs)
	}
}

// TestBodyLimit: a streamed body over the token's max_body is cut before
// the upstream has it all, and the client gets 413, not the proxy's 502.
func TestBodyLimit(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tr := &trail{}
	g := *f.gw
	g.Audit = tr
	tok := f.mint(t, func(c *token.Claims) {
		c.Scope = "repo:write"
		c.Kavach.Constraints = &policy.Constraints{MaxBody: 10}
	})
	r := httptest.NewRequest("POST", "/api/write", io.NopCloser(strings.NewReader(strings.Repeat("a", 20))))
	r.ContentLength = -1
	r.Header.Set("Authorization", "Bearer "+tok)
	u := &upstream{}
	_, a, err := serve(&g, f.rt, r, u)
	var se *StatusError
	if !a.Allowed() || !errors.As(err, &se) || se.Status != 413 {
		t.Fatalf("allowed %v err %v", a.Allowed(), err)
	}
	if len(u.body) > 10 {
		t.Errorf("upstream read %d bytes past the limit", len(u.body))
	}
	if recs := tr.records(); len(recs) != 2 || recs[1].Status != 413 {
		t.Errorf("outcome %+v", recs)
	}
}

// TestMCPDenialRecord: an MCP denial is recorded with what was refused.
func TestMCPDenialRecord(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tr := &trail{}
	g := *f.gw
	g.Audit = tr
	rt := mcpRoute(t, mcp.NewMemorySessions(0, 0))
	w, _, _ := serve(&g, rt, mcpPost(f.mcpToken(t, "mcp:call repo:read"), rpc(7, "tools/call", `{"name":"write_file","arguments":{"path":"/etc/passwd"}}`)), &upstream{})
	if w.Code != 403 || !strings.Contains(w.Header().Get("WWW-Authenticate"), `error="insufficient_scope", scope="mcp:call repo:write"`) {
		t.Fatalf("%d %q", w.Code, w.Header().Get("WWW-Authenticate"))
	}
	recs := tr.records()
	if len(recs) != 1 || recs[0].Decision != audit.Deny || recs[0].MCPMethod != "tools/call" || recs[0].Tool != "write_file" || recs[0].Status != 403 {
		t.Fatalf("records %+v", recs)
	}
}

// TestSessions: a session is bound to the chain whose initialize created
// it; an id the gateway does not know is 404 (the client starts a new
// session), never forwarded; another chain's is 403.
func TestSessions(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	rt := mcpRoute(t, mcp.NewMemorySessions(0, 0))
	mine := f.mcpToken(t, "mcp:call repo:read")
	other := f.mint(t, func(c *token.Claims) {
		c.Audience, c.Scope = token.Audience{mcpResource}, "mcp:call repo:read"
		c.Actor, c.Kavach.Agents, c.Kavach.Chain = token.ActorFor([]string{"agt_other"}), []string{"agt_other"}, []string{"dlg_other"}
	})
	init := mcpPost(mine, rpc(1, "initialize", `{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"0"}}`))
	u := &upstream{reply: `{"jsonrpc":"2.0","id":1,"result":{}}`, ctype: "application/json", setHdr: map[string]string{"Mcp-Session-Id": "sess-1"}}
	if w, a, err := serve(f.gw, rt, init, u); err != nil || !a.Allowed() || w.Code != 200 {
		t.Fatalf("initialize: %v %s %d", err, a.Detail, w.Code)
	}
	for _, tc := range []struct {
		name    string
		tok     string
		sid     string
		status  int
		rpcCode int
	}{
		{"own session", mine, "sess-1", 0, 0},
		{"another chain's session", other, "sess-1", 403, rpcForbidden},
		{"unknown session", mine, "sess-unknown", 404, rpcSessionNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := mcpPost(tc.tok, rpc(5, "tools/call", `{"name":"read_file"}`))
			r.Header.Set("Mcp-Session-Id", tc.sid)
			u := &upstream{reply: "{}", ctype: "application/json"}
			w, a, _ := serve(f.gw, rt, r, u)
			if a.Status != tc.status || (u.calls == 1) != (tc.status == 0) {
				t.Fatalf("status %d forwarded %v", a.Status, u.calls == 1)
			}
			if tc.rpcCode != 0 {
				if id, code := rpcError(t, w.Body.String()); code != tc.rpcCode || id != float64(5) {
					t.Errorf("JSON-RPC %v %d", id, code)
				}
			}
		})
	}
}

// TestStreamCutOnRevocation: a response stream (SSE, e.g. an MCP GET
// stream) opened with a token ends at its next event once the token, its
// chain or its user is revoked; the events before still arrive, and a
// plain response is not watched.
func TestStreamCutOnRevocation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		revoke func(f *fixture, tok *token.Token)
	}{
		{"token id", func(f *fixture, tok *token.Token) {
			_ = f.rev.Revoke(context.Background(), revocation.Entry{ID: tok.ID, Until: time.Now().Add(time.Hour)})
		}},
		{"chain", func(f *fixture, tok *token.Token) {
			_ = f.rev.Revoke(context.Background(), revocation.Entry{ID: tok.Kavach.Chain[0], Until: time.Now().Add(time.Hour)})
		}},
		{"user cutoff", func(f *fixture, tok *token.Token) {
			_ = f.rev.Revoke(context.Background(), revocation.Entry{ID: tok.Subject, Cutoff: revocation.CutoffSubject,
				Before: time.Now().Add(time.Second).Truncate(time.Second), Until: time.Now().Add(time.Hour)})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			raw := f.mint(t, nil)
			r := request("GET", "/api/x", raw)
			a := new(Admission)
			f.gw.Admit(f.rt, Request{HTTP: r, ClientIP: netip.MustParseAddr("127.0.0.1")}, a)
			if !a.Allowed() {
				t.Fatalf("not admitted: %d", a.Status)
			}
			w := httptest.NewRecorder()
			var second error
			err := f.gw.Forward(w, r, a, func(w http.ResponseWriter, _ *http.Request) error {
				w.Header().Set("Content-Type", "text/event-stream")
				w.WriteHeader(http.StatusOK)
				if _, err := io.WriteString(w, "data: one\n\n"); err != nil {
					return err
				}
				tc.revoke(f, a.Token)
				_, second = io.WriteString(w, "data: two\n\n")
				return second
			}, nil)
			if second == nil || err == nil || strings.Contains(w.Body.String(), "two") || !strings.Contains(w.Body.String(), "one") {
				t.Fatalf("after revocation: write error %v, Forward %v, body %q", second, err, w.Body.String())
			}
		})
	}
	// A plain (non-stream) response is not watched.
	f := newFixture(t)
	r := request("GET", "/api/x", f.mint(t, nil))
	a := new(Admission)
	f.gw.Admit(f.rt, Request{HTTP: r, ClientIP: netip.MustParseAddr("127.0.0.1")}, a)
	w := httptest.NewRecorder()
	err := f.gw.Forward(w, r, a, func(w http.ResponseWriter, _ *http.Request) error {
		_, _ = io.WriteString(w, "part one ")
		_ = f.rev.Revoke(context.Background(), revocation.Entry{ID: a.Token.ID, Until: time.Now().Add(time.Hour)})
		_, err := io.WriteString(w, "part two")
		return err
	}, nil)
	if err != nil || w.Body.String() != "part one part two" {
		t.Fatalf("plain response: %v %q", err, w.Body.String())
	}
}
