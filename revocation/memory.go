package revocation

import (
	"context"
	"hash/maphash"
	"math"
	"sync"
	"time"
	"unsafe"
)

// MemoryOptions configure a Memory.
type MemoryOptions struct {
	// Now is the clock that decides whether an entry has passed its Until.
	// Default: time.Now.
	Now func() time.Time

	// SweepInterval is how often Run removes expired entries. Default:
	// DefaultSweepInterval.
	SweepInterval time.Duration
}

// Memory is the single-node revocation set (DESIGN.md §5).
//
// Ids are not kept: each is stored as a 128-bit keyed hash (two
// hash/maphash values under independent random seeds), so an entry costs
// the same whatever the id's length and 1M ids take a few tens of MB. Id
// revocations and cutoffs live in separate maps, and a cutoff's key carries
// its kind, so revoking id "usr_a" is not a cutoff for sub "usr_a" and a
// sub cutoff is not a client_id cutoff. With 128 bits a false match between
// two different strings is, for any practical set, never; and it could only
// revoke a token, never let one through. Because ids are not kept the set
// cannot list what it holds.
//
// The entries are spread over shards, each behind its own sync.RWMutex:
// lookups take a read lock on one shard, and a writer or Sweep holds one
// shard at a time, so a sweep of a large set never stalls every request.
//
// Entries past their Until are ignored by lookups and removed by Sweep.
type Memory struct {
	now    func() time.Time
	every  time.Duration
	seeds  [2]maphash.Seed
	shards [shardCount]shard
}

const (
	shardBits  = 6
	shardCount = 1 << shardBits

	// A shard's maps are rebuilt when a sweep leaves them at a quarter of
	// their peak, since Go maps never give back memory on delete.
	compactMin = 1024
)

type hkey struct{ hi, lo uint64 }

type ckey struct {
	h    hkey
	kind uint8 // Kind.index
}

type cutoff struct {
	before int64 // Unix seconds: iat < before is revoked
	until  int64 // Unix nanoseconds
}

type shardData struct {
	mu      sync.RWMutex
	ids     map[hkey]int64 // → until, Unix nanoseconds
	cutoffs map[ckey]cutoff
	peak    int // most entries held since the maps were made
}

// shard is padded to two cache lines so that readers of neighbouring shards
// do not contend on the same line.
type shard struct {
	shardData
	_ [128 - unsafe.Sizeof(shardData{})%128]byte
}

// NewMemory returns an empty set.
func NewMemory(opts MemoryOptions) *Memory {
	m := &Memory{now: opts.Now, every: opts.SweepInterval, seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}}
	if m.now == nil {
		m.now = time.Now
	}
	if m.every <= 0 {
		m.every = DefaultSweepInterval
	}
	for i := range m.shards {
		m.shards[i].ids = make(map[hkey]int64)
		m.shards[i].cutoffs = make(map[ckey]cutoff)
	}
	return m
}

func (m *Memory) key(s string) hkey {
	return hkey{maphash.String(m.seeds[0], s), maphash.String(m.seeds[1], s)}
}

func (m *Memory) shard(h hkey) *shard { return &m.shards[h.hi>>(64-shardBits)] }

// unixNano is t in Unix nanoseconds, clamped to int64, so an Until in the
// year 9999 means "for as long as this process lives", not an overflow.
func unixNano(t time.Time) int64 {
	switch {
	case t.After(maxNanoTime):
		return math.MaxInt64
	case t.Before(minNanoTime):
		return math.MinInt64
	}
	return t.UnixNano()
}

var (
	maxNanoTime = time.Unix(0, math.MaxInt64)
	minNanoTime = time.Unix(0, math.MinInt64)
)

// Revoke validates e and stores it. When the key is already revoked the
// later Until is kept, and for a cutoff the later Before: a revocation is
// never shortened. An entry whose Until has already passed changes nothing.
// Revoke fails only for an invalid entry or a done ctx.
func (m *Memory) Revoke(ctx context.Context, e Entry) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := e.Validate(); err != nil {
		return err
	}
	now := m.now().UnixNano()
	until := unixNano(e.Until)
	if until <= now {
		return nil
	}
	h := m.key(e.ID)
	s := m.shard(h)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e.Cutoff == "" {
		if old, ok := s.ids[h]; !ok || old < until {
			s.ids[h] = until
		}
	} else {
		kind, _ := e.Cutoff.index() // Validate checked it
		k := ckey{h, kind}
		c := cutoff{before: e.Before.Unix(), until: until}
		// An expired entry is as good as absent: its Before must not carry
		// over into a new cutoff.
		if old, ok := s.cutoffs[k]; ok && old.until > now {
			c.before = max(c.before, old.before)
			c.until = max(c.until, old.until)
		}
		s.cutoffs[k] = c
	}
	s.peak = max(s.peak, len(s.ids)+len(s.cutoffs))
	return nil
}

// IsRevoked reports whether id has a live id revocation.
func (m *Memory) IsRevoked(id string) bool {
	h := m.key(id)
	s := m.shard(h)
	s.mu.RLock()
	until, ok := s.ids[h]
	s.mu.RUnlock()
	return ok && m.now().UnixNano() < until
}

// RevokedBefore reports whether a live cutoff for (kind, value) exists with
// iat < its Before.Unix(). An unknown kind has no cutoffs.
func (m *Memory) RevokedBefore(kind Kind, value string, iat int64) bool {
	idx, ok := kind.index()
	if !ok {
		return false
	}
	h := m.key(value)
	s := m.shard(h)
	s.mu.RLock()
	c, ok := s.cutoffs[ckey{h, idx}]
	s.mu.RUnlock()
	return ok && iat < c.before && m.now().UnixNano() < c.until
}

// Fresh is always true: a Memory set is its own source of truth.
func (m *Memory) Fresh() bool { return true }

// Len is the number of live entries (ids and cutoffs). It visits every
// entry, so it is for tests and metrics, not for the request path.
func (m *Memory) Len() int {
	now := m.now().UnixNano()
	n := 0
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.RLock()
		for _, until := range s.ids {
			if now < until {
				n++
			}
		}
		for _, c := range s.cutoffs {
			if now < c.until {
				n++
			}
		}
		s.mu.RUnlock()
	}
	return n
}

// Sweep removes the entries whose Until has passed, one shard at a time.
func (m *Memory) Sweep() {
	now := m.now().UnixNano()
	for i := range m.shards {
		m.shards[i].sweep(now)
	}
}

func (s *shard) sweep(now int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, until := range s.ids {
		if until <= now {
			delete(s.ids, k)
		}
	}
	for k, c := range s.cutoffs {
		if c.until <= now {
			delete(s.cutoffs, k)
		}
	}
	n := len(s.ids) + len(s.cutoffs)
	if s.peak >= compactMin && n <= s.peak/4 {
		ids := make(map[hkey]int64, len(s.ids))
		for k, v := range s.ids {
			ids[k] = v
		}
		cutoffs := make(map[ckey]cutoff, len(s.cutoffs))
		for k, v := range s.cutoffs {
			cutoffs[k] = v
		}
		s.ids, s.cutoffs, s.peak = ids, cutoffs, n
	}
}

// Run sweeps every MemoryOptions.SweepInterval until ctx is done. The
// caller starts it in its own goroutine.
func (m *Memory) Run(ctx context.Context) {
	t := time.NewTicker(m.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.Sweep()
		}
	}
}

// stored is the number of entries held, live or not (for tests).
func (m *Memory) stored() int {
	n := 0
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.RLock()
		n += len(s.ids) + len(s.cutoffs)
		s.mu.RUnlock()
	}
	return n
}

// WaitLoaded returns at once: a Memory has nothing to load.
func (m *Memory) WaitLoaded(context.Context) error { return nil }

// Reseed adds entries (a process restarted with a store that holds
// revocations seeds its empty set this way).
func (m *Memory) Reseed(ctx context.Context, entries []Entry) error {
	for _, e := range entries {
		if err := m.Revoke(ctx, e); err != nil {
			return err
		}
	}
	return nil
}

// Status reports a Memory: always loaded and fresh.
func (m *Memory) Status() Status {
	return Status{Mode: ModeMemory, Loaded: true, Fresh: true, Entries: m.Len()}
}

// Close does nothing: a Memory holds no connection. Run stops with its
// context.
func (m *Memory) Close() error { return nil }

// Interface guards
var (
	_ Set     = (*Memory)(nil)
	_ Service = (*Memory)(nil)
)
