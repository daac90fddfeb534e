// Package policy holds Kavach's authorization rules: scopes, constraints,
// attenuation (delegation narrowing) and the per-request matcher. It is pure:
// no I/O, no clock except where an Operation carries no time, no Caddy.
//
// # Scopes
//
// A scope is segments joined by ':' ("repository:read",
// "mcp:github:issues"). In a granted scope a '*' segment matches exactly one
// segment, and a pattern matches only scopes with the same number of
// segments, so "mcp:github" does not grant "mcp:github:admin" and "*" never
// means everything. A scope a route requires is concrete (ValidRequiredScope).
//
// # Constraints
//
// Constraints is the kvc.cnst token claim: hosts, client CIDRs, methods,
// paths, a body size limit and whether audit is required. An absent field
// constrains nothing; a present field is never empty, in Go (Validate) and
// in JSON (the UnmarshalJSON methods), so that dropping an empty field can
// never widen a token.
//
// Constraints.Args (kvc.cnst.args) are rules on MCP tool-call arguments,
// per tool and argument (ArgRule): file paths under patterns ('..' is
// always refused), network targets on host allow-lists (a URL parsed once,
// userinfo, IP literals not listed exactly, non-canonical IPv4 spellings
// and IDN tricks refused), enums, numeric ranges, string lengths, and
// whether the argument may be missing (by default it may not). The gateway
// reads the arguments (package mcp) and calls ArgRule.Check or
// Constraints.PermitsArgs; network targets also meet Hosts.
//
// # Attenuation
//
// Attenuate derives a child's Rights from a parent's: every field may only
// narrow, an absent request field inherits the parent's, and a delegation
// adds a hop that must stay within the issuer's max depth. The invariant,
// fuzzed by FuzzAttenuate, is that a child is never permitted an Operation
// its parent is not.
//
// # Use
//
// The gateway checks each request with Rights.Permits, which does not
// allocate when it allows:
//
//	rights := policy.Rights{
//		Scopes:      []string{"mcp:review", "repository:*"},
//		Audience:    []string{"https://gw.example/mcp"},
//		Constraints: policy.Constraints{Methods: policy.StringList{"POST"}},
//		Expiry:      exp,
//	}
//	op := policy.Operation{
//		Scopes:   []string{"mcp:review", "repository:read"},
//		Resource: "https://gw.example/mcp",
//		Host:     "gw.example",
//		Method:   "POST",
//		Path:     "/mcp",
//		BodySize: -1,
//	}
//	if fe := rights.Permits(&op); fe != nil {
//		// deny; fe.Field says which rule ("scope", "methods", …)
//	}
//
// The issuer narrows rights for a child agent with Attenuate:
//
//	child, err := policy.Attenuate(rights, policy.Request{
//		Scopes:   []string{"repository:read"},
//		Expiry:   time.Now().Add(3 * time.Minute),
//		Delegate: true,
//	})
//	// err is a *FieldError naming the first field that would widen.
package policy
