package issuer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/kavachgate/kavach/audit"
	"github.com/kavachgate/kavach/issuer/idp"
	"github.com/kavachgate/kavach/issuer/store"
	"github.com/kavachgate/kavach/policy"
	"github.com/kavachgate/kavach/revocation"
	"github.com/kavachgate/kavach/token"
)

// now is the clock; tests replace it.
var now = time.Now

// Config configures a Server. Zero values take the defaults.
type Config struct {
	// Issuer is the issuer identifier: the exact public base URL
	// (RFC 8414 §2), https unless loopback.
	Issuer string
	// Store is the source of truth. Required.
	Store store.Store
	// Revoked is the revocation set of the gateways this issuer serves
	// (in-process memory, or Redis shared with other gateways). Every
	// revocation is written to the store first, then here. Optional.
	Revoked revocation.Set
	// AccessTTL is the lifetime of access tokens. Default 5 min.
	AccessTTL time.Duration
	// MaxTokenLifetime bounds every token's exp − iat (and revocation
	// entries live this long plus two leeways). Default 1 h.
	MaxTokenLifetime time.Duration
	// RefreshTTL is the lifetime of refresh tokens. Default 7 days.
	RefreshTTL time.Duration
	// RefreshGrace is how long a rotated refresh token may be presented
	// again (a client retrying a lost response) before reuse revokes the
	// whole family. Default 10 s.
	RefreshGrace time.Duration
	// MaxDepth is the longest delegation chain. Default policy.DefaultMaxDepth.
	MaxDepth int
	// MaxAgentTTL bounds the ttl of agents created through the admin API.
	// Default 90 days.
	MaxAgentTTL time.Duration
	// KeyPublishAhead: see DefaultKeyPublishAhead.
	KeyPublishAhead time.Duration
	// DisableRegistration turns off RFC 7591 dynamic client registration.
	DisableRegistration bool
	// AllowLoopbackMetadata lets client ID metadata documents live on
	// loopback http URLs (development only).
	AllowLoopbackMetadata bool
	// AdminAuth reports whether a request carries the admin credential
	// (the Kavach admin token); it lets the admin token introspect.
	AdminAuth func(r *http.Request) bool
	// Replay, when set, shares private_key_jwt assertion ids between
	// issuer processes (RedisReplay in a cluster); each process also keeps
	// its own. Optional.
	Replay ReplayStore
	// ClientIP returns the client address of a request ("ip" or
	// "ip:port") for per-address login limits; behind a proxy, the
	// trusted client address (Caddy's client_ip). Default: RemoteAddr.
	ClientIP func(r *http.Request) string
	// OnEvent receives issuer events (issued, delegated, refreshed,
	// revoked, login failed) for the audit trail. Optional.
	OnEvent func(Event)
	// Logger logs operational problems; never a token or secret.
	Logger *slog.Logger

	// Sign-in through the organisation's identity provider (DESIGN.md
	// §11, issue 16). These fields are Caddy-free and JSON-tagged so the
	// Caddyfile glue can embed them; with none set, sign-in is local
	// passwords only, as before.

	// Login are the upstream OpenID providers people sign in with, one
	// button each on the login page (the Caddyfile's `login oidc <name>
	// { … }`). Default: none.
	Login []LoginProvider `json:"login,omitempty"`
	// Entitle are the rules turning what an IdP says about a person
	// (groups, roles, claims) into per-resource entitlements (`entitle
	// group <group> <resource> <scope>…`), evaluated at every IdP
	// sign-in. For a user linked to an IdP they replace whatever the
	// admin API set; a local user keeps the admin API's.
	Entitle idp.Rules `json:"entitle,omitempty"`
	// LocalUsers lets local users sign in with a password (`local_users
	// off` hides the form and refuses it). Default: on.
	LocalUsers *bool `json:"local_users,omitempty"`
	// TrustIDJAG are the IdPs whose Identity Assertion JWT Authorization
	// Grants the token endpoint accepts with the jwt-bearer grant
	// (`trust_idjag <issuer> { jwks <url> }`). Default: none (the grant is
	// not offered).
	TrustIDJAG []idp.TrustedIssuer `json:"trust_idjag,omitempty"`
	// SessionTTL is the lifetime of a browser session at the issuer; a
	// session from an IdP sign-in also ends when the IdP's ID token
	// expires. Default DefaultSessionTTL.
	SessionTTL time.Duration `json:"session_ttl,omitempty"`
	// LoginKey is the 32-byte key sealing the state of a sign-in round
	// trip through an IdP into a cookie. Every issuer node that may
	// receive the IdP's callback needs the same one. Default: random per
	// process (one node).
	LoginKey []byte `json:"-"`
	// IdPClient makes the requests to IdPs (discovery, token, JWKS).
	// Default: a client with idp.HTTPTimeout.
	IdPClient *http.Client `json:"-"`
	// Trail is the trail the console shows; nil: none configured.
	Trail audit.Browser `json:"-"`
}

// LoginProvider is one upstream OpenID provider of the login page.
type LoginProvider struct {
	idp.ProviderConfig
	// JITUsers creates a user at the first sign-in of someone the
	// issuer does not know (`jit_users on`); off, only users an operator
	// linked can sign in. Default: off.
	JITUsers bool `json:"jit_users,omitempty"`
}

// Event is something the audit trail records.
type Event struct {
	Kind     string // "issued", "delegated", "refreshed", "revoked", "login_failed"
	Subject  string
	ClientID string
	Agents   []string
	Chain    []string
	TokenID  string
	IDs      []string // revoked ids
	Reason   string
	Time     time.Time
}

// Server is the issuer: OAuth endpoints (Handler) and the agent admin API
// (AdminHandler), Caddy-free.
type Server struct {
	cfg    Config
	iss    *url.URL
	store  store.Store
	keys   *keyManager
	log    *slog.Logger
	jtis   *replayCache
	logins *loginLimiter
	cimd   *metadataCache
	login  *loginIdPs

	public http.Handler
	mux    *http.ServeMux
	admin  http.Handler

	closeOnce sync.Once
	stop      context.CancelFunc
}

// New validates cfg and returns a Server. Call Start before serving.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("issuer: no store")
	}
	u, err := ValidateIssuerURL(cfg.Issuer)
	if err != nil {
		return nil, err
	}
	setDefault(&cfg.AccessTTL, DefaultAccessTTL)
	setDefault(&cfg.MaxTokenLifetime, token.DefaultMaxLifetime)
	setDefault(&cfg.RefreshTTL, DefaultRefreshTTL)
	setDefault(&cfg.RefreshGrace, DefaultRefreshGrace)
	setDefault(&cfg.MaxAgentTTL, DefaultMaxAgentTTL)
	setDefault(&cfg.KeyPublishAhead, DefaultKeyPublishAhead)
	if cfg.AccessTTL > cfg.MaxTokenLifetime {
		return nil, fmt.Errorf("issuer: access token ttl %v exceeds max_token_lifetime %v", cfg.AccessTTL, cfg.MaxTokenLifetime)
	}
	if cfg.MaxDepth == 0 {
		cfg.MaxDepth = policy.DefaultMaxDepth
	}
	if cfg.MaxDepth < 1 || cfg.MaxDepth > policy.MaxDepth {
		return nil, fmt.Errorf("issuer: max_depth must be between 1 and %d", policy.MaxDepth)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{
		cfg:    cfg,
		iss:    u,
		store:  cfg.Store,
		log:    cfg.Logger,
		jtis:   newReplayCache(),
		logins: newLoginLimiter(),
		cimd:   newMetadataCache(cfg.AllowLoopbackMetadata),
	}
	setDefault(&s.cfg.SessionTTL, DefaultSessionTTL)
	if s.login, err = newLoginIdPs(&s.cfg); err != nil {
		return nil, err
	}
	s.keys = newKeyManager(cfg.Store, cfg.Issuer, cfg.MaxTokenLifetime)
	s.public = s.routes()
	s.admin = s.adminRoutes()
	return s, nil
}

func setDefault(d *time.Duration, v time.Duration) {
	if *d <= 0 {
		*d = v
	}
}

// ValidateIssuerURL checks an issuer identifier: an absolute URL without
// query or fragment, https unless the host is loopback (RFC 8414 §2).
func ValidateIssuerURL(iss string) (*url.URL, error) {
	u, err := url.Parse(iss)
	if err != nil || iss == "" || u.Host == "" {
		return nil, fmt.Errorf("issuer %q is not an absolute URL", iss)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil || strings.HasSuffix(iss, "/") {
		return nil, fmt.Errorf("issuer %q must have no query, fragment, userinfo or trailing slash", iss)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopbackHost(u.Hostname()) {
			return nil, fmt.Errorf("issuer %q must be https (http only on loopback)", iss)
		}
	default:
		return nil, fmt.Errorf("issuer %q must be an https URL", iss)
	}
	return u, nil
}

// Start loads (or creates) the signing keys. It returns once the issuer
// can mint; background work stops with Close.
func (s *Server) Start(ctx context.Context) error {
	if err := s.keys.load(ctx, now()); err != nil {
		return fmt.Errorf("issuer: signing keys: %w", err)
	}
	bg, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	go s.housekeeping(bg)
	return nil
}

// Close stops background work. The store is the caller's to close.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		if s.stop != nil {
			s.stop()
		}
	})
	return nil
}

// housekeeping sweeps expired rows and reloads keys another node may have
// rotated.
func (s *Server) housekeeping(ctx context.Context) {
	t := time.NewTicker(housekeepingInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		at := now()
		if err := s.store.Sweep(ctx, at); err != nil && ctx.Err() == nil {
			s.log.Warn("issuer: sweep failed", "error", err)
		}
		if err := s.keys.load(ctx, at); err != nil && ctx.Err() == nil {
			s.log.Warn("issuer: reloading signing keys failed", "error", err)
		}
		s.jtis.sweep(at)
		s.logins.sweep(at)
	}
}

// Handler serves the OAuth endpoints under the issuer URL's path.
func (s *Server) Handler() http.Handler { return s.public }

// AdminHandler serves the agent admin API (/v1/…). The caller
// authenticates requests (the Kavach admin listener does).
func (s *Server) AdminHandler() http.Handler { return s.admin }

// Issuer returns the issuer identifier.
func (s *Server) Issuer() string { return s.cfg.Issuer }

// JWKS returns the public key set as published.
func (s *Server) JWKS() []byte { return s.keys.jwks(now()) }

// Verifier verifies this issuer's own tokens (its published keys).
func (s *Server) Verifier() *token.Verifier { return s.keys.verifier() }

func (s *Server) event(e Event) {
	if s.cfg.OnEvent != nil {
		if e.Time.IsZero() {
			e.Time = now()
		}
		s.cfg.OnEvent(e)
	}
}

// revocationUntil is how long a revocation entry must live: past the
// expiry of any token that could carry the id (DESIGN.md §5).
func (s *Server) revocationUntil(at time.Time) time.Time {
	return at.Add(s.cfg.MaxTokenLifetime + 2*token.Leeway)
}

// publishRevocations pushes ids the store has revoked to the gateways'
// set. The store already holds them: a failure here is logged, and
// re-seeding (or the next revocation's retry) repairs the set.
func (s *Server) publishRevocations(ctx context.Context, entries []revocation.Entry) {
	if s.cfg.Revoked == nil {
		return
	}
	for _, e := range entries {
		if err := s.cfg.Revoked.Revoke(ctx, e); err != nil {
			s.log.Error("issuer: revocation not published to the gateways' set (it is in the store)", "id", e.ID, "error", err)
		}
	}
}

func (s *Server) publishIDs(ctx context.Context, ids []string, at time.Time) {
	until := s.revocationUntil(at)
	entries := make([]revocation.Entry, len(ids))
	for i, id := range ids {
		entries[i] = revocation.Entry{ID: id, Until: until}
	}
	s.publishRevocations(ctx, entries)
}

// StoreRevocation records e (an id revocation or cutoff made outside the
// issuer, e.g. on the gateway's admin listener) in the store, the source
// of truth the gateways' set is seeded from, so it outlives a restart.
// Publishing it to the set is the caller's.
func (s *Server) StoreRevocation(ctx context.Context, e revocation.Entry) error {
	if err := e.Validate(); err != nil {
		return err
	}
	return s.store.AddRevocations(ctx, []revocation.Entry{e})
}

// LiveRevocations returns the revocations gateways must still hold.
func (s *Server) LiveRevocations(ctx context.Context) ([]revocation.Entry, error) {
	return s.store.LiveRevocations(ctx, now())
}

// clientAddr is the request's client address (see Config.ClientIP).
func (s *Server) clientAddr(r *http.Request) string {
	if s.cfg.ClientIP != nil {
		if ip := s.cfg.ClientIP(r); ip != "" {
			return ip
		}
	}
	return r.RemoteAddr
}

// endpoint returns the absolute URL of an issuer path.
func (s *Server) endpoint(path string) string {
	return strings.TrimSuffix(s.cfg.Issuer, "/") + path
}
