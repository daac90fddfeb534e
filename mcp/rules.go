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
//	tool     read_file             files:read
//	tool     *                     mcp:demo:call
//	resource file:///repo/*        repository:read
//	prompt   review                pullrequest:read
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
// matches, an invalid target (see Decode rules 6 and 7), a resource URI that
// could name another resource than the one a textual rule sees (a "." or
// ".." segment, a backslash, a malformed percent-escape, or a
// percent-encoded '/', '\', control or unreserved character), and nil or
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

// uriAliasFree reports whether a resource URI is free of the spellings
// that let one string name the resource another names, which a textual
// rule could not see through (RFC 3986 §6.2.2 normalization, and what
// file servers do): a "." or ".." segment (§5.2.4), a backslash, a
// malformed percent-escape, or a percent-encoded '/', '\', '.', other
// unreserved character (§2.3: equivalent to the character itself) or
// control character. Such a URI is denied whatever the rules say.
func uriAliasFree(uri string) bool {
	for i := 0; i < len(uri); i++ {
		switch c := uri[i]; c {
		case '\\':
			return false
		case '%':
			if i+2 >= len(uri) || !isHex(uri[i+1]) || !isHex(uri[i+2]) {
				return false
			}
			v := unhex(uri[i+1])<<4 | unhex(uri[i+2])
			if v < 0x20 || v == 0x7f || v == '/' || v == '\\' || unreserved(v) {
				return false
			}
			i += 2
		case '.':
			// A segment is delimited by '/' before and '/', '?', '#' or the
			// end after.
			if i == 0 || uri[i-1] != '/' {
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
	}
	return true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
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
