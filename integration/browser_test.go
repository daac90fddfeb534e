package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// TestBrowserLoginConsent signs a user in through the issuer's login and
// consent pages in a real browser (headless Chromium), as with a native
// app that registered itself and listens on a loopback redirect URI
// (RFC 8252 §7.3): a wrong password, the right one, Allow, and the app's
// listener receives code, state and iss. The app redeems the code with
// its PKCE verifier (golang.org/x/oauth2) and calls the gateway as the
// user, within what the user consented to. The consent page is kept as a
// screenshot in the artifacts directory.
func TestBrowserLoginConsent(t *testing.T) {
	b := startBrowser(t) // first: skips before anything else starts when chromium is missing
	f := startIssuer(t, "sqlite ./data/kavach.db")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// The app's loopback redirect listener.
	callbacks := make(chan url.Values, 1)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/callback" {
			http.NotFound(w, r)
			return
		}
		select {
		case callbacks <- r.URL.Query():
		default:
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, `<!doctype html><title>Signed in</title><p id="done">Signed in. You can close this window.</p>`)
	}))
	t.Cleanup(app.Close)
	redirectURI := app.URL + "/callback"

	const password = "correct horse battery staple"
	f.createUser(t, "usr_alice", "alice", password, map[string][]string{f.resource: {"repo:read", "repo:write"}})
	clientID := f.registerClient(t, "Kavach Browser Test", redirectURI)

	conf := &oauth2.Config{
		ClientID:    clientID,
		Endpoint:    oauth2.Endpoint{AuthURL: f.issuer + "/oauth/authorize", TokenURL: f.issuer + "/oauth/token", AuthStyle: oauth2.AuthStyleInParams},
		RedirectURL: redirectURI,
		Scopes:      []string{"repo:read"},
	}
	verifier, state := oauth2.GenerateVerifier(), rand.Text()
	resource := oauth2.SetAuthURLParam("resource", f.resource)
	authURL := conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), resource)

	// The login page's headers, by plain HTTP (its own authorization
	// request): never framed, nothing loaded, not cached.
	r := do(t, newReq(t, http.MethodGet, authURL, "", nil))
	loc := r.Header.Get("Location")
	if r.Status != http.StatusFound || !strings.HasPrefix(loc, "/oauth/login?req=") {
		t.Fatalf("authorize without a session: %d, Location %q, want 302 to the login page\n%s", r.Status, loc, r.Body)
	}
	r = do(t, newReq(t, http.MethodGet, f.issuer+loc, "", nil))
	if r.Status != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("login page: %d %s", r.Status, r.Header.Get("Content-Type"))
	}
	csp := map[string]string{}
	for _, d := range strings.Split(r.Header.Get("Content-Security-Policy"), ";") {
		name, val, _ := strings.Cut(strings.TrimSpace(d), " ")
		csp[name] = val
	}
	if csp["frame-ancestors"] != "'none'" || csp["default-src"] != "'none'" {
		t.Errorf("login page Content-Security-Policy = %q, want default-src 'none' and frame-ancestors 'none'", r.Header.Get("Content-Security-Policy"))
	}
	if got := r.Header.Get("X-Frame-Options"); got != "DENY" {
		t.Errorf("login page X-Frame-Options = %q, want DENY", got)
	}
	if got := r.Header.Get("Cache-Control"); !strings.Contains(got, "no-store") {
		t.Errorf("login page Cache-Control = %q, want no-store", got)
	}

	p := b.newPage(t)
	p.navigate(authURL)
	p.waitFor("the login page", `location.href.startsWith(`+jsString(f.issuer+"/oauth/login?req=")+`) && document.readyState === "complete" && !!document.querySelector("#password")`, 20*time.Second)
	var login struct{ Title, Text string }
	p.mustEval(`({Title: document.title, Text: document.body.innerText})`, &login)
	if login.Title != "Sign in · Kavach" || !strings.Contains(login.Text, "Kavach Browser Test") {
		t.Errorf("login page: title %q, text %q; want the sign-in page naming the app", login.Title, login.Text)
	}

	// A wrong password: the same page again, a message that does not say
	// which part was wrong, the user name kept.
	p.fill("#username", "alice")
	p.fill("#password", "not the password")
	p.click(`button[type=submit]`)
	p.waitFor("the failed sign-in message", `document.readyState === "complete" && !!document.querySelector(".error") && document.querySelector(".error").innerText.includes("Wrong user name or password.")`, 20*time.Second)
	var kept string
	p.mustEval(`document.querySelector("#username").value`, &kept)
	if kept != "alice" {
		t.Errorf("after a failed sign-in the user name field holds %q, want alice", kept)
	}

	p.fill("#password", password)
	p.click(`button[type=submit]`)
	p.waitFor("the consent page", `location.href.startsWith(`+jsString(f.issuer+"/oauth/consent?req=")+`) && document.readyState === "complete" && !!document.querySelector("button[value=approve]")`, 20*time.Second)
	var consent struct {
		Title, Text, AllowColor string
		Scopes                  []string
	}
	p.mustEval(`({Title: document.title, Text: document.body.innerText,
		AllowColor: getComputedStyle(document.querySelector("button[value=approve]")).backgroundColor,
		Scopes: [...document.querySelectorAll("ul:not(.muted) li code")].map(e => e.textContent)})`, &consent)
	if consent.Title != "Allow access · Kavach" {
		t.Errorf("consent page title %q", consent.Title)
	}
	for _, want := range []string{"Kavach Browser Test", "alice", f.resource, clientID, "You will be sent back to " + app.URL} {
		if !strings.Contains(consent.Text, want) {
			t.Errorf("the consent page does not show %q:\n%s", want, consent.Text)
		}
	}
	if !slices.Equal(consent.Scopes, []string{"repo:read"}) {
		t.Errorf("the consent page lists permissions %q, want exactly the requested [repo:read]", consent.Scopes)
	}
	// The page's inline style applies under its CSP (style-src
	// 'unsafe-inline'): a user sees a styled Allow button.
	if consent.AllowColor != "rgb(31, 79, 209)" {
		t.Errorf("Allow button background %q: the page's style did not apply", consent.AllowColor)
	}
	shot := p.screenshot()
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil || img.Bounds().Dx() < 300 || img.Bounds().Dy() < 300 {
		t.Errorf("consent screenshot is not a usable PNG: %v", err)
	}
	shotPath := filepath.Join(artifactsDir(t), "browser-consent.png")
	if err := os.WriteFile(shotPath, shot, 0o644); err != nil {
		t.Errorf("saving the consent screenshot: %v", err)
	} else {
		t.Logf("consent page screenshot: %s", shotPath)
	}

	// Allow: the browser goes back to the app, which the consent form's
	// CSP (form-action) must let the redirect reach.
	p.click(`button[value=approve]`)
	var q url.Values
	select {
	case q = <-callbacks:
	case <-time.After(20 * time.Second):
		var at string
		_ = p.eval(`location.href`, &at)
		t.Fatalf("the app's redirect URI was not reached within 20s; the browser is at %s", at)
	}
	p.waitFor("the app's page", `location.href.startsWith(`+jsString(redirectURI+"?")+`) && !!document.querySelector("#done")`, 20*time.Second)
	if q.Get("error") != "" || q.Get("code") == "" {
		t.Fatalf("authorization response %v, want a code", q)
	}
	if q.Get("state") != state {
		t.Errorf("state = %q, want %q", q.Get("state"), state)
	}
	if q.Get("iss") != f.issuer {
		t.Errorf("iss = %q, want %q (RFC 9207)", q.Get("iss"), f.issuer)
	}

	tok, err := conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier), resource)
	if err != nil {
		t.Fatalf("redeeming the code: %v", err)
	}
	if got, _ := tok.Extra("scope").(string); got != "repo:read" {
		t.Errorf("token scope %q, want repo:read", got)
	}
	if tok.RefreshToken == "" {
		t.Error("no refresh token for the code flow")
	}

	if r := f.get(t, "/api/repos/kavach", tok.AccessToken); r.Status != http.StatusOK || r.Body != "upstream ok" {
		t.Fatalf("the user's token at the gateway: %d %s", r.Status, r.Body)
	}
	seen := expectOneUpstream(t, f.up)
	if got := seen.Header.Get("Kavach-Subject"); got != "usr_alice" {
		t.Errorf("Kavach-Subject = %q, want usr_alice", got)
	}
	if got := seen.Header.Get("Kavach-Actor"); got != clientID {
		t.Errorf("Kavach-Actor = %q, want the app %s", got, clientID)
	}
	if seen.Header.Get("Authorization") != "" {
		t.Error("the token reached the upstream")
	}
	// The user consented to reading only.
	if r := do(t, newReq(t, http.MethodPost, f.gateway+"/api/repos/kavach", tok.AccessToken, nil)); r.Status != http.StatusForbidden {
		t.Errorf("a write with a read-only consent: %d, want 403", r.Status)
	}
	expectNoUpstream(t, f.up)

	// The code is single-use: a replay is refused and revokes what the
	// first redemption produced, at the gateway too.
	_, err = conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier), resource)
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
		t.Errorf("replaying the code: %v, want invalid_grant", err)
	}
	if r := f.get(t, "/api/repos/kavach", tok.AccessToken); r.Status != http.StatusUnauthorized {
		t.Errorf("the token after its code was replayed: %d, want 401", r.Status)
	}
	expectNoUpstream(t, f.up)
}

// jsString quotes s as a JavaScript string literal (JSON strings are).
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
