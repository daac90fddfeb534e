package caddymodule

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"go.uber.org/zap"

	"github.com/kavachgate/kavach/audit"
	"github.com/kavachgate/kavach/gateway"
	"github.com/kavachgate/kavach/mcp"
	"github.com/kavachgate/kavach/revocation"
	"github.com/kavachgate/kavach/token"
)

func init() {
	caddy.RegisterModule(App{})
}

// App is the `kavach` app: what every Kavach handler of a config shares
// (trusted keys, the verified-token cache, the revocation set) and the
// Kavach admin listener. The Caddyfile's global `kavach { … }` option
// configures it.
type App struct {
	// Issuers are Kavach issuers trusted by URL: their keys are found
	// through RFC 8414 metadata (jwks_uri) and refreshed in the background.
	// Each must be https unless on loopback.
	Issuers []string `json:"issuers,omitempty"`

	// TrustedKeys are Kavach issuers whose JWK set is a local file
	// (offline use, no metadata fetch).
	TrustedKeys []TrustedKeys `json:"trusted_keys,omitempty"`

	// ExternalIssuers are non-Kavach issuers (Okta, Entra, Keycloak) whose
	// tokens get scope and audience checks only.
	ExternalIssuers []ExternalIssuer `json:"external_issuers,omitempty"`

	// MaxTokenLifetime is the longest exp − iat accepted. Default: 1h.
	MaxTokenLifetime caddy.Duration `json:"max_token_lifetime,omitempty"`

	// CacheSize bounds the verified-token cache, in entries. Default: 65536.
	CacheSize int `json:"cache_size,omitempty"`

	// KeyRefresh is how often keys of issuers trusted by URL are refetched.
	// Default: 5m.
	KeyRefresh caddy.Duration `json:"key_refresh,omitempty"`

	// Redis is the URL of the Redis server a cluster of gateways shares for
	// revocation and MCP session bindings (redis:// or rediss://; password
	// and TLS through a placeholder such as {env.KAVACH_REDIS}). Empty:
	// single node, memory.
	Redis string `json:"redis,omitempty"`

	// MaxStaleness is how long the gateway trusts its revocation set
	// without hearing from Redis; past it, requests get 503. Default: 30s.
	MaxStaleness caddy.Duration `json:"max_staleness,omitempty"`

	// Admin is the loopback address of the Kavach admin listener (agent and
	// revocation API). Off when empty.
	Admin string `json:"admin,omitempty"`

	// AdminToken is the bearer token of the admin listener; use a
	// placeholder such as {env.KAVACH_ADMIN_TOKEN}. Default: the
	// KAVACH_ADMIN_TOKEN environment variable, else a token generated into
	// Caddy's data directory (kavach/admin_token, mode 0600).
	AdminToken string `json:"admin_token,omitempty"`

	// Audit is where the tamper-evident audit trail goes (DESIGN.md §6):
	// a decision record for every request that carried a verifiable token
	// and an outcome record after its response, issuer events, counted
	// junk, signed checkpoints. Default: a file in Caddy's data directory
	// (see AuditConfig.Path).
	Audit *AuditConfig `json:"audit,omitempty"`

	gw      *gateway.Gateway
	remotes []*token.RemoteKeys
	files   []token.Issuer
	ringMu  *sync.Mutex // a pointer: App is copied by value in CaddyModule
	rev     *sharedRevocation
	revKey  string
	journal *revocation.Journal // admin-listener revocations, without an issuer
	admin   *http.Server
	cancel  context.CancelFunc
	logger  *zap.Logger
	adminLn net.Listener

	issuers     []*IssuerHandler        // kavach_issuer handlers of this config
	localKeys   map[string]*localSet    // issuers of this process, by identifier
	adminKey    *atomic.Pointer[string] // a pointer: App is copied by value in CaddyModule
	mcpSessions mcp.SessionStore        // MCP sessions bound to chains, shared across reloads
	sessKey     string                  // sessionsPool key held by this config
	done        <-chan struct{}         // closed when Stop cancels the background work
	keysReady   chan struct{}           // closed once remote keys had their chance to load (see waitKeys)
	keysOnce    *sync.Once
	localCheck  *atomic.Int64                 // last on-demand look at local keys (a pointer: App is copied by value in CaddyModule)
	auditW      *atomic.Pointer[audit.Writer] // set in Start (a pointer: App is copied by value in CaddyModule)
	auditKey    string                        // auditPool key held by this config
}

// localSet is the key set of an issuer running in this process, read
// from it directly rather than over HTTP.
type localSet struct {
	h    *IssuerHandler
	last []byte
	set  jwk.Set
}

// TrustedKeys names a Kavach issuer and the file holding its public JWK set.
type TrustedKeys struct {
	Issuer string `json:"issuer"`
	File   string `json:"file"`
}

// ExternalIssuer is a trusted non-Kavach issuer.
type ExternalIssuer struct {
	// Issuer is its iss value, compared exactly.
	Issuer string `json:"issuer"`
	// JWKS is the URL of its key set (https unless loopback).
	JWKS string `json:"jwks"`
	// Algorithms it signs with. Default: RS256.
	Algorithms []string `json:"algorithms,omitempty"`
	// Types are the accepted JOSE typ values. Default: at+jwt and JWT.
	Types []string `json:"types,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "kavach",
		New: func() caddy.Module { return new(App) },
	}
}

// Provision builds the key ring from local files, the verifier and cache,
// and takes the shared revocation set. Nothing is fetched, opened or
// started here: Provision also runs under `kavach validate`.
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	a.ringMu = new(sync.Mutex)
	a.localCheck = new(atomic.Int64)
	a.keysReady, a.keysOnce = make(chan struct{}), new(sync.Once)
	a.adminKey = new(atomic.Pointer[string])
	a.auditW = new(atomic.Pointer[audit.Writer])
	if a.Redis != "" {
		routeRedisLogs()
	}
	repl := caddy.NewReplacer()
	for i, tk := range a.TrustedKeys {
		data, err := os.ReadFile(repl.ReplaceKnown(tk.File, ""))
		if err != nil {
			return fmt.Errorf("trusted_keys %s: %w", tk.Issuer, err)
		}
		set, err := jwk.Parse(data)
		if err != nil {
			return fmt.Errorf("trusted_keys %s: %s: %w", tk.Issuer, tk.File, err)
		}
		a.files = append(a.files, token.Issuer{ID: a.TrustedKeys[i].Issuer, Keys: set})
	}
	for _, iss := range a.Issuers {
		rk, err := token.NewRemoteKeys(token.RemoteOptions{
			Issuer:   iss,
			Refresh:  time.Duration(a.KeyRefresh),
			OnUpdate: func(jwk.Set) { a.rebuildKeys() },
			Logger:   slogFrom(a.logger),
		})
		if err != nil {
			return fmt.Errorf("issuer %s: %w", iss, err)
		}
		a.remotes = append(a.remotes, rk)
	}
	for _, ext := range a.ExternalIssuers {
		rk, err := token.NewRemoteKeys(token.RemoteOptions{
			Issuer:   ext.Issuer,
			JWKSURL:  ext.JWKS,
			Refresh:  time.Duration(a.KeyRefresh),
			OnUpdate: func(jwk.Set) { a.rebuildKeys() },
			Logger:   slogFrom(a.logger),
		})
		if err != nil {
			return fmt.Errorf("external_issuer %s: %w", ext.Issuer, err)
		}
		a.remotes = append(a.remotes, rk)
	}
	ring, err := a.keyRing()
	if err != nil {
		return err
	}
	if err := a.provisionRevocation(); err != nil {
		return err
	}
	if err := a.provisionSessions(); err != nil {
		return err
	}
	a.gw = &gateway.Gateway{
		Verifier: token.NewVerifier(ring, token.VerifierOptions{MaxLifetime: time.Duration(a.MaxTokenLifetime)}),
		Cache:    gateway.NewCache(a.CacheSize),
		Revoked:  a.rev,
		Metrics:  decisionMetrics{},
		OnUnknownKey: func() {
			for _, r := range a.remotes {
				r.RefreshSoon()
			}
			// A token from a key the local issuer has just rotated in: look
			// again, at most once a second (unknown kids are attacker input).
			if len(a.localKeys) > 0 {
				if t := time.Now().UnixNano(); t-a.localCheck.Load() > int64(time.Second) {
					a.localCheck.Store(t)
					a.refreshLocalKeys()
				}
			}
		},
	}
	if !a.auditOff() {
		a.gw.Audit = appTrail{a}
	}
	return nil
}

// keyRing assembles every issuer's current keys. Issuers trusted by URL
// have no keys until their first fetch.
func (a *App) keyRing() (*token.KeyRing, error) {
	issuers := append([]token.Issuer(nil), a.files...)
	for i, iss := range a.Issuers {
		keys := a.remotes[i].Keys()
		if ls := a.localKeys[iss]; ls != nil {
			keys = ls.set
		}
		issuers = append(issuers, token.Issuer{ID: iss, Keys: keys})
	}
	for i, ext := range a.ExternalIssuers {
		algs := ext.Algorithms
		if len(algs) == 0 {
			algs = []string{"RS256"}
		}
		var sa []jwa.SignatureAlgorithm
		for _, s := range algs {
			sa = append(sa, jwa.SignatureAlgorithm(s))
		}
		types := ext.Types
		if len(types) == 0 {
			types = []string{token.TypeAccessToken, "JWT"}
		}
		issuers = append(issuers, token.Issuer{ID: ext.Issuer, External: true, Algorithms: sa, Types: types, Keys: a.remotes[len(a.Issuers)+i].Keys()})
	}
	return token.NewKeyRing(issuers...)
}

// rebuildKeys swaps in the keys after a remote set changed, then purges
// the verify cache so nothing verified with a withdrawn key is served.
func (a *App) rebuildKeys() {
	a.ringMu.Lock()
	defer a.ringMu.Unlock()
	ring, err := a.keyRing()
	if err != nil {
		a.logger.Error("trusted keys rejected; keeping the previous set", zap.Error(err))
		return
	}
	a.gw.Verifier.SetKeyRing(ring)
	a.gw.Cache.Purge()
}

// Validate checks the configuration without side effects.
func (a *App) Validate() error {
	seen := map[string]bool{}
	for _, id := range a.issuerIDs() {
		if id == "" {
			return errors.New("an issuer has an empty identifier")
		}
		if seen[id] {
			return fmt.Errorf("issuer %s is configured twice", id)
		}
		seen[id] = true
	}
	if a.Admin != "" {
		if err := loopbackAddr(a.Admin); err != nil {
			return fmt.Errorf("admin %s: %w", a.Admin, err)
		}
		// What startAdmin listens with, so that validate refuses what run would.
		if na, err := caddy.ParseNetworkAddress(a.Admin); err != nil || na.PortRangeSize() != 1 {
			return fmt.Errorf("admin %s: want one loopback host:port", a.Admin)
		}
	}
	if a.CacheSize < 0 {
		return errors.New("cache_size must not be negative")
	}
	if a.Audit != nil {
		if err := a.Audit.validate(); err != nil {
			return err
		}
	}
	return nil
}

// issuerIDs lists every trusted issuer identifier, Kavach issuers first.
func (a *App) issuerIDs() []string {
	var ids []string
	ids = append(ids, a.Issuers...)
	for _, tk := range a.TrustedKeys {
		ids = append(ids, tk.Issuer)
	}
	for _, e := range a.ExternalIssuers {
		ids = append(ids, e.Issuer)
	}
	return ids
}

// kavachIssuerIDs lists the Kavach issuers (the authorization servers a
// protected resource names in its metadata).
func (a *App) kavachIssuerIDs() []string {
	ids := append([]string(nil), a.Issuers...)
	for _, tk := range a.TrustedKeys {
		ids = append(ids, tk.Issuer)
	}
	return ids
}

func loopbackAddr(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return errors.New("the admin listener must be on a loopback address")
	}
	return nil
}

// registerIssuer is called by each kavach_issuer handler's Provision.
func (a *App) registerIssuer(h *IssuerHandler) error {
	for _, o := range a.issuers {
		if o.Issuer == h.Issuer {
			return fmt.Errorf("kavach_issuer %s is configured twice", h.Issuer)
		}
	}
	a.issuers = append(a.issuers, h)
	return nil
}

// Start starts the issuers of this process, fetches remote keys in the
// background, starts the revocation sweeper and the admin listener.
func (a *App) Start() error {
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel, a.done = cancel, ctx.Done()
	a.rev.start(a.logger)
	activeRevocation.Store(a.rev)
	// The trail opens before anything that records into it.
	if err := a.startAudit(); err != nil {
		cancel()
		return err
	}
	if err := a.startIssuers(); err != nil {
		cancel()
		return err
	}
	var fetching []*token.RemoteKeys
	for i, r := range a.remotes {
		if i < len(a.Issuers) && a.localKeys[a.Issuers[i]] != nil {
			continue // keys come from the issuer in this process
		}
		go r.Run(ctx)
		fetching = append(fetching, r)
	}
	waitFirstKeys(fetching, firstLoadWait)
	a.keysOnce.Do(func() { close(a.keysReady) })
	if len(a.localKeys) > 0 {
		go a.watchLocalKeys(ctx)
	}
	if a.Admin != "" {
		if err := a.startAdmin(); err != nil {
			cancel()
			return err
		}
	}
	return nil
}

// waitFirstKeys gives remote key sets a moment to arrive, so a gateway
// that has just started does not answer 401 to every token (an issuer that
// is down costs at most wait; its keys then come with a later refresh).
func waitFirstKeys(remotes []*token.RemoteKeys, wait time.Duration) {
	deadline := time.Now().Add(wait)
	for _, r := range remotes {
		for r.LastSuccess().IsZero() && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// waitKeys holds a request that arrives before Start has given remote
// issuers' keys their first chance to load (Caddy may start serving before
// the kavach app starts): without it, a gateway's first requests would get
// 401 for tokens that are fine. Bounded: at most a little over the wait
// Start itself allows.
func (a *App) waitKeys(ctx context.Context) {
	select {
	case <-a.keysReady:
		return
	default:
	}
	t := time.NewTimer(firstLoadWait + time.Second)
	defer t.Stop()
	select {
	case <-a.keysReady:
	case <-ctx.Done():
	case <-t.C:
	}
}

// startIssuers starts every kavach_issuer of the config and checks the
// rule of DESIGN.md §5: a gateway trusting a Kavach issuer by URL must
// hear its revocations, so that issuer runs in this process (sharing the
// revocation set) or the gateways share Redis.
func (a *App) startIssuers() error {
	a.localKeys = map[string]*localSet{}
	for _, h := range a.issuers {
		if err := h.start(a); err != nil {
			a.stopIssuers()
			return err
		}
		a.localKeys[h.Issuer] = &localSet{h: h}
	}
	for _, iss := range a.Issuers {
		if a.localKeys[iss] == nil && a.Redis == "" {
			a.stopIssuers()
			return fmt.Errorf("issuer %s: trusting a Kavach issuer of another process needs shared revocation: add redis <url>, run the issuer in this config (kavach_issuer), or use trusted_keys for offline keys", iss)
		}
	}
	if len(a.issuers) > 0 {
		a.refreshLocalKeys()
	} else {
		a.journal = revocation.NewJournal(revocationJournalPath())
	}
	if err := a.seedRevocations(); err != nil {
		a.stopIssuers()
		return err
	}
	return nil
}

// revocationJournalPath is where a gateway without an issuer keeps what
// its admin listener revoked.
func revocationJournalPath() string {
	return filepath.Join(caddy.AppDataDir(), "kavach", "revocations.jsonl")
}

// seedRevocations makes the gateways' set hold what was revoked before
// this process started (DESIGN.md §5): what the issuers' stores hold (the
// source of truth), or, without an issuer, the admin listener's journal.
// In memory mode the set starts empty with every process, so it is seeded
// at start, and a source that cannot be read stops the start (a gateway
// that cannot know what was revoked must not open as if nothing had
// been); in Redis mode the set is re-seeded whenever Redis has lost its
// data (the epoch is missing), checked every few seconds.
func (a *App) seedRevocations() error {
	seed := func() error {
		var errs []error
		for _, h := range a.issuers {
			srv := h.srv.Load()
			if srv == nil {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			n, err := srv.Reseed(ctx)
			cancel()
			if err != nil {
				a.logger.Error("seeding the revocation set from the issuer's store failed", zap.String("issuer", h.Issuer), zap.Error(err))
				errs = append(errs, fmt.Errorf("seeding revocations from issuer %s: %w", h.Issuer, err))
				continue
			}
			a.logger.Info("revocation set seeded from the issuer's store", zap.String("issuer", h.Issuer), zap.Int("entries", n))
		}
		if a.journal != nil {
			entries, err := a.journal.Load(time.Now())
			if err == nil && len(entries) > 0 {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				err = a.rev.Reseed(ctx, entries)
				cancel()
			}
			if err != nil {
				a.logger.Error("seeding the revocation set from the admin journal failed", zap.String("file", a.journal.Path()), zap.Error(err))
				errs = append(errs, fmt.Errorf("seeding revocations from %s: %w", a.journal.Path(), err))
			} else if len(entries) > 0 {
				a.logger.Info("revocation set seeded from the admin journal", zap.String("file", a.journal.Path()), zap.Int("entries", len(entries)))
			}
		}
		return errors.Join(errs...)
	}
	if a.rev.redis == nil {
		return seed()
	}
	go func() {
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			if st := a.rev.status(); st.Fresh && st.EpochMissing {
				_ = seed() // logged; retried at the next tick while the epoch is missing
			}
			select {
			case <-a.done:
				return
			case <-t.C:
			}
		}
	}()
	return nil
}

func (a *App) stopIssuers() {
	for _, h := range a.issuers {
		h.stop()
	}
}

// refreshLocalKeys re-reads the key sets of the issuers in this process and
// rebuilds the ring when one changed (a rotation).
func (a *App) refreshLocalKeys() {
	changed := false
	for _, ls := range a.localKeys {
		srv := ls.h.srv.Load()
		if srv == nil {
			continue
		}
		doc := srv.JWKS()
		if string(doc) == string(ls.last) {
			continue
		}
		set, err := jwk.Parse(doc)
		if err != nil {
			a.logger.Error("issuer key set unreadable", zap.String("issuer", ls.h.Issuer), zap.Error(err))
			continue
		}
		a.ringMu.Lock()
		ls.last, ls.set = doc, set
		a.ringMu.Unlock()
		changed = true
	}
	if changed {
		a.rebuildKeys()
	}
}

// watchLocalKeys follows key rotations of the issuers in this process.
func (a *App) watchLocalKeys(ctx context.Context) {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a.refreshLocalKeys()
		}
	}
}

// isAdmin reports whether r carries the Kavach admin token.
func (a *App) isAdmin(r *http.Request) bool {
	secret := a.adminKey.Load()
	if secret == nil {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte("Bearer "+*secret)) == 1
}

// Stop ends what Start began.
func (a *App) Stop() error {
	if a.cancel != nil {
		a.cancel()
	}
	a.stopIssuers()
	if a.admin != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return a.admin.Shutdown(ctx)
	}
	return nil
}

// sessionsPool keeps MCP session bindings across config reloads: one
// memory store per process, or one Redis store per Redis URL.
var sessionsPool = caddy.NewUsagePool()

type pooledSessions struct {
	mcp.SessionStore
	close func() error // the Redis store's connections
}

func (p pooledSessions) Destruct() error {
	if p.close != nil {
		return p.close()
	}
	return nil
}

// provisionSessions takes the MCP session store (DESIGN.md §4.1). With
// the `redis` option, the bindings live in that Redis, so every gateway
// of the cluster knows every session and a restart loses none; without
// it, in this process's memory, and a restart makes every earlier
// session unknown (404, the client starts a new one). No I/O here.
func (a *App) provisionSessions() error {
	url, err := a.redisURL()
	if err != nil {
		return err
	}
	key := "kavach.mcp.sessions.memory"
	if url != "" {
		sum := sha256.Sum256([]byte(url))
		key = "kavach.mcp.sessions.redis:" + hex.EncodeToString(sum[:8])
	}
	val, _, err := sessionsPool.LoadOrNew(key, func() (caddy.Destructor, error) {
		if url == "" {
			return pooledSessions{SessionStore: mcp.NewMemorySessions(mcp.DefaultMaxSessions, mcp.DefaultSessionTTL)}, nil
		}
		s, err := mcp.NewRedisSessions(mcp.RedisSessionOptions{URL: url, Logger: slogFrom(a.logger.Named("mcp_sessions"))})
		if err != nil {
			return nil, fmt.Errorf("redis: %w", err)
		}
		return pooledSessions{SessionStore: s, close: s.Close}, nil
	})
	if err != nil {
		return err
	}
	a.mcpSessions, a.sessKey = val.(pooledSessions).SessionStore, key
	return nil
}

// Cleanup releases the shared revocation set, session bindings and audit
// writer (the last config holding it closes the trail: flush and final
// checkpoint).
func (a *App) Cleanup() error {
	if err := a.stopAudit(); err != nil {
		a.logger.Error("closing the audit trail", zap.Error(err))
	}
	if a.mcpSessions != nil {
		_, _ = sessionsPool.Delete(a.sessKey)
	}
	if a.rev != nil {
		_, err := revocationPool.Delete(a.revKey)
		return err
	}
	return nil
}

// adminTokenFile is where a generated admin token is kept.
func adminTokenFile() string {
	return filepath.Join(caddy.AppDataDir(), "kavach", "admin_token")
}

// Interface guards
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.Validator    = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
)
