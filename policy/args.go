package policy

import (
	"fmt"
	"math"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// Args is kvc.cnst.args: rules on the arguments of MCP tool calls, keyed by
// tool name (exact), then by argument. A tool Args does not name is not
// constrained by it; a tool it names meets every rule of its entry.
//
// Encoding: {"<tool>":{"<argument>":<ArgRule>,…},…}, members in sorted
// order (encoding/json sorts map keys), so the encoding is deterministic.
// A present Args, ToolArgs or rule is never empty. Limits (limits.go):
// MaxConstraintEntries tools, arguments per tool and entries per list,
// MaxEntryLen bytes per name, enum value or path, MaxHostLen per host,
// MaxSchemeLen per scheme, range bounds within ±MaxArgNumber.
type Args map[string]ToolArgs

// ToolArgs are one tool's argument rules, keyed by argument: a member name
// of params.arguments ("path"), or an RFC 6901 JSON pointer into it for a
// nested member ("/options/path": member "path" of member "options").
// A pointer goes through objects only; a segment that meets an array or a
// scalar makes the argument missing.
type ToolArgs map[string]ArgRule

// ArgRule is the rule on one argument. Its facets each narrow the values
// allowed; all that are present apply. At most one of Paths, Hosts, Enum
// and Range is present (each reads the value differently), MaxLen does not
// come with Range, and URL, Schemes and Ports come only with Hosts.
//
// Encoding: a JSON object of the present facets in field order; a present
// facet is never empty, zero or false.
type ArgRule struct {
	// Paths: the value is an absolute file path inside one of these
	// patterns. A pattern is exact, or ends in '*' for any suffix ("/repo/*"
	// is everything below /repo/), compared case-sensitively (file systems
	// are). The value is refused when it is not a string starting with '/',
	// holds a NUL or other control character, '\', '%' or a ".." segment
	// (anywhere, even one that stays inside); "." segments and repeated '/'
	// are dropped before matching.
	Paths StringList `json:"paths,omitempty"`
	// Hosts: the value names a network target (a hostname or IP address,
	// or an absolute URL, whose host then counts) allowed by these entries
	// (hosts-constraint syntax: exact, or "*.<domain>" for one label
	// below). An IP address (any spelling a URL parser reads as one) is
	// allowed only when listed exactly. See ArgRule.Check for what is
	// refused.
	Hosts StringList `json:"hosts,omitempty"`
	// URL: the value must be an absolute URL (a bare host is refused).
	URL bool `json:"url,omitempty"`
	// Schemes: the URL schemes allowed, lowercase. Absent: http and https.
	Schemes StringList `json:"schemes,omitempty"`
	// Ports: explicit URL ports allowed besides the scheme's default.
	// Absent: only the default port (":443" on https may be written).
	Ports PortList `json:"ports,omitempty"`
	// Enum: the value is a string equal to one of these.
	Enum StringList `json:"enum,omitempty"`
	// Range: the value is a JSON number n with Min ≤ n ≤ Max, compared as
	// the IEEE 754 double it denotes (RFC 8259 §6: what most servers read).
	Range *Range `json:"range,omitempty"`
	// MaxLen: the value is a string of at most MaxLen characters (Unicode
	// code points, after JSON unescaping).
	MaxLen int64 `json:"max_len,omitempty"`
	// Optional: the argument may be missing (absent or null); present, it
	// meets the rule. Without it a missing argument is refused.
	Optional bool `json:"optional,omitempty"`
}

// Range is an inclusive integer range; its JSON form is [min,max].
type Range struct{ Min, Max int64 }

// PortList is a list of TCP ports; its JSON form is a non-empty array of
// integers from 1 to 65535.
type PortList []int

// defaultSchemes are the schemes a URL argument may have when its rule
// lists none.
var defaultSchemes = StringList{"http", "https"}

// ArgType is the JSON type of an argument value.
type ArgType uint8

const (
	ArgAbsent ArgType = iota // the member is not there
	ArgNull
	ArgString
	ArgNumber
	ArgOther // object, array, true, false
)

// ArgValue is one argument of a call as the gateway read it.
type ArgValue struct {
	Type ArgType
	// Text is a string's value (unescaped) or a number's token as sent.
	Text string
}

// IsZero reports whether a constrains nothing (absent).
func (a Args) IsZero() bool { return a == nil }

// HasHosts reports whether the rule names network targets.
func (r *ArgRule) HasHosts() bool { return r.Hosts != nil }

func (a Args) validate() *FieldError {
	if a == nil {
		return nil
	}
	if fe := validateCount("args", len(a)); fe != nil {
		return fe
	}
	for tool, ta := range a {
		if reason := nameError("tool name", tool); reason != "" {
			return argsError("%s", reason)
		}
		if len(ta) == 0 {
			return argsError("tool %s: %s", quote(tool), emptyListReason)
		}
		if len(ta) > MaxConstraintEntries {
			return argsError("tool %s: %d arguments, at most %d", quote(tool), len(ta), MaxConstraintEntries)
		}
		for name, r := range ta {
			if reason := argNameError(name); reason != "" {
				return argsError("tool %s: %s", quote(tool), reason)
			}
			if reason := r.validate(); reason != "" {
				return argsError("tool %s, argument %s: %s", quote(tool), quote(name), reason)
			}
		}
	}
	return nil
}

func argsError(format string, args ...any) *FieldError {
	return &FieldError{Field: "args", Reason: fmt.Sprintf(format, args...)}
}

func nameError(what, s string) string {
	switch {
	case s == "":
		return "empty " + what
	case len(s) > MaxEntryLen:
		return fmt.Sprintf("%s %s is longer than %d bytes", what, quote(s), MaxEntryLen)
	case !utf8.ValidString(s):
		return fmt.Sprintf("%s %s is not valid UTF-8", what, quote(s))
	}
	return ""
}

// argNameError checks an argument name: a member name, or an RFC 6901
// pointer ("/a/b", '~' only as "~0" or "~1").
func argNameError(s string) string {
	if reason := nameError("argument name", s); reason != "" {
		return reason
	}
	if s[0] != '/' {
		return ""
	}
	for i := 0; i < len(s); i++ {
		if s[i] == '~' && (i+1 == len(s) || (s[i+1] != '0' && s[i+1] != '1')) {
			return fmt.Sprintf("argument pointer %s: '~' must be followed by 0 or 1 (RFC 6901 §3)", quote(s))
		}
	}
	return ""
}

// ArgPointer splits an argument name into the member names leading to it:
// "path" is ["path"], "/a/b~1c" is ["a", "b/c"] (RFC 6901 §4 unescaping).
func ArgPointer(name string) []string {
	if name == "" || name[0] != '/' {
		return []string{name}
	}
	segs := strings.Split(name[1:], "/")
	for i, s := range segs {
		if strings.IndexByte(s, '~') >= 0 {
			segs[i] = strings.ReplaceAll(strings.ReplaceAll(s, "~1", "/"), "~0", "~")
		}
	}
	return segs
}

// validate checks one rule; "" when it is good.
func (r *ArgRule) validate() string {
	kinds := 0
	for _, present := range []bool{r.Paths != nil, r.Hosts != nil, r.Enum != nil, r.Range != nil} {
		if present {
			kinds++
		}
	}
	switch {
	case r.Hosts == nil && (r.URL || r.Schemes != nil || r.Ports != nil):
		return "url, schemes and ports come with hosts"
	case kinds == 0 && r.MaxLen == 0:
		return "a rule needs paths, hosts, enum, range or max_len"
	case kinds > 1:
		return "paths, hosts, enum and range read the value differently: one of them per argument"
	case r.Range != nil && r.MaxLen != 0:
		return "range is for numbers and max_len for strings: not both"
	case r.MaxLen < 0:
		return fmt.Sprintf("max_len %d is negative", r.MaxLen)
	}
	if fe := validateList("paths", r.Paths, pathEntryError); fe != nil {
		return fe.Error()
	}
	if fe := validateList("hosts", r.Hosts, hostEntryError); fe != nil {
		return fe.Error()
	}
	if fe := validateList("schemes", r.Schemes, schemeError); fe != nil {
		return fe.Error()
	}
	if fe := validateList("enum", r.Enum, enumEntryError); fe != nil {
		return fe.Error()
	}
	if r.Ports != nil {
		if fe := validateCount("ports", len(r.Ports)); fe != nil {
			return fe.Error()
		}
		for i, p := range r.Ports {
			if p < 1 || p > 65535 {
				return fmt.Sprintf("ports: %d is not a port (1 to 65535)", p)
			}
			if slices.Contains(r.Ports[:i], p) {
				return fmt.Sprintf("ports: %d is listed twice", p)
			}
		}
	}
	if g := r.Range; g != nil {
		switch {
		case g.Min > g.Max:
			return fmt.Sprintf("range: min %d is above max %d", g.Min, g.Max)
		case g.Min < -MaxArgNumber || g.Max > MaxArgNumber:
			return fmt.Sprintf("range: bounds must be within ±%d", int64(MaxArgNumber))
		}
	}
	return ""
}

func schemeError(s string) string {
	if s == "" {
		return "empty entry"
	}
	// RFC 3986 §3.1: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), written
	// lowercase here (schemes are case-insensitive; URLs are compared
	// lowercased).
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || i > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return fmt.Sprintf("%s is not a lowercase URL scheme", quote(s))
		}
	}
	if len(s) > MaxSchemeLen {
		return fmt.Sprintf("%s is longer than %d bytes", quote(s), MaxSchemeLen)
	}
	return ""
}

func enumEntryError(s string) string {
	switch {
	case len(s) > MaxEntryLen:
		return fmt.Sprintf("%s is longer than %d bytes", quote(s), MaxEntryLen)
	case !utf8.ValidString(s):
		return fmt.Sprintf("%s is not valid UTF-8", quote(s))
	}
	return ""
}

// For returns the rules on tool's arguments, nil when there are none.
func (a Args) For(tool string) ToolArgs {
	if a == nil {
		return nil
	}
	return a[tool]
}

// Check reports whether v, the value of the argument name, meets r: nil
// when it does, else a *FieldError (Field "args") whose Reason names the
// argument and the rule, public-safe (it quotes configuration, never the
// value). For a rule with Hosts, host is the network target v names
// (lowercase; an IP address in canonical form, ip true), for the caller's
// check against the token's hosts constraint.
//
// Network targets: a value with "://" is a URL, else it must be a bare
// hostname or IP address (and URL must be false). Refused: a URL that does
// not parse, is not hierarchical ("https:host"), has a scheme not allowed,
// userinfo ('@' anywhere in the authority), '%' or '\' anywhere in the
// authority, an empty host, a port not allowed; a host with non-ASCII
// characters (write IDNs as A-labels), an "xn--" label that is not the
// canonical A-label of a valid U-label, a trailing '.', an empty label, a
// character outside letters, digits, '-' and '_'; an address whose last
// label is numeric or hex ("0x7f.1", "2130706433": URL parsers read these
// as IPv4) unless it is a dotted-quad IPv4 address in canonical form; an
// IPv6 zone. IP addresses match only entries that name them exactly.
func (r *ArgRule) Check(name string, v ArgValue) (host string, ip bool, fe *FieldError) {
	deny := func(format string, args ...any) (string, bool, *FieldError) {
		return "", false, argsError("argument %s %s", quote(name), fmt.Sprintf(format, args...))
	}
	if v.Type == ArgAbsent || v.Type == ArgNull {
		if r.Optional {
			return "", false, nil
		}
		return deny("is missing")
	}
	if r.Range != nil {
		if v.Type != ArgNumber {
			return deny("must be a number")
		}
		n, err := strconv.ParseFloat(v.Text, 64)
		if err != nil || math.IsNaN(n) || n < float64(r.Range.Min) || n > float64(r.Range.Max) {
			return deny("is outside %d..%d", r.Range.Min, r.Range.Max)
		}
		return "", false, nil
	}
	if v.Type != ArgString {
		return deny("must be a string")
	}
	s := v.Text
	if r.MaxLen != 0 && int64(utf8.RuneCountInString(s)) > r.MaxLen {
		return deny("is longer than %d characters", r.MaxLen)
	}
	switch {
	case r.Enum != nil:
		if !slices.Contains(r.Enum, s) {
			return deny("is not one of %s", listText(r.Enum))
		}
	case r.Paths != nil:
		clean, why := cleanArgPath(s)
		if why != "" {
			return deny("%s", why)
		}
		if !slices.ContainsFunc(r.Paths, func(p string) bool { return argPathMatch(p, clean) }) {
			return deny("is outside %s", listText(r.Paths))
		}
	case r.Hosts != nil:
		h, isIP, why := r.target(s)
		if why != "" {
			return deny("%s", why)
		}
		if !argHostAllowed(r.Hosts, h, isIP) {
			return deny("names a host outside %s", listText(r.Hosts))
		}
		return h, isIP, nil
	}
	return "", false, nil
}

// listText joins configuration entries for a public reason, cut after a
// few.
func listText(l []string) string {
	const shown = 4
	if len(l) <= shown {
		return strings.Join(l, ", ")
	}
	return strings.Join(l[:shown], ", ") + fmt.Sprintf(" and %d more", len(l)-shown)
}

// cleanArgPath checks a path argument and returns it with "." segments and
// repeated '/' dropped; why says what is wrong otherwise.
func cleanArgPath(s string) (clean, why string) {
	if s == "" || s[0] != '/' {
		return "", "is not an absolute path"
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c == 0x7f:
			return "", "contains a control character"
		case c == '\\':
			return "", "contains a backslash"
		case c == '%':
			return "", "contains '%' (encoded forms are refused)"
		}
	}
	var b strings.Builder
	b.Grow(len(s))
	for rest := s[1:]; ; {
		i := strings.IndexByte(rest, '/')
		seg := rest
		if i >= 0 {
			seg = rest[:i]
		}
		switch seg {
		case "..":
			return "", "has a '..' segment"
		case "", ".":
		default:
			b.WriteByte('/')
			b.WriteString(seg)
		}
		if i < 0 {
			break
		}
		rest = rest[i+1:]
	}
	if b.Len() == 0 || s[len(s)-1] == '/' || strings.HasSuffix(s, "/.") {
		b.WriteByte('/')
	}
	return b.String(), ""
}

// argPathMatch is PathMatch without case folding: a path argument names a
// file, and on a case-sensitive file system /REPO is not /repo.
func argPathMatch(pattern, path string) bool {
	if prefix, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(path, prefix)
	}
	return pattern == path
}

// target reads the network target a host-rule value names.
func (r *ArgRule) target(s string) (host string, ip bool, why string) {
	_, rest, isURL := strings.Cut(s, "://")
	if !isURL {
		if r.URL {
			return "", false, "is not an absolute URL"
		}
		// A bare target is a name or an address, nothing more: no port,
		// path or userinfo a tool might read its own way.
		if strings.ContainsAny(s, "/?#@[]") {
			return "", false, "is not a host name or address"
		}
		return hostOf(s)
	}
	if strings.ContainsAny(s, "\\") {
		return "", false, "contains a backslash"
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= 0x20 || c == 0x7f {
			return "", false, "contains a space or control character"
		}
	}
	auth := rest
	if i := strings.IndexAny(auth, "/?#"); i >= 0 {
		auth = auth[:i]
	}
	switch {
	case strings.IndexByte(auth, '@') >= 0:
		return "", false, "carries userinfo ('@')"
	case strings.IndexByte(auth, '%') >= 0:
		return "", false, "has '%' in its host"
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", false, "is not a valid URL"
	}
	schemes := r.Schemes
	if schemes == nil {
		schemes = defaultSchemes
	}
	if !slices.Contains(schemes, u.Scheme) {
		return "", false, "has a scheme other than " + strings.Join(schemes, ", ")
	}
	switch {
	case u.Opaque != "":
		return "", false, "is not an absolute URL"
	case u.User != nil:
		return "", false, "carries userinfo ('@')"
	}
	if p := u.Port(); p != "" || strings.HasSuffix(u.Host, ":") {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return "", false, "has an invalid port"
		}
		if n != defaultPort(u.Scheme) && !slices.Contains(r.Ports, n) {
			return "", false, fmt.Sprintf("has port %d, not allowed", n)
		}
	}
	h := u.Hostname()
	if strings.HasPrefix(u.Host, "[") {
		a, err := netip.ParseAddr(h)
		if err != nil || !a.Is6() || a.Zone() != "" {
			return "", false, "has an invalid IPv6 address"
		}
		return a.String(), true, ""
	}
	return hostOf(h)
}

func defaultPort(scheme string) int {
	switch scheme {
	case "http", "ws":
		return 80
	case "https", "wss":
		return 443
	case "ftp":
		return 21
	}
	return -1
}

// hostOf checks a host name or IP address (no brackets, no port) and
// returns its canonical form.
func hostOf(h string) (host string, ip bool, why string) {
	switch {
	case h == "":
		return "", false, "has no host"
	case len(h) > MaxHostLen:
		return "", false, "has a host longer than 253 bytes"
	case strings.IndexByte(h, ':') >= 0:
		a, err := netip.ParseAddr(h)
		if err != nil || !a.Is6() || a.Zone() != "" {
			return "", false, "is not a host name or address"
		}
		return a.String(), true, ""
	case h[len(h)-1] == '.':
		return "", false, "has a host ending in '.'"
	}
	lower := make([]byte, len(h))
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case c >= utf8.RuneSelf:
			return "", false, "has a non-ASCII host (write internationalized names as xn-- A-labels)"
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		default:
			return "", false, "has a character not allowed in a host name"
		}
		lower[i] = c
	}
	host = string(lower)
	labels := strings.Split(host, ".")
	for _, l := range labels {
		switch {
		case l == "":
			return "", false, "has an empty label in its host"
		case len(l) > MaxLabelLen:
			return "", false, "has a host label longer than 63 bytes"
		case strings.HasPrefix(l, "xn--"):
			// An A-label must be the canonical encoding of a valid
			// U-label (RFC 5891 §5.4), so one name has one spelling.
			u, err := idna.Registration.ToUnicode(l)
			if err != nil {
				return "", false, "has an invalid xn-- label"
			}
			if back, err := idna.Registration.ToASCII(u); err != nil || back != l {
				return "", false, "has an invalid xn-- label"
			}
		}
	}
	// WHATWG URL host parsing: a name whose last label is a number (decimal,
	// or 0x hex) is an IPv4 address in one of its many spellings.
	if last := labels[len(labels)-1]; numericLabel(last) {
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is4() || a.String() != host {
			return "", false, "is an IP address in a non-canonical form"
		}
		return host, true, ""
	}
	return host, false, ""
}

func numericLabel(l string) bool {
	if strings.HasPrefix(l, "0x") {
		return true
	}
	for i := 0; i < len(l); i++ {
		if l[i] < '0' || l[i] > '9' {
			return false
		}
	}
	return l != ""
}

// argHostAllowed matches a canonical target against host entries: an IP
// address only an entry equal to it, a name HostMatch's rules.
func argHostAllowed(list []string, host string, ip bool) bool {
	for _, p := range list {
		if ip {
			if a, err := netip.ParseAddr(p); err == nil && a.String() == host {
				return true
			}
			continue
		}
		if hostMatch(p, host) {
			return true
		}
	}
	return false
}

// AllowsTarget reports whether a network target an argument names (as
// ArgRule.Check returned it) is allowed by the token's hosts constraint,
// under the argument rules' matching: an IP address only when listed
// exactly.
func (c *Constraints) AllowsTarget(host string, ip bool) bool {
	if c == nil || c.Hosts == nil {
		return true
	}
	return argHostAllowed(c.Hosts, host, ip)
}

// PermitsArgs checks the token's argument rules for a call of tool, values
// giving each argument by name: every rule of the tool (in name order, so
// the answer is stable), and for every rule with hosts the target against
// the hosts constraint.
func (c *Constraints) PermitsArgs(tool string, values func(name string) ArgValue) *FieldError {
	if c == nil {
		return nil
	}
	ta := c.Args.For(tool)
	if ta == nil {
		return nil
	}
	names := make([]string, 0, len(ta))
	for n := range ta {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		r := ta[n]
		host, ip, fe := r.Check(n, values(n))
		if fe != nil {
			return fe
		}
		if host != "" && !c.AllowsTarget(host, ip) {
			return argsError("argument %s names a host outside the token's hosts", quote(n))
		}
	}
	return nil
}

// within reports where a is wider than parent; both are taken as written
// after inheritance (a tool or argument parent has no rule for is free).
func (a Args) within(parent Args) *FieldError {
	for tool, ta := range a {
		pa, ok := parent[tool]
		if !ok {
			continue
		}
		for name, r := range ta {
			pr, ok := pa[name]
			if !ok {
				continue
			}
			if reason := r.within(&pr); reason != "" {
				return argsError("tool %s, argument %s: %s", quote(tool), quote(name), reason)
			}
		}
	}
	return nil
}

// within reports, in words, how r is wider than parent; "" when every value
// r allows, parent allows.
func (r *ArgRule) within(p *ArgRule) string {
	switch {
	case p.Paths != nil:
		if r.Paths == nil {
			return "the parent's rule is paths"
		}
		for _, c := range r.Paths {
			if !slices.ContainsFunc(p.Paths, func(pp string) bool { return pathWithin(pp, c) }) {
				return quote(c) + " is not within the parent's paths"
			}
		}
	case p.Hosts != nil:
		if r.Hosts == nil {
			return "the parent's rule is hosts"
		}
		for _, h := range r.Hosts {
			if !slices.ContainsFunc(p.Hosts, func(ph string) bool { return argHostWithin(ph, h) }) {
				return quote(h) + " is not within the parent's hosts"
			}
		}
		if p.URL && !r.URL {
			return "the parent allows only URLs"
		}
		ps, cs := p.Schemes, r.Schemes
		if ps == nil {
			ps = defaultSchemes
		}
		if cs == nil {
			cs = defaultSchemes
		}
		for _, s := range cs {
			if !slices.Contains(ps, s) {
				return "scheme " + quote(s) + " is not allowed by the parent"
			}
		}
		for _, n := range r.Ports {
			if !slices.Contains(p.Ports, n) {
				return fmt.Sprintf("port %d is not allowed by the parent", n)
			}
		}
	case p.Enum != nil:
		if r.Enum == nil {
			return "the parent's rule is enum"
		}
		for _, e := range r.Enum {
			if !slices.Contains(p.Enum, e) {
				return quote(e) + " is not one of the parent's values"
			}
		}
	case p.Range != nil:
		if r.Range == nil || r.Range.Min < p.Range.Min || r.Range.Max > p.Range.Max {
			return fmt.Sprintf("the range is not inside the parent's %d..%d", p.Range.Min, p.Range.Max)
		}
	}
	if p.MaxLen != 0 && (r.MaxLen == 0 || r.MaxLen > p.MaxLen) {
		return fmt.Sprintf("max_len exceeds the parent's %d", p.MaxLen)
	}
	if !p.Optional && r.Optional {
		return "the parent requires the argument"
	}
	return ""
}

// argHostWithin is hostWithin under the argument matching rules: an IP
// address entry is within only the same entry.
func argHostWithin(p, h string) bool {
	if p == h {
		return true
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return false
	}
	return hostWithin(p, h)
}

// inheritArgs fills what req leaves absent from parent: each tool and each
// argument parent has and req does not, and within an argument each facet
// req's rule leaves absent. The result shares no map or slice with the
// inputs.
func inheritArgs(req, parent Args) Args {
	if req == nil && parent == nil {
		return nil
	}
	out := make(Args, max(len(req), len(parent)))
	for tool, pa := range parent {
		ta := make(ToolArgs, len(pa))
		for n, r := range pa {
			ta[n] = r.clone()
		}
		out[tool] = ta
	}
	for tool, ra := range req {
		ta := out[tool]
		if ta == nil {
			ta = make(ToolArgs, len(ra))
			out[tool] = ta
		}
		for n, r := range ra {
			pr, ok := ta[n]
			if !ok {
				ta[n] = r.clone()
				continue
			}
			ta[n] = r.merge(&pr)
		}
	}
	return out
}

func (r ArgRule) clone() ArgRule {
	r.Paths, r.Hosts, r.Schemes, r.Enum = slices.Clone(r.Paths), slices.Clone(r.Hosts), slices.Clone(r.Schemes), slices.Clone(r.Enum)
	r.Ports = slices.Clone(r.Ports)
	if r.Range != nil {
		g := *r.Range
		r.Range = &g
	}
	return r
}

// merge is r with its absent facets taken from p (copies).
func (r ArgRule) merge(p *ArgRule) ArgRule {
	c, pc := r.clone(), p.clone()
	if c.Paths == nil {
		c.Paths = pc.Paths
	}
	if c.Hosts == nil {
		c.Hosts = pc.Hosts
	}
	c.URL = c.URL || pc.URL
	if c.Schemes == nil {
		c.Schemes = pc.Schemes
	}
	if c.Ports == nil {
		c.Ports = pc.Ports
	}
	if c.Enum == nil {
		c.Enum = pc.Enum
	}
	if c.Range == nil {
		c.Range = pc.Range
	}
	if c.MaxLen == 0 {
		c.MaxLen = pc.MaxLen
	}
	c.Optional = c.Optional || pc.Optional
	return c
}

// Clone returns a deep copy of a (nil for nil).
func (a Args) Clone() Args {
	if a == nil {
		return nil
	}
	return inheritArgs(nil, a)
}

// Inherit returns a with what it leaves absent filled from parent, as
// Attenuate fills a request's args: each tool and argument of parent a
// has no rule for, and each facet a's rule for an argument leaves absent.
// The result shares nothing with either.
func (a Args) Inherit(parent Args) Args { return inheritArgs(a, parent) }
