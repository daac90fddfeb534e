package token

import (
	"time"

	"github.com/kavachgate/kavach/policy"
)

// Limits of the token format. Every bound the verifier enforces lives here so
// a reader finds them in one place (DESIGN.md §2).
const (
	// MaxTokenSize is the largest compact JWS accepted, checked before any
	// parsing so a huge header costs nothing.
	MaxTokenSize = 8 << 10

	// MaxChainLen is the format limit of kvc.chain and kvc.agents. The
	// issuer's max_depth (default 5) is at most this.
	MaxChainLen = policy.MaxDepth

	// MaxScopes is the most scopes one token carries.
	MaxScopes = policy.MaxScopes

	// MaxAudience is the most resource indicators in aud.
	MaxAudience = 16

	// MaxIDLen bounds every identifier claim (sub, jti, client_id, chain
	// and agent ids). Client ids may be URLs (client ID metadata documents).
	MaxIDLen = 512

	// Leeway is the clock skew tolerated on iat, nbf and exp.
	Leeway = 30 * time.Second

	// DefaultTTL is the lifetime of a token when the minter does not say.
	DefaultTTL = 5 * time.Minute

	// DefaultMaxLifetime is the longest exp − iat accepted unless the
	// verifier is configured otherwise (the issuer's max_token_lifetime).
	DefaultMaxLifetime = time.Hour

	// KavachVersion is the only kvc.v this code understands.
	KavachVersion = 1

	// TypeAccessToken is the JOSE typ of RFC 9068 access tokens.
	TypeAccessToken = "at+jwt"
)

// Bounds and defaults of remote key fetching (RemoteKeys).
const (
	// maxRemoteDocument caps a fetched JWK set or metadata document. A
	// larger response is an error, so a hostile or broken issuer cannot make
	// the gateway buffer an unbounded body.
	maxRemoteDocument = 1 << 20

	// DefaultRemoteRefresh is RemoteOptions.Refresh when unset.
	DefaultRemoteRefresh = 5 * time.Minute

	// DefaultRemoteMinInterval is RemoteOptions.MinInterval when unset.
	DefaultRemoteMinInterval = 30 * time.Second

	// defaultRemoteTimeout bounds one HTTP exchange of the default client.
	defaultRemoteTimeout = 10 * time.Second

	// remoteBackoffStart is the first retry delay after a failed fetch; it
	// doubles on each further failure, capped at the refresh interval.
	remoteBackoffStart = time.Second
)
