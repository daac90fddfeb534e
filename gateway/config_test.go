package gateway

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/kavachgate/kavach/mcp"
)

func TestSiteServes(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		addr, resource string
		want           bool
	}{
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080/mcp", true},
		{"http://127.0.0.1:8080", "https://other.example/mcp", false},
		{"http://127.0.0.1:8080", "https://127.0.0.1:8080/mcp", false}, // scheme
		{"http://127.0.0.1:8080", "http://127.0.0.1:8081/mcp", false},  // port
		{"http://127.0.0.1:8080", "http://localhost:8080/mcp", false},  // host
		{"http://:8080", "http://gw.example:8080/api", true},           // any host
		{":8080", "http://gw.example:8080/api", true},                  // a bare port: either scheme
		{":8080", "https://gw.example:8080/api", true},
		{":8080", "https://gw.example/api", false},
		{"example.com", "https://example.com/mcp", true}, // automatic HTTPS
		{"example.com", "http://example.com/mcp", false},
		{"EXAMPLE.com", "https://example.COM/mcp", true},
		{"*.example.com", "https://api.example.com/mcp", true},
		{"*.example.com", "https://a.b.example.com/mcp", false},
		{"*", "https://anything.example/mcp", true},
		{"http://example.com", "http://example.com/mcp", true},
		{"example.com:80", "http://example.com/mcp", true},   // the HTTP port: plain HTTP
		{"example.com:443", "http://example.com/mcp", false}, // the HTTPS port
		{"example.com/api/*", "https://example.com/api", true},
		{"https://[::1]:8443", "https://[::1]:8443/mcp", true},
		{"[::1]:8443", "https://[::1]:8444/mcp", false},
		{"{$SITE}", "https://anything.example/mcp", true},    // resolved later: not judged
		{"example.com:http", "http://example.com/mcp", true}, // unparseable: not judged
		{"example.com:99999", "http://example.com/mcp", true},
	} {
		u, err := url.Parse(tt.resource)
		if err != nil {
			t.Fatal(err)
		}
		if got := SiteServes(tt.addr, u, 80, 443); got != tt.want {
			t.Errorf("SiteServes(%q, %q) = %v, want %v", tt.addr, tt.resource, got, tt.want)
		}
	}
	// Other ports for the server's HTTP and HTTPS (http_port, https_port).
	u, _ := url.Parse("http://gw.example:8080/api")
	if !SiteServes("gw.example:8080", u, 8080, 8443) || SiteServes("gw.example", u, 80, 443) {
		t.Error("http_port not honoured")
	}
}

// TestRouteConfigJSON: the JSON of the kavach handler's route, as Caddy
// configs and the Caddyfile adapter write it, reads into RouteConfig and
// compiles into the route it describes.
func TestRouteConfigJSON(t *testing.T) {
	t.Parallel()
	const config = `{
		"resource": "https://gw.example/mcp",
		"scopes": ["mcp:use"],
		"rules": [{"method": "POST", "path": "/mcp", "scopes": ["mcp:write"]}],
		"mcp": {
			"tools": [{"pattern": "read_file", "scopes": ["repo:read"]}],
			"allowed_origins": ["https://app.example"],
			"max_body": 4096,
			"audit_arguments": {"redact": ["password"]}
		},
		"metadata": true,
		"audit_required": true,
		"allow_path_params": true
	}`
	var cfg RouteConfig
	if err := json.Unmarshal([]byte(config), &cfg); err != nil {
		t.Fatal(err)
	}
	sessions := mcp.NewMemorySessions(0, 0)
	rt, err := NewRoute(&cfg, sessions)
	if err != nil {
		t.Fatal(err)
	}
	if rt.Resource != cfg.Resource || !rt.AuditRequired || !rt.PathOptions.AllowParams || len(rt.Rules) != 1 || rt.Rules[0].Method != "POST" {
		t.Errorf("route %+v does not carry the config", rt)
	}
	m := rt.MCP
	if m == nil || m.Sessions != sessions || m.MaxBody != 4096 || len(m.Rules.Tools) != 1 || !m.RecordArguments || len(m.Redact) != 1 || len(m.Origins) != 1 {
		t.Fatalf("MCP %+v does not carry the config", m)
	}
	if got := strings.Join(rt.AllScopes(), " "); got != "mcp:use mcp:write repo:read" {
		t.Errorf("AllScopes %q", got)
	}
	// Written back, the config is what was read (the handler's JSON).
	out, err := json.Marshal(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	var again RouteConfig
	if err := json.Unmarshal(out, &again); err != nil || !strings.Contains(string(out), `"rules":[{"method":"POST","path":"/mcp","scopes":["mcp:write"]}]`) {
		t.Errorf("marshalled %s (%v)", out, err)
	}
}

func TestNewRouteRefuses(t *testing.T) {
	t.Parallel()
	sessions := mcp.NewMemorySessions(0, 0)
	tools := []mcp.Rule{{Pattern: "*", Scopes: []string{"a:b"}}}
	for _, tc := range []struct {
		name     string
		cfg      RouteConfig
		sessions mcp.SessionStore
		want     string
	}{
		{"no resource", RouteConfig{Scopes: []string{"a:b"}}, nil, `resource "" is not a URL`},
		{"wildcard scope", RouteConfig{Resource: "https://gw.example/api", Scopes: []string{"a:*"}}, nil, "must be concrete"},
		{"bad rule", RouteConfig{Resource: "https://gw.example/api", Rules: []Rule{{Method: "get", Path: "/x", Scopes: []string{"a:b"}}}}, nil, `write "GET"`},
		{"empty redact name", RouteConfig{Resource: "https://gw.example/mcp", MCP: &MCPConfig{Tools: tools, AuditArguments: &AuditArguments{Redact: []string{"password", ""}}}}, sessions,
			"audit_arguments redact: an empty name"},
		{"no session store", RouteConfig{Resource: "https://gw.example/mcp", MCP: &MCPConfig{Tools: tools}}, nil, "no session store"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := NewRoute(&tc.cfg, tc.sessions); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewRoute = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
