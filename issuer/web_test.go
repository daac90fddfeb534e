package issuer

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/kavachgate/kavach/policy"
	"github.com/kavachgate/kavach/revocation"
	"github.com/kavachgate/kavach/token"
)

// TestCodeFlowWithOAuth2Client drives authorize → login → consent → token
// → refresh as golang.org/x/oauth2 does it, submitting the HTML forms.
func TestCodeFlowWithOAuth2Client(t *testing.T) {
	env := newEnv(t)
	b := newBrowser(t)
	conf := &oauth2.Config{
		ClientID: env.client.ID,
		Endpoint: oauth2.Endpoint{
			AuthURL: env.url(pathAuthorize), TokenURL: env.url(pathToken), AuthStyle: oauth2.AuthStyleInParams,
		},
		RedirectURL: "http://127.0.0.1:49152/callback",
		Scopes:      []string{"repo:read", "issues:comment"},
	}
	verifier := oauth2.GenerateVerifier()
	authURL := conf.AuthCodeURL("xyz-state", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", testResource))

	p := b.get(authURL)
	if p.status != http.StatusFound || p.location.Path != pathLogin {
		t.Fatalf("authorize: %d %v %s", p.status, p.location, p.body)
	}
	if strings.Contains(p.location.RawQuery, "code_challenge") || len(p.location.Query()) != 1 {
		t.Fatalf("the login URL carries more than the request id: %v", p.location)
	}
	login := b.get(p.location.String())
	if login.status != http.StatusOK {
		t.Fatalf("login page: %d", login.status)
	}
	checkPageHeaders(t, login)
	if !strings.Contains(login.body, "Test &lt;b&gt;App&lt;/b&gt;") {
		t.Fatalf("the client name is not shown escaped:\n%s", login.body)
	}
	f := login.fields()
	f.Set("username", "alice")
	f.Set("password", testPassword)
	p = b.post(env.url(pathLogin), f)
	if p.status != http.StatusSeeOther || p.location.Path != pathConsent {
		t.Fatalf("login: %d %v %s", p.status, p.location, p.body)
	}
	cookie := p.header.Get("Set-Cookie")
	for _, want := range []string{"kavach_session=", "HttpOnly", "SameSite=Lax", "Path=/"} {
		if !strings.Contains(cookie, want) {
			t.Errorf("session cookie %q lacks %s", cookie, want)
		}
	}
	consent := b.get(p.location.String())
	if consent.status != http.StatusOK {
		t.Fatalf("consent page: %d %s", consent.status, consent.body)
	}
	checkPageHeaders(t, consent)
	// The consent form's answer redirects to the client, and browsers apply
	// form-action to that redirect.
	if csp := consent.header.Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'self' http://127.0.0.1:49152;") {
		t.Errorf("consent CSP %q does not allow the redirect to the client", csp)
	}
	for _, want := range []string{testResource, "repo:read", "issues:comment", "alice"} {
		if !strings.Contains(consent.body, want) {
			t.Errorf("the consent page does not show %q", want)
		}
	}
	f = consent.fields()
	f.Set("action", "approve")
	p = b.post(env.url(pathConsent), f)
	if p.status != http.StatusSeeOther || p.location.Host != "127.0.0.1:49152" || p.location.Path != "/callback" {
		t.Fatalf("consent: %d %v %s", p.status, p.location, p.body)
	}
	q := p.location.Query()
	if q.Get("state") != "xyz-state" || q.Get("iss") != env.s.Issuer() || q.Get("code") == "" {
		t.Fatalf("redirect parameters: %v", q)
	}

	ctx := context.Background()
	tok, err := conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	if tok.RefreshToken == "" || tok.Extra("scope") != "repo:read issues:comment" {
		t.Fatalf("token response: refresh token %t, scope %v", tok.RefreshToken != "", tok.Extra("scope"))
	}
	claims, err := env.s.Verifier().Verify(tok.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if claims.Subject != env.user.ID || claims.ClientID != env.client.ID || !slices.Equal([]string(claims.Audience), []string{testResource}) {
		t.Fatalf("claims: sub %s client %s aud %v", claims.Subject, claims.ClientID, claims.Audience)
	}
	if !slices.Equal(claims.Kavach.Agents, []string{env.client.ID}) || len(claims.Kavach.Chain) != 1 || claims.CurrentActor() != env.client.ID {
		t.Fatalf("kvc: %+v", claims.Kavach)
	}
	grant, err := env.st.GetGrant(ctx, claims.Kavach.Chain[0])
	if err != nil || grant.User != env.user.ID || grant.Grantee != env.client.ID || grant.Parent != "" {
		t.Fatalf("consent grant: %+v %v", grant, err)
	}
	if len(env.eventsOf("issued")) != 1 {
		t.Errorf("no issued event")
	}

	// Refresh through the library: an expired token makes it refresh.
	tok.Expiry = time.Now().Add(-time.Minute)
	next, err := conf.TokenSource(ctx, tok).Token()
	if err != nil {
		t.Fatal(err)
	}
	if next.AccessToken == tok.AccessToken || next.RefreshToken == "" || next.RefreshToken == tok.RefreshToken {
		t.Fatal("refresh did not rotate")
	}
	if !env.active(next.AccessToken) {
		t.Fatal("the refreshed token is not active")
	}
	if len(env.eventsOf("refreshed")) != 1 {
		t.Errorf("no refreshed event")
	}
}

func checkPageHeaders(t *testing.T, p *page) {
	t.Helper()
	csp := p.header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "style-src 'unsafe-inline'", "form-action 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %s", csp, want)
		}
	}
	for h, want := range map[string]string{"X-Frame-Options": "DENY", "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"} {
		if got := p.header.Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
}

// A browser with a session goes straight to consent.
func TestAuthorizeWithSessionSkipsLogin(t *testing.T) {
	env := newEnv(t)
	b := newBrowser(t)
	env.codeFlow(b)
	p := b.get(env.url(pathAuthorize) + "?" + env.authParams(newVerifier()).Encode())
	if p.status != http.StatusFound || p.location.Path != pathConsent {
		t.Fatalf("with a session: %d %v", p.status, p.location)
	}
}

func TestAuthorizeRejectsBadPKCE(t *testing.T) {
	env := newEnv(t)
	b := newBrowser(t)
	// The user approved the client before, so its errors go back to it
	// (for a client nobody approved they stay on the issuer's page:
	// TestUnapprovedClientErrorsStayOnIssuer).
	env.codeFlow(b)
	for name, mod := range map[string]func(url.Values){
		"plain": func(v url.Values) {
			v.Set("code_challenge_method", "plain")
			v.Set("code_challenge", strings.Repeat("a", 50))
		},
		"no method":      func(v url.Values) { v.Del("code_challenge_method") },
		"no challenge":   func(v url.Values) { v.Del("code_challenge") },
		"short":          func(v url.Values) { v.Set("code_challenge", "abc") },
		"token response": func(v url.Values) { v.Set("response_type", "token") },
		"no resource":    func(v url.Values) { v.Del("resource") },
		"two resources":  func(v url.Values) { v["resource"] = []string{testResource, otherResource} },
		"bad scope":      func(v url.Values) { v.Set("scope", "repo:*x") },
		"repeated":       func(v url.Values) { v["scope"] = []string{"repo:read", "repo:write"} },
	} {
		t.Run(name, func(t *testing.T) {
			params := env.authParams(newVerifier())
			mod(params)
			p := b.get(env.url(pathAuthorize) + "?" + params.Encode())
			if p.status != http.StatusFound || p.location.Host != "127.0.0.1:5555" {
				t.Fatalf("want an error redirect to the client, got %d %v", p.status, p.location)
			}
			q := p.location.Query()
			want := map[string]string{
				"token response": "unsupported_response_type", "no resource": "invalid_target",
				"two resources": "invalid_target", "bad scope": "invalid_scope",
			}[name]
			if want == "" {
				want = "invalid_request"
			}
			if q.Get("error") != want || q.Get("state") != "st-123" || q.Get("iss") != env.s.Issuer() || q.Has("code") {
				t.Fatalf("redirect query %v, want error %s with state and iss", q, want)
			}
		})
	}
}

// Errors about the client or the redirect URI are shown, never redirected
// (RFC 6749 §4.1.2.1).
func TestAuthorizeNeverRedirectsToUntrustedURI(t *testing.T) {
	env := newEnv(t)
	b := newBrowser(t)
	for name, mod := range map[string]func(url.Values){
		"unknown client":        func(v url.Values) { v.Set("client_id", token.NewID(token.PrefixClient)) },
		"malformed client":      func(v url.Values) { v.Set("client_id", "evil") },
		"no client":             func(v url.Values) { v.Del("client_id") },
		"other host":            func(v url.Values) { v.Set("redirect_uri", "https://attacker.example/callback") },
		"other path":            func(v url.Values) { v.Set("redirect_uri", "http://127.0.0.1:5555/callback/../steal") },
		"localhost not literal": func(v url.Values) { v.Set("redirect_uri", "http://localhost:5555/callback") },
		"no redirect":           func(v url.Values) { v.Del("redirect_uri") },
		"fragment":              func(v url.Values) { v.Set("redirect_uri", "http://127.0.0.1:5555/callback#x") },
		// An error that would otherwise be redirected still is not.
		"bad uri and plain": func(v url.Values) {
			v.Set("redirect_uri", "https://attacker.example/cb")
			v.Set("code_challenge_method", "plain")
		},
	} {
		t.Run(name, func(t *testing.T) {
			params := env.authParams(newVerifier())
			mod(params)
			p := b.get(env.url(pathAuthorize) + "?" + params.Encode())
			if p.status != http.StatusBadRequest || p.location != nil {
				t.Fatalf("got %d Location %v, want a 400 page and no redirect", p.status, p.location)
			}
			if !strings.Contains(p.header.Get("Content-Type"), "text/html") {
				t.Fatalf("not an HTML page: %s", p.header.Get("Content-Type"))
			}
			checkPageHeaders(t, p)
		})
	}
}

func TestCodeExchangePKCE(t *testing.T) {
	env := newEnv(t)
	b := newBrowser(t)
	verifier := newVerifier()

	// A wrong verifier fails, and spends the code: the right one is too
	// late afterwards.
	q := env.loginAndConsent(b, env.authParams(verifier))
	status, out := env.exchange(q.Get("code"), newVerifier())
	wantOAuthError(t, status, out, http.StatusBadRequest, "invalid_grant")
	status, out = env.exchange(q.Get("code"), verifier)
	wantOAuthError(t, status, out, http.StatusBadRequest, "invalid_grant")

	// A missing verifier fails.
	q = env.loginAndConsent(b, env.authParams(verifier))
	status, out = env.exchange(q.Get("code"), "")
	wantOAuthError(t, status, out, http.StatusBadRequest, "invalid_grant")

	// The challenge itself, or a verifier outside RFC 7636's alphabet.
	for _, bad := range []string{s256(verifier), verifier + "!", verifier[:42]} {
		q = env.loginAndConsent(b, env.authParams(verifier))
		status, out = env.exchange(q.Get("code"), bad)
		wantOAuthError(t, status, out, http.StatusBadRequest, "invalid_grant")
	}
}

func TestCodeExchangeMismatches(t *testing.T) {
	env := newEnv(t)
	b := newBrowser(t)
	other := *env.client
	other.ID = token.NewID(token.PrefixClient)
	if err := env.st.CreateClient(context.Background(), &other); err != nil {
		t.Fatal(err)
	}
	v := newVerifier()
	cases := map[string]url.Values{
		"other redirect":  {"redirect_uri": {"http://127.0.0.1:5556/callback"}},
		"no redirect":     {"redirect_uri": nil},
		"other client":    {"client_id": {other.ID}},
		"unknown client":  {"client_id": {token.NewID(token.PrefixClient)}},
		"other resource":  {"resource": {otherResource}},
		"unknown code":    {"code": {newSecret()}},
		"oversized code":  {"code": {strings.Repeat("a", 4096)}},
		"agent as client": {"client_id": {token.NewID(token.PrefixAgent)}},
	}
	want := map[string]string{"unknown client": "invalid_client", "agent as client": "invalid_client", "other resource": "invalid_target"}
	for name, mod := range cases {
		t.Run(name, func(t *testing.T) {
			q := env.loginAndConsent(b, env.authParams(v))
			form := url.Values{
				"grant_type": {"authorization_code"}, "client_id": {env.client.ID}, "code": {q.Get("code")},
				"redirect_uri": {"http://127.0.0.1:5555/callback"}, "code_verifier": {v},
			}
			for k, val := range mod {
				if val == nil {
					form.Del(k)
				} else {
					form[k] = val
				}
			}
			status, out := env.tokenRequest(form)
			code := want[name]
			if code == "" {
				code = "invalid_grant"
			}
			if status < 400 || out["error"] != code {
				t.Fatalf("got %d %v, want %s", status, out, code)
			}
		})
	}
}

// A code used twice: the second use fails and the tokens of the first are
// revoked (RFC 6749 §10.5).
func TestCodeReuseRevokesFirstTokens(t *testing.T) {
	env := newEnv(t)
	b := newBrowser(t)
	v := newVerifier()
	q := env.loginAndConsent(b, env.authParams(v))
	status, first := env.exchange(q.Get("code"), v)
	if status != http.StatusOK {
		t.Fatalf("first use: %d %v", status, first)
	}
	at := first["access_token"].(string)
	if !env.active(at) {
		t.Fatal("the first token is not active")
	}
	status, out := env.exchange(q.Get("code"), v)
	wantOAuthError(t, status, out, http.StatusBadRequest, "invalid_grant")
	if env.active(at) {
		t.Fatal("the first use's access token is still active after the code was reused")
	}
	claims, err := env.s.Verifier().Verify(at)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.st.ChainActive(context.Background(), claims.Kavach.Chain, time.Now()); err == nil {
		t.Fatal("the consent grant is still active")
	}
	if !env.s.cfg.Revoked.IsRevoked(claims.Kavach.Chain[0]) {
		t.Fatal("the gateways' revocation set does not hold the grant")
	}
	status, out = env.refresh(first["refresh_token"].(string), nil)
	wantOAuthError(t, status, out, http.StatusBadRequest, "invalid_grant")
}

func TestExpiredCode(t *testing.T) {
	env := newEnv(t)
	b := newBrowser(t)
	v := newVerifier()
	q := env.loginAndConsent(b, env.authParams(v))
	setClock(t, DefaultCodeTTL+time.Second)
	status, out := env.exchange(q.Get("code"), v)
	wantOAuthError(t, status, out, http.StatusBadRequest, "invalid_grant")
}

func TestLoginCSRF(t *testing.T) {
	env := newEnv(t)
	b := newBrowser(t)
	p := b.get(env.url(pathAuthorize) + "?" + env.authParams(newVerifier()).Encode())
	login := b.get(p.location.String())
	good := login.fields()
	reqID := good.Get("req")
	creds := url.Values{"req": {reqID}, "username": {"alice"}, "password": {testPassword}}

	// Another browser's valid token for the same request.
	other := newBrowser(t)
	otherToken := other.get(p.location.String()).fields().Get("csrf")

	for name, csrf := range map[string]string{"none": "", "wrong": "AAAA" + good.Get("csrf")[4:], "other browser": otherToken} {
		t.Run(name, func(t *testing.T) {
			f := url.Values{}
			for k, v := range creds {
				f[k] = v
			}
			if csrf != "" {
				f.Set("csrf", csrf)
			}
			resp := b.post(env.url(pathLogin), f)
			if resp.status != http.StatusForbidden {
				t.Fatalf("got %d, want 403", resp.status)
			}
			if strings.Contains(resp.header.Get("Set-Cookie"), "kavach_session") {
				t.Fatal("a session cookie was set")
			}
		})
	}
	// Nothing was created: the consent page still wants a login.
	c := b.get(env.url(pathConsent) + "?req=" + reqID)
	if c.status != http.StatusFound || c.location.Path != pathLogin {
		t.Fatalf("after refused logins the consent page answered %d %v", c.status, c.location)
	}
	if len(env.eventsOf("login_failed")) != 0 {
		t.Fatal("a CSRF failure counted as a login attempt")
	}
	// A fresh browser without the login cookie cannot use a leaked token.
	f := url.Values{"req": {reqID}, "csrf": {good.Get("csrf")}, "username": {"alice"}, "password": {testPassword}}
	if resp := newBrowser(t).post(env.url(pathLogin), f); resp.status != http.StatusForbidden {
		t.Fatalf("without the login cookie: %d, want 403", resp.status)
	}
	// The genuine form still works.
	good.Set("username", "alice")
	good.Set("password", testPassword)
	if resp := b.post(env.url(pathLogin), good); resp.status != http.StatusSeeOther {
		t.Fatalf("genuine login: %d %s", resp.status, resp.body)
	}
}

func TestConsentCSRF(t *testing.T) {
	env := newEnv(t)
	b := newBrowser(t)
	env.codeFlow(b) // logs in
	p := b.get(env.url(pathAuthorize) + "?" + env.authParams(newVerifier()).Encode())
	consent := b.get(p.location.String())
	good := consent.fields()

	// A token for another request of the same session.
	p2 := b.get(env.url(pathAuthorize) + "?" + env.authParams(newVerifier()).Encode())
	otherReq := b.get(p2.location.String()).fields().Get("csrf")

	grantsBefore := len(env.eventsOf("delegated"))
	for name, csrf := range map[string]string{"none": "", "wrong": strings.Repeat("A", 43), "other request": otherReq} {
		t.Run(name, func(t *testing.T) {
			f := url.Values{"req": {good.Get("req")}, "action": {"approve"}}
			if csrf != "" {
				f.Set("csrf", csrf)
			}
			resp := b.post(env.url(pathConsent), f)
			if resp.status != http.StatusForbidden || resp.location != nil {
				t.Fatalf("got %d %v, want 403 without redirect", resp.status, resp.location)
			}
		})
	}
	// Without the session cookie even the right token is refused.
	f := url.Values{"req": {good.Get("req")}, "csrf": {good.Get("csrf")}, "action": {"approve"}}
	if resp := newBrowser(t).post(env.url(pathConsent), f); resp.status != http.StatusForbidden {
		t.Fatalf("without a session: %d, want 403", resp.status)
	}
	if len(env.eventsOf("delegated")) != grantsBefore {
		t.Fatal("a refused consent created a grant")
	}
	// The request is untouched: the genuine form still completes it.
	good.Set("action", "approve")
	resp := b.post(env.url(pathConsent), good)
	if resp.status != http.StatusSeeOther || resp.location.Query().Get("code") == "" {
		t.Fatalf("genuine consent: %d %v", resp.status, resp.location)
	}
	// And only once.
	if resp := b.post(env.url(pathConsent), good); resp.status != http.StatusBadRequest || resp.location != nil {
		t.Fatalf("replayed consent: %d %v", resp.status, resp.location)
	}
}

func TestConsentDeny(t *testing.T) {
	env := newEnv(t)
	b := newBrowser(t)
	env.codeFlow(b)
	p := b.get(env.url(pathAuthorize) + "?" + env.authParams(newVerifier()).Encode())
	f := b.get(p.location.String()).fields()
	f.Set("action", "deny")
	resp := b.post(env.url(pathConsent), f)
	q := resp.location.Query()
	if resp.status != http.StatusSeeOther || q.Get("error") != "access_denied" || q.Get("state") != "st-123" || q.Get("iss") != env.s.Issuer() || q.Has("code") {
		t.Fatalf("deny: %d %v", resp.status, resp.location)
	}
}

func TestConsentBeyondEntitlements(t *testing.T) {
	env := newEnv(t)
	b := newBrowser(t)
	env.codeFlow(b)

	// Partly beyond: the page lists the refused scope, the token has the rest.
	v := newVerifier()
	params := env.authParams(v)
	params.Set("scope", "repo:read admin:all repo:*")
	p := b.get(env.url(pathAuthorize) + "?" + params.Encode())
	page := b.get(p.location.String())
	if !strings.Contains(page.body, "admin:all") || !strings.Contains(page.body, "not granted") {
		t.Fatalf("the consent page does not show the refused scopes:\n%s", page.body)
	}
	f := page.fields()
	f.Set("action", "approve")
	q := b.post(env.url(pathConsent), f).location.Query()
	status, out := env.exchange(q.Get("code"), v)
	if status != http.StatusOK || out["scope"] != "repo:read" {
		t.Fatalf("token: %d scope %v, want repo:read only", status, out["scope"])
	}

	// Wholly beyond: invalid_scope back to the client, no consent shown.
	params = env.authParams(newVerifier())
	params.Set("scope", "admin:all")
	p = b.get(env.url(pathAuthorize) + "?" + params.Encode())
	resp := b.get(p.location.String())
	if resp.status != http.StatusFound || resp.location.Query().Get("error") != "invalid_scope" {
		t.Fatalf("got %d %v, want invalid_scope redirect", resp.status, resp.location)
	}

	// A resource the user has no entitlements on.
	params = env.authParams(newVerifier())
	params.Set("resource", "https://elsewhere.example/")
	p = b.get(env.url(pathAuthorize) + "?" + params.Encode())
	resp = b.get(p.location.String())
	if resp.status != http.StatusFound || resp.location.Query().Get("error") != "invalid_target" {
		t.Fatalf("got %d %v, want invalid_target redirect", resp.status, resp.location)
	}

	// No scope asked: the user's entitlements on the resource.
	v = newVerifier()
	params = env.authParams(v)
	params.Del("scope")
	q = env.loginAndConsent(b, params)
	status, out = env.exchange(q.Get("code"), v)
	if status != http.StatusOK || out["scope"] != "repo:read repo:write issues:*" {
		t.Fatalf("default scope: %d %v", status, out["scope"])
	}
}

func TestRefreshRotationAndReuse(t *testing.T) {
	env := newEnv(t)
	b := newBrowser(t)
	first := env.codeFlow(b)
	rt0 := first["refresh_token"].(string)

	status, r1 := env.refresh(rt0, nil)
	if status != http.StatusOK || r1["refresh_token"] == rt0 {
		t.Fatalf("refresh: %d %v", status, r1)
	}
	// A retry within the grace window (a lost response) is answered too.
	status, r1b := env.refresh(rt0, nil)
	if status != http.StatusOK {
		t.Fatalf("retry within grace: %d %v", status, r1b)
	}
	if !env.active(r1["access_token"].(string)) {
		t.Fatal("refreshed token inactive")
	}

	// Past the grace window, the old token is a stolen one: the family dies.
	setClock(t, DefaultRefreshGrace+time.Second)
	status, out := env.refresh(rt0, nil)
	wantOAuthError(t, status, out, http.StatusBadRequest, "invalid_grant")
	for _, tok := range []any{first["access_token"], r1["access_token"], r1b["access_token"]} {
		if env.active(tok.(string)) {
			t.Fatal("an access token of the family is still active")
		}
	}
	status, out = env.refresh(r1["refresh_token"].(string), nil)
	wantOAuthError(t, status, out, http.StatusBadRequest, "invalid_grant")
	if len(env.eventsOf("revoked")) == 0 {
		t.Fatal("no revoked event")
	}
}

func TestRefreshScopeAndResource(t *testing.T) {
	env := newEnv(t)
	b := newBrowser(t)
	rt := env.codeFlow(b)["refresh_token"].(string)

	status, out := env.refresh(rt, url.Values{"resource": {otherResource}})
	wantOAuthError(t, status, out, http.StatusBadRequest, "invalid_target")
	status, out = env.refresh(rt, url.Values{"scope": {"repo:read repo:write"}})
	wantOAuthError(t, status, out, http.StatusBadRequest, "invalid_scope")
	status, out = env.refresh(rt, url.Values{"scope": {"issues:*"}})
	wantOAuthError(t, status, out, http.StatusBadRequest, "invalid_scope")

	// The refused requests did not spend the token; narrowing works.
	status, out = env.refresh(rt, url.Values{"scope": {"repo:read"}, "resource": {testResource}})
	if status != http.StatusOK || out["scope"] != "repo:read" {
		t.Fatalf("narrowing: %d %v", status, out)
	}
	claims, err := env.s.Verifier().Verify(out["access_token"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(claims.Scopes, []string{"repo:read"}) || !slices.Equal([]string(claims.Audience), []string{testResource}) {
		t.Fatalf("narrowed token: scope %v aud %v", claims.Scopes, claims.Audience)
	}
	// Narrowing once does not shrink the family: the next refresh without
	// scope has the original scope again.
	status, out = env.refresh(out["refresh_token"].(string), nil)
	if status != http.StatusOK || !policy.Covers(strings.Fields(out["scope"].(string)), []string{"repo:read", "issues:list"}) {
		t.Fatalf("after narrowing: %d %v", status, out)
	}
	// Another client cannot use the refresh token.
	status, out = env.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "client_id": {"cli_other"}, "refresh_token": {out["refresh_token"].(string)}})
	if status < 400 {
		t.Fatalf("another client refreshed: %d %v", status, out)
	}
}

func TestLoginBruteForce(t *testing.T) {
	env := newEnv(t)
	b := newBrowser(t)
	p := b.get(env.url(pathAuthorize) + "?" + env.authParams(newVerifier()).Encode())
	loginURL := p.location.String()
	try := func(user, pw string) *page {
		f := b.get(loginURL).fields()
		f.Set("username", user)
		f.Set("password", pw)
		return b.post(env.url(pathLogin), f)
	}

	// The same message for a wrong password and an unknown user.
	bad := try("alice", "wrong password")
	unknown := try("mallory", "wrong password")
	if bad.status != http.StatusBadRequest || unknown.status != bad.status ||
		!strings.Contains(bad.body, genericLoginError) || !strings.Contains(unknown.body, genericLoginError) {
		t.Fatalf("bad password %d, unknown user %d", bad.status, unknown.status)
	}
	for range loginUserFailures - 1 {
		if r := try("alice", "wrong password"); r.status != http.StatusBadRequest {
			t.Fatalf("attempt: %d", r.status)
		}
	}
	r := try("alice", testPassword)
	if r.status != http.StatusTooManyRequests {
		t.Fatalf("after %d failures the right password got %d, want 429", loginUserFailures, r.status)
	}
	if s, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || s <= 0 || s > int(loginWindow/time.Second) {
		t.Fatalf("Retry-After %q", r.header.Get("Retry-After"))
	}
	if n := len(env.eventsOf("login_failed")); n != loginUserFailures+2 {
		t.Fatalf("%d login_failed events, want %d", n, loginUserFailures+2)
	}
	// When the window has passed the user can log in, and success resets.
	setClock(t, loginWindow+time.Second)
	if r := try("alice", testPassword); r.status != http.StatusSeeOther {
		t.Fatalf("after the window: %d", r.status)
	}
}

func TestLoginLimitPerAddress(t *testing.T) {
	env := newEnv(t)
	b := newBrowser(t)
	p := b.get(env.url(pathAuthorize) + "?" + env.authParams(newVerifier()).Encode())
	f := b.get(p.location.String()).fields()
	f.Set("password", "wrong password")
	// Different unknown user names from one address; each costs a bcrypt
	// comparison at the issuer's cost, so the limiter is exercised directly
	// up to the last attempt.
	at := now()
	for i := range loginIPFailures {
		env.s.logins.attempt("user"+strconv.Itoa(i), "127.0.0.1", at)
	}
	f.Set("username", "someone-new")
	if r := b.post(env.url(pathLogin), f); r.status != http.StatusTooManyRequests {
		t.Fatalf("got %d, want 429 for an address past its limit", r.status)
	}
}

// A revoked user cannot log in and an existing session stops working.
func TestRevokedUser(t *testing.T) {
	env := newEnv(t)
	b := newBrowser(t)
	env.codeFlow(b)
	at := time.Now()
	cut := revocation.Entry{ID: env.user.ID, Cutoff: revocation.CutoffSubject, Before: at, Until: at.Add(time.Hour)}
	if err := env.st.RevokeUser(context.Background(), env.user.ID, at, cut); err != nil {
		t.Fatal(err)
	}
	p := b.get(env.url(pathAuthorize) + "?" + env.authParams(newVerifier()).Encode())
	if p.location.Path != pathLogin {
		t.Fatalf("a revoked user's session still reaches consent: %v", p.location)
	}
	f := b.get(p.location.String()).fields()
	f.Set("username", "alice")
	f.Set("password", testPassword)
	if r := b.post(env.url(pathLogin), f); r.status != http.StatusBadRequest || !strings.Contains(r.body, genericLoginError) {
		t.Fatalf("revoked user login: %d", r.status)
	}
}
