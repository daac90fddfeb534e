package gateway

import (
	"crypto/sha256"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/kavachgate/kavach/ratelimit"
	"github.com/kavachgate/kavach/token"
)

// CacheKey is the SHA-256 of the raw token: the cache never holds a token,
// only what verifying it proved.
type CacheKey [sha256.Size]byte

// Cache holds verified tokens so a repeat request skips the signature
// check. Only tokens that verified are stored, so a flood of distinct
// invalid tokens cannot grow it; it is bounded by entries; exp is re-checked
// on every hit; Purge empties it when the trusted keys change.
type Cache struct {
	shards   [cacheShards]cacheShard
	perShard int
	gen      atomic.Uint64
}

type cacheShard struct {
	mu sync.RWMutex
	m  map[CacheKey]*Verified
}

// Verified is a verified token and what the request path derives from it
// once: the identity the upstream is told.
type Verified struct {
	Token    *token.Token
	Identity Identity
	// rate is the token's own rate limit (kvc.cnst.rate), compiled once.
	rate *ratelimit.Limit
}

// NewCache returns a cache of at most size entries (DefaultCacheSize when
// size ≤ 0).
func NewCache(size int) *Cache {
	if size <= 0 {
		size = DefaultCacheSize
	}
	c := &Cache{perShard: max(1, size/cacheShards)}
	for i := range c.shards {
		c.shards[i].m = make(map[CacheKey]*Verified)
	}
	return c
}

// Key hashes a raw token. The hash reads the string's bytes in place (a
// copy would cost every request an allocation the size of the token).
func Key(raw string) CacheKey {
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(raw), len(raw)))
}

func (c *Cache) shard(k CacheKey) *cacheShard { return &c.shards[k[0]%cacheShards] }

// Get returns the verified token for k, or nil. A token whose exp (plus the
// leeway Verify allows) has passed at unix time now is dropped.
func (c *Cache) Get(k CacheKey, now int64) *Verified {
	s := c.shard(k)
	s.mu.RLock()
	t := s.m[k]
	s.mu.RUnlock()
	if t == nil {
		return nil
	}
	if now >= t.Token.Expiry+int64(token.Leeway.Seconds()) {
		s.mu.Lock()
		delete(s.m, k)
		s.mu.Unlock()
		return nil
	}
	return t
}

// Gen is the cache's generation; pass it to Put so a verification that
// started before a Purge cannot put back a token verified with old keys.
func (c *Cache) Gen() uint64 { return c.gen.Load() }

// Put stores t under k unless the cache was purged since gen. A full shard
// drops an arbitrary entry (Go's map order) to make room.
func (c *Cache) Put(k CacheKey, t *Verified, gen uint64) {
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.gen.Load() != gen {
		return
	}
	if _, ok := s.m[k]; !ok && len(s.m) >= c.perShard {
		for old := range s.m {
			delete(s.m, old)
			break
		}
	}
	s.m[k] = t
}

// Purge empties the cache and starts a new generation.
func (c *Cache) Purge() {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		if i == 0 {
			c.gen.Add(1)
		}
		clear(s.m)
		s.mu.Unlock()
	}
}

// Len is the number of entries.
func (c *Cache) Len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}
