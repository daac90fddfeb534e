package gateway

import "time"

// Limits and defaults of the decision pipeline, in one place.
const (
	// DefaultCacheSize is the number of verified tokens kept (DESIGN.md §9).
	DefaultCacheSize = 65536

	// cacheShards is how many locks the verified-token cache is split over.
	cacheShards = 16

	// DefaultRetryAfter is the Retry-After of a 503 while the revocation
	// set is not fresh (Gateway.RetryAfter): it takes a reconnect and a
	// reload, so clients are asked to wait a few seconds.
	DefaultRetryAfter = 5 * time.Second

	// transientRetryAfter is the Retry-After, in seconds, of a 503 for one
	// request that the audit trail or the session store could not serve:
	// the next request may well succeed.
	transientRetryAfter = 1

	// maxEcho bounds a request value quoted in a denial's trail reason.
	maxEcho = 64
)
