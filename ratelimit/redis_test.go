package ratelimit

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kavachgate/kavach/internal/redistest"
	"github.com/kavachgate/kavach/internal/redisurl"
)

func redisStore(t *testing.T, srv *redistest.Server) *Redis {
	t.Helper()
	o, err := redisurl.Parse(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(o)
	t.Cleanup(func() { _ = c.Close() })
	s, err := NewRedis(RedisOptions{Client: c, Timeout: 200 * time.Millisecond, MaxStaleness: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestRedisBucket: the same bucket arithmetic as memory, on Redis' clock.
func TestRedisBucket(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := redisStore(t, srv)
	a := Check{Limit: mustLimit(t, "5/m", PerAgent, 0), Issuer: "iss", Principal: "agt_a"}
	for i := range 5 {
		if r := take(t, s, a)[0]; !r.Allowed || r.Remaining != int64(4-i) {
			t.Fatalf("request %d: %+v", i+1, r)
		}
	}
	r := take(t, s, a)[0]
	if r.Allowed || !r.FirstDenial || r.RetryAfter <= 11*time.Second || r.RetryAfter > 12*time.Second {
		t.Fatalf("sixth: %+v, want a first refusal, retry after about 12s", r)
	}
	if r := take(t, s, a)[0]; r.Allowed || r.FirstDenial {
		t.Fatalf("seventh: %+v", r)
	}
	if r := take(t, s, Check{Limit: a.Limit, Issuer: "iss", Principal: "agt_b"})[0]; !r.Allowed {
		t.Fatal("agt_b shares agt_a's bucket")
	}
	// The key expires when the bucket is full again: nothing stays behind.
	ttl, err := srv.Client().PTTL(context.Background(), RedisKey(&a)).Result()
	if err != nil || ttl <= 59*time.Second || ttl > 61*time.Second {
		t.Fatalf("key ttl %v, %v: want about a minute", ttl, err)
	}
}

// TestRedisAllOrNothing: one refusing limit takes nothing from the others.
func TestRedisAllOrNothing(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := redisStore(t, srv)
	agent := Check{Limit: mustLimit(t, "3/m", PerAgent, 0), Issuer: "iss", Principal: "agt_a"}
	user := Check{Limit: mustLimit(t, "1/m", PerUser, 0), Issuer: "iss", Principal: "usr_a"}
	take(t, s, agent, user)
	for range 3 {
		if r := take(t, s, agent, user); r[1].Allowed {
			t.Fatal("user bucket allowed twice")
		}
	}
	if r := take(t, s, agent)[0]; !r.Allowed || r.Remaining != 1 {
		t.Fatalf("agent after refusals: %+v, want 1 remaining", r)
	}
}

// TestRedisShared: two stores (two gateways) over one Redis share the
// budget: together they allow exactly the burst, however they race.
func TestRedisShared(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s1, s2 := redisStore(t, srv), redisStore(t, srv)
	a := Check{Limit: mustLimit(t, "20/h", PerAgent, 0), Issuer: "iss", Principal: "agt_a"}
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for _, s := range []*Redis{s1, s2, s1, s2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 15 {
				var res [1]Result
				if err := s.Take(context.Background(), []Check{a}, res[:]); err != nil {
					t.Error(err)
					return
				}
				if res[0].Allowed {
					allowed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if n := allowed.Load(); n != 20 {
		t.Fatalf("%d of 60 allowed across two stores, want the burst, 20", n)
	}
}

// TestRedisStalled: a paused Redis costs a request the timeout, then an
// ErrUnavailable, and Fresh turns false after MaxStaleness; a Redis back
// answers again.
func TestRedisStalled(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := redisStore(t, srv)
	a := Check{Limit: mustLimit(t, "5/m", PerAgent, 0), Issuer: "iss", Principal: "agt_a"}
	if s.Fresh() {
		t.Fatal("fresh before any answer")
	}
	take(t, s, a)
	if !s.Fresh() {
		t.Fatal("not fresh after an answer")
	}
	admin := srv.Client()
	if err := admin.Do(context.Background(), "CLIENT", "PAUSE", "3000", "ALL").Err(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var res [1]Result
	err := s.Take(context.Background(), []Check{a}, res[:])
	if took := time.Since(start); !errors.Is(err, ErrUnavailable) || took > time.Second {
		t.Fatalf("paused Redis: %v after %v, want ErrUnavailable within the 200ms timeout", err, took)
	}
	time.Sleep(time.Second)
	if s.Fresh() {
		t.Fatal("still fresh a second (MaxStaleness) after the last answer")
	}
	_ = admin.Do(context.Background(), "CLIENT", "UNPAUSE").Err()
	if r := take(t, s, a)[0]; !r.Allowed || !s.Fresh() {
		t.Fatalf("after unpause: %+v fresh %v", r, s.Fresh())
	}
}
