package revocation

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kavachgate/kavach/internal/redistest"
)

// Tests against a real redis-server (DESIGN.md §5, CONVENTIONS.md "Tests
// that count"). Each test runs its own server on a free loopback port.

// redisServer is a redis-server process of one test (internal/redistest),
// under the names these tests use.
type redisServer struct{ *redistest.Server }

// startRedisServer starts redis-server on a free loopback port and stops
// it at cleanup. Without redis-server the test fails under CI=true and is
// skipped otherwise.
func startRedisServer(t testing.TB, args ...string) *redisServer {
	t.Helper()
	return &redisServer{redistest.Start(t, args...)}
}

func (s *redisServer) start(extra ...string) { s.Restart(extra...) }
func (s *redisServer) stop()                 { s.Stop() }
func (s *redisServer) addr() string          { return s.Addr() }
func (s *redisServer) url() string           { return s.URL() }
func (s *redisServer) client() *redis.Client { return s.Client() }

// testOptions are short intervals, so that losing Redis shows in seconds.
func testOptions(url string) RedisOptions {
	return RedisOptions{URL: url, MaxStaleness: 2 * time.Second, PingInterval: 100 * time.Millisecond}
}

// startSet makes a Redis set, runs it until the test ends and waits for
// its first load. setup, when not nil, runs before Run.
func startSet(t testing.TB, opts RedisOptions, setup func(*Redis)) *Redis {
	t.Helper()
	r := runSet(t, opts, setup)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.WaitLoaded(ctx); err != nil {
		t.Fatalf("WaitLoaded: %v", err)
	}
	return r
}

// runSet is startSet without waiting for the load.
func runSet(t testing.TB, opts RedisOptions, setup func(*Redis)) *Redis {
	t.Helper()
	r, err := NewRedis(opts)
	if err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		setup(r)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Run did not return within 10 s of its context's end")
		}
		_ = r.Close()
	})
	return r
}

// waitFor polls cond until it holds and returns how long that took, or
// fails the test after limit.
func waitFor(t testing.TB, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %v", what, limit)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return time.Since(start)
}

// spinUntil is waitFor with a finer poll, to measure sub-millisecond
// latencies. It sleeps rather than spins: a goroutine spinning with
// runtime.Gosched keeps its P from polling the network, and on two cores
// the receiver then waits for sysmon's 10 ms netpoll.
func spinUntil(limit time.Duration, cond func() bool) (time.Duration, bool) {
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			return time.Since(start), false
		}
		time.Sleep(20 * time.Microsecond)
	}
	return time.Since(start), true
}

func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

// Two gateways on one Redis: what one revokes the other rejects, ids and
// every kind of cutoff. The latency from Revoke returning to the other
// gateway rejecting is logged (DESIGN.md §9 budgets it at p99 ≤ 50 ms;
// `go test -bench RedisPropagation` measures it without -race).
func TestRedisPropagation(t *testing.T) {
	t.Parallel()
	srv := startRedisServer(t)
	a := startSet(t, testOptions(srv.url()), nil)
	b := startSet(t, testOptions(srv.url()), nil)
	ctx := context.Background()
	until := time.Now().Add(time.Hour)

	const n = 200
	var revoke, propagate []time.Duration
	for i := range n {
		id := "agt_" + strconv.Itoa(i)
		start := time.Now()
		if err := a.Revoke(ctx, Entry{ID: id, Until: until}); err != nil {
			t.Fatal(err)
		}
		returned := time.Now()
		if !a.IsRevoked(id) {
			t.Fatalf("%s: the revoking gateway does not reject it once Revoke returned", id)
		}
		d, ok := spinUntil(2*time.Second, func() bool { return b.IsRevoked(id) })
		if !ok {
			t.Fatalf("%s: the other gateway does not reject it after 2 s", id)
		}
		revoke = append(revoke, returned.Sub(start))
		propagate = append(propagate, d)
	}
	t.Logf("Revoke round trip (SET+PUBLISH): p50 %v, p99 %v, max %v", percentile(revoke, .5), percentile(revoke, .99), percentile(revoke, 1))
	t.Logf("propagation, Revoke returned → other gateway rejects (%d ids, -race): p50 %v, p99 %v, max %v",
		n, percentile(propagate, .5), percentile(propagate, .99), percentile(propagate, 1))
	if b.IsRevoked("agt_" + strconv.Itoa(n)) {
		t.Error("an id never revoked is revoked")
	}

	before := time.Now().Truncate(time.Second)
	for _, kind := range []Kind{CutoffSubject, CutoffClient, CutoffKey} {
		if err := a.Revoke(ctx, Entry{ID: "usr_alice", Cutoff: kind, Before: before, Until: until}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 2*time.Second, string(kind)+" cutoff on the other gateway", func() bool {
			return b.RevokedBefore(kind, "usr_alice", before.Unix()-1)
		})
		if b.RevokedBefore(kind, "usr_alice", before.Unix()) {
			t.Errorf("%s cutoff: a token issued at the cutoff is revoked", kind)
		}
	}
	if b.IsRevoked("usr_alice") {
		t.Error("a cutoff for usr_alice revokes the id usr_alice")
	}
	if st := b.Status(); !st.Fresh || !st.Loaded || st.Entries != n+3 || st.MaxMemoryPolicy != "noeviction" {
		t.Errorf("Status() = %+v, want fresh, loaded, %d entries, noeviction", st, n+3)
	}
}

// Pings are answered and revocations propagate with RESP2 (the default)
// and RESP3 (protocol=3 in the URL): the set stays fresh past MaxStaleness.
func TestRedisProtocols(t *testing.T) {
	t.Parallel()
	for _, query := range []string{"", "?protocol=3"} {
		t.Run("URL"+query, func(t *testing.T) {
			t.Parallel()
			srv := startRedisServer(t)
			opts := testOptions(srv.url() + query)
			a := startSet(t, opts, nil)
			b := startSet(t, opts, nil)
			if err := a.Revoke(context.Background(), Entry{ID: "agt_3", Until: time.Now().Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 2*time.Second, "propagation", func() bool { return b.IsRevoked("agt_3") })
			time.Sleep(opts.MaxStaleness + opts.PingInterval)
			if !a.Fresh() || !b.Fresh() {
				t.Errorf("not fresh after MaxStaleness: %+v, %+v", a.Status(), b.Status())
			}
			// Not asserted: on a loaded machine three 100 ms pings can go
			// unanswered, and a reconnect is then the right thing to do.
			t.Logf("reconnects: %d, %d", a.Status().Reconnects, b.Status().Reconnects)
		})
	}
}

// An entry leaves every gateway, and Redis, at its Until.
func TestRedisExpiry(t *testing.T) {
	t.Parallel()
	srv := startRedisServer(t)
	a := startSet(t, testOptions(srv.url()), nil)
	b := startSet(t, testOptions(srv.url()), nil)
	ctx := context.Background()
	until := time.Now().Add(1500 * time.Millisecond)
	before := time.Now().Truncate(time.Second)
	if err := a.Revoke(ctx, Entry{ID: "tok_short", Until: until}); err != nil {
		t.Fatal(err)
	}
	if err := a.Revoke(ctx, Entry{ID: "usr_a", Cutoff: CutoffSubject, Before: before, Until: until}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "revocation on the other gateway", func() bool {
		return b.IsRevoked("tok_short") && b.RevokedBefore(CutoffSubject, "usr_a", before.Unix()-1)
	})
	time.Sleep(time.Until(until))
	for name, s := range map[string]*Redis{"revoking gateway": a, "other gateway": b} {
		if s.IsRevoked("tok_short") || s.RevokedBefore(CutoffSubject, "usr_a", before.Unix()-1) {
			t.Errorf("%s: still revoked after Until", name)
		}
	}
	c := srv.client()
	waitFor(t, time.Second, "Redis forgets the keys", func() bool {
		n, err := c.Exists(ctx, RedisKeyPrefix+"id:tok_short", RedisKeyPrefix+"sub:usr_a").Result()
		return err == nil && n == 0
	})
	late := startSet(t, testOptions(srv.url()), nil)
	if late.IsRevoked("tok_short") || late.Status().Entries != 0 {
		t.Error("a gateway started after Until loaded the expired entry")
	}
}

// A gateway started after revocations loads them, over several SCAN pages.
func TestRedisLoadsExisting(t *testing.T) {
	t.Parallel()
	srv := startRedisServer(t)
	ctx := context.Background()
	stored, err := PublishRevocation(ctx, srv.url(), Entry{ID: "agt_89"}, time.Hour, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(stored.Until); d < time.Hour || d > time.Hour+time.Minute {
		t.Errorf("PublishRevocation stored Until now+%v, want now+1h+2×30s", d)
	}
	before := time.Now().Truncate(time.Second)
	if _, err := PublishRevocation(ctx, srv.url(), Entry{ID: "k1", Cutoff: CutoffKey, Before: before}, 0, 0); err != nil {
		t.Fatal(err)
	}
	// More keys than one SCAN page holds, written as another tool would.
	const bulk = 2500
	pipe := srv.client().Pipeline()
	until := time.Now().Add(time.Hour).UTC()
	for i := range bulk {
		e := Entry{ID: "tok_" + strconv.Itoa(i), Until: until}
		pipe.Set(ctx, redisKey(e), fmt.Sprintf(`{"id":%q,"until":%q}`, e.ID, until.Format(time.RFC3339Nano)), time.Hour)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}

	s := startSet(t, testOptions(srv.url()), nil)
	if !s.IsRevoked("agt_89") || !s.RevokedBefore(CutoffKey, "k1", before.Unix()-1) {
		t.Error("entries written before the gateway started are not loaded")
	}
	for _, i := range []int{0, 1234, bulk - 1} {
		if !s.IsRevoked("tok_" + strconv.Itoa(i)) {
			t.Errorf("tok_%d not loaded", i)
		}
	}
	if got := s.Status().Entries; got != bulk+2 {
		t.Errorf("Status().Entries = %d, want %d", got, bulk+2)
	}
	if !s.Fresh() {
		t.Error("not fresh after the load")
	}
}

// A revocation published after the gateway subscribed and before its SCAN
// reaches it by the subscription. The hook publishes a message without
// writing the key, so the scan cannot be what finds it.
func TestRedisSubscribeBeforeScan(t *testing.T) {
	t.Parallel()
	srv := startRedisServer(t)
	c := srv.client()
	ctx := context.Background()
	msg := fmt.Sprintf(`{"id":"agt_race","until":%q}`, time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	var subscribers int64 = -1
	s := startSet(t, testOptions(srv.url()), func(r *Redis) {
		r.beforeLoad = func() {
			if subscribers != -1 {
				return // a reconnect
			}
			n, err := c.PubSubNumSub(ctx, RedisChannel).Result()
			if err != nil {
				t.Error(err)
			}
			subscribers = n[RedisChannel]
			if err := c.Publish(ctx, RedisChannel, msg).Err(); err != nil {
				t.Error(err)
			}
		}
	})
	if subscribers != 1 {
		t.Fatalf("subscribers before the scan = %d, want 1", subscribers)
	}
	waitFor(t, 2*time.Second, "the revocation published before the scan", func() bool { return s.IsRevoked("agt_race") })
}

// Redis gone: Fresh stays true until MaxStaleness has passed without an
// answer, then false. What a second client writes while the gateway is
// disconnected is loaded when it reconnects, and it is fresh again without
// a restart.
func TestRedisStoppedAndBack(t *testing.T) {
	t.Parallel()
	srv := startRedisServer(t)
	opts := testOptions(srv.url())
	s := startSet(t, opts, nil)
	waitFor(t, time.Second, "fresh", s.Fresh)

	killed := time.Now()
	srv.stop()
	if !s.Fresh() {
		t.Fatal("not fresh right after Redis stopped: MaxStaleness has not passed")
	}
	waitFor(t, opts.MaxStaleness+2*time.Second, "stale after Redis stopped", func() bool { return !s.Fresh() })
	stale := time.Since(killed)
	t.Logf("Redis killed → Fresh() false after %v (MaxStaleness %v, PingInterval %v)", stale, opts.MaxStaleness, opts.PingInterval)
	if stale < opts.MaxStaleness-2*opts.PingInterval {
		t.Errorf("stale after %v, before MaxStaleness %v", stale, opts.MaxStaleness)
	}

	// Back, but refusing the gateway (it has no password) until the
	// second client has written.
	srv.start("--requirepass", "s3cret")
	authURL := "redis://:s3cret@" + srv.addr() + "/0"
	stored, err := PublishRevocation(context.Background(), authURL, Entry{ID: "agt_offline"}, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if s.IsRevoked("agt_offline") || s.Fresh() {
		t.Fatal("the gateway heard Redis while it was refused")
	}
	c := redis.NewClient(&redis.Options{Addr: srv.addr(), Password: "s3cret", Protocol: 2})
	defer c.Close()
	if err := c.ConfigSet(context.Background(), "requirepass", "").Err(); err != nil {
		t.Fatal(err)
	}
	opened := time.Now()
	waitFor(t, 10*time.Second, "the revocation written while disconnected", func() bool { return s.IsRevoked("agt_offline") })
	waitFor(t, time.Second, "fresh again", s.Fresh)
	t.Logf("Redis reachable again → entry loaded and fresh after %v", time.Since(opened))
	if st := s.Status(); st.Reconnects == 0 || !st.LastLoad.After(opened) {
		t.Errorf("Status() = %+v, want reconnects and a load after Redis came back", st)
	}
	if !stored.Until.After(time.Now().Add(time.Hour)) {
		t.Errorf("PublishRevocation without until stored %v", stored.Until)
	}
}

// Redis restarted empty: the running gateway keeps what it knew and
// reports the missing epoch; after Reseed a new gateway loads the entries,
// and the running ones see the epoch back.
func TestRedisRestartedEmpty(t *testing.T) {
	t.Parallel()
	srv := startRedisServer(t)
	ctx := context.Background()
	issuer, err := NewRedis(RedisOptions{URL: srv.url()}) // not run: it only writes
	if err != nil {
		t.Fatal(err)
	}
	defer issuer.Close()
	if err := issuer.Reseed(ctx, nil); err != nil {
		t.Fatal(err)
	}
	a := startSet(t, testOptions(srv.url()), nil)
	if a.Status().EpochMissing {
		t.Fatal("EpochMissing with the epoch set")
	}
	until := time.Now().Add(time.Hour)
	before := time.Now().Truncate(time.Second)
	entries := []Entry{
		{ID: "agt_89", Until: until},
		{ID: "usr_alice", Cutoff: CutoffSubject, Before: before, Until: until},
	}
	for _, e := range entries {
		if err := a.Revoke(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	knows := func(s *Redis) bool {
		return s.IsRevoked("agt_89") && s.RevokedBefore(CutoffSubject, "usr_alice", before.Unix()-1)
	}

	srv.stop()
	srv.start()
	waitFor(t, 10*time.Second, "EpochMissing on the running gateway", func() bool { return a.Status().EpochMissing })
	waitFor(t, 10*time.Second, "fresh after the reload", a.Fresh)
	if !knows(a) {
		t.Fatal("the running gateway forgot revocations Redis lost")
	}
	b := startSet(t, testOptions(srv.url()), nil) // started while Redis is empty
	if knows(b) || !b.Status().EpochMissing {
		t.Fatalf("a gateway started on the empty Redis: knows %v, status %+v", knows(b), b.Status())
	}

	if err := issuer.Reseed(ctx, entries); err != nil {
		t.Fatal(err)
	}
	c := startSet(t, testOptions(srv.url()), nil)
	if !knows(c) || c.Status().EpochMissing {
		t.Errorf("a gateway started after Reseed: knows %v, status %+v", knows(c), c.Status())
	}
	// Gateways already running load again when the epoch comes back.
	waitFor(t, 5*time.Second, "the running gateways see the epoch and the entries", func() bool {
		return knows(b) && !b.Status().EpochMissing && !a.Status().EpochMissing
	})
}

// A connection that stays open but gets no answer (Redis paused) makes the
// gateway stale within MaxStaleness; it recovers when Redis answers again.
func TestRedisHalfOpen(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name  string
		pause []any
	}{
		{"CLIENT PAUSE", []any{"CLIENT", "PAUSE", "5000", "ALL"}},
		{"DEBUG SLEEP", []any{"DEBUG", "SLEEP", "5"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := startRedisServer(t)
			opts := testOptions(srv.url())
			s := startSet(t, opts, nil)
			other := startSet(t, opts, nil)
			waitFor(t, time.Second, "fresh", s.Fresh)
			// DEBUG SLEEP answers only when it is over: a client that timed
			// out and retried would put Redis to sleep a second time.
			c := redis.NewClient(&redis.Options{Addr: srv.addr(), Protocol: 2, ReadTimeout: 15 * time.Second, MaxRetries: -1})
			defer c.Close()
			paused := time.Now()
			go func() { _ = c.Do(context.Background(), tt.pause...).Err() }()
			stale := waitFor(t, opts.MaxStaleness+2*time.Second, "stale while Redis is paused", func() bool { return !s.Fresh() })
			waitFor(t, 15*time.Second, "fresh after the pause", s.Fresh)
			t.Logf("%s 5 s: Fresh() false after %v, true again after %v (MaxStaleness %v)",
				tt.name, stale, time.Since(paused), opts.MaxStaleness)
			if err := other.Revoke(context.Background(), Entry{ID: "agt_after", Until: time.Now().Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 2*time.Second, "propagation after the pause", func() bool { return s.IsRevoked("agt_after") })
		})
	}
}

// A revocation is never shortened, in Redis either: a later write with an
// earlier Until (or, for a cutoff, an earlier Before) keeps the later one.
func TestRedisNeverShortened(t *testing.T) {
	t.Parallel()
	srv := startRedisServer(t)
	ctx := context.Background()
	c := srv.client()
	s := startSet(t, testOptions(srv.url()), nil)
	now := time.Now().UTC().Truncate(time.Second)
	long, short := now.Add(time.Hour), now.Add(2*time.Second)
	early, late := now.Add(-time.Hour), now.Add(-time.Minute)

	stored := func(e Entry) Entry {
		t.Helper()
		v, err := c.Get(ctx, redisKey(e)).Result()
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeStored(v, time.Now(), time.Hour, 0)
		if err != nil {
			t.Fatal(err)
		}
		if ttl := c.PTTL(ctx, redisKey(e)).Val(); ttl < time.Until(got.Until)-time.Second {
			t.Errorf("%s: PTTL %v, shorter than its Until", e.ID, ttl)
		}
		return got
	}
	if _, err := PublishRevocation(ctx, srv.url(), Entry{ID: "agt_x", Until: long}, 0, 0); err != nil {
		t.Fatal(err)
	}
	got, err := PublishRevocation(ctx, srv.url(), Entry{ID: "agt_x", Until: short}, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Until.Equal(long) || !stored(got).Until.Equal(long) {
		t.Errorf("after a shorter write: returned %v, stored %v, want %v", got.Until, stored(got).Until, long)
	}

	if err := s.Revoke(ctx, Entry{ID: "usr_a", Cutoff: CutoffSubject, Before: late, Until: long}); err != nil {
		t.Fatal(err)
	}
	if err := s.Revoke(ctx, Entry{ID: "usr_a", Cutoff: CutoffSubject, Before: early, Until: short}); err != nil {
		t.Fatal(err)
	}
	if e := stored(Entry{ID: "usr_a", Cutoff: CutoffSubject}); !e.Before.Equal(late) || !e.Until.Equal(long) {
		t.Errorf("cutoff after an earlier, shorter write: stored before %v until %v, want %v %v", e.Before, e.Until, late, long)
	}
	mid := now.Add(-30 * time.Minute).Unix()
	late2 := startSet(t, testOptions(srv.url()), nil)
	if !late2.RevokedBefore(CutoffSubject, "usr_a", mid) || !late2.IsRevoked("agt_x") {
		t.Error("a new gateway loads a shortened revocation")
	}

	// Writers racing on one key: the longest Until wins whatever the order.
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 10 {
				u := now.Add(2*time.Hour + time.Duration(w*10+i)*time.Second)
				if _, err := PublishRevocation(ctx, srv.url(), Entry{ID: "agt_race", Until: u}, 0, 0); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if want := now.Add(2*time.Hour + 79*time.Second); !stored(Entry{ID: "agt_race"}).Until.Equal(want) {
		t.Errorf("after racing writers: until %v, want %v", stored(Entry{ID: "agt_race"}).Until, want)
	}
}

// Each connection reads maxmemory-policy and warns unless it is noeviction.
func TestRedisMaxMemoryPolicy(t *testing.T) {
	t.Parallel()
	for _, policy := range []string{"noeviction", "allkeys-lru"} {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			srv := startRedisServer(t, "--maxmemory-policy", policy)
			var buf syncBuffer
			opts := testOptions(srv.url())
			opts.Logger = slog.New(slog.NewTextHandler(&buf, nil))
			s := startSet(t, opts, nil)
			if got := s.Status().MaxMemoryPolicy; got != policy {
				t.Errorf("MaxMemoryPolicy = %q, want %q", got, policy)
			}
			warned := strings.Contains(buf.String(), "set maxmemory-policy noeviction")
			if warned != (policy != "noeviction") {
				t.Errorf("warned = %v with %s; log:\n%s", warned, policy, buf.String())
			}
		})
	}
}

// syncBuffer is a bytes.Buffer that a logger may write from any goroutine.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// BenchmarkRedisPropagation measures DESIGN.md §9's revocation budget: from
// Revoke returning on one gateway to another gateway rejecting, p99 ≤ 50 ms.
func BenchmarkRedisPropagation(b *testing.B) {
	srv := startRedisServer(b)
	a := startSet(b, testOptions(srv.url()), nil)
	other := startSet(b, testOptions(srv.url()), nil)
	until := time.Now().Add(time.Hour)
	var lat []time.Duration
	i := 0
	for b.Loop() {
		id := "tok_" + strconv.Itoa(i)
		i++
		if err := a.Revoke(b.Context(), Entry{ID: id, Until: until}); err != nil {
			b.Fatal(err)
		}
		d, ok := spinUntil(2*time.Second, func() bool { return other.IsRevoked(id) })
		if !ok {
			b.Fatal(errors.New("not propagated within 2 s"))
		}
		lat = append(lat, d)
	}
	b.ReportMetric(float64(percentile(lat, .5).Microseconds()), "p50-µs")
	b.ReportMetric(float64(percentile(lat, .99).Microseconds()), "p99-µs")
}

// TestRedisSharedClient: a set given a client uses it and leaves it open
// when it closes: the client's owner (a node sharing one client per URL
// between its users) closes it.
func TestRedisSharedClient(t *testing.T) {
	t.Parallel()
	srv := startRedisServer(t)
	o, err := redisOptions(srv.url())
	if err != nil {
		t.Fatal(err)
	}
	shared := redis.NewClient(o)
	defer shared.Close()
	opts := testOptions("")
	opts.Client = shared
	r := startSet(t, opts, nil)
	ctx := context.Background()
	if err := r.Revoke(ctx, Entry{ID: "tok_shared"}); err != nil {
		t.Fatal(err)
	}
	if n, err := srv.client().Exists(ctx, RedisKeyPrefix+"id:tok_shared").Result(); err != nil || n != 1 {
		t.Fatalf("the entry in Redis: %d %v", n, err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := shared.Ping(ctx).Err(); err != nil {
		t.Fatalf("the shared client after the set closed: %v", err)
	}
	if st := r.Status(); st.Mode != ModeRedis {
		t.Fatalf("Status().Mode = %q", st.Mode)
	}
}
