package node

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/kavachgate/kavach/audit"
	"github.com/kavachgate/kavach/issuer"
	"github.com/kavachgate/kavach/issuer/idp"
	"github.com/kavachgate/kavach/token"
)

// Config is what every Kavach handler of a gateway node shares (trusted
// keys, the verified-token cache, the revocation set, the audit trail)
// and its admin listener: the kavach app's JSON, which the Caddyfile's
// global `kavach { … }` option writes.
type Config struct {
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
	MaxTokenLifetime Duration `json:"max_token_lifetime,omitempty"`

	// CacheSize bounds the verified-token cache, in entries. Default: 65536.
	CacheSize int `json:"cache_size,omitempty"`

	// KeyRefresh is how often keys of issuers trusted by URL are refetched.
	// Default: 5m.
	KeyRefresh Duration `json:"key_refresh,omitempty"`

	// Redis is the URL of the Redis server a cluster of gateways shares for
	// revocation and MCP session bindings (redis:// or rediss://; password
	// and TLS through a placeholder such as {env.KAVACH_REDIS}). Empty:
	// single node, memory.
	Redis string `json:"redis,omitempty"`

	// MaxStaleness is how long the gateway trusts its revocation set
	// without hearing from Redis; past it, requests get 503. Default: 30s.
	MaxStaleness Duration `json:"max_staleness,omitempty"`

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
	// (see audit.Config.Path).
	Audit *audit.Config `json:"audit,omitempty"`
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

// IssuerConfig is a Kavach issuer run by the node (the kavach_issuer
// handler's JSON): an OAuth 2.1 authorization server for agents (package
// issuer) whose agent admin API the node's admin listener serves and
// which writes revocations into the node's revocation set.
type IssuerConfig struct {
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
	AccessTokenTTL Duration `json:"access_token_ttl,omitempty"`
	// RefreshTokenTTL is the lifetime of refresh tokens. Default: 168h.
	RefreshTokenTTL Duration `json:"refresh_token_ttl,omitempty"`
	// MaxDepth is the longest delegation chain. Default: 5.
	MaxDepth int `json:"max_depth,omitempty"`
	// DisableRegistration turns off RFC 7591 dynamic client registration.
	DisableRegistration bool `json:"disable_registration,omitempty"`
	// DevLoopbackClientMetadata lets client ID metadata documents live on
	// loopback http URLs. Development only.
	DevLoopbackClientMetadata bool `json:"dev_loopback_client_metadata,omitempty"`

	// Login are the organisation's OpenID providers people sign in with
	// (`login oidc <name> { … }`); a client_secret placeholder such as
	// {env.KAVACH_IDP_SECRET} is resolved when the issuer starts.
	Login []issuer.LoginProvider `json:"login,omitempty"`
	// Entitle maps what an IdP says of a person to per-resource
	// entitlements (`entitle group <group> <resource> <scope…>`),
	// evaluated at every IdP sign-in; for IdP-linked users they replace
	// what the admin API set.
	Entitle idp.Rules `json:"entitle,omitempty"`
	// LocalUsers off hides the password form and refuses password
	// sign-in (`local_users off`). Default: on.
	LocalUsers *bool `json:"local_users,omitempty"`
	// TrustIDJAG are the IdPs whose ID-JAGs the jwt-bearer grant accepts
	// (`trust_idjag <issuer> { jwks <url>; algorithms … }`).
	TrustIDJAG []idp.TrustedIssuer `json:"trust_idjag,omitempty"`
	// SessionTTL bounds a browser session at the issuer; an IdP sign-in's
	// also ends with the IdP's ID token. Default: issuer.DefaultSessionTTL.
	SessionTTL Duration `json:"session_ttl,omitempty"`
	// LoginKey is the key sealing a sign-in's round trip through the IdP:
	// 32 bytes, base64, through a placeholder such as
	// {env.KAVACH_LOGIN_KEY}. Every issuer node that may receive the
	// IdP's callback needs the same one. Default: random per process (a
	// single node; in a cluster a sign-in must then return to the node
	// that began it).
	LoginKey string `json:"login_key,omitempty"`
	// Console configures the web console at <issuer>/console/: `console
	// off`, or `console { operators <user id or name>…; operator_group
	// <IdP group>… }`. Default: on, no operators (each person sees their
	// own agents, consents and trail).
	Console issuer.ConsoleConfig `json:"console,omitzero"`
}

// loginKey resolves and decodes LoginKey (nil when unset).
func (c *IssuerConfig) loginKey(resolve func(string) string) ([]byte, error) {
	if c.LoginKey == "" {
		return nil, nil
	}
	v := strings.TrimSpace(resolve(c.LoginKey))
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(v); err == nil && len(k) == 32 {
			return k, nil
		}
	}
	return nil, fmt.Errorf("login_key %s: want 32 bytes in base64 (openssl rand -base64 32)", c.LoginKey)
}

// signIn is what issuer.New takes of c's sign-in settings, placeholders
// resolved.
func (c *IssuerConfig) signIn(resolve func(string) string) (issuer.Config, error) {
	out := issuer.Config{Entitle: c.Entitle, LocalUsers: c.LocalUsers, TrustIDJAG: c.TrustIDJAG, SessionTTL: time.Duration(c.SessionTTL)}
	for _, lp := range c.Login {
		if lp.ClientSecret != "" {
			secret := resolve(lp.ClientSecret)
			if secret == "" {
				return out, fmt.Errorf("login %s: client_secret %s is empty", lp.Name, lp.ClientSecret)
			}
			lp.ClientSecret = secret
		}
		out.Login = append(out.Login, lp)
	}
	var err error
	out.LoginKey, err = c.loginKey(resolve)
	return out, err
}

// Issuer stores.
const (
	StoreSQLite   = "sqlite"
	StorePostgres = "postgres"
)

// Validate refuses an issuer the node could not run, or whose tokens the
// node's gateways (max_token_lifetime maxLifetime) would refuse.
func (c *IssuerConfig) Validate(maxLifetime time.Duration) error {
	if _, err := issuer.ValidateIssuerURL(c.Issuer); err != nil {
		return err
	}
	switch c.Store {
	case "", StoreSQLite, StorePostgres:
	default:
		return fmt.Errorf("store must be sqlite or postgres, not %q", c.Store)
	}
	if c.Store == StorePostgres && c.DSN == "" {
		return errors.New("store postgres needs a URL (e.g. {env.KAVACH_PG})")
	}
	if c.MaxDepth < 0 || c.MaxDepth > token.MaxChainLen {
		return fmt.Errorf("max_depth must be between 1 and %d", token.MaxChainLen)
	}
	if err := CheckAccessTTL(time.Duration(c.AccessTokenTTL), maxLifetime); err != nil {
		return fmt.Errorf("issuer %s: %w", c.Issuer, err)
	}
	if err := c.Console.Validate(); err != nil {
		return fmt.Errorf("issuer %s: console: %w", c.Issuer, err)
	}
	cfg, err := c.signIn(func(s string) string { return s }) // placeholders stay: they resolve at start
	if err == nil {
		cfg.Issuer = c.Issuer
		err = issuer.ValidateSignIn(&cfg)
	}
	return err
}

// CheckAccessTTL refuses an access token lifetime (0: the default) the
// gateways of the config would refuse: over max_token_lifetime.
func CheckAccessTTL(ttl, maxLifetime time.Duration) error {
	what := "access_token_ttl"
	if ttl <= 0 {
		ttl, what = issuer.DefaultAccessTTL, "access_token_ttl (default)"
	}
	if ttl > maxLifetime {
		return fmt.Errorf("%s %v is longer than the global max_token_lifetime %v: the gateways would refuse every token it issues", what, ttl, maxLifetime)
	}
	return nil
}

// Validate checks the configuration without side effects.
func (c *Config) Validate() error {
	seen := map[string]bool{}
	for _, id := range c.IssuerIDs() {
		if id == "" {
			return errors.New("an issuer has an empty identifier")
		}
		if seen[id] {
			return fmt.Errorf("issuer %s is configured twice", id)
		}
		seen[id] = true
	}
	if c.Admin != "" {
		if err := CheckLoopback(c.Admin); err != nil {
			return fmt.Errorf("admin %s: %w", c.Admin, err)
		}
	}
	if c.CacheSize < 0 {
		return errors.New("cache_size must not be negative")
	}
	if c.Audit != nil {
		if err := c.Audit.Validate(); err != nil {
			return err
		}
	}
	return nil
}

// IssuerIDs lists every trusted issuer identifier, Kavach issuers first.
func (c *Config) IssuerIDs() []string {
	ids := c.KavachIssuerIDs()
	for _, e := range c.ExternalIssuers {
		ids = append(ids, e.Issuer)
	}
	return ids
}

// KavachIssuerIDs lists the Kavach issuers (the authorization servers a
// protected resource names in its metadata).
func (c *Config) KavachIssuerIDs() []string {
	ids := append([]string(nil), c.Issuers...)
	for _, tk := range c.TrustedKeys {
		ids = append(ids, tk.Issuer)
	}
	return ids
}

// AuditOff reports whether the trail is switched off.
func (c *Config) AuditOff() bool { return c.Audit != nil && c.Audit.Sink == audit.SinkOff }

// MaxLifetime is max_token_lifetime or its default.
func (c *Config) MaxLifetime() time.Duration {
	if c.MaxTokenLifetime > 0 {
		return time.Duration(c.MaxTokenLifetime)
	}
	return token.DefaultMaxLifetime
}

// CheckLoopback refuses an admin address that is not host:port on a
// loopback host.
func CheckLoopback(addr string) error {
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
