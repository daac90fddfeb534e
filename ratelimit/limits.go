package ratelimit

import "time"

// Limits and defaults, in one place.
const (
	// MaxCount bounds a rate's count and a burst.
	MaxCount = 1_000_000
	// MaxLimitsPerRoute bounds the `rate` lines of one route (a request's
	// checks live in a fixed array: no allocation).
	MaxLimitsPerRoute = 8

	// DefaultMaxBuckets bounds the memory store: past it, full buckets
	// (which change no answer) are forgotten first, then arbitrary ones
	// (see Memory.evict).
	DefaultMaxBuckets = 1 << 18

	// DefaultRedisTimeout bounds one Redis round trip of the limiter: past
	// it the request gets the configured failure answer rather than wait.
	DefaultRedisTimeout = 100 * time.Millisecond
	// RedisKeyPrefix starts every bucket key in Redis:
	// kavach:rl:<limit id>:<principal digest>.
	RedisKeyPrefix = "kavach:rl:"
)

// shards of the memory store (a power of two).
const shards = 64
