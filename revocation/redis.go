package revocation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kavachgate/kavach/internal/redisurl"
)

// Redis layout (DESIGN.md §5).
//
// DESIGN.md names an entry's key kavach:rev:<id>. The key carries the
// entry's kind as well, "kavach:rev:id:<id>" for an id revocation and
// "kavach:rev:<kind>:<value>" for a cutoff (kind sub, client_id or kid), so
// that revoking id "usr_a" and a sub cutoff for "usr_a" are two keys, as
// they are two entries of Memory; and no entry's key can be the epoch's.
//
// The value at an entry's key, and each message on RedisChannel, is the
// Entry as JSON, the encoding the admin handler accepts (members "id",
// "cutoff", "before", "until"; RFC 3339 UTC times). The key expires at the
// entry's Until (SET … PXAT).
const (
	RedisKeyPrefix = "kavach:rev:"
	RedisChannel   = "kavach:rev"
	RedisEpochKey  = "kavach:rev:epoch"
)

// Defaults of RedisOptions and of the connection, in the spirit of limits.go.
const (
	DefaultMaxStaleness = 30 * time.Second
	DefaultPingInterval = time.Second

	redisMinBackoff  = 100 * time.Millisecond
	redisMaxBackoff  = 5 * time.Second
	redisScanCount   = 1000 // keys per SCAN page, fetched with one MGET
	redisMissedPings = 3    // pings without an answer before the connection is torn down
)

// RedisOptions configure a Redis set.
type RedisOptions struct {
	// URL is redis://[user:pass@]host:port/db or rediss://… for TLS, as
	// redis.ParseURL reads it (query parameters such as dial_timeout too).
	// Without them, dial, read and write time out after 2 s. Required
	// unless Client is set.
	URL string

	// Client, when set, is used instead of a client of its own made from
	// URL: one client per Redis shared by every user in the process. Close
	// then leaves it open; its owner closes it. Make it with
	// internal/redisurl's options so it has the timeouts Run relies on.
	Client *redis.Client

	// MaxStaleness: Fresh is false when no answer came over the
	// subscription within this. Default: 30 s. Must be at least twice
	// PingInterval.
	MaxStaleness time.Duration

	// PingInterval is how often the subscription connection is pinged.
	// Default: 1 s.
	PingInterval time.Duration

	// MaxLifetime and Leeway give the default Until of an entry without
	// one (DefaultUntil). Defaults: DefaultMaxLifetime, DefaultLeeway.
	MaxLifetime time.Duration
	Leeway      time.Duration

	// Logger receives connection events and warnings. It never sees the
	// URL, only host:port. Default: nothing is logged.
	Logger *slog.Logger

	// Now is the clock that decides whether an entry has passed its Until
	// and that defaults Until. Freshness is measured on the monotonic clock
	// regardless. Default: time.Now.
	Now func() time.Time
}

// Status is a snapshot of a Service, for readiness and metrics. A Memory
// is always loaded and fresh and reports only its entries.
type Status struct {
	Mode            string    // ModeMemory or ModeRedis
	Loaded          bool      // a full load has completed at least once
	Fresh           bool      // Fresh()
	LastPong        time.Time // last answer over the subscription counted for freshness (zero: none)
	LastLoad        time.Time // when the last full load completed (zero: none)
	Entries         int       // live entries held locally
	EpochMissing    bool      // RedisEpochKey was absent at the last check
	Reconnects      int       // connection attempts after the first
	MaxMemoryPolicy string    // from CONFIG GET, "" when Redis refused or was not asked yet
}

// Redis is the cluster revocation set (DESIGN.md §5): a Memory that every
// gateway keeps, fed by a Redis server that all of them share.
//
// Lookups (IsRevoked, RevokedBefore, Fresh) are local: no I/O, no
// allocation. Revoke writes the entry to Redis and publishes it, then
// applies it locally; every other gateway applies it when the message
// arrives. Run keeps the local set in step with Redis: it subscribes first,
// then loads every key by SCAN, so a revocation written during the load
// arrives either by the scan or by the subscription; the merge is
// idempotent. After every reconnect it loads everything again, so what
// was written while it was away is applied. An entry leaves the local set
// only at its Until, never because Redis forgot it.
//
// Freshness: Run pings over the subscription connection every
// PingInterval. Fresh is false until the first load and whenever no answer
// came within MaxStaleness. After redisMissedPings intervals without an
// answer (a dead or paused server, a half-open connection) the connection
// is torn down and rebuilt with a backoff from 100 ms to 5 s; answers do
// not count again until the reload that follows a reconnect has completed.
//
// Epoch: RedisEpochKey is owned by the issuer, which writes it with Reseed
// after restoring every live entry. Its absence means Redis lost its data
// (restarted empty, failover without persistence); the set then keeps its
// entries and reports Status().EpochMissing. Revoke and PublishRevocation
// never create the epoch: a writer that recreated it after a loss would
// hide the loss from the issuer, and the entries Redis lost would never be
// restored for gateways that start later. In a cluster without an issuer
// nobody writes the epoch, so EpochMissing stays true there; it is a
// report, not a failure, and Fresh does not depend on it. Run reads the
// epoch every PingInterval and loads everything again when it changes, so
// a gateway that started while Redis was empty learns what Reseed restored.
//
// Redis should run with maxmemory-policy noeviction; each connection checks
// it with CONFIG GET and logs a warning otherwise (managed Redis may refuse
// CONFIG; that is ignored).
type Redis struct {
	mem    *Memory
	client *redis.Client
	owned  bool   // the client was made here from the URL, so Close closes it
	addr   string // host:port, never the URL (it may carry a password)
	log    *slog.Logger

	now          func() time.Time
	maxLifetime  time.Duration
	leeway       time.Duration
	maxStaleness time.Duration
	pingInterval time.Duration

	// Freshness on the monotonic clock: nanoseconds since start.
	start    time.Time
	lastPong atomic.Int64
	loaded   atomic.Bool

	loadedOnce sync.Once
	loadedCh   chan struct{}
	closeOnce  sync.Once
	closing    chan struct{}

	epochMissing atomic.Bool
	reconnects   atomic.Int64
	epoch        string // last epoch seen; only the running session touches it

	mu       sync.Mutex
	lastLoad time.Time
	policy   string

	// beforeLoad, when set by a test, runs after SUBSCRIBE and before the
	// SCAN of every connection.
	beforeLoad func()
}

// NewRedis validates opts and parses the URL. It does no network I/O (it
// runs under `caddy validate`); Run connects.
func NewRedis(opts RedisOptions) (*Redis, error) {
	if opts.MaxStaleness <= 0 {
		opts.MaxStaleness = DefaultMaxStaleness
	}
	if opts.PingInterval <= 0 {
		opts.PingInterval = DefaultPingInterval
	}
	if opts.MaxStaleness < 2*opts.PingInterval {
		return nil, fmt.Errorf("revocation: max_staleness %v must be at least twice ping_interval %v", opts.MaxStaleness, opts.PingInterval)
	}
	if opts.MaxLifetime <= 0 {
		opts.MaxLifetime = DefaultMaxLifetime
	}
	if opts.Leeway <= 0 {
		opts.Leeway = DefaultLeeway
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	client, owned := opts.Client, false
	if client == nil {
		ropts, err := redisOptions(opts.URL)
		if err != nil {
			return nil, err
		}
		client, owned = redis.NewClient(ropts), true
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Redis{
		mem:          NewMemory(MemoryOptions{Now: opts.Now}),
		client:       client,
		owned:        owned,
		addr:         client.Options().Addr,
		log:          log,
		now:          opts.Now,
		maxLifetime:  opts.MaxLifetime,
		leeway:       opts.Leeway,
		maxStaleness: opts.MaxStaleness,
		pingInterval: opts.PingInterval,
		start:        time.Now(),
		loadedCh:     make(chan struct{}),
		closing:      make(chan struct{}),
	}, nil
}

// redisOptions parses a Redis URL (redisurl.Parse: the same defaults as
// every other user of Kavach's Redis). Its errors never contain the URL,
// which may carry a password.
func redisOptions(rawURL string) (*redis.Options, error) {
	o, err := redisurl.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("revocation: %w", err)
	}
	return o, nil
}

// mono is the monotonic time since the set was made, in nanoseconds.
func (r *Redis) mono() int64 { return int64(time.Since(r.start)) }

// pong records an answer at mono time t.
func (r *Redis) pong(t int64) {
	for {
		old := r.lastPong.Load()
		if old >= t || r.lastPong.CompareAndSwap(old, t) {
			return
		}
	}
}

// IsRevoked reports whether id has a live id revocation. Local only.
func (r *Redis) IsRevoked(id string) bool { return r.mem.IsRevoked(id) }

// RevokedBefore reports whether a live cutoff for (kind, value) exists with
// iat < its Before.Unix(). Local only.
func (r *Redis) RevokedBefore(kind Kind, value string, iat int64) bool {
	return r.mem.RevokedBefore(kind, value, iat)
}

// Fresh reports whether a full load has completed and an answer came over
// the subscription within MaxStaleness. Local only.
func (r *Redis) Fresh() bool {
	return r.loaded.Load() && r.mono()-r.lastPong.Load() < int64(r.maxStaleness)
}

// WaitLoaded blocks until the first full load has completed, or ctx is done.
func (r *Redis) WaitLoaded(ctx context.Context) error {
	select {
	case <-r.loadedCh:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Revoke writes e to Redis, publishes it, and applies it locally. A zero
// Until is filled with DefaultUntil from now (from Before for a cutoff
// whose Before is later), as the admin handler does; an entry already past
// its Until changes nothing and does no I/O. When the key already holds a
// live entry the later Until, and for a cutoff the later Before, are kept:
// a revocation is never shortened, in Redis either.
//
// The entry is applied locally even when Redis fails, since revoking here
// can only stop tokens; the error tells the caller that the other gateways
// did not hear it.
func (r *Redis) Revoke(ctx context.Context, e Entry) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	now := r.now()
	e, err := prepareEntry(e, now, r.maxLifetime, r.leeway)
	if err != nil {
		return err
	}
	if !e.Until.After(now) {
		return nil
	}
	stored, err := storeEntry(ctx, r.client, e, writeSpec{now: now, maxLifetime: r.maxLifetime, leeway: r.leeway, publish: true})
	_ = r.mem.Revoke(context.Background(), e) // valid, and not a done ctx
	if err != nil {
		return fmt.Errorf("revocation: Redis at %s: %w", r.addr, err)
	}
	_ = r.mem.Revoke(context.Background(), stored)
	return nil
}

// Status is a snapshot for readiness endpoints and metrics. It counts the
// live entries, which visits every one: not for the request path.
func (r *Redis) Status() Status {
	s := Status{
		Mode:         ModeRedis,
		Loaded:       r.loaded.Load(),
		Fresh:        r.Fresh(),
		Entries:      r.mem.Len(),
		EpochMissing: r.epochMissing.Load(),
		Reconnects:   int(r.reconnects.Load()),
	}
	if s.Loaded {
		s.LastPong = r.start.Add(time.Duration(r.lastPong.Load())).Round(0)
	}
	r.mu.Lock()
	s.LastLoad, s.MaxMemoryPolicy = r.lastLoad, r.policy
	r.mu.Unlock()
	return s
}

// Close stops Run and closes the connections (a client given in
// RedisOptions.Client stays open). Lookups keep answering from the local
// set, which is no longer fresh.
func (r *Redis) Close() error {
	var err error
	r.closeOnce.Do(func() {
		close(r.closing)
		if r.owned {
			err = r.client.Close()
		}
	})
	return err
}

// Run keeps the local set in step with Redis until ctx is done or Close is
// called; call it once, in its own goroutine. It also sweeps expired
// entries from the local set.
func (r *Redis) Run(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	wg.Go(func() {
		select {
		case <-r.closing:
			cancel()
		case <-ctx.Done():
		}
	})
	wg.Go(func() { r.mem.Run(ctx) })

	backoff := redisMinBackoff
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			r.reconnects.Add(1)
		}
		loaded, err := r.session(ctx)
		if ctx.Err() != nil {
			return
		}
		if loaded {
			backoff = redisMinBackoff
		}
		r.log.LogAttrs(ctx, slog.LevelWarn, "revocation: no Redis connection; reconnecting",
			slog.String("addr", r.addr), slog.String("error", err.Error()),
			slog.Duration("retry_in", backoff), slog.Bool("fresh", r.Fresh()))
		// Up to a fifth less, so that gateways that lost Redis together
		// do not come back in lockstep.
		t := time.NewTimer(backoff - rand.N(backoff/5))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, redisMaxBackoff)
	}
}

// session is one connection's life: subscribe, load, then ping and
// follow the epoch until something fails. loaded reports whether its load
// completed.
func (r *Redis) session(ctx context.Context) (loaded bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	ps := r.client.Subscribe(ctx) // no channel yet: no I/O
	var wg sync.WaitGroup
	var sess session
	defer func() {
		cancel()
		_ = ps.Close() // unblocks the receiver
		wg.Wait()
		loaded = sess.loaded.Load()
	}()

	if err := ps.Subscribe(ctx, RedisChannel); err != nil {
		return false, fmt.Errorf("subscribe: %w", err)
	}
	// The confirmation proves that messages from here on reach us; only
	// then may the load start.
	msg, err := ps.ReceiveTimeout(ctx, r.client.Options().ReadTimeout)
	if err != nil {
		return false, fmt.Errorf("subscribe: %w", err)
	}
	if _, ok := msg.(*redis.Subscription); !ok {
		return false, fmt.Errorf("subscribe: unexpected %T", msg)
	}
	sess.lastAnswer.Store(r.mono())

	errc := make(chan error, 2)
	wg.Go(func() { errc <- r.receive(ctx, ps, &sess) })
	wg.Go(func() { errc <- r.follow(ctx, &sess) })

	t := time.NewTicker(r.pingInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case err := <-errc:
			return false, err
		case <-t.C:
			if r.mono()-sess.lastAnswer.Load() > redisMissedPings*int64(r.pingInterval) {
				return false, fmt.Errorf("no answer to %d pings", redisMissedPings)
			}
			if err := ps.Ping(ctx); err != nil {
				return false, fmt.Errorf("ping: %w", err)
			}
		}
	}
}

// session is the state one connection's goroutines share.
type session struct {
	lastAnswer atomic.Int64 // mono time of the last message over the subscription
	loaded     atomic.Bool  // this connection's load has completed
}

// receive applies the messages of the subscription until it fails.
func (r *Redis) receive(ctx context.Context, ps *redis.PubSub, sess *session) error {
	for {
		msg, err := ps.Receive(ctx)
		if err != nil {
			return fmt.Errorf("receive: %w", err)
		}
		t := r.mono()
		sess.lastAnswer.Store(t)
		if sess.loaded.Load() {
			r.pong(t)
		}
		if m, ok := msg.(*redis.Message); ok {
			r.apply(ctx, m.Payload, "message")
		}
	}
}

// follow loads everything, then checks the epoch every PingInterval and
// loads everything again when it changed.
func (r *Redis) follow(ctx context.Context, sess *session) error {
	r.checkPolicy(ctx)
	// Loaded now so that Revoke's first EVALSHA does not miss.
	_ = storeScript.Load(ctx, r.client).Err()
	if r.beforeLoad != nil {
		r.beforeLoad()
	}
	if err := r.load(ctx); err != nil {
		return err
	}
	sess.loaded.Store(true)
	r.pong(r.mono()) // the server just answered the whole load
	r.loaded.Store(true)
	r.loadedOnce.Do(func() { close(r.loadedCh) })

	t := time.NewTicker(r.pingInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		epoch, err := getEpoch(ctx, r.client)
		if err != nil {
			// The pings decide whether the connection is lost.
			r.log.LogAttrs(ctx, slog.LevelDebug, "revocation: epoch check failed",
				slog.String("addr", r.addr), slog.String("error", err.Error()))
			continue
		}
		if epoch == r.epoch {
			continue
		}
		if epoch != "" {
			r.log.LogAttrs(ctx, slog.LevelInfo, "revocation: Redis epoch changed; reloading",
				slog.String("addr", r.addr))
			if err := r.load(ctx); err != nil {
				return err
			}
		} else {
			r.setEpoch("")
		}
	}
}

// load merges every entry in Redis into the local set. Keys that vanish
// between SCAN and MGET are skipped; entries Redis no longer has stay.
func (r *Redis) load(ctx context.Context) error {
	// The epoch read before the scan: if it changes during the scan the
	// next check sees a new value and loads again.
	epoch, err := getEpoch(ctx, r.client)
	if err != nil {
		return fmt.Errorf("load: %w", err)
	}
	var cursor uint64
	n := 0
	for {
		keys, next, err := r.client.Scan(ctx, cursor, RedisKeyPrefix+"*", redisScanCount).Result()
		if err != nil {
			return fmt.Errorf("load: %w", err)
		}
		keys = removeKey(keys, RedisEpochKey)
		if len(keys) > 0 {
			vals, err := r.client.MGet(ctx, keys...).Result()
			if err != nil {
				return fmt.Errorf("load: %w", err)
			}
			for _, v := range vals {
				if s, ok := v.(string); ok {
					r.apply(ctx, s, "key")
					n++
				}
			}
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	r.setEpoch(epoch)
	r.mu.Lock()
	r.lastLoad = time.Now()
	r.mu.Unlock()
	r.log.LogAttrs(ctx, slog.LevelInfo, "revocation: loaded from Redis",
		slog.String("addr", r.addr), slog.Int("keys", n), slog.Bool("epoch_missing", epoch == ""))
	return nil
}

func (r *Redis) setEpoch(epoch string) {
	if epoch == "" && !r.epochMissing.Load() {
		r.log.Warn("revocation: Redis has no epoch; it may have lost revocations (an issuer re-seeds it)",
			slog.String("addr", r.addr), slog.String("key", RedisEpochKey))
	}
	r.epoch = epoch
	r.epochMissing.Store(epoch == "")
}

// apply merges one entry read from Redis (a key's value or a message).
// Invalid values are logged without their content and skipped.
func (r *Redis) apply(ctx context.Context, value, from string) {
	e, err := decodeStored(value, r.now(), r.maxLifetime, r.leeway)
	if err == nil {
		err = r.mem.Revoke(context.Background(), e)
	}
	if err != nil {
		r.log.LogAttrs(ctx, slog.LevelWarn, "revocation: ignoring an invalid entry from Redis",
			slog.String("addr", r.addr), slog.String("from", from), slog.String("error", err.Error()))
	}
}

// checkPolicy reads maxmemory-policy: with any eviction Redis may drop
// revocations to make room.
func (r *Redis) checkPolicy(ctx context.Context) {
	res, err := r.client.ConfigGet(ctx, "maxmemory-policy").Result()
	if err != nil {
		r.log.LogAttrs(ctx, slog.LevelDebug, "revocation: CONFIG GET maxmemory-policy refused",
			slog.String("addr", r.addr), slog.String("error", err.Error()))
		return
	}
	policy := res["maxmemory-policy"]
	r.mu.Lock()
	r.policy = policy
	r.mu.Unlock()
	if policy != "noeviction" {
		r.log.LogAttrs(ctx, slog.LevelWarn, "revocation: Redis may evict revocations; set maxmemory-policy noeviction",
			slog.String("addr", r.addr), slog.String("maxmemory_policy", policy))
	}
}

// getEpoch is the epoch's value, "" when it is missing.
func getEpoch(ctx context.Context, c *redis.Client) (string, error) {
	v, err := c.Get(ctx, RedisEpochKey).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return v, err
}

func removeKey(keys []string, key string) []string {
	out := keys[:0]
	for _, k := range keys {
		if k != key {
			out = append(out, k)
		}
	}
	return out
}

// Interface guard.
// Interface guards
var (
	_ Set     = (*Redis)(nil)
	_ Service = (*Redis)(nil)
)
