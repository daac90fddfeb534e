package caddymodule

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/exp/zapslog"

	"github.com/kavachgate/kavach/revocation"
	"github.com/kavachgate/kavach/token"
)

// revocationPool keeps the revocation set across config reloads: one per
// process in memory mode, one per Redis URL in cluster mode.
var revocationPool = caddy.NewUsagePool()

// firstLoadWait is how long Start waits for a Redis set's first load
// before requests are answered (503 until then, DESIGN.md §5).
const firstLoadWait = 2 * time.Second

// sharedRevocation is the process's revocation set and its background
// work (the memory sweeper, or the Redis subscription).
type sharedRevocation struct {
	revocation.Set
	memory *revocation.Memory // memory mode
	redis  *revocation.Redis  // cluster mode
	once   sync.Once
	cancel context.CancelFunc

	loaded    atomic.Bool // the first Redis load completed
	startedAt atomic.Int64
}

// redisURL is the `redis` option with its placeholders replaced; empty
// without the option (single node).
func (a *App) redisURL() (string, error) {
	if a.Redis == "" {
		return "", nil
	}
	url := caddy.NewReplacer().ReplaceAll(a.Redis, "")
	if url == "" {
		return "", fmt.Errorf("redis %s is empty", a.Redis)
	}
	return url, nil
}

func (a *App) provisionRevocation() error {
	key := "kavach.revocation.memory"
	url, err := a.redisURL()
	if err != nil {
		return err
	}
	if url != "" {
		// Settings are part of the key: a reload that changes them gets a
		// set built with them (it loads everything from Redis again).
		sum := sha256.Sum256(fmt.Appendf(nil, "%s|%d|%d", url, a.MaxStaleness, a.maxLifetime()))
		key = "kavach.revocation.redis:" + hex.EncodeToString(sum[:8])
	}
	val, _, err := revocationPool.LoadOrNew(key, func() (caddy.Destructor, error) {
		if url == "" {
			m := revocation.NewMemory(revocation.MemoryOptions{})
			return &sharedRevocation{Set: m, memory: m}, nil
		}
		r, err := revocation.NewRedis(revocation.RedisOptions{
			URL:          url,
			MaxStaleness: time.Duration(a.MaxStaleness),
			MaxLifetime:  a.maxLifetime(),
			Leeway:       token.Leeway,
			Logger:       slogFrom(a.logger.Named("revocation")),
		})
		if err != nil {
			return nil, fmt.Errorf("redis: %w", err)
		}
		return &sharedRevocation{Set: r, redis: r}, nil
	})
	if err != nil {
		return err
	}
	a.rev, a.revKey = val.(*sharedRevocation), key
	return nil
}

// start begins the background work once per process, and in cluster mode
// waits briefly for the first load so a fresh gateway does not open with
// 503s.
func (s *sharedRevocation) start(log *zap.Logger) {
	s.once.Do(func() {
		ctx, cancel := context.WithCancel(context.Background())
		s.cancel = cancel
		s.startedAt.Store(time.Now().UnixNano())
		if s.redis != nil {
			go s.redis.Run(ctx)
			return
		}
		go s.memory.Run(ctx, time.Minute)
	})
	if s.redis != nil {
		ctx, cancel := context.WithTimeout(context.Background(), firstLoadWait)
		defer cancel()
		if err := s.redis.WaitLoaded(ctx); err != nil {
			log.Warn("revocation set not loaded from redis yet; requests get 503 until it is", zap.Error(err))
			return
		}
		s.loaded.Store(true)
	}
}

// waitFirstLoad holds a request that arrives before a Redis set's first
// load, for at most firstLoadWait after the set started (DESIGN.md §5), so
// a gateway that is just starting does not answer 503. Caddy may start the
// HTTP server before the kavach app, so Start's own wait is not enough.
func (s *sharedRevocation) waitFirstLoad(ctx context.Context) {
	if s.redis == nil || s.loaded.Load() {
		return
	}
	started := s.startedAt.Load()
	if started == 0 {
		started = time.Now().UnixNano()
	}
	deadline := time.Unix(0, started).Add(firstLoadWait)
	if time.Now().After(deadline) {
		return
	}
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	if s.redis.WaitLoaded(ctx) == nil {
		s.loaded.Store(true)
	}
}

// Destruct stops the background work when the last config using the set
// is gone.
func (s *sharedRevocation) Destruct() error {
	if s.cancel != nil {
		s.cancel()
	}
	if s.redis != nil {
		return s.redis.Close()
	}
	return nil
}

// Reseed rewrites entries into the set: Redis gets every entry and its
// epoch back (it lost its data); memory mode adds them (a process
// restarted with an in-process issuer whose store holds revocations).
func (s *sharedRevocation) Reseed(ctx context.Context, entries []revocation.Entry) error {
	if s.redis != nil {
		return s.redis.Reseed(ctx, entries)
	}
	for _, e := range entries {
		if err := s.memory.Revoke(ctx, e); err != nil {
			return err
		}
	}
	return nil
}

// revocationStatus is what readiness and metrics report.
type revocationStatus struct {
	Mode         string  `json:"mode"`
	Fresh        bool    `json:"fresh"`
	Entries      int     `json:"entries"`
	LastSyncAge  float64 `json:"last_sync_age_seconds"`
	EpochMissing bool    `json:"epoch_missing"`
}

func (s *sharedRevocation) status() revocationStatus {
	if s.redis == nil {
		return revocationStatus{Mode: "memory", Fresh: true, Entries: s.memory.Len()}
	}
	st := s.redis.Status()
	out := revocationStatus{Mode: "redis", Fresh: st.Fresh, Entries: st.Entries, EpochMissing: st.EpochMissing}
	if !st.LastPong.IsZero() {
		out.LastSyncAge = time.Since(st.LastPong).Seconds()
	}
	return out
}

// slogFrom bridges Caddy's zap logger to the slog.Logger the Caddy-free
// packages take.
func slogFrom(l *zap.Logger) *slog.Logger {
	return slog.New(zapslog.NewHandler(l.Core()))
}

// redisLogger sends go-redis's own messages (dial failures and the like)
// to Caddy's log instead of stderr.
type redisLogger struct{}

func (redisLogger) Printf(_ context.Context, format string, v ...any) {
	caddy.Log().Named("kavach.redis").Warn(fmt.Sprintf(format, v...))
}

var redisLogsOnce sync.Once

// routeRedisLogs points go-redis's logger at Caddy's log, once, when a
// config that uses Redis is provisioned. go-redis has one global logger
// for the whole process, so this is not done in init(): a program that
// only imports this package (or a CLI command using go-redis) keeps its
// own.
func routeRedisLogs() {
	redisLogsOnce.Do(func() { redis.SetLogger(redisLogger{}) })
}
