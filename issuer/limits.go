package issuer

import (
	"time"

	"github.com/kavachgate/kavach/token"
)

// Defaults of Config, and of what the issuer keeps for a while.
const (
	// DefaultAccessTTL is the lifetime of access tokens (Config.AccessTTL).
	DefaultAccessTTL = token.DefaultTTL

	// DefaultRefreshTTL is the lifetime of refresh tokens (Config.RefreshTTL).
	DefaultRefreshTTL = 7 * 24 * time.Hour

	// DefaultCodeTTL is how long an authorization code may be redeemed.
	DefaultCodeTTL = time.Minute

	// DefaultAgentTTL is the lifetime of an agent created without a ttl.
	DefaultAgentTTL = 24 * time.Hour

	// DefaultMaxAgentTTL bounds the ttl of agents created through the
	// admin API (Config.MaxAgentTTL).
	DefaultMaxAgentTTL = 90 * 24 * time.Hour

	// DefaultRefreshGrace is how long a rotated refresh token may be
	// presented again (Config.RefreshGrace).
	DefaultRefreshGrace = 10 * time.Second

	// DefaultAuthTTL is how long a pending authorization request (and its
	// login cookie) lives while the user signs in and consents.
	DefaultAuthTTL = 10 * time.Minute

	// DefaultSessionTTL is the lifetime of a signed-in user's session.
	DefaultSessionTTL = 12 * time.Hour

	// DefaultKeyPublishAhead is how long a rotated key is published before
	// it signs: one JWKS refresh interval of the gateways (their default
	// key_refresh), so every gateway knows it before it sees a token.
	DefaultKeyPublishAhead = 5 * time.Minute

	// housekeepingInterval is how often expired rows are swept and keys
	// another node may have rotated are reloaded.
	housekeepingInterval = time.Minute
)

// Limits on what a client may send.
const (
	// MaxNameLen bounds the name of a user or an agent and the login
	// form's user name, in bytes.
	MaxNameLen = 128

	// maxFormBody bounds the token, revoke, introspect and authorize forms.
	maxFormBody = 64 << 10

	// maxJSONBody bounds the admin API and registration bodies.
	maxJSONBody = 64 << 10

	// maxCodeLen bounds the code and refresh token parameters; ours are 43
	// bytes, anything much longer is not one of them.
	maxCodeLen = 256

	// maxStateLen bounds the state parameter, which is stored and echoed.
	maxStateLen = 1024

	// minVerifierLen and maxVerifierLen bound a PKCE code_verifier
	// (RFC 7636 §4.1).
	minVerifierLen = 43
	maxVerifierLen = 128

	// maxAssertionLifetime bounds exp − now of a client assertion, so the
	// replay cache holds each jti only briefly.
	maxAssertionLifetime = 5 * time.Minute
)

// Limits of client metadata (registration and metadata documents).
const (
	// maxRedirectURIs is the most redirect URIs one client registers.
	maxRedirectURIs = 16

	// maxRedirectURILen bounds one redirect URI, in bytes.
	maxRedirectURILen = 2048

	// maxClientNameLen bounds client_name, in bytes.
	maxClientNameLen = 128
)

// Limits of client ID metadata document fetches
// (draft-ietf-oauth-client-id-metadata-document; DESIGN.md §7: https
// only, resolved IP checked at dial time, no redirects, size and time
// capped, cached).
const (
	// cimdTimeout bounds one fetch, from dial to the last body byte.
	cimdTimeout = 5 * time.Second

	// cimdMaxBody bounds a metadata document, in bytes.
	cimdMaxBody = 5 << 10

	// cimdMaxHeader bounds the response headers of a fetch, in bytes.
	cimdMaxHeader = 16 << 10

	// cimdCacheTTL is how long a fetched document is used.
	cimdCacheTTL = 5 * time.Minute

	// cimdFailTTL: failures are cached briefly so a bad URL is not
	// refetched per request.
	cimdFailTTL = 30 * time.Second

	// cimdMaxEntries bounds the document cache (entries).
	cimdMaxEntries = 1024

	// cimdMaxInFlight bounds concurrent fetches.
	cimdMaxInFlight = 16
)

// Login rate limits. A key (a user name, or a client address) that
// collects its limit of failures within loginWindow of its first failure
// is refused until that window ends. Per address the limit is higher:
// several people may share one NAT.
const (
	// loginWindow is the window a key's failures are counted in.
	loginWindow = 5 * time.Minute

	// loginUserFailures is the failures allowed per user name.
	loginUserFailures = 5

	// loginIPFailures is the failures allowed per client address.
	loginIPFailures = 20

	// loginMaxKeys bounds each table (about 100 bytes an entry). When a
	// table is full of live entries, an untracked key is refused rather
	// than let in uncounted: failing closed costs availability during an
	// attack large enough to fill it, never the limit itself.
	loginMaxKeys = 1 << 16
)
