package token

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/kavachgate/kavach/policy"
)

// Claims is the payload of a Kavach access token: the RFC 9068 JWT profile
// plus the Kavach claims under "kvc".
//
// Encoding: encoding/json in field order (iss, sub, act, client_id, aud,
// scope, jti, iat, nbf, exp, kvc), no insignificant whitespace; aud is always
// an array; absent optional fields are omitted. A change to this order or to
// any tag changes every token minted and shows in testdata/*.golden.
//
// Decoding accepts aud as a string or an array (RFC 7519 §4.1.3) and keeps
// cnf only to reject it: a sender-constrained token must never be accepted
// as a bearer token until DPoP support exists.
//
// A field added here (or to Actor, Kavach, policy.Constraints or Token)
// must also be copied by Token.Compact, or cached tokens lose it;
// TestCompactCarriesEveryField fills every field by reflection and fails
// until it is.
type Claims struct {
	Issuer    string   `json:"iss"`
	Subject   string   `json:"sub"`
	Actor     *Actor   `json:"act,omitempty"`
	ClientID  string   `json:"client_id,omitempty"`
	Audience  Audience `json:"aud"`
	Scope     string   `json:"scope,omitempty"`
	ID        string   `json:"jti"`
	IssuedAt  int64    `json:"iat"`
	NotBefore int64    `json:"nbf,omitempty"`
	Expiry    int64    `json:"exp"`
	Kavach    *Kavach  `json:"kvc,omitempty"`

	// Confirmation is never minted; a verified token carrying it is rejected.
	Confirmation json.RawMessage `json:"cnf,omitempty"`
}

// Actor is the RFC 8693 §4.1 "act" claim: the current actor outermost, each
// prior actor nested under the one that followed it.
type Actor struct {
	Subject string `json:"sub"`
	Actor   *Actor `json:"act,omitempty"`
}

// Kavach holds the Kavach claims, honoured only from Kavach issuers.
//
// Invariant: Chain[i] is the grant (dlg_…) that gave Agents[i] its rights;
// len(Chain) == len(Agents), between 1 and MaxChainLen; ids are unique within
// each list. The last agent is the current actor.
type Kavach struct {
	Version     int                 `json:"v"`
	Chain       []string            `json:"chain"`
	Agents      []string            `json:"agents"`
	Constraints *policy.Constraints `json:"cnst,omitempty"`
}

// Audience is the aud claim. It decodes from a single string or an array and
// always encodes as an array.
type Audience []string

// UnmarshalJSON accepts the two forms of RFC 7519 §4.1.3.
func (a *Audience) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*a = Audience{s}
		return nil
	}
	var l []string
	if err := json.Unmarshal(b, &l); err != nil {
		return err
	}
	*a = l
	return nil
}

// Contains reports whether resource is one of the audiences, compared exactly
// (RFC 8707 resource indicators are URLs the issuer wrote; no normalisation).
func (a Audience) Contains(resource string) bool {
	return slices.Contains(a, resource)
}

// Agents returns the delegation chain's agents, root first, or nil for a
// token without Kavach claims.
func (c *Claims) Agents() []string {
	if c.Kavach == nil {
		return nil
	}
	return c.Kavach.Agents
}

// CurrentActor is act.sub: the agent making this call, or "".
func (c *Claims) CurrentActor() string {
	if c.Actor == nil {
		return ""
	}
	return c.Actor.Subject
}

// Constraints returns the kvc.cnst claim, or nil when there is none.
func (c *Claims) Constraints() *policy.Constraints {
	if c.Kavach == nil {
		return nil
	}
	return c.Kavach.Constraints
}

// ExpiresAt is exp as a time.
func (c *Claims) ExpiresAt() time.Time { return time.Unix(c.Expiry, 0) }

// IssuedAtTime is iat as a time.
func (c *Claims) IssuedAtTime() time.Time { return time.Unix(c.IssuedAt, 0) }

// ActorFor builds the act claim for a chain of agents, root first: the last
// agent outermost (RFC 8693 §4.1).
func ActorFor(agents []string) *Actor {
	var act *Actor
	for _, a := range agents {
		act = &Actor{Subject: a, Actor: act}
	}
	return act
}

// errClaim builds a claims error; it is wrapped by the caller into ErrClaims.
func errClaim(format string, args ...any) error { return fmt.Errorf(format, args...) }

// validate checks everything about the claims that does not depend on the
// clock: required members, identifier bounds, and, for Kavach issuers, the
// kvc invariants and the act chain. kavach is false for external issuers,
// whose kvc is ignored and whose act is informational.
func (c *Claims) validate(kavach bool) error {
	if c.Issuer == "" {
		return errClaim("iss is missing")
	}
	if err := validID("sub", c.Subject); err != nil {
		return err
	}
	if err := validID("jti", c.ID); err != nil {
		return err
	}
	if len(c.Audience) == 0 {
		return errClaim("aud is missing")
	}
	if len(c.Audience) > MaxAudience {
		return errClaim("aud has more than %d entries", MaxAudience)
	}
	for _, a := range c.Audience {
		if a == "" || len(a) > MaxIDLen {
			return errClaim("aud entry empty or too long")
		}
	}
	if c.IssuedAt <= 0 {
		return errClaim("iat is missing")
	}
	if c.Expiry <= c.IssuedAt {
		return errClaim("exp is not after iat")
	}
	if c.NotBefore < 0 {
		return errClaim("nbf is negative")
	}
	if c.Confirmation != nil {
		return ErrConfirmation
	}
	if !kavach {
		return nil
	}
	if err := validID("client_id", c.ClientID); err != nil {
		return err
	}
	return c.validateKavach()
}

func (c *Claims) validateKavach() error {
	k := c.Kavach
	if k == nil {
		return errClaim("kvc is missing")
	}
	if k.Version != KavachVersion {
		return errClaim("kvc.v %d is not supported", k.Version)
	}
	n := len(k.Agents)
	if n == 0 {
		return errClaim("kvc.agents is empty")
	}
	if len(k.Chain) != n {
		return errClaim("kvc.chain has %d entries, kvc.agents %d", len(k.Chain), n)
	}
	if n > MaxChainLen {
		return errClaim("delegation chain longer than %d", MaxChainLen)
	}
	if err := validIDList("kvc.chain", k.Chain); err != nil {
		return err
	}
	if err := validIDList("kvc.agents", k.Agents); err != nil {
		return err
	}
	if k.Constraints != nil {
		if err := k.Constraints.Validate(); err != nil {
			return errClaim("kvc.cnst: %v", err)
		}
	}
	// RFC 8693 §4.1: the current actor takes part in access control, so the
	// act chain must name exactly the agents, current actor outermost.
	act := c.Actor
	for i := n - 1; i >= 0; i-- {
		if act == nil {
			return errClaim("act does not name every agent of the chain")
		}
		if act.Subject != k.Agents[i] {
			if i == n-1 {
				return errClaim("act.sub is not the last agent of the chain")
			}
			return errClaim("act does not match kvc.agents")
		}
		act = act.Actor
	}
	if act != nil {
		return errClaim("act names more actors than kvc.agents")
	}
	return nil
}

func validIDList(name string, ids []string) error {
	for i, id := range ids {
		if err := validID(name, id); err != nil {
			return err
		}
		if slices.Contains(ids[:i], id) {
			return errClaim("%s repeats %q", name, id)
		}
	}
	return nil
}

// validID accepts printable ASCII without space, quote, backslash or comma:
// ids travel in headers (Kavach-Chain is comma-separated) and logs.
func validID(name, id string) error {
	if id == "" {
		return errClaim("%s is missing", name)
	}
	if len(id) > MaxIDLen {
		return errClaim("%s is longer than %d bytes", name, MaxIDLen)
	}
	for i := 0; i < len(id); i++ {
		b := id[i]
		if b <= ' ' || b >= 0x7f || b == '"' || b == '\\' || b == ',' {
			return errClaim("%s has a character that is not allowed", name)
		}
	}
	return nil
}
