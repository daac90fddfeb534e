package gateway

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/kavachgate/kavach/policy"
	"github.com/kavachgate/kavach/revocation"
	"github.com/kavachgate/kavach/token"
)

const testIssuer = "https://issuer.test"
const testResource = "https://api.example/api"

type fixture struct {
	key *token.SigningKey
	gw  *Gateway
	rev *revocation.Memory
	rt  *Route
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	key, err := token.NewSigningKey(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	set, _ := token.PublicSet(key)
	ring, err := token.NewKeyRing(token.Issuer{ID: testIssuer, Keys: set})
	if err != nil {
		t.Fatal(err)
	}
	rev := revocation.NewMemory(revocation.MemoryOptions{})
	rt := &Route{Resource: testResource, Rules: []Rule{
		{Method: "GET", Path: "/api/*", Scopes: []string{"repo:read"}},
		{Method: "POST", Path: "/api/write", Scopes: []string{"repo:write"}},
	}}
	if err := rt.Compile(); err != nil {
		t.Fatal(err)
	}
	return &fixture{key: key, rev: rev, rt: rt, gw: &Gateway{
		Verifier: token.NewVerifier(ring, token.VerifierOptions{}),
		Cache:    NewCache(0),
		Revoked:  rev,
	}}
}

func (f *fixture) mint(t testing.TB, edit func(c *token.Claims)) string {
	t.Helper()
	agents := []string{"agt_parent", "agt_child"}
	n := time.Now()
	c := &token.Claims{
		Issuer: testIssuer, Subject: "usr_alice", Actor: token.ActorFor(agents), ClientID: "agt_child",
		Audience: token.Audience{testResource}, Scope: "repo:read", ID: token.NewID(token.PrefixToken),
		IssuedAt: n.Unix(), Expiry: n.Add(5 * time.Minute).Unix(),
		Kavach: &token.Kavach{Version: 1, Chain: []string{"dlg_root", "dlg_child"}, Agents: agents},
	}
	if edit != nil {
		edit(c)
	}
	s, err := token.Mint(f.key, c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func request(method, target, tok string) *http.Request {
	r := httptest.NewRequest(method, target, nil)
	if tok != "" {
		r.Header.Set("Authorization", "Bearer "+tok)
	}
	return r
}

func (f *fixture) decide(r *http.Request) Decision {
	return f.gw.Decide(f.rt, Request{HTTP: r, ClientIP: netip.MustParseAddr("127.0.0.1")})
}

func TestDecide(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	good := f.mint(t, nil)
	withCnst := func(c policy.Constraints) string {
		return f.mint(t, func(cl *token.Claims) { cl.Kavach.Constraints = &c })
	}
	cidr := func(s string) policy.PrefixList { return policy.PrefixList{netip.MustParsePrefix(s)} }
	cases := []struct {
		name    string
		req     *http.Request
		outcome Outcome
		status  int
		code    string
	}{
		{"good", request("GET", testResource+"/x", good), Allowed, 0, ""},
		{"missing_token", request("GET", "/api/x", ""), MissingToken, 401, ""},
		{"other_scheme", func() *http.Request {
			r := request("GET", "/api/x", "")
			r.Header.Set("Authorization", "Basic Zm9vOmJhcg==")
			return r
		}(), MissingToken, 401, ""},
		{"empty_bearer", func() *http.Request {
			r := request("GET", "/api/x", "")
			r.Header.Set("Authorization", "Bearer ")
			return r
		}(), InvalidToken, 401, "invalid_token"},
		{"two_authorization_headers", func() *http.Request {
			r := request("GET", "/api/x", good)
			r.Header.Add("Authorization", "Bearer "+good)
			return r
		}(), BadRequest, 400, "invalid_request"},
		{"garbage_token", request("GET", "/api/x", "abc.def.ghi"), InvalidToken, 401, "invalid_token"},
		{"expired", request("GET", "/api/x", f.mint(t, func(c *token.Claims) {
			c.IssuedAt, c.Expiry = time.Now().Add(-time.Hour).Unix(), time.Now().Add(-time.Minute).Unix()
		})), InvalidToken, 401, "invalid_token"},
		{"wrong_audience", request("GET", "/api/x", f.mint(t, func(c *token.Claims) { c.Audience = token.Audience{"https://other.example/api"} })), WrongAudience, 401, "invalid_token"},
		{"insufficient_scope", request("GET", "/api/x", f.mint(t, func(c *token.Claims) { c.Scope = "repo:write" })), InsufficientScope, 403, "insufficient_scope"},
		{"wildcard_scope_covers", request("GET", "/api/x", f.mint(t, func(c *token.Claims) { c.Scope = "repo:*" })), Allowed, 0, ""},
		{"segment_count_differs", request("GET", "/api/x", f.mint(t, func(c *token.Claims) { c.Scope = "repo" })), InsufficientScope, 403, "insufficient_scope"},
		{"no_rule_for_method", request("DELETE", "/api/x", good), NoRule, 403, ""},
		{"no_rule_for_path", request("GET", "/other", good), NoRule, 403, ""},
		{"options_without_preflight_header", request("OPTIONS", "/api/x", ""), MissingToken, 401, ""},
		{"method_constraint", request("GET", "/api/x", withCnst(policy.Constraints{Methods: policy.StringList{"POST"}})), ConstraintDenied, 403, ""},
		{"host_constraint", request("GET", "/api/x", withCnst(policy.Constraints{Hosts: policy.StringList{"other.example"}})), ConstraintDenied, 403, ""},
		{"host_constraint_wildcard_ok", request("GET", "/api/x", withCnst(policy.Constraints{Hosts: policy.StringList{"*.example"}})), Allowed, 0, ""},
		{"cidr_constraint", request("GET", "/api/x", withCnst(policy.Constraints{CIDRs: cidr("10.0.0.0/8")})), ConstraintDenied, 403, ""},
		{"cidr_constraint_ok", request("GET", "/api/x", withCnst(policy.Constraints{CIDRs: cidr("127.0.0.0/8")})), Allowed, 0, ""},
		{"path_constraint", request("GET", "/api/x", withCnst(policy.Constraints{Paths: policy.StringList{"/api/y"}})), ConstraintDenied, 403, ""},
		{"body_constraint", func() *http.Request {
			r := httptest.NewRequest("POST", "/api/write", strings.NewReader(strings.Repeat("a", 20)))
			r.Header.Set("Authorization", "Bearer "+f.mint(t, func(c *token.Claims) {
				c.Scope = "repo:write"
				c.Kavach.Constraints = &policy.Constraints{MaxBody: 10}
			}))
			return r
		}(), TooLarge, 413, ""},
		{"encoded_slash", func() *http.Request {
			r := request("GET", "/api/a%2f..%2fb", good)
			return r
		}(), BadPath, 400, ""},
		{"encoded_backslash", request("GET", "/api/a%5Cb", good), BadPath, 400, ""},
		{"dot_segment", func() *http.Request { r := request("GET", "/api/x", good); r.URL.Path = "/api/../admin"; return r }(), BadPath, 400, ""},
		{"single_dot_segment", func() *http.Request { r := request("GET", "/api/x", good); r.URL.Path = "/api/./x"; return r }(), BadPath, 400, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := f.decide(tc.req)
			if d.Outcome != tc.outcome || d.Status != tc.status || d.Error != tc.code {
				t.Fatalf("decision = %s %d %q (%s), want %s %d %q", d.Outcome, d.Status, d.Error, d.Detail, tc.outcome, tc.status, tc.code)
			}
			if d.Status != 0 && d.Reason == "" && d.Outcome != MissingToken {
				t.Errorf("denial without a public reason")
			}
		})
	}
}

func TestDecideEarlyDataWithAddressBoundToken(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := request("GET", "/api/x", f.mint(t, func(c *token.Claims) {
		c.Kavach.Constraints = &policy.Constraints{CIDRs: policy.PrefixList{netip.MustParsePrefix("127.0.0.0/8")}}
	}))
	r.TLS = &tls.ConnectionState{HandshakeComplete: false}
	if d := f.decide(r); d.Status != http.StatusTooEarly {
		t.Fatalf("status %d, want 425", d.Status)
	}
}

func TestDecideRevocation(t *testing.T) {
	t.Parallel()
	until := time.Now().Add(time.Hour)
	for _, tc := range []struct {
		name  string
		entry revocation.Entry
	}{
		{"token_id", revocation.Entry{ID: "tok_fixed", Until: until}},
		{"root_grant", revocation.Entry{ID: "dlg_root", Until: until}},
		{"child_grant", revocation.Entry{ID: "dlg_child", Until: until}},
		{"parent_agent", revocation.Entry{ID: "agt_parent", Until: until}},
		{"current_agent", revocation.Entry{ID: "agt_child", Until: until}},
		{"user_cutoff", revocation.Entry{ID: "usr_alice", Cutoff: revocation.CutoffSubject, Before: time.Now().Add(time.Minute), Until: until}},
		{"client_cutoff", revocation.Entry{ID: "agt_child", Cutoff: revocation.CutoffClient, Before: time.Now().Add(time.Minute), Until: until}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			tok := f.mint(t, func(c *token.Claims) { c.ID = "tok_fixed" })
			if d := f.decide(request("GET", "/api/x", tok)); !d.Allowed() {
				t.Fatalf("before revocation: %s %s", d.Outcome, d.Detail)
			}
			if err := f.rev.Revoke(context.Background(), tc.entry); err != nil {
				t.Fatal(err)
			}
			// The token is cached now: revocation is still checked.
			d := f.decide(request("GET", "/api/x", tok))
			if d.Outcome != Revoked || d.Status != 401 || !d.Cached {
				t.Fatalf("after revocation: %s %d cached=%v", d.Outcome, d.Status, d.Cached)
			}
		})
	}
	t.Run("cutoff_spares_later_tokens", func(t *testing.T) {
		f := newFixture(t)
		_ = f.rev.Revoke(context.Background(), revocation.Entry{ID: "usr_alice", Cutoff: revocation.CutoffSubject, Before: time.Now().Add(-time.Hour), Until: until})
		if d := f.decide(request("GET", "/api/x", f.mint(t, nil))); !d.Allowed() {
			t.Fatalf("token issued after the cutoff denied: %s", d.Detail)
		}
	})
}

type staleSet struct{ *revocation.Memory }

func (staleSet) Fresh() bool { return false }

func TestDecideStaleRevocationFailsClosed(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		retryAfter time.Duration
		want       string
	}{
		{"default", 0, "5"},
		{"configured", 2 * time.Second, "2"},
		{"rounded_up", 1500 * time.Millisecond, "2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			f.gw.Revoked = staleSet{f.rev}
			f.gw.RetryAfter = tc.retryAfter
			var a Admission
			f.gw.Admit(f.rt, Request{HTTP: request("GET", "/api/x", f.mint(t, nil)), ClientIP: netip.MustParseAddr("127.0.0.1")}, &a)
			w := httptest.NewRecorder()
			a.Deny(w, f.rt)
			if a.Status != http.StatusServiceUnavailable || a.Allowed() {
				t.Fatalf("status %d, want 503", a.Status)
			}
			if got := w.Header().Get("Retry-After"); got != tc.want {
				t.Fatalf("Retry-After %q, want %q", got, tc.want)
			}
		})
	}
}

func TestCacheOnlyHoldsVerifiedTokens(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for i := range 1000 {
		f.decide(request("GET", "/api/x", "eyJhbGciOiJFZERTQSJ9.e30."+strings.Repeat("A", 40+i%10)))
	}
	if n := f.gw.Cache.Len(); n != 0 {
		t.Fatalf("cache holds %d entries after invalid tokens", n)
	}
	good := f.mint(t, nil)
	if d := f.decide(request("GET", "/api/x", good)); d.Cached || !d.Allowed() {
		t.Fatalf("first use: cached=%v %s", d.Cached, d.Outcome)
	}
	if d := f.decide(request("GET", "/api/x", good)); !d.Cached {
		t.Fatal("second use not served from the cache")
	}
	f.gw.Cache.Purge()
	if d := f.decide(request("GET", "/api/x", good)); d.Cached {
		t.Fatal("served from the cache after a purge")
	}
}

func TestCacheBoundedAndExpiry(t *testing.T) {
	t.Parallel()
	c := NewCache(32)
	tok := &Verified{Token: &token.Token{Claims: token.Claims{Expiry: 1000}}}
	for i := range 500 {
		c.Put(Key(strings.Repeat("x", i)), tok, c.Gen())
	}
	if n := c.Len(); n > 32 {
		t.Fatalf("cache grew to %d entries, bound 32", n)
	}
	k := Key("y")
	c.Put(k, tok, c.Gen())
	if c.Get(k, 1000) == nil {
		t.Fatal("entry missing within leeway")
	}
	if c.Get(k, 1000+int64(token.Leeway.Seconds())) != nil {
		t.Fatal("expired entry served")
	}
	old := c.Gen()
	c.Purge()
	c.Put(k, tok, old)
	if c.Get(k, 0) != nil {
		t.Fatal("a verification from before the purge repopulated the cache")
	}
}

func TestChallenges(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	want := `resource_metadata="https://api.example/.well-known/oauth-protected-resource/api"`
	missing := f.decide(request("GET", "/api/x", ""))
	// RFC 6750 §3.1: no error code; MCP 2025-11-25: the scope a new token
	// should ask for, here every scope the route names.
	if got := missing.Challenge(f.rt); got != `Bearer scope="repo:read repo:write", `+want {
		t.Errorf("missing token challenge = %q", got)
	}
	scope := f.decide(request("GET", "/api/x", f.mint(t, func(c *token.Claims) { c.Scope = "other:x" })))
	if got := scope.Challenge(f.rt); !strings.Contains(got, `error="insufficient_scope"`) || !strings.Contains(got, `scope="repo:read"`) || !strings.Contains(got, want) {
		t.Errorf("insufficient scope challenge = %q", got)
	}
	expired := f.decide(request("GET", "/api/x", f.mint(t, func(c *token.Claims) {
		c.IssuedAt, c.Expiry = time.Now().Add(-time.Hour).Unix(), time.Now().Add(-time.Minute).Unix()
	})))
	if got := expired.Challenge(f.rt); !strings.Contains(got, `error="invalid_token"`) || !strings.Contains(got, `error_description="token expired"`) {
		t.Errorf("expired challenge = %q", got)
	}
}

func TestApplyStripsTokenAndSpoofedHeaders(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tok := f.mint(t, nil)
	r := request("GET", "/api/x", tok)
	for _, h := range []string{"Kavach-Actor", "Kavach_Actor", "KAVACH-SUBJECT", "kavach_chain", "Kavach-Anything"} {
		r.Header[h] = []string{"evil"}
	}
	r.Header.Set("X-Other", "kept")
	d := f.decide(r)
	rewrite(r.Header, d.Identity)
	if r.Header.Get("Authorization") != "" {
		t.Error("Authorization forwarded")
	}
	for name, v := range r.Header {
		if v[0] == "evil" {
			t.Errorf("spoofed header %s survived", name)
		}
	}
	want := map[string]string{"Kavach-Subject": "usr_alice", "Kavach-Actor": "agt_child", "Kavach-Chain": "agt_parent,agt_child", "Kavach-Scope": "repo:read", "Kavach-Issuer": testIssuer, "X-Other": "kept"}
	for k, v := range want {
		if got := r.Header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
}

func TestRouteCompileRejects(t *testing.T) {
	t.Parallel()
	for name, rt := range map[string]Route{
		"resource_not_url":       {Resource: "not a url"},
		"resource_with_query":    {Resource: "https://a.example/api?x=1"},
		"resource_with_fragment": {Resource: "https://a.example/api#f"},
		"wildcard_route_scope":   {Resource: "https://a.example/api", Scopes: []string{"repo:*"}},
		"wildcard_rule_scope":    {Resource: "https://a.example/api", Rules: []Rule{{Method: "GET", Path: "/x", Scopes: []string{"*"}}}},
		"lowercase_method":       {Resource: "https://a.example/api", Rules: []Rule{{Method: "get", Path: "/x", Scopes: []string{"a:b"}}}},
		"bad_path":               {Resource: "https://a.example/api", Rules: []Rule{{Method: "GET", Path: "x*y", Scopes: []string{"a:b"}}}},
		"rule_without_scope":     {Resource: "https://a.example/api", Rules: []Rule{{Method: "GET", Path: "/x"}}},
	} {
		t.Run(name, func(t *testing.T) {
			if err := rt.Compile(); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

// BenchmarkDecideCached is the cache-hit decision (budget: ≤ 5 µs, ≤ 8
// allocs; header rewriting and audit are measured separately).
func BenchmarkDecideCached(b *testing.B) {
	f := newFixture(b)
	r := request("GET", "/api/x", f.mint(b, nil))
	req := Request{HTTP: r, ClientIP: netip.MustParseAddr("127.0.0.1")}
	if d := f.gw.Decide(f.rt, req); !d.Allowed() {
		b.Fatal(d.Detail)
	}
	b.ReportAllocs()
	for b.Loop() {
		if d := f.gw.Decide(f.rt, req); !d.Cached {
			b.Fatal("not cached")
		}
	}
}

// BenchmarkRewrite is the upstream header rewriting of an allowed request.
func BenchmarkRewrite(b *testing.B) {
	f := newFixture(b)
	tok := f.mint(b, nil)
	d := f.decide(request("GET", "/api/x", tok))
	r := request("GET", "/api/x", tok)
	b.ReportAllocs()
	for b.Loop() {
		r.Header.Set("Authorization", "Bearer "+tok)
		rewrite(r.Header, d.Identity)
	}
}
