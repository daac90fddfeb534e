package integration

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestConsoleBrowser drives the issuer's console (issue 17) in headless
// Chromium against the demo stack: alice signs in, sees her orchestrator
// → reviewer tree (and not bob's agent), reads the reviewer's trail (its
// allowed read_diff, its denied write_file with the missing scope),
// revokes the orchestrator after the cascade preview, and then sees the
// reviewer's next call refused at the gateway and denied in the timeline.
// An operator sees bob's agents. A screenshot of each page is kept in
// artifactsDir/console.
func TestConsoleBrowser(t *testing.T) {
	b := startBrowser(t) // first: skips (fails under CI=true) before anything starts when chromium is missing
	s := startDemoStack(t, demoStackOptions{IssuerLines: []string{"console {\n\t\t\toperators ops\n\t\t}"}})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	shots := screenshotDir(t)

	s.seedAlice(t)
	s.createUser(t, "usr_bob", "bob", "bob demo password", map[string][]string{s.resource: {"mcp:review", "repository:read"}})
	s.createUser(t, "usr_ops", "ops", "ops demo password", nil)
	var orch, rev, bobAgent, xss agentOut
	s.cli(t, &orch, "agent", "create", "--name", "orchestrator", "--owner", "usr_alice", "--scope", strings.Join(demoScopes, " "), "--ttl", "1h")
	s.cli(t, &rev, "agent", "child", orch.ID, "--name", "reviewer", "--scope", "mcp:review pullrequest:read repository:read", "--ttl", "10m")
	s.cli(t, &bobAgent, "agent", "create", "--name", "bobs-deploy-bot", "--owner", "usr_bob", "--scope", "mcp:review repository:read", "--ttl", "1h")
	const xssName = `<img src=x onerror="document.title='pwned'">`
	s.cli(t, &xss, "agent", "create", "--name", xssName, "--owner", "usr_alice", "--scope", "mcp:review", "--ttl", "1h")

	// The reviewer's calls through the gateway, with the official Go SDK.
	revTok, err := s.clientToken(ctx, rev)
	if err != nil {
		t.Fatalf("reviewer token: %v", err)
	}
	log := &statusLog{base: bearerTransport{revTok}}
	sess := connectBearer(ctx, t, s.resource, log)
	if _, err := callDemoTool(ctx, sess, "read_diff", nil); err != nil {
		t.Fatalf("read_diff: %v", err)
	}
	if _, err := callDemoTool(ctx, sess, "write_file", map[string]any{"path": "README.md", "content": "x"}); err == nil {
		t.Fatal("write_file without repository:write succeeded")
	}
	// A tool name an attacker chose, stored in the trail.
	_, _ = callDemoTool(ctx, sess, `<script>document.title='pwned'</script>`, nil)

	p := b.newPage(t)
	// A laptop screen, for the screenshots (the README shows two).
	if err := p.call("Emulation.setDeviceMetricsOverride", map[string]any{"width": 1280, "height": 820, "deviceScaleFactor": 1, "mobile": false}, nil); err != nil {
		t.Fatal(err)
	}
	page := func(what, path, ready string) {
		t.Helper()
		p.navigate(s.issuer + path)
		p.waitFor(what, `document.readyState === "complete" && location.pathname.startsWith("/console") && (`+ready+`)`, 20*time.Second)
	}
	text := func() string {
		var s string
		p.mustEval(`document.body.innerText`, &s)
		return s
	}
	shot := func(name string) {
		if err := os.WriteFile(filepath.Join(shots, name+".png"), p.screenshot(), 0o644); err != nil {
			t.Error(err)
		}
	}
	signIn := func(user, password string) {
		t.Helper()
		p.navigate(s.issuer + "/console/")
		p.waitFor("the login page", `document.readyState === "complete" && !!document.querySelector("input[type=password]")`, 20*time.Second)
		if user == "alice" {
			shot("login")
		}
		p.fill("#username", user)
		p.fill("#password", password)
		p.click(`form:has(input[type=password]) button[type=submit]`)
		p.waitFor("the console after sign-in", `document.readyState === "complete" && location.pathname.startsWith("/console") && document.body.innerText.includes("Signed in as")`, 20*time.Second)
	}

	signIn("alice", demoPassword)
	shot("overview")

	// The tree: the reviewer is nested under the orchestrator; bob's
	// agent is nowhere; the hostile name is text.
	page("the agents page", "/console/agents", `!!document.querySelector("a[href$='/agents/`+rev.ID+`']")`)
	var tree struct {
		Nested, XSSText, XSSElement bool
		Title                       string
	}
	p.mustEval(`(() => { const o = document.querySelector("a[href$='/agents/`+orch.ID+`']").closest("li");
		return {Nested: !!o.querySelector("a[href$='/agents/`+rev.ID+`']"),
			XSSText: document.body.innerText.includes(`+jsString(xssName)+`),
			XSSElement: !!document.querySelector("img[src=x]"), Title: document.title}; })()`, &tree)
	if !tree.Nested {
		t.Error("the agents page does not show the reviewer under the orchestrator")
	}
	if !tree.XSSText || tree.XSSElement || strings.Contains(tree.Title, "pwned") {
		t.Errorf("an agent named %q: shown as text %v, became an element %v, title %q", xssName, tree.XSSText, tree.XSSElement, tree.Title)
	}
	if body := text(); strings.Contains(body, "bobs-deploy-bot") || strings.Contains(body, bobAgent.ID) {
		t.Error("alice's agents page shows bob's agent")
	}
	shot("agents")

	// Bob's agent by URL: refused without naming it.
	p.navigate(s.issuer + "/console/agents/" + bobAgent.ID)
	p.waitFor("bob's agent page refused", `document.readyState === "complete" && document.body.innerText.length > 0`, 20*time.Second)
	if body := text(); strings.Contains(body, "bobs-deploy-bot") {
		t.Error("alice opened bob's agent by URL")
	}
	if r := do(t, newReq(t, http.MethodGet, s.issuer+"/console/agents/"+bobAgent.ID, "", nil)); r.Status != http.StatusFound {
		t.Errorf("the console without a session: %d, want 302 to the login page", r.Status)
	}

	// The reviewer's page and its trail: read_diff allowed, write_file
	// denied for want of repository:write.
	page("the reviewer's page", "/console/agents/"+rev.ID, `document.body.innerText.includes("write_file")`)
	body := text()
	for _, want := range []string{"read_diff", "allowed", "write_file", "denied", "repository:write"} {
		if !strings.Contains(body, want) {
			t.Errorf("the reviewer's page does not show %q:\n%s", want, body)
		}
	}
	shot("reviewer")
	page("the trail", "/console/trail?agent="+rev.ID, `!!document.querySelector("table.trail")`)
	var trail struct {
		Crumbs     string
		Verify     string
		XSSElement bool
		Title      string
	}
	p.mustEval(`({Crumbs: [...document.querySelectorAll("td.chain")].map(e => e.innerText).join("\n"),
		Verify: document.querySelector("aside.trailbox").innerText, XSSElement: !!document.querySelector("script:not([src])"), Title: document.title})`, &trail)
	if !strings.Contains(trail.Crumbs, "reviewer") || !strings.Contains(trail.Crumbs, "orchestrator") || !strings.Contains(trail.Crumbs, "alice") {
		t.Errorf("the trail's chains %q, want reviewer ← orchestrator ← alice", trail.Crumbs)
	}
	if !(strings.Contains(trail.Verify, "Trail verified") || strings.Contains(trail.Verify, "Hash chain intact")) || !strings.Contains(trail.Verify, "Checkpoint key sha256 ") {
		t.Errorf("the trail page's verification box says %q", trail.Verify)
	}
	shot("trail")
	page("the trail of every tool", "/console/trail", `!!document.querySelector("table.trail")`)
	p.mustEval(`({XSSElement: !!document.querySelector("script"), Title: document.title, Crumbs: document.body.innerText})`, &trail)
	if trail.XSSElement || strings.Contains(trail.Title, "pwned") || !strings.Contains(trail.Crumbs, "<script>document.title='pwned'</script>") {
		t.Errorf("a hostile tool name in the trail: element %v, title %q, shown as text %v", trail.XSSElement, trail.Title, strings.Contains(trail.Crumbs, "<script>"))
	}

	// Revoke the orchestrator: the preview names the reviewer, the
	// confirmation revokes both.
	page("the orchestrator's page", "/console/agents/"+orch.ID, `!!document.querySelector("a[href$='/agents/`+orch.ID+`/revoke']")`)
	p.click(`a[href$='/agents/` + orch.ID + `/revoke']`)
	p.waitFor("the cascade preview", `document.readyState === "complete" && location.pathname.endsWith("/revoke") && !!document.querySelector("form button[type=submit].danger")`, 20*time.Second)
	if body := text(); !strings.Contains(body, "reviewer") || !strings.Contains(body, rev.ID) {
		t.Errorf("the cascade preview does not list the reviewer:\n%s", body)
	}
	shot("revoke-preview")
	if r := do(t, newReq(t, http.MethodGet, s.resource, revTok, nil)); r.Status == http.StatusUnauthorized {
		t.Fatal("the preview revoked already")
	}
	p.click(`form button[type=submit].danger`)
	p.waitFor("the page after the revocation", `document.readyState === "complete" && !location.pathname.endsWith("/revoke") && document.body.innerText.includes("revoked")`, 20*time.Second)
	shot("after-revoke")

	// The reviewer's next call is refused at the gateway, and the
	// timeline shows it denied.
	log.take()
	if _, err := callDemoTool(ctx, sess, "read_diff", nil); err == nil {
		t.Error("the reviewer's read_diff passed after its parent was revoked from the console")
	}
	if got := log.take(); len(got) == 0 || got[len(got)-1].Status != http.StatusUnauthorized {
		t.Errorf("the reviewer's call after the revocation: %v, want 401", got)
	}
	if _, err := s.clientToken(ctx, rev); err == nil {
		t.Error("the issuer still gives the reviewer tokens")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		page("the reviewer's denials", "/console/trail?decision=deny&agent="+rev.ID, `!!document.querySelector("aside.trailbox")`)
		if strings.Contains(text(), "revoked") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the reviewer's denials do not show the revoked token's refusal:\n%s", text())
		}
		time.Sleep(300 * time.Millisecond)
	}
	shot("trail-after-revoke")

	// An operator sees bob's agents.
	p.navigate(s.issuer + "/console/")
	p.waitFor("the console", `document.readyState === "complete" && !!document.querySelector("form.who button")`, 20*time.Second)
	p.click("form.who button")
	p.waitFor("signed out", `document.readyState === "complete" && !document.body.innerText.includes("Signed in as alice")`, 20*time.Second)
	signIn("ops", "ops demo password")
	page("the operator's agents page", "/console/agents", `document.body.innerText.includes("bobs-deploy-bot")`)
	if body := text(); !strings.Contains(body, "orchestrator") || !strings.Contains(body, "operator") {
		t.Errorf("the operator's agents page does not show everyone's agents:\n%s", body)
	}
	shot("operator-agents")
}

// screenshotDir is artifactsDir/console: a screenshot of each console page.
func screenshotDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(artifactsDir(t), "console")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("screenshot directory: %v", err)
	}
	return dir
}
