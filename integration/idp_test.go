package integration

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/net/html"
	"golang.org/x/oauth2"

	"github.com/kavachgate/kavach/internal/oidctest"
)

// TestIdPSignIn is issue 16 end to end through bin/kavach: one issuer
// and gateway in one Caddyfile signs people in through a real OpenID
// provider (internal/oidctest, zitadel/oidc's op package) and maps the
// IdP's groups to MCP tool access on the demo MCP server; a second
// provider is down; ID-JAGs signed by a test IdP key (served as a JWKS)
// are trusted for the jwt-bearer grant. The subtests share that one
// stack and run in order: each leaves the state the next one reads.
func TestIdPSignIn(t *testing.T) {
	b := startBrowser(t) // first: skips (fails under CI=true) before anything starts when chromium is missing
	f := startIdPStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	clientID := f.registerClient(t, "Kavach IdP Test App", f.redirectURI)
	var userTok string // alice's token from the browser sign-in
	var alice string   // her Kavach user id
	var jagTok string  // the token for her ID-JAG

	t.Run("browser sign-in through the IdP, MCP call within the group's entitlement", func(t *testing.T) {
		f.op.Set(oidctest.Alice, oidctest.FaultNone)
		conf, verifier, state, authURL := f.authRequest(clientID, "mcp:review repository:read repository:write")

		// The login page's CSP lets its buttons' POST redirect to the
		// IdP: browsers apply form-action to that redirect.
		r := do(t, newReq(t, http.MethodGet, authURL, "", nil))
		if loc := r.Header.Get("Location"); r.Status != http.StatusFound || !strings.HasPrefix(loc, "/oauth/login?req=") {
			t.Fatalf("authorize without a session: %d, Location %q", r.Status, loc)
		} else if r = do(t, newReq(t, http.MethodGet, f.issuer+loc, "", nil)); !strings.Contains(r.Header.Get("Content-Security-Policy"), "form-action 'self' "+f.op.Issuer+";") {
			t.Errorf("login page CSP %q does not allow the redirect to the IdP %s", r.Header.Get("Content-Security-Policy"), f.op.Issuer)
		}

		p := b.newPage(t)
		p.navigate(authURL)
		p.waitFor("the login page with the provider's button", `location.href.startsWith(`+jsString(f.issuer+"/oauth/login?req=")+`) && document.readyState === "complete" && !!document.querySelector("button[name=provider][value=corpsso]")`, 20*time.Second)
		var login struct {
			Text     string
			Password bool
			Buttons  []string
		}
		p.mustEval(`({Text: document.body.innerText, Password: !!document.querySelector("input[type=password]"),
			Buttons: [...document.querySelectorAll("button[name=provider]")].map(e => e.value + ":" + e.innerText.trim())})`, &login)
		if !slices.Equal(login.Buttons, []string{"corpsso:Sign in with Corp SSO", "backupsso:Sign in with Backup SSO"}) {
			t.Errorf("login page buttons %q, want one per configured provider", login.Buttons)
		}
		if login.Password {
			t.Error("the login page has a password field although local_users is off")
		}
		// The provider that is down is marked so; the one that is up is not.
		if !strings.Contains(login.Text, "Backup SSO is not reachable right now.") || strings.Contains(login.Text, "Corp SSO is not reachable") {
			t.Errorf("login page text does not mark exactly Backup SSO as down:\n%s", login.Text)
		}

		p.click(`button[name=provider][value=corpsso]`)
		// The OP signs alice in at once and sends the browser back to
		// /oauth/idp/callback, which sends it on to the consent page.
		p.waitFor("the consent page after the IdP", `location.href.startsWith(`+jsString(f.issuer+"/oauth/consent?req=")+`) && document.readyState === "complete" && !!document.querySelector("button[value=approve]")`, 20*time.Second)
		ar := f.op.LastAuthorize()
		if ar.Get("state") == "" || ar.Get("nonce") == "" || ar.Get("code_challenge_method") != "S256" || ar.Get("client_id") != oidctest.ClientID ||
			ar.Get("redirect_uri") != f.issuer+"/oauth/idp/callback" {
			t.Errorf("the authorization request at the IdP: %v; want state, nonce, PKCE S256, Kavach's client and callback", ar)
		}
		var consent string
		p.mustEval(`document.body.innerText`, &consent)
		if !strings.Contains(consent, "Kavach IdP Test App") {
			t.Errorf("consent page does not name the app:\n%s", consent)
		}
		p.click(`button[value=approve]`)
		q := f.waitCallback(t)
		if q.Get("error") != "" || q.Get("code") == "" || q.Get("state") != state || q.Get("iss") != f.issuer {
			t.Fatalf("authorization response %v, want a code, state %s, iss %s", q, state, f.issuer)
		}
		tok, err := conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier), oauth2.SetAuthURLParam("resource", f.resource))
		if err != nil {
			t.Fatalf("redeeming the code: %v", err)
		}
		// platform-eng is entitled to mcp:review repository:read; the
		// request's repository:write is beyond it.
		if got, _ := tok.Extra("scope").(string); !slices.Equal(sortedFields(got), []string{"mcp:review", "repository:read"}) {
			t.Errorf("token scope %q, want the group's mcp:review repository:read", got)
		}
		userTok = tok.AccessToken

		users := f.users(t)
		if len(users) != 1 {
			t.Fatalf("users after alice's first sign-in: %+v, want exactly her (created just in time)", users)
		}
		alice = users[0].ID
		u := f.user(t, alice)
		if u.EntitlementsSource != "idp" || !slices.Equal(u.Entitlements[f.resource], []string{"mcp:review", "repository:read"}) ||
			len(u.IdPLinks) != 1 || u.IdPLinks[0].Issuer != f.op.Issuer || u.IdPLinks[0].Subject != oidctest.Alice.Sub {
			t.Errorf("alice as the admin API shows her: %+v", u)
		}

		// The MCP call through the gateway, with the official Go SDK.
		log := &statusLog{base: bearerTransport{userTok}}
		s := connectBearer(ctx, t, f.resource, log)
		who, err := callDemoTool(ctx, s, "read_file", map[string]any{"path": "README.md"})
		if err != nil {
			t.Fatalf("read_file with the group's entitlement: %v", err)
		}
		if who.Subject != alice || who.Actor != clientID {
			t.Errorf("read_file arrived as subject %q actor %q, want %s and the app %s", who.Subject, who.Actor, alice, clientID)
		}
		log.take()
		if _, err := callDemoTool(ctx, s, "write_file", map[string]any{"path": "README.md", "content": "x"}); err == nil {
			t.Error("write_file beyond the group's entitlement succeeded")
		}
		if got := log.take(); len(got) != 1 || got[0].MCPMethod != "tools/call" || got[0].Status != http.StatusForbidden {
			t.Errorf("write_file at the gateway: %v, want one tools/call answered 403", got)
		}
	})
	if alice == "" {
		t.Fatal("no signed-in user; the rest depends on her")
	}

	t.Run("ID-JAG exchanged for a token that calls a tool; bad assertions refused", func(t *testing.T) {
		jagClient := f.registerJAGClient(t, "Kavach ID-JAG Client")
		other := f.registerJAGClient(t, "Another ID-JAG Client")
		good := jagClaims{Iss: f.op.Issuer, Sub: oidctest.Alice.Sub, Aud: f.issuer, ClientID: jagClient, Resource: f.resource, Scope: "mcp:review repository:read"}

		meta := do(t, newReq(t, http.MethodGet, f.issuer+"/.well-known/oauth-authorization-server", "", nil))
		if !strings.Contains(meta.Body, `"urn:ietf:params:oauth:grant-type:jwt-bearer"`) {
			t.Errorf("metadata does not advertise the jwt-bearer grant: %s", meta.Body)
		}

		first := f.jag.sign(t, good, "oauth-id-jag+jwt")
		r := f.jwtBearer(t, jagClient, first)
		var tok struct {
			AccessToken string `json:"access_token"`
			Scope       string `json:"scope"`
		}
		if r.Status != http.StatusOK || json.Unmarshal([]byte(r.Body), &tok) != nil || tok.AccessToken == "" {
			t.Fatalf("exchanging a good ID-JAG: %d %s", r.Status, r.Body)
		}
		jagTok = tok.AccessToken
		s := connectBearer(ctx, t, f.resource, bearerTransport{tok.AccessToken})
		who, err := callDemoTool(ctx, s, "read_file", map[string]any{"path": "README.md"})
		if err != nil {
			t.Fatalf("read_file with the ID-JAG's token: %v", err)
		}
		if who.Subject != alice || who.Actor != jagClient {
			t.Errorf("read_file arrived as subject %q actor %q, want %s and %s", who.Subject, who.Actor, alice, jagClient)
		}

		for _, c := range []struct {
			name, assertion, client, code string
		}{
			{"replayed", first, jagClient, "invalid_grant"},
			{"expired", f.jag.sign(t, good.with(func(c *jagClaims) { c.IAT, c.EXP = -10*time.Minute, -6*time.Minute }), "oauth-id-jag+jwt"), jagClient, "invalid_grant"},
			{"wrong aud", f.jag.sign(t, good.with(func(c *jagClaims) { c.Aud = "http://127.0.0.1:1/other-as" }), "oauth-id-jag+jwt"), jagClient, "invalid_grant"},
			{"wrong typ", f.jag.sign(t, good, "JWT"), jagClient, "invalid_grant"},
			{"wrong client", f.jag.sign(t, good, "oauth-id-jag+jwt"), other, "invalid_grant"},
			{"untrusted key", f.jag.signWith(t, newJAGKey(t), good, "oauth-id-jag+jwt"), jagClient, "invalid_grant"},
			{"over-entitled", f.jag.sign(t, good.with(func(c *jagClaims) { c.Scope = "mcp:review repository:write" }), "oauth-id-jag+jwt"), jagClient, "invalid_scope"},
		} {
			r := f.jwtBearer(t, c.client, c.assertion)
			var e struct {
				Error       string `json:"error"`
				AccessToken string `json:"access_token"`
			}
			_ = json.Unmarshal([]byte(r.Body), &e)
			if r.Status != http.StatusBadRequest || e.Error != c.code || e.AccessToken != "" {
				t.Errorf("%s ID-JAG: %d %s, want 400 %s", c.name, r.Status, r.Body, c.code)
			}
		}

		t.Run("official MCP TypeScript SDK, CrossAppAccessProvider", func(t *testing.T) {
			node, _ := tsClientNode(t)
			var client struct {
				ClientID     string `json:"client_id"`
				ClientSecret string `json:"client_secret"`
			}
			body, _ := json.Marshal(map[string]any{"name": "Kavach ID-JAG TS client", "kind": "confidential", "redirect_uris": []string{f.redirectURI}})
			req := newReq(t, http.MethodPost, "http://"+f.admin+"/v1/clients", f.adminToken(), bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			if r := do(t, req); r.Status != http.StatusCreated || json.Unmarshal([]byte(r.Body), &client) != nil || client.ClientSecret == "" {
				t.Fatalf("creating a confidential client: %d %s", r.Status, r.Body)
			}
			// The SDK asks for every scope the gateway's metadata lists
			// (scopes_supported) and sends that scope with the jwt-bearer
			// grant too, and the issuer refuses an assertion beyond the
			// user's entitlements (invalid_scope) rather than narrowing it.
			// So alice is given all of them here, through the admin API
			// (the IdP's rules replace that at her next sign-in).
			body, _ = json.Marshal(map[string][]string{f.resource: {"mcp:review", "repository:read", "repository:write"}})
			req = newReq(t, http.MethodPut, "http://"+f.admin+"/v1/users/"+alice+"/entitlements", f.adminToken(), bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			if r := do(t, req); r.Status != http.StatusOK {
				t.Fatalf("widening alice's entitlements: %d %s", r.Status, r.Body)
			}
			idToken := "idt-" + rand.Text()
			f.jag.mu.Lock()
			f.jag.exchange = jagExchange{subjectToken: idToken, idpClient: "ts-agent-at-idp", iss: f.op.Issuer, sub: oidctest.Alice.Sub, kavachClient: client.ClientID}
			f.jag.exchanges = nil
			f.jag.mu.Unlock()

			res := runIDJAGClient(t, node, f.resource, []string{
				"KAVACH_IDJAG_ISSUER=" + f.issuer, "KAVACH_IDJAG_CLIENT_ID=" + client.ClientID, "KAVACH_IDJAG_CLIENT_SECRET=" + client.ClientSecret,
				"KAVACH_IDJAG_IDP_TOKEN_URL=" + f.jag.tokenURL, "KAVACH_IDJAG_IDP_CLIENT_ID=ts-agent-at-idp", "KAVACH_IDJAG_ID_TOKEN=" + idToken,
				"KAVACH_IDJAG_TOOL=read_file",
			})
			if res.Tool.IsError || res.Tool.Structured.CalledBy.Subject != alice || res.Tool.Structured.CalledBy.Actor != client.ClientID {
				t.Errorf("read_file through the SDK: %+v, want a result called by %s through %s", res.Tool, alice, client.ClientID)
			}
			f.jag.mu.Lock()
			seen := f.jag.exchanges
			f.jag.mu.Unlock()
			if len(res.Assertions) == 0 || len(seen) != len(res.Assertions) {
				t.Fatalf("the SDK asked for %d assertions and the IdP saw %d exchanges", len(res.Assertions), len(seen))
			}
			for _, x := range seen {
				if x.Get("audience") != f.issuer || x.Get("resource") != f.resource {
					t.Errorf("token exchange at the IdP: audience %q resource %q, want %s and %s", x.Get("audience"), x.Get("resource"), f.issuer, f.resource)
				}
			}
			var jwtBearer []int
			for _, h := range res.HTTP {
				if h.URL == f.issuer+"/oauth/token" {
					jwtBearer = append(jwtBearer, h.Status)
				}
			}
			if len(jwtBearer) != len(res.Assertions) || slices.ContainsFunc(jwtBearer, func(s int) bool { return s != http.StatusOK }) {
				t.Errorf("Kavach token endpoint answered %v for %d assertions, want 200 each\n%+v", jwtBearer, len(res.Assertions), res.HTTP)
			}
			t.Logf("SDK flow: %d assertion(s) (scopes %+v); %d HTTP requests", len(res.Assertions), res.Assertions, len(res.HTTP))
		})
	})

	t.Run("IdP down: the login page says so", func(t *testing.T) {
		ua := newUA(t, f.redirectURI)
		_, _, _, authURL := f.authRequest(clientID, "mcp:review")
		page := browse(t, ua, http.MethodGet, authURL, nil)
		if page.status != http.StatusOK || !strings.Contains(page.text, "Backup SSO is not reachable right now.") {
			t.Fatalf("login page: %d\n%s", page.status, page.text)
		}
		form := page.form(t, "backupsso")
		form.values.Set("provider", "backupsso")
		again := browse(t, ua, http.MethodPost, form.action, form.values)
		if again.status != http.StatusServiceUnavailable || !strings.Contains(again.text, "Backup SSO is not reachable right now. Try again in a moment.") ||
			again.url.Path != "/oauth/idp/start" {
			t.Errorf("choosing the provider that is down: %d at %s\n%s", again.status, again.url, again.text)
		}
	})

	t.Run("a bad ID token: an error page, no user created", func(t *testing.T) {
		for _, fault := range []string{oidctest.FaultNonce, oidctest.FaultSignature, oidctest.FaultIssuer, oidctest.FaultExpired, oidctest.FaultDeny} {
			// carol has no Kavach user yet: a sign-in that went through
			// would create her (jit_users on).
			f.op.Set(oidctest.Carol, fault)
			q, page := f.signInHTTP(t, clientID, "mcp:review")
			if q != nil {
				t.Errorf("fault %s: the app got an authorization response %v", fault, q)
				continue
			}
			if page.status != http.StatusBadRequest || page.url.Path != "/oauth/idp/callback" || !strings.Contains(page.text, "Sign-in failed") {
				t.Errorf("fault %s: %d at %s, want the sign-in failed page from the callback:\n%s", fault, page.status, page.url, page.text)
			}
			if users := f.users(t); len(users) != 1 || users[0].ID != alice {
				t.Errorf("fault %s: users %+v, want alice only", fault, users)
			}
		}
		f.op.Set(oidctest.Alice, oidctest.FaultNone)
	})

	t.Run("group removed at the IdP: the next sign-in narrows, agent and earlier token cut", func(t *testing.T) {
		var agent agentOut
		f.cli(t, &agent, "agent", "create", "--name", "alice-bot", "--owner", alice, "--scope", "mcp:review repository:read", "--ttl", "1h")
		agentTok, err := f.clientToken(ctx, agent)
		if err != nil {
			t.Fatalf("the agent's token: %v", err)
		}
		for what, tok := range map[string]string{"the agent": agentTok, "alice's earlier token": userTok, "the ID-JAG's token": jagTok} {
			if st := mcpInitStatus(t, f.resource, tok); st != http.StatusOK {
				t.Fatalf("%s before the group change: %d, want 200", what, st)
			}
		}
		// The directory drops alice from platform-eng.
		removed := oidctest.Alice
		removed.Groups = []string{"staff"}
		f.op.Set(removed, oidctest.FaultNone)
		q, page := f.signInHTTP(t, clientID, "mcp:review")
		if q != nil && q.Get("code") != "" {
			t.Errorf("alice, out of the group, still got a code: %v", q)
		}
		if q == nil {
			t.Logf("the sign-in outside the group stopped at %s (%d): %s", page.url, page.status, page.text)
		} else {
			t.Logf("the sign-in outside the group ended at the app with %v", q)
		}
		u := f.user(t, alice)
		if len(u.Entitlements[f.resource]) != 0 || len(u.IdPLinks) != 1 || !slices.Equal(u.IdPLinks[0].Groups, []string{"staff"}) {
			t.Errorf("alice after the sign-in outside the group: %+v", u)
		}
		for what, tok := range map[string]string{"the agent": agentTok, "alice's earlier token": userTok, "the ID-JAG's token": jagTok} {
			if st := mcpInitStatus(t, f.resource, tok); st != http.StatusUnauthorized {
				t.Errorf("%s after the group change: %d, want 401", what, st)
			}
		}
		// The agent cannot get a new token within entitlements alice no
		// longer has.
		if _, err := f.clientToken(ctx, agent); err == nil {
			t.Error("the agent got a new token after its owner's entitlements were removed")
		}
	})
}

// idpStack is the issuer fixture with sign-in through the OP.
type idpStack struct {
	*issuerFixture
	op          *oidctest.OP
	jag         *jagIdP
	redirectURI string
	callbacks   chan url.Values
}

func startIdPStack(t *testing.T) *idpStack {
	t.Helper()
	dir := t.TempDir()
	pi, pg, pa, pu := freePort(t), freePort(t), freePort(t), freePort(t)
	f := &idpStack{issuerFixture: &issuerFixture{
		dir:     dir,
		env:     []string{"KAVACH_ADMIN_TOKEN=it-admin-" + fmt.Sprint(time.Now().UnixNano()), "IT_IDP_SECRET=" + oidctest.ClientSecret},
		issuer:  fmt.Sprintf("http://127.0.0.1:%d", pi),
		gateway: fmt.Sprintf("http://127.0.0.1:%d", pg),
		admin:   fmt.Sprintf("127.0.0.1:%d", pa),
	}, callbacks: make(chan url.Values, 4)}
	f.resource = f.gateway + "/mcp"
	f.op = oidctest.Start(t, f.issuer+"/oauth/idp/callback")
	// A second provider that was up and went away before Kavach ever
	// reached it.
	down := oidctest.Start(t, f.issuer+"/oauth/idp/callback")
	down.Close()
	f.jag = startJAGIdP(t)

	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/callback" {
			http.NotFound(w, r)
			return
		}
		select {
		case f.callbacks <- r.URL.Query():
		default:
		}
		_, _ = io.WriteString(w, `<!doctype html><title>Signed in</title><p id="done">Signed in.</p>`)
	}))
	t.Cleanup(app.Close)
	f.redirectURI = app.URL + "/callback"

	startChild(t, "demo MCP server", dir, demoUpstreamBin(t), "-addr", fmt.Sprintf("127.0.0.1:%d", pu))
	caddyfile := fmt.Sprintf(`{
	admin off
	persist_config off
	auto_https off
	kavach {
		issuer %[1]s
		admin %[3]s
		admin_token {env.KAVACH_ADMIN_TOKEN}
	}
}
%[1]s {
	kavach_issuer {
		issuer %[1]s
		store sqlite ./data/kavach.db
		login oidc corpsso {
			issuer %[5]s
			client_id %[7]s
			client_secret {env.IT_IDP_SECRET}
			scopes openid email profile groups
			display_name "Corp SSO"
			jit_users on
		}
		login oidc backupsso {
			issuer %[6]s
			client_id %[7]s
			client_secret {env.IT_IDP_SECRET}
			display_name "Backup SSO"
		}
		entitle group platform-eng %[2]s/mcp mcp:review repository:read
		local_users off
		trust_idjag %[5]s {
			jwks %[8]s
		}
	}
}
%[2]s {
	kavach /mcp* {
		resource %[2]s/mcp
		scope mcp:review
		tool read_file repository:read
		tool write_file repository:write
	}
	reverse_proxy /mcp* 127.0.0.1:%[4]d
}
`, f.issuer, f.gateway, f.admin, pu, f.op.Issuer, down.Issuer, oidctest.ClientID, f.jag.jwksURL)
	if err := os.WriteFile(filepath.Join(dir, "Caddyfile"), []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, stderr, err := kavachEnv(dir, f.env, "validate", "--config", "Caddyfile", "--adapter", "caddyfile"); err != nil {
		t.Fatalf("kavach validate: %v\n%s", err, stderr)
	}
	f.proc = startGateway(t, dir, f.env, pi, pg, pa, pu)
	return f
}

// authRequest is a public client's authorization request with PKCE and
// RFC 8707 resource, as golang.org/x/oauth2 builds it.
func (f *idpStack) authRequest(clientID, scope string) (conf *oauth2.Config, verifier, state, authURL string) {
	conf = &oauth2.Config{
		ClientID:    clientID,
		Endpoint:    oauth2.Endpoint{AuthURL: f.issuer + "/oauth/authorize", TokenURL: f.issuer + "/oauth/token", AuthStyle: oauth2.AuthStyleInParams},
		RedirectURL: f.redirectURI,
		Scopes:      strings.Fields(scope),
	}
	verifier, state = oauth2.GenerateVerifier(), rand.Text()
	authURL = conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", f.resource))
	return conf, verifier, state, authURL
}

func (f *idpStack) waitCallback(t *testing.T) url.Values {
	t.Helper()
	select {
	case q := <-f.callbacks:
		return q
	case <-time.After(20 * time.Second):
		t.Fatal("the app's redirect URI was not reached within 20s")
		return nil
	}
}

// signInHTTP runs the sign-in as a user agent without a browser: the
// login page, the corpsso button, the OP and back, and Allow on the
// consent page. It returns the app's authorization response, or nil and
// the page where the flow stopped.
func (f *idpStack) signInHTTP(t *testing.T, clientID, scope string) (url.Values, *htmlPage) {
	t.Helper()
	ua := newUA(t, f.redirectURI)
	_, _, _, authURL := f.authRequest(clientID, scope)
	page := browse(t, ua, http.MethodGet, authURL, nil)
	if page.status != http.StatusOK {
		return nil, page
	}
	form := page.form(t, "corpsso")
	form.values.Set("provider", "corpsso")
	page = browse(t, ua, http.MethodPost, form.action, form.values)
	if page.redirect != nil {
		return page.redirect, page
	}
	if page.status != http.StatusOK || page.url.Path != "/oauth/consent" {
		return nil, page
	}
	form = page.form(t, "approve")
	form.values.Set("action", "approve")
	page = browse(t, ua, http.MethodPost, form.action, form.values)
	return page.redirect, page
}

// users lists the issuer's users through the admin API.
func (f *idpStack) users(t *testing.T) []adminUser {
	t.Helper()
	var out struct {
		Users []adminUser `json:"users"`
	}
	f.adminGet(t, "/v1/users", &out)
	return out.Users
}

func (f *idpStack) user(t *testing.T, id string) adminUser {
	t.Helper()
	var u adminUser
	f.adminGet(t, "/v1/users/"+url.PathEscape(id), &u)
	return u
}

func (f *idpStack) adminGet(t *testing.T, path string, out any) {
	t.Helper()
	r := do(t, newReq(t, http.MethodGet, "http://"+f.admin+path, f.adminToken(), nil))
	if r.Status != http.StatusOK || json.Unmarshal([]byte(r.Body), out) != nil {
		t.Fatalf("GET %s: %d %s", path, r.Status, r.Body)
	}
}

type adminUser struct {
	ID                 string              `json:"id"`
	Name               string              `json:"name"`
	Entitlements       map[string][]string `json:"entitlements"`
	EntitlementsSource string              `json:"entitlements_source"`
	IdPLinks           []struct {
		Issuer  string   `json:"issuer"`
		Subject string   `json:"subject"`
		Groups  []string `json:"groups"`
	} `json:"idp_links"`
}

// registerJAGClient registers a public client that may use the
// jwt-bearer grant (RFC 7591).
func (f *idpStack) registerJAGClient(t *testing.T, name string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{
		"client_name": name, "redirect_uris": []string{f.redirectURI}, "token_endpoint_auth_method": "none",
		"grant_types":    []string{"authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:jwt-bearer"},
		"response_types": []string{"code"},
	})
	req := newReq(t, http.MethodPost, f.issuer+"/oauth/register", "", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	r := do(t, req)
	var out struct {
		ClientID   string   `json:"client_id"`
		GrantTypes []string `json:"grant_types"`
	}
	if r.Status != http.StatusCreated || json.Unmarshal([]byte(r.Body), &out) != nil || !slices.Contains(out.GrantTypes, "urn:ietf:params:oauth:grant-type:jwt-bearer") {
		t.Fatalf("registering a jwt-bearer client: %d %s", r.Status, r.Body)
	}
	return out.ClientID
}

// jwtBearer presents an assertion at the token endpoint (RFC 7523 §2.1)
// as a public client.
func (f *idpStack) jwtBearer(t *testing.T, clientID, assertion string) response {
	t.Helper()
	form := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "assertion": {assertion}, "client_id": {clientID}}
	req := newReq(t, http.MethodPost, f.issuer+"/oauth/token", "", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return do(t, req)
}

// mcpInitStatus is the gateway's status for an MCP initialize with tok.
func mcpInitStatus(t *testing.T, endpoint, tok string) int {
	t.Helper()
	req := newReq(t, http.MethodPost, endpoint, tok, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"kavach-it","version":"0"}}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	return do(t, req).Status
}

// jagIdP is the enterprise IdP's ID-JAG side: an ES256 key whose public
// half is served as a JWK set on loopback, and a token endpoint that
// issues ID-JAGs by RFC 8693 token exchange
// (draft-ietf-oauth-identity-assertion-authz-grant §4.3) for the one
// subject token it was told of.
type jagIdP struct {
	key      *ecdsa.PrivateKey
	kid      string
	jwksURL  string
	tokenURL string

	mu        sync.Mutex
	exchange  jagExchange
	exchanges []url.Values // the token exchange requests seen
}

// jagExchange is what the IdP's token endpoint accepts and issues: for
// subjectToken from idpClient, an ID-JAG for (iss, sub) naming
// kavachClient, the client at the resource's authorization server.
type jagExchange struct {
	subjectToken, idpClient, iss, sub, kavachClient string
}

func newJAGKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func startJAGIdP(t *testing.T) *jagIdP {
	t.Helper()
	j := &jagIdP{key: newJAGKey(t), kid: "jag-" + rand.Text()[:8]}
	set, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &j.key.PublicKey, KeyID: j.kid, Algorithm: "ES256", Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/jwks":
			_, _ = w.Write(set)
		case "/token":
			j.serveTokenExchange(t, w, r)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	j.jwksURL, j.tokenURL = srv.URL+"/jwks", srv.URL+"/token"
	return j
}

func (j *jagIdP) serveTokenExchange(t *testing.T, w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.Method != http.MethodPost {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"error":"invalid_request"}`)
		return
	}
	j.mu.Lock()
	x := j.exchange
	j.exchanges = append(j.exchanges, r.PostForm)
	j.mu.Unlock()
	f := r.PostForm
	if f.Get("grant_type") != "urn:ietf:params:oauth:grant-type:token-exchange" || f.Get("requested_token_type") != "urn:ietf:params:oauth:token-type:id-jag" ||
		f.Get("subject_token_type") != "urn:ietf:params:oauth:token-type:id_token" || x.subjectToken == "" ||
		f.Get("subject_token") != x.subjectToken || f.Get("client_id") != x.idpClient {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"error":"invalid_grant"}`)
		return
	}
	jag := j.sign(t, jagClaims{Iss: x.iss, Sub: x.sub, Aud: f.Get("audience"), ClientID: x.kavachClient, Resource: f.Get("resource"), Scope: f.Get("scope")}, "oauth-id-jag+jwt")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"access_token": jag, "issued_token_type": "urn:ietf:params:oauth:token-type:id-jag", "token_type": "N_A",
		"expires_in": 300, "scope": f.Get("scope"),
	})
}

// jagClaims are an ID-JAG's claims; IAT and EXP are offsets from now
// (default: issued now, valid 5 minutes).
type jagClaims struct {
	Iss, Sub, Aud, ClientID, Resource, Scope string
	IAT, EXP                                 time.Duration
}

func (c jagClaims) with(change func(*jagClaims)) jagClaims {
	change(&c)
	return c
}

func (j *jagIdP) sign(t *testing.T, c jagClaims, typ string) string {
	return j.signWith(t, j.key, c, typ)
}

// signWith signs with key under the published kid (a key the JWKS does
// not hold, when key is not j.key).
func (j *jagIdP) signWith(t *testing.T, key *ecdsa.PrivateKey, c jagClaims, typ string) string {
	t.Helper()
	if c.EXP == 0 {
		c.EXP = 5 * time.Minute
	}
	now := time.Now()
	claims := map[string]any{
		"iss": c.Iss, "sub": c.Sub, "aud": c.Aud, "client_id": c.ClientID, "jti": rand.Text(),
		"iat": now.Add(c.IAT).Unix(), "exp": now.Add(c.EXP).Unix(), "resource": c.Resource, "scope": c.Scope,
	}
	opts := (&jose.SignerOptions{}).WithType(jose.ContentType(typ)).WithHeader("kid", j.kid)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// A user agent without a browser: a cookie jar, redirects followed except
// to the app's redirect URI, whose query it keeps.
func newUA(t *testing.T, redirectURI string) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: 20 * time.Second, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), redirectURI) || len(via) >= 12 {
			return http.ErrUseLastResponse
		}
		return nil
	}}
}

// htmlPage is where a browse ended: the page's status, URL, text and
// forms, or the query of a redirect to the app.
type htmlPage struct {
	status   int
	url      *url.URL
	text     string
	forms    []*htmlForm
	redirect url.Values
}

func browse(t *testing.T, ua *http.Client, method, target string, form url.Values) *htmlPage {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := ua.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	p := &htmlPage{status: resp.StatusCode, url: resp.Request.URL}
	if loc, err := resp.Location(); err == nil && resp.StatusCode/100 == 3 {
		p.redirect = loc.Query()
		return p
	}
	doc, err := html.Parse(resp.Body)
	if err != nil {
		t.Fatalf("%s: %v", p.url, err)
	}
	var text strings.Builder
	attr := func(n *html.Node, name string) string {
		for _, a := range n.Attr {
			if a.Key == name {
				return a.Val
			}
		}
		return ""
	}
	var cur *htmlForm
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		switch {
		case n.Type == html.TextNode:
			text.WriteString(n.Data)
		case n.Type == html.ElementNode && n.Data == "form":
			action, _ := p.url.Parse(attr(n, "action"))
			cur = &htmlForm{action: action.String(), values: url.Values{}, buttons: map[string]map[string]bool{}}
			p.forms = append(p.forms, cur)
		case n.Type == html.ElementNode && n.Data == "input" && attr(n, "type") == "hidden" && cur != nil:
			cur.values.Set(attr(n, "name"), attr(n, "value"))
		case n.Type == html.ElementNode && n.Data == "button" && attr(n, "name") != "" && cur != nil:
			if cur.buttons[attr(n, "name")] == nil {
				cur.buttons[attr(n, "name")] = map[string]bool{}
			}
			cur.buttons[attr(n, "name")][attr(n, "value")] = true
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	p.text = strings.Join(strings.Fields(text.String()), " ")
	return p
}

// form returns the page's form with a button of that value.
func (p *htmlPage) form(t *testing.T, button string) *htmlForm {
	t.Helper()
	for _, f := range p.forms {
		for _, values := range f.buttons {
			if values[button] {
				return f
			}
		}
	}
	t.Fatalf("%s (%d) has no form with a %q button:\n%s", p.url, p.status, button, p.text)
	return nil
}

// idjagResult is idjag-flow.mjs's output.
type idjagResult struct {
	Event      string `json:"event"`
	Error      string `json:"error"`
	Assertions []struct {
		Audience, Resource, Scope string
	} `json:"assertions"`
	HTTP []struct {
		Method, URL string
		Status      int
	} `json:"http"`
	Tool struct {
		IsError    bool `json:"isError"`
		Structured struct {
			CalledBy demoCaller `json:"called_by"`
		} `json:"structured"`
	} `json:"tool"`
}

// runIDJAGClient runs tsclient/idjag-flow.mjs against endpoint.
func runIDJAGClient(t *testing.T, node, endpoint string, env []string) *idjagResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "idjag-flow.mjs", endpoint)
	cmd.Dir = tsClientDir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	setChildAttrs(cmd)
	err := cmd.Run()
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var res idjagResult
	if jerr := json.Unmarshal([]byte(lines[len(lines)-1]), &res); jerr != nil || err != nil || res.Event != "result" {
		t.Fatalf("idjag-flow.mjs: %v / %v\n%s\nstderr:\n%s", err, jerr, stdout.String(), stderr.String())
	}
	return &res
}
