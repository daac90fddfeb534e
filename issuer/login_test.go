package issuer

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/kavachgate/kavach/admin"
	"github.com/kavachgate/kavach/internal/oidctest"
	"github.com/kavachgate/kavach/issuer/idp"
)

// idpEnv is an issuer whose login page signs people in through a real
// OpenID provider (zitadel's op package on loopback), with just-in-time
// users and a rule granting platform-eng repo:read and issues:* on
// testResource.
func idpEnv(t *testing.T, opts ...func(*Config)) (*testEnv, *oidctest.OP) {
	var o *oidctest.OP
	e := newEnv(t, append([]func(*Config){func(c *Config) {
		o = oidctest.Start(t, c.Issuer+pathIdPCallback)
		c.Login = []LoginProvider{{ProviderConfig: idp.ProviderConfig{
			Name: "corpsso", DisplayName: "Corp SSO", Issuer: o.Issuer, ClientID: oidctest.ClientID,
			ClientSecret: oidctest.ClientSecret, Scopes: []string{"openid", "email", "profile", "groups"},
		}, JITUsers: true}}
		c.Entitle = idp.Rules{{Kind: idp.RuleGroup, Value: "platform-eng", Resource: testResource, Scopes: []string{"repo:read", "issues:*"}}}
	}}, opts...)...)
	return e, o
}

// idpSignIn drives a browser from an authorization request through the
// login page, the IdP and back; it returns the page the callback
// answered with (a redirect to the consent page when all went well).
func (e *testEnv) idpSignIn(b *browser, params url.Values) *page {
	e.t.Helper()
	p := b.get(e.url(pathAuthorize) + "?" + params.Encode())
	if p.status != http.StatusFound || p.location == nil || p.location.Path != pathLogin {
		e.t.Fatalf("authorize: %d %v %s", p.status, p.location, p.body)
	}
	login := b.get(p.location.String())
	if login.status != http.StatusOK || !strings.Contains(login.body, "Sign in with Corp SSO") {
		e.t.Fatalf("login page: %d %s", login.status, login.body)
	}
	f := idpForm(login)
	f.Set("provider", "corpsso")
	p = b.post(e.url(pathIdPStart), f)
	for i := 0; p.location != nil && p.location.Path != pathIdPCallback; i++ {
		if i > 10 || (p.status != http.StatusFound && p.status != http.StatusSeeOther) {
			e.t.Fatalf("on the way to the IdP and back: %d %v %s", p.status, p.location, p.body)
		}
		p = b.get(p.location.String())
	}
	if p.location == nil {
		e.t.Fatalf("the IdP did not send the browser back: %d %s", p.status, p.body)
	}
	return b.get(p.location.String())
}

// idpForm is the hidden fields of the login page's IdP button form.
func idpForm(p *page) url.Values {
	v := url.Values{}
	i := strings.Index(p.body, pathIdPStart)
	for _, m := range hiddenField.FindAllStringSubmatch(p.body[i:], 2) {
		v.Set(m[1], m[2])
	}
	return v
}

// consent approves on the consent page the callback redirected to and
// returns the redirect back to the client.
func (e *testEnv) consent(b *browser, p *page) url.Values {
	e.t.Helper()
	if p.status != http.StatusFound || p.location == nil || p.location.Path != pathConsent {
		e.t.Fatalf("callback: %d %v %s", p.status, p.location, p.body)
	}
	c := b.get(p.location.String())
	if c.status != http.StatusOK {
		e.t.Fatalf("consent page: %d %v %s", c.status, c.location, c.body)
	}
	f := c.fields()
	f.Set("action", "approve")
	p = b.post(e.url(pathConsent), f)
	if p.status != http.StatusSeeOther || p.location == nil {
		e.t.Fatalf("consent: %d %s", p.status, p.body)
	}
	return p.location.Query()
}

func TestIdPSignIn(t *testing.T) {
	e, o := idpEnv(t, func(c *Config) { off := false; c.LocalUsers = &off })
	ctx := context.Background()

	// The login page's CSP lets the buttons' POST redirect to the IdP:
	// browsers apply form-action to that redirect.
	lb := newBrowser(t)
	if p := lb.get(e.url(pathAuthorize) + "?" + e.authParams(newVerifier()).Encode()); p.location == nil {
		t.Fatalf("authorize: %d %s", p.status, p.body)
	} else if csp := lb.get(p.location.String()).header.Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'self' "+o.Issuer+";") {
		t.Errorf("login page CSP %q does not allow the redirect to the IdP %s", csp, o.Issuer)
	}

	// The whole dance: login page → IdP → callback → consent → code → token.
	v := newVerifier()
	b := newBrowser(t)
	back := e.idpSignIn(b, e.authParams(v))
	// The session ends with the IdP's ID token (5 minutes at the test
	// OP), not after SessionTTL.
	var sessionAge int
	for _, c := range (&http.Response{Header: back.header}).Cookies() {
		if c.Name == sessionCookie {
			sessionAge = c.MaxAge
		}
	}
	if sessionAge <= 0 || sessionAge > 300 {
		t.Errorf("session cookie Max-Age %d, want at most the ID token's 300 s", sessionAge)
	}
	q := e.consent(b, back)
	status, out := e.exchange(q.Get("code"), v)
	if status != http.StatusOK || out["scope"] != "repo:read issues:list" {
		t.Fatalf("token: %d %v", status, out)
	}
	tok := out["access_token"].(string)
	az := o.LastAuthorize()
	if az.Get("state") == "" || az.Get("nonce") == "" || az.Get("code_challenge_method") != "S256" || az.Get("code_challenge") == "" {
		t.Errorf("the IdP's authorization request lacks state, nonce or PKCE: %v", az)
	}

	// The user was created just in time, linked by (iss, sub), with the
	// rule's entitlements.
	u, err := e.st.UserByIdentity(ctx, o.Issuer, oidctest.Alice.Sub)
	if err != nil {
		t.Fatal(err)
	}
	if got := u.Entitlements[testResource]; strings.Join(got, " ") != "issues:* repo:read" || u.EntitlementsSource != "idp" {
		t.Errorf("entitlements %v from %q", u.Entitlements, u.EntitlementsSource)
	}
	links, _ := e.st.IdentityLinks(ctx, u.ID)
	if len(links) != 1 || links[0].Email != oidctest.Alice.Email || strings.Join(links[0].Groups, ",") != "platform-eng,staff" {
		t.Errorf("links %+v", links)
	}
	// The admin API shows the link, the groups and where the
	// entitlements come from.
	shown, err := e.s.getUser(ctx, u.ID)
	if err != nil || len(shown.IdPLinks) != 1 || shown.IdPLinks[0].Subject != oidctest.Alice.Sub ||
		shown.IdPLinks[0].Provider != "corpsso" || len(shown.IdPLinks[0].Groups) != 2 || shown.EntitlementsSource != "idp" {
		t.Errorf("admin user: %+v %v", shown, err)
	}
	// An agent of hers, within her entitlements.
	ag, err := e.s.createAgent(ctx, &admin.AgentCreate{Name: "bot", Owner: u.ID, Scopes: []string{"repo:read"}})
	if err != nil {
		t.Fatal(err)
	}
	st, at := postForm(t, e.url(pathToken), url.Values{"grant_type": {"client_credentials"}, "client_id": {ag.ID},
		"client_secret": {ag.ClientSecret}, "resource": {testResource}}, "")
	if st != http.StatusOK {
		t.Fatalf("agent token: %d %v", st, at)
	}
	agentTok := at["access_token"].(string)

	// No password form with local users off, and its POST is refused.
	b2 := newBrowser(t)
	p := b2.get(e.url(pathAuthorize) + "?" + e.authParams(newVerifier()).Encode())
	login := b2.get(p.location.String())
	if strings.Contains(login.body, `type="password"`) {
		t.Error("password form shown with local users off")
	}
	f := login.fields()
	f.Set("username", "alice")
	f.Set("password", testPassword)
	if p := b2.post(e.url(pathLogin), f); p.status != http.StatusForbidden {
		t.Errorf("password sign-in with local users off: %d", p.status)
	}

	// Removed from the group at the IdP: the next sign-in narrows her
	// entitlements, and her tokens and her agent's issued before stop.
	o.Set(oidctest.User{Sub: oidctest.Alice.Sub, Email: oidctest.Alice.Email, Name: "Alice", Groups: []string{"staff"}}, oidctest.FaultNone)
	back = e.idpSignIn(newBrowser(t), e.authParams(newVerifier()))
	if back.status != http.StatusFound || back.location.Path != pathConsent {
		t.Fatalf("callback after removal: %d %v", back.status, back.location)
	}
	if e.active(tok) || e.active(agentTok) {
		t.Error("a token issued before the narrowing is still active")
	}
	if u, _ = e.st.GetUser(ctx, u.ID); len(u.Entitlements) != 0 {
		t.Errorf("entitlements after removal: %v", u.Entitlements)
	}
	if len(e.eventsOf("revoked")) == 0 {
		t.Error("no revoked event for the narrowing")
	}

	// Back in the group: a new token is good at once (the cutoff's
	// second does not catch it).
	o.Set(oidctest.Alice, oidctest.FaultNone)
	v = newVerifier()
	b = newBrowser(t)
	q = e.consent(b, e.idpSignIn(b, e.authParams(v)))
	status, out = e.exchange(q.Get("code"), v)
	if status != http.StatusOK || !e.active(out["access_token"].(string)) {
		t.Fatalf("token after re-entitlement: %d %v", status, out)
	}
}

// TestIdPSignInRefused: an ID token with one thing wrong, or an IdP
// that says no, signs no one in and creates nothing.
func TestIdPSignInRefused(t *testing.T) {
	e, o := idpEnv(t)
	ctx := context.Background()
	for _, fault := range []string{oidctest.FaultNonce, oidctest.FaultSignature, oidctest.FaultIssuer, oidctest.FaultExpired, oidctest.FaultDeny} {
		t.Run(fault, func(t *testing.T) {
			o.Set(oidctest.Carol, fault)
			b := newBrowser(t)
			p := e.idpSignIn(b, e.authParams(newVerifier()))
			if p.status < 400 || !strings.Contains(p.body, "Sign-in failed") {
				t.Fatalf("callback: %d %v %s", p.status, p.location, p.body)
			}
			if _, err := e.st.UserByIdentity(ctx, o.Issuer, oidctest.Carol.Sub); err == nil {
				t.Error("a user was created")
			}
			if users, _ := e.st.ListUsers(ctx); len(users) != 1 {
				t.Errorf("%d users", len(users))
			}
		})
	}
	// Without JIT users, an unknown person is refused too.
	e2, o2 := idpEnv(t, func(c *Config) { c.Login[0].JITUsers = false })
	o2.Set(oidctest.Carol, oidctest.FaultNone)
	p := e2.idpSignIn(newBrowser(t), e2.authParams(newVerifier()))
	if p.status != http.StatusBadRequest || !strings.Contains(p.body, "not set up for this server") {
		t.Errorf("unknown user without JIT: %d %s", p.status, p.body)
	}
}

// TestIdPDown: the login page says the IdP is down; local users still
// sign in.
func TestIdPDown(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.Login = []LoginProvider{{ProviderConfig: idp.ProviderConfig{Name: "corpsso", Issuer: "http://127.0.0.1:1", ClientID: "x"}}}
	})
	b := newBrowser(t)
	p := b.get(e.url(pathAuthorize) + "?" + e.authParams(newVerifier()).Encode())
	login := b.get(p.location.String())
	if !strings.Contains(login.body, "corpsso is not reachable right now") || !strings.Contains(login.body, `type="password"`) {
		t.Fatalf("login page with the IdP down: %s", login.body)
	}
	if csp := login.header.Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'self';") {
		t.Errorf("login page CSP %q: a provider that is down adds no form-action source", csp)
	}
	f := idpForm(login)
	f.Set("provider", "corpsso")
	if p := b.post(e.url(pathIdPStart), f); p.status != http.StatusServiceUnavailable || !strings.Contains(p.body, "not reachable") {
		t.Errorf("start with the IdP down: %d", p.status)
	}
	e.codeFlow(newBrowser(t))
}

// TestPromptLogin: prompt=login and max_age=0 ask for a new sign-in
// even with a session, and are passed on to the IdP.
func TestPromptLogin(t *testing.T) {
	e, o := idpEnv(t)
	b := newBrowser(t)
	e.consent(b, e.idpSignIn(b, e.authParams(newVerifier())))
	// With the session, the next request goes straight to consent.
	p := b.get(e.url(pathAuthorize) + "?" + e.authParams(newVerifier()).Encode())
	if p.location == nil || p.location.Path != pathConsent {
		t.Fatalf("with a session: %d %v", p.status, p.location)
	}
	for _, extra := range []url.Values{{"prompt": {"login"}}, {"max_age": {"0"}}} {
		params := e.authParams(newVerifier())
		for k, v := range extra {
			params[k] = v
		}
		p := b.get(e.url(pathAuthorize) + "?" + params.Encode())
		if p.location == nil || p.location.Path != pathLogin {
			t.Fatalf("%v: %d %v", extra, p.status, p.location)
		}
		if c := b.get(e.url(pathConsent) + "?" + p.location.RawQuery); c.location == nil || c.location.Path != pathLogin {
			t.Errorf("%v: the consent page accepted the old session", extra)
		}
		e.consent(b, e.idpSignIn(b, params))
		if o.LastAuthorize().Get("prompt") != "login" {
			t.Errorf("%v: prompt not passed on: %v", extra, o.LastAuthorize())
		}
	}
}

// TestSignInConfig: New refuses a sign-in config that cannot work, naming
// the part.
func TestSignInConfig(t *testing.T) {
	st := newEnv(t).st
	prov := LoginProvider{ProviderConfig: idp.ProviderConfig{Name: "corpsso", Issuer: "https://sso.example", ClientID: "k"}}
	rule := idp.Rule{Kind: idp.RuleGroup, Value: "eng", Resource: testResource, Scopes: []string{"repo:read"}}
	for _, tc := range []struct {
		name string
		cfg  func(c *Config)
		want string
	}{
		{"provider without client id", func(c *Config) {
			p := prov
			p.ClientID = ""
			c.Login = []LoginProvider{p}
		}, `login "corpsso"`},
		{"provider twice", func(c *Config) { c.Login = []LoginProvider{prov, prov} }, "configured twice"},
		{"entitle without a provider", func(c *Config) { c.Entitle = idp.Rules{rule} }, "entitle rules need a login provider"},
		{"entitle for an unknown provider", func(c *Config) {
			r := rule
			r.Provider = "other"
			c.Login, c.Entitle = []LoginProvider{prov}, idp.Rules{r}
		}, `no login provider "other"`},
		{"bad rule", func(c *Config) {
			r := rule
			r.Resource = "not a url"
			c.Login, c.Entitle = []LoginProvider{prov}, idp.Rules{r}
		}, "entitle"},
		{"trust_idjag without jwks", func(c *Config) { c.TrustIDJAG = []idp.TrustedIssuer{{Issuer: "https://sso.example"}} }, "trust_idjag"},
		{"short login key", func(c *Config) { c.Login, c.LoginKey = []LoginProvider{prov}, []byte("short") }, "login key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Issuer: "https://kavach.example", Store: st}
			tc.cfg(&cfg)
			_, err := New(cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New: %v, want an error with %q", err, tc.want)
			}
		})
	}
	// A valid one, and the default of local users.
	s, err := New(Config{Issuer: "https://kavach.example", Store: st, Login: []LoginProvider{prov}, Entitle: idp.Rules{rule}})
	if err != nil || !s.login.local || len(s.login.providers) != 1 || s.cfg.SessionTTL != DefaultSessionTTL {
		t.Errorf("valid config: %v", err)
	}
}
