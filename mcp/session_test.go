package mcp

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// testSessionStore is the conformance suite every SessionStore runs
// (CONVENTIONS.md: one suite, every implementation). newStore returns an
// empty store with a TTL of at least an hour.
func testSessionStore(t *testing.T, newStore func(t *testing.T) SessionStore) {
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, SessionStore)
	}{
		{"Binding", testSessionBinding},
		{"MalformedIDs", testSessionMalformed},
		{"BindRace", testSessionBindRace},
		{"Concurrent", testSessionConcurrent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newStore(t))
		})
	}
}

var (
	chainAlice = ChainKey("iss", "usr_alice", "agt_orch")
	chainChild = ChainKey("iss", "usr_alice", "agt_orch", "dlg_b")
	chainMal   = ChainKey("iss", "usr_mallory", "agt_m")
)

func mustState(t *testing.T, s SessionStore, id, chain string, want SessionState, what string) {
	t.Helper()
	got, err := s.Check(context.Background(), id, chain)
	if err != nil {
		t.Fatalf("%s: Check: %v", what, err)
	}
	if got != want {
		t.Errorf("%s: Check = %v, want %v", what, got, want)
	}
}

func testSessionBinding(t *testing.T, s SessionStore) {
	ctx := context.Background()
	mustState(t, s, "s1", chainAlice, SessionUnknown, "an id never bound")
	if err := s.Bind(ctx, "s1", chainAlice); err != nil {
		t.Fatalf("Bind: %v", err)
	}
	mustState(t, s, "s1", chainAlice, SessionOwn, "the creating chain")
	mustState(t, s, "s1", chainChild, SessionOther, "a child chain with its parent's session")
	mustState(t, s, "s1", chainMal, SessionOther, "another user's chain")
	if err := s.Bind(ctx, "s1", chainMal); !errors.Is(err, ErrSessionTaken) || HTTPStatus(err) != 502 {
		t.Errorf("rebinding a live session to another chain: %v, want ErrSessionTaken (502)", err)
	}
	mustState(t, s, "s1", chainAlice, SessionOwn, "the creating chain after a refused rebind")
	if err := s.Bind(ctx, "s1", chainAlice); err != nil {
		t.Errorf("rebinding to the same chain: %v", err)
	}
	mustState(t, s, "s2", chainAlice, SessionUnknown, "another id of the same chain")

	s.Forget(ctx, "s1")
	mustState(t, s, "s1", chainAlice, SessionUnknown, "the creating chain after Forget")
	mustState(t, s, "s1", chainMal, SessionUnknown, "another chain after Forget")
	if err := s.Bind(ctx, "s1", chainMal); err != nil {
		t.Fatalf("binding a forgotten id: %v", err)
	}
	mustState(t, s, "s1", chainAlice, SessionOther, "the old chain of a forgotten, rebound id")
	s.Forget(ctx, "never-bound") // no effect, no panic
}

func testSessionMalformed(t *testing.T, s SessionStore) {
	ctx := context.Background()
	for _, bad := range []string{"", "a b", "é", "tab\t", strings.Repeat("x", MaxSessionIDLen+1)} {
		if err := s.Bind(ctx, bad, chainAlice); !errors.Is(err, ErrInvalid) {
			t.Errorf("Bind(%q) = %v, want ErrInvalid", bad, err)
		}
		mustState(t, s, bad, chainAlice, SessionUnknown, "malformed id "+strconv.Quote(bad))
		s.Forget(ctx, bad)
	}
	long := strings.Repeat("x", MaxSessionIDLen)
	if err := s.Bind(ctx, long, chainAlice); err != nil {
		t.Fatalf("Bind of a %d-byte id: %v", MaxSessionIDLen, err)
	}
	mustState(t, s, long, chainAlice, SessionOwn, "the longest id")
}

// testSessionBindRace: chains racing to bind one id (an upstream that hands
// the same id out twice): exactly one wins, and the id is never anyone
// else's.
func testSessionBindRace(t *testing.T, s SessionStore) {
	const n = 8
	var wins atomic.Int32
	winner := make([]bool, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			err := s.Bind(context.Background(), "contested", ChainKey("c", strconv.Itoa(i)))
			switch {
			case err == nil:
				wins.Add(1)
				winner[i] = true
			case !errors.Is(err, ErrSessionTaken):
				t.Errorf("chain %d: Bind = %v, want nil or ErrSessionTaken", i, err)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d chains bound the same id, want exactly 1", wins.Load())
	}
	for i := range n {
		want := SessionOther
		if winner[i] {
			want = SessionOwn
		}
		mustState(t, s, "contested", ChainKey("c", strconv.Itoa(i)), want, "chain "+strconv.Itoa(i))
	}
}

func testSessionConcurrent(t *testing.T, s SessionStore) {
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			chain := ChainKey("c", strconv.Itoa(g))
			for i := range 100 {
				id := "s-" + strconv.Itoa(g) + "-" + strconv.Itoa(i%20)
				if err := s.Bind(ctx, id, chain); err != nil {
					t.Errorf("Bind %s: %v", id, err)
					return
				}
				if st, err := s.Check(ctx, id, chain); err != nil || st != SessionOwn {
					t.Errorf("own session %s: %v %v", id, st, err)
					return
				}
				other := "s-" + strconv.Itoa((g+1)%4) + "-1"
				if st, err := s.Check(ctx, other, chain); err != nil || st == SessionOwn {
					t.Errorf("another chain's session %s: %v %v", other, st, err)
					return
				}
				if i%10 == 0 {
					s.Forget(ctx, id)
				}
			}
		})
	}
	wg.Wait()
}

func TestSessionStoreMemory(t *testing.T) {
	t.Parallel()
	testSessionStore(t, func(*testing.T) SessionStore { return NewMemorySessions(0, 0) })
}

// A binding lives ttl after its last use; an expired one is unknown, for
// its chain as for any other, and its id can be bound anew.
func TestMemorySessionsTTL(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		s := NewMemorySessions(10, time.Hour)
		if err := s.Bind(ctx, "s1", chainAlice); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Minute)
		mustState(t, s, "s1", chainAlice, SessionOwn, "within the TTL") // renews until 1h50
		time.Sleep(50 * time.Minute)
		mustState(t, s, "s1", chainMal, SessionOther, "another chain, within the renewed TTL")
		time.Sleep(time.Hour)
		mustState(t, s, "s1", chainAlice, SessionUnknown, "the creating chain after expiry")
		mustState(t, s, "s1", chainMal, SessionUnknown, "another chain after expiry")
		if s.Len() != 0 {
			t.Errorf("Len %d after expiry", s.Len())
		}
		if err := s.Bind(ctx, "s1", chainMal); err != nil {
			t.Errorf("an expired binding blocked a new one: %v", err)
		}
		mustState(t, s, "s1", chainAlice, SessionOther, "the old chain of an expired, rebound id")
	})
}

// A flood of initialize responses (65,536 by default) evicts the least
// recently used bindings: their sessions become unknown (404), never
// forwardable, for their own chain as for the flooder's.
func TestMemorySessionsEvictionIsUnknown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := NewMemorySessions(3, time.Hour)
	for _, id := range []string{"victim", "recent", "other"} {
		if err := s.Bind(ctx, id, chainAlice); err != nil {
			t.Fatal(err)
		}
	}
	mustState(t, s, "recent", chainAlice, SessionOwn, "recent") // victim is now the least recently used
	mustState(t, s, "other", chainAlice, SessionOwn, "other")
	if err := s.Bind(ctx, "flood-0", chainMal); err != nil {
		t.Fatal(err)
	}
	mustState(t, s, "victim", chainMal, SessionUnknown, "the flooder with the evicted session")
	mustState(t, s, "victim", chainAlice, SessionUnknown, "the owner of the evicted session")
	mustState(t, s, "recent", chainAlice, SessionOwn, "a recently used session after one eviction")
	mustState(t, s, "other", chainAlice, SessionOwn, "a recently used session after one eviction")
	for i := 1; i <= 3; i++ {
		if err := s.Bind(ctx, "flood-"+strconv.Itoa(i), chainMal); err != nil {
			t.Fatal(err)
		}
	}
	if s.Len() != 3 {
		t.Errorf("Len %d, want the cap 3", s.Len())
	}
	for _, id := range []string{"recent", "other"} {
		mustState(t, s, id, chainMal, SessionUnknown, "the flooder with evicted "+id)
		mustState(t, s, id, chainAlice, SessionUnknown, "the owner of evicted "+id)
	}
}

// A restart (a new process, a new store) knows no session: every id
// bound before it is unknown.
func TestMemorySessionsRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	before := NewMemorySessions(0, 0)
	if err := before.Bind(ctx, "s1", chainAlice); err != nil {
		t.Fatal(err)
	}
	after := NewMemorySessions(0, 0)
	mustState(t, after, "s1", chainAlice, SessionUnknown, "the owner after a restart")
	mustState(t, after, "s1", chainMal, SessionUnknown, "another chain after a restart")
}

func TestSessionState(t *testing.T) {
	t.Parallel()
	for st, want := range map[SessionState]string{SessionUnknown: "unknown", SessionOwn: "own", SessionOther: "other", 9: "unknown"} {
		if st.String() != want {
			t.Errorf("%d.String() = %q, want %q", st, st.String(), want)
		}
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
