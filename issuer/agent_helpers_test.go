package issuer

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/kavachgate/kavach/admin"
	"github.com/kavachgate/kavach/internal/pgtest"
	"github.com/kavachgate/kavach/issuer/store"
	"github.com/kavachgate/kavach/revocation"
	"github.com/kavachgate/kavach/token"
)

// storeKinds opens a new, empty store of each implementation. The agent
// flows run against every one: the issuer's guarantees (a revoked chain
// mints nothing) rest on the store, so each must be shown to keep them.
var storeKinds = []struct {
	name string
	open func(t *testing.T) store.Store
}{
	{"sqlite", func(t *testing.T) store.Store {
		st, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "kavach.db"))
		if err != nil {
			t.Fatal(err)
		}
		return st
	}},
	{"postgres", func(t *testing.T) store.Store {
		st, err := store.OpenPostgres(context.Background(), pgtest.Start(t))
		if err != nil {
			t.Fatal(err)
		}
		return st
	}},
}

// forEachStore runs f as a subtest per store kind, each with a new issuer.
func forEachStore(t *testing.T, f func(t *testing.T, e *agentEnv), opts ...func(*Config)) {
	for _, k := range storeKinds {
		t.Run(k.name, func(t *testing.T) {
			f(t, newAgentEnv(t, k.open(t), opts...))
		})
	}
}

// The agent tests' user is entitled to more on the MCP resource than its
// agents get, so a scope can be refused by the agent's registration alone.
var (
	aliceEntitlements = map[string][]string{
		testResource:  {"mcp:github", "mcp:github:admin", "repo:read", "repo:write", "issues:*"},
		otherResource: {"api:read"},
	}
	agentScopes = []string{"mcp:github", "repo:read", "repo:write", "issues:*", "api:read"}
	// agentConstraints is DESIGN.md §2's example cnst.
	agentConstraints = map[string]any{
		"hosts":    []string{"mcp.internal", "*.corp.example"},
		"cidrs":    []string{"10.0.0.0/8"},
		"methods":  []string{"GET", "POST"},
		"paths":    []string{"/mcp", "/api/repos/*"},
		"max_body": 5242880,
		"audit":    "required",
	}
)

// agentEnv is an issuer over a real store with a memory revocation set (the
// gateways' view), its OAuth endpoints and its admin API each served by
// httptest. The server behind them can be replaced (restart) to change its
// configuration over the same store.
//
// Its helpers fail the test e.t: a subtest gets its own view with e.run.
type agentEnv struct {
	t *testing.T
	*envState
}

type envState struct {
	st    store.Store
	rev   *revocation.Memory
	cfg   Config
	cur   atomic.Pointer[Server]
	srv   *httptest.Server
	admin *httptest.Server
	user  string // usr_… of alice, created through the admin API
}

// run runs f as a subtest with a view of e whose helpers fail that subtest.
func (e *agentEnv) run(name string, f func(t *testing.T, e *agentEnv)) bool {
	return e.t.Run(name, func(t *testing.T) { f(t, &agentEnv{t: t, envState: e.envState}) })
}

func newAgentEnv(t *testing.T, st store.Store, opts ...func(*Config)) *agentEnv {
	t.Helper()
	e := &agentEnv{t: t, envState: &envState{st: st, rev: revocation.NewMemory(revocation.MemoryOptions{})}}
	current := func() *Server { return e.cur.Load() }
	e.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		current().Handler().ServeHTTP(w, r)
	}))
	e.admin = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		current().AdminHandler().ServeHTTP(w, r)
	}))
	e.cfg = Config{
		Issuer:    "http://" + e.srv.Listener.Addr().String(),
		Store:     st,
		Revoked:   e.rev,
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		AdminAuth: func(r *http.Request) bool { return r.Header.Get("Authorization") == "Bearer "+adminToken },
	}
	for _, o := range opts {
		o(&e.cfg)
	}
	e.restart()
	e.srv.Start()
	t.Cleanup(func() {
		e.srv.Close()
		e.admin.Close()
		e.cur.Load().Close()
		st.Close()
	})

	status, out := e.adminCall(http.MethodPost, "/v1/users", map[string]any{"name": "alice", "entitlements": aliceEntitlements})
	if status != http.StatusCreated {
		t.Fatalf("create user: %d %v", status, out)
	}
	e.user = out["id"].(string)
	return e
}

// restart replaces the issuer by a new one over the same store, issuer
// URL and revocation set, with opts applied to the environment's
// configuration, as an operator restarting with a changed config would.
func (e *agentEnv) restart(opts ...func(*Config)) {
	e.t.Helper()
	cfg := e.cfg
	for _, o := range opts {
		o(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	if old := e.cur.Swap(s); old != nil {
		old.Close()
	}
}

func (e *agentEnv) s() *Server { return e.cur.Load() }

func (e *agentEnv) url(path string) string { return e.srv.URL + path }

// adminCall calls the admin API. body is sent as is when it is a string,
// else as JSON; nil sends no body.
func (e *agentEnv) adminCall(method, path string, body any) (int, map[string]any) {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, e.admin.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return do(e.t, req)
}

func do(t *testing.T, req *http.Request) (int, map[string]any) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(bytes.TrimSpace(body)) > 0 {
		if err := json.Unmarshal(body, &out); err != nil {
			t.Fatalf("%s %s: %d, not a JSON object: %s", req.Method, req.URL.Path, resp.StatusCode, body)
		}
	}
	return resp.StatusCode, out
}

// agentReq is the body of POST /v1/agents and …/children.
type agentReq struct {
	Name        string          `json:"name"`
	Owner       string          `json:"owner,omitempty"`
	Scopes      []string        `json:"scopes"`
	TTL         string          `json:"ttl,omitempty"`
	Constraints map[string]any  `json:"constraints,omitempty"`
	PublicKey   json.RawMessage `json:"public_key,omitempty"`
}

// newAgent creates a root agent of alice with agentScopes and
// agentConstraints unless spec says otherwise.
func (e *agentEnv) newAgent(spec agentReq) *admin.Agent {
	e.t.Helper()
	if spec.Name == "" {
		spec.Name = "root"
	}
	if spec.Owner == "" {
		spec.Owner = e.user
	}
	if spec.Scopes == nil {
		spec.Scopes = agentScopes
	}
	if spec.Constraints == nil {
		spec.Constraints = agentConstraints
	}
	return e.mustAgent("/v1/agents", spec)
}

// newChild registers a child of parent; scopes and constraints left out
// inherit the parent's.
func (e *agentEnv) newChild(parent string, spec agentReq) *admin.Agent {
	e.t.Helper()
	if spec.Name == "" {
		spec.Name = "child"
	}
	return e.mustAgent("/v1/agents/"+parent+"/children", spec)
}

func (e *agentEnv) mustAgent(path string, spec agentReq) *admin.Agent {
	e.t.Helper()
	if spec.Scopes == nil {
		a, err := e.st.GetAgent(context.Background(), strings.Split(strings.TrimPrefix(path, "/v1/agents/"), "/")[0])
		if err != nil {
			e.t.Fatalf("%s: no scopes and no parent: %v", path, err)
		}
		spec.Scopes = a.Scopes
	}
	data, err := json.Marshal(spec)
	if err != nil {
		e.t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, e.admin.URL+path, bytes.NewReader(data))
	if err != nil {
		e.t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		e.t.Fatalf("POST %s: %d %s", path, resp.StatusCode, body)
	}
	var a admin.Agent
	if err := json.Unmarshal(body, &a); err != nil {
		e.t.Fatal(err)
	}
	return &a
}

// auth adds client authentication to a token-endpoint request.
type auth func(r *http.Request, form url.Values)

// basic is client_secret_basic (RFC 6749 §2.3.1).
func basic(id, secret string) auth {
	return func(r *http.Request, _ url.Values) {
		r.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
}

// post is client_secret_post.
func post(id, secret string) auth {
	return func(_ *http.Request, f url.Values) {
		f.Set("client_id", id)
		f.Set("client_secret", secret)
	}
}

// jwtAuth is private_key_jwt with a signed assertion (RFC 7523 §2.2).
func jwtAuth(assertion string) auth {
	return func(_ *http.Request, f url.Values) {
		f.Set("client_assertion_type", assertionTypeJWTBearer)
		f.Set("client_assertion", assertion)
	}
}

// both combines two methods (which the issuer must refuse).
func both(a, b auth) auth {
	return func(r *http.Request, f url.Values) { a(r, f); b(r, f) }
}

// postOAuth posts a form to an issuer endpoint with client authentication.
func (e *agentEnv) postOAuth(path string, form url.Values, a auth) (int, map[string]any) {
	e.t.Helper()
	f := url.Values{}
	for k, v := range form {
		f[k] = slices.Clone(v)
	}
	req, err := http.NewRequest(http.MethodPost, e.url(path), nil)
	if err != nil {
		e.t.Fatal(err)
	}
	if a != nil {
		a(req, f)
	}
	req.Body = io.NopCloser(strings.NewReader(f.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return do(e.t, req)
}

// clientCredentials asks for an agent token.
func (e *agentEnv) clientCredentials(a auth, extra url.Values) (int, map[string]any) {
	e.t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}}
	for k, v := range extra {
		form[k] = v
	}
	return e.postOAuth(pathToken, form, a)
}

// exchange is an RFC 8693 token exchange of subject.
func (e *agentEnv) exchange(a auth, subject string, extra url.Values) (int, map[string]any) {
	e.t.Helper()
	form := url.Values{
		"grant_type":         {grantTokenExchange},
		"subject_token":      {subject},
		"subject_token_type": {tokenTypeAccessToken},
	}
	for k, v := range extra {
		form[k] = v
	}
	return e.postOAuth(pathToken, form, a)
}

// actor is the actor_token parameters for a child's assertion.
func actor(assertion string) url.Values {
	return url.Values{"actor_token": {assertion}, "actor_token_type": {tokenTypeJWT}}
}

// mustToken checks a 200 token response and returns the access token,
// verified with the issuer's own verifier.
func (e *agentEnv) mustToken(status int, out map[string]any) (string, *token.Token) {
	e.t.Helper()
	if status != http.StatusOK {
		e.t.Fatalf("token request: %d %v", status, out)
	}
	if out["token_type"] != "Bearer" {
		e.t.Fatalf("token_type %v", out["token_type"])
	}
	raw, _ := out["access_token"].(string)
	tok, err := e.s().Verifier().Verify(raw)
	if err != nil {
		e.t.Fatalf("the issued token does not verify: %v", err)
	}
	return raw, tok
}

// agentToken is a client_credentials token of an agent with a secret.
func (e *agentEnv) agentToken(a *admin.Agent, extra url.Values) (string, *token.Token) {
	e.t.Helper()
	status, out := e.clientCredentials(basic(a.ID, a.ClientSecret), extra)
	return e.mustToken(status, out)
}

// wantError checks an OAuth error response and, when field is set, that
// the description names it first (policy.FieldError: "field: reason").
func wantError(t *testing.T, status int, out map[string]any, wantStatus int, code, field string) {
	t.Helper()
	wantOAuthError(t, status, out, wantStatus, code)
	if desc, _ := out["error_description"].(string); field != "" && !strings.HasPrefix(desc, field+": ") {
		t.Fatalf("error_description %q does not name %s", desc, field)
	}
}

// introspect asks /oauth/introspect about tok as the given caller (a nil
// auth: the admin token).
func (e *agentEnv) introspect(tok string, a auth) (int, map[string]any) {
	e.t.Helper()
	if a == nil {
		a = func(r *http.Request, _ url.Values) { r.Header.Set("Authorization", "Bearer "+adminToken) }
	}
	return e.postOAuth(pathIntrospect, url.Values{"token": {tok}}, a)
}

// active reports whether introspection with the admin token calls tok
// active.
func (e *agentEnv) active(tok string) bool {
	e.t.Helper()
	status, out := e.introspect(tok, nil)
	if status != http.StatusOK {
		e.t.Fatalf("introspect: %d %v", status, out)
	}
	return out["active"] == true
}

// gatewayRejects reports whether a gateway holding the issuer's revocation
// set rejects tok (DESIGN.md §5): its jti, a grant or an agent of its chain
// is revoked, or an issued-before cutoff on sub, client_id or kid covers it.
func (e *agentEnv) gatewayRejects(tok *token.Token) bool {
	for _, id := range append(append([]string{tok.ID}, tok.Kavach.Chain...), tok.Kavach.Agents...) {
		if e.rev.IsRevoked(id) {
			return true
		}
	}
	return e.rev.RevokedBefore(revocation.CutoffSubject, tok.Subject, tok.IssuedAt) ||
		e.rev.RevokedBefore(revocation.CutoffClient, tok.ClientID, tok.IssuedAt) ||
		e.rev.RevokedBefore(revocation.CutoffKey, tok.KeyID, tok.IssuedAt)
}

// agentKey is an agent's Ed25519 key pair for private_key_jwt.
type agentKey struct {
	priv jwk.Key
	pub  json.RawMessage // the public JWK, as registered
}

func newAgentKey(t *testing.T) *agentKey {
	t.Helper()
	k, err := token.GenerateSigningKey(jwa.EdDSA)
	if err != nil {
		t.Fatal(err)
	}
	privJSON, err := json.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := jwk.ParseKey(privJSON)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := k.Public()
	if err != nil {
		t.Fatal(err)
	}
	pubJSON, err := json.Marshal(pub)
	if err != nil {
		t.Fatal(err)
	}
	return &agentKey{priv: priv, pub: pubJSON}
}

// assertion is an RFC 7523 client assertion of agent id signed with k:
// iss = sub = id, aud = the issuer, a fresh jti, valid two minutes by the
// issuer's clock. edit may change the claims before signing.
func (e *agentEnv) assertion(k *agentKey, id string, edit func(c map[string]any)) string {
	e.t.Helper()
	at := now()
	c := map[string]any{
		"iss": id, "sub": id, "aud": e.cfg.Issuer,
		"iat": at.Unix(), "exp": at.Add(2 * time.Minute).Unix(),
		"jti": token.NewID("asr_"),
	}
	if edit != nil {
		edit(c)
	}
	payload, err := json.Marshal(c)
	if err != nil {
		e.t.Fatal(err)
	}
	signed, err := jws.Sign(payload, jws.WithKey(jwa.EdDSA, k.priv))
	if err != nil {
		e.t.Fatal(err)
	}
	return string(signed)
}

// testClock is the issuer's clock held by a test: it stands still unless
// set, so a test can place events within one second or across seconds.
type testClock struct{ ns atomic.Int64 }

// holdClock sets the issuer's clock to at for the rest of the test.
func holdClock(t *testing.T, at time.Time) *testClock {
	c := &testClock{}
	c.set(at)
	prev := now
	now = func() time.Time { return time.Unix(0, c.ns.Load()) }
	t.Cleanup(func() { now = prev })
	return c
}

func (c *testClock) set(at time.Time) { c.ns.Store(at.UnixNano()) }

// nextSecond is the start of the next whole second plus frac, close enough
// to the real time for the verifier (which reads the real clock) and its
// leeway.
func nextSecond(frac time.Duration) time.Time {
	return time.Now().Truncate(time.Second).Add(time.Second + frac)
}
