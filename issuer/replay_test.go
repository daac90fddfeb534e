package issuer

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// TestRedisReplay: an assertion id used at one issuer process is refused
// at another sharing Redis, until it expires.
func TestRedisReplay(t *testing.T) {
	mr := miniredis.RunT(t)
	c := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer c.Close()
	a, b := RedisReplay{c}, RedisReplay{c}
	ctx := context.Background()
	exp := time.Now().Add(time.Minute)
	if ok, err := a.Use(ctx, "agt_x jti-1", exp); err != nil || !ok {
		t.Fatalf("first use: %v %v", ok, err)
	}
	if ok, err := b.Use(ctx, "agt_x jti-1", exp); err != nil || ok {
		t.Fatalf("replay at another process: %v %v", ok, err)
	}
	mr.FastForward(2 * time.Minute)
	if ok, err := b.Use(ctx, "agt_x jti-1", time.Now().Add(time.Minute)); err != nil || !ok {
		t.Fatalf("after expiry: %v %v", ok, err)
	}
}

type failingReplay struct{}

func (failingReplay) Use(context.Context, string, time.Time) (bool, error) {
	return false, errors.New("down")
}

// TestReplayStoreDownFailsClosed: when the shared store cannot answer, an
// assertion is refused (503), never accepted unchecked.
func TestReplayStoreDownFailsClosed(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Replay = failingReplay{} })
	fresh, err := e.s.useAssertion(context.Background(), "agt_x jti-2", time.Now().Add(time.Minute))
	var oe *oauthError
	if fresh || !errors.As(err, &oe) || oe.Status != 503 {
		t.Fatalf("replay store down: fresh %v, err %v", fresh, err)
	}
}
