package ratelimit

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// takeScript takes a token from every bucket of KEYS or from none, in one
// round trip, atomically (a script runs alone). Time is Redis' own (TIME,
// microseconds), so every gateway of the cluster reads one clock and no
// gateway's clock skew widens a limit. ARGV holds, per key, the interval
// and the tolerance (burst · interval) in microseconds.
//
// A key holds the bucket's tat in microseconds since the epoch, negated
// while the bucket refuses (the first refusal after an allowed request is
// reported as such), and expires when the bucket is full again (PX): an
// expired key and a full bucket are the same. The reply is five integers
// per key: allowed (1/0), first refusal (1/0), retry after and reset (µs),
// remaining.
var takeScript = redis.NewScript(`
redis.replicate_commands() -- writes after TIME: effects replication (the default from Redis 5 on)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local out, tats, refused = {}, {}, false
for i = 1, #KEYS do
  local iv, tol = tonumber(ARGV[2*i-1]), tonumber(ARGV[2*i])
  local v = tonumber(redis.call('GET', KEYS[i]) or '0')
  local was = v < 0
  local tat = math.abs(v)
  if tat < now then tat = now end
  local nxt = tat + iv
  local o = 5 * (i - 1)
  if nxt - now > tol then
    refused = true
    out[o+1], out[o+2], out[o+3], out[o+4], out[o+5] = 0, was and 0 or 1, math.ceil(nxt - now - tol), math.ceil(tat - now), 0
    tats[i] = -tat
  else
    out[o+1], out[o+2], out[o+3], out[o+4], out[o+5] = 1, 0, 0, math.ceil(nxt - now), math.floor((tol - (nxt - now)) / iv)
    tats[i] = nxt
  end
end
for i = 1, #KEYS do
  if tats[i] < 0 or not refused then
    local ttl = math.floor((math.abs(tats[i]) - now) / 1000) + 1
    redis.call('SET', KEYS[i], string.format('%.0f', tats[i]), 'PX', ttl)
  end
end
return out
`)

// RedisOptions configure a Redis store.
type RedisOptions struct {
	// Client is the process's client of the cluster's Redis (shared; the
	// store does not close it). Required. It must honour context
	// deadlines (internal/redisurl's options do).
	Client *redis.Client
	// Timeout bounds one Take. Default: DefaultRedisTimeout.
	Timeout time.Duration
	// MaxStaleness: Fresh is false when Redis has not answered a Take
	// within it (the revocation set's rule, DESIGN.md §5). Default 30 s.
	MaxStaleness time.Duration
}

// Redis keeps buckets in Redis, shared by every gateway using it: one
// round trip per request (EVALSHA of takeScript), bounded by Timeout.
type Redis struct {
	c       *redis.Client
	timeout time.Duration
	stale   time.Duration
	start   time.Time
	lastOK  atomic.Int64 // monotonic ns since start of the last answer; 0: none
}

// NewRedis returns a store over o.Client.
func NewRedis(o RedisOptions) (*Redis, error) {
	if o.Client == nil {
		return nil, fmt.Errorf("ratelimit: a Redis client is required")
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultRedisTimeout
	}
	if o.MaxStaleness <= 0 {
		o.MaxStaleness = 30 * time.Second
	}
	return &Redis{c: o.Client, timeout: o.Timeout, stale: o.MaxStaleness, start: time.Now()}, nil
}

// Take implements Store. An error wraps ErrUnavailable: Redis did not
// answer within the timeout, or failed.
func (r *Redis) Take(ctx context.Context, checks []Check, res []Result) error {
	keys := make([]string, len(checks))
	args := make([]any, 0, 2*len(checks))
	for i := range checks {
		c := &checks[i]
		keys[i] = RedisKey(c)
		iv := float64(c.Limit.interval) / 1e3
		args = append(args, strconv.FormatFloat(iv, 'f', 3, 64), strconv.FormatFloat(iv*float64(c.Limit.Burst), 'f', 3, 64))
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	v, err := takeScript.Run(ctx, r.c, keys, args...).Int64Slice()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if len(v) != 5*len(checks) {
		return fmt.Errorf("%w: %d values in the reply, want %d", ErrUnavailable, len(v), 5*len(checks))
	}
	r.lastOK.Store(int64(time.Since(r.start)) + 1)
	for i := range checks {
		o := v[5*i:]
		res[i] = Result{Allowed: o[0] == 1, FirstDenial: o[1] == 1, RetryAfter: time.Duration(o[2]) * time.Microsecond,
			Reset: time.Duration(o[3]) * time.Microsecond, Remaining: o[4]}
	}
	return nil
}

// Fresh reports whether Redis answered a Take within MaxStaleness; false
// before its first answer, as the revocation set is before its first load.
func (r *Redis) Fresh() bool {
	last := r.lastOK.Load()
	return last != 0 && int64(time.Since(r.start))-last < int64(r.stale)
}

// RedisKey is the key of a check's bucket: RedisKeyPrefix, the limit's
// ID, and a digest of issuer and principal (ids are not spelled out in
// Redis; the digest has a fixed length whatever the id).
func RedisKey(c *Check) string {
	h := sha256.New()
	h.Write([]byte(c.Issuer))
	h.Write([]byte{0})
	h.Write([]byte(c.Principal))
	var sum [32]byte
	return RedisKeyPrefix + c.Limit.ID + ":" + base64.RawURLEncoding.EncodeToString(h.Sum(sum[:0])[:16])
}
