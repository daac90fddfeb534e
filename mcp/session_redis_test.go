package mcp

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kavachgate/kavach/internal/redistest"
)

// Tests against a real redis-server (CONVENTIONS.md "Tests that count"):
// each test runs its own on a free loopback port. Two RedisSessions on one
// server are two gateway nodes.

// testClock is a store's local clock, moved by the test.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// newRedisNode is one gateway's store on srv, closed when the test ends.
// A nil clock is the real one.
func newRedisNode(t *testing.T, srv *redistest.Server, opts RedisSessionOptions, clock *testClock) *RedisSessions {
	t.Helper()
	opts.URL = srv.URL()
	if clock != nil {
		opts.Now = clock.now
	}
	s, err := NewRedisSessions(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// waitRenewals waits until the renewals scheduled so far are done.
func (s *RedisSessions) waitRenewals() { s.wg.Wait() }

// commandCounter counts the commands a store sends to Redis.
type commandCounter struct{ n atomic.Int64 }

func (c *commandCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *commandCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmd)
	}
}
func (c *commandCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.n.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

func TestSessionStoreRedis(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	var db atomic.Int64
	testSessionStore(t, func(t *testing.T) SessionStore {
		// A database per subtest, so that they run in parallel on one server.
		url := strings.TrimSuffix(srv.URL(), "/0") + "/" + strconv.FormatInt(db.Add(1), 10)
		s, err := NewRedisSessions(RedisSessionOptions{URL: url})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}

// Two gateways on one Redis: a session bound on one is known on the other,
// for its chain and against every other; a Forget on one reaches the other
// at the binding's next renewal.
func TestRedisSessionsTwoNodes(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	clock := &testClock{t: time.Now()}
	a := newRedisNode(t, srv, RedisSessionOptions{}, clock)
	b := newRedisNode(t, srv, RedisSessionOptions{}, nil)
	ctx := context.Background()

	if err := a.Bind(ctx, "s1", chainAlice); err != nil {
		t.Fatal(err)
	}
	mustState(t, b, "s1", chainAlice, SessionOwn, "node b, the creating chain")
	mustState(t, b, "s1", chainChild, SessionOther, "node b, a child chain")
	mustState(t, b, "s1", chainMal, SessionOther, "node b, another chain")
	if err := b.Bind(ctx, "s1", chainMal); !errors.Is(err, ErrSessionTaken) {
		t.Errorf("node b rebound node a's session to another chain: %v", err)
	}
	mustState(t, a, "s1", chainAlice, SessionOwn, "node a after b's refused rebind")

	// Bound on b, known on a (which has no cache entry for it).
	if err := b.Bind(ctx, "s2", chainMal); err != nil {
		t.Fatal(err)
	}
	mustState(t, a, "s2", chainAlice, SessionOther, "node a, a session bound on b to another chain")
	mustState(t, a, "s2", chainMal, SessionOwn, "node a, a session bound on b to this chain")

	// b forgets s1 (its DELETE went through b). a still serves it from its
	// cache, to its own chain only, until the renewal tells it otherwise.
	b.Forget(ctx, "s1")
	mustState(t, b, "s1", chainAlice, SessionUnknown, "node b after its Forget")
	mustState(t, a, "s1", chainMal, SessionOther, "node a, another chain, before the renewal")
	clock.advance(SessionRenewInterval)
	mustState(t, a, "s1", chainAlice, SessionOwn, "node a, the use that schedules the renewal")
	a.waitRenewals()
	mustState(t, a, "s1", chainAlice, SessionUnknown, "node a after the renewal found the binding gone")
}

// The Redis layout: the key is the prefix and the hex SHA-256 of the id
// (never the id), the value the chain key, the TTL the store's.
func TestRedisSessionsLayout(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := newRedisNode(t, srv, RedisSessionOptions{TTL: time.Hour}, nil)
	if err := s.Bind(context.Background(), "secret-session-id", chainAlice); err != nil {
		t.Fatal(err)
	}
	c := srv.Client()
	ctx := context.Background()
	keys, err := c.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("secret-session-id"))
	want := "kavach:mcp:session:" + hex.EncodeToString(sum[:])
	if len(keys) != 1 || keys[0] != want {
		t.Fatalf("keys %q, want [%s]", keys, want)
	}
	if v, _ := c.Get(ctx, want).Result(); v != chainAlice {
		t.Errorf("value %x, want the chain key %x", v, chainAlice)
	}
	if ttl, _ := c.PTTL(ctx, want).Result(); ttl <= 59*time.Minute || ttl > time.Hour {
		t.Errorf("PTTL %v, want about 1h", ttl)
	}
}

// A session used on its node costs no Redis command on the request path:
// Checks are answered from the cache, and the TTL is renewed by one
// command per session per SessionRenewInterval, off the request path.
func TestRedisSessionsCacheAndRenewal(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	clock := &testClock{t: time.Now()}
	s := newRedisNode(t, srv, RedisSessionOptions{TTL: time.Hour}, clock)
	var cmds commandCounter
	s.client.AddHook(&cmds)
	ctx := context.Background()
	if err := s.Bind(ctx, "s1", chainAlice); err != nil {
		t.Fatal(err)
	}
	key := redisSessionKey(sessionKey("s1"))
	c := srv.Client()
	if err := c.PExpire(ctx, key, 10*time.Minute).Err(); err != nil {
		t.Fatal(err)
	}

	cmds.n.Store(0)
	for range 100 {
		mustState(t, s, "s1", chainAlice, SessionOwn, "a cached session")
		mustState(t, s, "s1", chainMal, SessionOther, "a cached session, another chain")
		clock.advance(time.Second / 2)
	}
	s.waitRenewals()
	if n := cmds.n.Load(); n != 0 {
		t.Errorf("%d Redis commands for 200 Checks within the renewal interval, want 0", n)
	}
	if ttl, _ := c.PTTL(ctx, key).Result(); ttl > 10*time.Minute {
		t.Errorf("PTTL %v: renewed before the interval", ttl)
	}

	clock.advance(SessionRenewInterval)
	for range 10 {
		mustState(t, s, "s1", chainAlice, SessionOwn, "a cached session, renewal due")
	}
	s.waitRenewals()
	if n := cmds.n.Load(); n != 1 {
		t.Errorf("%d Redis commands for 10 Checks once the renewal was due, want 1 (the renewal)", n)
	}
	if ttl, _ := c.PTTL(ctx, key).Result(); ttl <= 59*time.Minute {
		t.Errorf("PTTL %v after the renewal, want about 1h", ttl)
	}
}

// Evicted from the local cache is not unbound: the next Check asks Redis.
func TestRedisSessionsCacheEviction(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := newRedisNode(t, srv, RedisSessionOptions{CacheSize: 2}, nil)
	ctx := context.Background()
	for _, id := range []string{"s1", "s2", "s3", "s4"} {
		if err := s.Bind(ctx, id, chainAlice); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(s.cache.m); n != 2 {
		t.Errorf("cache holds %d entries, want its cap 2", n)
	}
	mustState(t, s, "s1", chainAlice, SessionOwn, "the owner of a session evicted from the cache")
	mustState(t, s, "s2", chainMal, SessionOther, "another chain with a session evicted from the cache")
}

// Redis down: a session this node has cached keeps working for its chain
// (and only for it); anything it must ask Redis is an error (the gateway
// answers 503), never a forward. Redis back empty (it lost its data):
// every session is unknown.
func TestRedisSessionsRedisDown(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	clock := &testClock{t: time.Now()}
	a := newRedisNode(t, srv, RedisSessionOptions{Timeout: 200 * time.Millisecond}, clock)
	b := newRedisNode(t, srv, RedisSessionOptions{Timeout: 200 * time.Millisecond}, nil)
	ctx := context.Background()
	if err := a.Bind(ctx, "s1", chainAlice); err != nil {
		t.Fatal(err)
	}
	srv.Stop()

	mustState(t, a, "s1", chainAlice, SessionOwn, "node a, its cached session, Redis down")
	mustState(t, a, "s1", chainMal, SessionOther, "node a, another chain, Redis down")
	for name, s := range map[string]*RedisSessions{"node a, an uncached id": a, "node b, a session it never met": b} {
		id := "s1"
		if s == a {
			id = "s9"
		}
		st, err := s.Check(ctx, id, chainAlice)
		if !errors.Is(err, ErrSessionStore) || HTTPStatus(err) != 503 || st == SessionOwn {
			t.Errorf("%s, Redis down: Check = %v, %v; want ErrSessionStore (503)", name, st, err)
		}
		if err != nil && strings.Contains(err.(*Error).Public, "127.0.0.1") {
			t.Errorf("the public text names the Redis address: %q", err.(*Error).Public)
		}
	}
	if err := b.Bind(ctx, "s2", chainAlice); !errors.Is(err, ErrSessionStore) {
		t.Errorf("Bind, Redis down: %v, want ErrSessionStore", err)
	}
	b.Forget(ctx, "s1") // logged, returns

	// A renewal that fails keeps the cached binding.
	clock.advance(SessionRenewInterval)
	mustState(t, a, "s1", chainAlice, SessionOwn, "node a, renewal due, Redis down")
	a.waitRenewals()
	mustState(t, a, "s1", chainAlice, SessionOwn, "node a after a failed renewal")

	srv.Restart()
	mustState(t, b, "s1", chainAlice, SessionUnknown, "node b, Redis back empty")
	clock.advance(sessionRenewRetry)
	mustState(t, a, "s1", chainAlice, SessionOwn, "node a, the use that retries the renewal")
	a.waitRenewals()
	mustState(t, a, "s1", chainAlice, SessionUnknown, "node a once the renewal found Redis empty")
}

// A binding not used for its TTL expires in Redis and in every cache: its
// session is unknown everywhere, and its id can be bound anew.
func TestRedisSessionsExpiry(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	const ttl = 300 * time.Millisecond
	a := newRedisNode(t, srv, RedisSessionOptions{TTL: ttl}, nil)
	b := newRedisNode(t, srv, RedisSessionOptions{TTL: ttl}, nil)
	ctx := context.Background()
	if err := a.Bind(ctx, "s1", chainAlice); err != nil {
		t.Fatal(err)
	}
	mustState(t, b, "s1", chainAlice, SessionOwn, "node b within the TTL") // b caches it too
	key := redisSessionKey(sessionKey("s1"))
	c := srv.Client()
	deadline := time.Now().Add(5 * time.Second)
	for c.Exists(ctx, key).Val() == 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the key outlived its %v TTL by 5 s", ttl)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The caches expire no later than the key: nothing to wait for.
	mustState(t, a, "s1", chainAlice, SessionUnknown, "node a after expiry")
	mustState(t, b, "s1", chainAlice, SessionUnknown, "node b after expiry")
	if err := b.Bind(ctx, "s1", chainMal); err != nil {
		t.Errorf("an expired binding blocked a new one: %v", err)
	}
	mustState(t, a, "s1", chainAlice, SessionOther, "node a, the old chain of an expired, rebound id")
}

// A lookup slower than Timeout is an error, not a wait and not a forward.
func TestRedisSessionsTimeout(t *testing.T) {
	t.Parallel()
	// A listener that accepts and never answers: a Redis that hangs.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	s, err := NewRedisSessions(RedisSessionOptions{URL: "redis://" + ln.Addr().String() + "/0", Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	done := make(chan error, 1)
	go func() {
		_, err := s.Check(context.Background(), "s1", chainAlice)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrSessionStore) {
			t.Errorf("Check against a hanging Redis: %v, want ErrSessionStore", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Check against a hanging Redis did not return")
	}
}

// NewRedisSessions does no I/O, and its errors never contain the URL
// (it may carry a password).
func TestNewRedisSessions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ url, want string }{
		{"redis://:hunter2@127.0.0.1:1/0", ""},
		{"rediss://kavach:hunter2@redis.example:6380/2", ""},
		{"", "URL is required"},
		{"http://:hunter2@127.0.0.1:6379", "invalid Redis URL"},
		{"redis://:hunter2@127.0.0.1:6379?bogus=1", "invalid Redis URL"},
		{"redis://:hunter2@[::1", "invalid Redis URL"},
	} {
		s, err := NewRedisSessions(RedisSessionOptions{URL: tc.url})
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v", tc.url, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q: error %v, want %q", tc.url, err, tc.want)
		case err != nil && strings.Contains(err.Error(), "hunter2"):
			t.Errorf("%q: the error shows the password: %v", tc.url, err)
		}
		if s != nil {
			_ = s.Close()
		}
	}
}
