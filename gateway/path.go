package gateway

import (
	"net/http"
	"strings"
	"unicode/utf8"
)

// A request path is checked, and rules and the token's paths constraint
// match it, the way the next hops read it (DESIGN.md §4 step 6, §11):
//
//   - Caddy's path matcher, which routes the request, folds case (it calls
//     strings.ToLower on both sides) and cleans the path: so do route rules
//     and the paths constraint (PathMatch), or a rule would be narrower
//     than the route serving the request (`/api/ADMIN/x` escaping a rule
//     for `/api/admin/*`).
//   - Upstreams disagree on a handful of spellings, and for each of them
//     some common server reads a path the gateway's text comparison does
//     not see: Tomcat, Jetty and Spring drop `;params` from every segment
//     and resolve the `..;` that remains; Windows servers strip trailing
//     dots and spaces from segments; a server that decodes twice turns
//     `%252e` into `.`; a NUL ends a C string. Such a path is refused (400)
//     on the whole site rather than guessed at (PathProblem).

// PathOptions relax PathProblem for one route.
type PathOptions struct {
	// AllowParams lets `;` appear inside a segment, for APIs that really use
	// matrix parameters (`/cars;color=red`). A segment that is only dots or
	// ends in a dot before its `;` (`..;`, `a.;x`) is refused still.
	AllowParams bool
}

// PathProblem returns why a request's path is refused, or "" when it is
// not. r.URL.Path is the decoded path; r.URL.RawPath, when set, the
// spelling the client used.
//
// Refused: a path that does not start with '/'; an encoded '/' or '\'; a
// '\'; a control character (NUL included) or invalid UTF-8; a '%' once
// decoded (the client encoded a '%': double encoding); a segment that is
// only dots ("." "..", "...") or ends in '.' or ' '; and, unless
// opts.AllowParams, a ';' (path parameters).
func PathProblem(r *http.Request, opts PathOptions) string {
	p := r.URL.Path
	if p == "" || p[0] != '/' {
		return "path must start with /"
	}
	if raw := r.URL.RawPath; raw != "" && (containsFold(raw, "%2f") || containsFold(raw, "%5c")) {
		return "encoded slash or backslash in path"
	}
	start := 1 // first byte of the current segment
	for i := 1; i <= len(p); i++ {
		if i < len(p) {
			c := p[i]
			switch {
			case c == '/':
			case c == '\\':
				return "backslash in path"
			case c < 0x20 || c == 0x7f:
				return "control character in path"
			case c == '%':
				return "encoded '%' in path"
			case c == ';' && !opts.AllowParams:
				return "';' in path"
			case c >= utf8.RuneSelf:
				r, n := utf8.DecodeRuneInString(p[i:])
				if r == utf8.RuneError && n <= 1 {
					return "invalid UTF-8 in path"
				}
				i += n - 1
				continue
			default:
				continue
			}
			if c != '/' {
				continue
			}
		}
		if why := segmentProblem(p[start:i]); why != "" {
			return why
		}
		start = i + 1
	}
	return ""
}

// segmentProblem checks one segment (empty segments are merged later).
func segmentProblem(seg string) string {
	if i := strings.IndexByte(seg, ';'); i >= 0 {
		seg = seg[:i]
		if seg == "" {
			return ""
		}
	}
	if seg == "" {
		return ""
	}
	if strings.Trim(seg, ".") == "" {
		return "dot segment in path"
	}
	if c := seg[len(seg)-1]; c == '.' || c == ' ' {
		return "segment ending in a dot or space in path"
	}
	return ""
}

// CleanPath is the path rules and constraints see: r.URL.Path with empty
// segments merged ("/api//x" is checked as "/api/x", as Caddy's path
// matcher merges them). Call it only on a path PathProblem accepted.
func CleanPath(p string) string {
	if !strings.Contains(p, "//") {
		return p
	}
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		if p[i] == '/' && i > 0 && p[i-1] == '/' {
			continue
		}
		b.WriteByte(p[i])
	}
	return b.String()
}

func containsFold(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}

// HasDotSegment reports whether a decoded path has a "." or ".." segment.
// Caddy's matchers see such a path cleaned while the upstream may get it
// as sent, so requests carrying one are refused (RFC 3986 §5.2.4 has
// clients remove them).
func HasDotSegment(p string) bool {
	for i := 0; i < len(p); i++ {
		if p[i] != '.' || (i > 0 && p[i-1] != '/') {
			continue
		}
		end := i + 1
		if end < len(p) && p[end] == '.' {
			end++
		}
		if end == len(p) || p[end] == '/' {
			return true
		}
	}
	return false
}
