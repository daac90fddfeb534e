package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/kavachgate/kavach/revocation"
)

// Limits of the Client.
const (
	// DefaultTimeout bounds one call when HTTPClient is nil.
	DefaultTimeout = 30 * time.Second
	// maxAnswer bounds an answer the Client reads (a list of every agent
	// of a large issuer is the largest).
	maxAnswer = 64 << 20
)

// Client calls the admin listener. Its zero HTTPClient is one with
// DefaultTimeout. A non-2xx answer is returned as an *Error; a failure
// to reach the listener as the transport's error, wrapped.
type Client struct {
	// BaseURL is the listener's URL, e.g. "http://127.0.0.1:2021".
	BaseURL string
	// Token is the admin bearer token. It is sent in the Authorization
	// header and nowhere else.
	Token string
	// HTTPClient sends the requests. Default: one with DefaultTimeout.
	HTTPClient *http.Client
	// Issuer selects the issuer of a process that runs several: calls of
	// the issuer API carry ?issuer=<Issuer>. Empty: the first issuer of
	// the config. Revoke and Ready are the gateway's and ignore it.
	Issuer string
}

// CreateUser creates a user (POST /v1/users).
func (c *Client) CreateUser(ctx context.Context, in UserCreate) (*User, error) {
	return call[User](ctx, c, http.MethodPost, c.issuerPath("/v1/users", nil), in)
}

// Users lists the users (GET /v1/users).
func (c *Client) Users(ctx context.Context) ([]*User, error) {
	l, err := call[UserList](ctx, c, http.MethodGet, c.issuerPath("/v1/users", nil), nil)
	if err != nil {
		return nil, err
	}
	return l.Users, nil
}

// User shows a user (GET /v1/users/{id}).
func (c *Client) User(ctx context.Context, id string) (*User, error) {
	return call[User](ctx, c, http.MethodGet, c.issuerPath("/v1/users/"+url.PathEscape(id), nil), nil)
}

// SetEntitlements replaces a user's entitlements
// (PUT /v1/users/{id}/entitlements).
func (c *Client) SetEntitlements(ctx context.Context, id string, ent Entitlements) (*User, error) {
	if ent == nil {
		ent = Entitlements{}
	}
	return call[User](ctx, c, http.MethodPut, c.issuerPath("/v1/users/"+url.PathEscape(id)+"/entitlements", nil), ent)
}

// RevokeUser revokes a user and every token of theirs
// (POST /v1/users/{id}/revoke).
func (c *Client) RevokeUser(ctx context.Context, id string) (*Revoked, error) {
	return call[Revoked](ctx, c, http.MethodPost, c.issuerPath("/v1/users/"+url.PathEscape(id)+"/revoke", nil), nil)
}

// Consents lists the consents a user gave OAuth clients that still hold
// (GET /v1/users/{id}/consents).
func (c *Client) Consents(ctx context.Context, user string) ([]*Consent, error) {
	l, err := call[ConsentList](ctx, c, http.MethodGet, c.issuerPath("/v1/users/"+url.PathEscape(user)+"/consents", nil), nil)
	if err != nil {
		return nil, err
	}
	return l.Consents, nil
}

// RevokeConsent revokes one consent of a user, with the client's tokens
// and refresh tokens under it (POST /v1/users/{id}/consents/{grant}/revoke).
func (c *Client) RevokeConsent(ctx context.Context, user, grant string) (*Revoked, error) {
	return call[Revoked](ctx, c, http.MethodPost,
		c.issuerPath("/v1/users/"+url.PathEscape(user)+"/consents/"+url.PathEscape(grant)+"/revoke", nil), nil)
}

// CreateAgent creates a root agent of in.Owner (POST /v1/agents).
func (c *Client) CreateAgent(ctx context.Context, in AgentCreate) (*Agent, error) {
	return call[Agent](ctx, c, http.MethodPost, c.issuerPath("/v1/agents", nil), in)
}

// CreateChild creates a child of agent parent, attenuated from it
// (POST /v1/agents/{parent}/children); in.Owner must be empty.
func (c *Client) CreateChild(ctx context.Context, parent string, in AgentCreate) (*Agent, error) {
	return call[Agent](ctx, c, http.MethodPost, c.issuerPath("/v1/agents/"+url.PathEscape(parent)+"/children", nil), in)
}

// Agents lists the agents, only owner's when owner is set
// (GET /v1/agents[?owner=]).
func (c *Client) Agents(ctx context.Context, owner string) ([]*Agent, error) {
	var q url.Values
	if owner != "" {
		q = url.Values{"owner": {owner}}
	}
	l, err := call[AgentList](ctx, c, http.MethodGet, c.issuerPath("/v1/agents", q), nil)
	if err != nil {
		return nil, err
	}
	return l.Agents, nil
}

// Agent shows an agent with its children (GET /v1/agents/{id}).
func (c *Client) Agent(ctx context.Context, id string) (*Agent, error) {
	return call[Agent](ctx, c, http.MethodGet, c.issuerPath("/v1/agents/"+url.PathEscape(id), nil), nil)
}

// RevokeAgent revokes an agent, its grants and every descendant
// (POST /v1/agents/{id}/revoke).
func (c *Client) RevokeAgent(ctx context.Context, id string) (*Revoked, error) {
	return call[Revoked](ctx, c, http.MethodPost, c.issuerPath("/v1/agents/"+url.PathEscape(id)+"/revoke", nil), nil)
}

// RotateAgent replaces an agent's credential with publicKey (a public
// JWK), or with a new secret when publicKey is empty; tokens obtained with
// the old one stop (POST /v1/agents/{id}/rotate).
func (c *Client) RotateAgent(ctx context.Context, id string, publicKey json.RawMessage) (*Credential, error) {
	var body any // no body: a new secret
	if len(publicKey) > 0 {
		body = AgentRotate{PublicKey: publicKey}
	}
	return call[Credential](ctx, c, http.MethodPost, c.issuerPath("/v1/agents/"+url.PathEscape(id)+"/rotate", nil), body)
}

// CreateClient registers a resource server or a confidential client
// (POST /v1/clients).
func (c *Client) CreateClient(ctx context.Context, in ClientCreate) (*ClientCreated, error) {
	return call[ClientCreated](ctx, c, http.MethodPost, c.issuerPath("/v1/clients", nil), in)
}

// RevokeClient revokes a client: a registered one (cli_…) or one named by
// its client ID metadata document URL, which becomes one escaped path
// segment (POST /v1/clients/{id}/revoke).
func (c *Client) RevokeClient(ctx context.Context, id string) (*Revoked, error) {
	return call[Revoked](ctx, c, http.MethodPost, c.issuerPath("/v1/clients/"+url.PathEscape(id)+"/revoke", nil), nil)
}

// RevokeClients revokes a client by id in the body, or every client
// metadata document client of a host (POST /v1/clients/revoke).
func (c *Client) RevokeClients(ctx context.Context, in ClientsRevoke) (*Revoked, error) {
	return call[Revoked](ctx, c, http.MethodPost, c.issuerPath("/v1/clients/revoke", nil), in)
}

// SetClientResources replaces the resources a resource server serves
// (PUT /v1/clients/{id}/resources).
func (c *Client) SetClientResources(ctx context.Context, id string, resources []string) (*ClientResources, error) {
	return call[ClientResources](ctx, c, http.MethodPut, c.issuerPath("/v1/clients/"+url.PathEscape(id)+"/resources", nil), ClientResourcesUpdate{Resources: resources})
}

// RotateKeys adds a signing key, published now and signing one JWKS
// refresh interval later (POST /v1/keys/rotate).
func (c *Client) RotateKeys(ctx context.Context) (*KeyRotated, error) {
	return call[KeyRotated](ctx, c, http.MethodPost, c.issuerPath("/v1/keys/rotate", nil), nil)
}

// RevokeKey withdraws a signing key and stops every token it signed
// (POST /v1/keys/{kid}/revoke).
func (c *Client) RevokeKey(ctx context.Context, kid string) (*Revoked, error) {
	return call[Revoked](ctx, c, http.MethodPost, c.issuerPath("/v1/keys/"+url.PathEscape(kid)+"/revoke", nil), nil)
}

// Reseed rewrites the issuer's live revocations into the gateways' set
// (POST /v1/reseed).
func (c *Client) Reseed(ctx context.Context) (*Reseeded, error) {
	return call[Reseeded](ctx, c, http.MethodPost, c.issuerPath("/v1/reseed", nil), nil)
}

// Revoke adds a revocation to the gateway's set (POST /v1/revocations)
// and returns the entry as stored.
func (c *Client) Revoke(ctx context.Context, in Revocation) (*revocation.Entry, error) {
	out, err := call[RevocationStored](ctx, c, http.MethodPost, revocation.RevocationsPath, in)
	if err != nil {
		return nil, err
	}
	return &out.Revoked, nil
}

// Ready asks GET /readyz (it needs no token). A gateway that is not ready
// answers 503 with its state: Ready returns that state and an *Error
// with Status 503 and Code "not_ready".
func (c *Client) Ready(ctx context.Context) (*Readiness, error) {
	var out Readiness
	status, body, err := c.do(ctx, http.MethodGet, "/readyz", nil, false)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK && status != http.StatusServiceUnavailable {
		return nil, decodeError(status, body)
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("GET /readyz: the answer: %w", err)
	}
	if status != http.StatusOK {
		return &out, &Error{Status: status, Code: "not_ready", Description: "the revocation set is not fresh"}
	}
	return &out, nil
}

// issuerPath is path on the issuer API, with the issuer selector.
func (c *Client) issuerPath(path string, q url.Values) string {
	if c.Issuer != "" {
		if q == nil {
			q = url.Values{}
		}
		q.Set("issuer", c.Issuer)
	}
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	return path
}

// call sends one request with in as its JSON body (none when nil) and
// decodes a 2xx answer into a T.
func call[T any](ctx context.Context, c *Client, method, path string, in any) (*T, error) {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return nil, err
		}
	}
	status, answer, err := c.do(ctx, method, path, body, true)
	if err != nil {
		return nil, err
	}
	if status/100 != 2 {
		return nil, decodeError(status, answer)
	}
	out := new(T)
	if err := json.Unmarshal(answer, out); err != nil {
		return nil, fmt.Errorf("%s %s: the answer: %w", method, path, err)
	}
	return out, nil
}

// do sends one request and reads the answer.
func (c *Client) do(ctx context.Context, method, path string, body []byte, auth bool) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.BaseURL, "/")+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if auth {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	hc := c.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: DefaultTimeout}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, answer, nil
}

// decodeError reads an error answer: {"error","error_description"}, else
// (a proxy's page, say) the first line of the body as the description.
func decodeError(status int, body []byte) *Error {
	e := &Error{}
	if json.Unmarshal(body, e) != nil || e.Code == "" {
		line, _, _ := strings.Cut(strings.TrimSpace(string(body)), "\n")
		if len(line) > 200 {
			line = line[:200] + "…"
		}
		e = &Error{Description: line}
	}
	e.Status = status
	return e
}

// IsCode reports whether err is an *Error with this code.
func IsCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}
