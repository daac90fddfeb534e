package revocation

import (
	"context"
	"errors"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// t0 is a whole second, so Before.Unix() is exactly t0.Unix().
var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// clock is a test clock safe to read while another goroutine moves it.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(t0.UnixNano())
	return c
}

func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// testSet is the behaviour every Set must have, whatever stores it. A
// cluster set runs it with its own constructor.
func testSet(t *testing.T, newSet func(now func() time.Time) Set) {
	ctx := context.Background()
	kinds := []Kind{CutoffSubject, CutoffClient, CutoffKey}

	t.Run("revoke and look up", func(t *testing.T) {
		t.Parallel()
		c := newClock()
		s := newSet(c.Now)
		for _, id := range []string{"agt_89", "dlg_a1", "tok_1"} {
			if err := s.Revoke(ctx, Entry{ID: id, Until: t0.Add(time.Hour)}); err != nil {
				t.Fatalf("Revoke(%s): %v", id, err)
			}
		}
		tests := []struct {
			id   string
			want bool
		}{
			{"agt_89", true}, {"dlg_a1", true}, {"tok_1", true},
			{"agt_123", false}, {"agt_8", false}, {"AGT_89", false}, {"", false},
		}
		for _, tt := range tests {
			if got := s.IsRevoked(tt.id); got != tt.want {
				t.Errorf("IsRevoked(%q) = %v, want %v", tt.id, got, tt.want)
			}
		}
		if !s.Fresh() {
			t.Error("Fresh() = false")
		}
	})

	t.Run("cutoffs", func(t *testing.T) {
		t.Parallel()
		for _, kind := range kinds {
			s := newSet(newClock().Now)
			if err := s.Revoke(ctx, Entry{ID: "v1", Cutoff: kind, Before: t0, Until: t0.Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
			// A Before with a fraction counts in whole seconds: iat < Before.Unix().
			frac := t0.Add(10*time.Second + 500*time.Millisecond)
			if err := s.Revoke(ctx, Entry{ID: "v2", Cutoff: kind, Before: frac, Until: t0.Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
			tests := []struct {
				value string
				iat   int64
				want  bool
			}{
				{"v1", t0.Unix() - 3600, true},
				{"v1", t0.Unix() - 1, true},
				{"v1", t0.Unix(), false},
				{"v1", t0.Unix() + 1, false},
				{"v1", 0, true},
				{"v2", t0.Unix() + 9, true},
				{"v2", t0.Unix() + 10, false},
				{"v3", 0, false},
			}
			for _, tt := range tests {
				if got := s.RevokedBefore(kind, tt.value, tt.iat); got != tt.want {
					t.Errorf("RevokedBefore(%s, %s, t0%+d) = %v, want %v", kind, tt.value, tt.iat-t0.Unix(), got, tt.want)
				}
			}
			if s.RevokedBefore("aud", "v1", 0) || s.RevokedBefore("", "v1", 0) {
				t.Error("a cutoff answers for an unknown kind")
			}
		}
	})

	t.Run("kinds do not collide", func(t *testing.T) {
		t.Parallel()
		// Revoke one key at a time; only that key may answer.
		keys := append([]Kind{""}, kinds...)
		for _, revoked := range keys {
			s := newSet(newClock().Now)
			e := Entry{ID: "usr_a", Cutoff: revoked, Until: t0.Add(time.Hour)}
			if revoked != "" {
				e.Before = t0
			}
			if err := s.Revoke(ctx, e); err != nil {
				t.Fatal(err)
			}
			for _, asked := range keys {
				var got bool
				if asked == "" {
					got = s.IsRevoked("usr_a")
				} else {
					got = s.RevokedBefore(asked, "usr_a", t0.Unix()-1)
				}
				if want := asked == revoked; got != want {
					t.Errorf("revoked %q, asked %q: got %v, want %v", revoked, asked, got, want)
				}
			}
		}
	})

	t.Run("until honoured", func(t *testing.T) {
		t.Parallel()
		c := newClock()
		s := newSet(c.Now)
		for _, e := range []Entry{
			{ID: "agt_x", Until: t0.Add(10 * time.Second)},
			{ID: "usr_a", Cutoff: CutoffSubject, Before: t0, Until: t0.Add(10 * time.Second)},
		} {
			if err := s.Revoke(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		check := func(when string, want bool) {
			t.Helper()
			if got := s.IsRevoked("agt_x"); got != want {
				t.Errorf("%s: IsRevoked = %v, want %v", when, got, want)
			}
			if got := s.RevokedBefore(CutoffSubject, "usr_a", t0.Unix()-1); got != want {
				t.Errorf("%s: RevokedBefore = %v, want %v", when, got, want)
			}
		}
		check("at revocation", true)
		c.Advance(10*time.Second - 1)
		check("just before until", true)
		c.Advance(1)
		check("at until", false)

		// An entry already past its Until revokes nothing.
		if err := s.Revoke(ctx, Entry{ID: "agt_y", Until: c.Now()}); err != nil {
			t.Fatal(err)
		}
		if s.IsRevoked("agt_y") {
			t.Error("an entry revoked at its Until is live")
		}
	})

	t.Run("never shortened", func(t *testing.T) {
		t.Parallel()
		c := newClock()
		s := newSet(c.Now)
		revoke := func(e Entry) {
			t.Helper()
			if err := s.Revoke(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		early, late := t0.Add(-time.Hour), t0.Add(-time.Minute)
		revoke(Entry{ID: "long", Until: t0.Add(time.Hour)})
		revoke(Entry{ID: "long", Until: t0.Add(time.Minute)})
		revoke(Entry{ID: "grown", Until: t0.Add(time.Minute)})
		revoke(Entry{ID: "grown", Until: t0.Add(time.Hour)})
		revoke(Entry{ID: "usr_a", Cutoff: CutoffSubject, Before: late, Until: t0.Add(time.Hour)})
		revoke(Entry{ID: "usr_a", Cutoff: CutoffSubject, Before: early, Until: t0.Add(time.Minute)})
		revoke(Entry{ID: "usr_b", Cutoff: CutoffSubject, Before: early, Until: t0.Add(time.Minute)})
		revoke(Entry{ID: "usr_b", Cutoff: CutoffSubject, Before: late, Until: t0.Add(time.Hour)})
		// Expired cutoffs do not lend their Before to a new one.
		revoke(Entry{ID: "usr_c", Cutoff: CutoffSubject, Before: late, Until: t0.Add(time.Minute)})
		c.Advance(2 * time.Minute)
		revoke(Entry{ID: "usr_c", Cutoff: CutoffSubject, Before: early, Until: t0.Add(time.Hour)})

		mid := t0.Add(-30 * time.Minute).Unix() // between early and late
		tests := []struct {
			name string
			got  bool
			want bool
		}{
			{"id after a shorter revoke", s.IsRevoked("long"), true},
			{"id after a longer revoke", s.IsRevoked("grown"), true},
			{"cutoff keeps later until and before", s.RevokedBefore(CutoffSubject, "usr_a", mid), true},
			{"cutoff takes later until and before", s.RevokedBefore(CutoffSubject, "usr_b", mid), true},
			{"expired cutoff forgotten", s.RevokedBefore(CutoffSubject, "usr_c", mid), false},
			{"new cutoff after expiry", s.RevokedBefore(CutoffSubject, "usr_c", early.Unix()-1), true},
		}
		for _, tt := range tests {
			if tt.got != tt.want {
				t.Errorf("%s: got %v, want %v", tt.name, tt.got, tt.want)
			}
		}
	})

	t.Run("invalid entry refused", func(t *testing.T) {
		t.Parallel()
		s := newSet(newClock().Now)
		err := s.Revoke(ctx, Entry{ID: "agt x", Until: t0.Add(time.Hour)})
		if !errors.Is(err, ErrInvalidEntry) {
			t.Fatalf("Revoke(invalid) = %v, want ErrInvalidEntry", err)
		}
		if s.IsRevoked("agt x") {
			t.Error("an invalid entry was stored")
		}
	})

	t.Run("done context", func(t *testing.T) {
		t.Parallel()
		s := newSet(newClock().Now)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := s.Revoke(cctx, Entry{ID: "agt_x", Until: t0.Add(time.Hour)}); !errors.Is(err, context.Canceled) {
			t.Fatalf("Revoke(cancelled ctx) = %v, want context.Canceled", err)
		}
	})
}

func TestMemorySet(t *testing.T) {
	t.Parallel()
	testSet(t, func(now func() time.Time) Set { return NewMemory(MemoryOptions{Now: now}) })
}

func TestMemoryDefaultClock(t *testing.T) {
	t.Parallel()
	m := NewMemory(MemoryOptions{})
	if err := m.Revoke(context.Background(), Entry{ID: "agt_x", Until: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if !m.IsRevoked("agt_x") {
		t.Error("not revoked with the default clock")
	}
}

func revokeN(t testing.TB, m *Memory, prefix string, n int, until time.Time) {
	t.Helper()
	ctx := context.Background()
	for i := range n {
		if err := m.Revoke(ctx, Entry{ID: prefix + strconv.Itoa(i), Until: until}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestMemorySweepAndLen(t *testing.T) {
	t.Parallel()
	c := newClock()
	m := NewMemory(MemoryOptions{Now: c.Now})
	revokeN(t, m, "short_", 3, t0.Add(time.Minute))
	revokeN(t, m, "long_", 2, t0.Add(time.Hour))
	if err := m.Revoke(context.Background(), Entry{ID: "usr_a", Cutoff: CutoffSubject, Before: t0, Until: t0.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		advance     time.Duration
		sweep       bool
		len, stored int
	}{
		{0, false, 6, 6},
		{0, true, 6, 6},
		{90 * time.Second, false, 2, 6}, // expired but not yet swept
		{0, true, 2, 2},
		{time.Hour, true, 0, 0},
	}
	for i, st := range steps {
		c.Advance(st.advance)
		if st.sweep {
			m.Sweep()
		}
		if got := m.Len(); got != st.len {
			t.Errorf("step %d: Len() = %d, want %d", i, got, st.len)
		}
		if got := m.stored(); got != st.stored {
			t.Errorf("step %d: stored = %d, want %d", i, got, st.stored)
		}
	}
}

// After a mass expiry the shards' maps are rebuilt at their new size, and
// what remains is still revoked.
func TestMemorySweepCompacts(t *testing.T) {
	t.Parallel()
	c := newClock()
	m := NewMemory(MemoryOptions{Now: c.Now})
	revokeN(t, m, "short_", shardCount*compactMin*2, t0.Add(time.Minute))
	revokeN(t, m, "long_", 100, t0.Add(time.Hour))
	c.Advance(2 * time.Minute)
	m.Sweep()
	peak := 0
	for i := range m.shards {
		peak += m.shards[i].peak
	}
	if peak != 100 {
		t.Errorf("sum of shard peaks after sweep = %d, want 100 (maps rebuilt)", peak)
	}
	for i := range 100 {
		if !m.IsRevoked("long_" + strconv.Itoa(i)) {
			t.Fatalf("long_%d lost by compaction", i)
		}
	}
}

func TestMemoryRun(t *testing.T) {
	t.Parallel()
	c := newClock()
	m := NewMemory(MemoryOptions{Now: c.Now, SweepInterval: time.Millisecond})
	revokeN(t, m, "tok_", 10, t0.Add(time.Minute))
	c.Advance(2 * time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for m.stored() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("Run did not sweep within 5 s")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context was cancelled")
	}
}

// Run under -race: lookups, revocations and sweeps at once. Ids revoked
// before the start must answer true throughout, ids never revoked false.
func TestMemoryConcurrent(t *testing.T) {
	t.Parallel()
	m := NewMemory(MemoryOptions{})
	until := time.Now().Add(time.Hour)
	revokeN(t, m, "pre_", 100, until)
	const writers, readers, perWriter = 4, 4, 500
	var wg sync.WaitGroup
	var failures atomic.Int64
	stop := make(chan struct{})
	for w := range writers {
		wg.Go(func() {
			ctx := context.Background()
			for i := range perWriter {
				id := "w" + strconv.Itoa(w) + "_" + strconv.Itoa(i)
				if m.Revoke(ctx, Entry{ID: id, Until: until}) != nil ||
					m.Revoke(ctx, Entry{ID: id, Cutoff: CutoffClient, Before: time.Now(), Until: until}) != nil {
					failures.Add(1)
				}
			}
		})
	}
	var readWG sync.WaitGroup
	for r := range readers {
		readWG.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				n := strconv.Itoa((i + r) % 100)
				if !m.IsRevoked("pre_"+n) || m.IsRevoked("never_"+n) || m.RevokedBefore(CutoffClient, "never_"+n, 0) {
					failures.Add(1)
				}
			}
		})
	}
	readWG.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				m.Sweep()
				_ = m.Len()
			}
		}
	})
	wg.Wait()
	close(stop)
	readWG.Wait()
	if n := failures.Load(); n != 0 {
		t.Fatalf("%d wrong answers or failed revocations", n)
	}
	if got, want := m.Len(), 100+2*writers*perWriter; got != want {
		t.Errorf("Len() = %d, want %d", got, want)
	}
}

// Not parallel: AllocsPerRun counts the whole process's allocations.
func TestLookupsDoNotAllocate(t *testing.T) {
	m := NewMemory(MemoryOptions{})
	until := time.Now().Add(time.Hour)
	revokeN(t, m, "tok_", 10000, until)
	if err := m.Revoke(context.Background(), Entry{ID: "usr_a", Cutoff: CutoffSubject, Before: time.Now(), Until: until}); err != nil {
		t.Fatal(err)
	}
	iat := time.Now().Add(-time.Minute).Unix()
	tests := []struct {
		name string
		f    func() bool
		want bool
	}{
		{"IsRevoked hit", func() bool { return m.IsRevoked("tok_4242") }, true},
		{"IsRevoked miss", func() bool { return m.IsRevoked("tok_unknown") }, false},
		{"RevokedBefore hit", func() bool { return m.RevokedBefore(CutoffSubject, "usr_a", iat) }, true},
		{"RevokedBefore miss", func() bool { return m.RevokedBefore(CutoffKey, "usr_a", iat) }, false},
	}
	for _, tt := range tests {
		var got bool
		if allocs := testing.AllocsPerRun(1000, func() { got = tt.f() }); allocs != 0 {
			t.Errorf("%s: %v allocs per call, want 0", tt.name, allocs)
		}
		if got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}

// DESIGN.md §9: 1M revoked ids in under 100 MB.
func TestMemoryMillionIDsHeap(t *testing.T) {
	if testing.Short() {
		t.Skip("inserts 1M ids")
	}
	const n = 1_000_000
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	m := NewMemory(MemoryOptions{})
	revokeN(t, m, "tok_", n, time.Now().Add(time.Hour))
	runtime.GC()
	runtime.ReadMemStats(&after)
	grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("heap for %d ids: %d bytes (%.1f MB, %.1f bytes/id)", n, grown, float64(grown)/1e6, float64(grown)/n)
	if grown >= 100<<20 {
		t.Errorf("heap grew %d bytes for %d ids, want < 100 MB", grown, n)
	}
	if !m.IsRevoked("tok_0") || !m.IsRevoked("tok_999999") || m.IsRevoked("tok_1000000") {
		t.Error("lookups wrong in the full set")
	}
	runtime.KeepAlive(m)
}
