package node

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// go-redis has one logger for the whole process (redis.SetLogger), used
// for its own messages (dial failures and the like). A node that uses
// Redis points it, once per process, at the logger of the most recently
// started node, so those messages go where the node's do instead of to
// stderr. It is done when a node starts, never at import: a program that
// only imports this package keeps its own.
var (
	redisLogsOnce sync.Once
	redisLog      atomic.Pointer[slog.Logger]
)

type redisLogger struct{}

func (redisLogger) Printf(_ context.Context, format string, v ...any) {
	if l := redisLog.Load(); l != nil {
		l.Warn(fmt.Sprintf(format, v...), "part", "redis")
	}
}

func routeRedisLogs(l *slog.Logger) {
	redisLog.Store(l)
	redisLogsOnce.Do(func() { redis.SetLogger(redisLogger{}) })
}
