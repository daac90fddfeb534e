package issuer

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// TestArgsConstraints: argument rules set at agent creation reach the
// agent's tokens, narrow at child creation and at token exchange, and a
// request that would widen one is refused naming args (invalid_scope, as
// other constraint widenings are).
func TestArgsConstraints(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *agentEnv) {
		var args map[string]any
		_ = json.Unmarshal([]byte(`{
			"read_file": {"path": {"paths": ["/repo/*"]}},
			"fetch": {"url": {"hosts": ["*.corp.example"], "url": true}}
		}`), &args)
		cn := map[string]any{"hosts": []string{"mcp.example"}, "args": args}
		a := e.newAgent(agentReq{Name: "reviewer", Constraints: cn})
		if a.Constraints == nil || a.Constraints.Args.For("read_file")["path"].Paths[0] != "/repo/*" {
			t.Fatalf("agent constraints %+v", a.Constraints)
		}
		asA := basic(a.ID, a.ClientSecret)
		parentToken := func(e *agentEnv) string {
			raw, pt := e.agentToken(a, url.Values{"resource": {testResource}, "scope": {"repo:read"}})
			if c := pt.Constraints(); c == nil || c.Args.For("fetch")["url"].Hosts[0] != "*.corp.example" {
				t.Fatalf("token constraints %+v", c)
			}
			return raw
		}

		e.run("child created narrower", func(t *testing.T, e *agentEnv) {
			c := e.newChild(a.ID, agentReq{Name: "kid", Scopes: []string{"repo:read"}, Constraints: map[string]any{
				"args": map[string]any{"read_file": map[string]any{"path": map[string]any{"paths": []string{"/repo/docs/*"}}}}}})
			ta := c.Constraints.Args
			if !slices.Equal(ta.For("read_file")["path"].Paths, []string{"/repo/docs/*"}) || ta.For("fetch") == nil {
				t.Fatalf("child args %+v: narrowed rule not applied or the parent's fetch rule not inherited", ta)
			}
		})
		e.run("child created wider", func(t *testing.T, e *agentEnv) {
			status, out := e.adminCall("POST", "/v1/agents/"+a.ID+"/children", map[string]any{"name": "wide", "scopes": []string{"repo:read"},
				"constraints": map[string]any{"args": map[string]any{"read_file": map[string]any{"path": map[string]any{"paths": []string{"/*"}}}}}})
			if status != http.StatusBadRequest && status != http.StatusForbidden {
				t.Fatalf("wider child: %d %v", status, out)
			}
		})
		e.run("exchange narrows", func(t *testing.T, e *agentEnv) {
			status, out := e.exchange(asA, parentToken(e), url.Values{"constraints": {`{"args":{"read_file":{"path":{"paths":["/repo/src/*"]}}}}`}})
			_, nt := e.mustToken(status, out)
			ta := nt.Constraints().Args
			if !slices.Equal(ta.For("read_file")["path"].Paths, []string{"/repo/src/*"}) || ta.For("fetch")["url"].Hosts == nil {
				t.Fatalf("args %+v", ta)
			}
		})
		for name, cnst := range map[string]string{
			"path outside":       `{"args":{"read_file":{"path":{"paths":["/etc/*"]}}}}`,
			"path made optional": `{"args":{"read_file":{"path":{"optional":true,"max_len":9}}}}`,
			"host outside":       `{"args":{"fetch":{"url":{"hosts":["169.254.169.254"]}}}}`,
			"scheme added":       `{"args":{"fetch":{"url":{"hosts":["api.corp.example"],"schemes":["gopher"]}}}}`,
		} {
			e.run("exchange widening/"+name, func(t *testing.T, e *agentEnv) {
				status, out := e.exchange(asA, parentToken(e), url.Values{"constraints": {cnst}})
				wantError(t, status, out, http.StatusBadRequest, "invalid_scope", "args")
			})
		}
		e.run("exchange malformed args", func(t *testing.T, e *agentEnv) {
			status, out := e.exchange(asA, parentToken(e), url.Values{"constraints": {`{"args":{"read_file":{"path":{"paths":["/repo/*"],"glob":"x"}}}}`}})
			wantError(t, status, out, http.StatusBadRequest, "invalid_request", "")
		})
	})
}

// TestArgsTokenTooLarge: argument rules too big for a token (a compact JWS
// is at most token.MaxTokenSize) are the caller's problem, said as such:
// the token endpoint answers invalid_request naming the size, not a 500.
func TestArgsTokenTooLarge(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *agentEnv) {
		args := map[string]any{}
		for i := range 12 {
			paths := make([]string, 16)
			for j := range paths {
				paths[j] = fmt.Sprintf("/repositories/team-%02d/project-%02d/src/*", i, j)
			}
			args[fmt.Sprintf("tool_%02d", i)] = map[string]any{"path": map[string]any{"paths": paths}}
		}
		a := e.newAgent(agentReq{Name: "verbose", Constraints: map[string]any{"args": args}})
		status, out := e.clientCredentials(basic(a.ID, a.ClientSecret), url.Values{"resource": {testResource}})
		wantOAuthError(t, status, out, http.StatusBadRequest, "invalid_request")
		if desc, _ := out["error_description"].(string); !strings.Contains(desc, "too large") {
			t.Fatalf("error_description %q does not say the token would be too large", desc)
		}
	})
}
