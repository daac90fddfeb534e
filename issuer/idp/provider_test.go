package idp

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

type flow struct {
	op     *testOP
	prov   *Provider
	sealer *Sealer
}

func newFlow(t *testing.T) *flow {
	t.Helper()
	o := startOP(t)
	prov, err := NewProvider(ProviderConfig{
		Name: "corpsso", Issuer: o.Issuer, ClientID: opClientID, ClientSecret: opClientSecret,
		Scopes: []string{"openid", "email", "profile", "groups"},
	}, opRedirect, nil)
	if err != nil {
		t.Fatal(err)
	}
	sealer, err := NewSealer(testKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &flow{op: o, prov: prov, sealer: sealer}
}

// run is one sign-in as the issuer and a browser do it: a pending record
// sealed into the "cookie", the browser at the OP, the callback opened
// and handled.
func (f *flow) run(t *testing.T, opts AuthOptions) (*Identity, error) {
	t.Helper()
	ctx := context.Background()
	p, err := NewPending("corpsso", "areq-1", "browser-1", 0)
	if err != nil {
		t.Fatal(err)
	}
	to, err := f.prov.AuthURL(ctx, p, opts)
	if err != nil {
		return nil, err
	}
	cookie, err := f.sealer.Seal(p)
	if err != nil {
		t.Fatal(err)
	}
	back := signIn(t, to)
	got, err := f.sealer.Open(ctx, cookie, back.Get("state"), "browser-1")
	if err != nil {
		t.Fatalf("open the pending record: %v", err)
	}
	if got.Request != "areq-1" {
		t.Fatalf("pending record resumes %q, want areq-1", got.Request)
	}
	return f.prov.Callback(ctx, back, got)
}

func TestSignIn(t *testing.T) {
	f := newFlow(t)
	id, err := f.run(t, AuthOptions{})
	if err != nil {
		t.Fatalf("sign-in: %v", err)
	}
	if id.Provider != "corpsso" || id.Issuer != f.op.Issuer || id.Subject != alice.Sub {
		t.Errorf("identity %s %s %s, want corpsso %s %s", id.Provider, id.Issuer, id.Subject, f.op.Issuer, alice.Sub)
	}
	if id.Email != alice.Email || !id.EmailVerified || id.Name != alice.Name {
		t.Errorf("email %q verified %v name %q", id.Email, id.EmailVerified, id.Name)
	}
	if !slices.Equal(id.Groups, []string{"platform-eng", "staff"}) {
		t.Errorf("groups %v", id.Groups)
	}
	if id.AuthTime.IsZero() || !id.Expiry.After(time.Now()) {
		t.Errorf("auth_time %v, expiry %v", id.AuthTime, id.Expiry)
	}

	// The request the OP saw: code flow, state, nonce, PKCE S256 of the verifier.
	q := f.op.LastAuthorize()
	if q.Get("response_type") != "code" || q.Get("state") == "" || q.Get("nonce") == "" ||
		q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || q.Get("client_id") != opClientID {
		t.Errorf("authorization request %v", q)
	}
	if !slices.Contains(strings.Fields(q.Get("scope")), "openid") {
		t.Errorf("scope %q lacks openid", q.Get("scope"))
	}
}

func TestSignInPKCEChallengeIsS256OfVerifier(t *testing.T) {
	f := newFlow(t)
	p, _ := NewPending("corpsso", "r", "", 0)
	if _, err := f.prov.AuthURL(context.Background(), p, AuthOptions{}); err != nil {
		t.Fatal(err)
	}
	to, _ := f.prov.AuthURL(context.Background(), p, AuthOptions{})
	signIn(t, to)
	sum := sha256.Sum256([]byte(p.Verifier))
	if got := f.op.LastAuthorize().Get("code_challenge"); got != base64.RawURLEncoding.EncodeToString(sum[:]) {
		t.Errorf("code_challenge %q is not S256(verifier)", got)
	}
	if f.op.LastAuthorize().Get("nonce") != p.Nonce || f.op.LastAuthorize().Get("state") != p.State {
		t.Error("nonce or state differs from the pending record's")
	}
}

// Each spoiled ID token or response is refused with its own kind, and
// the public description never echoes what the IdP sent.
func TestSignInRefusals(t *testing.T) {
	cases := []struct {
		fault string
		kind  error
		code  string
	}{
		{faultNonce, ErrBadNonce, "access_denied"},
		{faultIssuer, ErrWrongIssuer, "access_denied"},
		{faultExpired, ErrExpired, "access_denied"},
		{faultSignature, ErrBadSignature, "access_denied"},
		{faultDeny, ErrIdPRefused, "access_denied"},
	}
	f := newFlow(t)
	for _, c := range cases {
		t.Run(c.fault, func(t *testing.T) {
			f.op.Set(alice, c.fault)
			id, err := f.run(t, AuthOptions{})
			if err == nil {
				t.Fatalf("signed in %s despite fault %s", id.Subject, c.fault)
			}
			if !errors.Is(err, c.kind) {
				t.Fatalf("error %v, want kind %v", err, c.kind)
			}
			var e *Error
			if !errors.As(err, &e) || e.Code != c.code || e.Description == "" {
				t.Fatalf("error %#v, want code %s and a description", err, c.code)
			}
			if strings.Contains(e.Description, "evil") || strings.Contains(e.Description, "someone-else") || strings.Contains(e.Description, "user said no") {
				t.Errorf("description echoes IdP input: %q", e.Description)
			}
			if c.fault == faultDeny && e.IdPCode != "access_denied" {
				t.Errorf("IdPCode %q", e.IdPCode)
			}
		})
	}
	// The same provider still signs people in afterwards.
	f.op.Set(alice, faultNone)
	if _, err := f.run(t, AuthOptions{}); err != nil {
		t.Fatalf("sign-in after refusals: %v", err)
	}
}

// An ID token the same OP issued to another relying party (aud is that
// client, azp too), presented to Kavach with the right nonce: refused as
// not for Kavach.
func TestIDTokenOfAnotherClient(t *testing.T) {
	f := newFlow(t)
	other, err := NewProvider(ProviderConfig{Name: "other", Issuer: f.op.Issuer, ClientID: opOtherClientID, ClientSecret: opClientSecret}, opRedirect, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	p, _ := NewPending("other", "r", "", 0)
	to, err := other.AuthURL(ctx, p, AuthOptions{})
	if err != nil {
		t.Fatal(err)
	}
	back := signIn(t, to)
	od, _ := other.discover(ctx)
	_, raw, err := other.redeem(ctx, od, back.Get("code"), p.Verifier)
	if err != nil {
		t.Fatal(err)
	}
	// The other client's own check accepts it …
	if _, err := other.verifyIDToken(ctx, od, raw, p.Nonce); err != nil {
		t.Fatalf("the other client's ID token, at the other client: %v", err)
	}
	// … Kavach's does not.
	kd, err := f.prov.discover(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.prov.verifyIDToken(ctx, kd, raw, p.Nonce)
	if !errors.Is(err, ErrWrongAudience) {
		t.Fatalf("another client's ID token: %v, want ErrWrongAudience", err)
	}
}

// The IdP's discovery document keeps its URL but its JWK set changes: the
// next ID token is signed by a key go-oidc has not seen, and its remote
// key set fetches the new set.
func TestSignInAfterKeyRotation(t *testing.T) {
	f := newFlow(t)
	if _, err := f.run(t, AuthOptions{}); err != nil {
		t.Fatal(err)
	}
	old := f.op.SigningKeyID()
	f.op.Rotate()
	if f.op.SigningKeyID() == old {
		t.Fatal("rotation kept the kid")
	}
	id, err := f.run(t, AuthOptions{})
	if err != nil {
		t.Fatalf("sign-in after key rotation: %v", err)
	}
	if id.Subject != alice.Sub {
		t.Errorf("sub %q", id.Subject)
	}
	// Rotated twice more: still fine.
	f.op.Rotate()
	f.op.Rotate()
	if _, err := f.run(t, AuthOptions{}); err != nil {
		t.Fatalf("sign-in after two more rotations: %v", err)
	}
}

// An IdP that is down: discovery fails with ErrIdPUnavailable (the login
// page says so), and nothing is sent anywhere.
func TestIdPDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	prov, err := NewProvider(ProviderConfig{Name: "down", Issuer: "http://" + addr, ClientID: "x"}, opRedirect, &http.Client{Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := NewPending("down", "r", "", 0)
	_, err = prov.AuthURL(context.Background(), p, AuthOptions{})
	var e *Error
	if !errors.Is(err, ErrIdPUnavailable) || !errors.As(err, &e) || e.Code != "temporarily_unavailable" {
		t.Fatalf("AuthURL with the IdP down: %v", err)
	}
	if err := prov.Ready(context.Background()); !errors.Is(err, ErrIdPUnavailable) {
		t.Fatalf("Ready with the IdP down: %v", err)
	}
}

// The IdP goes down between the redirect and the callback: the code
// cannot be redeemed, and the error says the IdP is unavailable.
func TestIdPDownAtCallback(t *testing.T) {
	f := newFlow(t)
	ctx := context.Background()
	p, _ := NewPending("corpsso", "r", "", 0)
	to, err := f.prov.AuthURL(ctx, p, AuthOptions{})
	if err != nil {
		t.Fatal(err)
	}
	back := signIn(t, to)
	f.op.Close()
	_, err = f.prov.Callback(ctx, back, p)
	if !errors.Is(err, ErrIdPUnavailable) {
		t.Fatalf("callback with the IdP down: %v", err)
	}
}

// Groups the ID token lacks come from the userinfo endpoint.
func TestSignInGroupsFromUserinfo(t *testing.T) {
	f := newFlow(t)
	f.op.Set(alice, faultUserinfo)
	id, err := f.run(t, AuthOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(id.Groups, []string{"platform-eng", "staff"}) {
		t.Errorf("groups %v, want them from userinfo", id.Groups)
	}
}

func TestSignInPromptAndMaxAge(t *testing.T) {
	f := newFlow(t)
	if _, err := f.run(t, AuthOptions{Prompt: "login", MaxAge: 10 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	q := f.op.LastAuthorize()
	if q.Get("prompt") != "login" || q.Get("max_age") != "600" {
		t.Errorf("prompt %q max_age %q", q.Get("prompt"), q.Get("max_age"))
	}

	// auth_time older than max_age: refused.
	ctx := context.Background()
	p, _ := NewPending("corpsso", "r", "", 0)
	to, err := f.prov.AuthURL(ctx, p, AuthOptions{MaxAge: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	back := signIn(t, to)
	defer func(orig func() time.Time) { now = orig }(now)
	now = func() time.Time { return time.Now().Add(2 * time.Minute) }
	if _, err := f.prov.Callback(ctx, back, p); !errors.Is(err, ErrExpired) {
		t.Fatalf("auth_time older than max_age: %v", err)
	}
}

func TestCallbackForAnotherProviderOrIssuer(t *testing.T) {
	f := newFlow(t)
	ctx := context.Background()
	p, _ := NewPending("corpsso", "r", "", 0)
	to, err := f.prov.AuthURL(ctx, p, AuthOptions{})
	if err != nil {
		t.Fatal(err)
	}
	back := signIn(t, to)
	// RFC 9207: an iss parameter naming another IdP is a mix-up.
	mixed := back
	mixed.Set("iss", "https://attacker.example")
	if _, err := f.prov.Callback(ctx, mixed, p); !errors.Is(err, ErrWrongIssuer) {
		t.Fatalf("iss parameter of another IdP: %v", err)
	}
	other := *p
	other.Provider = "elsewhere"
	if _, err := f.prov.Callback(ctx, back, &other); !errors.Is(err, ErrStateMismatch) {
		t.Fatalf("pending record of another provider: %v", err)
	}
}

func TestProviderConfigValidate(t *testing.T) {
	bad := []ProviderConfig{
		{Name: "", Issuer: "https://idp.example", ClientID: "c"},
		{Name: "Corp SSO", Issuer: "https://idp.example", ClientID: "c"},
		{Name: "corp", Issuer: "idp.example", ClientID: "c"},
		{Name: "corp", Issuer: "https://idp.example?x=1", ClientID: "c"},
		{Name: "corp", Issuer: "https://idp.example"},
		{Name: "corp", Issuer: "https://idp.example", ClientID: "c", Scopes: []string{"a b"}},
	}
	for _, c := range bad {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	prov, err := NewProvider(ProviderConfig{Name: "corp", Issuer: "https://idp.example", ClientID: "c", Scopes: []string{"email"}}, "https://kavach.example/cb", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c := prov.Config(); c.DisplayName != "corp" || c.Scopes[0] != "openid" || c.GroupsClaim != "groups" {
		t.Errorf("defaults %+v", c)
	}
}

// Sign-in through the OP feeds the rules: alice's group decides her
// entitlements; removed from it at the IdP, her next sign-in narrows them
// (the issuer then cuts her agents); carol, in no mapped group, gets
// nothing.
func TestSignInEntitlementsFollowTheIdP(t *testing.T) {
	f := newFlow(t)
	rules := mustRules(t, "group platform-eng "+mcp+" mcp:review repository:read")

	id, err := f.run(t, AuthOptions{})
	if err != nil {
		t.Fatal(err)
	}
	before := rules.Evaluate(id)
	if !slices.Equal(before[mcp], []string{"mcp:review", "repository:read"}) {
		t.Fatalf("alice's entitlements %v", before)
	}

	removed := alice
	removed.Groups = []string{"staff"}
	f.op.Set(removed, faultNone)
	id, err = f.run(t, AuthOptions{})
	if err != nil {
		t.Fatal(err)
	}
	after := rules.Evaluate(id)
	if len(after) != 0 || !Narrowed(before, after) {
		t.Fatalf("after group removal: %v, narrowed %v", after, Narrowed(before, after))
	}
	if lost := Shrunk(before, after); !slices.Equal(lost[mcp], []string{"mcp:review", "repository:read"}) {
		t.Errorf("lost %v", lost)
	}

	f.op.Set(carol, faultNone)
	id, err = f.run(t, AuthOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if id.Subject != carol.Sub || len(rules.Evaluate(id)) != 0 {
		t.Errorf("carol %s: %v", id.Subject, rules.Evaluate(id))
	}
}
