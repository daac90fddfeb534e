package idp

import (
	"context"
	"sync"
	"time"
)

// ReplayStore records one-time values (ID-JAG jti, sign-in state) until
// they expire. Use records key until exp and reports whether it was new;
// an error means the store cannot answer, and the check fails closed.
//
// It has the method set of issuer.ReplayStore, so the issuer passes its
// own (issuer.RedisReplay in a cluster, where every node must refuse a
// replay).
type ReplayStore interface {
	Use(ctx context.Context, key string, exp time.Time) (bool, error)
}

// MemoryReplay is a ReplayStore for one process. Expired keys are swept
// as new ones are added.
type MemoryReplay struct {
	mu    sync.Mutex
	seen  map[string]time.Time
	added int
}

// NewMemoryReplay returns an empty MemoryReplay.
func NewMemoryReplay() *MemoryReplay { return &MemoryReplay{seen: map[string]time.Time{}} }

// Use implements ReplayStore.
func (m *MemoryReplay) Use(_ context.Context, key string, exp time.Time) (bool, error) {
	at := now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if until, ok := m.seen[key]; ok && at.Before(until) {
		return false, nil
	}
	m.seen[key] = exp
	// Amortised sweep: one pass per 1024 additions keeps the map bounded
	// by the keys live within roughly one lifetime.
	if m.added++; m.added%1024 == 0 {
		for k, until := range m.seen {
			if !at.Before(until) {
				delete(m.seen, k)
			}
		}
	}
	return true, nil
}

// Interface guards
var _ ReplayStore = (*MemoryReplay)(nil)
