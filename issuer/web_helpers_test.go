package issuer

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/oauth2"

	"github.com/kavachgate/kavach/internal/pgtest"
	"github.com/kavachgate/kavach/issuer/store"
	"github.com/kavachgate/kavach/revocation"
	"github.com/kavachgate/kavach/token"
)

// Test fixtures.
const (
	testResource  = "https://mcp.example.test/mcp"
	otherResource = "https://api.example.test/"
	testPassword  = "correct horse battery"
	adminToken    = "test-admin-token"
	// testRedirect is registered without a port; requests use any port
	// (RFC 8252 §7.3).
	testRedirect = "http://127.0.0.1/callback"
)

// testEnv is an issuer over a real SQLite store, served by httptest.
type testEnv struct {
	t      *testing.T
	srv    *httptest.Server
	s      *Server
	st     store.Store
	user   *store.User
	client *store.Client // a registered public client with testRedirect

	mu     sync.Mutex
	events []Event
}

func newEnv(t *testing.T, opts ...func(*Config)) *testEnv {
	t.Helper()
	return newEnvOn(t, webStore, opts...)
}

// forEachEnv runs f as a subtest per store kind, each with a new
// environment; a test using it covers PostgreSQL in the first pass (it
// need not be listed in envTests).
func forEachEnv(t *testing.T, f func(t *testing.T, e *testEnv), opts ...func(*Config)) {
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) { f(t, newEnvOn(t, kind, opts...)) })
	}
}

// newEnvOn is newEnv on the given store kind ("sqlite" or "postgres").
func newEnvOn(t *testing.T, kind string, opts ...func(*Config)) *testEnv {
	t.Helper()
	ctx := context.Background()
	var st store.Store
	var err error
	if kind == "postgres" {
		st, err = store.OpenPostgres(ctx, pgtest.Start(t))
	} else {
		st, err = store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "kavach.db"))
	}
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(nil)
	env := &testEnv{t: t, srv: srv, st: st}
	cfg := Config{
		Issuer:    "http://" + srv.Listener.Addr().String(),
		Store:     st,
		Revoked:   revocation.NewMemory(revocation.MemoryOptions{}),
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		AdminAuth: func(r *http.Request) bool { return r.Header.Get("Authorization") == "Bearer "+adminToken },
		OnEvent: func(e Event) {
			env.mu.Lock()
			env.events = append(env.events, e)
			env.mu.Unlock()
		},
	}
	for _, o := range opts {
		o(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	env.s = s
	srv.Config.Handler = s.Handler()
	srv.Start()
	t.Cleanup(func() {
		srv.Close()
		s.Close()
		st.Close()
	})

	// bcrypt's minimum cost keeps the tests fast; checkPassword reads the
	// cost from the hash.
	h, err := bcrypt.GenerateFromPassword([]byte(testPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	env.user = &store.User{
		ID: token.NewID(token.PrefixUser), Name: "alice", PasswordHash: string(h),
		Entitlements: map[string][]string{
			testResource:  {"repo:read", "repo:write", "issues:*"},
			otherResource: {"api:read"},
		},
		CreatedAt: now(),
	}
	if err := st.CreateUser(ctx, env.user); err != nil {
		t.Fatal(err)
	}
	env.client = &store.Client{
		ID: token.NewID(token.PrefixClient), Name: "Test <b>App</b>", Kind: store.ClientPublic,
		RedirectURIs: []string{testRedirect}, CreatedAt: now(),
	}
	if err := st.CreateClient(ctx, env.client); err != nil {
		t.Fatal(err)
	}
	return env
}

func (e *testEnv) url(path string) string { return e.srv.URL + path }

func (e *testEnv) eventsOf(kind string) []Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Event
	for _, ev := range e.events {
		if ev.Kind == kind {
			out = append(out, ev)
		}
	}
	return out
}

// setClock moves the issuer's clock by d for the rest of the test.
func setClock(t *testing.T, d time.Duration) {
	t.Helper()
	prev := now
	now = func() time.Time { return time.Now().Add(d) }
	t.Cleanup(func() { now = prev })
}

// browser is a user agent with a cookie jar that does not follow
// redirects, so each hop can be inspected.
type browser struct {
	t *testing.T
	c *http.Client
}

func newBrowser(t *testing.T) *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &browser{t: t, c: &http.Client{
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       30 * time.Second,
	}}
}

// page is a fetched response with its body read.
type page struct {
	status   int
	header   http.Header
	body     string
	location *url.URL
}

func (b *browser) do(req *http.Request) *page {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	p := &page{status: resp.StatusCode, header: resp.Header, body: string(body)}
	if loc := resp.Header.Get("Location"); loc != "" {
		u, err := req.URL.Parse(loc)
		if err != nil {
			b.t.Fatalf("bad Location %q", loc)
		}
		p.location = u
	}
	return p
}

func (b *browser) get(u string) *page {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.do(req)
}

func (b *browser) post(u string, form url.Values) *page {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

var hiddenField = regexp.MustCompile(`<input type="hidden" name="([a-z]+)" value="([^"]*)">`)

// fields returns the hidden fields of the page's form.
func (p *page) fields() url.Values {
	v := url.Values{}
	for _, m := range hiddenField.FindAllStringSubmatch(p.body, -1) {
		v.Set(m[1], m[2])
	}
	return v
}

// authParams is an authorization request of env's client with PKCE for
// verifier.
func (e *testEnv) authParams(verifier string) url.Values {
	return url.Values{
		"response_type":         {"code"},
		"client_id":             {e.client.ID},
		"redirect_uri":          {"http://127.0.0.1:5555/callback"},
		"state":                 {"st-123"},
		"code_challenge":        {s256(verifier)},
		"code_challenge_method": {"S256"},
		"resource":              {testResource},
		"scope":                 {"repo:read issues:list"},
	}
}

// loginAndConsent drives the pages from an authorization request to the
// redirect back to the client and returns that redirect's query.
func (e *testEnv) loginAndConsent(b *browser, params url.Values) url.Values {
	e.t.Helper()
	p := b.get(e.url(pathAuthorize) + "?" + params.Encode())
	if p.status != http.StatusFound || p.location == nil {
		e.t.Fatalf("authorize: %d %s", p.status, p.body)
	}
	if p.location.Path == pathLogin {
		login := b.get(p.location.String())
		if login.status != http.StatusOK {
			e.t.Fatalf("login page: %d %s", login.status, login.body)
		}
		f := login.fields()
		f.Set("username", e.user.Name)
		f.Set("password", testPassword)
		p = b.post(e.url(pathLogin), f)
		if p.status != http.StatusSeeOther || p.location == nil || p.location.Path != pathConsent {
			e.t.Fatalf("login: %d %s", p.status, p.body)
		}
	}
	consent := b.get(p.location.String())
	if consent.status != http.StatusOK {
		e.t.Fatalf("consent page: %d %v %s", consent.status, consent.location, consent.body)
	}
	f := consent.fields()
	f.Set("action", "approve")
	p = b.post(e.url(pathConsent), f)
	if p.status != http.StatusSeeOther || p.location == nil {
		e.t.Fatalf("consent: %d %s", p.status, p.body)
	}
	return p.location.Query()
}

// tokenRequest posts to the token endpoint and decodes the JSON answer.
func (e *testEnv) tokenRequest(form url.Values) (int, map[string]any) {
	e.t.Helper()
	return postForm(e.t, e.url(pathToken), form, "")
}

func postForm(t *testing.T, u string, form url.Values, bearer string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	body, _ := io.ReadAll(resp.Body)
	if len(body) > 0 {
		if err := json.Unmarshal(body, &out); err != nil {
			t.Fatalf("%s: %d, not JSON: %s", u, resp.StatusCode, body)
		}
	}
	return resp.StatusCode, out
}

// exchange redeems a code as env's public client.
func (e *testEnv) exchange(code, verifier string) (int, map[string]any) {
	return e.tokenRequest(url.Values{
		"grant_type": {"authorization_code"}, "client_id": {e.client.ID}, "code": {code},
		"redirect_uri": {"http://127.0.0.1:5555/callback"}, "code_verifier": {verifier},
	})
}

func (e *testEnv) refresh(rt string, extra url.Values) (int, map[string]any) {
	form := url.Values{"grant_type": {"refresh_token"}, "client_id": {e.client.ID}, "refresh_token": {rt}}
	for k, v := range extra {
		form[k] = v
	}
	return e.tokenRequest(form)
}

// active asks introspection (as the admin) whether a token is active.
func (e *testEnv) active(tok string) bool {
	e.t.Helper()
	status, out := postForm(e.t, e.url(pathIntrospect), url.Values{"token": {tok}}, adminToken)
	if status != http.StatusOK {
		e.t.Fatalf("introspect: %d %v", status, out)
	}
	return out["active"] == true
}

// codeFlow runs a whole authorization and returns the token response.
func (e *testEnv) codeFlow(b *browser) map[string]any {
	e.t.Helper()
	v := newVerifier()
	q := e.loginAndConsent(b, e.authParams(v))
	status, out := e.exchange(q.Get("code"), v)
	if status != http.StatusOK {
		e.t.Fatalf("exchange: %d %v", status, out)
	}
	return out
}

func s256(verifier string) string { return oauth2.S256ChallengeFromVerifier(verifier) }

func newVerifier() string { return oauth2.GenerateVerifier() }

func wantOAuthError(t *testing.T, status int, out map[string]any, wantStatus int, code string) {
	t.Helper()
	if status != wantStatus || out["error"] != code {
		t.Fatalf("got %d %v, want %d %s", status, out, wantStatus, code)
	}
}
