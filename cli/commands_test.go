package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kavachgate/kavach/admin"
)

var created = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// agentAnswer is an agent as the issuer shows it.
func agentAnswer(id, name string) map[string]any {
	return map[string]any{
		"id": id, "client_id": id, "name": name, "owner": "usr_alice", "grant": "dlg_1", "chain": []string{"dlg_1"},
		"agents": []string{id}, "scopes": []string{"mcp:review", "repository:read"}, "token_endpoint_auth_method": "client_secret_basic",
		"created_at": created, "expires_at": created.Add(24 * time.Hour),
	}
}

// TestAdminRequests: each command that talks to the admin listener sends
// the method, path and JSON body of its operation, with the admin token;
// --issuer selects the issuer on the issuer API's commands only.
func TestAdminRequests(t *testing.T) {
	t.Setenv("KAVACH_ADMIN_TOKEN", "s3cret")
	pub := filepath.Join(t.TempDir(), "key.pub.jwk")
	os.WriteFile(pub, []byte(`{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}`), 0o600)
	addr, got := fakeAdmin(t, func(r *request) (int, any) {
		switch {
		case r.Path == "/v1/revocations":
			return 200, map[string]any{"revoked": map[string]any{"id": "agt_x", "until": created}}
		case r.Path == "/v1/agents" && r.Method == "GET":
			return 200, map[string]any{"agents": []any{agentAnswer("agt_x", "x")}}
		case strings.HasPrefix(r.Path, "/v1/agents"):
			return 200, agentAnswer("agt_x", "x")
		}
		return 200, map[string]any{}
	})
	for _, tc := range []struct {
		args         []string
		stdin        string
		method, path string
		query        string
		body         string // JSON, "" for none
	}{
		{[]string{"user", "create", "--name", "alice", "--id", "usr_alice", "--entitle", "https://r.example/mcp=a:b,c:d", "--entitle", "https://r.example/mcp=e:f"}, "",
			"POST", "/v1/users", "", `{"id":"usr_alice","name":"alice","entitlements":{"https://r.example/mcp":["a:b","c:d","e:f"]}}`},
		{[]string{"user", "create", "--name", "bob", "--password-stdin"}, "pw hunter2\r\nignored\n",
			"POST", "/v1/users", "", `{"name":"bob","password":"pw hunter2","entitlements":{}}`},
		{[]string{"user", "entitle", "usr_a/b", "--entitle", "https://r.example=x:y"}, "",
			"PUT", "/v1/users/usr_a%2Fb/entitlements", "", `{"https://r.example":["x:y"]}`},
		{[]string{"user", "show", "usr_alice", "--json"}, "", "GET", "/v1/users/usr_alice", "", ""},
		{[]string{"user", "revoke", "usr_alice", "--issuer", "https://iss.example"}, "", "POST", "/v1/users/usr_alice/revoke", "issuer=https%3A%2F%2Fiss.example", ""},
		{[]string{"user", "consents", "usr_alice"}, "", "GET", "/v1/users/usr_alice/consents", "", ""},
		{[]string{"user", "revoke-consent", "usr_alice", "dlg_a"}, "", "POST", "/v1/users/usr_alice/consents/dlg_a/revoke", "", ""},
		{[]string{"agent", "create", "--name", "orch", "--owner", "usr_alice", "--scope", "a:b c:d", "--scope", "e:f", "--ttl", "1h",
			"--constraint", "hosts=a.example,b.example", "--constraint", "max_body=10"}, "",
			"POST", "/v1/agents", "", `{"name":"orch","owner":"usr_alice","scopes":["a:b","c:d","e:f"],"ttl":"1h0m0s","constraints":{"hosts":["a.example","b.example"],"max_body":10}}`},
		{[]string{"agent", "child", "agt_p", "--name", "rev", "--scope", "a:b", "--public-key", pub}, "",
			"POST", "/v1/agents/agt_p/children", "", `{"name":"rev","scopes":["a:b"],"public_key":{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}}`},
		{[]string{"agent", "child", "agt_p", "--name", "rev", "--scope", "a:b", "--arg", "read_file path /repo/**", "--arg", "fetch url host *.corp.example",
			"--arg", "fetch url scheme https", "--constraint", `args={"deploy":{"env":{"enum":["dev"]}}}`}, "",
			"POST", "/v1/agents/agt_p/children", "", `{"name":"rev","scopes":["a:b"],"constraints":{"args":{"deploy":{"env":{"enum":["dev"]}},"fetch":{"url":{"hosts":["*.corp.example"],"schemes":["https"]}},"read_file":{"path":{"paths":["/repo/*"]}}}}}`},
		{[]string{"agent", "rotate", "agt_x"}, "", "POST", "/v1/agents/agt_x/rotate", "", ""},
		{[]string{"agent", "rotate", "agt_x", "--public-key", pub}, "", "POST", "/v1/agents/agt_x/rotate", "", `{"public_key":{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}}`},
		{[]string{"agent", "revoke", "agt_x"}, "", "POST", "/v1/agents/agt_x/revoke", "", ""},
		{[]string{"agent", "list", "--owner", "usr_alice", "--json", "--issuer", "https://iss.example"}, "", "GET", "/v1/agents", "issuer=https%3A%2F%2Fiss.example&owner=usr_alice", ""},
		{[]string{"client", "create", "--name", "rs", "--resource", "https://r.example/mcp"}, "",
			"POST", "/v1/clients", "", `{"name":"rs","kind":"resource_server","resources":["https://r.example/mcp"]}`},
		{[]string{"client", "create", "--name", "app", "--kind", "confidential", "--redirect-uri", "https://app.example/cb"}, "",
			"POST", "/v1/clients", "", `{"name":"app","kind":"confidential","redirect_uris":["https://app.example/cb"]}`},
		{[]string{"client", "revoke", "https://tools.example/c.json?x=1"}, "", "POST", "/v1/clients/https:%2F%2Ftools.example%2Fc.json%3Fx=1/revoke", "", ""},
		{[]string{"client", "revoke", "--host", "tools.example"}, "", "POST", "/v1/clients/revoke", "", `{"host":"tools.example"}`},
		{[]string{"keys", "rotate", "--issuer", "https://iss.example"}, "", "POST", "/v1/keys/rotate", "issuer=https%3A%2F%2Fiss.example", ""},
		{[]string{"revoke", "agt_x"}, "", "POST", "/v1/revocations", "", `{"id":"agt_x"}`},
		{[]string{"revoke", "--before", "2026-03-01T12:00:00Z", "--sub", "usr_alice", "--until", "2026-03-02T12:00:00Z"}, "",
			"POST", "/v1/revocations", "", `{"id":"usr_alice","cutoff":"sub","before":"2026-03-01T12:00:00Z","until":"2026-03-02T12:00:00Z"}`},
	} {
		before := len(got())
		out, errOut, code := run(t, nil, tc.stdin, append(tc.args, "--admin", addr)...)
		if code != 0 {
			t.Errorf("%q: exit %d: %s", tc.args, code, errOut)
			continue
		}
		reqs := got()[before:]
		if len(reqs) != 1 {
			t.Errorf("%q: %d requests", tc.args, len(reqs))
			continue
		}
		r := reqs[0]
		if r.Method != tc.method || r.Path != tc.path || r.Query != tc.query || r.Auth != "Bearer s3cret" {
			t.Errorf("%q: %s %s?%s (%s), want %s %s?%s", tc.args, r.Method, r.Path, r.Query, r.Auth, tc.method, tc.path, tc.query)
		}
		if (tc.body == "") != (r.RawBody == "") {
			t.Errorf("%q: body %q, want %q", tc.args, r.RawBody, tc.body)
		} else if tc.body != "" {
			var want map[string]any
			json.Unmarshal([]byte(tc.body), &want)
			if !reflect.DeepEqual(r.Body, want) || r.ContentType != "application/json" {
				t.Errorf("%q: body %s (%s), want %s", tc.args, r.RawBody, r.ContentType, tc.body)
			}
		}
		var printed map[string]any
		if err := json.Unmarshal([]byte(out), &printed); err != nil {
			t.Errorf("%q printed no JSON object: %q", tc.args, out)
		}
	}
	// An argument error sends nothing.
	before := len(got())
	for _, args := range [][]string{
		{"user", "create", "--name", "x", "--entitle", "no-equals"},
		{"agent", "create", "--name", "x", "--owner", "usr_a", "--scope", "a:b", "--constraint", "weekdays=mon"},
		{"client", "revoke", "cli_x", "--host", "tools.example"},
		{"revoke"},
		{"revoke", "agt_x", "--sub", "usr_a", "--before", "now"},
		{"revoke", "--sub", "usr_a"},
		{"revoke", "--sub", "usr_a", "--client", "cli_a", "--before", "now"},
		{"agent", "show"},
	} {
		if _, errOut, code := run(t, nil, "", append(args, "--admin", addr)...); code != 1 || errOut == "" {
			t.Errorf("%q: exit %d %q", args, code, errOut)
		}
	}
	if n := len(got()) - before; n != 0 {
		t.Errorf("argument errors sent %d requests", n)
	}
}

// TestAdminErrors: the listener's error answers reach the operator with
// their code and description, exit status 1; a refused token says where
// the CLI took it from; no token at all is said before anything is sent.
func TestAdminErrors(t *testing.T) {
	addr, _ := fakeAdmin(t, func(r *request) (int, any) {
		if r.Auth != "Bearer s3cret" {
			return 401, map[string]string{"error": "unauthorized", "error_description": "admin token rejected"}
		}
		return 400, map[string]string{"error": "invalid_scope", "error_description": `scope: "admin:all" beyond the owner's entitlements`}
	})
	t.Setenv("KAVACH_ADMIN_TOKEN", "s3cret")
	_, errOut, code := run(t, nil, "", "agent", "create", "--name", "a", "--owner", "usr_a", "--scope", "admin:all", "--admin", addr)
	if code != 1 || !strings.Contains(errOut, "400 Bad Request: invalid_scope: scope: \"admin:all\" beyond the owner's entitlements") {
		t.Errorf("refused agent: %d %q", code, errOut)
	}

	t.Setenv("KAVACH_ADMIN_TOKEN", "wrong")
	env := &Env{DataDir: t.TempDir()}
	_, errOut, code = run(t, env, "", "agent", "list", "--admin", addr)
	if code != 1 || !strings.Contains(errOut, "admin token rejected") || strings.Contains(errOut, "required") ||
		!strings.Contains(errOut, filepath.Join(env.DataDir, "kavach", "admin_token")) || strings.Contains(errOut, "wrong") {
		t.Errorf("wrong token: %d %q", code, errOut)
	}

	// The token file a gateway generated, when the variable is not set.
	t.Setenv("KAVACH_ADMIN_TOKEN", "")
	if _, errOut, code := run(t, env, "", "user", "list", "--admin", addr); code != 1 || !strings.Contains(errOut, "no admin token") {
		t.Errorf("no token: %d %q", code, errOut)
	}
	os.MkdirAll(filepath.Join(env.DataDir, "kavach"), 0o700)
	os.WriteFile(filepath.Join(env.DataDir, "kavach", "admin_token"), []byte("s3cret\n"), 0o600)
	if _, errOut, code := run(t, env, "", "agent", "create", "--name", "a", "--owner", "usr_a", "--scope", "a:b", "--admin", addr); code != 1 || !strings.Contains(errOut, "invalid_scope") {
		t.Errorf("token from the data directory: %d %q", code, errOut)
	}

	// Nobody listening.
	t.Setenv("KAVACH_ADMIN_TOKEN", "s3cret")
	if _, errOut, code := run(t, nil, "", "revoke", "agt_x", "--admin", "127.0.0.1:1"); code != 1 || !strings.Contains(errOut, "admin listener 127.0.0.1:1") {
		t.Errorf("no listener: %d %q", code, errOut)
	}
}

// TestTables: agent list, agent show and user list print tables for
// people, and the admin API's JSON with --json; a name with a control
// character is quoted, not sent to the terminal raw.
func TestTables(t *testing.T) {
	t.Setenv("KAVACH_ADMIN_TOKEN", "s3cret")
	addr, _ := fakeAdmin(t, func(r *request) (int, any) {
		switch r.Path {
		case "/v1/agents":
			evil := agentAnswer("agt_evil", "evil\x1b[2Jname")
			evil["revoked_at"] = created
			return 200, map[string]any{"agents": []any{agentAnswer("agt_orch", "orchestrator"), evil}}
		case "/v1/agents/agt_rev":
			a := agentAnswer("agt_rev", "reviewer")
			a["parent"], a["chain"], a["agents"], a["children"] = "agt_orch", []string{"dlg_1", "dlg_2"}, []string{"agt_orch", "agt_rev"}, []string{"agt_helper"}
			a["constraints"] = map[string]any{"hosts": []string{"mcp.internal"}, "cidrs": []string{"10.0.0.0/8"}, "audit": "required"}
			return 200, a
		case "/v1/users":
			return 200, map[string]any{"users": []any{map[string]any{"id": "usr_alice", "name": "alice", "created_at": created,
				"entitlements": map[string][]string{"https://b.example/mcp": {"x:y"}, "https://a.example/mcp": {"mcp:review", "repository:read"}}}}}
		case "/v1/users/usr_sso":
			return 200, map[string]any{"id": "usr_sso", "name": "corpsso:alice@corp.example", "created_at": created,
				"entitlements":        map[string][]string{"https://a.example/mcp": {"mcp:review", "repository:read"}},
				"entitlements_source": "idp", "entitlements_at": created,
				"idp_links": []any{map[string]any{"provider": "corpsso", "issuer": "https://sso.corp.example", "subject": "00u-alice",
					"email": "alice@corp.example", "groups": []string{"platform-eng", "staff"}, "created_at": created, "seen_at": created}}}
		}
		return 404, map[string]string{"error": "not_found", "error_description": "not found"}
	})

	out, _, code := run(t, nil, "", "agent", "list", "--admin", addr)
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if code != 0 || len(lines) != 3 || strings.Join(strings.Fields(lines[0]), " ") != "ID NAME OWNER PARENT STATUS EXPIRES SCOPES" {
		t.Fatalf("agent list: %d\n%s", code, out)
	}
	if f := strings.Fields(lines[1]); strings.Join(f, " ") != "agt_orch orchestrator usr_alice - expired 2026-03-02T12:00:00Z mcp:review repository:read" {
		t.Errorf("agent row %q", lines[1])
	}
	if strings.Contains(out, "\x1b") || !strings.Contains(lines[2], `"evil\x1b[2Jname"`) || !strings.Contains(lines[2], "revoked") {
		t.Errorf("a name with an escape sequence: %q", lines[2])
	}
	out, _, _ = run(t, nil, "", "agent", "list", "--json", "--admin", addr)
	var list struct {
		Agents []struct{ ID, Name string }
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list.Agents) != 2 || list.Agents[1].Name != "evil\x1b[2Jname" {
		t.Errorf("agent list --json: %v\n%s", err, out)
	}

	out, _, code = run(t, nil, "", "agent", "show", "agt_rev", "--admin", addr)
	for _, want := range []string{"Parent       agt_orch", "Chain        dlg_1 → dlg_2", "Agents       agt_orch → agt_rev", "Children     agt_helper",
		"Constraints  hosts=mcp.internal cidrs=10.0.0.0/8 audit=required", "Scopes       mcp:review repository:read"} {
		if code != 0 || !strings.Contains(out, want+"\n") {
			t.Errorf("agent show lacks %q:\n%s", want, out)
		}
	}
	out, _, _ = run(t, nil, "", "agent", "show", "agt_rev", "--json", "--admin", addr)
	var shown struct{ Children []string }
	if err := json.Unmarshal([]byte(out), &shown); err != nil || len(shown.Children) != 1 {
		t.Errorf("agent show --json: %v\n%s", err, out)
	}

	out, _, code = run(t, nil, "", "user", "list", "--admin", addr)
	lines = strings.Split(strings.TrimRight(out, "\n"), "\n")
	if code != 0 || len(lines) != 2 || strings.Join(strings.Fields(lines[1]), " ") !=
		"usr_alice alice active 2026-03-01T12:00:00Z https://a.example/mcp=mcp:review,repository:read https://b.example/mcp=x:y" {
		t.Errorf("user list: %d\n%s", code, out)
	}
	out, _, code = run(t, nil, "", "user", "show", "usr_sso", "--admin", addr)
	var rows []string // each line with its columns one space apart
	for _, l := range strings.Split(out, "\n") {
		rows = append(rows, strings.Join(strings.Fields(l), " "))
	}
	for _, want := range []string{"Name corpsso:alice@corp.example", "Entitlements idp (entitle rules at the last sign-in), 2026-03-01T12:00:00Z",
		"https://a.example/mcp mcp:review repository:read", "IdP corpsso https://sso.corp.example sub=00u-alice",
		"Email alice@corp.example", "Groups platform-eng staff"} {
		if code != 0 || !slices.Contains(rows, want) {
			t.Errorf("user show lacks %q:\n%s", want, out)
		}
	}
	out, _, _ = run(t, nil, "", "user", "show", "usr_sso", "--json", "--admin", addr)
	var shownUser admin.User
	if err := json.Unmarshal([]byte(out), &shownUser); err != nil || len(shownUser.IdPLinks) != 1 || shownUser.IdPLinks[0].Subject != "00u-alice" {
		t.Errorf("user show --json: %v\n%s", err, out)
	}
	out, _, _ = run(t, nil, "", "user", "list", "--json", "--admin", addr)
	if !strings.HasPrefix(out, "{\n  \"users\": [") {
		t.Errorf("user list --json:\n%s", out)
	}
}

// TestHelp: every command has a one-line summary, Summary lists each, and
// a command's help shows its long text.
func TestHelp(t *testing.T) {
	t.Parallel()
	sum := Summary()
	names := []string{"user", "agent", "client", "revoke", "audit", "keys", "token"}
	if n := strings.Count(sum, "\n"); n != len(names) {
		t.Errorf("Summary has %d lines:\n%s", n, sum)
	}
	for _, n := range names {
		if !strings.Contains(sum, "  kavach "+n+" ") {
			t.Errorf("Summary lacks %s:\n%s", n, sum)
		}
		out, _, code := run(t, nil, "", n, "--help")
		if code != 0 || !strings.Contains(out, "Usage:") || !strings.Contains(out, "  "+n+" ") {
			t.Errorf("%s --help: %d\n%s", n, code, out)
		}
	}
}
