package issuer

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// phishRedirect is what an attacker registers by dynamic registration.
const phishRedirect = "https://evil.example/phish"

// registerPublic registers a client by RFC 7591 and returns its id.
func (e *testEnv) registerPublic(name string, redirects ...string) string {
	e.t.Helper()
	body := `{"client_name":` + quote(name) + `,"redirect_uris":["` + strings.Join(redirects, `","`) + `"],"token_endpoint_auth_method":"none"}`
	status, out := register(e.t, e, "application/json", body)
	if status != http.StatusCreated {
		e.t.Fatalf("register: %d %v", status, out)
	}
	return out["client_id"].(string)
}

// wantIssuerPage fails unless p is the issuer's own HTML error page (400),
// with no redirect anywhere.
func wantIssuerPage(t *testing.T, what string, p *page) {
	t.Helper()
	if p.status != http.StatusBadRequest || p.location != nil || !strings.Contains(p.header.Get("Content-Type"), "text/html") {
		t.Errorf("%s: %d Location %v (%s), want the issuer's 400 page and no redirect", what, p.status, p.location, p.header.Get("Content-Type"))
	}
}

// wantErrorRedirect fails unless p sends the browser to the client with
// an RFC 6749 error response carrying state and iss (RFC 9207).
func (e *testEnv) wantErrorRedirect(what string, p *page, host, code string) {
	e.t.Helper()
	if p.status != http.StatusFound && p.status != http.StatusSeeOther || p.location == nil || p.location.Host != host {
		e.t.Errorf("%s: %d Location %v, want an error redirect to %s", what, p.status, p.location, host)
		return
	}
	q := p.location.Query()
	if q.Get("error") != code || q.Get("state") != "st-123" || q.Get("iss") != e.s.Issuer() || q.Has("code") {
		e.t.Errorf("%s: redirect query %v, want error %s with state and iss", what, q, code)
	}
}

// Authorization errors that would go back to the client's redirect URI
// (a broken request, a denial), for a client anyone can create.
var authorizeErrors = map[string]struct {
	mod  func(url.Values)
	code string
}{
	"unknown scope":   {func(v url.Values) { v.Set("scope", "repo:*x") }, "invalid_scope"},
	"bad resource":    {func(v url.Values) { v.Set("resource", "not a url") }, "invalid_target"},
	"missing PKCE":    {func(v url.Values) { v.Del("code_challenge"); v.Del("code_challenge_method") }, "invalid_request"},
	"token response":  {func(v url.Values) { v.Set("response_type", "token") }, "unsupported_response_type"},
	"repeated params": {func(v url.Values) { v["scope"] = []string{"repo:read", "repo:write"} }, "invalid_request"},
}

// TestUnapprovedClientErrorsStayOnIssuer: RFC 9700 §4.11.2. A client
// registered by anyone (RFC 7591, or a metadata document) that the user
// has not approved gets no redirect from the issuer: its errors, before
// and after sign-in, and the user's denial are shown on the issuer's page,
// so the issuer is no open redirector to a phishing page.
func TestUnapprovedClientErrorsStayOnIssuer(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *testEnv) {
		docs := newDocServer(t, false)
		docs.setDoc(func(id string) any {
			return map[string]any{"client_id": id, "client_name": "Doc Tool", "redirect_uris": []string{phishRedirect}, "token_endpoint_auth_method": "none"}
		})
		for kind, clientID := range map[string]string{
			"registered": e.registerPublic("Evil Tool", phishRedirect),
			"document":   docs.URL + "/client.json",
		} {
			params := func(mod func(url.Values)) url.Values {
				v := e.authParams(newVerifier())
				v.Set("client_id", clientID)
				v.Set("redirect_uri", phishRedirect)
				if mod != nil {
					mod(v)
				}
				return v
			}
			// No session: nobody signed in, nobody approved.
			fresh := newBrowser(t)
			for name, tc := range authorizeErrors {
				p := fresh.get(e.url(pathAuthorize) + "?" + params(tc.mod).Encode())
				wantIssuerPage(t, kind+", "+name+", signed out", p)
				if strings.Contains(p.body, "evil.example") {
					t.Errorf("%s, %s: the page before sign-in links to the client", kind, name)
				}
			}
			// Signed in, approved another client only.
			b := newBrowser(t)
			e.codeFlow(b)
			for name, tc := range authorizeErrors {
				wantIssuerPage(t, kind+", "+name+", signed in", b.get(e.url(pathAuthorize)+"?"+params(tc.mod).Encode()))
			}
			// An error found after sign-in (nothing grantable), and a
			// denial: the page says so and leaves the way back to the user.
			p := b.get(e.url(pathAuthorize) + "?" + params(func(v url.Values) { v.Set("scope", "admin:all") }).Encode())
			if p.status != http.StatusFound || p.location.Path != pathConsent {
				t.Fatalf("%s: a well-formed request: %d %v", kind, p.status, p.location)
			}
			p = b.get(p.location.String())
			wantIssuerPage(t, kind+", nothing grantable", p)
			if !strings.Contains(p.body, `href="https://evil.example/phish?`) {
				t.Errorf("%s, nothing grantable: no link back for the user to follow:\n%s", kind, p.body)
			}
			p = b.get(e.url(pathAuthorize) + "?" + params(nil).Encode())
			f := b.get(p.location.String()).fields()
			f.Set("action", "deny")
			wantIssuerPage(t, kind+", denied", b.post(e.url(pathConsent), f))
		}
	}, func(c *Config) { c.AllowLoopbackMetadata = true })
}

// TestTrustedClientErrorsRedirect: a client the operator registered, and
// a client the signed-in user approved before, keep RFC 6749's error
// redirect with error, state and iss.
func TestTrustedClientErrorsRedirect(t *testing.T) {
	e := newEnv(t)
	status, out := e.adminJSON(http.MethodPost, "/v1/clients", map[string]any{
		"name": "Operator App", "kind": "confidential", "redirect_uris": []string{"https://app.example/cb"},
	})
	if status != http.StatusCreated {
		t.Fatalf("create client: %d %v", status, out)
	}
	operator := out["client_id"].(string)
	fresh := newBrowser(t)
	for name, tc := range authorizeErrors {
		v := e.authParams(newVerifier())
		v.Set("client_id", operator)
		v.Set("redirect_uri", "https://app.example/cb")
		tc.mod(v)
		e.wantErrorRedirect("operator client, "+name, fresh.get(e.url(pathAuthorize)+"?"+v.Encode()), "app.example", tc.code)
	}

	dcr := e.registerPublic("Approved Tool", "http://127.0.0.1/callback")
	b := newBrowser(t)
	v := newVerifier()
	params := e.authParams(v)
	params.Set("client_id", dcr)
	e.loginAndConsent(b, params) // the user approves it once
	for name, tc := range authorizeErrors {
		params := e.authParams(newVerifier())
		params.Set("client_id", dcr)
		tc.mod(params)
		e.wantErrorRedirect("approved client, "+name, b.get(e.url(pathAuthorize)+"?"+params.Encode()), "127.0.0.1:5555", tc.code)
	}
	// Another user who never approved it gets the page.
	other := newBrowser(t)
	params = e.authParams(newVerifier())
	params.Set("client_id", dcr)
	params.Set("scope", "repo:*x")
	wantIssuerPage(t, "approved by another user", other.get(e.url(pathAuthorize)+"?"+params.Encode()))
}

// TestConsentShowsWhoAndWhere: the consent page says where the browser
// will be sent (the redirect's origin), marks a self-registered client's
// name as unverified, and names a metadata document client with its URL.
func TestConsentShowsWhoAndWhere(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.AllowLoopbackMetadata = true })
	docs := newDocServer(t, false)
	docs.setDoc(func(id string) any {
		return map[string]any{"client_id": id, "client_name": "Doc Tool", "redirect_uris": []string{phishRedirect}, "token_endpoint_auth_method": "none"}
	})
	status, out := e.adminJSON(http.MethodPost, "/v1/clients", map[string]any{
		"name": "Operator App", "kind": "confidential", "redirect_uris": []string{"https://app.example/cb"},
	})
	if status != http.StatusCreated {
		t.Fatalf("create client: %d %v", status, out)
	}
	docURL := docs.URL + "/client.json"
	docHost := strings.TrimPrefix(docs.URL, "http://")
	b := newBrowser(t)
	e.codeFlow(b) // signed in
	for _, tc := range []struct {
		client, redirect string
		want, notWant    []string
	}{
		{e.registerPublic("Evil Tool", phishRedirect), phishRedirect,
			[]string{"Evil Tool", "unverified", "You will be sent back to <code>https://evil.example</code>"}, nil},
		{docURL, phishRedirect,
			[]string{"Doc Tool", docURL, docHost, "You will be sent back to <code>https://evil.example</code>"}, []string{"unverified"}},
		{out["client_id"].(string), "https://app.example/cb",
			[]string{"Operator App", "You will be sent back to <code>https://app.example</code>"}, []string{"unverified"}},
	} {
		params := e.authParams(newVerifier())
		params.Set("client_id", tc.client)
		params.Set("redirect_uri", tc.redirect)
		p := b.get(e.url(pathAuthorize) + "?" + params.Encode())
		if p.status != http.StatusFound || p.location.Path != pathConsent {
			t.Fatalf("%s: authorize %d %v %s", tc.client, p.status, p.location, p.body)
		}
		page := b.get(p.location.String())
		for _, w := range tc.want {
			if !strings.Contains(page.body, w) {
				t.Errorf("%s: the consent page does not show %q:\n%s", tc.client, w, page.body)
			}
		}
		for _, w := range tc.notWant {
			if strings.Contains(page.body, w) {
				t.Errorf("%s: the consent page shows %q:\n%s", tc.client, w, page.body)
			}
		}
	}
	// The sign-in page says it too.
	params := e.authParams(newVerifier())
	params.Set("client_id", e.registerPublic("Evil Tool", phishRedirect))
	params.Set("redirect_uri", phishRedirect)
	fresh := newBrowser(t)
	p := fresh.get(e.url(pathAuthorize) + "?" + params.Encode())
	if login := fresh.get(p.location.String()); !strings.Contains(login.body, "unverified") {
		t.Errorf("the sign-in page does not mark the self-registered name as unverified:\n%s", login.body)
	}
}
