package revocation

import "time"

// Limits and defaults of the revocation set and its admin API, in one place.
const (
	// MaxIDLen bounds a revoked id or cutoff value: the same bound the token
	// format puts on every identifier claim, so anything a token can carry
	// can be revoked.
	MaxIDLen = 512

	// MaxBodyBytes bounds a request body of the admin API.
	MaxBodyBytes = 64 << 10

	// DefaultMaxLifetime is the issuer's default max_token_lifetime: no
	// token outlives its iat by more than this, so neither need a
	// revocation (DESIGN.md §2).
	DefaultMaxLifetime = time.Hour

	// DefaultLeeway is the clock skew the gateway tolerates on iat, nbf and
	// exp (DESIGN.md §4 step 3).
	DefaultLeeway = 30 * time.Second

	// DefaultSweepInterval is how often Run sweeps when not told.
	DefaultSweepInterval = time.Minute
)
