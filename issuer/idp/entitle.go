package idp

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"

	"github.com/kavachgate/kavach/policy"
)

// Rule kinds: what of an Identity a rule matches.
const (
	RuleGroup = "group" // Value is in Identity.Groups
	RuleRole  = "role"  // Value is in Identity.Roles
	RuleClaim = "claim" // the claim Claim is Value, or is an array holding Value
)

// Rule maps an IdP group, role or claim value to scopes on one resource:
//
//	entitle group <group> <resource> <scope>…
//	entitle role <role> <resource> <scope>…
//	entitle claim <claim> <value> <resource> <scope>…
//
// Scopes are policy scopes (patterns allowed, as in admin-set
// entitlements); the resource is an absolute http(s) URL without query or
// fragment, as an entitlement key (RFC 8707 §2).
type Rule struct {
	// Kind is RuleGroup, RuleRole or RuleClaim.
	Kind string `json:"kind"`
	// Claim is the claim's name (RuleClaim only); a dotted path reaches
	// into nested objects when no claim has the whole name.
	Claim string `json:"claim,omitempty"`
	// Value is the group, the role, or the claim's value. Matching is
	// exact and case-sensitive, as IdPs compare them.
	Value string `json:"value"`
	// Resource is the entitlement key the scopes are granted on.
	Resource string `json:"resource"`
	// Scopes are granted on Resource to whoever matches.
	Scopes []string `json:"scopes"`
	// Provider limits the rule to identities from that IdP (config name).
	// Default: every configured IdP.
	Provider string `json:"provider,omitempty"`
}

// ParseRule reads the arguments of an `entitle` line (after the word
// entitle) and validates the rule.
func ParseRule(args []string) (Rule, error) {
	if len(args) == 0 {
		return Rule{}, errors.New("entitle: want group|role|claim …")
	}
	var r Rule
	r.Kind = args[0]
	rest := args[1:]
	switch r.Kind {
	case RuleGroup, RuleRole:
		if len(rest) < 3 {
			return Rule{}, fmt.Errorf("entitle %s: want <%s> <resource> <scope>…", r.Kind, r.Kind)
		}
		r.Value, r.Resource, r.Scopes = rest[0], rest[1], slices.Clone(rest[2:])
	case RuleClaim:
		if len(rest) < 4 {
			return Rule{}, errors.New("entitle claim: want <claim> <value> <resource> <scope>…")
		}
		r.Claim, r.Value, r.Resource, r.Scopes = rest[0], rest[1], rest[2], slices.Clone(rest[3:])
	default:
		return Rule{}, fmt.Errorf("entitle: unknown kind %q, want group, role or claim", r.Kind)
	}
	return r, r.Validate()
}

// String is the rule as an `entitle` line's arguments (without provider).
func (r Rule) String() string {
	parts := []string{r.Kind}
	if r.Kind == RuleClaim {
		parts = append(parts, r.Claim)
	}
	parts = append(parts, r.Value, r.Resource)
	return strings.Join(append(parts, r.Scopes...), " ")
}

// Validate reports the first problem of the rule.
func (r *Rule) Validate() error {
	switch r.Kind {
	case RuleGroup, RuleRole:
		if r.Claim != "" {
			return fmt.Errorf("entitle %s: claim is only for claim rules", r.Kind)
		}
	case RuleClaim:
		if err := checkName("claim name", r.Claim); err != nil {
			return err
		}
	default:
		return fmt.Errorf("entitle: unknown kind %q, want group, role or claim", r.Kind)
	}
	if err := checkName(r.Kind+" value", r.Value); err != nil {
		return err
	}
	if !ValidResource(r.Resource) {
		return fmt.Errorf("entitle %s %s: resource must be an absolute http or https URL without query, fragment or userinfo", r.Kind, r.Value)
	}
	if len(r.Scopes) == 0 {
		return fmt.Errorf("entitle %s %s: at least one scope", r.Kind, r.Value)
	}
	if len(r.Scopes) > MaxRuleScopes {
		return fmt.Errorf("entitle %s %s: at most %d scopes", r.Kind, r.Value, MaxRuleScopes)
	}
	for i, s := range r.Scopes {
		if err := policy.ValidScope(s); err != nil {
			return fmt.Errorf("entitle %s %s: %w", r.Kind, r.Value, err)
		}
		if slices.Contains(r.Scopes[:i], s) {
			return fmt.Errorf("entitle %s %s: scope %s listed twice", r.Kind, r.Value, s)
		}
	}
	if r.Provider != "" && !providerName.MatchString(r.Provider) {
		return fmt.Errorf("entitle %s %s: bad provider name", r.Kind, r.Value)
	}
	return nil
}

// checkName accepts a group, role, claim name or value: non-empty,
// printable, without spaces (a Caddyfile token), at most MaxClaimLen.
func checkName(what, s string) error {
	if s == "" || len(s) > MaxClaimLen {
		return fmt.Errorf("entitle: %s must be 1 to %d bytes", what, MaxClaimLen)
	}
	for _, c := range []byte(s) {
		if c <= ' ' || c == 0x7f {
			return fmt.Errorf("entitle: %s has a space or control character", what)
		}
	}
	return nil
}

// ValidResource checks an entitlement key or resource indicator the way
// the issuer does (RFC 8707 §2): an absolute http or https URL with a
// host, without query, fragment or userinfo, printable ASCII.
func ValidResource(raw string) bool {
	if raw == "" || len(raw) > 2048 {
		return false
	}
	for i := 0; i < len(raw); i++ {
		if b := raw[i]; b <= ' ' || b >= 0x7f || b == '"' || b == '\\' {
			return false
		}
	}
	u, err := url.Parse(raw)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" &&
		u.RawQuery == "" && !u.ForceQuery && u.Fragment == "" && !strings.Contains(raw, "#") && u.User == nil
}

// Rules is the ordered list of a config's entitle lines.
type Rules []Rule

// Validate validates every rule and refuses two rules with the same
// matcher and resource (write one line with all the scopes).
func (rs Rules) Validate() error {
	type key struct{ provider, kind, claim, value, resource string }
	seen := map[key]bool{}
	for i := range rs {
		if err := rs[i].Validate(); err != nil {
			return err
		}
		k := key{rs[i].Provider, rs[i].Kind, rs[i].Claim, rs[i].Value, rs[i].Resource}
		if seen[k] {
			return fmt.Errorf("entitle %s: the same %s and resource twice; list all scopes on one line", rs[i], rs[i].Kind)
		}
		seen[k] = true
	}
	return nil
}

// Matches reports whether the rule applies to id.
func (r *Rule) Matches(id *Identity) bool {
	if r.Provider != "" && r.Provider != id.Provider {
		return false
	}
	switch r.Kind {
	case RuleGroup:
		return slices.Contains(id.Groups, r.Value)
	case RuleRole:
		return slices.Contains(id.Roles, r.Value)
	case RuleClaim:
		return slices.Contains(claimValues(claimAt(id.Claims, r.Claim)), r.Value)
	}
	return false
}

// Entitlements are resource → scope patterns, the shape of
// store.User.Entitlements.
type Entitlements = map[string][]string

// Evaluate returns the union of the scopes of every rule that matches id,
// per resource, each list sorted and without duplicates; an identity no
// rule matches gets an empty, non-nil map. The result depends only on the
// rules' content, not their order.
func (rs Rules) Evaluate(id *Identity) Entitlements {
	out := Entitlements{}
	for i := range rs {
		if rs[i].Matches(id) {
			out[rs[i].Resource] = append(out[rs[i].Resource], rs[i].Scopes...)
		}
	}
	for res, scopes := range out {
		slices.Sort(scopes)
		out[res] = slices.Compact(scopes)
	}
	return out
}

// Shrunk returns what old grants that new does not cover, per resource
// (policy.Uncovered: a pattern in new covers the scopes it matches), or
// nil when new covers all of old. A resource missing from new loses all
// its scopes.
func Shrunk(old, new Entitlements) Entitlements {
	var lost Entitlements
	for _, res := range slices.Sorted(maps.Keys(old)) {
		if gone := policy.Uncovered(new[res], old[res]); len(gone) > 0 {
			if lost == nil {
				lost = Entitlements{}
			}
			lost[res] = gone
		}
	}
	return lost
}

// Narrowed reports whether new takes away anything old granted: then the
// issuer cuts the user's tokens and agents issued before (a cutoff on the
// user), and they re-consent within the new entitlements.
func Narrowed(old, new Entitlements) bool { return Shrunk(old, new) != nil }
