package ratelimit

import (
	"context"
	"strconv"
	"testing"
	"time"
)

// clock is a test clock in nanoseconds.
type clock struct{ t int64 }

func (c *clock) now() int64          { return c.t }
func (c *clock) add(d time.Duration) { c.t += int64(d) }
func newMem(c *clock, n int) *Memory { return NewMemory(MemoryOptions{Now: c.now, MaxBuckets: n}) }
func mustLimit(t *testing.T, rate string, per Per, burst int64) *Limit {
	t.Helper()
	l, err := NewLimit(rate, per, burst, "http://gw/mcp")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func take(t *testing.T, s Store, checks ...Check) []Result {
	t.Helper()
	res := make([]Result, len(checks))
	if err := s.Take(context.Background(), checks, res); err != nil {
		t.Fatal(err)
	}
	return res
}

func TestParseRate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in     string
		n      int64
		w      time.Duration
		errors bool
	}{
		{"5/m", 5, time.Minute, false},
		{"60/s", 60, time.Second, false},
		{"1000/h", 1000, time.Hour, false},
		{"0/m", 0, 0, true},
		{"-1/m", 0, 0, true},
		{"+5/m", 0, 0, true},
		{"05/m", 0, 0, true},
		{"5/d", 0, 0, true},
		{"5", 0, 0, true},
		{"5/M", 0, 0, true},
		{"1000001/s", 0, 0, true},
		{"x/s", 0, 0, true},
	} {
		n, w, err := ParseRate(tc.in)
		if (err != nil) != tc.errors || n != tc.n || w != tc.w {
			t.Errorf("ParseRate(%q) = %d, %v, %v", tc.in, n, w, err)
		}
	}
}

// TestMemoryBucket walks one bucket of 5/m (burst 5): five at once, the
// sixth refused with the time until a token is back, one more every 12 s.
func TestMemoryBucket(t *testing.T) {
	t.Parallel()
	c := &clock{t: 1}
	m := newMem(c, 0)
	l := mustLimit(t, "5/m", PerAgent, 0)
	a := Check{Limit: l, Issuer: "iss", Principal: "agt_a"}
	for i := range 5 {
		r := take(t, m, a)[0]
		if !r.Allowed || r.Remaining != int64(4-i) {
			t.Fatalf("request %d: %+v, want allowed with %d remaining", i+1, r, 4-i)
		}
	}
	r := take(t, m, a)[0]
	if r.Allowed || !r.FirstDenial || r.RetryAfter != 12*time.Second || r.Reset != time.Minute {
		t.Fatalf("sixth: %+v, want refused (first), retry after 12s, reset 1m", r)
	}
	if r := take(t, m, a)[0]; r.Allowed || r.FirstDenial {
		t.Fatalf("seventh: %+v, want refused, not the first refusal", r)
	}
	c.add(11 * time.Second)
	if r := take(t, m, a)[0]; r.Allowed || r.RetryAfter != time.Second {
		t.Fatalf("after 11s: %+v, want refused, retry after 1s", r)
	}
	c.add(time.Second)
	if r := take(t, m, a)[0]; !r.Allowed || r.Remaining != 0 {
		t.Fatalf("after 12s: %+v, want one allowed", r)
	}
	if r := take(t, m, a)[0]; r.Allowed || !r.FirstDenial {
		t.Fatalf("after the refill: %+v, want a first refusal again", r)
	}
	c.add(time.Hour)
	for i := range 5 {
		if r := take(t, m, a)[0]; !r.Allowed {
			t.Fatalf("an hour later, request %d refused: a bucket refills to its burst", i+1)
		}
	}
}

// TestMemoryBurst: burst sets the bucket's size, the rate its refill.
func TestMemoryBurst(t *testing.T) {
	t.Parallel()
	c := &clock{t: 1}
	m := newMem(c, 0)
	a := Check{Limit: mustLimit(t, "60/m", PerAgent, 2), Issuer: "iss", Principal: "agt_a"}
	got := ""
	for range 4 {
		if take(t, m, a)[0].Allowed {
			got += "y"
		} else {
			got += "n"
		}
	}
	if got != "yynn" {
		t.Fatalf("burst 2: %s, want yynn", got)
	}
	c.add(time.Second)
	if !take(t, m, a)[0].Allowed {
		t.Fatal("60/m: a token a second")
	}
}

// TestMemoryPrincipals: buckets are per limit, issuer and principal.
func TestMemoryPrincipals(t *testing.T) {
	t.Parallel()
	c := &clock{t: 1}
	m := newMem(c, 0)
	l := mustLimit(t, "1/h", PerAgent, 0)
	other, _ := NewLimit("1/h", PerAgent, 0, "http://gw/other")
	if other.ID == l.ID {
		t.Fatal("two routes' limits share an ID")
	}
	take(t, m, Check{Limit: l, Issuer: "iss", Principal: "agt_a"})
	for name, ch := range map[string]Check{
		"another agent":                    {Limit: l, Issuer: "iss", Principal: "agt_b"},
		"another issuer":                   {Limit: l, Issuer: "iss2", Principal: "agt_a"},
		"another route":                    {Limit: other, Issuer: "iss", Principal: "agt_a"},
		"no split of issuer and principal": {Limit: l, Issuer: "is", Principal: "sagt_a"},
	} {
		if !take(t, m, ch)[0].Allowed {
			t.Errorf("%s shares agt_a's bucket", name)
		}
	}
	if take(t, m, Check{Limit: l, Issuer: "iss", Principal: "agt_a"})[0].Allowed {
		t.Fatal("agt_a's second request in the hour allowed")
	}
}

// TestMemoryAllOrNothing: when one limit of a request refuses, the others
// keep their tokens.
func TestMemoryAllOrNothing(t *testing.T) {
	t.Parallel()
	c := &clock{t: 1}
	m := newMem(c, 0)
	agent := Check{Limit: mustLimit(t, "3/m", PerAgent, 0), Issuer: "iss", Principal: "agt_a"}
	user := Check{Limit: mustLimit(t, "1/m", PerUser, 0), Issuer: "iss", Principal: "usr_a"}
	if r := take(t, m, agent, user); !r[0].Allowed || !r[1].Allowed {
		t.Fatalf("first: %+v", r)
	}
	for range 3 {
		if r := take(t, m, agent, user); r[1].Allowed {
			t.Fatalf("user bucket allowed twice: %+v", r)
		}
	}
	// The agent's bucket gave back what the refused requests took.
	if r := take(t, m, agent)[0]; !r.Allowed || r.Remaining != 1 {
		t.Fatalf("agent after refusals: %+v, want allowed with 1 remaining", r)
	}
}

// TestMemoryBounded: the store never holds more than its bound; full
// buckets are the first forgotten, and forgetting them changes nothing.
func TestMemoryBounded(t *testing.T) {
	t.Parallel()
	c := &clock{t: 1}
	m := newMem(c, shards*8)
	l := mustLimit(t, "1/s", PerAgent, 0)
	for i := range 10000 {
		take(t, m, Check{Limit: l, Issuer: "iss", Principal: "agt_" + strconv.Itoa(i)})
		c.add(time.Millisecond)
	}
	if n := m.Len(); n > shards*8 {
		t.Fatalf("%d buckets kept, bound %d", n, shards*8)
	}
	// The last agent's bucket is busy (1/s, used 0 ms ago): still refuses.
	if take(t, m, Check{Limit: l, Issuer: "iss", Principal: "agt_9999"})[0].Allowed {
		t.Fatal("a busy bucket was forgotten")
	}
}

func TestMemoryTakeAllocs(t *testing.T) {
	c := &clock{t: 1}
	m := newMem(c, 0)
	checks := []Check{{Limit: mustLimit(t, "1000000/s", PerAgent, 0), Issuer: "iss", Principal: "agt_a"}}
	var res [1]Result
	ctx := context.Background()
	_ = m.Take(ctx, checks, res[:])
	if n := testing.AllocsPerRun(1000, func() { c.add(time.Microsecond); _ = m.Take(ctx, checks, res[:]) }); n != 0 {
		t.Fatalf("Take allocates %v times per request", n)
	}
}

// BenchmarkMemoryTake is one request under its limit (make bench R's
// micro-benchmark: the budget is 1 µs, 0 allocations).
func BenchmarkMemoryTake(b *testing.B) {
	m := NewMemory(MemoryOptions{})
	l, _ := NewLimit("1000000/s", PerAgent, 1000000, "http://gw/mcp")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		checks := []Check{{Limit: l, Issuer: "https://issuer.example", Principal: "agt_0123456789abcdef"}}
		var res [1]Result
		ctx := context.Background()
		for pb.Next() {
			_ = m.Take(ctx, checks, res[:])
		}
	})
}
