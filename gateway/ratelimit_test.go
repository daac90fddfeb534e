package gateway

import (
	"context"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/kavachgate/kavach/audit"
	"github.com/kavachgate/kavach/mcp"
	"github.com/kavachgate/kavach/policy"
	"github.com/kavachgate/kavach/ratelimit"
	"github.com/kavachgate/kavach/revocation"
	"github.com/kavachgate/kavach/token"
)

// limitedRoute is the fixture's MCP route with rate lines.
func limitedRoute(t testing.TB, fail string, lines ...RateLimitConfig) *Route {
	t.Helper()
	rt, err := NewRoute(&RouteConfig{Resource: mcpResource, Scopes: []string{"mcp:call"}, RateLimits: lines, RateLimitFail: fail,
		MCP: &MCPConfig{Tools: []mcp.Rule{{Pattern: "read_file", Scopes: []string{"repo:read"}}, {Pattern: "write_file", Scopes: []string{"repo:write"}}}}},
		mcp.NewMemorySessions(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

func readCall(tok string) *http.Request {
	return mcpPost(tok, rpc(3, "tools/call", `{"name":"read_file","arguments":{"path":"/repo/a"}}`))
}

// tokenFor mints an MCP token of agent (child of agt_root) for user.
func (f *fixture) tokenFor(t testing.TB, user, agent, scope string) string {
	return f.mint(t, func(c *token.Claims) {
		c.Audience, c.Scope, c.Subject, c.ClientID = token.Audience{mcpResource}, scope, user, agent
		c.Kavach.Agents = []string{"agt_root", agent}
		c.Actor = token.ActorFor(c.Kavach.Agents)
	})
}

// TestRateLimit: `rate 3/m per agent`: three calls pass, the fourth is 429
// with Retry-After, the draft's RateLimit fields and a JSON-RPC error,
// and never reaches the upstream; another agent has its own bucket.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tr := &trail{}
	g := *f.gw
	g.Audit, g.Limiter = tr, ratelimit.NewMemory(ratelimit.MemoryOptions{})
	rt := limitedRoute(t, "", RateLimitConfig{Rate: "3/m", Per: "agent"})
	a1 := f.tokenFor(t, "usr_alice", "agt_a", "mcp:call repo:read")
	u := &upstream{reply: `{}`}
	for i := range 3 {
		if w, _, _ := serve(&g, rt, readCall(a1), u); w.Code != 200 {
			t.Fatalf("call %d: %d", i+1, w.Code)
		}
	}
	w, a, _ := serve(&g, rt, readCall(a1), u)
	if w.Code != http.StatusTooManyRequests || u.calls != 3 {
		t.Fatalf("fourth: %d, upstream saw %d calls", w.Code, u.calls)
	}
	h := w.Header()
	if h.Get("Retry-After") != "20" || h.Get("RateLimit-Policy") != `"agent";q=3;w=60` || h.Get("RateLimit") != `"agent";r=0;t=60` {
		t.Fatalf("headers: Retry-After %q, RateLimit-Policy %q, RateLimit %q", h.Get("Retry-After"), h.Get("RateLimit-Policy"), h.Get("RateLimit"))
	}
	if id, code := rpcError(t, w.Body.String()); code != rpcRateLimited || id != float64(3) {
		t.Fatalf("JSON-RPC error id %v code %d", id, code)
	}
	if a.Outcome != RateLimited || !strings.Contains(h.Get("WWW-Authenticate"), "resource_metadata=") {
		t.Fatalf("outcome %s, challenge %q", a.Outcome, h.Get("WWW-Authenticate"))
	}
	a2 := f.tokenFor(t, "usr_alice", "agt_b", "mcp:call repo:read")
	if w, _, _ := serve(&g, rt, readCall(a2), u); w.Code != 200 {
		t.Fatalf("another agent: %d", w.Code)
	}
}

// TestRateLimitCountsOnlyAllowed: denials spend no budget, and a token
// that cannot pass authentication never reaches the buckets.
func TestRateLimitCountsOnlyAllowed(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	g := *f.gw
	g.Limiter = ratelimit.NewMemory(ratelimit.MemoryOptions{})
	rt := limitedRoute(t, "", RateLimitConfig{Rate: "1/h", Per: "agent"})
	tok := f.tokenFor(t, "usr_alice", "agt_a", "mcp:call repo:read")
	u := &upstream{reply: `{}`}
	for range 5 {
		w, _, _ := serve(&g, rt, mcpPost(tok, rpc(1, "tools/call", `{"name":"write_file","arguments":{}}`)), u)
		if w.Code != 403 {
			t.Fatalf("write_file: %d", w.Code)
		}
	}
	if w, _, _ := serve(&g, rt, readCall(tok), u); w.Code != 200 {
		t.Fatalf("first allowed call after five denials: %d", w.Code)
	}
}

// TestRateLimitPrincipals: per root counts a parent and its children
// together; per user every agent of the user.
func TestRateLimitPrincipals(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, tc := range []struct {
		per             string
		other           string // token of another agent under the same root, same user
		otherUser       string // token of another user's agent (other root too)
		sharedWithOther bool
	}{
		{per: "agent", sharedWithOther: false},
		{per: "root", sharedWithOther: true},
		{per: "user", sharedWithOther: true},
	} {
		g := *f.gw
		g.Limiter = ratelimit.NewMemory(ratelimit.MemoryOptions{})
		rt := limitedRoute(t, "", RateLimitConfig{Rate: "1/h", Per: tc.per})
		u := &upstream{reply: `{}`}
		serve(&g, rt, readCall(f.tokenFor(t, "usr_alice", "agt_a", "mcp:call repo:read")), u)
		w, _, _ := serve(&g, rt, readCall(f.tokenFor(t, "usr_alice", "agt_b", "mcp:call repo:read")), u)
		if got := w.Code == 429; got != tc.sharedWithOther {
			t.Errorf("per %s: a sibling agent got %d", tc.per, w.Code)
		}
		bob := f.mint(t, func(c *token.Claims) {
			c.Audience, c.Scope, c.Subject = token.Audience{mcpResource}, "mcp:call repo:read", "usr_bob"
			c.Kavach.Agents, c.ClientID = []string{"agt_bobroot", "agt_c"}, "agt_c"
			c.Actor = token.ActorFor(c.Kavach.Agents)
		})
		if w, _, _ := serve(&g, rt, readCall(bob), u); w.Code != 200 {
			t.Errorf("per %s: another user's agent got %d", tc.per, w.Code)
		}
	}
}

// TestRateLimitTrail: the first refusal after an allowed request is a
// decision record naming the agent; the flood after it is counted in the
// summary, so the trail grows by at most one record per allowed request.
func TestRateLimitTrail(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tr := &trail{}
	g := *f.gw
	g.Audit, g.Limiter = tr, ratelimit.NewMemory(ratelimit.MemoryOptions{})
	rt := limitedRoute(t, "", RateLimitConfig{Rate: "1/h", Per: "agent"})
	tok := f.tokenFor(t, "usr_alice", "agt_a", "mcp:call repo:read")
	for range 100 {
		serve(&g, rt, readCall(tok), &upstream{reply: `{}`})
	}
	var denies []audit.Record
	for _, r := range tr.records() {
		if r.Decision == audit.Deny {
			denies = append(denies, r)
		}
	}
	if len(denies) != 1 || denies[0].Actor != "agt_a" || denies[0].Status != 429 || !strings.HasPrefix(denies[0].Reason, "rate_limited: 1/h per agent") {
		t.Fatalf("deny records: %+v", denies)
	}
	if n := tr.junk["rate_limited: 1/h per agent burst 1"]; n != 98 {
		t.Fatalf("summary counted %d refusals, want 98 (%v)", n, tr.junk)
	}
}

// failingStore never answers (Redis down).
type failingStore struct{ fresh bool }

func (failingStore) Take(context.Context, []ratelimit.Check, []ratelimit.Result) error {
	return ratelimit.ErrUnavailable
}
func (s failingStore) Fresh() bool { return s.fresh }

// TestRateLimitStoreDown: closed by default (503, Retry-After, not
// forwarded); open forwards only while the store is fresh.
func TestRateLimitStoreDown(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tok := f.tokenFor(t, "usr_alice", "agt_a", "mcp:call repo:read")
	line := RateLimitConfig{Rate: "5/m", Per: "agent"}
	for _, tc := range []struct {
		fail  string
		fresh bool
		want  int
	}{
		{"", true, 503},
		{"closed", true, 503},
		{"open", true, 200},
		{"open", false, 503},
	} {
		g := *f.gw
		g.Limiter = failingStore{fresh: tc.fresh}
		u := &upstream{reply: `{}`}
		w, _, _ := serve(&g, limitedRoute(t, tc.fail, line), readCall(tok), u)
		if w.Code != tc.want || (tc.want == 503 && (u.calls != 0 || w.Header().Get("Retry-After") == "")) {
			t.Errorf("rate_limit_fail %q, fresh %v: %d (upstream %d calls, Retry-After %q), want %d", tc.fail, tc.fresh, w.Code, u.calls, w.Header().Get("Retry-After"), tc.want)
		}
	}
	g := *f.gw // no store at all: closed
	if w, _, _ := serve(&g, limitedRoute(t, "open", line), readCall(tok), &upstream{}); w.Code != 503 {
		t.Errorf("no store: %d, want 503", w.Code)
	}
}

func TestRateLimitConfigRefused(t *testing.T) {
	t.Parallel()
	for name, cfg := range map[string]RouteConfig{
		"bad per":   {RateLimits: []RateLimitConfig{{Rate: "5/m", Per: "client"}}},
		"bad rate":  {RateLimits: []RateLimitConfig{{Rate: "5/d", Per: "agent"}}},
		"twice":     {RateLimits: []RateLimitConfig{{Rate: "5/m", Per: "agent"}, {Rate: "5/m", Per: "agent"}}},
		"bad burst": {RateLimits: []RateLimitConfig{{Rate: "5/m", Per: "agent", Burst: -1}}},
		"bad fail":  {RateLimitFail: "maybe"},
	} {
		cfg.Resource = mcpResource
		if _, err := NewRoute(&cfg, mcp.NewMemorySessions(0, 0)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	rt, err := NewRoute(&RouteConfig{Resource: mcpResource, RateLimits: []RateLimitConfig{{Rate: "5/m", Per: "agent"}, {Rate: "100/h", Per: "agent"}, {Rate: "1/s", Per: "user"}}}, nil)
	if err != nil || rt.Limits[0].Name != "agent" || rt.Limits[1].Name != "agent-2" || rt.Limits[2].Name != "user" {
		t.Fatalf("names: %v %v", rt, err)
	}
}

// reportOnlyRoute is the MCP route with report_only.
func reportOnlyRoute(t testing.TB, lines ...RateLimitConfig) *Route {
	rt := limitedRoute(t, "", lines...)
	rt.ReportOnly = true
	return rt
}

// TestReportOnlyForwardsPolicyDenials: a call the rules deny is forwarded,
// its decision record says deny, enforced false, with the reason, and an
// outcome follows; an allowed call is recorded as usual.
func TestReportOnlyForwardsPolicyDenials(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tr := &trail{}
	g := *f.gw
	g.Audit = tr
	rt := reportOnlyRoute(t)
	tok := f.tokenFor(t, "usr_alice", "agt_a", "mcp:call repo:read")
	u := &upstream{reply: `{}`}
	w, a, _ := serve(&g, rt, mcpPost(tok, rpc(4, "tools/call", `{"name":"write_file","arguments":{"path":"/x"}}`)), u)
	if w.Code != 200 || u.calls != 1 || a.WouldDeny != InsufficientScope {
		t.Fatalf("would-be denial: %d, upstream %d calls, would deny %q", w.Code, u.calls, a.WouldDeny)
	}
	if u.header.Get("Authorization") != "" || u.header.Get(HeaderActor) != "agt_a" {
		t.Fatalf("forwarded without the usual rewrite: %v", u.header)
	}
	recs := tr.records()
	if len(recs) != 2 {
		t.Fatalf("records: %+v", recs)
	}
	d, o := recs[0], recs[1]
	if d.Decision != audit.Deny || !d.Unenforced || d.Reason != "insufficient_scope: repo:write" || d.Tool != "write_file" || d.Status != 403 {
		t.Fatalf("decision record %+v", d)
	}
	if o.Kind != audit.KindOutcome || o.RequestID != d.RequestID || o.Status != 200 {
		t.Fatalf("outcome record %+v", o)
	}
	serve(&g, rt, readCall(tok), u)
	if r := tr.records()[2]; r.Decision != audit.Allow || r.Unenforced {
		t.Fatalf("allowed call on a report-only route: %+v", r)
	}

	// An argument rule's denial is policy too: forwarded, recorded.
	rt.MCP.Args = policy.Args{"read_file": policy.ToolArgs{"path": policy.ArgRule{Paths: policy.StringList{"/repo/*"}}}}
	w, a, _ = serve(&g, rt, mcpPost(tok, rpc(5, "tools/call", `{"name":"read_file","arguments":{"path":"/etc/passwd"}}`)), u)
	if w.Code != 200 || u.calls != 3 || a.WouldDeny != ArgumentDenied {
		t.Fatalf("would-be argument denial: %d, upstream %d calls, would deny %q", w.Code, u.calls, a.WouldDeny)
	}
	if r := tr.records()[4]; r.Decision != audit.Deny || !r.Unenforced || !strings.Contains(r.Reason, `argument "path" is outside /repo/*`) {
		t.Fatalf("argument denial on a report-only route: %+v", r)
	}
}

// TestReportOnlyStillRefuses: report-only never forwards a request whose
// token is missing, forged, expired, revoked or for another resource, nor
// a malformed one, nor another chain's session, nor when revocation
// state is stale.
func TestReportOnlyStillRefuses(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	rt := reportOnlyRoute(t)
	good := f.tokenFor(t, "usr_alice", "agt_a", "mcp:call repo:read")
	forged := good[:len(good)-4] + "AAAA"
	if forged == good {
		forged = good[:len(good)-4] + "BBBB"
	}
	expired := f.mint(t, func(c *token.Claims) {
		c.Audience, c.Scope = token.Audience{mcpResource}, "mcp:call repo:read"
		c.IssuedAt, c.Expiry = time.Now().Add(-time.Hour).Unix(), time.Now().Add(-50*time.Minute).Unix()
	})
	otherAud := f.mint(t, nil) // for testResource
	revoked := f.tokenFor(t, "usr_alice", "agt_revoked", "mcp:call repo:read")
	if err := f.rev.Revoke(context.Background(), revocation.Entry{ID: "agt_revoked", Until: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	sessions := rt.MCP.Sessions
	if err := sessions.Bind(context.Background(), "sess-of-bob", "another-chain"); err != nil {
		t.Fatal(err)
	}
	withSession := readCall(good)
	withSession.Header.Set("Mcp-Session-Id", "sess-of-bob")
	cases := map[string]struct {
		req  *http.Request
		want int
	}{
		"no token":      {readCall(""), 401},
		"forged":        {readCall(forged), 401},
		"expired":       {readCall(expired), 401},
		"other aud":     {readCall(otherAud), 401},
		"revoked agent": {readCall(revoked), 401},
		"bad json":      {mcpPost(good, `{"jsonrpc":"2.0",`), 400},
		"dot segment":   {func() *http.Request { r := readCall(good); r.URL.Path = "/mcp/../admin"; return r }(), 400},
		"other chain":   {withSession, 403},
		"foreign origin": {func() *http.Request {
			r := readCall(good)
			r.Header.Set("Origin", "https://evil.example")
			return r
		}(), 403},
	}
	for name, tc := range cases {
		g := *f.gw
		u := &upstream{}
		w, _, _ := serve(&g, rt, tc.req, u)
		if w.Code != tc.want || u.calls != 0 {
			t.Errorf("%s: %d (upstream %d calls), want %d and nothing forwarded", name, w.Code, u.calls, tc.want)
		}
	}
	g := *f.gw
	g.Revoked = staleSet{f.rev}
	if w, _, _ := serve(&g, rt, readCall(good), &upstream{}); w.Code != 503 {
		t.Errorf("stale revocation set: %d, want 503", w.Code)
	}
}

// TestReportOnlyRateLimit: under report_only a limit is counted and
// recorded, not enforced.
func TestReportOnlyRateLimit(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tr := &trail{}
	g := *f.gw
	g.Audit, g.Limiter = tr, ratelimit.NewMemory(ratelimit.MemoryOptions{})
	rt := reportOnlyRoute(t, RateLimitConfig{Rate: "1/h", Per: "agent"})
	tok := f.tokenFor(t, "usr_alice", "agt_a", "mcp:call repo:read")
	u := &upstream{reply: `{}`}
	for range 3 {
		if w, _, _ := serve(&g, rt, readCall(tok), u); w.Code != 200 {
			t.Fatalf("report-only limit enforced: %d", w.Code)
		}
	}
	var unenforced int
	for _, r := range tr.records() {
		if r.Unenforced && strings.HasPrefix(r.Reason, "rate_limited:") && r.Status == 429 {
			unenforced++
		}
	}
	if unenforced != 2 || u.calls != 3 {
		t.Fatalf("%d unenforced rate denials recorded, %d forwarded; want 2 and 3", unenforced, u.calls)
	}
	g.Limiter = failingStore{}
	if w, _, _ := serve(&g, rt, readCall(tok), u); w.Code != 200 {
		t.Fatalf("report-only, store down: %d", w.Code)
	}
}

// BenchmarkAdmitRateLimit is the admission of a cached-token request on a
// route without a limit and with one it stays under (memory buckets): the
// difference is what a limit costs the request path (budget 1 µs, no
// allocation).
func BenchmarkAdmitRateLimit(b *testing.B) {
	f := newFixture(b)
	tok := f.mint(b, nil)
	for _, lines := range [][]RateLimitConfig{nil, {{Rate: "1000000/s", Per: "agent"}}} {
		name := "none"
		if lines != nil {
			name = "memory"
		}
		b.Run(name, func(b *testing.B) {
			rt, err := NewRoute(&RouteConfig{Resource: testResource, Rules: f.rt.Rules, RateLimits: lines}, nil)
			if err != nil {
				b.Fatal(err)
			}
			g := *f.gw
			g.Limiter = ratelimit.NewMemory(ratelimit.MemoryOptions{})
			r := request("GET", "/api/x", tok)
			req := Request{HTTP: r, ClientIP: netip.MustParseAddr("127.0.0.1")}
			a := new(Admission)
			b.ReportAllocs()
			for b.Loop() {
				if g.Admit(rt, req, a); !a.Allowed() {
					b.Fatal(a.Detail)
				}
			}
		})
	}
}

// TestRateLimitPerTool: `rate 2/m per agent tool write_file` counts only
// write_file calls; other tools pass untouched.
func TestRateLimitPerTool(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	g := *f.gw
	g.Limiter = ratelimit.NewMemory(ratelimit.MemoryOptions{})
	rt := limitedRoute(t, "", RateLimitConfig{Rate: "2/m", Per: "agent", Tool: "write_file"})
	tok := f.tokenFor(t, "usr_alice", "agt_a", "mcp:call repo:read repo:write")
	write := func() int {
		w, _, _ := serve(&g, rt, mcpPost(tok, rpc(1, "tools/call", `{"name":"write_file","arguments":{}}`)), &upstream{reply: `{}`})
		return w.Code
	}
	if a, b, c := write(), write(), write(); a != 200 || b != 200 || c != 429 {
		t.Fatalf("write_file: %d %d %d, want 200 200 429", a, b, c)
	}
	for range 5 {
		if w, _, _ := serve(&g, rt, readCall(tok), &upstream{reply: `{}`}); w.Code != 200 {
			t.Fatalf("read_file under a write_file limit: %d", w.Code)
		}
	}
	if _, err := NewRoute(&RouteConfig{Resource: testResource, RateLimits: []RateLimitConfig{{Rate: "2/m", Per: "agent", Tool: "x"}}}, nil); err == nil {
		t.Fatal("a tool limit on a route that is not MCP accepted")
	}
}

// TestTokenRate: a token's cnst.rate limits its agent on every route,
// also on routes without rate lines, as one bucket across routes.
func TestTokenRate(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	g := *f.gw
	g.Limiter = ratelimit.NewMemory(ratelimit.MemoryOptions{})
	other := "https://api.example/other/mcp"
	tok := f.mint(t, func(c *token.Claims) {
		c.Audience, c.Scope = token.Audience{mcpResource, other}, "mcp:call repo:read"
		c.Kavach.Constraints = &policy.Constraints{Rate: "2/m"}
	})
	rt1 := limitedRoute(t, "")
	rt2, err := NewRoute(&RouteConfig{Resource: other, Scopes: []string{"mcp:call"}, MCP: &MCPConfig{Tools: []mcp.Rule{{Pattern: "*", Scopes: []string{"repo:read"}}}}}, mcp.NewMemorySessions(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	var codes []int
	for _, rt := range []*Route{rt1, rt2, rt1} {
		w, _, _ := serve(&g, rt, readCall(tok), &upstream{reply: `{}`})
		codes = append(codes, w.Code)
		if w.Code == 429 && w.Header().Get("RateLimit-Policy") != `"token";q=2;w=60` {
			t.Fatalf("RateLimit-Policy %q", w.Header().Get("RateLimit-Policy"))
		}
	}
	if codes[0] != 200 || codes[1] != 200 || codes[2] != 429 {
		t.Fatalf("codes %v, want 200 200 429: one bucket across routes", codes)
	}
	// Another agent's token with the same rate has its own bucket.
	tok2 := f.mint(t, func(c *token.Claims) {
		c.Audience, c.Scope = token.Audience{mcpResource}, "mcp:call repo:read"
		c.Kavach.Agents, c.ClientID = []string{"agt_parent", "agt_other"}, "agt_other"
		c.Actor = token.ActorFor(c.Kavach.Agents)
		c.Kavach.Constraints = &policy.Constraints{Rate: "2/m"}
	})
	if w, _, _ := serve(&g, rt1, readCall(tok2), &upstream{reply: `{}`}); w.Code != 200 {
		t.Fatalf("another agent: %d", w.Code)
	}
}
