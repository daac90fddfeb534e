package issuer

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/kavachgate/kavach/issuer/idp"
	"github.com/kavachgate/kavach/issuer/store"
	"github.com/kavachgate/kavach/token"
)

// jagIdP is a test IdP: it signs ID-JAGs with its RSA key and serves the
// public key as a JWK set on loopback.
type jagIdP struct {
	t   *testing.T
	srv *httptest.Server
	key *rsa.PrivateKey
}

func startJAGIdP(t *testing.T) *jagIdP {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p := &jagIdP{t: t, key: k}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pub, _ := jwk.FromRaw(&k.PublicKey)
		_ = pub.Set(jwk.KeyIDKey, "idp-1")
		set := jwk.NewSet()
		_ = set.AddKey(pub)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *jagIdP) issuer() string { return p.srv.URL }

// mint signs an ID-JAG for sub; edit changes the claims, typ the header.
func (p *jagIdP) mint(typ string, claims map[string]any) string {
	p.t.Helper()
	payload, _ := json.Marshal(claims)
	h := jws.NewHeaders()
	_ = h.Set(jws.TypeKey, typ)
	_ = h.Set(jws.KeyIDKey, "idp-1")
	out, err := jws.Sign(payload, jws.WithKey(jwa.RS256, p.key, jws.WithProtectedHeaders(h)))
	if err != nil {
		p.t.Fatal(err)
	}
	return string(out)
}

func (p *jagIdP) claims(aud, clientID string) map[string]any {
	n := time.Now().Unix()
	var b [12]byte
	_, _ = rand.Read(b[:])
	return map[string]any{
		"iss": p.issuer(), "sub": "00u-alice", "aud": aud, "client_id": clientID,
		"jti": base64.RawURLEncoding.EncodeToString(b[:]), "iat": n, "exp": n + 300,
		"resource": testResource, "scope": "repo:read issues:list",
	}
}

// jagEnv is an issuer trusting a test IdP's ID-JAGs, with env.user
// linked to that IdP's 00u-alice.
func jagEnv(t *testing.T) (*testEnv, *jagIdP) {
	p := startJAGIdP(t)
	e := newEnv(t, func(c *Config) { c.TrustIDJAG = []idp.TrustedIssuer{{Issuer: p.issuer(), JWKS: p.issuer() + "/jwks"}} })
	// Link env.user (local) to the IdP by hand: the store's own link
	// comes from a sign-in, so create a second user through it.
	u, _, err := e.st.SignInIdP(context.Background(), &store.IdPSignIn{
		Link:         store.IdentityLink{Issuer: p.issuer(), Subject: "00u-alice", Provider: "corpsso", SeenAt: now()},
		Entitlements: map[string][]string{testResource: {"repo:read", "issues:*"}},
		NewUser:      &store.User{ID: token.NewID(token.PrefixUser), Name: "corpsso:alice", CreatedAt: now()},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.user = u
	return e, p
}

func (e *testEnv) jwtBearer(clientID, assertion string, extra url.Values) (int, map[string]any) {
	form := url.Values{"grant_type": {idp.GrantTypeJWTBearer}, "client_id": {clientID}, "assertion": {assertion}}
	for k, v := range extra {
		form[k] = v
	}
	return e.tokenRequest(form)
}

func TestJWTBearer(t *testing.T) {
	e, p := jagEnv(t)
	iss, cid := e.s.Issuer(), e.client.ID

	// Metadata and registration offer the grant.
	resp, err := http.Get(e.url("/.well-known/oauth-authorization-server"))
	if err != nil {
		t.Fatal(err)
	}
	var meta metadata
	_ = json.NewDecoder(resp.Body).Decode(&meta)
	resp.Body.Close()
	if !strings.Contains(strings.Join(meta.GrantTypesSupported, " "), idp.GrantTypeJWTBearer) {
		t.Errorf("metadata grant types %v lack jwt-bearer", meta.GrantTypesSupported)
	}
	if status, out := postJSON(t, e.url(pathRegister), `{"redirect_uris":["http://127.0.0.1/cb"],"grant_types":["authorization_code","`+idp.GrantTypeJWTBearer+`"]}`); status != http.StatusCreated {
		t.Errorf("DCR with jwt-bearer: %d %v", status, out)
	}

	j := p.mint(idp.JAGType, p.claims(iss, cid))
	status, out := e.jwtBearer(cid, j, nil)
	if status != http.StatusOK {
		t.Fatalf("exchange: %d %v", status, out)
	}
	if out["scope"] != "repo:read issues:list" || out["refresh_token"] != nil {
		t.Errorf("token response %v: want the assertion's scope and no refresh token", out)
	}
	tok := out["access_token"].(string)
	parsed, err := e.s.Verifier().Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if parsed.Subject != e.user.ID || parsed.ClientID != cid || len(parsed.Kavach.Chain) != 1 {
		t.Errorf("token sub %s client %s chain %v", parsed.Subject, parsed.ClientID, parsed.Kavach.Chain)
	}
	g, err := e.st.GetGrant(context.Background(), parsed.Kavach.Chain[0])
	if err != nil || g.Via != store.GrantViaIDJAG+p.issuer() || g.Grantee != cid {
		t.Errorf("root grant %+v %v: want via the IdP", g, err)
	}
	if !e.active(tok) {
		t.Fatal("the token is not active")
	}

	// Each refusal with its OAuth error.
	for _, tc := range []struct {
		name       string
		assertion  string
		client     string
		extra      url.Values
		wantStatus int
		want       string
	}{
		{"replayed", j, cid, nil, 400, "invalid_grant"},
		{"wrong typ", p.mint("JWT", p.claims(iss, cid)), cid, nil, 400, "invalid_grant"},
		{"wrong aud", p.mint(idp.JAGType, p.claims("http://127.0.0.1:1/other-as", cid)), cid, nil, 400, "invalid_grant"},
		{"wrong client", p.mint(idp.JAGType, p.claims(iss, "cli_someone_else")), cid, nil, 400, "invalid_grant"},
		{"expired", p.mint(idp.JAGType, with(p.claims(iss, cid), "iat", time.Now().Unix()-400, "exp", time.Now().Unix()-300)), cid, nil, 400, "invalid_grant"},
		{"unknown subject", p.mint(idp.JAGType, with(p.claims(iss, cid), "sub", "00u-nobody")), cid, nil, 400, "invalid_grant"},
		{"over-entitled", p.mint(idp.JAGType, with(p.claims(iss, cid), "scope", "repo:read repo:write")), cid, nil, 400, "invalid_scope"},
		{"scope beyond the assertion", p.mint(idp.JAGType, p.claims(iss, cid)), cid, url.Values{"scope": {"repo:read issues:write"}}, 400, "invalid_scope"},
		{"other resource", p.mint(idp.JAGType, p.claims(iss, cid)), cid, url.Values{"resource": {otherResource}}, 400, "invalid_target"},
		{"not entitled there", p.mint(idp.JAGType, with(p.claims(iss, cid), "resource", otherResource)), cid, nil, 400, "invalid_target"},
		{"no assertion", "", cid, nil, 400, "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, out := e.jwtBearer(tc.client, tc.assertion, tc.extra)
			wantOAuthError(t, status, out, tc.wantStatus, tc.want)
		})
	}

	// A narrower scope in the request narrows the token.
	status, out = e.jwtBearer(cid, p.mint(idp.JAGType, p.claims(iss, cid)), url.Values{"scope": {"repo:read"}, "resource": {testResource}})
	if status != http.StatusOK || out["scope"] != "repo:read" {
		t.Fatalf("narrowed: %d %v", status, out)
	}

	// Revoking the client stops the token.
	if _, err := e.s.revokeClient(context.Background(), cid); err != nil {
		t.Fatal(err)
	}
	if e.active(tok) {
		t.Error("the token survived its client's revocation")
	}
}

// TestJWTBearerOff: without trusted IdPs the grant is neither advertised
// nor accepted, and registration refuses it as before.
func TestJWTBearerOff(t *testing.T) {
	e := newEnv(t)
	status, out := e.jwtBearer(e.client.ID, "x.y.z", nil)
	wantOAuthError(t, status, out, 400, "unsupported_grant_type")
	if status, _ := postJSON(t, e.url(pathRegister), `{"redirect_uris":["http://127.0.0.1/cb"],"grant_types":["authorization_code","`+idp.GrantTypeJWTBearer+`"]}`); status != http.StatusBadRequest {
		t.Errorf("DCR with jwt-bearer, not trusted: %d", status)
	}
}

func with(c map[string]any, kv ...any) map[string]any {
	for i := 0; i < len(kv); i += 2 {
		c[kv[i].(string)] = kv[i+1]
	}
	return c
}

func postJSON(t *testing.T, u, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(u, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// TestJWTBearerReplayAcrossNodes: two issuer nodes sharing a replay store
// (issuer.RedisReplay in a cluster) refuse an ID-JAG the other one took.
func TestJWTBearerReplayAcrossNodes(t *testing.T) {
	shared := idp.NewMemoryReplay()
	p := startJAGIdP(t)
	var nodes []*testEnv
	for range 2 {
		e := newEnv(t, func(c *Config) {
			c.Replay = shared
			c.TrustIDJAG = []idp.TrustedIssuer{{Issuer: p.issuer(), JWKS: p.issuer() + "/jwks"}}
		})
		if _, _, err := e.st.SignInIdP(context.Background(), &store.IdPSignIn{
			Link:         store.IdentityLink{Issuer: p.issuer(), Subject: "00u-alice", Provider: "corpsso", SeenAt: now()},
			Entitlements: map[string][]string{testResource: {"repo:read", "issues:*"}},
			NewUser:      &store.User{ID: token.NewID(token.PrefixUser), Name: "corpsso:alice", CreatedAt: now()},
		}); err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, e)
	}
	// Both nodes know the same client id; the assertion is for it and
	// for the issuer URL of node 0, so give node 1 the same client.
	c := nodes[0].client
	if err := nodes[1].st.CreateClient(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	claims := p.claims(nodes[0].s.Issuer(), c.ID)
	j := p.mint(idp.JAGType, claims)
	if status, out := nodes[0].jwtBearer(c.ID, j, nil); status != http.StatusOK {
		t.Fatalf("node 0: %d %v", status, out)
	}
	// Node 1 has another issuer URL; the replay is what must refuse an
	// assertion for it, so mint one for node 1 with the same jti.
	claims["aud"] = nodes[1].s.Issuer()
	status, out := nodes[1].jwtBearer(c.ID, p.mint(idp.JAGType, claims), nil)
	wantOAuthError(t, status, out, 400, "invalid_grant")
	// The same assertion with a new jti is good there.
	claims["jti"] = "another-jti"
	if status, out := nodes[1].jwtBearer(c.ID, p.mint(idp.JAGType, claims), nil); status != http.StatusOK {
		t.Fatalf("node 1, new jti: %d %v", status, out)
	}
}
