package policy

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// now is the clock Permits reads when an Operation carries no time; tests
// replace it.
var now = time.Now

// Rights is what a token (or a grant) lets its holder do.
type Rights struct {
	Scopes      []string    // scope patterns; nil: none
	Audience    []string    // RFC 8707 resource URLs, compared exactly; nil: none
	Constraints Constraints // absent fields constrain nothing
	Expiry      time.Time   // zero: no expiry of its own (tokens always carry exp)
	Depth       int         // number of delegation hops so far (= len(kvc.chain))
}

// Request is what a delegation or self-attenuation asks for. Every field
// left at its zero value takes the parent's.
type Request struct {
	Scopes      []string    // nil: the parent's
	Audience    []string    // nil: the parent's
	Constraints Constraints // absent fields inherit the parent's
	Expiry      time.Time   // zero: the parent's
	Delegate    bool        // true: a new hop (Depth+1, checked against MaxDepth); false: self-attenuation (same depth, only narrowing)
	MaxDepth    int         // the issuer's max_depth; 0 → DefaultMaxDepth; values > MaxDepth are clamped to MaxDepth
}

// FieldError names the field of rights or constraints that is invalid,
// would widen, or denies an operation.
type FieldError struct {
	Field  string // "scope", "aud", "hosts", "cidrs", "methods", "paths", "max_body", "audit", "args", "exp", "depth"
	Reason string // short, human, safe to show a client: echoed input is quoted
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// Attenuate derives a child's rights from parent's. Every field of the
// result is within parent's (DESIGN.md §3): scopes covered, audiences a
// subset, each constraint within (see Constraints.Within), audit "required"
// kept, expiry not later, and for a delegation one more hop that must not
// exceed the max depth. Unset request fields inherit the parent's.
//
// Checks run in a fixed order (scope, aud, constraint syntax, constraint
// narrowing, exp, depth) and the error is a *FieldError for the first
// failure. Neither input is modified, and the result shares no slice with
// them.
func Attenuate(parent Rights, req Request) (Rights, error) {
	child, fe := attenuate(&parent, &req)
	if fe != nil {
		return Rights{}, fe
	}
	return child, nil
}

func attenuate(parent *Rights, req *Request) (Rights, *FieldError) {
	var child Rights

	if req.Scopes == nil {
		child.Scopes = slices.Clone(parent.Scopes)
	} else {
		scopes, fe := requestScopes(req.Scopes)
		if fe != nil {
			return Rights{}, fe
		}
		if un := Uncovered(parent.Scopes, scopes); un != nil {
			return Rights{}, scopeError("%s not within the parent's scopes", quoteList(un))
		}
		child.Scopes = scopes
	}

	if req.Audience == nil {
		child.Audience = slices.Clone(parent.Audience)
	} else {
		if len(req.Audience) == 0 {
			return Rights{}, &FieldError{Field: "aud", Reason: "empty audience list: nothing to delegate"}
		}
		aud := make([]string, 0, min(len(req.Audience), len(parent.Audience)))
		for _, a := range req.Audience {
			// RFC 8707 §2: resource indicators are absolute URIs; since
			// each must equal one of the parent's, the parent's syntax
			// carries over and exact comparison is all that is needed.
			if !slices.Contains(parent.Audience, a) {
				return Rights{}, &FieldError{Field: "aud", Reason: quote(a) + " is not one of the parent's audiences"}
			}
			if !slices.Contains(aud, a) {
				aud = append(aud, a)
			}
		}
		child.Audience = aud
	}

	if fe := req.Constraints.validate(); fe != nil {
		return Rights{}, fe
	}
	child.Constraints = inherit(&req.Constraints, &parent.Constraints)
	if req.Constraints.Args != nil {
		// Facets merged from the parent may not combine with the
		// request's (paths on one side, enum on the other).
		if fe := child.Constraints.Args.validate(); fe != nil {
			return Rights{}, fe
		}
	}
	if fe := child.Constraints.Within(&parent.Constraints); fe != nil {
		return Rights{}, fe
	}

	child.Expiry = parent.Expiry
	if !req.Expiry.IsZero() {
		if !parent.Expiry.IsZero() && req.Expiry.After(parent.Expiry) {
			return Rights{}, &FieldError{Field: "exp", Reason: fmt.Sprintf("%s is after the parent's expiry %s",
				req.Expiry.UTC().Format(time.RFC3339), parent.Expiry.UTC().Format(time.RFC3339))}
		}
		child.Expiry = req.Expiry
	}

	maxDepth := req.MaxDepth
	switch {
	case maxDepth < 0:
		return Rights{}, &FieldError{Field: "depth", Reason: fmt.Sprintf("max_depth %d is negative", maxDepth)}
	case maxDepth == 0:
		maxDepth = DefaultMaxDepth
	case maxDepth > MaxDepth:
		maxDepth = MaxDepth
	}
	if parent.Depth < 0 {
		return Rights{}, &FieldError{Field: "depth", Reason: fmt.Sprintf("parent depth %d is negative", parent.Depth)}
	}
	child.Depth = parent.Depth
	if req.Delegate {
		child.Depth++
	}
	// Checked for self-attenuation too: a chain already over a lowered
	// max_depth gets no new tokens.
	if child.Depth > maxDepth {
		return Rights{}, &FieldError{Field: "depth", Reason: fmt.Sprintf("delegation depth %d exceeds max_depth %d", child.Depth, maxDepth)}
	}
	return child, nil
}

// requestScopes validates and de-duplicates a request's scopes into a new
// slice.
func requestScopes(in []string) ([]string, *FieldError) {
	if len(in) == 0 {
		return nil, scopeError("empty scope list: nothing to delegate")
	}
	out := make([]string, 0, min(len(in), MaxScopes))
	for _, s := range in {
		if fe := validScope(s); fe != nil {
			return nil, fe
		}
		if slices.Contains(out, s) {
			continue
		}
		if len(out) == MaxScopes {
			return nil, scopeError("more than %d scopes", MaxScopes)
		}
		out = append(out, s)
	}
	return out, nil
}

// inherit fills req's absent fields from parent's; every list is a copy.
func inherit(req, parent *Constraints) Constraints {
	c := Constraints{
		Hosts:   own(req.Hosts, parent.Hosts),
		CIDRs:   own(req.CIDRs, parent.CIDRs),
		Methods: own(req.Methods, parent.Methods),
		Paths:   own(req.Paths, parent.Paths),
		MaxBody: req.MaxBody,
		Audit:   req.Audit,
		Args:    inheritArgs(req.Args, parent.Args),
		Rate:    req.Rate,
	}
	if c.Rate == "" {
		c.Rate = parent.Rate
	}
	if c.MaxBody == 0 {
		c.MaxBody = parent.MaxBody
	}
	if c.Audit == "" {
		c.Audit = parent.Audit
	}
	return c
}

// own returns a copy of the request's list, or of the parent's when the
// request's is absent.
func own[S ~[]E, E any](req, parent S) S {
	if req != nil {
		return slices.Clone(req)
	}
	return slices.Clone(parent)
}

// Operation is one request as the gateway sees it.
type Operation struct {
	Scopes   []string   // concrete scopes the operation requires (all needed)
	Resource string     // the route's resource URL (audience)
	Host     string     // host name of the route's resource, without port
	ClientIP netip.Addr // the client address
	Method   string     // HTTP method
	Path     string     // decoded, cleaned request path
	BodySize int64      // bytes; -1 unknown
	At       time.Time  // time of the request; zero: now
	// Tool is the tool of an MCP tools/call ("" for any other request),
	// and Args gives its arguments by name (nil: none), for the args
	// constraint.
	Tool string
	Args func(name string) ArgValue
}

// Permits reports whether r allows op: nil when allowed, else a *FieldError
// naming the field that denies it. Checks run in a fixed order, so the
// answer does not depend on which of several faults is found first: exp,
// aud, hosts, cidrs, methods, paths, max_body, args, scope. Scope comes last
// because a client is told insufficient_scope only when more scope would
// actually help. Expiry is exact (no leeway: the token layer owns leeway).
// Permits does not allocate unless it denies.
func (r *Rights) Permits(op *Operation) *FieldError {
	at := op.At
	if at.IsZero() {
		at = now()
	}
	// RFC 7519 §4.1.4: the current time must be before exp.
	if !r.Expiry.IsZero() && !at.Before(r.Expiry) {
		return &FieldError{Field: "exp", Reason: "expired"}
	}
	// RFC 8707 §2 / RFC 9068 §4: the token must name this resource.
	if op.Resource == "" || !slices.Contains(r.Audience, op.Resource) {
		return &FieldError{Field: "aud", Reason: "not valid for resource " + quote(op.Resource)}
	}
	c := &r.Constraints
	if !c.AllowsHost(op.Host) {
		return &FieldError{Field: "hosts", Reason: "host " + quote(op.Host) + " is not allowed"}
	}
	if !c.AllowsIP(op.ClientIP) {
		return &FieldError{Field: "cidrs", Reason: "client address " + quote(op.ClientIP.String()) + " is not allowed"}
	}
	if !c.AllowsMethod(op.Method) {
		return &FieldError{Field: "methods", Reason: "method " + quote(op.Method) + " is not allowed"}
	}
	if !c.AllowsPath(op.Path) {
		return &FieldError{Field: "paths", Reason: "path " + quote(op.Path) + " is not allowed"}
	}
	if !c.AllowsBody(op.BodySize) {
		return &FieldError{Field: "max_body", Reason: fmt.Sprintf("body of %d bytes exceeds max_body %d", op.BodySize, c.MaxBody)}
	}
	if op.Tool != "" && c.Args != nil {
		args := op.Args
		if args == nil {
			args = noArgs
		}
		if fe := c.PermitsArgs(op.Tool, args); fe != nil {
			return fe
		}
	}
	for _, s := range op.Scopes {
		if !Allows(r.Scopes, s) {
			return &FieldError{Field: "scope", Reason: quote(s) + " is not granted"}
		}
	}
	return nil
}

func noArgs(string) ArgValue { return ArgValue{} }

// quote renders untrusted input for an error message: %q-escaped so it
// cannot forge log lines or markup, and cut so an error never echoes a
// megabyte back.
func quote(s string) string {
	const maxLen = 64
	if len(s) <= maxLen {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:maxLen]) + "..."
}

// quoteList quotes the first few entries of list.
func quoteList(list []string) string {
	const shown = 4
	q := make([]string, 0, shown+1)
	for i, s := range list {
		if i == shown {
			q = append(q, fmt.Sprintf("and %d more", len(list)-shown))
			break
		}
		q = append(q, quote(s))
	}
	return strings.Join(q, ", ")
}

// byteDesc describes a byte for an error message.
func byteDesc(c byte) string {
	if c >= 0x20 && c < 0x7f {
		return strconv.QuoteRune(rune(c))
	}
	return fmt.Sprintf("byte 0x%02x", c)
}
