package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2/clientcredentials"
)

// issuerFixture is one bin/kavach running the issuer and a gateway that
// trusts it, in one config (DESIGN.md §8): the issuer writes revocations
// straight into the gateway's in-memory set.
type issuerFixture struct {
	dir      string
	env      []string
	issuer   string // http://127.0.0.1:<port>
	gateway  string // http://127.0.0.1:<port>
	admin    string // 127.0.0.1:<port>
	resource string // the gateway's protected resource
	up       *upstream
	proc     *gatewayProc
}

// startIssuer runs the issuer with the given store line ("sqlite <file>"
// or "postgres <url>") and a gateway protecting /api/* for the resource.
func startIssuer(t *testing.T, storeLine string) *issuerFixture {
	t.Helper()
	return startIssuerWith(t, storeLine, "")
}

// startIssuerWith is startIssuer with extra lines for the global kavach
// block (e.g. redis).
func startIssuerWith(t *testing.T, storeLine, globalExtra string) *issuerFixture {
	t.Helper()
	dir := t.TempDir()
	pi, pg, pa := freePort(t), freePort(t), freePort(t)
	f := &issuerFixture{
		dir:     dir,
		env:     []string{"KAVACH_ADMIN_TOKEN=it-admin-" + fmt.Sprint(time.Now().UnixNano())},
		issuer:  fmt.Sprintf("http://127.0.0.1:%d", pi),
		gateway: fmt.Sprintf("http://127.0.0.1:%d", pg),
		admin:   fmt.Sprintf("127.0.0.1:%d", pa),
		up:      newUpstream(t),
	}
	f.resource = f.gateway + "/api"
	caddyfile := fmt.Sprintf(`{
	admin off
	persist_config off
	auto_https off
	kavach {
		issuer %[1]s
		admin %[3]s
		admin_token {env.KAVACH_ADMIN_TOKEN}
		%[6]s
	}
}
%[1]s {
	kavach_issuer {
		issuer %[1]s
		store %[4]s
	}
}
%[2]s {
	kavach /api/* {
		resource %[2]s/api
		scope GET /api/repos/* repo:read
		scope POST /api/repos/* repo:write
	}
	reverse_proxy /api/* %[5]s
}
`, f.issuer, f.gateway, f.admin, storeLine, f.up.addr(), globalExtra)
	if err := os.WriteFile(filepath.Join(dir, "Caddyfile"), []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	f.proc = startGateway(t, dir, f.env, pi, pg, pa)
	return f
}

// cli runs a kavach subcommand against the fixture's admin listener and
// decodes its JSON output into out.
func (f *issuerFixture) cli(t *testing.T, out any, args ...string) {
	t.Helper()
	args = append(args, "--admin", f.admin)
	stdout, stderr, err := kavachEnv(f.dir, f.env, args...)
	if err != nil {
		t.Fatalf("kavach %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	if out != nil {
		if err := json.Unmarshal([]byte(stdout), out); err != nil {
			t.Fatalf("kavach %s: output is not JSON: %v\n%s", strings.Join(args, " "), err, stdout)
		}
	}
}

type agentOut struct {
	ID           string   `json:"id"`
	ClientID     string   `json:"client_id"`
	ClientSecret string   `json:"client_secret"`
	Chain        []string `json:"chain"`
	Agents       []string `json:"agents"`
	Scopes       []string `json:"scopes"`
	Children     []string `json:"children"`
	Parent       string   `json:"parent"`
}

// clientToken gets an agent's token with golang.org/x/oauth2's client
// credentials flow (client_secret_basic), as a stock client would.
func (f *issuerFixture) clientToken(ctx context.Context, a agentOut, scopes ...string) (string, error) {
	cc := clientcredentials.Config{
		ClientID:       a.ClientID,
		ClientSecret:   a.ClientSecret,
		TokenURL:       f.issuer + "/oauth/token",
		Scopes:         scopes,
		EndpointParams: url.Values{"resource": {f.resource}},
	}
	tok, err := cc.Token(ctx)
	if err != nil {
		return "", err
	}
	return tok.AccessToken, nil
}

func (f *issuerFixture) get(t *testing.T, path, bearer string) response {
	t.Helper()
	return do(t, newReq(t, http.MethodGet, f.gateway+path, bearer, nil))
}

// introspect asks the issuer with the admin token whether tok is active.
func (f *issuerFixture) introspect(t *testing.T, tok string) map[string]any {
	t.Helper()
	req := newReq(t, http.MethodPost, f.issuer+"/oauth/introspect", strings.TrimPrefix(f.env[0], "KAVACH_ADMIN_TOKEN="), strings.NewReader(url.Values{"token": {tok}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r := do(t, req)
	if r.Status != http.StatusOK {
		t.Fatalf("introspect: %d %s", r.Status, r.Body)
	}
	var out map[string]any
	if err := json.Unmarshal([]byte(r.Body), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// exchange runs an RFC 8693 token exchange as the agent.
func (f *issuerFixture) exchange(t *testing.T, a agentOut, subject string, params url.Values) response {
	t.Helper()
	form := url.Values{
		"grant_type":         {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"subject_token":      {subject},
		"subject_token_type": {"urn:ietf:params:oauth:token-type:access_token"},
	}
	for k, v := range params {
		form[k] = v
	}
	req := newReq(t, http.MethodPost, f.issuer+"/oauth/token", "", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(a.ClientID), url.QueryEscape(a.ClientSecret))
	return do(t, req)
}

// TestIssuerWithGateway drives the issuer and a gateway in one bin/kavach
// through the delegation story on each store: user and agents by CLI,
// tokens by stock OAuth clients, enforcement at the gateway, attenuation,
// and a cascading revocation that stops a descendant's token at once.
func TestIssuerWithGateway(t *testing.T) {
	stores := map[string]func(t *testing.T) string{
		"sqlite":   func(t *testing.T) string { return "sqlite ./data/kavach.db" },
		"postgres": func(t *testing.T) string { return "postgres " + postgresURL(t) },
	}
	for name, storeLine := range stores {
		t.Run(name, func(t *testing.T) {
			f := startIssuer(t, storeLine(t))
			ctx := context.Background()

			// Metadata a stock client discovers the issuer with.
			r := do(t, newReq(t, http.MethodGet, f.issuer+"/.well-known/oauth-authorization-server", "", nil))
			var meta map[string]any
			if r.Status != http.StatusOK || json.Unmarshal([]byte(r.Body), &meta) != nil || meta["issuer"] != f.issuer {
				t.Fatalf("metadata: %d %s", r.Status, r.Body)
			}
			// The admin API is not on the public listener.
			if r := do(t, newReq(t, http.MethodGet, f.issuer+"/v1/agents", "", nil)); r.Status != http.StatusNotFound {
				t.Errorf("admin API on the issuer's public site: %d", r.Status)
			}

			f.cli(t, nil, "user", "create", "--id", "usr_alice", "--name", "alice",
				"--entitle", f.resource+"=repo:read,repo:write,mcp:github")
			var orch agentOut
			f.cli(t, &orch, "agent", "create", "--name", "orchestrator", "--owner", "usr_alice",
				"--scope", "repo:read repo:write", "--ttl", "1h")
			if orch.ClientSecret == "" || len(orch.Chain) != 1 {
				t.Fatalf("agent create: %+v", orch)
			}
			// Beyond the owner's entitlements: refused, nothing created.
			if _, stderr, err := kavachEnv(f.dir, f.env, "agent", "create", "--name", "greedy", "--owner", "usr_alice", "--scope", "repo:admin", "--admin", f.admin); err == nil || !strings.Contains(stderr, "entitlements") {
				t.Errorf("agent beyond entitlements: err %v, stderr %s", err, stderr)
			}

			tok, err := f.clientToken(ctx, orch, "repo:read", "repo:write")
			if err != nil {
				t.Fatalf("client credentials: %v", err)
			}
			if r := f.get(t, "/api/repos/x", tok); r.Status != http.StatusOK {
				t.Fatalf("orchestrator's token at the gateway: %d %s", r.Status, r.Body)
			}
			seen := expectOneUpstream(t, f.up)
			if got := seen.Header.Get("Kavach-Actor"); got != orch.ID {
				t.Errorf("Kavach-Actor = %q, want %q", got, orch.ID)
			}
			if seen.Header.Get("Authorization") != "" {
				t.Error("the token reached the upstream")
			}
			// A scope the agent does not have.
			if _, err := f.clientToken(ctx, orch, "mcp:github"); err == nil {
				t.Error("client credentials granted a scope the agent was not given")
			}

			// Self-attenuation by token exchange: narrower works, wider is
			// invalid_scope naming the field, a new resource invalid_target.
			r = f.exchange(t, orch, tok, url.Values{"scope": {"repo:read"}})
			var ex struct {
				AccessToken string `json:"access_token"`
				Scope       string `json:"scope"`
			}
			if r.Status != http.StatusOK || json.Unmarshal([]byte(r.Body), &ex) != nil || ex.Scope != "repo:read" {
				t.Fatalf("narrowing exchange: %d %s", r.Status, r.Body)
			}
			if r := do(t, newReq(t, http.MethodPost, f.gateway+"/api/repos/x", ex.AccessToken, nil)); r.Status != http.StatusForbidden {
				t.Errorf("narrowed token allowed a write: %d", r.Status)
			}
			if r := f.exchange(t, orch, tok, url.Values{"scope": {"repo:read repo:admin"}}); r.Status != http.StatusBadRequest || !strings.Contains(r.Body, "invalid_scope") {
				t.Errorf("widening exchange: %d %s", r.Status, r.Body)
			}
			if r := f.exchange(t, orch, tok, url.Values{"resource": {"https://other.example/api"}}); r.Status != http.StatusBadRequest || !strings.Contains(r.Body, "invalid_target") {
				t.Errorf("exchange to another resource: %d %s", r.Status, r.Body)
			}
			if r := f.exchange(t, orch, tok, url.Values{"constraints": {`{"hosts":["127.0.0.1"]}`}, "scope": {"repo:read"}}); r.Status != http.StatusOK {
				t.Errorf("adding a constraint narrows: %d %s", r.Status, r.Body)
			}

			// A child, attenuated; segment widening is refused.
			if _, stderr, err := kavachEnv(f.dir, f.env, "agent", "child", orch.ID, "--name", "x", "--scope", "repo:read:admin", "--admin", f.admin); err == nil {
				t.Errorf("child with a scope its parent lacks was created: %s", stderr)
			}
			var child agentOut
			f.cli(t, &child, "agent", "child", orch.ID, "--name", "reviewer", "--scope", "repo:read", "--ttl", "10m")
			if child.Parent != orch.ID || len(child.Chain) != 2 || child.Chain[0] != orch.Chain[0] {
				t.Fatalf("child: %+v", child)
			}
			var grandchild agentOut
			f.cli(t, &grandchild, "agent", "child", child.ID, "--name", "helper", "--scope", "repo:read", "--ttl", "5m")
			gtok, err := f.clientToken(ctx, grandchild, "repo:read")
			if err != nil {
				t.Fatal(err)
			}
			if r := f.get(t, "/api/repos/y", gtok); r.Status != http.StatusOK {
				t.Fatalf("grandchild's token: %d %s", r.Status, r.Body)
			}
			if got := expectOneUpstream(t, f.up).Header.Get("Kavach-Chain"); got != strings.Join(grandchild.Agents, ",") {
				t.Errorf("Kavach-Chain = %q, want %q", got, strings.Join(grandchild.Agents, ","))
			}
			if _, err := f.clientToken(ctx, grandchild, "repo:write"); err == nil {
				t.Error("a child obtained its ancestor's scope")
			}
			var shown agentOut
			f.cli(t, &shown, "agent", "show", child.ID, "--json")
			if len(shown.Children) != 1 || shown.Children[0] != grandchild.ID {
				t.Errorf("agent show children = %v", shown.Children)
			}

			// Revoking the orchestrator cascades: every descendant's token
			// stops at the gateway at once, introspection says inactive,
			// and no new token is minted for the chain.
			var rev struct {
				Revoked []string `json:"revoked"`
			}
			f.cli(t, &rev, "agent", "revoke", orch.ID)
			for _, id := range []string{orch.ID, child.ID, grandchild.ID, grandchild.Chain[2]} {
				if !strings.Contains(strings.Join(rev.Revoked, " "), id) {
					t.Errorf("revoke did not list %s: %v", id, rev.Revoked)
				}
			}
			if r := f.get(t, "/api/repos/y", gtok); r.Status != http.StatusUnauthorized {
				t.Errorf("grandchild's token after the root was revoked: %d %s", r.Status, r.Body)
			}
			expectNoUpstream(t, f.up)
			if got := f.introspect(t, gtok); got["active"] != false {
				t.Errorf("introspection after revoke: %v", got)
			}
			if _, err := f.clientToken(ctx, grandchild, "repo:read"); err == nil {
				t.Error("a revoked agent obtained a token")
			}
		})
	}
}

// TestIssuerRestartKeepsRevocations: a single-node gateway keeps its
// revocation set in memory, so a restarted process must rebuild it from
// the issuer's store before it decides anything: a token of an agent
// revoked before the restart stays rejected after it.
func TestIssuerRestartKeepsRevocations(t *testing.T) {
	f := startIssuer(t, "sqlite ./data/kavach.db")
	ctx := context.Background()
	f.cli(t, nil, "user", "create", "--id", "usr_bob", "--name", "bob", "--entitle", f.resource+"=repo:read")
	var a, b agentOut
	f.cli(t, &a, "agent", "create", "--name", "a", "--owner", "usr_bob", "--scope", "repo:read", "--ttl", "1h")
	f.cli(t, &b, "agent", "create", "--name", "b", "--owner", "usr_bob", "--scope", "repo:read", "--ttl", "1h")
	ta, err := f.clientToken(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := f.clientToken(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	f.cli(t, nil, "agent", "revoke", a.ID)

	// Restart: the old process dies (SIGKILL, nothing flushed on the way
	// out) and a new one starts on the same store and ports.
	_ = f.proc.cmd.Process.Kill()
	<-f.proc.exited
	u, _ := url.Parse(f.issuer)
	g, _ := url.Parse(f.gateway)
	port := func(u *url.URL) int { var p int; fmt.Sscan(u.Port(), &p); return p }
	_, ap, _ := strings.Cut(f.admin, ":")
	var apn int
	fmt.Sscan(ap, &apn)
	f.proc = startGateway(t, f.dir, f.env, port(u), port(g), apn)

	if r := f.get(t, "/api/repos/x", ta); r.Status != http.StatusUnauthorized {
		t.Errorf("revoked agent's token after a restart: %d %s", r.Status, r.Body)
	}
	if r := f.get(t, "/api/repos/x", tb); r.Status != http.StatusOK {
		t.Errorf("other agent's token after a restart: %d %s", r.Status, r.Body)
	}
}

// TestRemoteIssuerNeedsRedis: a gateway that trusts a Kavach issuer of
// another process, without Redis, could never hear its revocations: it
// refuses to start and says why (DESIGN.md §5).
func TestRemoteIssuerNeedsRedis(t *testing.T) {
	dir := t.TempDir()
	p := freePort(t)
	caddyfile := fmt.Sprintf(`{
	admin off
	kavach {
		issuer http://127.0.0.1:%d
	}
}
http://127.0.0.1:%d {
	kavach /api/* {
		resource http://127.0.0.1:%d/api
	}
	respond "ok"
}
`, freePort(t), p, p)
	if err := os.WriteFile(filepath.Join(dir, "Caddyfile"), []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	_, stderr, err := kavachEnv(dir, nil, "run", "--config", "Caddyfile", "--adapter", "caddyfile")
	if err == nil || !strings.Contains(stderr, "needs shared revocation") {
		t.Fatalf("kavach run with a remote issuer and no redis: err %v\n%s", err, stderr)
	}
}
