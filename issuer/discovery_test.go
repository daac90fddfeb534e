package issuer

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"
)

// TestNoOpenIDDiscovery: the issuer is an OAuth 2.1 authorization server,
// not an OpenID provider (it issues no ID token), so it does not publish
// OpenID Discovery, at the appended or the path-inserted location; RFC
// 8414 metadata stays at both of its locations, without OpenID-only
// members.
func TestNoOpenIDDiscovery(t *testing.T) {
	for _, base := range []string{"", "/tenant/a"} {
		env := newEnv(t, func(c *Config) { c.Issuer += base })
		get := func(path string) (int, map[string]any) {
			t.Helper()
			resp, err := http.Get(env.srv.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			var out map[string]any
			_ = json.Unmarshal(body, &out)
			return resp.StatusCode, out
		}
		for _, p := range []string{
			"/.well-known/openid-configuration" + base,
			base + "/.well-known/openid-configuration",
		} {
			if status, out := get(p); status != http.StatusNotFound {
				t.Errorf("issuer %q: GET %s = %d %v, want 404 (no OpenID provider here)", env.s.Issuer(), p, status, out)
			}
		}
		paths := []string{"/.well-known/oauth-authorization-server" + base}
		if base != "" {
			paths = append(paths, base+"/.well-known/oauth-authorization-server")
		}
		for _, p := range paths {
			status, out := get(p)
			if status != http.StatusOK || out["issuer"] != env.s.Issuer() {
				t.Fatalf("issuer %q: GET %s = %d %v, want the RFC 8414 metadata", env.s.Issuer(), p, status, out)
			}
			for _, member := range []string{"subject_types_supported", "id_token_signing_alg_values_supported", "userinfo_endpoint"} {
				if _, ok := out[member]; ok {
					t.Errorf("issuer %q: %s advertises the OpenID member %s", env.s.Issuer(), p, member)
				}
			}
		}
	}
}
