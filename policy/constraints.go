package policy

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kavachgate/kavach/ratelimit"
)

// Constraints is the kvc.cnst claim: limits on where, how and how much a
// token may be used, on top of its scopes and audience.
//
// Encoding: a JSON object, members in field order (hosts, cidrs, methods,
// paths, max_body, audit, args, rate), absent fields omitted, as
// encoding/json writes the struct.
// An absent field means "no constraint". A present field is never empty or
// zero: null, [], "", 0 are rejected when decoding, by Validate and when
// encoding, so omitempty can never turn "nothing allowed" into "everything
// allowed". Decoding is strict: member names are case-sensitive, an unknown
// or repeated member is an error (a constraint this version does not know
// cannot be enforced, so it must not be dropped), and the result is
// validated. Limits: MaxConstraintEntries entries per list, MaxHostLen bytes
// per host, MaxEntryLen bytes per method or path.
type Constraints struct {
	Hosts   StringList `json:"hosts,omitempty"`    // exact lowercase hostnames (or IP addresses), or "*.<domain>" (the '*' stands for exactly one label); no port
	CIDRs   PrefixList `json:"cidrs,omitempty"`    // canonical prefixes (host bits zero), IPv4 or IPv6
	Methods StringList `json:"methods,omitempty"`  // uppercase RFC 9110 tokens, e.g. GET
	Paths   StringList `json:"paths,omitempty"`    // start with '/'; exact, or ending in '*' = any suffix (Caddy path-matcher meaning); '*' only as last char; no '.'/'..' segments, no '%', '\', '?', '#'
	MaxBody ByteLimit  `json:"max_body,omitempty"` // bytes, > 0
	Audit   AuditMode  `json:"audit,omitempty"`    // only "required"
	Args    Args       `json:"args,omitempty"`     // rules on MCP tool-call arguments, keyed by tool (see Args)
	// Rate is "<n>/<s|m|h>": at most n requests per second, minute or hour
	// (and n at once) by the token's current agent, counted by every
	// gateway on every route (package ratelimit's bucket). A child's rate
	// is within its parent's when both its count and its rate are no
	// larger.
	Rate RateLimit `json:"rate,omitempty"`
}

// RateLimit is a token bucket "<n>/<s|m|h>" (ratelimit.ParseRate).
type RateLimit string

// StringList is a constraint list of strings. Its JSON form is a non-empty
// array of strings: null and [] are rejected because a present field must
// never mean "no constraint".
type StringList []string

// PrefixList is a constraint list of IP prefixes. Its JSON form is a
// non-empty array of canonical prefix strings ("10.0.0.0/8", never
// "10.0.0.1/8").
type PrefixList []netip.Prefix

// ByteLimit is a size in bytes; its JSON form is a positive integer.
type ByteLimit int64

// AuditMode says whether requests must be audited durably before they are
// forwarded; its only present value is AuditRequired.
type AuditMode string

// AuditRequired makes the gateway write a request's decision record durably
// before forwarding it.
const AuditRequired AuditMode = "required"

// IsZero reports whether c constrains nothing: every field absent. A
// non-nil empty list is not absent (it allows nothing, and is invalid).
func (c *Constraints) IsZero() bool {
	return c == nil || (c.Hosts == nil && c.CIDRs == nil && c.Methods == nil &&
		c.Paths == nil && c.MaxBody == 0 && c.Audit == "" && c.Args == nil && c.Rate == "")
}

// Validate checks the syntax of every field, for constraints decoded from
// JSON and built in Go alike: entry syntax, at most MaxConstraintEntries
// entries, no duplicates, present lists non-empty (a non-nil empty slice is
// an error), MaxBody ≥ 0 (0 is absent), Audit "" or "required". The error
// is a *FieldError naming the field.
func (c *Constraints) Validate() error {
	if fe := c.validate(); fe != nil {
		return fe
	}
	return nil
}

func (c *Constraints) validate() *FieldError {
	if c == nil {
		return nil
	}
	if fe := validateList("hosts", c.Hosts, hostEntryError); fe != nil {
		return fe
	}
	if fe := validatePrefixes(c.CIDRs); fe != nil {
		return fe
	}
	if fe := validateList("methods", c.Methods, methodEntryError); fe != nil {
		return fe
	}
	if fe := validateList("paths", c.Paths, pathEntryError); fe != nil {
		return fe
	}
	if c.MaxBody < 0 {
		return &FieldError{Field: "max_body", Reason: fmt.Sprintf("%d is negative", c.MaxBody)}
	}
	if c.Audit != "" && c.Audit != AuditRequired {
		return &FieldError{Field: "audit", Reason: fmt.Sprintf("%s is not %q", quote(string(c.Audit)), AuditRequired)}
	}
	if c.Rate != "" {
		if _, _, err := ratelimit.ParseRate(string(c.Rate)); err != nil {
			return &FieldError{Field: "rate", Reason: err.Error()}
		}
	}
	return c.Args.validate()
}

const emptyListReason = "must not be empty (omit the field for no constraint)"

// validateList checks a present list's size, each entry with entryError
// (which returns "" for a good entry) and duplicates.
func validateList(field string, list []string, entryError func(string) string) *FieldError {
	if list == nil {
		return nil
	}
	if fe := validateCount(field, len(list)); fe != nil {
		return fe
	}
	for i, e := range list {
		if reason := entryError(e); reason != "" {
			return &FieldError{Field: field, Reason: reason}
		}
		if slices.Contains(list[:i], e) {
			return &FieldError{Field: field, Reason: quote(e) + " is listed twice"}
		}
	}
	return nil
}

func validateCount(field string, n int) *FieldError {
	switch {
	case n == 0:
		return &FieldError{Field: field, Reason: emptyListReason}
	case n > MaxConstraintEntries:
		return &FieldError{Field: field, Reason: fmt.Sprintf("%d entries, at most %d", n, MaxConstraintEntries)}
	}
	return nil
}

func validatePrefixes(list PrefixList) *FieldError {
	if list == nil {
		return nil
	}
	if fe := validateCount("cidrs", len(list)); fe != nil {
		return fe
	}
	for i, p := range list {
		if reason := prefixError(p); reason != "" {
			return &FieldError{Field: "cidrs", Reason: reason}
		}
		if slices.Contains(list[:i], p) {
			return &FieldError{Field: "cidrs", Reason: quote(p.String()) + " is listed twice"}
		}
	}
	return nil
}

func prefixError(p netip.Prefix) string {
	switch {
	case !p.IsValid():
		return "invalid prefix"
	case p != p.Masked():
		return fmt.Sprintf("%s: host bits set (the prefix is %s)", quote(p.String()), quote(p.Masked().String()))
	case p.Addr().Is4In6():
		// AllowsIP unmaps the client address, so an IPv4-mapped prefix
		// would silently never match; the IPv4 form says what was meant.
		return fmt.Sprintf("%s: write IPv4-mapped prefixes in IPv4 form", quote(p.String()))
	}
	return ""
}

// hostEntryError checks one hosts entry: a lowercase ASCII hostname, an
// IP address, or "*." followed by a hostname.
func hostEntryError(h string) string {
	switch {
	case h == "":
		return "empty entry"
	case len(h) > MaxHostLen:
		return fmt.Sprintf("%s is longer than %d bytes", quote(h), MaxHostLen)
	case h[0] == '[':
		return fmt.Sprintf("%s: write IPv6 addresses without brackets", quote(h))
	case strings.IndexByte(h, ':') >= 0:
		// RFC 3986 §3.2.2: an IPv6 literal is the only host with ':'.
		// Anything else with a ':' is a host with a port.
		a, err := netip.ParseAddr(h)
		switch {
		case err != nil || !a.Is6():
			return fmt.Sprintf("%s must be a hostname or IP address without a port", quote(h))
		case a.Zone() != "":
			return fmt.Sprintf("%s must not carry an IPv6 zone", quote(h))
		case a.String() != h:
			// Hosts are compared as strings: only one spelling can match.
			return fmt.Sprintf("%s: write it as %s", quote(h), quote(a.String()))
		}
		return ""
	}
	name := h
	if strings.HasPrefix(h, "*.") {
		name = h[2:]
	}
	for i := 0; ; {
		j := strings.IndexByte(name[i:], '.')
		label := name[i:]
		if j >= 0 {
			label = name[i : i+j]
		}
		switch {
		case label == "" && j < 0 && i > 0:
			return fmt.Sprintf("%s must not end with '.'", quote(h))
		case label == "":
			return fmt.Sprintf("%s has an empty label", quote(h))
		case len(label) > MaxLabelLen:
			return fmt.Sprintf("%s has a label longer than %d bytes", quote(h), MaxLabelLen)
		}
		for k := 0; k < len(label); k++ {
			switch c := label[k]; {
			case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
			case c >= 'A' && c <= 'Z':
				return fmt.Sprintf("%s must be lowercase", quote(h))
			case c == '*':
				return fmt.Sprintf("%s: '*' is allowed only as a whole first label (\"*.example.com\")", quote(h))
			case c >= utf8.RuneSelf:
				return fmt.Sprintf("%s must be ASCII (write internationalized names as xn-- A-labels)", quote(h))
			default:
				return fmt.Sprintf("%s contains %s, not allowed in a hostname", quote(h), byteDesc(c))
			}
		}
		if j < 0 {
			return ""
		}
		i += j + 1
	}
}

// methodEntryError checks one methods entry.
func methodEntryError(m string) string {
	if m == "" {
		return "empty entry"
	}
	if len(m) > MaxEntryLen {
		return fmt.Sprintf("%s is longer than %d bytes", quote(m), MaxEntryLen)
	}
	for i := 0; i < len(m); i++ {
		c := m[i]
		if c >= 'a' && c <= 'z' {
			// RFC 9110 §9.1: the method token is case-sensitive, so "get"
			// would never match a GET request.
			return fmt.Sprintf("%s must be uppercase", quote(m))
		}
		if !tchar(c) {
			return fmt.Sprintf("%s is not an HTTP method token (RFC 9110 §5.6.2)", quote(m))
		}
	}
	return ""
}

// tchar reports whether c may appear in an RFC 9110 §5.6.2 token:
// "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" /
// "`" / "|" / "~" / DIGIT / ALPHA.
func tchar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// pathEntryError checks one paths entry. Entries are matched against the
// gateway's decoded, cleaned request path, so they are written in that form:
// no '%' escapes, no '.'/'..' segments, no '\', no query or fragment.
func pathEntryError(p string) string {
	switch {
	case p == "":
		return "empty entry"
	case len(p) > MaxEntryLen:
		return fmt.Sprintf("%s is longer than %d bytes", quote(p), MaxEntryLen)
	case p[0] != '/':
		return fmt.Sprintf("%s must start with '/'", quote(p))
	case !utf8.ValidString(p):
		return fmt.Sprintf("%s is not valid UTF-8", quote(p))
	}
	body, wildcard := strings.CutSuffix(p, "*")
	for i := 0; i < len(body); i++ {
		switch c := body[i]; {
		case c == '*':
			return fmt.Sprintf("%s: '*' is allowed only as the last character", quote(p))
		case c == '%':
			return fmt.Sprintf("%s must be in decoded form, without '%%'", quote(p))
		case c == '\\':
			return fmt.Sprintf("%s must not contain '\\'", quote(p))
		case c == '?' || c == '#':
			return fmt.Sprintf("%s must not contain a query or fragment", quote(p))
		case c < 0x20 || c == 0x7f:
			return fmt.Sprintf("%s contains a control character", quote(p))
		}
	}
	// The segment before a trailing '*' is only a prefix of a segment
	// ("/a/.*" matches "/a/.well-known"), so it is not a dot segment.
	for rest := body[1:]; ; {
		i := strings.IndexByte(rest, '/')
		if i < 0 {
			if !wildcard && (rest == "." || rest == "..") {
				return fmt.Sprintf("%s has a '.' or '..' segment (paths are matched cleaned)", quote(p))
			}
			return ""
		}
		if seg := rest[:i]; seg == "." || seg == ".." {
			return fmt.Sprintf("%s has a '.' or '..' segment (paths are matched cleaned)", quote(p))
		}
		rest = rest[i+1:]
	}
}

// HostMatch reports whether host matches a hosts entry: the same name, or,
// for a pattern "*.d", a name "y.d" where y is one non-empty label. So
// "*.corp.example" matches "a.corp.example" but neither "corp.example" nor
// "a.b.corp.example". host is compared ASCII case-insensitively (RFC 4343:
// DNS names are case-insensitive; Unicode folding would let "K" (U+212A)
// pass for "k"), a trailing '.' (the DNS root) is ignored, and an IPv6
// literal may be bracketed as in a URL.
func HostMatch(pattern, host string) bool {
	return hostMatch(pattern, normHost(host))
}

func normHost(h string) string {
	if len(h) > 2 && h[0] == '[' && h[len(h)-1] == ']' && strings.IndexByte(h, ':') > 0 {
		h = h[1 : len(h)-1]
	}
	if n := len(h); n > 0 && h[n-1] == '.' {
		h = h[:n-1]
	}
	return h
}

// hostMatch is HostMatch for an already normalised host.
func hostMatch(pattern, host string) bool {
	if host == "" {
		return false
	}
	if len(pattern) >= 2 && pattern[0] == '*' && pattern[1] == '.' {
		dotDomain := pattern[1:]
		n := len(host) - len(dotDomain)
		return n > 0 && equalFoldASCII(host[n:], dotDomain) && strings.IndexByte(host[:n], '.') < 0
	}
	return equalFoldASCII(pattern, host)
}

func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lowerASCII(a[i]) != lowerASCII(b[i]) {
			return false
		}
	}
	return true
}

func lowerASCII(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// PathMatch reports whether path matches a paths entry: equal to it, or,
// for an entry ending in '*', starting with what precedes the '*' (Caddy's
// path matcher meaning of a trailing '*'). Case is folded the way Caddy's
// path matcher folds it (strings.ToLower on both sides): Caddy routes
// `/API/Admin` where it routes `/api/admin`, so a rule or constraint that
// compared case would be narrower than the route serving the request.
func PathMatch(pattern, path string) bool {
	prefix := false
	if n := len(pattern); n > 0 && pattern[n-1] == '*' {
		pattern, prefix = pattern[:n-1], true
	}
	if !isASCII(pattern) || !isASCII(path) {
		pattern, path = strings.ToLower(pattern), strings.ToLower(path)
	}
	if prefix {
		return len(path) >= len(pattern) && equalFoldASCII(path[:len(pattern)], pattern)
	}
	return equalFoldASCII(pattern, path)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// AllowsHost reports whether host is allowed by Hosts (see HostMatch).
func (c *Constraints) AllowsHost(host string) bool {
	if c == nil || c.Hosts == nil {
		return true
	}
	host = normHost(host)
	for _, p := range c.Hosts {
		if hostMatch(p, host) {
			return true
		}
	}
	return false
}

// AllowsIP reports whether ip is inside one of CIDRs. An IPv4-mapped IPv6
// address is unmapped first, so a client reaching a dual-stack listener over
// IPv4 matches the IPv4 prefixes, and an IPv6 zone is ignored. When CIDRs is
// present an invalid or zero ip is never allowed.
func (c *Constraints) AllowsIP(ip netip.Addr) bool {
	if c == nil || c.CIDRs == nil {
		return true
	}
	ip = ip.Unmap().WithZone("")
	if !ip.IsValid() {
		return false
	}
	for _, p := range c.CIDRs {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// AllowsMethod reports whether m is one of Methods, compared exactly:
// RFC 9110 §9.1 methods are case-sensitive.
func (c *Constraints) AllowsMethod(m string) bool {
	return c == nil || c.Methods == nil || slices.Contains(c.Methods, m)
}

// AllowsPath reports whether p matches one of Paths (see PathMatch). p must
// be the decoded, cleaned path; when Paths is present a path that is not
// clean (no leading '/', a '\', a '.' or '..' segment) is refused, so a
// prefix entry can never be escaped with "/allowed/../secret" even if a
// caller forgot to clean.
func (c *Constraints) AllowsPath(p string) bool {
	if c == nil || c.Paths == nil {
		return true
	}
	if !cleanPath(p) {
		return false
	}
	for _, pat := range c.Paths {
		if PathMatch(pat, p) {
			return true
		}
	}
	return false
}

func cleanPath(p string) bool {
	if p == "" || p[0] != '/' || strings.IndexByte(p, '\\') >= 0 {
		return false
	}
	for rest := p[1:]; ; {
		i := strings.IndexByte(rest, '/')
		seg := rest
		if i >= 0 {
			seg = rest[:i]
		}
		if seg == "." || seg == ".." {
			return false
		}
		if i < 0 {
			return true
		}
		rest = rest[i+1:]
	}
}

// AllowsBody reports whether a body of n bytes is within MaxBody. n < 0
// means the length is not known yet: allowed here, and the gateway enforces
// MaxBody while streaming.
func (c *Constraints) AllowsBody(n int64) bool {
	if c == nil || c.MaxBody == 0 || n < 0 {
		return true
	}
	return n <= int64(c.MaxBody)
}

// AuditRequired reports whether requests must be audited durably before
// they are forwarded.
func (c *Constraints) AuditRequired() bool {
	return c != nil && c.Audit == AuditRequired
}

// Within reports, as a *FieldError naming the first field in field order,
// where c is wider than parent; nil when every field of c is within
// parent's. A field absent in parent constrains nothing, so anything in c
// is within it. A field absent in c is taken to inherit parent's and is
// never reported: a caller comparing constraints as written in two tokens
// must fill c's absent fields from parent first (Attenuate does).
//
// Rules: every host of c is equal to a host of parent or, when exact, a
// one-label sub-host of a parent wildcard (a wildcard of c is within only
// the same wildcard); every prefix of c lies inside a parent prefix of the
// same family; every method of c is a method of parent; every path of c is
// an exact parent path, or its prefix (before '*') extends a parent
// wildcard's prefix; max_body is not larger; audit "required" stays; for
// each tool and argument both have a rule for, the child's allows nothing
// the parent's does not (ArgRule narrowing: paths within, hosts within
// (an IP address only when listed by the parent), url kept, schemes and
// ports subsets of the parent's (absent: http/https, default port), enum a
// subset, range inside, max_len not larger, a required argument stays
// required).
func (c *Constraints) Within(parent *Constraints) *FieldError {
	if c == nil || parent == nil {
		return nil
	}
	if c.Hosts != nil && parent.Hosts != nil {
		for _, h := range c.Hosts {
			if !slices.ContainsFunc(parent.Hosts, func(p string) bool { return hostWithin(p, h) }) {
				return &FieldError{Field: "hosts", Reason: quote(h) + " is not within the parent's hosts"}
			}
		}
	}
	if c.CIDRs != nil && parent.CIDRs != nil {
		for _, q := range c.CIDRs {
			if !slices.ContainsFunc(parent.CIDRs, func(p netip.Prefix) bool { return prefixWithin(p, q) }) {
				return &FieldError{Field: "cidrs", Reason: quote(q.String()) + " is not inside the parent's cidrs"}
			}
		}
	}
	if c.Methods != nil && parent.Methods != nil {
		for _, m := range c.Methods {
			if !slices.Contains(parent.Methods, m) {
				return &FieldError{Field: "methods", Reason: quote(m) + " is not one of the parent's methods"}
			}
		}
	}
	if c.Paths != nil && parent.Paths != nil {
		for _, cp := range c.Paths {
			if !slices.ContainsFunc(parent.Paths, func(p string) bool { return pathWithin(p, cp) }) {
				return &FieldError{Field: "paths", Reason: quote(cp) + " is not within the parent's paths"}
			}
		}
	}
	if c.MaxBody != 0 && parent.MaxBody != 0 && c.MaxBody > parent.MaxBody {
		return &FieldError{Field: "max_body", Reason: fmt.Sprintf("%d exceeds the parent's %d", c.MaxBody, parent.MaxBody)}
	}
	if parent.Audit == AuditRequired && c.Audit != "" && c.Audit != AuditRequired {
		return &FieldError{Field: "audit", Reason: "the parent requires audit"}
	}
	// Unlike the others, an absent rate under a parent's is refused here:
	// no rate means no limit, and Attenuate fills an absent field from the
	// parent before it asks.
	if parent.Rate != "" && !rateWithin(parent.Rate, c.Rate) {
		return &FieldError{Field: "rate", Reason: quote(string(c.Rate)) + " is not within the parent's rate " + quote(string(parent.Rate))}
	}
	if c.Args != nil && parent.Args != nil {
		return c.Args.within(parent.Args)
	}
	return nil
}

// rateWithin reports whether the bucket child never lets through more
// than parent: no larger burst (its count) and no faster refill. Both
// are valid (or child is absent, which is not within).
func rateWithin(parent, child RateLimit) bool {
	pn, pw, err := ratelimit.ParseRate(string(parent))
	if err != nil {
		return false
	}
	cn, cw, err := ratelimit.ParseRate(string(child))
	if err != nil {
		return false
	}
	// cn/cw ≤ pn/pw, cross-multiplied in seconds (n ≤ 10^6, w ≤ 3600 s:
	// no overflow).
	return cn <= pn && cn*int64(pw/time.Second) <= pn*int64(cw/time.Second)
}

func isWildcardHost(h string) bool { return strings.HasPrefix(h, "*.") }

// hostWithin reports whether every host the entry h matches is matched by
// the parent entry p.
func hostWithin(p, h string) bool {
	if p == h {
		return true
	}
	// Only an exact, normalised child host can be a one-label sub-host: a
	// child wildcard "*.a.x" names hosts two labels below "*.x"'s domain.
	return isWildcardHost(p) && h != "" && !strings.ContainsAny(h, "*[") &&
		normHost(h) == h && hostMatch(p, h)
}

// prefixWithin reports whether q lies inside p. Contains is false across
// address families, so an IPv6 prefix is never inside an IPv4 one.
func prefixWithin(p, q netip.Prefix) bool {
	return q.IsValid() && p.Bits() <= q.Bits() && p.Contains(q.Addr())
}

// pathWithin reports whether every path the entry c matches is matched by
// the parent entry p: "/api/*" is within "/api*", "/api*" is not within
// "/api/*" (it matches "/apix").
func pathWithin(p, c string) bool {
	prefix, wildcard := strings.CutSuffix(p, "*")
	if !wildcard {
		return p == c
	}
	return strings.HasPrefix(strings.TrimSuffix(c, "*"), prefix)
}
