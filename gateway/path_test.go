package gateway

import (
	"net/http/httptest"
	"net/url"
	"testing"
)

// TestPathProblem: every spelling some common server reads differently
// from the gateway's text comparison is refused; ordinary paths pass.
func TestPathProblem(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		raw    string // as sent
		ok     bool
		params bool // with AllowParams
	}{
		{"/api/x", true, true},
		{"/api/x.json", true, true},
		{"/api/.well-known/x", true, true},
		{"/api//x", true, true},
		{"/api/%E2%82%AC", true, true},
		{"/api/a%20b", true, true},
		{"/api/admin;x/secret", false, true},
		{"/matrix/cars;color=red", false, true},
		{"/api/x/..;/admin/secret", false, false},
		{"/api/.;/admin", false, false},
		{"/api/a.;x/b", false, false},
		{"/api/admin./secret", false, false},
		{"/api/admin%2e/secret", false, false},
		{"/api/admin%20/secret", false, false},
		{"/api/.../x", false, false},
		{"/api/../admin", false, false},
		{"/api/%2e%2e/admin", false, false},
		{"/api/./x", false, false},
		{"/api/%252e%252e/admin/secret", false, false},
		{"/api/%25", false, false},
		{"/api/x%00y", false, false},
		{"/api/x%0ay", false, false},
		{"/api/x%7f", false, false},
		{"/api/x%ffy", false, false},
		{"/api/a%2fb", false, false},
		{"/api/a%5cb", false, false},
		{"/api/a%5Cb", false, false},
		{"/api/a\\b", false, false},
		{"/api/x.", false, false},
	} {
		r := httptest.NewRequest("GET", "http://h.example/", nil)
		u, err := url.ParseRequestURI(tc.raw)
		if err != nil {
			t.Fatalf("%s: %v", tc.raw, err)
		}
		r.URL = u
		if got := PathProblem(r, PathOptions{}); (got == "") != tc.ok {
			t.Errorf("%s: problem %q, want ok=%v", tc.raw, got, tc.ok)
		}
		if got := PathProblem(r, PathOptions{AllowParams: true}); (got == "") != tc.params {
			t.Errorf("%s with path params allowed: problem %q, want ok=%v", tc.raw, got, tc.params)
		}
	}
}

// TestRulesFoldCase: a rule is never narrower than the case-insensitive
// route serving the request (Caddy's path matcher folds case).
func TestRulesFoldCase(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	rt := &Route{Resource: testResource, Rules: []Rule{
		{Method: "GET", Path: "/api/*", Scopes: []string{"repo:read"}},
		{Method: "GET", Path: "/api/admin/*", Scopes: []string{"admin:all"}},
	}}
	if err := rt.Compile(); err != nil {
		t.Fatal(err)
	}
	tok := f.mint(t, nil)
	for _, p := range []string{"/api/admin/users", "/api/ADMIN/users", "/API/Admin/users", "/api/adm%49n/users", "/api//admin/users"} {
		d := f.gw.Decide(rt, Request{HTTP: request("GET", p, tok)})
		if d.Outcome != InsufficientScope {
			t.Errorf("%s: %s (%s), want insufficient_scope", p, d.Outcome, d.Detail)
		}
	}
	if d := f.gw.Decide(rt, Request{HTTP: request("GET", "/API/users", tok)}); !d.Allowed() {
		t.Errorf("/API/users: %s", d.Outcome)
	}
}
