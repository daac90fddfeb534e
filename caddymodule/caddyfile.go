package caddymodule

import (
	"encoding/json"
	"errors"
	"net/url"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/kavachgate/kavach/gateway"
	"github.com/kavachgate/kavach/mcp"
)

func init() {
	httpcaddyfile.RegisterGlobalOption("kavach", parseGlobal)
	httpcaddyfile.RegisterDirective("kavach", parseKavach)
	httpcaddyfile.RegisterDirectiveOrder("kavach", httpcaddyfile.Before, "invoke")
	httpcaddyfile.RegisterDirective("kavach_metadata", parseKavachMetadata)
	httpcaddyfile.RegisterDirectiveOrder("kavach_metadata", httpcaddyfile.Before, "invoke")
}

// parseGlobal reads the global option into the kavach app:
//
//	kavach {
//		issuer <url>                          # Kavach issuer: RFC 8414 metadata + JWKS
//		trusted_keys <issuer> <jwks-file>     # Kavach issuer with offline keys
//		external_issuer <issuer> {            # Okta, Entra, Keycloak…
//			jwks <url>
//			algs RS256 ES256
//			typ JWT at+jwt
//		}
//		max_token_lifetime 1h
//		cache_size 65536
//		key_refresh 5m
//		redis {env.KAVACH_REDIS}              # cluster: shared revocation
//		max_staleness 30s
//		admin 127.0.0.1:2021
//		admin_token {env.KAVACH_ADMIN_TOKEN}
//		audit file <path> | stdout | off      # default: a file in Caddy's data dir
//		audit postgres {env.KAVACH_AUDIT_DB} { # central trail for many gateways
//			node <name>                       # default: the hostname
//			key <file>.key                    # default: <data dir>/kavach/audit-postgres.key
//		}
//	}
func parseGlobal(d *caddyfile.Dispenser, _ any) (any, error) {
	app := new(App)
	d.Next() // option name
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "issuer":
			var iss string
			if !d.Args(&iss) || d.NextArg() {
				return nil, d.ArgErr()
			}
			app.Issuers = append(app.Issuers, iss)
		case "redis":
			if !d.Args(&app.Redis) || d.NextArg() {
				return nil, d.ArgErr()
			}
			if err := checkRedisURL(app.Redis); err != nil {
				return nil, d.Errf("redis: %v", err)
			}
		case "trusted_keys":
			var tk TrustedKeys
			if !d.Args(&tk.Issuer, &tk.File) || d.NextArg() {
				return nil, d.ArgErr()
			}
			app.TrustedKeys = append(app.TrustedKeys, tk)
		case "external_issuer":
			var ext ExternalIssuer
			if !d.Args(&ext.Issuer) || d.NextArg() {
				return nil, d.ArgErr()
			}
			for nesting := d.Nesting(); d.NextBlock(nesting); {
				switch d.Val() {
				case "jwks":
					if !d.Args(&ext.JWKS) || d.NextArg() {
						return nil, d.ArgErr()
					}
				case "algs":
					ext.Algorithms = append(ext.Algorithms, d.RemainingArgs()...)
				case "typ":
					ext.Types = append(ext.Types, d.RemainingArgs()...)
				default:
					return nil, d.Errf("unknown external_issuer option %q", d.Val())
				}
			}
			if ext.JWKS == "" {
				return nil, d.Errf("external_issuer %s: jwks <url> is required", ext.Issuer)
			}
			app.ExternalIssuers = append(app.ExternalIssuers, ext)
		case "max_token_lifetime", "key_refresh", "max_staleness":
			name := d.Val()
			var v string
			if !d.Args(&v) || d.NextArg() {
				return nil, d.ArgErr()
			}
			dur, err := caddy.ParseDuration(v)
			if err != nil || dur <= 0 {
				return nil, d.Errf("%s: %q is not a positive duration", name, v)
			}
			switch name {
			case "key_refresh":
				app.KeyRefresh = caddy.Duration(dur)
			case "max_staleness":
				app.MaxStaleness = caddy.Duration(dur)
			default:
				app.MaxTokenLifetime = caddy.Duration(dur)
			}
		case "cache_size":
			var v string
			if !d.Args(&v) || d.NextArg() {
				return nil, d.ArgErr()
			}
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				return nil, d.Errf("cache_size: %q is not a positive number", v)
			}
			app.CacheSize = n
		case "admin":
			if !d.Args(&app.Admin) || d.NextArg() {
				return nil, d.ArgErr()
			}
			if err := loopbackAddr(app.Admin); err != nil {
				return nil, d.Errf("admin %s: %v", app.Admin, err)
			}
		case "admin_token":
			if !d.Args(&app.AdminToken) || d.NextArg() {
				return nil, d.ArgErr()
			}
		case "audit":
			if app.Audit != nil {
				return nil, d.Err("audit is configured twice")
			}
			c := new(AuditConfig)
			if !d.Args(&c.Sink) {
				return nil, d.ArgErr()
			}
			if c.Sink == auditSinkFile && !d.Args(&c.Path) {
				return nil, d.Err("audit file <path>: the path is missing")
			}
			if c.Sink == auditSinkPostgres && !d.Args(&c.URL) {
				return nil, d.Err("audit postgres <url>: the URL is missing")
			}
			if d.NextArg() {
				return nil, d.ArgErr()
			}
			for nesting := d.Nesting(); d.NextBlock(nesting); {
				if c.Sink != auditSinkPostgres {
					return nil, d.Errf("audit %s takes no options", c.Sink)
				}
				opt := d.Val()
				switch opt {
				case "node":
					if !d.Args(&c.Node) || d.NextArg() {
						return nil, d.ArgErr()
					}
				case "key":
					if !d.Args(&c.Key) || d.NextArg() {
						return nil, d.ArgErr()
					}
				default:
					return nil, d.Errf("unknown audit postgres option %q", opt)
				}
			}
			if err := c.validate(); err != nil {
				return nil, d.Errf("%v", err)
			}
			app.Audit = c
		default:
			return nil, d.Errf("unknown kavach option %q", d.Val())
		}
	}
	return httpcaddyfile.App{Name: "kavach", Value: caddyconfig.JSON(app, nil)}, nil
}

// checkRedisURL refuses a literal URL that is not redis:// or rediss://;
// a placeholder is checked when it is resolved.
func checkRedisURL(u string) error {
	if strings.HasPrefix(u, "{") {
		return nil
	}
	if !strings.HasPrefix(u, "redis://") && !strings.HasPrefix(u, "rediss://") {
		return errors.New("want redis://host:port/db or rediss://… (or a placeholder such as {env.KAVACH_REDIS})")
	}
	if _, err := url.Parse(u); err != nil {
		return errors.New("not a URL")
	}
	return nil
}

// parseKavach turns `kavach [<matcher>] { … }` into one matcher-less
// route whose handler guards the site's paths against dot segments, serves
// the RFC 9728 metadata of the resource at its well-known path, and
// enforces on the matcher's requests (the matcher is the handler's own,
// see Handler.MatchRaw).
func parseKavach(h httpcaddyfile.Helper) ([]httpcaddyfile.ConfigValue, error) {
	h.Next() // directive name; ExtractMatcherSet rewinds to it
	matcher, err := h.ExtractMatcherSet()
	if err != nil {
		return nil, err
	}
	handler := new(Handler)
	if err := handler.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	handler.Metadata = true
	if matcher != nil {
		handler.MatchRaw = caddyhttp.RawMatcherSets{matcher}
	}
	route := caddyhttp.Route{HandlersRaw: []json.RawMessage{caddyconfig.JSONModuleObject(handler, "handler", "kavach", nil)}}
	return []httpcaddyfile.ConfigValue{{Class: "route", Value: route}}, nil
}

// parseKavachMetadata serves a resource's metadata at site level, for
// protection configured inside route or handle blocks whose matchers would
// hide the well-known path.
func parseKavachMetadata(h httpcaddyfile.Helper) ([]httpcaddyfile.ConfigValue, error) {
	meta := new(Metadata)
	if err := meta.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	return []httpcaddyfile.ConfigValue{{Class: "route", Value: caddyhttp.Subroute{Routes: caddyhttp.RouteList{metadataRoute(meta, h)}}}}, nil
}

func metadataRoute(meta *Metadata, h httpcaddyfile.Helper) caddyhttp.Route {
	path := caddyhttp.MatchPath{gateway.MetadataPath(meta.Resource)}
	return caddyhttp.Route{
		MatcherSetsRaw: []caddy.ModuleMap{{"path": caddyconfig.JSON(path, nil)}},
		HandlersRaw:    []json.RawMessage{caddyconfig.JSONModuleObject(meta, "handler", "kavach_metadata", nil)},
		Terminal:       true,
	}
}

// UnmarshalCaddyfile reads the block of the kavach directive (the matcher,
// if any, has been taken by the directive's parser):
//
//	kavach [<matcher>] {
//		resource <url>
//		scope <scope...>                  # required of every request
//		scope <METHOD|*> <path> <scope...> # required of matching requests
//	}
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "resource":
			args := d.RemainingArgs()
			if len(args) >= 2 {
				// `resource <uri-pattern> <scope…>`: an MCP resource rule.
				if h.MCP == nil {
					h.MCP = new(MCPConfig)
				}
				h.MCP.Resources = append(h.MCP.Resources, mcp.Rule{Pattern: args[0], Scopes: args[1:]})
				if err := (&mcp.Rules{Tools: h.MCP.Tools, Resources: h.MCP.Resources, Prompts: h.MCP.Prompts}).Compile(); err != nil {
					return d.Errf("%v", err)
				}
				continue
			}
			if len(args) != 1 {
				return d.ArgErr()
			}
			h.Resource = args[0]
			if err := gateway.ValidateResource(h.Resource); err != nil {
				return d.Errf("%v", err)
			}
		case "tool", "prompt":
			kind := d.Val()
			args := d.RemainingArgs()
			if len(args) < 2 {
				return d.Errf("%s <name|*> <scope…>", kind)
			}
			if h.MCP == nil {
				h.MCP = new(MCPConfig)
			}
			rule := mcp.Rule{Pattern: args[0], Scopes: args[1:]}
			if kind == "tool" {
				h.MCP.Tools = append(h.MCP.Tools, rule)
			} else {
				h.MCP.Prompts = append(h.MCP.Prompts, rule)
			}
			if err := (&mcp.Rules{Tools: h.MCP.Tools, Resources: h.MCP.Resources, Prompts: h.MCP.Prompts}).Compile(); err != nil {
				return d.Errf("%v", err)
			}
		case "mcp":
			if d.NextArg() {
				return d.ArgErr()
			}
			if h.MCP == nil {
				h.MCP = new(MCPConfig)
			}
		case "audit":
			if !d.NextArg() || d.Val() != "required" || d.NextArg() {
				return d.Err("kavach: `audit required` is the route's only audit option")
			}
			h.AuditRequired = true
		case "allowed_origins":
			if h.MCP == nil {
				h.MCP = new(MCPConfig)
			}
			h.MCP.AllowedOrigins = append(h.MCP.AllowedOrigins, d.RemainingArgs()...)
		case "scope":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			if len(args) >= 2 && gateway.IsRuleMethod(args[0]) && (args[1] == "*" || args[1][0] == '/') {
				rule := gateway.Rule{Method: args[0], Path: args[1], Scopes: args[2:]}
				if err := rule.Validate(); err != nil {
					return d.Errf("%v", err)
				}
				h.Rules = append(h.Rules, Rule{Method: rule.Method, Path: rule.Path, Scopes: rule.Scopes})
				continue
			}
			for _, a := range args {
				if a[0] == '/' {
					return d.Errf("%q looks like a path: a rule is `scope <METHOD> <path> <scope…>` with an upper-case method", a)
				}
			}
			if err := gateway.ValidateScopes(args); err != nil {
				return d.Errf("%v", err)
			}
			h.Scopes = append(h.Scopes, args...)
		default:
			return d.Errf("unknown kavach option %q", d.Val())
		}
	}
	if h.Resource == "" {
		return d.Err("kavach: resource is required (the URL tokens for this route are issued for)")
	}
	return nil
}
