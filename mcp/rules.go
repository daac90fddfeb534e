package mcp

import (
	"fmt"
	"slices"
	"strings"

	"github.com/kavachgate/kavach/policy"
)

// Rule requires Scopes of the MCP operations whose target matches Pattern.
// In the Caddyfile it is one line of the kavach block:
//
//	tool         read_file         files:read
//	tool         *                 mcp:demo:call
//	resource_uri file:///repo/*    repository:read
//	prompt       review            pullrequest:read
//
// Pattern, by kind:
//
//   - tool and prompt: an exact name, compared byte for byte
//     (case-sensitive), or "*" alone for any name. '*' anywhere else is an
//     error: MCP names are a single segment, so the one-segment wildcard of
//     scopes (DESIGN.md §3) is the whole name, and no glob such as "git_*"
//     exists.
//   - resource: an absolute URI (it starts with an RFC 3986 §3.1 scheme and
//     ':') compared exactly; or such a URI prefix followed by one final '*',
//     matching every URI that starts with the prefix (Caddy's path-matcher
//     meaning, as for token paths); or "*" alone for any URI. The scheme is
//     compared case-insensitively (RFC 3986 §3.1), the rest byte for byte.
//     A prefix is text, so end it with '/' to mean "inside this
//     directory": "file:///repo*" also matches "file:///repository".
//
// A resource URI (or the URI template of a completion) never matches any
// rule, "*" included, when it is spelled so that it could name, to RFC
// 3986 normalization (§6.2.2) or to a common server, the resource another
// spelling names: a rule that matched one spelling and not the other could
// be bypassed. Refused:
//
// Anywhere in the URI:
//   - a raw control character: C0, DEL, or C1 (U+0080–U+009F);
//   - a backslash (Windows and WHATWG URL parsers read it as a slash);
//   - a "." or ".." segment (§5.2.4), even in the query;
//   - a malformed percent-escape, or one with lower-case hex digits
//     (§6.2.2.1: "%c3" and "%C3" are one octet; encoders write upper
//     case);
//   - a percent-encoded slash, backslash, ';' or '%' (a server that
//     decodes twice reads "%252e" as '.'), control character (C0, DEL, or
//     C1 as "%C2%80"–"%C2%9F", even with one octet raw), or unreserved
//     character (§2.3: "%73" is 's').
//
// In the authority ("scheme://authority"):
//   - userinfo ("https://api.example@evil.example/");
//   - an upper-case letter (§6.2.2.1: hosts are case-insensitive);
//   - a host ending in '.' (the DNS root: "api.example." is
//     "api.example");
//   - an empty port, a port with a leading zero, or the default port of
//     http, https, ws or wss (§6.2.3);
//   - the host "localhost" in a file URI (RFC 8089 §2: the same as none).
//
// In the path (up to '?' or '#'):
//   - an empty segment ("/repo//secret": file systems and many servers
//     merge slashes);
//   - a segment ending in '.' or in a space, raw or "%20" (Windows strips
//     both from a name: "secret./key" opens "secret/key"); this covers
//     every segment made only of dots ("...");
//   - a ';' in a segment of a hierarchical path (one starting with '/'):
//     Servlet containers (Tomcat, Jetty) strip ";parameters" from every
//     segment and resolve "..;" as "..", so "/repo/secret;x/key" is
//     "/repo/secret/key" to them; in other paths (data:, urn:) a segment
//     whose part before ';' is only dots, or empty ("..;", ".;x", ";x").
//
// What textual rules still cannot see: case-insensitive file systems
// ("SECRET" is "secret" on Windows and macOS), Windows short names
// ("SECRET~1") and NTFS streams ("secret::$DATA"). In front of such a
// server, give a narrower resource rule no broader rule around it that
// grants less (or give the broader rule the narrower one's scopes).
//
// Scopes: at least one, each a concrete scope (policy.ValidRequiredScope):
// a '*' in a required scope is a configuration error.
type Rule struct {
	Pattern string   `json:"pattern"`
	Scopes  []string `json:"scopes"`
}

// Rules are one route's MCP rules (DESIGN.md §4.1), fixed at config load.
// Call Compile before use; Decide denies every targeted operation on Rules
// that were not compiled.
//
// Semantics, the same for tools, resources and prompts:
//
//   - Every rule whose pattern matches the target applies, and the token
//     needs every scope of every one of them: an exact rule and a "*" rule
//     are cumulative, like the route's method/path rules (DESIGN.md §4 step
//     7). So adding a rule can only narrow what a token may do, never widen
//     it, and "tool * mcp:demo:call" makes every tool need mcp:demo:call.
//   - When no rule matches, the operation is denied (fail closed): a tool
//     the configuration does not name is not callable unless a "tool *"
//     rule exists, and likewise for resources and prompts. A route with no
//     resource rules denies every resources/read, resources/subscribe and
//     resources/unsubscribe.
//   - The route's own scopes apply too; checking them is the gateway's job.
type Rules struct {
	Tools     []Rule `json:"tools,omitempty"`
	Resources []Rule `json:"resources,omitempty"`
	Prompts   []Rule `json:"prompts,omitempty"`

	tools, resources, prompts ruleSet
	compiled                  bool
}

// ruleSet is the compiled form of one kind's rules.
type ruleSet struct {
	exact    map[string][]string // pattern → scopes; resource keys have a lowercase scheme
	prefixes []prefixRule        // resources only, in configuration order
	any      []string            // scopes of the "*" rule
	hasAny   bool
}

type prefixRule struct {
	prefix string // lowercase scheme
	scopes []string
}

// Compile validates the rules and builds their lookup tables. Errors name
// the rule ("tool \"read_file\": …"); nothing is compiled on error.
func (r *Rules) Compile() error {
	tools, err := compileSet("tool", r.Tools, false)
	if err != nil {
		return err
	}
	resources, err := compileSet("resource", r.Resources, true)
	if err != nil {
		return err
	}
	prompts, err := compileSet("prompt", r.Prompts, false)
	if err != nil {
		return err
	}
	r.tools, r.resources, r.prompts, r.compiled = tools, resources, prompts, true
	return nil
}

func compileSet(kind string, rules []Rule, uris bool) (ruleSet, error) {
	var set ruleSet
	seen := make(map[string]bool, len(rules))
	for _, rule := range rules {
		p := rule.Pattern
		fail := func(format string, args ...any) error {
			return fmt.Errorf("%s %s: %s", kind, excerpt(p), fmt.Sprintf(format, args...))
		}
		if reason := checkName(p); reason != "" {
			return set, fail("pattern %s", reason)
		}
		if len(rule.Scopes) == 0 {
			return set, fail("requires no scope (name at least one)")
		}
		for _, s := range rule.Scopes {
			if err := policy.ValidRequiredScope(s); err != nil {
				return set, fail("%v", err)
			}
		}
		scopes := slices.Clip(slices.Compact(slices.Clone(rule.Scopes)))
		key := p
		switch {
		case p == "*":
			set.any, set.hasAny = scopes, true
		case !uris:
			if strings.IndexByte(p, '*') >= 0 {
				return set, fail("'*' is allowed only as the whole pattern (any %s)", kind)
			}
		default:
			body, prefix := strings.CutSuffix(p, "*")
			if strings.IndexByte(body, '*') >= 0 {
				return set, fail("'*' is allowed only as the last character (any suffix) or alone (any resource)")
			}
			n := schemeLen(body)
			if n == 0 {
				return set, fail("is not an absolute URI (a scheme and ':' first)")
			}
			key = strings.ToLower(body[:n]) + body[n:]
			if prefix {
				set.prefixes = append(set.prefixes, prefixRule{prefix: key, scopes: scopes})
				key += "*"
			}
		}
		if seen[key] {
			return set, fail("appears twice; list all its scopes on one line")
		}
		seen[key] = true
		if p != "*" && !strings.HasSuffix(key, "*") {
			if set.exact == nil {
				set.exact = make(map[string][]string)
			}
			set.exact[key] = scopes
		}
	}
	return set, nil
}

// schemeLen returns the length of uri's "scheme:" prefix (RFC 3986 §3.1:
// ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":"), or 0 when it has none.
func schemeLen(uri string) int {
	for i := 0; i < len(uri); i++ {
		c := uri[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		case i > 0 && c == ':':
			return i + 1
		default:
			return 0
		}
	}
	return 0
}

// Decide is the one MCP authorization decision (DESIGN.md §4.1 and §4
// step 7): whether a token holding scopes may send m on a route with
// rules, as far as the message goes — the route's own scopes and the rest
// of the request are the gateway's checks. The gateway calls it for every
// POSTed message, and the tools/list filter calls it for every listed tool
// as a tools/call of that tool, so no tool is listed that a call would be
// refused, and none is hidden that a call would be allowed.
//
// It allows, in order:
//
//   - a response (the client answering a server request) and a known client
//     notification: on the route rule alone;
//   - a known request method other than tools/call, resources/read,
//     resources/subscribe, resources/unsubscribe and prompts/get: on the
//     route rule alone;
//   - tools/call (tool rules), resources/read, resources/subscribe and
//     resources/unsubscribe (resource rules), prompts/get (prompt rules),
//     and completion/complete (the prompt rules for a "ref/prompt", the
//     resource rules for a "ref/resource": Message.Target) when at least
//     one rule of that kind matches the target (Name) and scopes grant
//     (policy.Allows) every scope of every matching rule. A subscription
//     delivers the resource's updates, so it needs what reading the
//     resource needs; a completion lists values of a prompt's argument or
//     of a URI template's variable, so it needs what the prompt or the
//     template needs. A URI template ("file:///repo/{path}") is matched as
//     text, like a URI and under the same alias rules: "file:///repo/*"
//     covers it, and a template wider than every rule ("file:///{path}")
//     matches none.
//
// Everything else is denied: an unknown or case-variant method, a request
// whose method is a notification's (or the reverse), a completion whose
// Target is neither TargetPrompt nor TargetResource, a target no rule
// matches, an invalid target (see Decode rules 6 and 7), a resource URI or
// URI template spelled so that it could name another resource than the
// text a rule sees (the list is in Rule's documentation), and nil or
// uncompiled rules for a targeted method.
//
// missingScope is the first scope lacking (exact rule first, then prefix
// rules in configuration order, then the "*" rule): it is set only when
// more scope would help, so the gateway answers 403 insufficient_scope
// with RequiredScopes, and a plain 403 when it is "".
func Decide(rules *Rules, scopes []string, m *Message) (allowed bool, missingScope string) {
	if m == nil {
		return false, ""
	}
	switch m.Kind {
	case KindResponse:
		return true, ""
	case KindNotification:
		c := classOf(m.Method)
		return c == notification, ""
	case KindRequest:
	default:
		return false, ""
	}
	c := classOf(m.Method)
	if c == plainRequest {
		return true, ""
	}
	target := c.target(m.Target)
	if target == TargetNone || rules == nil || !rules.compiled || checkName(m.Name) != "" {
		return false, ""
	}
	matched := false
	missing := ""
	rules.each(target, m.Name, func(need []string) bool {
		matched = true
		for _, s := range need {
			if !policy.Allows(scopes, s) {
				missing = s
				return false
			}
		}
		return true
	})
	if !matched {
		return false, ""
	}
	return missing == "", missing
}

// RequiredScopes lists every scope the rules require of m's target, in
// Decide's order without repeats, for the insufficient_scope challenge
// (RFC 6750 §3: "scope" names what the operation needs; the gateway adds
// the route's scopes). Nil when m has no targeted method or no rule
// matches.
func RequiredScopes(rules *Rules, m *Message) []string {
	if rules == nil || !rules.compiled || m == nil || m.Kind != KindRequest {
		return nil
	}
	target := classOf(m.Method).target(m.Target)
	if target == TargetNone {
		return nil
	}
	var out []string
	rules.each(target, m.Name, func(need []string) bool {
		for _, s := range need {
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
		return true
	})
	return out
}

// each calls f with the scopes of every rule of the target's kind matching
// name, until f returns false.
func (r *Rules) each(target Target, name string, f func(scopes []string) bool) {
	var set *ruleSet
	switch target {
	case TargetTool:
		set = &r.tools
	case TargetPrompt:
		set = &r.prompts
	case TargetResource:
		set = &r.resources
		if !uriAliasFree(name) {
			return
		}
		name = lowerScheme(name)
	default:
		return
	}
	if scopes, ok := set.exact[name]; ok && !f(scopes) {
		return
	}
	for _, p := range set.prefixes {
		if strings.HasPrefix(name, p.prefix) && !f(p.scopes) {
			return
		}
	}
	if set.hasAny {
		f(set.any)
	}
}

// lowerScheme returns uri with its scheme in lower case (no allocation
// when it already is).
func lowerScheme(uri string) string {
	n := schemeLen(uri)
	for i := 0; i < n; i++ {
		if 'A' <= uri[i] && uri[i] <= 'Z' {
			return strings.ToLower(uri[:n]) + uri[n:]
		}
	}
	return uri
}

// uriAliasFree reports whether a resource URI (or URI template) is free
// of every spelling Rule's documentation lists under "never matches": one
// that names, to RFC 3986 normalization (§6.2.2) or to a common server,
// the resource another spelling names.
func uriAliasFree(uri string) bool {
	// prev is the octet before this one once escapes are decoded, so a C1
	// control is found however its two UTF-8 octets are spelled ("%C2%85",
	// or one of them raw).
	var prev byte
	for i := 0; i < len(uri); i++ {
		c := uri[i]
		if c == '%' {
			if i+2 >= len(uri) || !isUpperHex(uri[i+1]) || !isUpperHex(uri[i+2]) {
				return false
			}
			v := unhex(uri[i+1])<<4 | unhex(uri[i+2])
			if v == '/' || v == '\\' || v == ';' || v == '%' || unreserved(v) {
				return false
			}
			c = v
			i += 2
		}
		if c < 0x20 || c == 0x7f || c == '\\' || prev == 0xc2 && 0x80 <= c && c <= 0x9f {
			return false // C0, DEL, C1 (U+0080–U+009F in UTF-8), or '\\'
		}
		prev = c
		// A "." or ".." segment: a raw '.' (an encoded one was refused)
		// after '/', and '/', '?', '#' or the end after the dots.
		if c != '.' || i == 0 || uri[i-1] != '/' {
			continue
		}
		j := i + 1
		if j < len(uri) && uri[j] == '.' {
			j++
		}
		if j == len(uri) || uri[j] == '/' || uri[j] == '?' || uri[j] == '#' {
			return false
		}
	}

	n := schemeLen(uri)
	p := n // the path starts here
	if strings.HasPrefix(uri[n:], "//") {
		p = len(uri)
		if j := strings.IndexAny(uri[n+2:], "/?#"); j >= 0 {
			p = n + 2 + j
		}
		if !authorityCanonical(uri[:n], uri[n+2:p]) {
			return false
		}
	}
	path := uri[p:]
	if j := strings.IndexAny(path, "?#"); j >= 0 {
		path = path[:j]
	}
	hierarchical := strings.HasPrefix(path, "/")
	for k := 0; path != ""; k++ {
		seg, rest, more := strings.Cut(path, "/")
		path = rest
		switch {
		case seg == "":
			// The empty segment before a leading '/', or after a final one.
			if k > 0 && more {
				return false
			}
			continue
		case strings.HasSuffix(seg, ".") || strings.HasSuffix(seg, " ") || strings.HasSuffix(seg, "%20"):
			return false
		}
		if semi := strings.IndexByte(seg, ';'); semi >= 0 && (hierarchical || strings.Trim(seg[:semi], ".") == "") {
			return false
		}
	}
	return true
}

// authorityCanonical reports whether the authority of a URI with scheme
// ("file:", any case) is free of the spellings uriAliasFree lists.
func authorityCanonical(scheme, auth string) bool {
	if strings.IndexByte(auth, '@') >= 0 {
		return false
	}
	for i := 0; i < len(auth); i++ {
		if 'A' <= auth[i] && auth[i] <= 'Z' {
			return false
		}
	}
	host, port, hasPort := auth, "", false
	if i := strings.LastIndexByte(auth, ':'); i >= 0 && i > strings.LastIndexByte(auth, ']') {
		host, port, hasPort = auth[:i], auth[i+1:], true
	}
	if strings.HasSuffix(host, ".") {
		return false
	}
	if hasPort {
		name := strings.TrimSuffix(scheme, ":")
		switch {
		case port == "" || port[0] == '0':
			return false
		case port == "80" && (strings.EqualFold(name, "http") || strings.EqualFold(name, "ws")),
			port == "443" && (strings.EqualFold(name, "https") || strings.EqualFold(name, "wss")):
			return false
		}
	}
	return !(host == "localhost" && strings.EqualFold(scheme, "file:"))
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func isUpperHex(c byte) bool {
	return '0' <= c && c <= '9' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// unreserved is RFC 3986 §2.3: ALPHA / DIGIT / "-" / "." / "_" / "~".
func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}
