package idp

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
)

const (
	jagAudience = "https://kavach.example"
	jagClient   = "cli_agentclient"
	jagResource = "https://gw.example/mcp"
)

// testIdP is an IdP that signs ID-JAGs with its own keys and serves their
// public halves as a JWK set on loopback.
type testIdP struct {
	t      testing.TB
	srv    *httptest.Server
	issuer string

	mu      sync.Mutex
	keys    map[string]crypto.Signer // kid → key, all published
	fetches atomic.Int32
	down    atomic.Bool
}

func startIdP(t testing.TB) *testIdP {
	t.Helper()
	p := &testIdP{t: t, keys: map[string]crypto.Signer{}}
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, ok, _ := ed25519.GenerateKey(rand.Reader)
	p.keys["rsa-1"], p.keys["ec-1"], p.keys["ed-1"] = rk, ek, ok
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/jwks" {
			http.NotFound(w, r)
			return
		}
		p.fetches.Add(1)
		if p.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(p.jwks())
	}))
	t.Cleanup(p.srv.Close)
	p.issuer = p.srv.URL
	return p
}

func (p *testIdP) jwks() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	set := jwk.NewSet()
	for kid, k := range p.keys {
		pub, err := jwk.FromRaw(k.Public())
		if err != nil {
			p.t.Fatal(err)
		}
		_ = pub.Set(jwk.KeyIDKey, kid)
		_ = pub.Set(jwk.KeyUsageKey, "sig")
		_ = set.AddKey(pub)
	}
	b, _ := json.Marshal(set)
	return b
}

func (p *testIdP) trusted() TrustedIssuer {
	return TrustedIssuer{Issuer: p.issuer, JWKS: p.issuer + "/jwks"}
}

// addKey publishes a new RSA key and returns its kid.
func (p *testIdP) addKey(kid string) {
	k, _ := rsa.GenerateKey(rand.Reader, 2048)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.keys[kid] = k
}

func (p *testIdP) key(kid string) crypto.Signer {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.keys[kid]
}

// claims are a valid ID-JAG's claims for jagClient at jagAudience.
func (p *testIdP) claims() map[string]any {
	n := time.Now().Unix()
	var b [12]byte
	_, _ = rand.Read(b[:])
	return map[string]any{
		"iss": p.issuer, "sub": "00u-alice", "aud": jagAudience, "client_id": jagClient,
		"jti": base64.RawURLEncoding.EncodeToString(b[:]), "iat": n, "exp": n + 300,
		"resource": jagResource, "scope": "mcp:review repository:read", "email": "alice@corp.example",
	}
}

// sign signs claims with the key kid under alg, with header members
// hdr (typ defaults to JAGType; a nil value drops a member).
func (p *testIdP) sign(kid string, alg jwa.SignatureAlgorithm, claims map[string]any, hdr map[string]any) string {
	p.t.Helper()
	payload, _ := json.Marshal(claims)
	h := jws.NewHeaders()
	_ = h.Set(jws.TypeKey, JAGType)
	_ = h.Set(jws.KeyIDKey, kid)
	for k, v := range hdr {
		if v == nil {
			_ = h.Remove(k)
		} else {
			_ = h.Set(k, v)
		}
	}
	out, err := jws.Sign(payload, jws.WithKey(alg, p.key(kid), jws.WithProtectedHeaders(h)))
	if err != nil {
		p.t.Fatal(err)
	}
	return string(out)
}

// raw builds a compact JWS by hand (for what jws.Sign will not make).
func raw(header, claims map[string]any, sig []byte) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c) + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func newValidator(t testing.TB, p *testIdP, mut func(*JAGConfig)) *JAGValidator {
	t.Helper()
	cfg := JAGConfig{Trusted: []TrustedIssuer{p.trusted()}}
	if mut != nil {
		mut(&cfg)
	}
	v, err := NewJAGValidator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

var expect = Expect{Audience: jagAudience, ClientID: jagClient}

func TestJAGAccepted(t *testing.T) {
	p := startIdP(t)
	v := newValidator(t, p, nil)
	for _, c := range []struct {
		kid string
		alg jwa.SignatureAlgorithm
	}{{"rsa-1", jwa.RS256}, {"ec-1", jwa.ES256}, {"ed-1", jwa.EdDSA}} {
		claims := p.claims()
		g, err := v.Validate(context.Background(), p.sign(c.kid, c.alg, claims, nil), expect)
		if err != nil {
			t.Fatalf("%s: %v", c.alg, err)
		}
		if g.Issuer != p.issuer || g.Subject != "00u-alice" || g.ClientID != jagClient || g.Resource != jagResource ||
			!slices.Equal(g.Scope, []string{"mcp:review", "repository:read"}) || g.JTI != claims["jti"] ||
			g.Expiry.Unix() != claims["exp"] || g.Email != "alice@corp.example" {
			t.Errorf("%s: grant %+v", c.alg, g)
		}
	}
	// typ as a media type: case-insensitive, "application/" optional.
	for _, typ := range []string{"OAuth-ID-JAG+JWT", "application/oauth-id-jag+jwt"} {
		if _, err := v.Validate(context.Background(), p.sign("rsa-1", jwa.RS256, p.claims(), map[string]any{"typ": typ}), expect); err != nil {
			t.Errorf("typ %q: %v", typ, err)
		}
	}
	// aud as a one-element array; no resource and no scope.
	c := p.claims()
	c["aud"] = []string{jagAudience}
	delete(c, "resource")
	delete(c, "scope")
	g, err := v.Validate(context.Background(), p.sign("rsa-1", jwa.RS256, c, nil), expect)
	if err != nil || g.Resource != "" || g.Scope != nil {
		t.Errorf("aud array, no resource or scope: %+v, %v", g, err)
	}
}

// Each refusal has its kind, invalid_grant, and its own description.
func TestJAGRefused(t *testing.T) {
	p := startIdP(t)
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	with := func(mut func(map[string]any)) map[string]any {
		c := p.claims()
		mut(c)
		return c
	}
	n := time.Now().Unix()
	pub, _ := x509.MarshalPKIXPublicKey(p.key("rsa-1").Public())
	hs := func() string {
		h := map[string]any{"alg": "HS256", "typ": JAGType, "kid": "rsa-1"}
		unsigned := strings.TrimSuffix(raw(h, p.claims(), nil), ".")
		m := hmac.New(sha256.New, pub)
		m.Write([]byte(unsigned))
		return unsigned + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	}
	forged := func() string {
		// Signed by a key the IdP never published, under its kid.
		payload, _ := json.Marshal(p.claims())
		h := jws.NewHeaders()
		_ = h.Set(jws.TypeKey, JAGType)
		_ = h.Set(jws.KeyIDKey, "rsa-1")
		out, _ := jws.Sign(payload, jws.WithKey(jwa.RS256, other, jws.WithProtectedHeaders(h)))
		return string(out)
	}
	cases := []struct {
		name      string
		assertion string
		expect    Expect
		kind      error
	}{
		{"wrong typ JWT", p.sign("rsa-1", jwa.RS256, p.claims(), map[string]any{"typ": "JWT"}), expect, ErrWrongType},
		{"no typ", p.sign("rsa-1", jwa.RS256, p.claims(), map[string]any{"typ": nil}), expect, ErrWrongType},
		{"typ with suffix", p.sign("rsa-1", jwa.RS256, p.claims(), map[string]any{"typ": "oauth-id-jag+jwt2"}), expect, ErrWrongType},
		{"untrusted issuer", p.sign("rsa-1", jwa.RS256, with(func(c map[string]any) { c["iss"] = "https://evil.example" }), nil), expect, ErrWrongIssuer},
		{"alg none", raw(map[string]any{"alg": "none", "typ": JAGType}, p.claims(), nil), expect, ErrBadSignature},
		{"alg HS256 keyed with the public key", hs(), expect, ErrBadSignature},
		{"alg not allowed RS384", p.sign("rsa-1", jwa.RS384, p.claims(), nil), expect, ErrBadSignature},
		{"key of another alg", p.sign("rsa-1", jwa.PS256, p.claims(), nil), expect, ErrBadSignature},
		{"forged signature", forged(), expect, ErrBadSignature},
		{"unknown kid", p.sign("rsa-1", jwa.RS256, p.claims(), map[string]any{"kid": "nope"}), expect, ErrBadSignature},
		{"wrong aud", p.sign("rsa-1", jwa.RS256, with(func(c map[string]any) { c["aud"] = "http://127.0.0.1:1/other-as" }), nil), expect, ErrWrongAudience},
		{"aud of two", p.sign("rsa-1", jwa.RS256, with(func(c map[string]any) { c["aud"] = []string{jagAudience, "https://other.example"} }), nil), expect, ErrWrongAudience},
		{"no aud", p.sign("rsa-1", jwa.RS256, with(func(c map[string]any) { delete(c, "aud") }), nil), expect, ErrWrongAudience},
		{"wrong client", p.sign("rsa-1", jwa.RS256, p.claims(), nil), Expect{Audience: jagAudience, ClientID: "cli_other"}, ErrWrongClient},
		{"no client_id", p.sign("rsa-1", jwa.RS256, with(func(c map[string]any) { delete(c, "client_id") }), nil), expect, ErrWrongClient},
		{"expired", p.sign("rsa-1", jwa.RS256, with(func(c map[string]any) { c["iat"], c["exp"] = n-360, n-60 }), nil), expect, ErrExpired},
		{"issued in the future", p.sign("rsa-1", jwa.RS256, with(func(c map[string]any) { c["iat"], c["exp"] = n+120, n+300 }), nil), expect, ErrExpired},
		{"not yet valid", p.sign("rsa-1", jwa.RS256, with(func(c map[string]any) { c["nbf"] = n + 120 }), nil), expect, ErrExpired},
		{"too long-lived", p.sign("rsa-1", jwa.RS256, with(func(c map[string]any) { c["exp"] = n + 301 }), nil), expect, ErrTooLongLived},
		{"no exp", p.sign("rsa-1", jwa.RS256, with(func(c map[string]any) { delete(c, "exp") }), nil), expect, ErrMalformed},
		{"no iat", p.sign("rsa-1", jwa.RS256, with(func(c map[string]any) { delete(c, "iat") }), nil), expect, ErrMalformed},
		{"no jti", p.sign("rsa-1", jwa.RS256, with(func(c map[string]any) { delete(c, "jti") }), nil), expect, ErrMalformed},
		{"no sub", p.sign("rsa-1", jwa.RS256, with(func(c map[string]any) { delete(c, "sub") }), nil), expect, ErrMalformed},
		{"bad scope", p.sign("rsa-1", jwa.RS256, with(func(c map[string]any) { c["scope"] = "a  b" }), nil), expect, ErrMalformed},
		{"resource with query", p.sign("rsa-1", jwa.RS256, with(func(c map[string]any) { c["resource"] = jagResource + "?x=1" }), nil), expect, ErrMalformed},
		{"two resources", p.sign("rsa-1", jwa.RS256, with(func(c map[string]any) { c["resource"] = []string{jagResource, "https://b.example"} }), nil), expect, ErrMalformed},
		{"crit header", p.sign("rsa-1", jwa.RS256, p.claims(), map[string]any{"crit": []string{"exp"}}), expect, ErrMalformed},
		{"case-variant alg member", raw(map[string]any{"alg": "RS256", "ALG": "none", "typ": JAGType}, p.claims(), []byte("x")), expect, ErrMalformed},
		{"not a JWT", "abc.def", expect, ErrMalformed},
		{"empty", "", expect, ErrMalformed},
	}
	v := newValidator(t, p, nil)
	descs := map[error]string{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g, err := v.Validate(context.Background(), c.assertion, c.expect)
			if err == nil {
				t.Fatalf("accepted: %+v", g)
			}
			if !errors.Is(err, c.kind) {
				t.Fatalf("error %v, want kind %v", err, c.kind)
			}
			var e *Error
			if !errors.As(err, &e) || e.Code != "invalid_grant" || e.Description == "" {
				t.Fatalf("error %#v, want invalid_grant with a description", err)
			}
			if strings.Contains(e.Description, "evil") || strings.Contains(e.Description, "other-as") {
				t.Errorf("description echoes input: %q", e.Description)
			}
			if d, ok := descs[c.kind]; ok && c.kind != ErrMalformed && c.kind != ErrBadSignature && c.kind != ErrExpired && d != e.Description {
				t.Errorf("kind %v has two descriptions: %q, %q", c.kind, d, e.Description)
			}
			descs[c.kind] = e.Description
		})
	}
	// The refusals named by the issue each have their own description.
	seen := map[string]error{}
	for _, k := range []error{ErrReplayed, ErrExpired, ErrWrongAudience, ErrWrongType, ErrWrongClient, ErrWrongIssuer, ErrBadSignature} {
		d := descs[k]
		if k == ErrReplayed {
			continue // TestJAGReplay
		}
		if d == "" {
			t.Errorf("no case of %v", k)
		}
		if prev, dup := seen[d]; dup {
			t.Errorf("%v and %v share the description %q", prev, k, d)
		}
		seen[d] = k
	}
}

func TestJAGReplay(t *testing.T) {
	p := startIdP(t)
	v := newValidator(t, p, nil)
	a := p.sign("rsa-1", jwa.RS256, p.claims(), nil)
	if _, err := v.Validate(context.Background(), a, expect); err != nil {
		t.Fatal(err)
	}
	_, err := v.Validate(context.Background(), a, expect)
	var e *Error
	if !errors.Is(err, ErrReplayed) || !errors.As(err, &e) || e.Code != "invalid_grant" || e.Description != "assertion replayed" {
		t.Fatalf("replay: %v", err)
	}
	// A refused assertion does not burn its jti.
	c := p.claims()
	if _, err := v.Validate(context.Background(), p.sign("rsa-1", jwa.RS256, c, nil), Expect{Audience: jagAudience, ClientID: "cli_other"}); !errors.Is(err, ErrWrongClient) {
		t.Fatal(err)
	}
	if _, err := v.Validate(context.Background(), p.sign("rsa-1", jwa.RS256, c, nil), expect); err != nil {
		t.Fatalf("the same jti after a refusal: %v", err)
	}
}

// The IdP rotates: a new kid is fetched at once; garbage kids cost at most
// one fetch per MinRefetch.
func TestJAGKeyRotationAndRefetchLimit(t *testing.T) {
	p := startIdP(t)
	v := newValidator(t, p, func(c *JAGConfig) { c.MinRefetch = 200 * time.Millisecond })
	if _, err := v.Validate(context.Background(), p.sign("rsa-1", jwa.RS256, p.claims(), nil), expect); err != nil {
		t.Fatal(err)
	}
	if got := p.fetches.Load(); got != 1 {
		t.Fatalf("%d JWKS fetches for the first assertion, want 1", got)
	}
	for range 20 {
		_, err := v.Validate(context.Background(), p.sign("rsa-1", jwa.RS256, p.claims(), map[string]any{"kid": "garbage"}), expect)
		if !errors.Is(err, ErrBadSignature) {
			t.Fatal(err)
		}
	}
	if got := p.fetches.Load(); got > 2 {
		t.Fatalf("%d JWKS fetches after 20 unknown kids within the refetch interval, want at most 2", got)
	}
	time.Sleep(250 * time.Millisecond) // the refetch interval: what the limit is about
	p.addKey("rsa-2")
	if _, err := v.Validate(context.Background(), p.sign("rsa-2", jwa.RS256, p.claims(), nil), expect); err != nil {
		t.Fatalf("assertion under a rotated key: %v", err)
	}
}

func TestJAGJWKSDown(t *testing.T) {
	p := startIdP(t)
	p.down.Store(true)
	v := newValidator(t, p, nil)
	_, err := v.Validate(context.Background(), p.sign("rsa-1", jwa.RS256, p.claims(), nil), expect)
	if !errors.Is(err, ErrIdPUnavailable) {
		t.Fatalf("JWKS down: %v", err)
	}
}

func TestJAGConfig(t *testing.T) {
	bad := []JAGConfig{
		{Trusted: []TrustedIssuer{{Issuer: "not a url", JWKS: "https://idp.example/jwks"}}},
		{Trusted: []TrustedIssuer{{Issuer: "https://idp.example", JWKS: "ftp://idp.example/jwks"}}},
		{Trusted: []TrustedIssuer{{Issuer: "https://idp.example", JWKS: "https://idp.example/jwks", Algorithms: []string{"HS256"}}}},
		{Trusted: []TrustedIssuer{{Issuer: "https://idp.example", JWKS: "https://idp.example/jwks", Algorithms: []string{"none"}}}},
		{Trusted: []TrustedIssuer{{Issuer: "https://idp.example", JWKS: "https://idp.example/jwks"}, {Issuer: "https://idp.example", JWKS: "https://idp.example/k"}}},
	}
	for _, c := range bad {
		if _, err := NewJAGValidator(c); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	// An IdP allowed only ES256 refuses its RS256 assertions.
	p := startIdP(t)
	v := newValidator(t, p, func(c *JAGConfig) { c.Trusted[0].Algorithms = []string{"ES256"} })
	if _, err := v.Validate(context.Background(), p.sign("rsa-1", jwa.RS256, p.claims(), nil), expect); !errors.Is(err, ErrBadSignature) {
		t.Errorf("RS256 with only ES256 allowed: %v", err)
	}
	if _, err := v.Validate(context.Background(), p.sign("ec-1", jwa.ES256, p.claims(), nil), expect); err != nil {
		t.Errorf("ES256: %v", err)
	}
}
