package issuer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kavachgate/kavach/issuer/store"
	"github.com/kavachgate/kavach/policy"
	"github.com/kavachgate/kavach/revocation"
	"github.com/kavachgate/kavach/token"
)

// mintRequest is everything an access token says. Only the token endpoint
// builds one (DESIGN.md §7: /oauth/token is the only place tokens are
// minted).
type mintRequest struct {
	// AuthAgent is the agent record whose credential authenticated the
	// request for ClientID, as read then (nil for OAuth clients).
	AuthAgent *store.Agent
	User      string // sub
	ClientID  string
	Chain     []string // grant ids, root first
	Agents    []string // actors, root first; the last is the current actor
	Rights    policy.Rights
}

// issued is a minted access token.
type issued struct {
	Token   string
	ID      string
	Expiry  time.Time
	Scope   string
	Request *mintRequest
}

// mint checks with the store that the chain is still alive, then signs.
// A revocation that commits after the check still reaches the token: the
// gateways reject it by its chain ids (DESIGN.md §5).
func (s *Server) mint(ctx context.Context, m *mintRequest) (*issued, error) {
	at := now()
	// The gateways do not know max_depth; the issuer is the only check
	// (a lowered max_depth also stops deeper agents registered before).
	if len(m.Chain) > s.cfg.MaxDepth {
		return nil, errInvalidGrant("depth: the delegation chain is deeper than max_depth")
	}
	if err := s.chainAlive(ctx, m.User, m.Chain, at); err != nil {
		return nil, err
	}
	iat, err := s.issuedAt(ctx, m, at)
	if err != nil {
		return nil, err
	}
	exp := at.Add(s.cfg.AccessTTL)
	if !m.Rights.Expiry.IsZero() && m.Rights.Expiry.Before(exp) {
		exp = m.Rights.Expiry
	}
	if !exp.After(at) {
		return nil, errInvalidGrant("the grant has expired")
	}
	key, err := s.keys.signer(at)
	if err != nil {
		return nil, err
	}
	// Claims carry whole seconds: a grant ending within the second of iat
	// would mint exp == iat, which token.Mint refuses.
	if exp.Unix() <= iat.Unix() {
		return nil, errInvalidGrant("the grant has expired")
	}
	c := &token.Claims{
		Issuer:   s.cfg.Issuer,
		Subject:  m.User,
		Actor:    token.ActorFor(m.Agents),
		ClientID: m.ClientID,
		Audience: token.Audience(m.Rights.Audience),
		Scope:    policy.FormatScopes(m.Rights.Scopes),
		ID:       token.NewID(token.PrefixToken),
		IssuedAt: iat.Unix(),
		Expiry:   exp.Unix(),
		Kavach:   &token.Kavach{Version: token.KavachVersion, Chain: m.Chain, Agents: m.Agents},
	}
	if !m.Rights.Constraints.IsZero() {
		cn := m.Rights.Constraints
		c.Kavach.Constraints = &cn
	}
	raw, err := token.Mint(key, c)
	if errors.Is(err, token.ErrTooLarge) {
		// What the request asks to carry (scopes, audiences, argument
		// rules) does not fit a token every gateway accepts.
		return nil, errInvalidRequest(fmt.Sprintf("the token would be too large (over %d bytes): ask for fewer scopes or resources, or give the agent fewer argument rules", token.MaxTokenSize))
	}
	if err != nil {
		return nil, err
	}
	return &issued{Token: raw, ID: c.ID, Expiry: exp, Scope: c.Scope, Request: m}, nil
}

// issuedAt is the token's iat: clientIssuedAt, then moved to the next
// second when an issued-before cutoff on the user covers it. The user is
// active (chainAlive checked), so such a cutoff narrowed their
// entitlements (an IdP sign-in) or an operator cut their tokens up to
// now; a token within the user's entitlements as they are after the
// cutoff may live, and is issued at the next second. The entitlements
// are read again here, after the cutoff became visible, so a mint that
// checked them before a narrowing committed gets nothing.
func (s *Server) issuedAt(ctx context.Context, m *mintRequest, at time.Time) (time.Time, error) {
	iat, err := s.clientIssuedAt(ctx, m, at)
	if err != nil {
		return time.Time{}, err
	}
	r := s.cfg.Revoked
	if r == nil || !r.RevokedBefore(revocation.CutoffSubject, m.User, iat.Unix()) {
		return iat, nil
	}
	next := iat.Truncate(time.Second).Add(time.Second)
	if r.RevokedBefore(revocation.CutoffSubject, m.User, next.Unix()) {
		return time.Time{}, errInvalidGrant("the user's tokens are revoked")
	}
	u, err := s.store.GetUser(ctx, m.User)
	if err != nil {
		return time.Time{}, err
	}
	for _, res := range m.Rights.Audience {
		if !policy.Covers(u.Entitlements[res], m.Rights.Scopes) {
			return time.Time{}, errInvalidGrant("the user's entitlements changed; retry")
		}
	}
	return next, nil
}

// clientIssuedAt is the token's iat as far as the client goes: now,
// unless an issued-before cutoff on the client covers the current second (iat is whole seconds, so a credential
// rotation's cutoff is rounded up to the next second to catch every token
// of the old credential). Then the token is issued at the next second, so
// it survives the cutoff, but only when the credential that authenticated
// this request is still the agent's: a request that authenticated with
// the old secret just before the rotation gets nothing.
func (s *Server) clientIssuedAt(ctx context.Context, m *mintRequest, at time.Time) (time.Time, error) {
	r := s.cfg.Revoked
	if r == nil || !r.RevokedBefore(revocation.CutoffClient, m.ClientID, at.Unix()) {
		return at, nil
	}
	if m.AuthAgent == nil {
		return time.Time{}, errInvalidGrant("the client's tokens are being revoked; retry")
	}
	cur, err := s.store.GetAgent(ctx, m.AuthAgent.ID)
	if err != nil {
		return time.Time{}, err
	}
	if !bytes.Equal(cur.SecretHash, m.AuthAgent.SecretHash) || !bytes.Equal(cur.PublicKey, m.AuthAgent.PublicKey) {
		return time.Time{}, errInvalidClient("the credential was rotated")
	}
	next := at.Truncate(time.Second).Add(time.Second)
	if r.RevokedBefore(revocation.CutoffClient, m.ClientID, next.Unix()) {
		// A cutoff beyond the next second (set by hand): fail closed.
		return time.Time{}, errInvalidGrant("the client's tokens are revoked")
	}
	return next, nil
}

// chainAlive refuses to mint for a revoked or expired user or grant, or a
// chain the gateways' set already holds as revoked.
func (s *Server) chainAlive(ctx context.Context, user string, chain []string, at time.Time) error {
	u, err := s.store.GetUser(ctx, user)
	if errors.Is(err, store.ErrNotFound) {
		return errInvalidGrant("the user no longer exists")
	}
	if err != nil {
		return err
	}
	if !u.RevokedAt.IsZero() {
		return errInvalidGrant("the user is revoked")
	}
	if err := s.store.ChainActive(ctx, chain, at); err != nil {
		if errors.Is(err, store.ErrInactive) || errors.Is(err, store.ErrNotFound) {
			return errInvalidGrant("the delegation chain is revoked or expired")
		}
		return err
	}
	if r := s.cfg.Revoked; r != nil {
		for _, id := range chain {
			if r.IsRevoked(id) {
				return errInvalidGrant("the delegation chain is revoked")
			}
		}
	}
	return nil
}

// errTokenRevoked is checkLive's verdict on a dead token (as opposed to a
// failing store).
var errTokenRevoked = errors.New("token revoked or its chain inactive")

// checkLive runs the gateway's revocation checks on a verified token of
// this issuer and the store's view of its chain: the test a subject_token
// and an introspected token must pass.
func (s *Server) checkLive(ctx context.Context, t *token.Token) error {
	if t.Kavach == nil {
		return errTokenRevoked
	}
	if r := s.cfg.Revoked; r != nil {
		ids := append([]string{t.ID}, t.Kavach.Chain...)
		ids = append(ids, t.Kavach.Agents...)
		for _, id := range ids {
			if r.IsRevoked(id) {
				return errTokenRevoked
			}
		}
		if r.RevokedBefore(revocation.CutoffSubject, t.Subject, t.IssuedAt) ||
			(t.ClientID != "" && r.RevokedBefore(revocation.CutoffClient, t.ClientID, t.IssuedAt)) ||
			r.RevokedBefore(revocation.CutoffKey, t.KeyID, t.IssuedAt) {
			return errTokenRevoked
		}
	}
	err := s.chainAlive(ctx, t.Subject, t.Kavach.Chain, now())
	var oe *oauthError
	if errors.As(err, &oe) {
		return errTokenRevoked
	}
	return err
}

// tokenResponse is RFC 6749 §5.1 (and RFC 8693 §2.2.1).
type tokenResponse struct {
	AccessToken     string `json:"access_token"`
	IssuedTokenType string `json:"issued_token_type,omitempty"`
	TokenType       string `json:"token_type"`
	ExpiresIn       int64  `json:"expires_in"`
	Scope           string `json:"scope,omitempty"`
	RefreshToken    string `json:"refresh_token,omitempty"`
}

func (is *issued) response() *tokenResponse {
	return &tokenResponse{
		AccessToken: is.Token,
		TokenType:   "Bearer",
		ExpiresIn:   int64(is.Expiry.Sub(now()).Round(time.Second) / time.Second),
		Scope:       is.Scope,
	}
}
