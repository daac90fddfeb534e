package caddymodule

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/kavachgate/kavach/gateway"
	"github.com/kavachgate/kavach/issuer"
	"github.com/kavachgate/kavach/token"
)

func init() {
	httpcaddyfile.RegisterGlobalOption("kavach", parseGlobal)
	httpcaddyfile.RegisterDirective("kavach", parseKavach)
	httpcaddyfile.RegisterDirectiveOrder("kavach", httpcaddyfile.Before, "invoke")
	httpcaddyfile.RegisterDirective("kavach_metadata", parseKavachMetadata)
	httpcaddyfile.RegisterDirectiveOrder("kavach_metadata", httpcaddyfile.Before, "invoke")
	httpcaddyfile.RegisterHandlerDirective("kavach_issuer", parseIssuer)
	httpcaddyfile.RegisterDirectiveOrder("kavach_issuer", httpcaddyfile.Before, "invoke")
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
	if err := noArgs(d); err != nil {
		return nil, err
	}
	for d.NextBlock(0) {
		if err := parseGlobalLine(d, app); err != nil {
			return nil, err
		}
	}
	return httpcaddyfile.App{Name: "kavach", Value: caddyconfig.JSON(app, nil)}, nil
}

// parseGlobalLine reads one line (with its block) of the global option.
func parseGlobalLine(d *caddyfile.Dispenser, app *App) error {
	switch d.Val() {
	case "issuer":
		var iss string
		if err := oneArg(d, &iss); err != nil {
			return err
		}
		app.Issuers = append(app.Issuers, iss)
	case "redis":
		if err := oneArg(d, &app.Redis); err != nil {
			return err
		}
		if err := checkRedisURL(app.Redis); err != nil {
			return d.Errf("redis: %v", err)
		}
	case "trusted_keys":
		var tk TrustedKeys
		if !d.Args(&tk.Issuer, &tk.File) || d.NextArg() {
			return d.ArgErr()
		}
		app.TrustedKeys = append(app.TrustedKeys, tk)
	case "external_issuer":
		var ext ExternalIssuer
		if err := oneArg(d, &ext.Issuer); err != nil {
			return err
		}
		for nesting := d.Nesting(); d.NextBlock(nesting); {
			switch d.Val() {
			case "jwks":
				if err := oneArg(d, &ext.JWKS); err != nil {
					return err
				}
			case "algs":
				ext.Algorithms = append(ext.Algorithms, d.RemainingArgs()...)
			case "typ":
				ext.Types = append(ext.Types, d.RemainingArgs()...)
			default:
				return d.Errf("unknown external_issuer option %q", d.Val())
			}
		}
		if ext.JWKS == "" {
			return d.Errf("external_issuer %s: jwks <url> is required", ext.Issuer)
		}
		app.ExternalIssuers = append(app.ExternalIssuers, ext)
	case "max_token_lifetime":
		return positiveDuration(d, &app.MaxTokenLifetime)
	case "key_refresh":
		return positiveDuration(d, &app.KeyRefresh)
	case "max_staleness":
		return positiveDuration(d, &app.MaxStaleness)
	case "cache_size":
		return positiveInt(d, &app.CacheSize, 0)
	case "admin":
		if err := oneArg(d, &app.Admin); err != nil {
			return err
		}
		if err := loopbackAddr(app.Admin); err != nil {
			return d.Errf("admin %s: %v", app.Admin, err)
		}
	case "admin_token":
		return oneArg(d, &app.AdminToken)
	case "audit":
		if app.Audit != nil {
			return d.Err("audit is configured twice")
		}
		c, err := parseAudit(d)
		app.Audit = c
		return err
	default:
		return d.Errf("unknown kavach option %q", d.Val())
	}
	return nil
}

// auditSinks is what the global audit option takes, for its messages.
const auditSinks = "want file <path>, stdout, postgres <url> or off"

// parseAudit reads `audit <sink> [<path|url>] [{ node <name>; key <file>.key }]`.
func parseAudit(d *caddyfile.Dispenser) (*AuditConfig, error) {
	args := d.RemainingArgs()
	if len(args) == 0 {
		return nil, d.Errf("audit: the sink is missing (%s)", auditSinks)
	}
	c := &AuditConfig{Sink: args[0]}
	// Each sink's own arguments, so that a typo in the sink's name is
	// named as such rather than "wrong argument count".
	switch extra := args[1:]; c.Sink {
	case auditSinkFile, auditSinkPostgres:
		what := map[string]string{auditSinkFile: "path", auditSinkPostgres: "URL"}[c.Sink]
		switch {
		case len(extra) == 0:
			return nil, d.Errf("audit %s <%s>: the %s is missing", c.Sink, strings.ToLower(what), what)
		case len(extra) > 1:
			return nil, d.Errf("audit %s takes one %s, found %d: %q", c.Sink, what, len(extra), extra)
		case c.Sink == auditSinkFile:
			c.Path = extra[0]
		default:
			c.URL = extra[0]
		}
	case auditSinkStdout, auditSinkOff:
		if len(extra) > 0 {
			return nil, d.Errf("audit %s takes no argument, found %q", c.Sink, extra[0])
		}
	case "required":
		return nil, d.Errf("`audit required` is a route option (inside kavach <matcher> { … }); the global audit option names a sink (%s)", auditSinks)
	default:
		return nil, d.Errf("unknown audit sink %q (%s)", c.Sink, auditSinks)
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		if c.Sink != auditSinkPostgres && c.Sink != auditSinkFile {
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
		case opt == "node" && c.Sink == auditSinkPostgres:
			c.Node = v
		case opt == "key":
			c.Key = v
		case c.Sink == auditSinkFile:
			return nil, d.Errf("unknown audit file option %q (want key)", opt)
		default:
			return nil, d.Errf("unknown audit postgres option %q (want node or key)", opt)
		}
	}
	if err := c.validate(); err != nil {
		return nil, d.Errf("%v", err)
	}
	return c, nil
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
	var resourceTok caddyfile.Token
	h.Next() // directive name
	if err := handler.UnmarshalDirective(h.Dispenser, func() { resourceTok = h.Token() }); err != nil {
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
	route := caddyhttp.Route{
		MatcherSetsRaw: []caddy.ModuleMap{{"path": caddyconfig.JSON(caddyhttp.MatchPath{gateway.MetadataPath(meta.Resource)}, nil)}},
		HandlersRaw:    []json.RawMessage{caddyconfig.JSONModuleObject(meta, "handler", "kavach_metadata", nil)},
		Terminal:       true,
	}
	return []httpcaddyfile.ConfigValue{{Class: "route", Value: caddyhttp.Subroute{Routes: caddyhttp.RouteList{route}}}}, nil
}

// UnmarshalCaddyfile reads the block of the kavach directive (the matcher,
// if any, has been taken by the directive's parser); the grammar is
// gateway.RouteConfig.UnmarshalDirective's.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	return h.RouteConfig.UnmarshalDirective(d, nil)
}

// parseIssuer reads
//
//	kavach_issuer {
//		issuer <url>
//		store sqlite <file> | store postgres <url>
//		access_token_ttl 5m
//		refresh_token_ttl 168h
//		max_depth 5
//		registration off
//		dev_loopback_client_metadata
//	}
//
// and refuses, naming the line, an access token lifetime over the global
// max_token_lifetime (Validate refuses it in JSON configs).
func parseIssuer(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	ih := new(IssuerHandler)
	ttlTok, err := unmarshalIssuer(h.Dispenser, ih)
	if err != nil {
		return nil, err
	}
	maxLifetime := token.DefaultMaxLifetime
	if opt, ok := h.Option("kavach").(httpcaddyfile.App); ok {
		var app App
		if json.Unmarshal(opt.Value, &app) == nil && app.MaxTokenLifetime > 0 {
			maxLifetime = time.Duration(app.MaxTokenLifetime)
		}
	}
	if err := checkAccessTTL(time.Duration(ih.AccessTokenTTL), maxLifetime); err != nil {
		return nil, errAt(ttlTok, err.Error())
	}
	return ih, nil
}

// UnmarshalCaddyfile implements caddyfile.Unmarshaler.
func (h *IssuerHandler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	_, err := unmarshalIssuer(d, h)
	return err
}

// unmarshalIssuer is UnmarshalCaddyfile, also returning the token of the
// access_token_ttl line (the directive's when there is none).
func unmarshalIssuer(d *caddyfile.Dispenser, h *IssuerHandler) (ttlTok caddyfile.Token, err error) {
	d.Next()
	ttlTok = d.Token()
	if err := noArgs(d); err != nil {
		return ttlTok, err
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "issuer":
			if err := oneArg(d, &h.Issuer); err != nil {
				return ttlTok, err
			}
			if _, err := issuer.ValidateIssuerURL(h.Issuer); err != nil {
				return ttlTok, d.Errf("%v", err)
			}
		case "store":
			if !d.Args(&h.Store, &h.DSN) || d.NextArg() {
				return ttlTok, d.ArgErr()
			}
			if h.Store != "sqlite" && h.Store != "postgres" {
				return ttlTok, d.Errf("store must be sqlite or postgres, not %q", h.Store)
			}
		case "access_token_ttl":
			ttlTok = d.Token()
			err = positiveDuration(d, &h.AccessTokenTTL)
		case "refresh_token_ttl":
			err = positiveDuration(d, &h.RefreshTokenTTL)
		case "max_depth":
			err = positiveInt(d, &h.MaxDepth, token.MaxChainLen)
		case "registration":
			var v string
			if err := oneArg(d, &v); err != nil {
				return ttlTok, err
			}
			if v != "on" && v != "off" {
				return ttlTok, d.Errf("registration: want on or off")
			}
			h.DisableRegistration = v == "off"
		case "dev_loopback_client_metadata":
			err = noArgs(d)
			h.DevLoopbackClientMetadata = true
		default:
			return ttlTok, d.Errf("unknown kavach_issuer option %q", d.Val())
		}
		if err != nil {
			return ttlTok, err
		}
	}
	if h.Issuer == "" {
		return ttlTok, d.Err("kavach_issuer: issuer <url> is required (this site's exact public URL)")
	}
	return ttlTok, nil
}

// UnmarshalCaddyfile reads
//
//	kavach_metadata <resource> {
//		authorization_servers <url...>
//		scopes_supported <scope...>
//	}
func (m *Metadata) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if !d.NextArg() {
		return d.ArgErr()
	}
	m.Resource = d.Val()
	if err := gateway.ValidateResource(m.Resource); err != nil {
		return d.Errf("%v", err)
	}
	if err := noArgs(d); err != nil {
		return err
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "authorization_servers":
			m.AuthorizationServers = append(m.AuthorizationServers, d.RemainingArgs()...)
		case "scopes_supported":
			m.ScopesSupported = append(m.ScopesSupported, d.RemainingArgs()...)
		default:
			return d.Errf("unknown kavach_metadata option %q", d.Val())
		}
	}
	return nil
}

// UnmarshalCaddyfile reads `kavach_dot_segments` (no arguments).
func (m *MatchDotSegments) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	return noArgs(d)
}

// noArgs refuses an argument after the current token.
func noArgs(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

// oneArg reads the one argument of the current line into v.
func oneArg(d *caddyfile.Dispenser, v *string) error {
	if !d.Args(v) || d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

// positiveDuration reads `<option> <duration>` into v.
func positiveDuration(d *caddyfile.Dispenser, v *caddy.Duration) error {
	name := d.Val()
	var s string
	if err := oneArg(d, &s); err != nil {
		return err
	}
	dur, err := caddy.ParseDuration(s)
	if err != nil || dur <= 0 {
		return d.Errf("%s: %q is not a positive duration", name, s)
	}
	*v = caddy.Duration(dur)
	return nil
}

// positiveInt reads `<option> <n>` into v: n at least 1, and at most max
// unless max is 0.
func positiveInt(d *caddyfile.Dispenser, v *int, max int) error {
	name := d.Val()
	var s string
	if err := oneArg(d, &s); err != nil {
		return err
	}
	n, err := strconv.Atoi(s)
	switch {
	case max > 0 && (err != nil || n <= 0 || n > max):
		return d.Errf("%s: %q is not between 1 and %d", name, s, max)
	case err != nil || n <= 0:
		return d.Errf("%s: %q is not a positive number", name, s)
	}
	*v = n
	return nil
}

// errAt is a Caddyfile error naming tok's file and line (and import
// chain), for a problem found after the dispenser has moved on.
func errAt(tok caddyfile.Token, msg string) error {
	d := caddyfile.NewDispenser([]caddyfile.Token{tok})
	d.Next()
	return d.Err(msg)
}

// warnUnservedResource adds an adapter warning when no address of the site
// block a directive sits in can receive requests for resource
// (gateway.SiteServes): such a resource is most likely a typo. It is a
// warning, not an error: a proxy or load balancer in front may map the
// resource's origin to this site. at is the token the warning names.
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
	httpPort, httpsPort := caddyhttp.DefaultHTTPPort, caddyhttp.DefaultHTTPSPort
	if p, ok := h.Option("http_port").(int); ok {
		httpPort = p
	}
	if p, ok := h.Option("https_port").(int); ok {
		httpsPort = p
	}
	for _, k := range keys {
		if gateway.SiteServes(k, u, httpPort, httpsPort) {
			return
		}
	}
	addWarning(h, caddyconfig.Warning{
		File: at.File, Line: at.Line, Directive: directive,
		Message: fmt.Sprintf("resource %s is not served by this site (%s): clients send its tokens and fetch its metadata at that scheme, host and port, "+
			"so it is right only when a proxy in front maps it to this site", resource, strings.Join(keys, ", ")),
	})
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
