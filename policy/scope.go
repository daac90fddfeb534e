package policy

import (
	"fmt"
	"slices"
	"strings"
)

// scopeError is the error of every scope check: field "scope", so the issuer
// can map it to invalid_scope without parsing text.
func scopeError(format string, args ...any) *FieldError {
	return &FieldError{Field: "scope", Reason: fmt.Sprintf(format, args...)}
}

// ValidScope reports whether s is a well-formed scope: segments joined by
// ':', each segment non-empty and made of RFC 6749 §3.3 scope-token
// characters other than ':', where '*' may only be a whole segment; at most
// MaxScopeLen bytes and MaxScopeSegments segments. The error is a
// *FieldError with field "scope".
func ValidScope(s string) error {
	if fe := validScope(s); fe != nil {
		return fe
	}
	return nil
}

func validScope(s string) *FieldError {
	if s == "" {
		return scopeError("empty scope")
	}
	if len(s) > MaxScopeLen {
		return scopeError("%s is %d bytes, at most %d", quote(s), len(s), MaxScopeLen)
	}
	segments := 1
	start := 0 // first byte of the current segment
	for i := 0; i <= len(s); i++ {
		if i < len(s) && s[i] != ':' {
			if !scopeTokenChar(s[i]) {
				return scopeError("%s contains %s, not allowed in a scope (RFC 6749 §3.3)", quote(s), byteDesc(s[i]))
			}
			continue
		}
		seg := s[start:i]
		switch {
		case seg == "":
			return scopeError("%s has an empty segment", quote(s))
		case seg != "*" && strings.IndexByte(seg, '*') >= 0:
			// A '*' inside a segment would read as a glob ("repo*") that
			// Match does not implement; refusing it keeps the meaning obvious.
			return scopeError("%s: '*' is allowed only as a whole segment", quote(s))
		}
		if i < len(s) {
			segments++
			if segments > MaxScopeSegments {
				return scopeError("%s has more than %d segments", quote(s), MaxScopeSegments)
			}
		}
		start = i + 1
	}
	return nil
}

// scopeTokenChar reports whether c may appear in a scope segment.
func scopeTokenChar(c byte) bool {
	// RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ), that is
	// printable ASCII except space, '"' and '\'. ':' is ours: the separator.
	return c == 0x21 || (c >= 0x23 && c <= 0x5B && c != ':') || (c >= 0x5D && c <= 0x7E)
}

// ValidRequiredScope is ValidScope for a scope a route requires. A required
// scope is a concrete scope, never a pattern: a '*' there would be matched
// only by a token holding a literal '*' segment, which is never what the
// configuration meant.
func ValidRequiredScope(s string) error {
	if fe := validScope(s); fe != nil {
		return fe
	}
	if hasWildcardSegment(s) {
		return scopeError("%s: a required scope must be concrete, '*' is allowed only in granted scopes", quote(s))
	}
	return nil
}

func hasWildcardSegment(s string) bool {
	for {
		i := strings.IndexByte(s, ':')
		if i < 0 {
			return s == "*"
		}
		if s[:i] == "*" {
			return true
		}
		s = s[i+1:]
	}
}

// Match reports whether the scope pattern matches scope. Both must have the
// same number of segments; a pattern segment '*' matches any one segment,
// including '*', and any other pattern segment only an equal segment. So
// "mcp:github" does not match "mcp:github:admin" and "*" does not match
// "a:b": a '*' never means "everything". An empty segment on either side
// never matches.
//
// Match is also the containment test between patterns: Match(p, q) is true
// exactly when every scope q matches is matched by p.
func Match(pattern, scope string) bool {
	for {
		pi := strings.IndexByte(pattern, ':')
		si := strings.IndexByte(scope, ':')
		ps, ss := pattern, scope
		if pi >= 0 {
			ps = pattern[:pi]
		}
		if si >= 0 {
			ss = scope[:si]
		}
		if ps == "" || ss == "" || (ps != "*" && ps != ss) {
			return false
		}
		if pi < 0 || si < 0 {
			return pi < 0 && si < 0
		}
		pattern, scope = pattern[pi+1:], scope[si+1:]
	}
}

// ParseScopes parses an RFC 6749 §3.3 scope parameter: scope tokens
// separated by single spaces. Every scope is checked with ValidScope;
// duplicates are dropped, keeping the first occurrence's place. More than
// MaxScopes distinct scopes is an error. "" is no scopes: nil, nil.
func ParseScopes(s string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	out := make([]string, 0, min(strings.Count(s, " ")+1, MaxScopes))
	start := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && s[i] != ' ' {
			continue
		}
		tok := s[start:i]
		start = i + 1
		// RFC 6749 §3.3: scope = scope-token *( SP scope-token ). Anything
		// else between tokens is a malformed parameter, not a separator.
		if tok == "" || strings.ContainsAny(tok, "\t\n\v\f\r") {
			return nil, scopeError("scopes must be separated by single spaces")
		}
		if fe := validScope(tok); fe != nil {
			return nil, fe
		}
		if slices.Contains(out, tok) {
			continue
		}
		if len(out) == MaxScopes {
			return nil, scopeError("more than %d scopes", MaxScopes)
		}
		out = append(out, tok)
	}
	return out, nil
}

// FormatScopes joins scopes with single spaces, the RFC 6749 §3.3 form.
func FormatScopes(scopes []string) string {
	return strings.Join(scopes, " ")
}

// Allows reports whether some pattern in have matches need.
func Allows(have []string, need string) bool {
	for _, p := range have {
		if Match(p, need) {
			return true
		}
	}
	return false
}

// Covers reports whether every scope of child is matched by some pattern of
// parent. Child entries may be patterns themselves: a parent "mcp:*" covers
// a child "mcp:*", a parent "mcp:x" does not.
func Covers(parent, child []string) bool {
	for _, c := range child {
		if !Allows(parent, c) {
			return false
		}
	}
	return true
}

// Uncovered returns the scopes of child that parent does not cover, in
// child's order, or nil when Covers(parent, child).
func Uncovered(parent, child []string) []string {
	var out []string
	for _, c := range child {
		if !Allows(parent, c) {
			out = append(out, c)
		}
	}
	return out
}
