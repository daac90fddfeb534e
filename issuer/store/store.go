// Package store is the issuer's source of truth: users and their
// entitlements, agents and the grants of their delegation chains, OAuth
// clients, authorization codes, refresh tokens, login state, signing keys
// and revocations. One interface, two implementations over database/sql:
// SQLite (modernc.org/sqlite, no cgo; the embedded default, WAL) and
// PostgreSQL (pgx/v5), both run through the same conformance suite
// (storetest).
//
// Rules every implementation keeps:
//   - Times are stored as Unix milliseconds (UTC) and returned in UTC with
//     millisecond precision; a zero time.Time is stored as 0 and means
//     "never" (not revoked, not used, no expiry).
//   - Secrets are never stored: client secrets, refresh tokens, codes and
//     session ids arrive already hashed (SHA-256) in the Hash/SecretHash
//     fields; password hashes arrive bcrypt-encoded.
//   - Slices and maps are returned non-nil only when stored non-empty;
//     callers never share slices with the store (implementations copy).
//   - Every method is safe for concurrent use and every multi-row change is
//     one transaction.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/kavachgate/kavach/policy"
	"github.com/kavachgate/kavach/revocation"
)

// Errors, matched with errors.Is.
var (
	ErrNotFound = errors.New("store: not found")
	ErrExists   = errors.New("store: already exists")
	// ErrInactive: the parent agent, owner or grant is revoked or expired,
	// so nothing may be created or minted under it.
	ErrInactive = errors.New("store: revoked or expired")
	// ErrUsed: an authorization code was already redeemed, or a refresh
	// token already rotated outside the grace window.
	ErrUsed = errors.New("store: already used")
	// ErrRotated: a refresh token was already rotated less than the grace
	// window ago; RotateRefresh returns it with the first rotation's
	// successor.
	ErrRotated = errors.New("store: already rotated within the grace window")
)

// User is a human who authorizes agents and clients.
type User struct {
	ID           string // usr_…
	Name         string // unique login name
	PasswordHash string // bcrypt; empty: cannot log in (agents only)
	// Entitlements: resource URL → scope patterns, the most any agent or
	// client of this user may ever get on that resource. Known resources
	// are the entitlement keys.
	Entitlements map[string][]string
	// EntitlementsSource says where Entitlements come from:
	// EntitlementsAdmin or EntitlementsIdP ("" for users stored before
	// sources were recorded, set by the admin API).
	EntitlementsSource string
	// EntitlementsAt is when Entitlements were set (admin) or evaluated
	// (idp); zero when unknown.
	EntitlementsAt time.Time
	CreatedAt      time.Time
	RevokedAt      time.Time
}

// Where a user's entitlements come from (User.EntitlementsSource). For a
// user linked to an IdP, every sign-in replaces the entitlements with the
// config's entitle rules evaluated on what the IdP said (source idp),
// whatever the admin API set before; a local user keeps what the admin
// API sets (source admin).
const (
	EntitlementsAdmin = "admin"
	EntitlementsIdP   = "idp"
)

// IdentityLink ties a user to an account at an upstream OpenID provider.
// (Issuer, Subject) is unique (OpenID Connect Core §5.7: the only stable
// identifier of an end user); a user is never found by email. Email,
// Name and Groups are what the IdP said at the last sign-in, for display.
type IdentityLink struct {
	Issuer    string // the IdP's issuer identifier (iss)
	Subject   string // sub at that IdP
	User      string // usr_…
	Provider  string // the config name of the provider signed in through
	Email     string
	Name      string
	Groups    []string
	CreatedAt time.Time
	SeenAt    time.Time // the last sign-in
}

// IdPSignIn is one sign-in through an upstream OpenID provider, which
// SignInIdP applies in one transaction.
type IdPSignIn struct {
	// Link is the identity as the IdP vouched for it now: Issuer,
	// Subject, Provider, Email, Name, Groups; SeenAt is the sign-in time
	// (and CreatedAt of a new link).
	Link IdentityLink
	// Entitlements replace the user's (source idp, at Link.SeenAt).
	Entitlements map[string][]string
	// NewUser, when no user is linked to (Issuer, Subject) yet, is created
	// with the link (just-in-time users); nil: ErrNotFound then.
	NewUser *User
	// Cutoff, given the linked user's id and entitlements before this
	// sign-in, returns the revocation entry to record with the change
	// (when they shrank), or nil. Not called for a new user.
	Cutoff func(user string, old map[string][]string) *revocation.Entry
}

// Grant is one delegation step: who gave what to whom. The root grant of
// an agent tree is the user's (agent creation); the root grant of an OAuth
// client is the user's consent, and it is also the refresh-token family.
type Grant struct {
	ID          string // dlg_…
	Parent      string // parent grant; "" for a root grant
	User        string // the user the chain acts for
	Grantee     string // agt_… or the OAuth client id
	Scopes      []string
	Audience    []string // resources; nil: any of the user's entitlements
	Constraints policy.Constraints
	// Via says who authorized a root grant other than the user in
	// person: "" (consent, or the admin API), or GrantViaIDJAG + the
	// IdP's issuer for an ID-JAG the IdP issued. Such a grant is not a
	// consent (HasConsent) but is revoked with the user and the client.
	Via       string
	CreatedAt time.Time
	ExpiresAt time.Time
	RevokedAt time.Time
}

// GrantViaIDJAG prefixes Grant.Via of a grant an IdP authorized with an
// Identity Assertion JWT Authorization Grant.
const GrantViaIDJAG = "id-jag "

// Agent is a first-class principal with its own credential. Its client_id
// for the token endpoint is its ID.
type Agent struct {
	ID          string // agt_…
	Name        string
	Owner       string   // usr_…
	Parent      string   // parent agent; "" for a root agent
	Chain       []string // grant ids, root first; the last is this agent's grant
	Agents      []string // agent ids, root first; the last is ID
	Scopes      []string
	Constraints policy.Constraints
	SecretHash  []byte // SHA-256 of the client secret; nil with a public key
	PublicKey   []byte // public JWK (JSON) for private_key_jwt; nil with a secret
	CreatedAt   time.Time
	ExpiresAt   time.Time
	RevokedAt   time.Time
}

// Client kinds.
const (
	ClientPublic         = "public"          // RFC 7591 registration, no secret (PKCE)
	ClientConfidential   = "confidential"    // has a secret
	ClientResourceServer = "resource_server" // may call /oauth/introspect
)

// Client is an OAuth client (cli_…): an MCP app registered by RFC 7591, or
// a resource server allowed to introspect. Client ID metadata documents
// are not stored (they are fetched and cached); only their revocation is
// (ClientRevocation).
type Client struct {
	ID           string // cli_…
	Name         string
	Kind         string // ClientPublic, ClientConfidential or ClientResourceServer
	RedirectURIs []string
	// Resources: for a resource server, the resource URLs (token
	// audiences) it serves; it may introspect tokens for these only.
	Resources  []string
	SecretHash []byte
	CreatedAt  time.Time
	RevokedAt  time.Time
}

// ClientRevocation revokes clients identified by a client ID metadata
// document URL: exactly one of ClientID (that URL, compared as a string)
// and Host (every such URL whose host is Host or a subdomain of it; an IP
// address only itself) is set. Host is lower case without a trailing dot,
// an IPv6 address without brackets.
type ClientRevocation struct {
	ClientID  string
	Host      string
	RevokedAt time.Time
}

// Code is an authorization code (RFC 6749 §4.1), single use.
type Code struct {
	Hash        []byte // SHA-256 of the code
	ClientID    string
	User        string
	Grant       string // the consent grant the code's tokens will carry
	RedirectURI string
	Challenge   string // PKCE S256 code_challenge
	Resource    string
	Scopes      []string
	ExpiresAt   time.Time
	UsedAt      time.Time
}

// RefreshToken is one member of a rotation family.
type RefreshToken struct {
	Hash      []byte // SHA-256 of the token
	Family    string // the root grant id (revoking the family revokes the grant)
	ClientID  string
	User      string
	Resource  string
	Scopes    []string
	CreatedAt time.Time
	ExpiresAt time.Time
	RotatedAt time.Time // when it was exchanged for its successor
	RevokedAt time.Time
	// Successor is the successor's plaintext sealed by the issuer under a
	// key derived from this token, set by the first rotation and kept
	// until the grace window ends (then Sweep clears it); opaque to the
	// store. CreateRefresh ignores it.
	Successor []byte
}

// AuthRequest is an /oauth/authorize request held server-side while the
// user logs in and consents; the pages carry only its ID.
type AuthRequest struct {
	ID          string
	ClientID    string
	RedirectURI string
	State       string
	Challenge   string
	Resource    string
	Scopes      []string
	// Prompt is the OpenID Connect prompt of the request ("login" or
	// ""), passed on to an upstream IdP.
	Prompt string
	// MaxAge is the request's max_age in seconds, passed on to an
	// upstream IdP; 0: none.
	MaxAge int64
	// AuthAfter: a session whose sign-in (Session.CreatedAt) is before
	// it does not satisfy the request (prompt=login, max_age); zero: any.
	AuthAfter time.Time
	ExpiresAt time.Time
}

// Session is a logged-in browser session.
type Session struct {
	Hash      []byte // SHA-256 of the session cookie value
	User      string
	CSRF      string // per-session CSRF token (compared in constant time)
	CreatedAt time.Time
	ExpiresAt time.Time
}

// SigningKey is one of the issuer's keys. It is published in the JWKS from
// CreatedAt until ExpiresAt, signs from ActiveAt until RetiredAt.
type SigningKey struct {
	KID       string
	Private   []byte // private JWK (JSON)
	CreatedAt time.Time
	ActiveAt  time.Time
	RetiredAt time.Time // zero: still signing (unless a newer key is active)
	ExpiresAt time.Time // zero: published until retired + max token lifetime
}

// Store is the issuer's persistence. Methods that find nothing return
// ErrNotFound (also when a row refers to a missing one, e.g. a session to
// an unknown user); inserting an existing primary key (or user name)
// returns ErrExists. Lists are in creation order (ties by id).
type Store interface {
	// Users.
	CreateUser(ctx context.Context, u *User) error
	GetUser(ctx context.Context, id string) (*User, error)
	GetUserByName(ctx context.Context, name string) (*User, error)
	ListUsers(ctx context.Context) ([]*User, error)
	// SetEntitlements replaces a user's entitlements, recording the
	// source admin and the time at.
	SetEntitlements(ctx context.Context, id string, ent map[string][]string, at time.Time) error
	SetPassword(ctx context.Context, id, passwordHash string) error

	// Users linked to an upstream OpenID provider. SignInIdP finds the
	// user linked to in.Link's (Issuer, Subject), or creates in.NewUser
	// and the link, updates the link's last-seen email, name, groups and
	// time, replaces the user's entitlements (source idp) and records the
	// entry in.Cutoff returns, all in one transaction. A linked user who
	// is revoked is ErrInactive and nothing changes. It returns the user
	// as stored now and their entitlements before (nil for a new user).
	// A new user whose name exists is ErrExists, and nothing is created.
	SignInIdP(ctx context.Context, in *IdPSignIn) (u *User, old map[string][]string, err error)
	// UserByIdentity returns the user linked to (issuer, subject).
	UserByIdentity(ctx context.Context, issuer, subject string) (*User, error)
	// IdentityLinks lists a user's links by issuer, then subject (none:
	// nil; ErrNotFound for an unknown user).
	IdentityLinks(ctx context.Context, user string) ([]*IdentityLink, error)

	// Grants and agents. CreateAgent inserts the agent and its grant (the
	// last of a.Chain) in one transaction, failing with ErrInactive when
	// the owner, the parent agent or any grant of g's chain is revoked or
	// expired at now (ErrNotFound when one is unknown). The chain must be
	// consistent: a.Chain and a.Agents extend the parent agent's by g.ID
	// and a.ID (or are just those for a root agent), g.Parent is the
	// parent agent's grant, g.Grantee is a.ID, and g.User, a.Owner and the
	// parent's owner are the same user.
	CreateAgent(ctx context.Context, a *Agent, g *Grant, now time.Time) error
	GetAgent(ctx context.Context, id string) (*Agent, error)
	// ListAgents lists every agent, or those of one owner when owner != ""
	// (ErrNotFound for an unknown owner).
	ListAgents(ctx context.Context, owner string) ([]*Agent, error)
	// Children lists an agent's direct children (ErrNotFound for an
	// unknown agent).
	Children(ctx context.Context, id string) ([]*Agent, error)
	SetAgentCredential(ctx context.Context, id string, secretHash, publicKey []byte) error
	// CreateGrant inserts a grant (e.g. a consent). Its user must exist and
	// not be revoked, and a parent must exist, not be revoked, and act for
	// the same user (ErrNotFound, ErrInactive).
	CreateGrant(ctx context.Context, g *Grant) error
	GetGrant(ctx context.Context, id string) (*Grant, error)
	// ChainActive returns nil when every grant exists and none is revoked
	// or expired at now, nor is its user revoked, else ErrInactive
	// (ErrNotFound for an unknown id or an empty chain).
	ChainActive(ctx context.Context, grants []string, now time.Time) error

	// RevokeAgent revokes the agent, every descendant agent and all their
	// grants at now, and records one revocation entry per id (valid until
	// until) in the same transaction; refresh tokens of a revoked grant
	// (family) are revoked too. It returns every id it revoked, agents and
	// grants: breadth first, then by grant id, each agent before its
	// grant, so the agent first. Revoking a revoked agent again returns
	// the same ids and changes nothing: only ids not yet revoked are
	// marked and get an entry.
	RevokeAgent(ctx context.Context, id string, now, until time.Time) ([]string, error)
	// RevokeGrant revokes a grant (e.g. a refresh family), every grant
	// below it and the agents those grants belong to, with revocation
	// entries, like RevokeAgent (the first id is the grant's agent when it
	// has one, else the grant).
	RevokeGrant(ctx context.Context, id string, now, until time.Time) ([]string, error)
	// RevokeUser revokes a user (the first revocation time stays) and
	// records the given cutoff entry.
	RevokeUser(ctx context.Context, id string, now time.Time, cutoff revocation.Entry) error

	// HasConsent reports whether user has given client a consent that
	// still holds at now: a root grant to it without Via, not revoked,
	// not expired.
	HasConsent(ctx context.Context, user, client string, now time.Time) (bool, error)
	// Consents lists the root grants of user that are not an agent's
	// (consents to OAuth clients, and grants an IdP authorized, Via set)
	// and still hold at now: not revoked, not expired. Oldest first;
	// ErrNotFound for an unknown user.
	Consents(ctx context.Context, user string, now time.Time) ([]*Grant, error)

	// Clients.
	CreateClient(ctx context.Context, c *Client) error
	GetClient(ctx context.Context, id string) (*Client, error)
	// SetClientResources replaces a client's resources (ErrNotFound for
	// an unknown client).
	SetClientResources(ctx context.Context, id string, resources []string) error
	// RevokeClient revokes a registered client and what it holds, in one
	// transaction: the client is marked revoked (the first time stays;
	// ErrNotFound when there is no such client), every consent given to
	// it that is not revoked yet (a root grant whose grantee is id) is
	// revoked as RevokeGrant does, and the cutoff entry is recorded. It
	// returns the ids RevokeGrant returns, consent after consent by grant
	// id.
	RevokeClient(ctx context.Context, id string, now, until time.Time, cutoff revocation.Entry) ([]string, error)
	// RevokeMetadataClients records r (its RevokedAt is ignored: the time
	// is now, and the first revocation time stays) and, in the same
	// transaction, revokes the consents of every client r covers as
	// RevokeClient does, recording cutoff(client) for each: the client
	// r.ClientID whether or not it has consents, the clients of r.Host
	// that have any. It returns those clients (sorted) and the revoked
	// ids. Nothing else is checked: a URL never seen may be revoked.
	RevokeMetadataClients(ctx context.Context, r ClientRevocation, now, until time.Time,
		cutoff func(client string) revocation.Entry) (clients, ids []string, err error)
	// MetadataClientRevoked reports whether a client ID metadata document
	// URL is revoked: by itself, or by its host or a parent domain of it.
	MetadataClientRevoked(ctx context.Context, clientID string) (bool, error)
	// ClientRevocations lists the metadata-document revocations, by
	// revocation time (ties: client ids, then hosts, by value).
	ClientRevocations(ctx context.Context) ([]ClientRevocation, error)

	// Authorization codes. ConsumeCode marks the code used at now and
	// returns it; a code already used returns the code and ErrUsed (so
	// the caller can revoke what the first use produced).
	CreateCode(ctx context.Context, c *Code) error
	ConsumeCode(ctx context.Context, hash []byte, now time.Time) (*Code, error)

	// Refresh tokens. RotateRefresh marks old as rotated at now, keeps
	// successor (next's plaintext, sealed by the caller) on old until
	// now+grace, and inserts next, in one transaction, returning old. Of
	// concurrent rotations of one token exactly one does this. When old
	// was already rotated less than grace ago (a retry, or a concurrent
	// request that lost) it inserts nothing and returns old, with the
	// first rotation's Successor, and ErrRotated: the caller hands out
	// that successor, never a second one. When old was rotated grace or
	// more ago, or is revoked, it returns old and ErrUsed and inserts
	// nothing. With grace 0 every reuse is ErrUsed.
	CreateRefresh(ctx context.Context, r *RefreshToken) error
	GetRefresh(ctx context.Context, hash []byte) (*RefreshToken, error)
	RotateRefresh(ctx context.Context, oldHash []byte, next *RefreshToken, successor []byte, now time.Time, grace time.Duration) (*RefreshToken, error)

	// Authorization requests and browser sessions. Put creates or
	// replaces; expired ones are not returned (ErrNotFound).
	PutAuthRequest(ctx context.Context, r *AuthRequest) error
	GetAuthRequest(ctx context.Context, id string, now time.Time) (*AuthRequest, error)
	DeleteAuthRequest(ctx context.Context, id string) error
	PutSession(ctx context.Context, s *Session) error
	GetSession(ctx context.Context, hash []byte, now time.Time) (*Session, error)
	DeleteSession(ctx context.Context, hash []byte) error

	// Signing keys, oldest first. RetireSigningKey keeps the first
	// retirement time.
	AddSigningKey(ctx context.Context, k *SigningKey) error
	ListSigningKeys(ctx context.Context) ([]*SigningKey, error)
	RetireSigningKey(ctx context.Context, kid string, at time.Time) error

	// Revocations: the entries gateways must hold, for re-seeding Redis.
	AddRevocations(ctx context.Context, entries []revocation.Entry) error
	// AddRevocations keeps, for an existing (Cutoff, ID), the later Until
	// and Before. LiveRevocations returns entries whose Until is after
	// now, by Cutoff then ID.
	LiveRevocations(ctx context.Context, now time.Time) ([]revocation.Entry, error)

	// Sweep deletes what expired by now (codes, auth requests,
	// sessions, refresh tokens, revocation entries, unpublished keys) and
	// clears sealed successors whose grace window has ended.
	Sweep(ctx context.Context, now time.Time) error

	Close() error
}
