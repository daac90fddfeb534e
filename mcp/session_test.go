package mcp

import (
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Tests that move the clock do not run in parallel: now is package state.

func TestSessionsBinding(t *testing.T) {
	s := NewSessions(0, 0)
	alice, child := ChainKey("iss", "usr_alice", "dlg_a"), ChainKey("iss", "usr_alice", "dlg_a", "dlg_b")
	if !s.Check("s1", alice) {
		t.Error("an unknown session was refused (the upstream decides)")
	}
	if !s.Bind("s1", alice) {
		t.Fatal("Bind failed")
	}
	if !s.Check("s1", alice) {
		t.Error("the creating chain was refused")
	}
	if s.Check("s1", child) {
		t.Error("a child chain used its parent's session")
	}
	if s.Bind("s1", child) {
		t.Error("a bound session was rebound to another chain")
	}
	if !s.Bind("s1", alice) {
		t.Error("rebinding to the same chain failed")
	}
	s.Forget("s1")
	if !s.Check("s1", child) || s.Len() != 0 {
		t.Error("Forget kept the binding")
	}
	for _, bad := range []string{"", "a b", "é", strings.Repeat("x", MaxSessionIDLen+1)} {
		if s.Bind(bad, alice) || s.Check(bad, alice) {
			t.Errorf("malformed id %q accepted", bad)
		}
	}
}

func TestSessionsTTL(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := t0
	now = func() time.Time { return clock }
	defer func() { now = time.Now }()

	s := NewSessions(10, time.Hour)
	s.Bind("s1", "A")
	clock = t0.Add(50 * time.Minute)
	if !s.Check("s1", "A") { // renews until 1h50
		t.Fatal("refused within the TTL")
	}
	clock = t0.Add(100 * time.Minute)
	if s.Check("s1", "B") {
		t.Error("another chain got a session whose binding was renewed")
	}
	clock = t0.Add(200 * time.Minute)
	if !s.Check("s1", "B") || s.Len() != 0 {
		t.Error("an expired binding still held")
	}
	s.Bind("s2", "A")
	clock = t0.Add(300 * time.Minute)
	if !s.Bind("s2", "B") {
		t.Error("an expired binding blocked a new one")
	}
	if s.Check("s2", "A") {
		t.Error("the old chain kept an expired, rebound session")
	}
}

func TestSessionsEvictLeastRecentlyUsed(t *testing.T) {
	t.Parallel()
	s := NewSessions(3, time.Hour)
	for i := range 3 {
		s.Bind("s"+strconv.Itoa(i), "A")
	}
	s.Check("s0", "A") // s1 is now the least recently used
	s.Bind("s3", "A")
	if s.Len() != 3 {
		t.Fatalf("Len %d", s.Len())
	}
	if s.Check("s0", "B") || s.Check("s2", "B") || s.Check("s3", "B") {
		t.Error("a recent binding was evicted")
	}
	if !s.Check("s1", "B") {
		t.Error("the least recently used binding was kept")
	}
}

func TestSessionsConcurrent(t *testing.T) {
	t.Parallel()
	s := NewSessions(64, time.Hour)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			chain := ChainKey("c", strconv.Itoa(g))
			for i := range 500 {
				id := "s-" + strconv.Itoa(g) + "-" + strconv.Itoa(i%100)
				s.Bind(id, chain)
				if !s.Check(id, chain) && s.Len() < 64 {
					t.Errorf("own session refused")
				}
				s.Check("s-0-1", chain)
				if i%50 == 0 {
					s.Forget(id)
				}
			}
		})
	}
	wg.Wait()
	if s.Len() > 64 {
		t.Errorf("Len %d over the cap", s.Len())
	}
}

func TestChainKey(t *testing.T) {
	t.Parallel()
	if ChainKey("ab", "c") == ChainKey("a", "bc") || ChainKey("a") == ChainKey("a", "") || ChainKey() == ChainKey("") {
		t.Error("different part lists share a key")
	}
	x, y := "x", "y"
	if ChainKey(x, y) != ChainKey(strings.Clone(x), strings.Clone(y)) || len(ChainKey("x")) != 32 {
		t.Error("ChainKey is not a fixed-size function of its parts")
	}
}
