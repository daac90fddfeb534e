package caddymodule

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/kavachgate/kavach/audit"
	"github.com/kavachgate/kavach/gateway"
	"github.com/kavachgate/kavach/mcp"
	"github.com/kavachgate/kavach/node"
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
//		audit file <path> {
//			key <file>.key                    # default: <path>.key; keep it outside the trail's directory
//		}
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
			var tk node.TrustedKeys
			if !d.Args(&tk.Issuer, &tk.File) || d.NextArg() {
				return nil, d.ArgErr()
			}
			app.TrustedKeys = append(app.TrustedKeys, tk)
		case "external_issuer":
			var ext node.ExternalIssuer
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
				app.KeyRefresh = node.Duration(dur)
			case "max_staleness":
				app.MaxStaleness = node.Duration(dur)
			default:
				app.MaxTokenLifetime = node.Duration(dur)
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
			if err := node.CheckLoopback(app.Admin); err != nil {
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
			c := new(audit.Config)
			args := d.RemainingArgs()
			if len(args) == 0 {
				return nil, d.Errf("audit: the sink is missing (%s)", auditSinks)
			}
			c.Sink = args[0]
			// Each sink's own arguments, so that a typo in the sink's name
			// is named as such rather than "wrong argument count".
			switch extra := args[1:]; c.Sink {
			case audit.SinkFile, audit.SinkPostgres:
				what := map[string]string{audit.SinkFile: "path", audit.SinkPostgres: "URL"}[c.Sink]
				switch {
				case len(extra) == 0:
					return nil, d.Errf("audit %s <%s>: the %s is missing", c.Sink, strings.ToLower(what), what)
				case len(extra) > 1:
					return nil, d.Errf("audit %s takes one %s, found %d: %q", c.Sink, what, len(extra), extra)
				case c.Sink == audit.SinkFile:
					c.Path = extra[0]
				default:
					c.URL = extra[0]
				}
			case audit.SinkStdout, audit.SinkOff:
				if len(extra) > 0 {
					return nil, d.Errf("audit %s takes no argument, found %q", c.Sink, extra[0])
				}
			case "required":
				return nil, d.Errf("`audit required` is a route option (inside kavach <matcher> { … }); the global audit option names a sink (%s)", auditSinks)
			default:
				return nil, d.Errf("unknown audit sink %q (%s)", c.Sink, auditSinks)
			}
			for nesting := d.Nesting(); d.NextBlock(nesting); {
				if c.Sink != audit.SinkPostgres && c.Sink != audit.SinkFile {
					return nil, d.Errf("audit %s takes no options", c.Sink)
				}
				opt := d.Val()
				var v string
				if opt == "node" || opt == "key" {
					if !d.Args(&v) || d.NextArg() {
						return nil, d.Errf("audit %s: %s takes one value (%s)", c.Sink, opt, map[string]string{"node": "node <name>", "key": "key <file>.key"}[opt])
					}
				}
				switch {
				case opt == "node" && c.Sink == audit.SinkPostgres:
					c.Node = v
				case opt == "key":
					c.Key = v
				case c.Sink == audit.SinkFile:
					return nil, d.Errf("unknown audit file option %q (want key)", opt)
				default:
					return nil, d.Errf("unknown audit postgres option %q (want node or key)", opt)
				}
			}
			if err := c.Validate(); err != nil {
				return nil, d.Errf("%v", err)
			}
			app.Audit = c
		default:
			return nil, d.Errf("unknown kavach option %q", d.Val())
		}
	}
	return httpcaddyfile.App{Name: "kavach", Value: caddyconfig.JSON(app, nil)}, nil
}

// auditSinks is what the global audit option takes, for its messages.
const auditSinks = "want file <path>, stdout, postgres <url> or off"

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
	resourceTok, err := unmarshalKavach(h.Dispenser, handler)
	if err != nil {
		return nil, err
	}
	warnUnservedResource(h, resourceTok, "kavach", handler.Resource)
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
	h.Reset()
	h.Next()
	warnUnservedResource(h, h.Token(), "kavach_metadata", meta.Resource)
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
//		resource <url>                        # required: the RFC 8707 audience
//		scope <scope…>                        # required of every request
//		scope <METHOD|*> <path> <scope…>      # required of matching requests
//		audit required                        # decision records durable first
//		allow_path_params                     # let `;` path parameters through (see AllowPathParams)
//
//		mcp                                   # an MCP route (DESIGN.md §4.1); with it:
//		tool <name|*> <scope…>                # tools/call
//		resource_uri <uri|prefix*|*> <scope…> # resources/read, resources/subscribe
//		prompt <name|*> <scope…>              # prompts/get
//		allowed_origins <origin…>             # besides the resource's own
//		audit_arguments [redact <name…>]      # record call arguments, these members redacted
//	}
//
// The lines may come in any order. The MCP lines on a route without `mcp`
// are an error, never a silent switch: a route is an MCP route by the
// `mcp` line alone (in JSON, by the presence of the "mcp" object).
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	_, err := unmarshalKavach(d, h)
	return err
}

// kavachForms are the two forms of the directive's scope line.
const kavachForms = "`scope <scope…>` (every request) or `scope <METHOD|*> <path> <scope…>`"

// unmarshalKavach is UnmarshalCaddyfile, also returning the token of the
// resource line (for the directive's site check).
func unmarshalKavach(d *caddyfile.Dispenser, h *Handler) (resourceTok caddyfile.Token, err error) {
	d.Next() // directive name
	if d.NextArg() {
		return resourceTok, d.ArgErr()
	}
	var (
		isMCP   bool
		mcpLine *caddyfile.Token // the first MCP-only line, for the error when `mcp` is missing
		rules   mcp.Rules
		origins []string
		args    *AuditArguments
	)
	for d.NextBlock(0) {
		opt := d.Val()
		switch opt {
		case "resource":
			args := d.RemainingArgs()
			switch {
			case len(args) == 0:
				return resourceTok, d.Err("resource <url>: the URL is missing (the RFC 8707 resource tokens for this route must name in aud)")
			case len(args) > 1:
				return resourceTok, d.Errf("resource takes one URL, the RFC 8707 audience; an MCP resource rule is `resource_uri %s <scope…>`", args[0])
			case h.Resource != "":
				return resourceTok, d.Errf("resource is given twice (%s, then %s): a route has one audience", h.Resource, args[0])
			}
			h.Resource, resourceTok = args[0], d.Token()
			if err := gateway.ValidateResource(h.Resource); err != nil {
				return resourceTok, d.Errf("%v", err)
			}
		case "tool", "prompt", "resource_uri":
			if mcpLine == nil {
				tok := d.Token()
				mcpLine = &tok
			}
			args := d.RemainingArgs()
			if len(args) < 2 {
				return resourceTok, d.Errf("%s <%s> <scope…>: a rule needs a pattern and at least one scope", opt, map[string]string{"tool": "name|*", "prompt": "name|*", "resource_uri": "uri|prefix*|*"}[opt])
			}
			rule := mcp.Rule{Pattern: args[0], Scopes: args[1:]}
			switch opt {
			case "tool":
				rules.Tools = append(rules.Tools, rule)
			case "prompt":
				rules.Prompts = append(rules.Prompts, rule)
			default:
				rules.Resources = append(rules.Resources, rule)
			}
			// Compiled after each line, so that an error (a duplicate
			// among them) names the line that caused it.
			if err := rules.Compile(); err != nil {
				msg := err.Error()
				if rest, ok := strings.CutPrefix(msg, "resource "); ok {
					msg = "resource_uri " + rest // package mcp names the kind, not the Caddyfile line
				}
				return resourceTok, d.Err(msg)
			}
		case "mcp":
			if d.NextArg() || d.NextBlock(d.Nesting()) {
				return resourceTok, d.Err("mcp takes no arguments and no block: the MCP lines (tool, resource_uri, prompt, allowed_origins, audit_arguments) go beside it")
			}
			if isMCP {
				return resourceTok, d.Err("mcp is given twice")
			}
			isMCP = true
		case "allowed_origins":
			if mcpLine == nil {
				tok := d.Token()
				mcpLine = &tok
			}
			args := d.RemainingArgs()
			if len(args) == 0 {
				return resourceTok, d.Err("allowed_origins <origin…>: name at least one scheme://host[:port]")
			}
			for _, o := range args {
				if u, err := url.Parse(o); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.Count(o, "/") != 2 {
					return resourceTok, d.Errf("allowed origin %q must be http(s)://host[:port], without a path", o)
				}
			}
			origins = append(origins, args...)
		case "audit_arguments":
			if mcpLine == nil {
				tok := d.Token()
				mcpLine = &tok
			}
			if args != nil {
				return resourceTok, d.Err("audit_arguments is given twice: one line names every member to redact")
			}
			args = new(AuditArguments)
			if err := args.parse(d); err != nil {
				return resourceTok, err
			}
		case "allow_path_params":
			if d.NextArg() {
				return resourceTok, d.Err("allow_path_params takes no arguments")
			}
			h.AllowPathParams = true
		case "audit":
			if !d.NextArg() || d.Val() != "required" || d.NextArg() {
				return resourceTok, d.Err("kavach: `audit required` is the route's only audit option")
			}
			h.AuditRequired = true
		case "scope":
			if err := h.parseScope(d); err != nil {
				return resourceTok, err
			}
		default:
			return resourceTok, d.Errf("unknown kavach option %q (want resource, scope, audit, allow_path_params, mcp, tool, resource_uri, prompt, allowed_origins or audit_arguments)", opt)
		}
	}
	if mcpLine != nil && !isMCP {
		return resourceTok, errAt(*mcpLine, fmt.Sprintf("%s is an MCP rule, and this route has no `mcp` line: add `mcp` to the block to make it an MCP route (then every POST is inspected, DESIGN.md §4.1)", mcpLine.Text))
	}
	if isMCP {
		h.MCP = &MCPConfig{Tools: rules.Tools, Resources: rules.Resources, Prompts: rules.Prompts, AllowedOrigins: origins, AuditArguments: args}
	}
	if h.Resource == "" {
		return resourceTok, d.Err("kavach: resource is required (the URL tokens for this route are issued for)")
	}
	return resourceTok, nil
}

// parse reads the rest of `audit_arguments [redact <name…>]`.
func (a *AuditArguments) parse(d *caddyfile.Dispenser) error {
	line := d.Token()
	args := d.RemainingArgs()
	if d.NextBlock(d.Nesting()) {
		return errAt(line, "audit_arguments takes no block: `audit_arguments [redact <name…>]` on one line")
	}
	if len(args) == 0 {
		return nil
	}
	if args[0] != "redact" {
		return d.Errf("audit_arguments records the arguments of MCP calls, with `redact <name…>` naming members never recorded; found %q", args[0])
	}
	if len(args) == 1 {
		return d.Err("audit_arguments redact <name…>: name at least one member to redact")
	}
	a.Redact = args[1:]
	if err := a.validate(); err != nil {
		return d.Errf("audit_arguments redact: %v", err)
	}
	return nil
}

// parseScope reads `scope <scope…>` or `scope <METHOD|*> <path> <scope…>`.
// A rule is recognised by its head (a registered method, "*", or a word
// of letters followed by a path), so that a typo in either part is an
// error about that part rather than a scope that names a method.
func (h *Handler) parseScope(d *caddyfile.Dispenser) error {
	args := d.RemainingArgs()
	if len(args) == 0 {
		return d.Errf("scope needs at least one scope: %s", kavachForms)
	}
	if slices.Contains(args, "") {
		return d.Errf("scope has an empty argument (\"\"): %s", kavachForms)
	}
	head := args[0]
	isPath := func(s string) bool { return s[0] == '/' || s == "*" }
	if gateway.IsRuleMethod(head) || (len(args) >= 2 && isPath(args[1]) && methodWord(head)) {
		switch {
		case len(args) == 1 && head == "*":
			return d.Errf("scope \"*\": a rule needs a path and at least one scope: `scope * <path> <scope…>`")
		case len(args) == 1:
			return d.Errf("%q is an HTTP method, not a scope: a rule is `scope %s <path> <scope…>`", head, head)
		case !isPath(args[1]) && !strings.ContainsAny(args[1], "/*."):
			return d.Errf("scope %s %s: the method has no path: a rule is `scope %s <path> <scope…>` (path exact, or ending in *)", head, args[1], head)
		}
		rule := gateway.Rule{Method: head, Path: args[1], Scopes: args[2:]}
		if err := rule.Validate(); err != nil {
			return d.Errf("%v", err)
		}
		h.Rules = append(h.Rules, Rule{Method: rule.Method, Path: rule.Path, Scopes: rule.Scopes})
		return nil
	}
	for _, a := range args {
		if a[0] == '/' {
			return d.Errf("%q looks like a path: a rule is `scope <METHOD> <path> <scope…>` with an upper-case method", a)
		}
		if a != "*" && gateway.IsRuleMethod(a) {
			return d.Errf("%q is an HTTP method, not a scope: a rule is `scope %s <path> <scope…>`, the method first", a, a)
		}
	}
	if err := gateway.ValidateScopes(args); err != nil {
		return d.Errf("%v", err)
	}
	h.Scopes = append(h.Scopes, args...)
	return nil
}

// methodWord reports whether s is spelled like an HTTP method (letters and
// '-'), whatever its case: followed by a path, it was meant as one.
func methodWord(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || c == '-') {
			return false
		}
	}
	return s != ""
}

// errAt is a Caddyfile error naming tok's file and line (and import
// chain), for a problem found after the dispenser has moved on.
func errAt(tok caddyfile.Token, msg string) error {
	d := caddyfile.NewDispenser([]caddyfile.Token{tok})
	d.Next()
	return d.Err(msg)
}

// warnUnservedResource adds an adapter warning when no address of the site
// block a directive sits in can receive requests for resource (scheme, host
// and port): tokens carry the resource as their audience and clients look
// for its metadata at its URL, so such a resource is most likely a typo.
// It is a warning, not an error: a proxy or load balancer in front may map
// the resource's origin to this site. at is the token the warning names.
func warnUnservedResource(h httpcaddyfile.Helper, at caddyfile.Token, directive, resource string) {
	if h.IsNamedRoute() || resource == "" {
		return // a named route is not in a site block
	}
	u, err := url.Parse(resource)
	if err != nil {
		return
	}
	keys, ok := siteKeys(h)
	if !ok || len(keys) == 0 {
		return
	}
	httpPort, httpsPort := strconv.Itoa(caddyhttp.DefaultHTTPPort), strconv.Itoa(caddyhttp.DefaultHTTPSPort)
	if p, ok := h.Option("http_port").(int); ok {
		httpPort = strconv.Itoa(p)
	}
	if p, ok := h.Option("https_port").(int); ok {
		httpsPort = strconv.Itoa(p)
	}
	for _, k := range keys {
		if siteServes(k, u, httpPort, httpsPort) {
			return
		}
	}
	addWarning(h, caddyconfig.Warning{
		File: at.File, Line: at.Line, Directive: directive,
		Message: fmt.Sprintf("resource %s is not served by this site (%s): clients send its tokens and fetch its metadata at that scheme, host and port, "+
			"so it is right only when a proxy in front maps it to this site", resource, strings.Join(keys, ", ")),
	})
}

// siteServes reports whether a site with address key receives requests
// for u: same scheme, port and host (a key without a host takes any host,
// a "*" label matches one label). A key Caddy resolves only at run time
// (a placeholder) or cannot parse is given the benefit of the doubt.
func siteServes(key string, u *url.URL, httpPort, httpsPort string) bool {
	if strings.Contains(key, "{") {
		return true
	}
	a, err := httpcaddyfile.ParseAddress(key)
	if err != nil {
		return true
	}
	scheme, port := a.Scheme, a.Port
	if scheme == "" {
		// Caddy's reading of an address without a scheme: the HTTP port
		// is plain HTTP, a host name or IP gets automatic HTTPS; a bare
		// port may be either.
		switch {
		case port == httpPort:
			scheme = "http"
		case port == httpsPort || a.Host != "":
			scheme = "https"
		}
	}
	if scheme != "" && scheme != u.Scheme {
		return false
	}
	if port == "" {
		port = httpsPort
		if u.Scheme == "http" {
			port = httpPort
		}
	}
	want := u.Port()
	if want == "" {
		want = strconv.Itoa(caddyhttp.DefaultHTTPSPort)
		if u.Scheme == "http" {
			want = strconv.Itoa(caddyhttp.DefaultHTTPPort)
		}
	}
	return port == want && hostMatches(a.Host, u.Hostname())
}

// hostMatches is Caddy's host matching for a site address: exact, case
// insensitive, a "*" label standing for one label; no host is any host.
func hostMatches(pattern, host string) bool {
	if pattern == "" || pattern == "*" {
		return true
	}
	p, h := strings.Split(strings.ToLower(pattern), "."), strings.Split(strings.ToLower(host), ".")
	if len(p) != len(h) {
		return false
	}
	for i := range p {
		if p[i] != "*" && p[i] != h[i] {
			return false
		}
	}
	return true
}

// siteKeys and addWarning reach two parts of an httpcaddyfile.Helper that
// Caddy keeps unexported: the keys (addresses) of the site block being
// parsed, and the adapter's warnings, which `kavach adapt`, `validate` and
// `run` print with the file and line. Where a Caddy version lays Helper out
// otherwise, the site check is skipped rather than wrong;
// TestResourceSiteWarning pins the layout of the version this module
// builds with.
func siteKeys(h httpcaddyfile.Helper) ([]string, bool) {
	block := reflect.ValueOf(h).FieldByName("parentBlock")
	if !block.IsValid() || block.Type() != reflect.TypeFor[caddyfile.ServerBlock]() {
		return nil, false
	}
	keys := block.FieldByName("Keys")
	out := make([]string, 0, keys.Len())
	for i := range keys.Len() {
		out = append(out, keys.Index(i).FieldByName("Text").String())
	}
	return out, true
}

func addWarning(h httpcaddyfile.Helper, w caddyconfig.Warning) {
	v := reflect.ValueOf(h).FieldByName("warnings")
	if !v.IsValid() || v.Type() != reflect.TypeFor[*[]caddyconfig.Warning]() || v.IsNil() {
		return
	}
	// The field is unexported, so reflect will not hand out the pointer as
	// a value; its address is the adapter's own slice.
	ws := (*[]caddyconfig.Warning)(v.UnsafePointer())
	*ws = append(*ws, w)
}
