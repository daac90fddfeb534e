package idp

import "time"

// Every limit and default of the package, in one place.
const (
	// DefaultPendingLifetime bounds a sign-in round trip through the IdP:
	// the sealed Pending record is refused after it.
	DefaultPendingLifetime = 10 * time.Minute

	// MaxSealedLen bounds a sealed Pending record (a cookie value).
	MaxSealedLen = 2048

	// DefaultMaxJAGLifetime bounds exp − iat of an ID-JAG: the replay
	// store then holds each jti only briefly, and a leaked assertion is
	// useful only for minutes.
	DefaultMaxJAGLifetime = 5 * time.Minute

	// Leeway is the clock skew tolerated on exp, nbf, iat and auth_time
	// (the same as token.Leeway).
	Leeway = 30 * time.Second

	// MaxAssertionLen bounds an ID-JAG (and an ID token) before parsing.
	MaxAssertionLen = 16 << 10

	// MaxJWKSBytes bounds a JWK set fetched from a trusted IdP.
	MaxJWKSBytes = 1 << 20

	// DefaultJWKSMinRefetch is the shortest interval between two fetches
	// of one trusted IdP's JWK set: an assertion with an unknown kid
	// triggers a refetch at most this often, so garbage kids cannot turn
	// the issuer into a request amplifier.
	DefaultJWKSMinRefetch = 10 * time.Second

	// JWKSMaxAge is how long a fetched JWK set is used before it is
	// fetched again even without an unknown kid (keys that were removed
	// stop verifying).
	JWKSMaxAge = time.Hour

	// DiscoveryRetry is how long a failed discovery is remembered: the
	// login page answers "the IdP is down" from memory meanwhile.
	DiscoveryRetry = 5 * time.Second

	// DiscoveryMaxAge is how long a discovery document is used before it
	// is read again (a failed re-read keeps the old one).
	DiscoveryMaxAge = time.Hour

	// HTTPTimeout bounds each request to an IdP (discovery, JWKS, token,
	// userinfo) made with the package's default client.
	HTTPTimeout = 10 * time.Second

	// MaxRuleScopes bounds the scopes of one entitlement rule
	// (policy.MaxScopes bounds a whole set).
	MaxRuleScopes = 64

	// MaxClaimLen bounds a group, role, claim name or claim value in a
	// rule.
	MaxClaimLen = 256
)

// DefaultScopes are requested from an IdP whose config names none.
var DefaultScopes = []string{"openid", "email", "profile"}

// DefaultJAGAlgorithms are the JWS algorithms accepted from a trusted IdP
// whose config names none (RFC 8725 §3.1: an explicit list, never "none"
// or an HMAC).
var DefaultJAGAlgorithms = []string{"RS256", "ES256", "EdDSA"}

// now is the package's clock; tests replace it.
var now = time.Now
