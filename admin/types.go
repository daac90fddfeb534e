package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/kavachgate/kavach/policy"
	"github.com/kavachgate/kavach/revocation"
)

// The request and response bodies of the admin listener. Request types
// are decoded strictly by the issuer (no unknown, repeated or
// differently-cased member), so a member added here is a wire change both
// sides make together; a member is omitted from a request when unset
// exactly where the issuer treats "absent" as the default. Responses are
// encoded as JSON objects with these member names; times are RFC 3339.

// UserCreate is the body of POST /v1/users.
type UserCreate struct {
	// ID is the user's id, usr_… (letters, digits, '-' and '_');
	// generated when empty.
	ID string `json:"id,omitempty"`
	// Name is the login name, 1 to 128 bytes.
	Name string `json:"name"`
	// Password, when set, lets the user sign in to the issuer's pages. It
	// is stored hashed and never shown again.
	Password string `json:"password,omitempty"`
	// Entitlements are the scope patterns per resource URL: the most any
	// agent of the user may ever get.
	Entitlements Entitlements `json:"entitlements"`
}

// Entitlements map a resource URL (absolute http(s), no query or
// fragment) to scope patterns. It is also the whole body of
// PUT /v1/users/{id}/entitlements, which replaces them.
type Entitlements = map[string][]string

// User is a user as the admin API shows it (never a password hash).
type User struct {
	ID           string       `json:"id"`
	Name         string       `json:"name"`
	Entitlements Entitlements `json:"entitlements"`
	// EntitlementsSource is where Entitlements come from: "admin" (this
	// API) or "idp" (the issuer's entitle rules, evaluated at the user's
	// last sign-in through an IdP, which replaces what this API set);
	// absent for users stored before sources were recorded.
	EntitlementsSource string `json:"entitlements_source,omitempty"`
	// EntitlementsAt is when they were set or evaluated.
	EntitlementsAt *time.Time `json:"entitlements_at,omitempty"`
	// IdPLinks are the user's accounts at upstream OpenID providers, in
	// GET /v1/users/{id} only.
	IdPLinks  []IdPLink  `json:"idp_links,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// IdPLink is a user's account at an upstream OpenID provider: the user
// is found by (Issuer, Subject), never by email; Email, Name and Groups
// are what the IdP said at the last sign-in (SeenAt).
type IdPLink struct {
	Provider  string    `json:"provider"`
	Issuer    string    `json:"issuer"`
	Subject   string    `json:"subject"`
	Email     string    `json:"email,omitempty"`
	Name      string    `json:"name,omitempty"`
	Groups    []string  `json:"groups,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	SeenAt    time.Time `json:"seen_at"`
}

// UserList is the answer of GET /v1/users.
type UserList struct {
	Users []*User `json:"users"`
}

// AgentCreate is the body of POST /v1/agents (a root agent of Owner) and
// of POST /v1/agents/{id}/children (a child of agent id, which must leave
// Owner empty: a child's owner is its parent's).
type AgentCreate struct {
	// Name is the agent's name, 1 to 128 bytes.
	Name string `json:"name"`
	// Owner is the user (usr_…) a root agent acts for.
	Owner string `json:"owner,omitempty"`
	// Scopes are the agent's scopes: within the owner's entitlements for
	// a root agent, attenuated from the parent's for a child.
	Scopes []string `json:"scopes"`
	// TTL is the agent's lifetime. Default: 24 h; at most the issuer's
	// max_agent_ttl; a child's is capped to its parent's expiry.
	TTL Duration `json:"ttl,omitzero"`
	// Constraints narrow where the agent's tokens may be used (DESIGN.md
	// §2 cnst); a child's never widen its parent's.
	Constraints policy.Constraints `json:"constraints,omitzero"`
	// PublicKey is a public JWK for private_key_jwt; without it the
	// issuer makes a client secret and shows it once.
	PublicKey json.RawMessage `json:"public_key,omitempty"`
}

// Agent is an agent as the admin API shows it.
type Agent struct {
	ID       string `json:"id"`
	ClientID string `json:"client_id"`
	// ClientSecret is set only in the answer that created or rotated it.
	ClientSecret string              `json:"client_secret,omitempty"`
	Name         string              `json:"name"`
	Owner        string              `json:"owner"`
	Parent       string              `json:"parent,omitempty"`
	Grant        string              `json:"grant"`  // the grant (dlg_…) that gave the agent its rights
	Chain        []string            `json:"chain"`  // grant ids, root first
	Agents       []string            `json:"agents"` // agent ids of the chain, root first, this one last
	Scopes       []string            `json:"scopes"`
	Constraints  *policy.Constraints `json:"constraints,omitempty"`
	Auth         string              `json:"token_endpoint_auth_method"`
	// Children are the ids of the agent's children (GET /v1/agents/{id}).
	Children  []string   `json:"children,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt time.Time  `json:"expires_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// AgentList is the answer of GET /v1/agents[?owner=usr_…].
type AgentList struct {
	Agents []*Agent `json:"agents"`
}

// AgentRotate is the body of POST /v1/agents/{id}/rotate; without a body
// (or without PublicKey) the issuer makes a new secret.
type AgentRotate struct {
	PublicKey json.RawMessage `json:"public_key,omitempty"`
}

// Credential is the answer of POST /v1/agents/{id}/rotate: the agent's new
// credential (ClientSecret shown this once, or empty for a public key).
type Credential struct {
	ID           string `json:"id"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret,omitempty"`
	Auth         string `json:"token_endpoint_auth_method"`
}

// The kinds of OAuth client an operator registers by hand.
const (
	ClientResourceServer = "resource_server" // may introspect tokens for its Resources
	ClientConfidential   = "confidential"    // code flow with a secret
)

// ClientCreate is the body of POST /v1/clients.
type ClientCreate struct {
	Name string `json:"name"`
	// Kind is ClientResourceServer (the default when empty) or
	// ClientConfidential.
	Kind         string   `json:"kind,omitempty"`
	RedirectURIs []string `json:"redirect_uris,omitempty"` // a confidential client's
	Resources    []string `json:"resources,omitempty"`     // a resource server's (required for one)
}

// ClientCreated is the answer of POST /v1/clients; ClientSecret is shown
// this once.
type ClientCreated struct {
	ClientID     string   `json:"client_id"`
	ClientSecret string   `json:"client_secret"`
	Name         string   `json:"name"`
	Kind         string   `json:"kind"`
	RedirectURIs []string `json:"redirect_uris"`
	Resources    []string `json:"resources,omitempty"` // a resource server's
}

// ClientResourcesUpdate is the body of PUT /v1/clients/{id}/resources,
// which replaces the resources a resource server serves.
type ClientResourcesUpdate struct {
	Resources []string `json:"resources"`
}

// ClientResources is the answer of PUT /v1/clients/{id}/resources.
type ClientResources struct {
	ClientID  string   `json:"client_id"`
	Resources []string `json:"resources"`
}

// ClientsRevoke is the body of POST /v1/clients/revoke: exactly one of
// ClientID (as the path form, for ids awkward in a path) and Host (every
// client metadata document client on the host and its subdomains).
type ClientsRevoke struct {
	ClientID string `json:"client_id,omitempty"`
	Host     string `json:"host,omitempty"`
}

// Revoked is the answer of every revoke of the issuer API: the ids whose
// tokens the gateways now reject. A host revocation also names the host
// and the clients of it the issuer had seen.
type Revoked struct {
	Revoked []string `json:"revoked"`
	Host    string   `json:"host,omitempty"`
	Clients []string `json:"clients,omitzero"`
}

// Consent is a user's standing consent to an OAuth client (GET
// /v1/users/{id}/consents): the root grant of the client's tokens and
// refresh-token family.
type Consent struct {
	Grant     string    `json:"grant"`
	ClientID  string    `json:"client_id"`
	Scopes    []string  `json:"scopes,omitempty"`
	Audience  []string  `json:"audience,omitempty"`
	Via       string    `json:"via,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// ConsentList is the answer of GET /v1/users/{id}/consents.
type ConsentList struct {
	Consents []*Consent `json:"consents"`
}

// KeyRotated is the answer of POST /v1/keys/rotate: the new signing key,
// published now, signing from SignsFrom.
type KeyRotated struct {
	KID         string    `json:"kid"`
	PublishedAt time.Time `json:"published_at"`
	SignsFrom   time.Time `json:"signs_from"`
}

// Reseeded is the answer of POST /v1/reseed: how many live revocations
// the issuer wrote back to the gateways' set.
type Reseeded struct {
	Entries int `json:"entries"`
}

// Revocation is the body of POST /v1/revocations (revocation.NewHandler):
// an id revocation (Cutoff empty) or an issued-before cutoff. Before and
// Until are omitted when zero; without Until the listener applies its
// default (it knows the gateway's max token lifetime). The answer is
// RevocationStored.
type Revocation struct {
	ID     string          `json:"id"`
	Cutoff revocation.Kind `json:"cutoff,omitempty"`
	Before time.Time       `json:"before,omitzero"`
	Until  time.Time       `json:"until,omitzero"`
}

// RevocationStored is the answer of POST /v1/revocations: the entry as
// stored, its default Until filled in.
type RevocationStored struct {
	Revoked revocation.Entry `json:"revoked"`
}

// Readiness is the answer of GET /readyz (no token): 200 when the
// gateway's revocation set is fresh and it can decide requests, 503 with
// Fresh false otherwise.
type Readiness struct {
	Mode         string  `json:"mode"` // "memory" or "redis"
	Fresh        bool    `json:"fresh"`
	Entries      int     `json:"entries"`
	LastSyncAge  float64 `json:"last_sync_age_seconds"`
	EpochMissing bool    `json:"epoch_missing"`
}

// Duration is a JSON duration: a Go duration string ("10m", "24h") or a
// number of seconds. It is written as a Go duration string.
type Duration time.Duration

// MarshalJSON writes the duration as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON accepts "90s"/"1h" or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("ttl %q: want a duration such as \"10m\" or \"24h\"", s)
		}
		*d = Duration(v)
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return errors.New("ttl: want a duration string or seconds")
	}
	*d = Duration(time.Duration(n) * time.Second)
	return nil
}
