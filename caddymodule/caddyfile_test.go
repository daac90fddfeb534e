package caddymodule

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// TestResourceSiteWarning goes through Caddy's adapter, so it also pins the
// layout of httpcaddyfile.Helper that siteKeys and addWarning rely on: if
// a Caddy upgrade changes it, the warning disappears and this test fails.
// The decision itself is gateway.SiteServes's (TestSiteServes there).
func TestResourceSiteWarning(t *testing.T) {
	t.Parallel()
	const cf = `{
	kavach {
		trusted_keys https://issuer.example ./jwks.json
	}
}
http://127.0.0.1:8080, http://localhost:8080 {
	kavach /a/* {
		resource http://localhost:8080/a
		scope a:b
	}
	kavach /mcp* {
		mcp
		resource https://other.example/mcp
		scope a:b
	}
}
`
	_, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cf), nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []caddyconfig.Warning
	for _, w := range warnings {
		if w.Directive == "kavach" {
			got = append(got, w)
		}
	}
	if len(got) != 1 || got[0].Line != 13 || !strings.Contains(got[0].Message, "resource https://other.example/mcp is not served by this site (http://127.0.0.1:8080, http://localhost:8080)") {
		t.Fatalf("warnings %+v, want one for line 13 naming https://other.example/mcp and the site's addresses", got)
	}
}

// TestValidateRefuses checks what `kavach validate` refuses in JSON
// configs (no Caddyfile line to name), for checks that once waited for
// `kavach run`.
func TestValidateRefuses(t *testing.T) {
	for name, tt := range map[string]struct{ kavach, issuer, want string }{
		"issuer_ttl_over_max_lifetime":  {`{"max_token_lifetime":600000000000}`, `,"access_token_ttl":900000000000`, "access_token_ttl 15m0s is longer than the global max_token_lifetime 10m0s"},
		"default_ttl_over_max_lifetime": {`{"max_token_lifetime":60000000000}`, "", "access_token_ttl (default) 5m0s is longer than the global max_token_lifetime 1m0s"},
		"admin_port_not_a_number":       {`{"admin":"127.0.0.1:20x1"}`, "", "admin 127.0.0.1:20x1: want one loopback host:port"},
		"audit_arguments_empty_name": {`{"external_issuers":[{"issuer":"https://idp.example","jwks":"https://idp.example/jwks"}]}`, "",
			"audit_arguments redact: an empty name"},
	} {
		t.Run(name, func(t *testing.T) {
			handler := `{"handler":"kavach_issuer","issuer":"http://127.0.0.1:8081"` + tt.issuer + `}`
			if strings.HasPrefix(name, "audit_arguments") {
				handler = `{"handler":"kavach","resource":"http://127.0.0.1:8080/mcp","mcp":{"tools":[{"pattern":"*","scopes":["a:b"]}],"audit_arguments":{"redact":["password",""]}}}`
			}
			cfg := `{"admin":{"disabled":true},"apps":{"kavach":` + tt.kavach + `,"http":{"servers":{"s":{"listen":["127.0.0.1:0"],` +
				`"routes":[{"handle":[` + handler + `]}]}}}}}`
			var c caddy.Config
			if err := json.Unmarshal([]byte(cfg), &c); err != nil {
				t.Fatal(err)
			}
			err := caddy.Validate(&c)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("caddy.Validate = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
