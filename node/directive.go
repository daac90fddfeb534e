package node

import (
	"errors"
	"net/url"
	"strings"
	"time"

	"github.com/kavachgate/kavach/audit"
	"github.com/kavachgate/kavach/internal/directive"
	"github.com/kavachgate/kavach/issuer"
	"github.com/kavachgate/kavach/issuer/idp"
	"github.com/kavachgate/kavach/token"
)

// UnmarshalDirective reads the lines of the global option's block (the
// reader is on the option's name):
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
func (c *Config) UnmarshalDirective(d directive.Reader) error {
	if err := directive.NoArgs(d); err != nil {
		return err
	}
	for d.NextBlock(0) {
		if err := parseGlobalLine(d, c); err != nil {
			return err
		}
	}
	return nil
}

// parseGlobalLine reads one line (with its block) of the global option.
func parseGlobalLine(d directive.Reader, app *Config) error {
	switch d.Val() {
	case "issuer":
		var iss string
		if err := directive.OneArg(d, &iss); err != nil {
			return err
		}
		app.Issuers = append(app.Issuers, iss)
	case "redis":
		if err := directive.OneArg(d, &app.Redis); err != nil {
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
		if err := directive.OneArg(d, &ext.Issuer); err != nil {
			return err
		}
		for nesting := d.Nesting(); d.NextBlock(nesting); {
			switch d.Val() {
			case "jwks":
				if err := directive.OneArg(d, &ext.JWKS); err != nil {
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
		return directive.PositiveInt(d, &app.CacheSize, 0)
	case "admin":
		if err := directive.OneArg(d, &app.Admin); err != nil {
			return err
		}
		if err := CheckLoopback(app.Admin); err != nil {
			return d.Errf("admin %s: %v", app.Admin, err)
		}
	case "admin_token":
		return directive.OneArg(d, &app.AdminToken)
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
func parseAudit(d directive.Reader) (*audit.Config, error) {
	args := d.RemainingArgs()
	if len(args) == 0 {
		return nil, d.Errf("audit: the sink is missing (%s)", auditSinks)
	}
	c := &audit.Config{Sink: args[0]}
	// Each sink's own arguments, so that a typo in the sink's name is
	// named as such rather than "wrong argument count".
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

// UnmarshalDirective reads the kavach_issuer directive's block (the reader
// is on the directive's name):
//
//	kavach_issuer {
//		issuer <url>
//		store sqlite <file> | store postgres <url>
//		access_token_ttl 5m
//		refresh_token_ttl 168h
//		max_depth 5
//		registration off
//		dev_loopback_client_metadata
//		login oidc <name> { … }              # sign-in through an OpenID provider (parseLogin)
//		entitle group|role <name> <resource> <scope…>
//		entitle claim <claim> <value> <resource> <scope…>
//		local_users off                       # IdP sign-in only
//		trust_idjag <idp issuer> { jwks <url> }  # ID-JAGs with the jwt-bearer grant
//		session_ttl 8h
//		login_key {env.KAVACH_LOGIN_KEY}      # shared by every issuer node
//	}
//
// With maxLifetime (the global max_token_lifetime) set, it refuses an
// access token lifetime over it, naming the access_token_ttl line, or the
// directive's without one (Validate refuses it in JSON configs).
func (h *IssuerConfig) UnmarshalDirective(d directive.Reader, maxLifetime time.Duration) error {
	var ttlErr error // the access token lifetime's, at its line
	if maxLifetime > 0 {
		if err := CheckAccessTTL(0, maxLifetime); err != nil {
			ttlErr = d.Err(err.Error())
		}
	}
	if err := directive.NoArgs(d); err != nil {
		return err
	}
	var err error
	for d.NextBlock(0) {
		switch d.Val() {
		case "issuer":
			if err := directive.OneArg(d, &h.Issuer); err != nil {
				return err
			}
			if _, err := issuer.ValidateIssuerURL(h.Issuer); err != nil {
				return d.Errf("%v", err)
			}
		case "store":
			if !d.Args(&h.Store, &h.DSN) || d.NextArg() {
				return d.ArgErr()
			}
			if h.Store != "sqlite" && h.Store != "postgres" {
				return d.Errf("store must be sqlite or postgres, not %q", h.Store)
			}
		case "access_token_ttl":
			if err = positiveDuration(d, &h.AccessTokenTTL); err == nil && maxLifetime > 0 {
				ttlErr = nil
				if e := CheckAccessTTL(time.Duration(h.AccessTokenTTL), maxLifetime); e != nil {
					ttlErr = d.Err(e.Error())
				}
			}
		case "refresh_token_ttl":
			err = positiveDuration(d, &h.RefreshTokenTTL)
		case "max_depth":
			err = directive.PositiveInt(d, &h.MaxDepth, token.MaxChainLen)
		case "registration":
			var on bool
			on, err = onOff(d)
			h.DisableRegistration = !on
		case "dev_loopback_client_metadata":
			err = directive.NoArgs(d)
			h.DevLoopbackClientMetadata = true
		case "login":
			err = h.parseLogin(d)
		case "entitle":
			var r idp.Rule
			if r, err = idp.ParseRule(d.RemainingArgs()); err != nil {
				return d.Errf("%v", err)
			}
			h.Entitle = append(h.Entitle, r)
		case "local_users":
			var on bool
			if on, err = onOff(d); err == nil {
				h.LocalUsers = &on
			}
		case "trust_idjag":
			err = h.parseTrustIDJAG(d)
		case "session_ttl":
			err = positiveDuration(d, &h.SessionTTL)
		case "login_key":
			err = directive.OneArg(d, &h.LoginKey)
		case "console":
			err = h.parseConsole(d)
		default:
			return d.Errf("unknown kavach_issuer option %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	if h.Issuer == "" {
		return d.Err("kavach_issuer: issuer <url> is required (this site's exact public URL)")
	}
	return ttlErr
}

// positiveDuration reads `<option> <duration>` into v.
func positiveDuration(d directive.Reader, v *Duration) error {
	name := d.Val()
	var s string
	if err := directive.OneArg(d, &s); err != nil {
		return err
	}
	dur, err := ParseDuration(s)
	if err != nil || dur <= 0 {
		return d.Errf("%s: %q is not a positive duration", name, s)
	}
	*v = Duration(dur)
	return nil
}

// onOff reads `<option> on|off`.
func onOff(d directive.Reader) (bool, error) {
	name := d.Val()
	var v string
	if err := directive.OneArg(d, &v); err != nil {
		return false, err
	}
	if v != "on" && v != "off" {
		return false, d.Errf("%s: want on or off", name)
	}
	return v == "on", nil
}

// parseLogin reads
//
//	login oidc <name> {
//		issuer <url>                  # the provider's issuer identifier (discovery)
//		client_id <id>
//		client_secret {env.…}         # confidential client at the provider
//		scopes openid email groups    # default: openid email profile
//		display_name "Corp SSO"       # the login button; default: the name
//		groups_claim groups           # default: groups (dots reach into objects)
//		roles_claim roles             # default: roles
//		jit_users on                  # create unknown people at first sign-in; default: off
//	}
//
// The redirect URI to register at the provider is <issuer>/oauth/idp/callback.
func (h *IssuerConfig) parseLogin(d directive.Reader) error {
	var kind string
	var lp issuer.LoginProvider
	if !d.Args(&kind, &lp.Name) || d.NextArg() {
		return d.Err("login oidc <name> { issuer <url>; client_id <id>; client_secret <secret> … }")
	}
	if kind != "oidc" {
		return d.Errf("login %s: the only kind is oidc (login oidc <name> { … })", kind)
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch opt := d.Val(); opt {
		case "issuer":
			err = directive.OneArg(d, &lp.Issuer)
		case "client_id":
			err = directive.OneArg(d, &lp.ClientID)
		case "client_secret":
			err = directive.OneArg(d, &lp.ClientSecret)
		case "display_name":
			err = directive.OneArg(d, &lp.DisplayName)
		case "groups_claim":
			err = directive.OneArg(d, &lp.GroupsClaim)
		case "roles_claim":
			err = directive.OneArg(d, &lp.RolesClaim)
		case "scopes":
			if lp.Scopes = d.RemainingArgs(); len(lp.Scopes) == 0 {
				err = d.ArgErr()
			}
		case "jit_users":
			lp.JITUsers, err = onOff(d)
		default:
			return d.Errf("unknown login oidc option %q (want issuer, client_id, client_secret, scopes, display_name, groups_claim, roles_claim or jit_users)", opt)
		}
		if err != nil {
			return err
		}
	}
	if err := lp.Validate(); err != nil {
		return d.Errf("login oidc %s: %v", lp.Name, err)
	}
	h.Login = append(h.Login, lp)
	return nil
}

// parseConsole reads
//
//	console off
//	console {
//		operators <user id or name>…     # see and manage everyone's agents, consents, trail
//		operator_group <IdP group>…      # people whose IdP sign-in names one of these groups
//	}
//
// Both lines may repeat; their values add up.
func (h *IssuerConfig) parseConsole(d directive.Reader) error {
	args := d.RemainingArgs()
	switch {
	case len(args) == 1 && (args[0] == "off" || args[0] == "on"):
		h.Console.Off = args[0] == "off"
		if d.NextBlock(d.Nesting()) {
			return d.Err("console on|off takes no block")
		}
		return nil
	case len(args) > 0:
		return d.Err("console takes off, or a block: console { operators <user>…; operator_group <group>… }")
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		vals := d.RemainingArgs()
		if len(vals) == 0 {
			return d.Errf("console %s: name at least one", opt)
		}
		switch opt {
		case "operators":
			h.Console.Operators = append(h.Console.Operators, vals...)
		case "operator_group", "operator_groups":
			h.Console.OperatorGroups = append(h.Console.OperatorGroups, vals...)
		default:
			return d.Errf("unknown console option %q (want operators or operator_group)", opt)
		}
	}
	if err := h.Console.Validate(); err != nil {
		return d.Errf("console: %v", err)
	}
	return nil
}

// parseTrustIDJAG reads `trust_idjag <issuer> { jwks <url>; algorithms <alg…> }`.
func (h *IssuerConfig) parseTrustIDJAG(d directive.Reader) error {
	var t idp.TrustedIssuer
	if err := directive.OneArg(d, &t.Issuer); err != nil {
		return err
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch opt := d.Val(); opt {
		case "jwks":
			err = directive.OneArg(d, &t.JWKS)
		case "algorithms":
			if t.Algorithms = d.RemainingArgs(); len(t.Algorithms) == 0 {
				err = d.ArgErr()
			}
		default:
			return d.Errf("unknown trust_idjag option %q (want jwks or algorithms)", opt)
		}
		if err != nil {
			return err
		}
	}
	if err := t.Validate(); err != nil {
		return d.Errf("trust_idjag %s: %v", t.Issuer, err)
	}
	h.TrustIDJAG = append(h.TrustIDJAG, t)
	return nil
}
