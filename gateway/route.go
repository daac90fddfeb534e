package gateway

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/kavachgate/kavach/mcp"
	"github.com/kavachgate/kavach/policy"
	"github.com/kavachgate/kavach/ratelimit"
)

// PRMPrefix is the RFC 9728 §3 well-known prefix for protected resource
// metadata.
const PRMPrefix = "/.well-known/oauth-protected-resource"

// Rule requires Scopes of requests matching Method and Path (DESIGN.md §3:
// `scope <METHOD> <PATH> <scope…>`).
type Rule struct {
	// Method is an upper-case HTTP method, compared exactly, or "*" for
	// any.
	Method string `json:"method"`
	// Path is exact, or ends in "*" for any suffix (Caddy's path matcher
	// meaning); "*" alone matches every path.
	Path string `json:"path"`
	// Scopes are all required.
	Scopes []string `json:"scopes"`
}

func (r *Rule) matches(method, path string) bool {
	return (r.Method == "*" || r.Method == method) && (r.Path == "*" || policy.PathMatch(r.Path, path))
}

// Route is one protected route, fixed at config load.
type Route struct {
	// Resource is this route's RFC 8707 resource indicator: the audience a
	// token must name. Never derived from the request.
	Resource string
	// Scopes are required of every request.
	Scopes []string
	// Rules add scopes per method and path. When there are rules, a request
	// matching none is denied: nothing is allowed by omission.
	Rules []Rule
	// MCP, when set, makes this an MCP route (DESIGN.md §4.1).
	MCP *MCP
	// PathOptions relax the path spelling rules (PathProblem) for this
	// route: AllowParams for APIs that use `;` matrix parameters.
	PathOptions PathOptions
	// AuditRequired makes every allowed request wait until its decision
	// record is durable before it is forwarded, as the token constraint
	// `audit: required` does for one token (DESIGN.md §4 step 8).
	AuditRequired bool
	// Limits are the route's rate limits, all applied (RouteConfig.RateLimits).
	Limits []*ratelimit.Limit
	// RateLimitFailOpen forwards, uncounted, a request whose buckets the
	// store could not reach, while the store is fresh (RouteConfig.RateLimitFail).
	RateLimitFailOpen bool
	// ReportOnly forwards requests denied by authorization policy only,
	// recording the denial as not enforced (RouteConfig.ReportOnly).
	ReportOnly bool

	host        string   // Resource's host, for the hosts constraint
	metadataURL string   // RFC 9728 metadata URL, for challenges
	allScopes   []string // every scope the route or its rules name
	challenge   string   // `Bearer scope="…", resource_metadata="…"`
}

// Compile validates the route and derives what requests need from it.
// Errors name the bad value.
func (rt *Route) Compile() error {
	u, err := parseResource(rt.Resource)
	if err != nil {
		return err
	}
	rt.host = strings.ToLower(u.Hostname())
	rt.metadataURL = u.Scheme + "://" + u.Host + MetadataPath(rt.Resource)
	if err := ValidateScopes(rt.Scopes); err != nil {
		return err
	}
	for i := range rt.Rules {
		if err := rt.Rules[i].Validate(); err != nil {
			return err
		}
	}
	if rt.MCP != nil {
		if err := rt.MCP.compile(rt.Resource); err != nil {
			return err
		}
	}
	rt.allScopes = rt.collectScopes()
	rt.challenge = "Bearer "
	if len(rt.allScopes) > 0 {
		rt.challenge += `scope="` + strings.Join(rt.allScopes, " ") + `", `
	}
	rt.challenge += `resource_metadata="` + rt.metadataURL + `"`
	return nil
}

// AllScopes lists, once each, every scope the route, its rules and its
// MCP rules name: the RFC 9728 scopes_supported, and the scope parameter
// of the 401 challenge (MCP 2025-11-25: a client asks for the challenge's
// scope first, else for scopes_supported; both are the same list, so no
// client asks for more than the route can use). Valid after Compile.
func (rt *Route) AllScopes() []string { return rt.allScopes }

func (rt *Route) collectScopes() []string {
	var out []string
	add := func(list []string) {
		for _, sc := range list {
			if !slices.Contains(out, sc) {
				out = append(out, sc)
			}
		}
	}
	add(rt.Scopes)
	for _, r := range rt.Rules {
		add(r.Scopes)
	}
	if m := rt.MCP; m != nil {
		for _, list := range [][]mcp.Rule{m.Rules.Tools, m.Rules.Resources, m.Rules.Prompts} {
			for _, r := range list {
				add(r.Scopes)
			}
		}
	}
	return out
}

// ValidateResource checks a resource indicator: RFC 8707 §2 asks for an
// absolute URI without a fragment; Kavach also refuses a query and
// userinfo, and requires http(s).
func ValidateResource(resource string) error {
	_, err := parseResource(resource)
	return err
}

func parseResource(resource string) (*url.URL, error) {
	u, err := url.Parse(resource)
	if err != nil || resource == "" {
		return nil, fmt.Errorf("resource %q is not a URL", resource)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Fragment != "" || u.User != nil || u.RawQuery != "" || strings.Contains(resource, `"`) {
		return nil, fmt.Errorf("resource %q must be an absolute http(s) URL without query, fragment or userinfo", resource)
	}
	return u, nil
}

// ValidateScopes checks scopes a route requires: concrete, no wildcard.
func ValidateScopes(scopes []string) error {
	for _, s := range scopes {
		if err := policy.ValidRequiredScope(s); err != nil {
			return err
		}
	}
	return nil
}

// Validate checks a rule's method, path and scopes. Messages say what a
// rule needs, so they read right whichever part is missing.
func (r *Rule) Validate() error {
	switch {
	case r.Method == "":
		return errors.New(`a scope rule needs a method (or "*" for any)`)
	case !IsRuleMethod(r.Method) && validMethod(strings.ToUpper(r.Method)):
		return fmt.Errorf("method %q: HTTP methods are case-sensitive, write %q", r.Method, strings.ToUpper(r.Method))
	case !IsRuleMethod(r.Method):
		return fmt.Errorf("method %q is not a registered HTTP method (upper case, e.g. GET, POST, PUT, DELETE; \"*\" for any)", r.Method)
	case r.Path == "":
		return fmt.Errorf("rule %s needs a path (\"/…\", or \"*\" for any)", r.Method)
	case r.Path != "*" && r.Path[0] != '/':
		return fmt.Errorf("path %q must start with \"/\" (or be \"*\" for any path)", r.Path)
	}
	if r.Path != "*" {
		if err := validPathPattern(r.Path); err != nil {
			return err
		}
	}
	if len(r.Scopes) == 0 {
		return fmt.Errorf("rule %s %s: a rule needs at least one scope", r.Method, r.Path)
	}
	return ValidateScopes(r.Scopes)
}

// MetadataURL is the RFC 9728 metadata URL of the route's resource.
func (rt *Route) MetadataURL() string { return rt.metadataURL }

// MetadataPath is where the RFC 9728 §3.1 metadata of resource is served:
// the well-known prefix inserted before the resource's path.
func MetadataPath(resource string) string {
	u, err := url.Parse(resource)
	if err != nil {
		return PRMPrefix
	}
	p := u.EscapedPath()
	if p == "/" {
		p = ""
	}
	return PRMPrefix + p
}

// IsRuleMethod reports whether m may head a scope rule: a method of the
// IANA HTTP Method Registry, in its registered (upper-case) spelling, or
// "*" for any. A method outside the registry is refused rather than
// compared: a typo (`PTU`) would otherwise make a rule that never
// matches, and requests meant for it would fall to other rules.
func IsRuleMethod(m string) bool { return m == "*" || validMethod(m) }

func validMethod(m string) bool {
	_, ok := httpMethods[m]
	return ok
}

// httpMethods is the IANA HTTP Method Registry
// (https://www.iana.org/assignments/http-methods), less PRI, which is
// HTTP/2's connection preface and never a request a route sees, plus
// QUERY (the safe method with a body, draft-ietf-httpbis-safe-method-w-body).
var httpMethods = map[string]struct{}{
	"ACL": {}, "BASELINE-CONTROL": {}, "BIND": {}, "CHECKIN": {}, "CHECKOUT": {},
	"CONNECT": {}, "COPY": {}, "DELETE": {}, "GET": {}, "HEAD": {}, "LABEL": {},
	"LINK": {}, "LOCK": {}, "MERGE": {}, "MKACTIVITY": {}, "MKCALENDAR": {},
	"MKCOL": {}, "MKREDIRECTREF": {}, "MKWORKSPACE": {}, "MOVE": {}, "OPTIONS": {},
	"ORDERPATCH": {}, "PATCH": {}, "POST": {}, "PROPFIND": {}, "PROPPATCH": {},
	"PUT": {}, "QUERY": {}, "REBIND": {}, "REPORT": {}, "SEARCH": {}, "TRACE": {},
	"UNBIND": {}, "UNCHECKOUT": {}, "UNLINK": {}, "UNLOCK": {}, "UPDATE": {},
	"UPDATEREDIRECTREF": {}, "VERSION-CONTROL": {},
}

// validPathPattern checks a rule's path the way constraints check theirs.
func validPathPattern(p string) error {
	c := policy.Constraints{Paths: policy.StringList{p}}
	if err := c.Validate(); err != nil {
		return fmt.Errorf("path %q: %v", p, err)
	}
	return nil
}
