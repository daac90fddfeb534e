package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/kavachgate/kavach/issuer"
	"github.com/kavachgate/kavach/issuer/store"
	"github.com/kavachgate/kavach/token"
)

func init() {
	caddy.RegisterModule(IssuerHandler{})
}

// IssuerHandler (`http.handlers.kavach_issuer`) is the Kavach issuer: an
// OAuth 2.1 authorization server for agents (package issuer). It serves
// the OAuth endpoints on its site; its agent admin API is served by the
// kavach app's admin listener, and it writes revocations into the app's
// revocation set.
type IssuerHandler struct {
	// Issuer is the issuer identifier: the exact public base URL of this
	// site (https unless loopback). Required.
	Issuer string `json:"issuer"`
	// Store is "sqlite" (default) or "postgres".
	Store string `json:"store,omitempty"`
	// DSN is the SQLite file or the PostgreSQL URL; placeholders such as
	// {env.KAVACH_PG} are replaced. Default: kavach/issuer.db in Caddy's
	// data directory.
	DSN string `json:"dsn,omitempty"`
	// AccessTokenTTL is the lifetime of access tokens. Default: 5m.
	AccessTokenTTL caddy.Duration `json:"access_token_ttl,omitempty"`
	// RefreshTokenTTL is the lifetime of refresh tokens. Default: 168h.
	RefreshTokenTTL caddy.Duration `json:"refresh_token_ttl,omitempty"`
	// MaxDepth is the longest delegation chain. Default: 5.
	MaxDepth int `json:"max_depth,omitempty"`
	// DisableRegistration turns off RFC 7591 dynamic client registration.
	DisableRegistration bool `json:"disable_registration,omitempty"`
	// DevLoopbackClientMetadata lets client ID metadata documents live on
	// loopback http URLs. Development only.
	DevLoopbackClientMetadata bool `json:"dev_loopback_client_metadata,omitempty"`

	app   *App
	srv   *atomic.Pointer[issuer.Server] // a pointer: the module is copied by value in CaddyModule
	st    store.Store
	key   string
	redis *redis.Client // the assertion replay store, in cluster mode
}

// CaddyModule returns the Caddy module information.
func (IssuerHandler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.kavach_issuer",
		New: func() caddy.Module { return new(IssuerHandler) },
	}
}

// Provision checks the configuration and registers the issuer with the
// kavach app, which opens the store and starts it in App.Start (nothing
// is opened here: Provision also runs under `kavach validate`).
func (h *IssuerHandler) Provision(ctx caddy.Context) error {
	appIface, err := ctx.App("kavach")
	if err != nil {
		return err
	}
	h.app = appIface.(*App)
	h.srv = new(atomic.Pointer[issuer.Server])
	if h.Store == "" {
		h.Store = "sqlite"
	}
	return h.app.registerIssuer(h)
}

// Validate refuses a configuration the issuer could not run with.
func (h *IssuerHandler) Validate() error {
	if _, err := issuer.ValidateIssuerURL(h.Issuer); err != nil {
		return err
	}
	switch h.Store {
	case "sqlite", "postgres":
	default:
		return fmt.Errorf("store must be sqlite or postgres, not %q", h.Store)
	}
	if h.Store == "postgres" && h.DSN == "" {
		return errors.New("store postgres needs a URL (e.g. {env.KAVACH_PG})")
	}
	if h.MaxDepth < 0 || h.MaxDepth > token.MaxChainLen {
		return fmt.Errorf("max_depth must be between 1 and %d", token.MaxChainLen)
	}
	// The kavach app is provisioned before this handler, so its
	// max_token_lifetime is known here (issuer.New would refuse it at run).
	if err := checkAccessTTL(time.Duration(h.AccessTokenTTL), h.app.maxLifetime()); err != nil {
		return fmt.Errorf("issuer %s: %w", h.Issuer, err)
	}
	return nil
}

// checkAccessTTL refuses an access token lifetime the gateways of the
// config would refuse: over the global max_token_lifetime.
func checkAccessTTL(ttl, maxLifetime time.Duration) error {
	what := "access_token_ttl"
	if ttl <= 0 {
		ttl, what = issuer.DefaultAccessTTL, "access_token_ttl (default)"
	}
	if ttl > maxLifetime {
		return fmt.Errorf("%s %v is longer than the global max_token_lifetime %v: the gateways would refuse every token it issues", what, ttl, maxLifetime)
	}
	return nil
}

// dsn resolves the store location.
func (h *IssuerHandler) dsn() (string, error) {
	if h.DSN == "" {
		return filepath.Join(caddy.AppDataDir(), "kavach", "issuer.db"), nil
	}
	v := caddy.NewReplacer().ReplaceAll(h.DSN, "")
	if v == "" {
		return "", fmt.Errorf("kavach_issuer: store %s is empty", h.DSN)
	}
	return v, nil
}

// start opens the store (shared across reloads) and starts the issuer.
func (h *IssuerHandler) start(a *App) error {
	dsn, err := h.dsn()
	if err != nil {
		return err
	}
	h.key = "kavach.store:" + h.Store + ":" + dsn
	val, _, err := storePool.LoadOrNew(h.key, func() (caddy.Destructor, error) {
		if h.Store == "sqlite" {
			// A fresh machine has no data directory yet.
			if err := os.MkdirAll(filepath.Dir(dsn), 0o700); err != nil {
				return nil, err
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		st, err := store.Open(ctx, h.Store, dsn)
		if err != nil {
			return nil, err
		}
		return pooledStore{st}, nil
	})
	if err != nil {
		h.key = ""
		return fmt.Errorf("kavach_issuer: %w", err)
	}
	h.st = val.(pooledStore).Store
	var replay issuer.ReplayStore
	if a.Redis != "" {
		// Several issuers behind one Redis refuse an assertion replayed
		// at any of them.
		opts, err := redis.ParseURL(caddy.NewReplacer().ReplaceAll(a.Redis, ""))
		if err != nil {
			return fmt.Errorf("kavach_issuer: redis: %w", err)
		}
		h.redis = redis.NewClient(opts)
		replay = issuer.RedisReplay{Client: h.redis}
	}
	srv, err := issuer.New(issuer.Config{
		Replay:                replay,
		Issuer:                h.Issuer,
		Store:                 h.st,
		Revoked:               a.rev,
		AccessTTL:             time.Duration(h.AccessTokenTTL),
		RefreshTTL:            time.Duration(h.RefreshTokenTTL),
		MaxTokenLifetime:      a.maxLifetime(),
		MaxDepth:              h.MaxDepth,
		DisableRegistration:   h.DisableRegistration,
		AllowLoopbackMetadata: h.DevLoopbackClientMetadata,
		AdminAuth:             a.isAdmin,
		OnEvent:               a.auditEvent,
		ClientIP: func(r *http.Request) string {
			// Caddy's client_ip honours trusted_proxies.
			ip, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
			return ip
		},
		Logger: slogFrom(a.logger.Named("issuer")),
	})
	if err != nil {
		return err
	}
	if err := srv.Start(context.Background()); err != nil {
		return err
	}
	h.srv.Store(srv)
	a.logger.Info("kavach issuer started", zap.String("issuer", h.Issuer), zap.String("store", h.Store))
	return nil
}

func (h *IssuerHandler) stop() {
	if srv := h.srv.Load(); srv != nil {
		_ = srv.Close()
	}
	if h.redis != nil {
		_ = h.redis.Close()
	}
}

// Cleanup releases the store.
func (h *IssuerHandler) Cleanup() error {
	if h.key != "" {
		_, err := storePool.Delete(h.key)
		return err
	}
	return nil
}

// ServeHTTP serves the issuer's endpoints and answers 404 to anything
// else (never Caddy's empty 200): to serve more on the issuer's site, put
// the handler under a matcher (`handle /oauth/* { kavach_issuer … }`, plus
// the /.well-known/ paths).
func (h *IssuerHandler) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	srv := h.srv.Load()
	if srv == nil {
		return caddyhttp.Error(http.StatusServiceUnavailable, errors.New("issuer starting"))
	}
	if !srv.Handles(r) {
		return caddyhttp.Error(http.StatusNotFound, errors.New("not found"))
	}
	srv.Handler().ServeHTTP(w, r)
	return nil
}

// storePool keeps the issuer's database handle across config reloads.
var storePool = caddy.NewUsagePool()

type pooledStore struct{ store.Store }

func (p pooledStore) Destruct() error { return p.Close() }

// Interface guards
var (
	_ caddy.Provisioner           = (*IssuerHandler)(nil)
	_ caddy.Validator             = (*IssuerHandler)(nil)
	_ caddy.CleanerUpper          = (*IssuerHandler)(nil)
	_ caddyhttp.MiddlewareHandler = (*IssuerHandler)(nil)
	_ caddyfile.Unmarshaler       = (*IssuerHandler)(nil)
)
