package gateway

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/kavachgate/kavach/mcp"
	"github.com/kavachgate/kavach/policy"
	"github.com/kavachgate/kavach/ratelimit"
)

// RouteConfig is a protected route as an operator writes it: the JSON
// config of Caddy's http.handlers.kavach, which embeds it, and what the
// kavach Caddyfile directive fills in. NewRoute compiles it into the
// Route the pipeline decides with. Its doc comments are the handler's
// public docs.
type RouteConfig struct {
	// Resource is this route's resource indicator (RFC 8707): the audience
	// a token must carry. Fixed here, never taken from the request's Host.
	Resource string `json:"resource"`

	// Scopes are required of every request on the route.
	Scopes []string `json:"scopes,omitempty"`

	// Rules require scopes per method and path. With any rule present, a
	// request that matches none is denied (403).
	Rules []Rule `json:"rules,omitempty"`

	// MCP makes this an MCP route (DESIGN.md §4.1): every POST is decoded
	// strictly and checked against per-tool, per-resource and per-prompt
	// rules, tools/list answers are filtered by the same rules, Origin is
	// checked and sessions are bound to the chain that opened them.
	MCP *MCPConfig `json:"mcp,omitempty"`

	// Metadata serves the resource's RFC 9728 metadata (authorization
	// servers: the Kavach issuers the app trusts) at its well-known path,
	// /.well-known/oauth-protected-resource plus the resource's path.
	Metadata bool `json:"metadata,omitempty"`

	// AuditRequired makes every allowed request of the route wait until
	// its decision record is durable (fsynced) before it is forwarded, as
	// the token constraint `audit: required` does for one token (DESIGN.md
	// §4 step 8). Caddyfile: `audit required`. A config with the trail
	// off refuses it.
	AuditRequired bool `json:"audit_required,omitempty"`

	// AllowPathParams lets requests whose path has `;` parameters in a
	// segment (matrix parameters: /cars;color=red/list) through on this
	// route; by default the gateway refuses them with 400 (DESIGN.md §11).
	// The risk: Tomcat, Jetty and Spring strip `;params` from a segment
	// before routing and resolve `..;` as `..`, so on such an upstream
	// /api/public/..;/admin reaches /api/admin while the route's rules and
	// the token's `paths` constraint judged a path under /api/public/.
	// Set it only for an API that really uses matrix parameters, whose
	// upstream does not read paths that way. Caddyfile:
	// `allow_path_params`. Default: false.
	AllowPathParams bool `json:"allow_path_params,omitempty"`

	// RateLimits are token buckets per principal (see package ratelimit):
	// each limit is `rate <n>/<s|m|h> per <agent|root|user> [burst <b>]`,
	// n requests per window refilled, at most b (default n) at once.
	// Every limit applies; a request over any of them is 429 with
	// Retry-After and the RateLimit-Policy / RateLimit headers, and is
	// not forwarded. Only requests that would otherwise be allowed are
	// counted (denials spend no budget). Buckets live in the process, or
	// in Redis when the kavach app has one (shared by the cluster).
	// Default: none.
	RateLimits []RateLimitConfig `json:"rate_limits,omitempty"`

	// RateLimitFail is the answer when the Redis holding the buckets does
	// not answer in time: "closed" (503 with Retry-After, nothing
	// forwarded) or "open" (forwarded uncounted, but only while Redis
	// answered within the revocation max_staleness; past that, closed).
	// Caddyfile: `rate_limit_fail open|closed`. Default: closed.
	RateLimitFail string `json:"rate_limit_fail,omitempty"`

	// ReportOnly decides and records every request as usual but forwards
	// those denied only by authorization policy: scopes, route rules,
	// MCP tool/resource/prompt rules, the token's cidrs, hosts, methods
	// and paths, and rate limits. Their decision records say
	// `"decision":"deny","enforced":false`. Everything that proves who is
	// asking or keeps the request well-formed stays enforced: a missing,
	// invalid, expired, revoked or wrong-audience token is still 401, a
	// stale revocation set or unreachable trail 503, a bad path 400, a
	// body over a limit 413, a foreign Origin and a session of another
	// chain 403. Needs the audit trail on. Caddyfile: `report_only`.
	// Default: false (enforced).
	ReportOnly bool `json:"report_only,omitempty"`
}

// RateLimitConfig is one `rate` line.
type RateLimitConfig struct {
	// Rate is "<n>/<s|m|h>": n requests per second, minute or hour.
	Rate string `json:"rate"`
	// Per is whose requests share a bucket: "agent" (the current actor),
	// "root" (the chain's root agent or client: it and all its children)
	// or "user" (sub: every agent of the user).
	Per string `json:"per"`
	// Burst is the most requests let through at once. Default: n.
	Burst int64 `json:"burst,omitempty"`
	// Tool, on an MCP route, limits only the tools/call requests of this
	// tool (`rate 10/m per agent tool post_comment`). Default: every
	// request of the route.
	Tool string `json:"tool,omitempty"`
}

// MCPConfig is the MCP part of a route.
type MCPConfig struct {
	// Tools: `tool <name|*> <scope…>`; every matching rule applies, and a
	// tool no rule matches is denied.
	Tools []mcp.Rule `json:"tools,omitempty"`
	// Args are rules on the arguments of tools/call, keyed by tool name
	// (a tool with a rule of its exact name), then by argument: the form
	// of the token constraint kvc.cnst.args (policy.Args), e.g.
	// {"read_file":{"path":{"paths":["/repo/*"]}}}. A call must meet these
	// and the token's own; an argument with hosts here is also held to the
	// token's hosts constraint. Caddyfile: `arg` lines in a tool's block.
	// Default: none.
	Args policy.Args `json:"args,omitempty"`
	// Resources: `resource_uri <uri|prefix*|*> <scope…>` (resources/read).
	Resources []mcp.Rule `json:"resources,omitempty"`
	// Prompts: `prompt <name|*> <scope…>` (prompts/get).
	Prompts []mcp.Rule `json:"prompts,omitempty"`
	// AllowedOrigins are Origin values accepted besides the resource's own.
	AllowedOrigins []string `json:"allowed_origins,omitempty"`
	// MaxBody bounds a POST body, in bytes. Default: 1 MiB.
	MaxBody int64 `json:"max_body,omitempty"`
	// AuditArguments, when present, records each call's arguments
	// (tools/call, prompts/get) in its decision record, the members it
	// names redacted; at most audit.MaxArgsBytes (2 KiB) are kept. Every
	// MCP decision record carries the SHA-256 of the arguments as
	// forwarded (args_sha256) whether or not this is set.
	// Default: absent (the digest only).
	AuditArguments *AuditArguments `json:"audit_arguments,omitempty"`
}

// AuditArguments is `audit_arguments [redact <name…>]`.
type AuditArguments struct {
	// Redact names the members whose values are written as "[redacted]",
	// at any depth of the arguments; names compare without regard to
	// case. Default: none.
	Redact []string `json:"redact,omitempty"`
}

// Validate refuses an empty name to redact.
func (a *AuditArguments) Validate() error {
	for _, n := range a.Redact {
		if n == "" {
			return errors.New("an empty name")
		}
	}
	return nil
}

// NewRoute compiles cfg into a Route; sessions binds the MCP sessions of
// an MCP route (the process's or the cluster's store). Errors name the bad
// value.
func NewRoute(cfg *RouteConfig, sessions mcp.SessionStore) (*Route, error) {
	rt := &Route{
		Resource:      cfg.Resource,
		Scopes:        cfg.Scopes,
		Rules:         cfg.Rules,
		AuditRequired: cfg.AuditRequired,
		PathOptions:   PathOptions{AllowParams: cfg.AllowPathParams},
		ReportOnly:    cfg.ReportOnly,
	}
	switch cfg.RateLimitFail {
	case "", "closed":
	case "open":
		rt.RateLimitFailOpen = true
	default:
		return nil, fmt.Errorf("rate_limit_fail %q: want open or closed", cfg.RateLimitFail)
	}
	if len(cfg.RateLimits) > ratelimit.MaxLimitsPerRoute {
		return nil, fmt.Errorf("%d rate limits on one route: at most %d", len(cfg.RateLimits), ratelimit.MaxLimitsPerRoute)
	}
	seen := map[string]int{}
	for _, c := range cfg.RateLimits {
		l, err := c.Compile(cfg.Resource)
		if err != nil {
			return nil, err
		}
		if l.Tool != "" && cfg.MCP == nil {
			return nil, fmt.Errorf("rate %s: a limit on a tool needs an MCP route", l)
		}
		if seen[l.String()] > 0 {
			return nil, fmt.Errorf("rate %s is given twice", l)
		}
		seen[l.String()]++
		if n := seen[l.Name]; n > 0 {
			l.Name += "-" + strconv.Itoa(n+1)
		}
		seen[l.Per.String()]++
		rt.Limits = append(rt.Limits, l)
	}
	if c := cfg.MCP; c != nil {
		rt.MCP = &MCP{
			Rules:    mcp.Rules{Tools: c.Tools, Resources: c.Resources, Prompts: c.Prompts},
			Args:     c.Args,
			MaxBody:  c.MaxBody,
			Origins:  c.AllowedOrigins,
			Sessions: sessions,
		}
		if a := c.AuditArguments; a != nil {
			if err := a.Validate(); err != nil {
				return nil, fmt.Errorf("audit_arguments redact: %w", err)
			}
			rt.MCP.RecordArguments, rt.MCP.Redact = true, a.Redact
		}
	}
	if err := rt.Compile(); err != nil {
		return nil, err
	}
	return rt, nil
}

// Compile checks the line and makes its limit on the route of resource.
func (c *RateLimitConfig) Compile(resource string) (*ratelimit.Limit, error) {
	per, err := ratelimit.ParsePer(c.Per)
	if err != nil {
		return nil, fmt.Errorf("rate %s: %v", c.Rate, err)
	}
	if c.Burst < 0 {
		return nil, fmt.Errorf("rate %s: burst %d is negative", c.Rate, c.Burst)
	}
	return ratelimit.NewToolLimit(c.Rate, per, c.Burst, c.Tool, resource)
}

// SiteServes reports whether a site with the address addr (a Caddy site
// address: [scheme://][host][:port][/path]) receives requests for the
// resource URL u: the same scheme, port and host. An address without a
// host takes any host, and a "*" label matches one label; an address
// without a scheme is plain HTTP on httpPort and HTTPS otherwise when it
// names a host or httpsPort (a bare other port may be either), as Caddy
// reads it. An address resolved only at run time (a placeholder) or that
// cannot be parsed is given the benefit of the doubt.
//
// Tokens carry the resource as their audience and clients fetch its
// metadata at its URL, so a resource no address of its site serves is
// most likely a typo (or a proxy in front maps it to the site).
func SiteServes(addr string, u *url.URL, httpPort, httpsPort int) bool {
	if strings.Contains(addr, "{") {
		return true
	}
	scheme, host, port, ok := splitSiteAddress(addr)
	if !ok {
		return true
	}
	httpP, httpsP := strconv.Itoa(httpPort), strconv.Itoa(httpsPort)
	if scheme == "" {
		switch {
		case port == httpP:
			scheme = "http"
		case port == httpsP || host != "":
			scheme = "https"
		}
	}
	if scheme != "" && scheme != u.Scheme {
		return false
	}
	if port == "" {
		port = httpsP
		if u.Scheme == "http" {
			port = httpP
		}
	}
	want := u.Port()
	if want == "" {
		want = "443"
		if u.Scheme == "http" {
			want = "80"
		}
	}
	return port == want && hostMatches(host, u.Hostname())
}

// splitSiteAddress splits a site address into scheme, host and port the
// way Caddy's Caddyfile adapter does; ok is false for a port that is not
// a number from 0 to 65535.
func splitSiteAddress(addr string) (scheme, host, port string, ok bool) {
	rest := strings.TrimSpace(addr)
	if s, r, found := strings.Cut(rest, "://"); found {
		scheme, rest = s, r
	}
	hostPort, _, _ := strings.Cut(rest, "/")
	host, port, err := net.SplitHostPort(hostPort)
	if err != nil {
		if host, port, err = net.SplitHostPort(hostPort + ":"); err != nil {
			host, port = hostPort, ""
		}
	}
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			return "", "", "", false
		}
	}
	return scheme, host, port, true
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
