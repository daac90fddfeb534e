package gateway

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/kavachgate/kavach/audit"
	"github.com/kavachgate/kavach/mcp"
	"github.com/kavachgate/kavach/policy"
	"github.com/kavachgate/kavach/token"
)

// argsRoute is mcpRoute with argument rules: read_file's path under
// /repo/, fetch's url on *.corp.example.
func argsRoute(t *testing.T) *Route {
	t.Helper()
	rt := &Route{Resource: mcpResource, Scopes: []string{"mcp:call"}, MCP: &MCP{
		Rules: mcp.Rules{Tools: []mcp.Rule{{Pattern: "read_file", Scopes: []string{"repo:read"}}, {Pattern: "fetch", Scopes: []string{"net:fetch"}}, {Pattern: "write_file", Scopes: []string{"repo:write"}}}},
		Args: policy.Args{
			"read_file": {"path": {Paths: policy.StringList{"/repo/*"}}},
			"fetch":     {"url": {Hosts: policy.StringList{"*.corp.example"}}},
		},
		Sessions: mcp.NewMemorySessions(0, 0),
	}}
	if err := rt.Compile(); err != nil {
		t.Fatal(err)
	}
	return rt
}

// TestToolArguments: a call outside the route's argument rules, or the
// token's, or naming a host outside the token's hosts, is 403 with a
// JSON-RPC error that names the argument and the rule, never forwarded,
// and the trail says the same.
func TestToolArguments(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	rt := argsRoute(t)
	plain := f.mcpToken(t, "mcp:call repo:read repo:write net:fetch")
	narrow := f.mint(t, func(c *token.Claims) {
		c.Audience, c.Scope = token.Audience{mcpResource}, "mcp:call repo:read repo:write net:fetch"
		c.Kavach.Constraints = &policy.Constraints{
			Hosts: policy.StringList{"api.example", "api.corp.example"},
			Args: policy.Args{
				"read_file":  {"path": {Paths: policy.StringList{"/repo/docs/*"}}},
				"write_file": {"path": {Paths: policy.StringList{"/repo/out/*"}}, "mode": {Enum: policy.StringList{"append"}, Optional: true}},
			},
		}
	})
	tests := []struct {
		name, tok, tool, args string
		status                int
		reason                string
	}{
		{"inside", plain, "read_file", `{"path":"/repo/a.go"}`, 200, ""},
		{"outside", plain, "read_file", `{"path":"/etc/passwd"}`, 403, `argument "path" is outside /repo/*`},
		{"traversal", plain, "read_file", `{"path":"/repo/../etc/passwd"}`, 403, `argument "path" has a '..' segment`},
		{"escaped traversal", plain, "read_file", `{"path":"/repo/\u002e\u002e/etc/passwd"}`, 403, `'..'`},
		{"missing", plain, "read_file", `{}`, 403, `argument "path" is missing`},
		{"no arguments", plain, "read_file", ``, 403, `is missing`},
		{"case variant", plain, "read_file", `{"path":"/repo/a","PATH":"/etc/passwd"}`, 400, ""},
		{"near name", plain, "fetch", `{"url":"https://api.corp.example/","url ":"http://169.254.169.254/"}`, 200, ""},
		{"not a string", plain, "read_file", `{"path":["/etc/passwd"]}`, 403, `must be a string`},
		{"unruled tool", plain, "write_file", `{"path":"/anywhere"}`, 200, ""},
		{"url allowed", plain, "fetch", `{"url":"https://api.corp.example/x"}`, 200, ""},
		{"metadata IP", plain, "fetch", `{"url":"http://169.254.169.254/latest/meta-data/"}`, 403, `argument "url" names a host outside *.corp.example`},
		{"userinfo", plain, "fetch", `{"url":"https://api.corp.example@evil.example/"}`, 403, `userinfo`},
		{"token args narrower", narrow, "read_file", `{"path":"/repo/src/a.go"}`, 403, `argument "path" is outside /repo/docs/*`},
		{"token args inside", narrow, "read_file", `{"path":"/repo/docs/a.md"}`, 200, ""},
		{"token-only rule", narrow, "write_file", `{"path":"/etc/x"}`, 403, `is outside /repo/out/*`},
		{"token optional enum", narrow, "write_file", `{"path":"/repo/out/x","mode":"truncate"}`, 403, `argument "mode" is not one of append`},
		{"token hosts allow", narrow, "fetch", `{"url":"https://api.corp.example/"}`, 200, ""},
		{"token hosts deny", narrow, "fetch", `{"url":"https://www.corp.example/"}`, 403, `argument "url" names a host outside the token's hosts`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tr := &trail{}
			g := *f.gw
			g.Audit = tr
			params := `{"name":"` + tc.tool + `"`
			if tc.args != "" {
				params += `,"arguments":` + tc.args
			}
			u := &upstream{reply: `{"jsonrpc":"2.0","id":7,"result":{}}`}
			w, a, _ := serve(&g, rt, mcpPost(tc.tok, rpc(7, "tools/call", params+"}")), u)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d (%s)", w.Code, tc.status, a.TrailReason())
			}
			if tc.status == 200 {
				if u.calls != 1 {
					t.Fatal("allowed call not forwarded")
				}
				return
			}
			if u.calls != 0 {
				t.Fatal("a denied call reached the upstream")
			}
			id, code := rpcError(t, w.Body.String())
			if id != float64(7) || code == 0 {
				t.Fatalf("JSON-RPC error id %v code %d", id, code)
			}
			if tc.reason == "" {
				return
			}
			if !strings.Contains(w.Body.String(), jsonText(tc.reason)) {
				t.Fatalf("body %s does not say %q", w.Body.String(), tc.reason)
			}
			// RFC 6750 §3: error_description holds no '"' or '\'; the
			// argument's name is quoted with '\'' there.
			ch := w.Header().Get("WWW-Authenticate")
			if want := strings.ReplaceAll(tc.reason, `"`, `'`); tc.status == 403 && (!strings.Contains(ch, want) || strings.Count(ch, `"`) != 4 || strings.Contains(ch, `\`)) {
				t.Fatalf("WWW-Authenticate %q, want %q", ch, want)
			}
			recs := tr.records()
			if len(recs) != 1 || recs[0].Decision != audit.Deny || !strings.Contains(recs[0].Reason, tc.reason) || !strings.HasPrefix(recs[0].Reason, string(ArgumentDenied)) {
				t.Fatalf("records %+v", recs)
			}
		})
	}
}

// jsonText is s as it appears inside a JSON string.
func jsonText(s string) string {
	return strings.ReplaceAll(s, `"`, `\"`)
}

func TestRouteArgsNeedToolRule(t *testing.T) {
	t.Parallel()
	rt := &Route{Resource: mcpResource, MCP: &MCP{
		Rules:    mcp.Rules{Tools: []mcp.Rule{{Pattern: "*", Scopes: []string{"repo:read"}}}},
		Args:     policy.Args{"read_file": {"path": {Paths: policy.StringList{"/repo/*"}}}},
		Sessions: mcp.NewMemorySessions(0, 0),
	}}
	if err := rt.Compile(); err == nil || !strings.Contains(err.Error(), "no tool rule") {
		t.Fatalf("%v", err)
	}
}

// TestRouteArgsJSON: the JSON config takes the token constraint's form and
// is as strict: an unknown or misspelt member is an error at load, never a
// rule silently dropped.
func TestRouteArgsJSON(t *testing.T) {
	t.Parallel()
	good := `{"resource":"https://api.example/mcp","mcp":{"tools":[{"pattern":"read_file","scopes":["repo:read"]}],"args":{"read_file":{"path":{"paths":["/repo/*"]}}}}}`
	var cfg RouteConfig
	if err := json.Unmarshal([]byte(good), &cfg); err != nil {
		t.Fatal(err)
	}
	rt, err := NewRoute(&cfg, mcp.NewMemorySessions(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if rt.MCP.Args.For("read_file")["path"].Paths[0] != "/repo/*" {
		t.Fatalf("args %+v", rt.MCP.Args)
	}
	for _, bad := range []string{
		strings.Replace(good, `"paths"`, `"path"`, 1),
		strings.Replace(good, `["/repo/*"]`, `[]`, 1),
		strings.Replace(good, `["/repo/*"]`, `["/repo/**"]`, 1),
		strings.Replace(good, `{"paths":["/repo/*"]}`, `{"paths":["/repo/*"],"enum":["a"]}`, 1),
	} {
		var cfg RouteConfig
		if err := json.Unmarshal([]byte(bad), &cfg); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}

// TestToolArgumentsRepeated: parsers keep the first or the last of a
// repeated member, so a call repeating a constrained argument (spelled the
// same or escaped) is malformed JSON-RPC (400, parse error), never
// forwarded with the reading the gateway did not check.
func TestToolArgumentsRepeated(t *testing.T) {
	f := newFixture(t)
	rt := limitedRoute(t, "")
	rt.MCP.Args = policy.Args{"read_file": policy.ToolArgs{"path": policy.ArgRule{Paths: policy.StringList{"/repo/*"}}}}
	tok := f.tokenFor(t, "usr_alice", "agt_a", "mcp:call repo:read")
	for _, args := range []string{
		`{"path":"/repo/a","path":"/etc/passwd"}`,
		`{"path":"/etc/passwd","path":"/repo/a"}`,
		`{"path":"/repo/a","p\u0061th":"/etc/passwd"}`,
	} {
		u := &upstream{reply: `{}`}
		w, _, _ := serve(f.gw, rt, mcpPost(tok, rpc(7, "tools/call", `{"name":"read_file","arguments":`+args+`}`)), u)
		if w.Code != 400 || u.calls != 0 {
			t.Errorf("arguments %s: %d, upstream %d calls; want 400 and nothing forwarded", args, w.Code, u.calls)
		}
		if _, code := rpcError(t, w.Body.String()); code != -32700 {
			t.Errorf("arguments %s: JSON-RPC code %d, want -32700 (parse error)", args, code)
		}
	}
}
