package issuer

import (
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestLoginLimiter(t *testing.T) {
	l := newLoginLimiter()
	t0 := time.Unix(1_700_000_000, 0)
	for i := range loginUserFailures {
		if _, ok := l.attempt("alice", "192.0.2.1", t0.Add(time.Duration(i)*time.Second)); !ok {
			t.Fatalf("refused attempt %d", i+1)
		}
	}
	retry, ok := l.attempt("alice", "198.51.100.7", t0.Add(time.Minute))
	if ok || retry != loginWindow-time.Minute {
		t.Fatalf("after the limit: ok %v retry %v (from any address)", ok, retry)
	}
	if _, ok := l.attempt("bob", "198.51.100.7", t0.Add(time.Minute)); !ok {
		t.Fatal("another user was refused")
	}
	l.succeed("bob", "198.51.100.7")
	if _, ok := l.attempt("alice", "192.0.2.1", t0.Add(loginWindow)); !ok {
		t.Fatal("still refused after the window")
	}
	l.succeed("alice", "192.0.2.1")
	if len(l.users) != 0 || l.ips["198.51.100.7"].failures != 0 || l.ips["192.0.2.1"].failures != 0 {
		t.Fatal("success did not reset the user and refund the address")
	}
	l.sweep(t0.Add(2 * loginWindow))
	if len(l.ips) != 0 {
		t.Fatalf("sweep left %d addresses", len(l.ips))
	}
}

// Attempts are counted when they start: concurrent guesses cannot all
// pass the check before the first failure is recorded.
func TestLoginLimiterConcurrent(t *testing.T) {
	l := newLoginLimiter()
	t0 := time.Unix(1_700_000_000, 0)
	var wg sync.WaitGroup
	var allowed atomic.Int32
	for range 50 {
		wg.Go(func() {
			if _, ok := l.attempt("alice", "192.0.2.1", t0); ok {
				allowed.Add(1)
			}
		})
	}
	wg.Wait()
	if n := allowed.Load(); n != loginUserFailures {
		t.Fatalf("%d concurrent attempts were let through, want %d", n, loginUserFailures)
	}
}

// A full table refuses untracked keys rather than forget counts.
func TestLoginLimiterBounded(t *testing.T) {
	l := newLoginLimiter()
	t0 := time.Unix(1_700_000_000, 0)
	for i := range loginMaxKeys {
		l.attempt("u"+strconv.Itoa(i), "ip"+strconv.Itoa(i), t0)
	}
	if len(l.users) != loginMaxKeys {
		t.Fatalf("%d entries, want %d", len(l.users), loginMaxKeys)
	}
	if _, ok := l.attempt("newcomer", "ip0", t0); ok || len(l.users) != loginMaxKeys {
		t.Fatal("an untracked key was let in uncounted while the table is full")
	}
	if _, ok := l.attempt("newcomer", "203.0.113.9", t0.Add(loginWindow)); !ok {
		t.Fatal("expired entries were not swept to make room")
	}
}

func TestLimiterAddr(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1:1234":                      "192.0.2.1",
		"[2001:db8:1:2:3:4:5:6]:443":          "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff:ffff:ffff:1]:443": "2001:db8:1:2::/64",
		"[::ffff:192.0.2.1]:80":               "192.0.2.1",
	} {
		if got := limiterAddr(in); got != want {
			t.Errorf("limiterAddr(%s) = %s, want %s", in, got, want)
		}
	}
}
