package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kavachgate/kavach/audit"
	"github.com/kavachgate/kavach/gateway"
	"github.com/kavachgate/kavach/internal/redisurl"
	"github.com/kavachgate/kavach/mcp"
	"github.com/kavachgate/kavach/ratelimit"
	"github.com/kavachgate/kavach/revocation"
	"github.com/kavachgate/kavach/token"
)

// Options are what the program running a node gives it besides Config.
type Options struct {
	// Logger gets the node's messages (never a token). Default: discard.
	Logger *slog.Logger

	// Resolve replaces placeholders ({env.X}) in the settings that take
	// them: redis, admin_token, trusted_keys files, the audit settings, an
	// issuer's dsn. A placeholder that resolves to nothing is an error
	// where a value is required. Default: none are replaced.
	Resolve func(string) string

	// DataDir is the node's directory for what it keeps between runs: the
	// default audit trail and keys, the default issuer database, the
	// admin journal and a generated admin token. Caddy's glue gives
	// <Caddy data dir>/kavach. Required.
	DataDir string

	// Shared holds what nodes of this process share across reloads.
	// Default: a Shared of this runtime's own.
	Shared *Shared

	// Listen opens the admin listener on Config.Admin. Default: net.Listen
	// over TCP. Caddy's glue gives caddy.NetworkAddress.Listen, which
	// keeps the socket across reloads.
	Listen func(addr string) (net.Listener, error)

	// Metrics observes every gateway decision. Optional.
	Metrics gateway.Observer
}

// Runtime is a gateway node: its trusted keys and their watching, the
// revocation set and the loop that re-seeds it, the MCP session store,
// the audit writer, the issuers it runs and its admin listener. New
// builds it without I/O beyond reading trusted key files (it also runs
// to validate a configuration); Start opens and starts what it needs;
// Stop ends that; Release lets go of the shared parts.
//
// Lifecycle: New → AddIssuer… → Start → (requests: Ready, Gateway) →
// Stop → Release. Across a reload the new runtime starts before the old
// one stops, and shares its parts (see Shared).
type Runtime struct {
	cfg    Config
	opts   Options
	log    *slog.Logger
	shared *Shared
	gw     *gateway.Gateway

	redisURL string        // resolved; "" in memory mode
	redis    *redis.Client // this runtime's hold on the shared client
	held     []string      // keys of the shared parts held, released by Release

	rev      *revPart
	sessions mcp.SessionStore
	limiter  ratelimit.Store
	auditW   atomic.Pointer[audit.Writer]
	browser  audit.Browser       // the trail the issuers' console shows; nil: none
	journal  *revocation.Journal // admin-listener revocations, without an issuer

	ringMu     sync.Mutex
	files      []token.Issuer
	remotes    []*token.RemoteKeys
	local      map[string]*Issuer // issuers of this process, by identifier
	issuers    []*Issuer
	localCheck atomic.Int64

	cancel    context.CancelFunc
	done      <-chan struct{}
	keysReady chan struct{} // closed once remote keys had their chance (see Ready)
	keysOnce  sync.Once
	ready     atomic.Bool // Ready has nothing left to wait for

	adminSecret atomic.Pointer[string] // set when the admin listener starts
	admin       *http.Server
}

// New builds a node from cfg: the key ring from trusted key files, the
// remote key sets, the verifier and cache, and takes the shared
// revocation set and MCP session store. Nothing is fetched, dialled or
// started.
func New(cfg Config, opts Options) (*Runtime, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Resolve == nil {
		opts.Resolve = func(s string) string { return s }
	}
	if opts.Shared == nil {
		opts.Shared = NewShared()
	}
	rt := &Runtime{cfg: cfg, opts: opts, log: opts.Logger, shared: opts.Shared,
		local: map[string]*Issuer{}, keysReady: make(chan struct{})}
	if err := rt.loadKeys(); err != nil {
		return nil, err
	}
	ring, err := rt.keyRing()
	if err != nil {
		return nil, err
	}
	if err := rt.takeShared(); err != nil {
		rt.Release()
		return nil, err
	}
	rt.gw = &gateway.Gateway{
		Verifier:     token.NewVerifier(ring, token.VerifierOptions{MaxLifetime: time.Duration(cfg.MaxTokenLifetime)}),
		Cache:        gateway.NewCache(cfg.CacheSize),
		Revoked:      rt.rev.svc,
		Limiter:      rt.limiter,
		Metrics:      opts.Metrics,
		OnUnknownKey: rt.unknownKey,
	}
	if !cfg.AuditOff() {
		rt.gw.Audit = trail{rt}
	}
	return rt, nil
}

// Gateway is the node's decision pipeline.
func (rt *Runtime) Gateway() *gateway.Gateway { return rt.gw }

// Sessions is the MCP session store of the node's MCP routes.
func (rt *Runtime) Sessions() mcp.SessionStore { return rt.sessions }

// RevocationStatus reports the revocation set, for readiness and metrics
// (not for the request path: it counts every entry).
func (rt *Runtime) RevocationStatus() revocation.Status { return rt.rev.svc.Status() }

// takeShared resolves the Redis URL and takes the Redis client, the
// revocation set and the session store from the Shared. No I/O.
func (rt *Runtime) takeShared() error {
	if rt.cfg.Redis != "" {
		rt.redisURL = rt.opts.Resolve(rt.cfg.Redis)
		if rt.redisURL == "" {
			return fmt.Errorf("redis %s is empty", rt.cfg.Redis)
		}
		c, err := rt.redisClient()
		if err != nil {
			return err
		}
		rt.redis = c
	}
	key := "kavach.revocation.memory"
	if rt.redisURL != "" {
		// Settings are part of the key: a reload that changes them gets a
		// set built with them (it loads everything from Redis again).
		sum := sha256.Sum256(fmt.Appendf(nil, "%s|%d|%d", rt.redisURL, rt.cfg.MaxStaleness, rt.cfg.MaxLifetime()))
		key = "kavach.revocation.redis:" + hex.EncodeToString(sum[:8])
	}
	v, err := rt.hold(key, func() (any, func() error, error) { return rt.newRevocation() })
	if err != nil {
		return err
	}
	rt.rev = v.(*revPart)
	key = "kavach.mcp.sessions.memory"
	if rt.redisURL != "" {
		key = "kavach.mcp.sessions.redis:" + urlKey(rt.redisURL)
	}
	v, err = rt.hold(key, func() (any, func() error, error) {
		if rt.redisURL == "" {
			return mcp.NewMemorySessions(mcp.DefaultMaxSessions, mcp.DefaultSessionTTL), nil, nil
		}
		c, release, err := rt.borrowRedis()
		if err != nil {
			return nil, nil, err
		}
		s, err := mcp.NewRedisSessions(mcp.RedisSessionOptions{Client: c, Logger: rt.log.With("part", "mcp_sessions")})
		if err != nil {
			_ = release()
			return nil, nil, err
		}
		return s, func() error { return errors.Join(s.Close(), release()) }, nil
	})
	if err != nil {
		return err
	}
	rt.sessions = v.(mcp.SessionStore)
	return rt.takeLimiter()
}

// takeLimiter takes the store of rate limit buckets: one per process in
// memory mode (buckets survive a reload), one per Redis URL and
// staleness in cluster mode (the buckets themselves live in Redis).
func (rt *Runtime) takeLimiter() error {
	key := "kavach.ratelimit.memory"
	if rt.redisURL != "" {
		key = "kavach.ratelimit.redis:" + urlKey(fmt.Sprintf("%s|%d", rt.redisURL, rt.cfg.MaxStaleness))
	}
	v, err := rt.hold(key, func() (any, func() error, error) {
		if rt.redisURL == "" {
			return ratelimit.NewMemory(ratelimit.MemoryOptions{}), nil, nil
		}
		c, release, err := rt.borrowRedis()
		if err != nil {
			return nil, nil, err
		}
		s, err := ratelimit.NewRedis(ratelimit.RedisOptions{Client: c, MaxStaleness: time.Duration(rt.cfg.MaxStaleness)})
		if err != nil {
			_ = release()
			return nil, nil, err
		}
		return s, release, nil
	})
	if err != nil {
		return err
	}
	rt.limiter = v.(ratelimit.Store)
	return nil
}

// hold acquires a shared part for this runtime, released by Release.
func (rt *Runtime) hold(key string, open func() (any, func() error, error)) (any, error) {
	v, _, err := rt.shared.acquire(key, open)
	if err != nil {
		return nil, err
	}
	rt.held = append(rt.held, key)
	return v, nil
}

func urlKey(url string) string {
	sum := sha256.Sum256([]byte(url))
	return hex.EncodeToString(sum[:8])
}

// redisClient takes this runtime's hold on the one client of its Redis URL.
func (rt *Runtime) redisClient() (*redis.Client, error) {
	v, err := rt.hold("kavach.redis:"+urlKey(rt.redisURL), rt.openRedis)
	if err != nil {
		return nil, err
	}
	return v.(*redis.Client), nil
}

// borrowRedis is redisClient for a shared part that may outlive this
// runtime: the part holds the client itself and lets go with release.
func (rt *Runtime) borrowRedis() (*redis.Client, func() error, error) {
	key := "kavach.redis:" + urlKey(rt.redisURL)
	v, _, err := rt.shared.acquire(key, rt.openRedis)
	if err != nil {
		return nil, nil, err
	}
	return v.(*redis.Client), func() error { return rt.shared.release(key) }, nil
}

func (rt *Runtime) openRedis() (any, func() error, error) {
	o, err := redisurl.Parse(rt.redisURL)
	if err != nil {
		return nil, nil, fmt.Errorf("redis: %w", err)
	}
	c := redis.NewClient(o)
	return c, c.Close, nil
}

// Start starts the node: the revocation set's background work (waiting
// at most FirstLoadWait for a Redis set's first load), the audit trail,
// the issuers of this process (then seeds the revocation set), the key
// fetches (waiting at most FirstLoadWait for the first) and the admin
// listener.
func (rt *Runtime) Start() error {
	ctx, cancel := context.WithCancel(context.Background())
	rt.cancel, rt.done = cancel, ctx.Done()
	if rt.redisURL != "" {
		routeRedisLogs(rt.log)
	}
	rt.rev.start(rt.log)
	// The trail opens before anything that records into it.
	if err := rt.startAudit(); err != nil {
		cancel()
		return err
	}
	if err := rt.startIssuers(); err != nil {
		cancel()
		return err
	}
	rt.startKeys(ctx)
	if rt.cfg.Admin != "" {
		if err := rt.startAdmin(); err != nil {
			cancel()
			rt.stopIssuers()
			return err
		}
	}
	return nil
}

// Stop ends what Start began: the background work, the issuers and the
// admin listener (gracefully, within ShutdownTimeout). The shared parts
// stay for Release.
func (rt *Runtime) Stop() error {
	if rt.cancel != nil {
		rt.cancel()
	}
	rt.stopIssuers()
	if rt.admin == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	return rt.admin.Shutdown(ctx)
}

// Release lets go of the shared parts this runtime holds; the last
// holder of a part closes it (the audit writer: flush and a final
// checkpoint). Call it once, after Stop, or after New when Start was
// never called.
func (rt *Runtime) Release() error {
	var errs []error
	for i := len(rt.held) - 1; i >= 0; i-- {
		errs = append(errs, rt.shared.release(rt.held[i]))
	}
	rt.held = nil
	return errors.Join(errs...)
}

// Ready holds a request until the node can decide it: until the keys of
// issuers trusted by URL had their first chance to load, and a Redis
// revocation set loaded, each at most about FirstLoadWait after start
// (Caddy may serve before the node starts: without this a gateway's first
// requests would get 401 or 503 for tokens that are fine). Once nothing
// is left to wait for it is one atomic load.
func (rt *Runtime) Ready(ctx context.Context) {
	if !rt.ready.Load() {
		rt.waitReady(ctx) // kept out of Ready, so that Ready inlines
	}
}

func (rt *Runtime) waitReady(ctx context.Context) {
	if rt.rev.waitFirstLoad(ctx) && rt.waitKeys(ctx) {
		rt.ready.Store(true)
	}
}

// waitKeys waits for Start to have given the remote keys their chance,
// at most FirstLoadWait + keysWaitSlack; true when it has.
func (rt *Runtime) waitKeys(ctx context.Context) bool {
	select {
	case <-rt.keysReady:
		return true
	default:
	}
	t := time.NewTimer(FirstLoadWait + keysWaitSlack)
	defer t.Stop()
	select {
	case <-rt.keysReady:
		return true
	case <-ctx.Done():
	case <-t.C:
	}
	return false
}

// revPart is the shared revocation set and its background work, started
// once by the first runtime that starts with it.
type revPart struct {
	svc       revocation.Service
	once      sync.Once
	cancel    context.CancelFunc
	loaded    atomic.Bool  // a Redis set's first load completed
	startedAt atomic.Int64 // Unix nanoseconds
	redis     bool
}

func (rt *Runtime) newRevocation() (any, func() error, error) {
	if rt.redisURL == "" {
		p := &revPart{svc: revocation.NewMemory(revocation.MemoryOptions{SweepInterval: MemorySweep})}
		p.loaded.Store(true)
		return p, p.close, nil
	}
	c, release, err := rt.borrowRedis()
	if err != nil {
		return nil, nil, err
	}
	r, err := revocation.NewRedis(revocation.RedisOptions{
		Client:       c,
		MaxStaleness: time.Duration(rt.cfg.MaxStaleness),
		MaxLifetime:  rt.cfg.MaxLifetime(),
		Leeway:       token.Leeway,
		Logger:       rt.log.With("part", "revocation"),
	})
	if err != nil {
		_ = release()
		return nil, nil, fmt.Errorf("redis: %w", err)
	}
	p := &revPart{svc: r, redis: true}
	return p, func() error { return errors.Join(p.close(), release()) }, nil
}

// start begins the background work once per set, and for a Redis set
// waits briefly for the first load so a fresh gateway does not open with
// 503s.
func (p *revPart) start(log *slog.Logger) {
	p.once.Do(func() {
		ctx, cancel := context.WithCancel(context.Background())
		p.cancel = cancel
		p.startedAt.Store(time.Now().UnixNano())
		go p.svc.Run(ctx)
	})
	if p.loaded.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), FirstLoadWait)
	defer cancel()
	if err := p.svc.WaitLoaded(ctx); err != nil {
		log.Warn("revocation set not loaded from redis yet; requests get 503 until it is", "error", err)
		return
	}
	p.loaded.Store(true)
}

// waitFirstLoad holds a request that arrives before a Redis set's first
// load, for at most FirstLoadWait after the set started (DESIGN.md §5);
// true when there is nothing left to wait for.
func (p *revPart) waitFirstLoad(ctx context.Context) bool {
	if p.loaded.Load() {
		return true
	}
	started := p.startedAt.Load()
	if started == 0 {
		started = time.Now().UnixNano()
	}
	deadline := time.Unix(0, started).Add(FirstLoadWait)
	if !time.Now().Before(deadline) {
		return true
	}
	wctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	if p.svc.WaitLoaded(wctx) == nil {
		p.loaded.Store(true)
		return true
	}
	// Past the deadline of a set that has started: requests get 503 from
	// the gateway until it loads.
	return p.startedAt.Load() != 0 && ctx.Err() == nil && !time.Now().Before(deadline)
}

func (p *revPart) close() error {
	if p.cancel != nil {
		p.cancel()
	}
	return p.svc.Close()
}
