package issuer

import (
	"context"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/kavachgate/kavach/admin"
	"github.com/kavachgate/kavach/audit"
	"github.com/kavachgate/kavach/internal/oidctest"
	"github.com/kavachgate/kavach/issuer/store"
	"github.com/kavachgate/kavach/token"
)

const xssName = `<script>alert(1)</script>`
const xssTool = `<img src=x onerror=alert(1)>`

// consoleEnv is an issuer on SQLite with a real trail file: alice
// (orchestrator → reviewer, and an agent named like a script), bob (his
// deploy bot) and olga, an operator.
type consoleEnv struct {
	*testEnv
	trail                  audit.Browser
	path                   string
	orch, rev, xss, bobBot *admin.Agent
	bob, olga              *store.User
	w                      *audit.Writer
}

func newConsoleEnv(t *testing.T, opts ...func(*Config)) *consoleEnv {
	t.Helper()
	ctx := context.Background()
	// The trail: the real file sink and writer, read back by the real
	// browser the node gives the issuer.
	cfg := audit.Config{Sink: audit.SinkFile, Path: filepath.Join(t.TempDir(), "audit.jsonl"),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	w, err := audit.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() })
	trail, err := audit.OpenBrowser(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = trail.Close() })
	opts = append([]func(*Config){func(c *Config) {
		c.Trail = trail
		c.Console.Operators = []string{"olga"}
	}}, opts...)
	e := &consoleEnv{testEnv: newEnv(t, opts...), w: w, trail: trail, path: cfg.Path}
	h, err := bcrypt.GenerateFromPassword([]byte(testPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []**store.User{&e.bob, &e.olga} {
		name := "bob"
		if u == &e.olga {
			name = "olga"
		}
		*u = &store.User{ID: token.NewID(token.PrefixUser), Name: name, PasswordHash: string(h),
			Entitlements: map[string][]string{testResource: {"repo:read"}}, CreatedAt: now()}
		if err := e.st.CreateUser(ctx, *u); err != nil {
			t.Fatal(err)
		}
	}
	mk := func(owner string, in admin.AgentCreate) *admin.Agent {
		t.Helper()
		in.Owner, in.TTL = owner, admin.Duration(time.Hour)
		a, err := e.s.createAgent(ctx, &in)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	e.orch = mk(e.user.ID, admin.AgentCreate{Name: "orchestrator", Scopes: []string{"repo:read", "repo:write"}})
	e.rev, err = e.s.createChild(ctx, e.orch.ID, &admin.AgentCreate{Name: "reviewer", Scopes: []string{"repo:read"}, TTL: admin.Duration(10 * time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	e.xss = mk(e.user.ID, admin.AgentCreate{Name: xssName, Scopes: []string{"repo:read"}})
	e.bobBot = mk(e.bob.ID, admin.AgentCreate{Name: "bobs-deploy-bot", Scopes: []string{"repo:read"}})

	// The reviewer reads a diff (allowed) and tries to write (denied for
	// a missing scope), calls a tool named like markup; bob's bot calls.
	e.call(e.rev, "req_1", "read_diff", audit.Allow, "", 200)
	e.call(e.rev, "req_2", "write_file", audit.Deny, "insufficient_scope: repository:write", 403)
	e.call(e.rev, "req_3", xssTool, audit.Deny, "insufficient_scope: tool:x", 403)
	e.call(e.bobBot, "req_4", "deploy_prod", audit.Allow, "", 200)
	return e
}

// call writes a request's decision and outcome records, durably.
func (e *consoleEnv) call(a *admin.Agent, req, tool string, d audit.Decision, reason string, status int) {
	e.t.Helper()
	ctx := context.Background()
	dec := &audit.Record{Kind: audit.KindDecision, Decision: d, Reason: reason, RequestID: req, Sub: a.Owner,
		Actor: a.ID, Agents: a.Agents, Chain: a.Chain, ClientID: a.ID, JTI: "tok_" + req, Method: "POST",
		Host: "mcp.example.test", Path: "/mcp", MCPMethod: "tools/call", Tool: tool,
		ArgsSHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}
	if reason == "" {
		dec.Reason = "allowed"
	}
	if d == audit.Deny {
		dec.Status = status
	}
	if err := e.w.WriteDurable(ctx, dec); err != nil {
		e.t.Fatal(err)
	}
	if d == audit.Allow {
		if err := e.w.WriteDurable(ctx, &audit.Record{Kind: audit.KindOutcome, RequestID: req, Status: status, Duration: 2 * time.Millisecond}); err != nil {
			e.t.Fatal(err)
		}
	}
}

func (e *consoleEnv) console(path string) string { return e.url(pathConsole + path) }

// signIn signs a browser in through the console's redirect to the login
// page and returns it on the console's home.
func (e *consoleEnv) signIn(name string) *browser {
	e.t.Helper()
	b := newBrowser(e.t)
	p := b.get(e.console("/agents"))
	if p.status != http.StatusFound || p.location == nil || p.location.Path != pathLogin {
		e.t.Fatalf("unauthenticated console: %d %v", p.status, p.location)
	}
	if got := p.location.Query().Get("return"); got != pathConsole+"/agents" {
		e.t.Fatalf("return = %q", got)
	}
	login := b.get(p.location.String())
	if login.status != http.StatusOK || !strings.Contains(login.body, `type="password"`) {
		e.t.Fatalf("login page: %d %s", login.status, login.body)
	}
	f := login.fields()
	f.Set("username", name)
	f.Set("password", testPassword)
	p = b.post(e.url(pathLogin), f)
	if p.status != http.StatusSeeOther || p.location == nil || p.location.Path != pathConsole+"/agents" {
		e.t.Fatalf("login: %d %v %s", p.status, p.location, p.body)
	}
	return b
}

func (e *consoleEnv) page(b *browser, path string, want int) *page {
	e.t.Helper()
	p := b.get(e.console(path))
	if p.status != want {
		e.t.Fatalf("GET %s: %d, want %d: %s", path, p.status, want, p.body)
	}
	return p
}

// formOf returns the action and fields of the form whose button says
// button.
func formOf(t *testing.T, p *page, button string) (string, url.Values) {
	t.Helper()
	for _, f := range regexp.MustCompile(`(?s)<form[^>]*>.*?</form>`).FindAllString(p.body, -1) {
		if !strings.Contains(f, button) {
			continue
		}
		action := html.UnescapeString(regexp.MustCompile(`action="([^"]*)"`).FindStringSubmatch(f)[1])
		v := url.Values{}
		for _, m := range hiddenField.FindAllStringSubmatch(f, -1) {
			v.Set(m[1], html.UnescapeString(m[2]))
		}
		return action, v
	}
	t.Fatalf("no form with %q in:\n%s", button, p.body)
	return "", nil
}

func TestConsoleSignInAndTree(t *testing.T) {
	e := newConsoleEnv(t)
	b := e.signIn("alice")
	p := e.page(b, "/agents", http.StatusOK)
	// The reviewer is nested inside the orchestrator's item.
	orch := strings.Index(p.body, ">orchestrator</a>")
	rev := strings.Index(p.body, ">reviewer</a>")
	if orch < 0 || rev < orch || !strings.Contains(p.body[orch:rev], `<ul class="tree">`) {
		t.Fatalf("tree does not show orchestrator → reviewer:\n%s", p.body)
	}
	for _, want := range []string{e.orch.ID, e.rev.ID, "repo:write", "client secret", "active"} {
		if !strings.Contains(p.body, want) {
			t.Errorf("agents page lacks %q", want)
		}
	}
	if strings.Contains(p.body, "bobs-deploy-bot") || strings.Contains(p.body, e.bobBot.ID) {
		t.Error("alice sees bob's agent")
	}
	// Last use comes from the trail.
	if !strings.Contains(p.body[rev:], "Last use</dt><dd>20") {
		t.Errorf("reviewer's last use not shown:\n%s", p.body[rev:])
	}
	// Home, trail and applications answer too.
	for _, path := range []string{"/", "/trail", "/clients", "/agents/" + e.rev.ID} {
		e.page(b, path, http.StatusOK)
	}
}

func TestConsoleUserIsolation(t *testing.T) {
	e := newConsoleEnv(t)
	alice := e.signIn("alice")
	for _, path := range []string{
		"/agents/" + e.bobBot.ID, "/agents/" + e.bobBot.ID + "/revoke", "/trail?agent=" + e.bobBot.ID,
		"/agents?user=" + e.bob.ID, "/agents/agt_doesnotexist",
	} {
		p := e.page(alice, path, http.StatusNotFound)
		if strings.Contains(p.body, "bobs-deploy-bot") || strings.Contains(p.body, "bob") {
			t.Errorf("%s names bob's things", path)
		}
	}
	p := e.page(alice, "/trail", http.StatusOK)
	if strings.Contains(p.body, "deploy_prod") {
		t.Error("alice's trail shows bob's request")
	}
	// A POST revoking bob's bot with alice's valid token for it changes
	// nothing.
	f := url.Values{"csrf": {formToken(e.sessionCSRF(alice), "console", "revoke-agent "+e.bobBot.ID)}}
	if p := alice.post(e.console("/agents/"+e.bobBot.ID+"/revoke"), f); p.status != http.StatusNotFound {
		t.Errorf("alice revoking bob's agent: %d", p.status)
	}
	e.wantActive(e.bobBot.ID, true)

	// The operator sees bob's tree and trail.
	olga := e.signIn("olga")
	p = e.page(olga, "/agents", http.StatusOK)
	if !strings.Contains(p.body, "bobs-deploy-bot") || !strings.Contains(p.body, "orchestrator") {
		t.Errorf("operator does not see everyone's agents:\n%s", p.body)
	}
	if !strings.Contains(p.body, "operator") {
		t.Error("operator badge missing")
	}
	e.page(olga, "/agents/"+e.bobBot.ID, http.StatusOK)
	p = e.page(olga, "/trail?user="+e.bob.ID, http.StatusOK)
	if !strings.Contains(p.body, "deploy_prod") || strings.Contains(p.body, "read_diff") {
		t.Error("operator's trail of bob is wrong")
	}
}

// sessionCSRF reads the browser's session CSRF secret from the store (a
// test of what a valid token for another purpose cannot do).
func (e *consoleEnv) sessionCSRF(b *browser) string {
	e.t.Helper()
	u, _ := url.Parse(e.srv.URL)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == sessionCookie {
			sess, err := e.st.GetSession(context.Background(), hashSecret(c.Value), now())
			if err != nil {
				e.t.Fatal(err)
			}
			return sess.CSRF
		}
	}
	e.t.Fatal("no session cookie")
	return ""
}

func (e *consoleEnv) wantActive(id string, want bool) {
	e.t.Helper()
	a, err := e.st.GetAgent(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	if got := a.RevokedAt.IsZero(); got != want {
		e.t.Fatalf("agent %s active = %v, want %v", id, got, want)
	}
}

func TestConsoleRevokeCascade(t *testing.T) {
	e := newConsoleEnv(t)
	b := e.signIn("alice")
	agent := e.page(b, "/agents/"+e.orch.ID, http.StatusOK)
	if !strings.Contains(agent.body, `href="/console/agents/`+e.orch.ID+`/revoke"`) {
		t.Fatalf("no revoke link on the agent page:\n%s", agent.body)
	}
	preview := e.page(b, "/agents/"+e.orch.ID+"/revoke", http.StatusOK)
	for _, want := range []string{"reviewer", e.rev.ID, e.rev.Grant, e.orch.Grant} {
		if !strings.Contains(preview.body, want) {
			t.Errorf("revoke preview does not list %s:\n%s", want, preview.body)
		}
	}
	e.wantActive(e.orch.ID, true) // the preview changed nothing
	action, f := formOf(t, preview, "Confirm")

	// Without the CSRF field, with a token of another form, or of another
	// agent: 403, nothing revoked.
	for name, form := range map[string]url.Values{
		"missing": {},
		"empty":   {"csrf": {""}},
		"logout":  {"csrf": {formToken(e.sessionCSRF(b), "console", "logout")}},
		"other":   {"csrf": {formToken(e.sessionCSRF(b), "console", "revoke-agent "+e.rev.ID)}},
	} {
		if p := b.post(e.url(action), form); p.status != http.StatusForbidden {
			t.Errorf("%s csrf: %d, want 403", name, p.status)
		}
		e.wantActive(e.orch.ID, true)
		e.wantActive(e.rev.ID, true)
	}
	// Another browser (no session) posting the page's token: refused.
	if p := newBrowser(t).post(e.url(action), f); p.status != http.StatusForbidden {
		t.Errorf("sessionless POST: %d, want 403", p.status)
	}
	e.wantActive(e.orch.ID, true)

	p := b.post(e.url(action), f)
	if p.status != http.StatusSeeOther || p.location == nil || p.location.Path != pathConsole+"/agents" {
		t.Fatalf("confirm: %d %v %s", p.status, p.location, p.body)
	}
	e.wantActive(e.orch.ID, false)
	e.wantActive(e.rev.ID, false)
	e.wantActive(e.xss.ID, true)
	for _, id := range []string{e.orch.ID, e.rev.ID, e.orch.Grant, e.rev.Grant} {
		if !e.s.cfg.Revoked.IsRevoked(id) {
			t.Errorf("%s not in the gateways' revocation set", id)
		}
	}
	if got := e.eventsOf("revoked"); len(got) != 1 || !slices.Contains(got[0].IDs, e.rev.Grant) {
		t.Errorf("revoked events = %+v", got)
	}
	tree := b.get(p.location.String())
	if !strings.Contains(tree.body, "Revoked.") || strings.Count(tree.body, "st-revoked") < 2 {
		t.Errorf("tree after revoke:\n%s", tree.body)
	}
	// The reviewer's credential gets no token any more.
	status, out := postBasic(t, e.url(pathToken), e.rev.ClientID, e.rev.ClientSecret,
		url.Values{"grant_type": {"client_credentials"}, "resource": {testResource}})
	if status == http.StatusOK {
		t.Errorf("revoked reviewer got a token: %v", out)
	}
	// The revoked agent's page offers no revoke any more.
	if p := e.page(b, "/agents/"+e.orch.ID, http.StatusOK); strings.Contains(p.body, "/revoke") {
		t.Error("revoked agent still offers revoke")
	}
}

func postBasic(t *testing.T, u, id, secret string, form url.Values) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestConsoleHeaders(t *testing.T) {
	e := newConsoleEnv(t)
	b := e.signIn("alice")
	check := func(name string, h http.Header) {
		t.Helper()
		csp := h.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "frame-ancestors 'none'", "form-action 'self'", "base-uri 'none'", "style-src 'self'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: CSP %q lacks %s", name, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "script-src") {
			t.Errorf("%s: CSP allows scripts or inline: %q", name, csp)
		}
		for k, v := range map[string]string{"X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
			"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"} {
			if h.Get(k) != v {
				t.Errorf("%s: %s = %q, want %q", name, k, h.Get(k), v)
			}
		}
	}
	check("agents", e.page(b, "/agents", http.StatusOK).header)
	check("not found", e.page(b, "/nothing", http.StatusNotFound).header)
	check("redirect", newBrowser(t).get(e.console("/")).header)
	check("csrf refused", b.post(e.console("/logout"), url.Values{}).header)
	for _, path := range []string{"/", "/agents", "/trail", "/agents/" + e.orch.ID, "/agents/" + e.orch.ID + "/revoke", "/clients"} {
		p := e.page(b, path, http.StatusOK)
		if strings.Contains(p.body, "<script") || strings.Contains(p.body, "style=") || strings.Contains(p.body, "<style") {
			t.Errorf("%s carries a script or inline style", path)
		}
	}
	if p := e.page(b, "/", http.StatusOK); !strings.Contains(p.body, `<svg`) || !strings.Contains(p.body, `role="img"`) {
		t.Error("overview has no chart")
	}
	css := b.get(e.console("/console.css"))
	if css.status != http.StatusOK || !strings.HasPrefix(css.header.Get("Content-Type"), "text/css") {
		t.Errorf("stylesheet: %d %s", css.status, css.header.Get("Content-Type"))
	}
}

func TestConsoleEscapes(t *testing.T) {
	e := newConsoleEnv(t)
	b := e.signIn("alice")
	for _, tt := range []struct{ path, raw string }{
		{"/agents", xssName},
		{"/agents/" + e.xss.ID, xssName},
		{"/trail", xssTool},
		{"/", xssTool},
	} {
		p := e.page(b, tt.path, http.StatusOK)
		if strings.Contains(p.body, tt.raw) {
			t.Errorf("%s: %s appears unescaped", tt.path, tt.raw)
		}
		if !strings.Contains(html.UnescapeString(p.body), tt.raw) {
			t.Errorf("%s: %s is not shown as text", tt.path, tt.raw)
		}
	}
}

func TestConsoleTrail(t *testing.T) {
	e := newConsoleEnv(t)
	b := e.signIn("alice")
	p := e.page(b, "/trail?agent="+e.rev.ID, http.StatusOK)
	for _, want := range []string{"read_diff", "write_file", "allowed", "denied", "missing scope repository:write",
		"9f86d081884c7d65", "403", "200", "Source: file"} {
		if !strings.Contains(p.body, want) {
			t.Errorf("trail lacks %q", want)
		}
	}
	// The chain as breadcrumbs, current actor first, agents linked.
	crumbs := regexp.MustCompile(`<a href="/console/agents/` + e.rev.ID + `">reviewer</a> <span aria-hidden="true">←</span><span class="sr">on behalf of</span> <a href="/console/agents/` + e.orch.ID + `">orchestrator</a> <span aria-hidden="true">←</span><span class="sr">on behalf of</span> <span>alice</span>`)
	if !crumbs.MatchString(p.body) {
		t.Errorf("no reviewer ← orchestrator ← alice breadcrumbs:\n%s", p.body)
	}
	if strings.Index(p.body, "write_file") > strings.Index(p.body, "read_diff") {
		t.Error("trail is not newest first")
	}
	p = e.page(b, "/trail?decision=deny", http.StatusOK)
	if strings.Contains(p.body, "read_diff") || !strings.Contains(p.body, "write_file") {
		t.Error("decision filter")
	}
	p = e.page(b, "/trail?status=2xx", http.StatusOK)
	if !strings.Contains(p.body, "read_diff") || strings.Contains(p.body, "write_file") {
		t.Error("status filter")
	}
	p = e.page(b, "/trail?tool=write_file", http.StatusOK)
	if strings.Contains(p.body, "read_diff") || !strings.Contains(p.body, "write_file") {
		t.Error("tool filter")
	}
	p = e.page(b, "/trail?since=2000-01-01T00:00&until=2000-01-02", http.StatusOK)
	if strings.Contains(p.body, "write_file") {
		t.Error("time filter")
	}
	for _, bad := range []string{"decision=maybe", "status=abc", "since=yesterday"} {
		e.page(b, "/trail?"+bad, http.StatusBadRequest)
	}
	// The overview counts the denial that needed one more scope.
	p = e.page(b, "/", http.StatusOK)
	if !strings.Contains(p.body, "repository:write") || !strings.Contains(p.body, "<strong>1</strong> allowed, <strong>2</strong> denied") {
		t.Errorf("overview:\n%s", p.body)
	}
}

func TestConsoleNoTrail(t *testing.T) {
	e := newConsoleEnv(t, func(c *Config) { c.Trail = nil })
	b := e.signIn("alice")
	p := e.page(b, "/trail", http.StatusOK)
	if !strings.Contains(p.body, "No audit trail is configured") {
		t.Error("no-trail notice missing")
	}
	e.page(b, "/agents", http.StatusOK)
}

func TestConsoleReturnPath(t *testing.T) {
	e := newConsoleEnv(t)
	for _, bad := range []string{
		"https://evil.example/console/", "//evil.example/console/", "/\\evil.example/console/", "/oauth/authorize",
		"/console/../oauth/token", "/console/%2e%2e/oauth/token", "/consolex", "javascript:alert(1)", "/console/\x00",
		" /console/", "/console/#x", "",
	} {
		b := newBrowser(t)
		p := b.get(e.url(pathLogin) + "?return=" + url.QueryEscape(bad))
		if p.status != http.StatusBadRequest || p.location != nil {
			t.Errorf("return %q: %d %v", bad, p.status, p.location)
		}
		// Posted with a token made for it: still refused, no session.
		key := newSecret()
		u, _ := url.Parse(e.srv.URL)
		b.c.Jar.SetCookies(u, []*http.Cookie{{Name: loginCookie, Value: key, Path: "/"}})
		p = b.post(e.url(pathLogin), url.Values{"return": {bad}, "csrf": {formToken(key, "login", consolePending+bad)},
			"username": {"alice"}, "password": {testPassword}})
		if p.status != http.StatusBadRequest || p.location != nil {
			t.Errorf("POST return %q: %d %v", bad, p.status, p.location)
		}
	}
	// A good one keeps its query.
	b := newBrowser(t)
	ret := "/console/trail?decision=deny&tool=write_file"
	login := b.get(e.url(pathLogin) + "?return=" + url.QueryEscape(ret))
	f := login.fields()
	f.Set("return", html.UnescapeString(f.Get("return")))
	if f.Get("return") != ret {
		t.Fatalf("return field = %q", f.Get("return"))
	}
	// The token is bound to the path: another console path with it fails.
	g := url.Values{"return": {"/console/agents"}, "csrf": {f.Get("csrf")}, "username": {"alice"}, "password": {testPassword}}
	if p := b.post(e.url(pathLogin), g); p.status != http.StatusForbidden {
		t.Errorf("token for another path: %d", p.status)
	}
	f.Set("username", "alice")
	f.Set("password", testPassword)
	p := b.post(e.url(pathLogin), f)
	if p.status != http.StatusSeeOther || p.location == nil || p.location.RequestURI() != ret || p.location.Host != strings.TrimPrefix(e.srv.URL, "http://") {
		t.Fatalf("login: %d %v", p.status, p.location)
	}
	// Signed in, the login page sends straight back.
	if p := b.get(e.url(pathLogin) + "?return=" + url.QueryEscape("/console/agents")); p.status != http.StatusFound || p.location.Path != "/console/agents" {
		t.Errorf("signed-in login: %d %v", p.status, p.location)
	}
	// A wrong password shows the form again, still for the console.
	b2 := newBrowser(t)
	login = b2.get(e.url(pathLogin) + "?return=" + url.QueryEscape("/console/"))
	f = login.fields()
	f.Set("username", "alice")
	f.Set("password", "wrong")
	if p := b2.post(e.url(pathLogin), f); p.status != http.StatusBadRequest || !strings.Contains(p.body, "to continue to the Kavach console") {
		t.Errorf("wrong password: %d", p.status)
	}
}

func TestConsoleLogout(t *testing.T) {
	e := newConsoleEnv(t)
	b := e.signIn("alice")
	home := e.page(b, "/agents", http.StatusOK)
	action, f := formOf(t, home, "Sign out")
	if p := b.post(e.url(action), url.Values{}); p.status != http.StatusForbidden {
		t.Errorf("logout without csrf: %d", p.status)
	}
	e.page(b, "/agents", http.StatusOK)
	p := b.post(e.url(action), f)
	if p.status != http.StatusSeeOther || p.location.Path != pathLogin {
		t.Fatalf("logout: %d %v", p.status, p.location)
	}
	if p := b.get(e.console("/agents")); p.status != http.StatusFound || p.location.Path != pathLogin {
		t.Errorf("after logout: %d", p.status)
	}
}

func TestConsoleConsents(t *testing.T) {
	e := newConsoleEnv(t)
	b := e.signIn("alice")
	tok := e.codeFlow(b) // alice consents to the test client
	rt, _ := tok["refresh_token"].(string)
	p := e.page(b, "/clients", http.StatusOK)
	if !strings.Contains(p.body, "Test &lt;b&gt;App&lt;/b&gt;") || !strings.Contains(p.body, "repo:read") {
		t.Fatalf("clients page:\n%s", p.body)
	}
	action, f := formOf(t, p, "Revoke consent")
	if p := b.post(e.url(action), url.Values{}); p.status != http.StatusForbidden {
		t.Errorf("revoke consent without csrf: %d", p.status)
	}
	if status, _ := e.refresh(rt, nil); status != http.StatusOK {
		t.Fatalf("refresh before revoke: %d", status)
	}
	// bob cannot revoke alice's consent, even with his own valid token.
	bob := e.signIn("bob")
	grant := strings.TrimSuffix(strings.TrimPrefix(action, pathConsole+"/clients/"), "/revoke")
	bf := url.Values{"csrf": {formToken(e.sessionCSRF(bob), "console", "revoke-consent "+grant)}}
	if p := bob.post(e.url(action), bf); p.status != http.StatusNotFound {
		t.Errorf("bob revoking alice's consent: %d", p.status)
	}
	p = b.post(e.url(action), f)
	if p.status != http.StatusSeeOther {
		t.Fatalf("revoke consent: %d %s", p.status, p.body)
	}
	if status, _ := e.refresh(e.refreshOf(tok), nil); status == http.StatusOK {
		t.Error("refresh token still works after the consent was revoked")
	}
	if !e.s.cfg.Revoked.IsRevoked(grant) {
		t.Error("consent grant not in the revocation set")
	}
	p = e.page(b, "/clients", http.StatusOK)
	if strings.Contains(p.body, "Test &lt;b&gt;App") {
		t.Error("revoked consent still listed")
	}
}

func (e *consoleEnv) refreshOf(tok map[string]any) string {
	s, _ := tok["refresh_token"].(string)
	return s
}

func TestConsoleOff(t *testing.T) {
	e := newConsoleEnv(t, func(c *Config) { c.Console = ConsoleConfig{Off: true} })
	if p := newBrowser(t).get(e.console("/")); p.status != http.StatusNotFound {
		t.Errorf("console off: %d", p.status)
	}
	if p := newBrowser(t).get(e.url(pathLogin) + "?return=%2Fconsole%2F"); p.status != http.StatusBadRequest {
		t.Errorf("console-off login return: %d", p.status)
	}
}

func TestAdminConsents(t *testing.T) {
	e := newConsoleEnv(t)
	e.codeFlow(newBrowser(t))
	status, out := e.adminJSON(http.MethodGet, "/v1/users/"+e.user.ID+"/consents", nil)
	list, _ := out["consents"].([]any)
	if status != http.StatusOK || len(list) != 1 {
		t.Fatalf("list consents: %d %v", status, out)
	}
	grant := list[0].(map[string]any)["grant"].(string)
	if status, _ := e.adminJSON(http.MethodPost, "/v1/users/"+e.bob.ID+"/consents/"+grant+"/revoke", nil); status != http.StatusNotFound {
		t.Errorf("revoking alice's consent as bob's: %d", status)
	}
	if status, _ := e.adminJSON(http.MethodPost, "/v1/users/"+e.user.ID+"/consents/"+e.orch.Grant+"/revoke", nil); status != http.StatusNotFound {
		t.Errorf("revoking an agent's grant as a consent: %d", status)
	}
	status, out = e.adminJSON(http.MethodPost, "/v1/users/"+e.user.ID+"/consents/"+grant+"/revoke", nil)
	if status != http.StatusOK || !slices.Contains(anyStrings(out["revoked"]), grant) {
		t.Fatalf("revoke consent: %d %v", status, out)
	}
	e.wantActive(e.orch.ID, true)
}

func anyStrings(v any) []string {
	var out []string
	l, _ := v.([]any)
	for _, x := range l {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

// TestConsoleIdPSignIn: the login page's IdP button, started from the
// console, lands back on the console page it came from, and the IdP's
// group makes the person an operator.
func TestConsoleIdPSignIn(t *testing.T) {
	e, o := idpEnv(t, func(c *Config) { c.Console.OperatorGroups = []string{"platform-eng"} })
	b := newBrowser(t)
	p := b.get(e.url(pathConsole + "/trail?decision=deny"))
	if p.status != http.StatusFound || p.location == nil || p.location.Path != pathLogin {
		t.Fatalf("console: %d %v", p.status, p.location)
	}
	login := b.get(p.location.String())
	if !strings.Contains(login.body, "Sign in with Corp SSO") || !strings.Contains(login.body, "to continue to the Kavach console") {
		t.Fatalf("login page:\n%s", login.body)
	}
	action, f := formOf(t, login, "Sign in with Corp SSO")
	if action != pathIdPStart {
		t.Fatalf("IdP form action %q", action)
	}
	// The IdP form's token is bound to the return path.
	bad := url.Values{"return": {"/console/agents"}, "csrf": {f.Get("csrf")}, "provider": {"corpsso"}}
	if p := b.post(e.url(pathIdPStart), bad); p.status != http.StatusForbidden {
		t.Errorf("IdP start with a token of another path: %d", p.status)
	}
	f.Set("provider", "corpsso")
	p = b.post(e.url(pathIdPStart), f)
	for i := 0; p.location != nil && p.location.Path != pathIdPCallback; i++ {
		if i > 10 {
			t.Fatalf("on the way to the IdP: %d %v", p.status, p.location)
		}
		p = b.get(p.location.String())
	}
	if p.location == nil {
		t.Fatalf("the IdP did not send the browser back: %d %s", p.status, p.body)
	}
	p = b.get(p.location.String())
	if p.status != http.StatusFound || p.location == nil || p.location.RequestURI() != pathConsole+"/trail?decision=deny" {
		t.Fatalf("callback: %d %v %s", p.status, p.location, p.body)
	}
	home := b.get(p.location.String())
	if home.status != http.StatusOK || !strings.Contains(home.body, "operator") {
		t.Fatalf("console after IdP sign-in: %d\n%s", home.status, home.body)
	}

	// A refused IdP sign-in offers to try again, for the console.
	o.Set(oidctest.Carol, oidctest.FaultDeny)
	b = newBrowser(t)
	login = b.get(e.url(pathLogin) + "?return=" + url.QueryEscape("/console/agents"))
	action, f = formOf(t, login, "Sign in with Corp SSO")
	f.Set("provider", "corpsso")
	p = b.post(e.url(action), f)
	for i := 0; p.location != nil; i++ {
		if i > 10 {
			t.Fatalf("refused sign-in: %d %v", p.status, p.location)
		}
		p = b.get(p.location.String())
	}
	if p.status < 400 || !strings.Contains(p.body, `href="/oauth/login?return=%2Fconsole%2Fagents"`) {
		t.Errorf("refused sign-in: %d, no retry for the console:\n%s", p.status, p.body)
	}
}

// settled closes the trail's writer (its final checkpoint covers every
// record) and waits for the browser's verification to catch up.
func (e *consoleEnv) settled() audit.TrailStatus {
	e.t.Helper()
	if err := e.w.Close(); err != nil {
		e.t.Fatal(err)
	}
	for i := 0; ; i++ {
		st, err := e.trail.Status(context.Background())
		if err != nil {
			e.t.Fatal(err)
		}
		if !st.Pending && !st.At.IsZero() {
			return st
		}
		if i > 500 {
			e.t.Fatalf("trail verification does not settle: %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestConsoleTrailStatus: every page says how far the trail is verified,
// and a trail edited after the fact is shown as a problem.
func TestConsoleTrailStatus(t *testing.T) {
	e := newConsoleEnv(t)
	st := e.settled()
	if !st.Verified || st.Checkpoint == "" || st.KeyFingerprint == "" {
		t.Fatalf("status after close: %+v", st)
	}
	b := e.signIn("alice")
	for _, path := range []string{"/", "/agents", "/trail", "/clients", "/agents/" + e.rev.ID} {
		p := e.page(b, path, http.StatusOK)
		for _, want := range []string{"Trail verified", st.Checkpoint, html.EscapeString(st.KeyFingerprint), `class="trailbox good"`} {
			if !strings.Contains(p.body, want) {
				t.Errorf("%s: status box lacks %q", path, want)
			}
		}
	}
	p := e.page(b, "/trail", http.StatusOK)
	if !strings.Contains(p.body, "✓ signed") {
		t.Error("entries covered by a checkpoint are not marked")
	}

	// Another trail, edited before it is first verified: a problem.
	e2 := newConsoleEnv(t)
	if err := e2.w.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(e2.path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e2.path, []byte(strings.Replace(string(data), `"deny"`, `"allow"`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	var st2 audit.TrailStatus
	for i := 0; i < 500; i++ {
		if st2, err = e2.trail.Status(context.Background()); err != nil || (!st2.Pending && !st2.At.IsZero()) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st2.Problem == "" {
		t.Fatalf("edited trail: %+v", st2)
	}
	p = e2.page(e2.signIn("alice"), "/trail", http.StatusOK)
	if !strings.Contains(p.body, "Trail problem:") || !strings.Contains(p.body, `class="trailbox bad"`) {
		t.Errorf("edited trail's problem not shown:\n%s", p.body)
	}
}

// TestConsoleTrailPages: the timeline pages by the trail's cursor, and a
// cursor the trail did not make is a 400.
func TestConsoleTrailPages(t *testing.T) {
	e := newConsoleEnv(t)
	for i := range consolePageSize + 10 {
		e.call(e.rev, fmt.Sprintf("req_p%d", i), fmt.Sprintf("tool_%02d", i), audit.Allow, "", 200)
	}
	b := e.signIn("alice")
	p := e.page(b, "/trail?agent="+e.rev.ID, http.StatusOK)
	rows := strings.Count(p.body, "<tr>") - 1 // the header row
	if rows != consolePageSize || !strings.Contains(p.body, "tool_59") || strings.Contains(p.body, "tool_09") {
		t.Fatalf("first page: %d rows", rows)
	}
	m := regexp.MustCompile(`<a href="([^"]*)" rel="next">Older entries</a>`).FindStringSubmatch(p.body)
	if m == nil {
		t.Fatal("no link to older entries")
	}
	older := b.get(e.url(html.UnescapeString(m[1])))
	if older.status != http.StatusOK || !strings.Contains(older.body, "tool_09") || !strings.Contains(older.body, "write_file") || strings.Contains(older.body, "tool_59") {
		t.Fatalf("second page: %d", older.status)
	}
	if !strings.Contains(older.body, "Newest entries") {
		t.Error("no way back to the newest entries")
	}
	e.page(b, "/trail?cursor=made-up", http.StatusBadRequest)
}

// TestConsoleOwnerRevoked: once a user is revoked, the issuer mints their
// agents nothing and the gateways refuse their tokens, so the operator's
// page shows those agents revoked, not active, with no revoke button.
func TestConsoleOwnerRevoked(t *testing.T) {
	e := newConsoleEnv(t)
	if _, err := e.s.revokeUser(context.Background(), e.bob.ID); err != nil {
		t.Fatal(err)
	}
	olga := e.signIn("olga")
	p := e.page(olga, "/agents?user="+e.bob.ID, http.StatusOK)
	bot := strings.Index(p.body, ">bobs-deploy-bot</a>")
	if bot < 0 || !strings.Contains(p.body[bot:], `<span class="st st-revoked">revoked</span>`) ||
		strings.Contains(p.body[bot:], `<span class="st st-active">`) {
		t.Fatalf("a revoked user's agent is not shown revoked:\n%s", p.body)
	}
	p = e.page(olga, "/agents/"+e.bobBot.ID, http.StatusOK)
	if strings.Contains(p.body, "/agents/"+e.bobBot.ID+"/revoke") {
		t.Error("a revoked user's agent still offers Revoke")
	}
}
