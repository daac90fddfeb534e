package ratelimit

import (
	"context"
	"hash/maphash"
	"sync"
	"time"
)

// MemoryOptions configure a Memory store.
type MemoryOptions struct {
	// MaxBuckets bounds the buckets kept. Default: DefaultMaxBuckets.
	MaxBuckets int
	// Now is the clock, in nanoseconds on any fixed origin. Default: the
	// monotonic clock.
	Now func() int64
}

// Memory keeps buckets in this process: a sharded map of one number per
// bucket, bounded. Take allocates nothing once a bucket exists and takes
// one shard lock per check. Safe for concurrent use.
type Memory struct {
	seed   maphash.Seed
	now    func() int64
	max    int // per shard
	shards [shards]memShard
}

type memShard struct {
	mu sync.Mutex
	m  map[uint64]bucket
	_  [40]byte // keep shards on their own cache lines
}

type bucket struct {
	tat    int64
	denied bool // refused since the last allowed request
}

// NewMemory returns an empty store.
func NewMemory(o MemoryOptions) *Memory {
	if o.MaxBuckets <= 0 {
		o.MaxBuckets = DefaultMaxBuckets
	}
	if o.Now == nil {
		start := time.Now()
		o.Now = func() int64 { return int64(time.Since(start)) + 1 }
	}
	m := &Memory{seed: maphash.MakeSeed(), now: o.Now, max: max(o.MaxBuckets/shards, 4)}
	for i := range m.shards {
		m.shards[i].m = make(map[uint64]bucket)
	}
	return m
}

// Take implements Store. It never fails.
func (m *Memory) Take(_ context.Context, checks []Check, res []Result) error {
	now := m.now()
	for i := range checks {
		c := &checks[i]
		k := keyOf(m.seed, c.Limit, c.Issuer, c.Principal)
		s := &m.shards[k&(shards-1)]
		s.mu.Lock()
		b, ok := s.m[k]
		tat, r := gcra(c.Limit, b.tat, now)
		if r.Allowed {
			b.tat, b.denied = tat, false
		} else {
			r.FirstDenial = !b.denied
			b.denied = true
		}
		if !ok && len(s.m) >= m.max {
			s.evict(now, m.max)
		}
		s.m[k] = b
		s.mu.Unlock()
		res[i] = r
		if !r.Allowed {
			m.giveBack(checks[:i], res[:i])
			return nil
		}
	}
	return nil
}

// giveBack returns the tokens the first checks took, when a later one
// refused the request.
func (m *Memory) giveBack(checks []Check, res []Result) {
	for i := range checks {
		c := &checks[i]
		k := keyOf(m.seed, c.Limit, c.Issuer, c.Principal)
		s := &m.shards[k&(shards-1)]
		s.mu.Lock()
		if b, ok := s.m[k]; ok {
			b.tat -= c.Limit.interval
			s.m[k] = b
		}
		s.mu.Unlock()
		res[i].Remaining++
	}
}

// evict makes room in a full shard: buckets already full again go first
// (forgetting them changes no answer); if that is not a quarter of the
// shard, arbitrary others follow, which hands their principals a fresh
// bucket (the price of a bound).
func (s *memShard) evict(now int64, limit int) {
	for k, b := range s.m {
		if b.tat <= now {
			delete(s.m, k)
		}
	}
	for k := range s.m {
		if len(s.m) <= limit*3/4 {
			break
		}
		delete(s.m, k)
	}
}

// Len is the number of buckets kept (for tests and metrics).
func (m *Memory) Len() int {
	n := 0
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}
