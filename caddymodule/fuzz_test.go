package caddymodule

import (
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// FuzzUnmarshalCaddyfile feeds arbitrary directive bodies to every
// Caddyfile parser of the package: the kavach handler, kavach_metadata,
// kavach_issuer, the global option and the kavach_dot_segments matcher,
// each with the body as arguments and as a block, and then the kavach
// directive and global option through Caddy's whole adapter (so the
// directive glue, matcher extraction and site check run too). None may
// panic (`scope GET "" x:y` once did: index out of range), and every error
// they return names the file and line, as users are promised.
func FuzzUnmarshalCaddyfile(f *testing.F) {
	for _, body := range []string{
		"resource http://127.0.0.1:8080/x\nscope GET /x/* a:b",
		"resource http://127.0.0.1:8080/x\nmcp\ntool read_file repo:read\nresource_uri file:///r/* a:b\nprompt p a:b\nallowed_origins https://a.example",
		"resource http://127.0.0.1:8080/x\nscope \"\"",
		"scope GET",
		"scope * * a:b",
		"scope {\n}\n",
		"mcp {\n}\n",
		"tool",
		"issuer http://127.0.0.1:8081\naccess_token_ttl 1m\nstore sqlite ./k.db",
		"audit postgres {env.X} {\nnode a\nkey k.key\n}",
		"audit fiel ./x",
		"external_issuer https://idp.example {\njwks https://idp.example/jwks\nalgs RS256\n}",
		"http://127.0.0.1:8080/x {\nauthorization_servers https://i.example\n}",
		"{\n}\n}",
	} {
		f.Add(body)
	}
	adapter := caddyconfig.GetAdapter("caddyfile")
	f.Fuzz(func(t *testing.T, body string) {
		parsers := map[string]func(*caddyfile.Dispenser) error{
			"kavach":              func(d *caddyfile.Dispenser) error { return new(Handler).UnmarshalCaddyfile(d) },
			"kavach_metadata":     func(d *caddyfile.Dispenser) error { return new(Metadata).UnmarshalCaddyfile(d) },
			"kavach_issuer":       func(d *caddyfile.Dispenser) error { return new(IssuerHandler).UnmarshalCaddyfile(d) },
			"kavach_dot_segments": func(d *caddyfile.Dispenser) error { return new(MatchDotSegments).UnmarshalCaddyfile(d) },
			"kavach global":       func(d *caddyfile.Dispenser) error { _, err := parseGlobal(d, nil); return err },
		}
		for name, parse := range parsers {
			directive, _, _ := strings.Cut(name, " ")
			for _, input := range []string{directive + " " + body, directive + " {\n" + body + "\n}"} {
				tokens, err := caddyfile.Tokenize([]byte(input), "Caddyfile")
				if err != nil || len(tokens) == 0 {
					continue
				}
				if err := parse(caddyfile.NewDispenser(tokens)); err != nil && !strings.Contains(err.Error(), "Caddyfile:") {
					t.Errorf("%s %q: error without file and line: %v", name, input, err)
				}
			}
		}
		for _, cf := range []string{
			"{\n\tkavach {\n\t\ttrusted_keys https://i.example ./jwks.json\n\t}\n}\nhttp://127.0.0.1:8080 {\n\tkavach /x* {\n" + body + "\n\t}\n}\n",
			"{\n\tkavach {\n" + body + "\n\t}\n}\nhttp://127.0.0.1:8081 {\n\tkavach_issuer {\n\t\tissuer http://127.0.0.1:8081\n\t}\n}\n",
		} {
			_, _, _ = adapter.Adapt([]byte(cf), nil) // Caddy's own errors are Caddy's; no panic is ours to promise
		}
	})
}
