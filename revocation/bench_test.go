package revocation

import (
	"strconv"
	"sync"
	"testing"
	"time"
)

var (
	benchOnce sync.Once
	benchSet  *Memory
	benchIDs  []string // revoked
	benchMiss []string // never revoked
)

// millionSet is 1M revoked ids and one cutoff per kind, built once.
func millionSet(b *testing.B) *Memory {
	benchOnce.Do(func() {
		const n = 1_000_000
		benchSet = NewMemory(MemoryOptions{})
		until := time.Now().Add(24 * time.Hour)
		revokeN(b, benchSet, "tok_", n, until)
		for _, k := range []Kind{CutoffSubject, CutoffClient, CutoffKey} {
			if err := benchSet.Revoke(b.Context(), Entry{ID: "usr_alice", Cutoff: k, Before: time.Now(), Until: until}); err != nil {
				b.Fatal(err)
			}
		}
		for i := range 1024 {
			benchIDs = append(benchIDs, "tok_"+strconv.Itoa(i*977))
			benchMiss = append(benchMiss, "agt_"+strconv.Itoa(i))
		}
	})
	return benchSet
}

func BenchmarkIsRevoked(b *testing.B) {
	m := millionSet(b)
	for _, bb := range []struct {
		name string
		ids  []string
		want bool
	}{{"hit", benchIDs, true}, {"miss", benchMiss, false}} {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if m.IsRevoked(bb.ids[i&1023]) != bb.want {
					b.Fatal("wrong answer")
				}
				i++
			}
		})
	}
}

func BenchmarkIsRevokedParallel(b *testing.B) {
	m := millionSet(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if !m.IsRevoked(benchIDs[i&1023]) {
				b.Error("wrong answer")
				return
			}
			i++
		}
	})
}

func BenchmarkRevokedBefore(b *testing.B) {
	m := millionSet(b)
	iat := time.Now().Add(-time.Minute).Unix()
	b.ReportAllocs()
	for b.Loop() {
		if !m.RevokedBefore(CutoffSubject, "usr_alice", iat) {
			b.Fatal("wrong answer")
		}
	}
}

// BenchmarkTokenCheck is step 5 for a depth-2 token: jti, 2 grants, 2
// agents and three cutoffs, none revoked.
func BenchmarkTokenCheck(b *testing.B) {
	m := millionSet(b)
	ids := []string{"tok_x1", "dlg_a1", "dlg_b2", "agt_89", "agt_123"}
	iat := time.Now().Unix()
	b.ReportAllocs()
	for b.Loop() {
		for _, id := range ids {
			if m.IsRevoked(id) {
				b.Fatal("wrong answer")
			}
		}
		if m.RevokedBefore(CutoffSubject, "usr_bob", iat) || m.RevokedBefore(CutoffClient, "cli_x", iat) || m.RevokedBefore(CutoffKey, "k1", iat) {
			b.Fatal("wrong answer")
		}
	}
}

func BenchmarkRevoke(b *testing.B) {
	m := NewMemory(MemoryOptions{})
	until := time.Now().Add(time.Hour)
	ctx := b.Context()
	ids := make([]string, 1<<16)
	for i := range ids {
		ids[i] = "tok_" + strconv.Itoa(i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := m.Revoke(ctx, Entry{ID: ids[i&(1<<16-1)], Until: until}); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
