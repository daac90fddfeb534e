package mcp

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kavachgate/kavach/internal/redisurl"
)

// RedisSessionKeyPrefix namespaces the bindings in Redis. A binding's key
// is the prefix and the lowercase hex SHA-256 of the session id (the id
// itself is never stored: it is a bearer secret of its session); its
// value is the chain key's bytes (ChainKey); it expires ttl after the
// binding's last renewal (SET … PX, GETEX … PX).
const RedisSessionKeyPrefix = "kavach:mcp:session:"

// RedisSessionOptions configure a RedisSessions.
type RedisSessionOptions struct {
	// URL is the Redis the gateways of a cluster share, as the `redis`
	// option names it (redis:// or rediss://, see internal/redisurl).
	// Required unless Client is set.
	URL string

	// Client, when set, is used instead of a client of its own made from
	// URL: one client per Redis shared by every user in the process. Close
	// then leaves it open; its owner closes it.
	Client *redis.Client

	// TTL is how long a binding lives after its last renewal. Default:
	// DefaultSessionTTL.
	TTL time.Duration

	// CacheSize bounds the local cache. Default: DefaultSessionCacheSize.
	CacheSize int

	// Timeout bounds each Redis command on the request path. Default:
	// DefaultSessionLookupTimeout.
	Timeout time.Duration

	// Logger receives warnings (renewals or deletions that failed). It
	// never sees the URL, only host:port. Default: nothing is logged.
	Logger *slog.Logger

	// Now is the clock of the local cache. Default: the package clock.
	Now func() time.Time
}

// RedisSessions is the SessionStore of a cluster of gateways: the
// bindings live in Redis, so every node knows every session whichever
// node saw its initialize, and a restart loses none.
//
// Check is served from a local cache (bounded, least recently used
// evicted) of the bindings this node has met: a session used on this node
// costs no Redis round trip on the request path. A local miss asks Redis
// (GETEX, which also renews the binding) within Timeout; when Redis cannot
// answer, Check returns ErrSessionStore and the gateway answers 503: an
// id this node cannot look up is never forwarded. The cache only ever
// says what Redis said: an entry expires no later than its key in Redis,
// and eviction from it only sends the next Check to Redis.
//
// A binding in use is renewed in Redis at most once per
// SessionRenewInterval, by a background batch (pipelined GETEX … PX) that
// the request only schedules. The same answer tells whether the binding
// is still there: one that another node forgot, or that Redis lost, is
// dropped from the cache, so its next use asks Redis (and gets 404). Until
// then, at most one interval, this node keeps forwarding the session for
// the chain it was bound to, and only for that chain.
//
// Bind is one round trip (pipelined SET NX PX and GET: the binding is
// new, or already this chain's, or another chain's and Bind fails); a
// rebind of a chain's own session adds a PEXPIRE. Forget deletes the key.
//
// If Redis loses its data (restart without persistence, failover), every
// session becomes unknown: clients get 404 and start new sessions. Redis
// should run with maxmemory-policy noeviction (DESIGN.md §5): an evicted
// key is a lost binding; a full Redis fails Bind (502), never Check.
type RedisSessions struct {
	client  *redis.Client
	owned   bool   // made here from the URL: Close closes it
	addr    string // host:port, never the URL (it may carry a password)
	ttl     time.Duration
	timeout time.Duration
	log     *slog.Logger
	now     func() time.Time

	mu       sync.Mutex
	cache    sessionLRU
	pending  map[[32]byte]string // renewals to make: key → the chain the cache holds
	renewing bool                // a renewal goroutine runs
	closed   bool
	lastWarn time.Time
	wg       sync.WaitGroup // the renewal goroutine
}

// NewRedisSessions validates opts and parses the URL. It does no network
// I/O (it runs under `caddy validate`): the first command connects.
// Errors never contain the URL.
func NewRedisSessions(opts RedisSessionOptions) (*RedisSessions, error) {
	client, owned := opts.Client, false
	if client == nil {
		o, err := redisurl.Parse(opts.URL)
		if err != nil {
			return nil, fmt.Errorf("mcp sessions: %w", err)
		}
		client, owned = redis.NewClient(o), true
	}
	if opts.TTL <= 0 {
		opts.TTL = DefaultSessionTTL
	}
	if opts.CacheSize <= 0 {
		opts.CacheSize = DefaultSessionCacheSize
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultSessionLookupTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = func() time.Time { return now() }
	}
	return &RedisSessions{
		client:  client,
		owned:   owned,
		addr:    client.Options().Addr,
		ttl:     opts.TTL,
		timeout: opts.Timeout,
		log:     opts.Logger,
		now:     opts.Now,
		cache:   newSessionLRU(opts.CacheSize),
		pending: make(map[[32]byte]string),
	}, nil
}

func redisSessionKey(k [32]byte) string { return RedisSessionKeyPrefix + hex.EncodeToString(k[:]) }

func (s *RedisSessions) storeErr(op string, err error) error {
	return &Error{Kind: ErrSessionStore, Public: "session store unavailable", Detail: op + " at redis " + s.addr + ": " + err.Error()}
}

// Check implements SessionStore.
func (s *RedisSessions) Check(ctx context.Context, sessionID, chainKey string) (SessionState, error) {
	if !validSessionID(sessionID) {
		return SessionUnknown, nil
	}
	k := sessionKey(sessionID)
	t := s.now()
	s.mu.Lock()
	if b := s.cache.get(k, t); b != nil {
		st := SessionOther
		if b.chain == chainKey {
			st = SessionOwn
			if t.Sub(b.renewed) >= SessionRenewInterval {
				b.renewed = t
				s.scheduleLocked(k, chainKey)
			}
		}
		s.mu.Unlock()
		return st, nil
	}
	s.mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	v, err := s.client.GetEx(ctx, redisSessionKey(k), s.ttl).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return SessionUnknown, nil
	case err != nil:
		return SessionUnknown, s.storeErr("check", err)
	}
	s.remember(k, v, t)
	if v != chainKey {
		return SessionOther, nil
	}
	return SessionOwn, nil
}

// remember caches what Redis said at t (before the command was sent, so
// the entry expires no later than the key).
func (s *RedisSessions) remember(k [32]byte, chain string, t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cache.put(k, chain, t.Add(s.ttl)).renewed = t
}

// Bind implements SessionStore.
func (s *RedisSessions) Bind(ctx context.Context, sessionID, chainKey string) error {
	if !validSessionID(sessionID) {
		return errInvalidSessionID()
	}
	k := sessionKey(sessionID)
	key := redisSessionKey(k)
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	// A binding that expires between SET NX and GET is tried once more.
	for range 2 {
		t := s.now()
		var set *redis.BoolCmd
		var get *redis.StringCmd
		_, _ = s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			set = p.SetNX(ctx, key, chainKey, s.ttl)
			get = p.Get(ctx, key)
			return nil
		})
		if err := set.Err(); err != nil {
			return s.storeErr("bind", err)
		}
		cur, err := get.Result()
		switch {
		case errors.Is(err, redis.Nil):
			continue
		case err != nil:
			return s.storeErr("bind", err)
		case cur != chainKey:
			return errSessionTaken()
		case !set.Val():
			// Already this chain's: renew it, as MemorySessions does.
			if err := s.client.PExpire(ctx, key, s.ttl).Err(); err != nil {
				return s.storeErr("bind", err)
			}
		}
		s.remember(k, chainKey, t)
		return nil
	}
	return s.storeErr("bind", errors.New("the binding expired while it was being set"))
}

// Forget implements SessionStore. The key is deleted within Timeout even
// if ctx ends first; a deletion that fails is logged, and the binding
// expires by itself.
func (s *RedisSessions) Forget(ctx context.Context, sessionID string) {
	if !validSessionID(sessionID) {
		return
	}
	k := sessionKey(sessionID)
	s.mu.Lock()
	s.cache.drop(k)
	delete(s.pending, k)
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
	defer cancel()
	if err := s.client.Del(ctx, redisSessionKey(k)).Err(); err != nil {
		s.log.Warn("MCP session binding not deleted from Redis; it expires by itself", "addr", s.addr, "error", err)
	}
}

// scheduleLocked queues k's renewal and starts the renewal goroutine if
// none runs. The goroutine ends when nothing is left to renew; Close
// waits for it.
func (s *RedisSessions) scheduleLocked(k [32]byte, chain string) {
	if s.closed {
		return
	}
	s.pending[k] = chain
	if !s.renewing {
		s.renewing = true
		s.wg.Add(1)
		go s.renewLoop()
	}
}

func (s *RedisSessions) renewLoop() {
	defer s.wg.Done()
	for {
		s.mu.Lock()
		if len(s.pending) == 0 || s.closed {
			s.renewing = false
			s.mu.Unlock()
			return
		}
		batch := s.pending
		s.pending = make(map[[32]byte]string)
		s.mu.Unlock()
		s.renew(batch)
	}
}

// renew renews a batch of bindings in one pipeline and brings the cache
// in line with what Redis answered.
func (s *RedisSessions) renew(batch map[[32]byte]string) {
	ctx, cancel := context.WithTimeout(context.Background(), sessionRenewTimeout)
	defer cancel()
	keys := make([][32]byte, 0, len(batch))
	cmds := make([]*redis.StringCmd, 0, len(batch))
	t := s.now()
	pipe := s.client.Pipeline()
	for k := range batch {
		keys = append(keys, k)
		cmds = append(cmds, pipe.GetEx(ctx, redisSessionKey(k), s.ttl))
	}
	_, _ = pipe.Exec(ctx)

	var failed int
	var firstErr error
	s.mu.Lock()
	for i, k := range keys {
		b := s.cache.m[k]
		if b == nil || b.chain != batch[k] {
			continue // forgotten, evicted or replaced meanwhile
		}
		v, err := cmds[i].Result()
		switch {
		case err == nil && v == b.chain:
			if e := t.Add(s.ttl); e.After(b.expires) {
				b.expires = e
			}
		case err == nil, errors.Is(err, redis.Nil):
			// Forgotten by another node, lost by Redis, or rebound: the
			// next use asks Redis.
			s.cache.remove(b)
		default:
			b.renewed = t.Add(sessionRenewRetry - SessionRenewInterval)
			failed++
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	warn := failed > 0 && t.Sub(s.lastWarn) >= time.Minute
	if warn {
		s.lastWarn = t
	}
	s.mu.Unlock()
	if warn {
		s.log.Warn("renewing MCP session bindings in Redis failed; retried on their next use", "addr", s.addr, "sessions", failed, "error", firstErr)
	}
}

// Close waits for a renewal in flight and closes the connections (a
// client given in RedisSessionOptions.Client stays open for its owner). A
// closed store still answers Check from its cache; with its own client,
// anything that needs Redis fails with ErrSessionStore.
func (s *RedisSessions) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.wg.Wait()
	if !s.owned {
		return nil
	}
	return s.client.Close()
}

// Interface guard
var _ SessionStore = (*RedisSessions)(nil)
