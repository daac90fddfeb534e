package issuer

import (
	"context"
	"errors"
	"net/http"
	"net/url"

	"github.com/kavachgate/kavach/issuer/idp"
	"github.com/kavachgate/kavach/issuer/store"
	"github.com/kavachgate/kavach/policy"
	"github.com/kavachgate/kavach/token"
)

// grantJWTBearer exchanges an Identity Assertion JWT Authorization Grant
// (draft-ietf-oauth-identity-assertion-authz-grant, presented with the
// RFC 7523 §2.1 grant type) for an ordinary access token: enterprise
// managed authorization, where the organisation's IdP, not a consent
// page, decides that this client may act for this user. Check order,
// after client authentication (serveToken):
//
//  1. the caller is an OAuth client (agents have their own grants):
//     unauthorized_client;
//  2. the assertion (idp.JAGValidator.Validate: typ, trusted iss, alg and
//     signature, aud = this issuer, client_id = the authenticated client,
//     exp/iat/lifetime, sub/jti, jti replay): invalid_grant with the
//     validator's description;
//  3. a user linked to (iss, sub), not revoked: invalid_grant (no
//     just-in-time user from an assertion: the IdP's sign-in creates
//     them);
//  4. the resource: the form's (RFC 8707) and the assertion's agree, one
//     is present, and the user has entitlements there: invalid_target;
//  5. the scopes: the form's scope, if any, within the assertion's
//     (invalid_scope); without scope in either, all the user's
//     entitlements on the resource; every scope within the entitlements,
//     else invalid_scope (an assertion for more than the user is
//     entitled to is refused, not silently cut).
//
// The token's chain is a new root grant to the client whose Via records
// the IdP, so revoking the user, the client or that grant stops it. No
// refresh token: the client asks the IdP for a new assertion.
func (s *Server) grantJWTBearer(ctx context.Context, c *caller, form url.Values) (*tokenResponse, error) {
	if c.Client == nil {
		return nil, errUnauthorizedClient("the jwt-bearer grant is for OAuth clients")
	}
	assertion := form.Get("assertion")
	if assertion == "" {
		return nil, errInvalidRequest("assertion is required")
	}
	g, err := s.login.jag.Validate(ctx, assertion, idp.Expect{Audience: s.cfg.Issuer, ClientID: c.ID, Now: now()})
	if err != nil {
		var ie *idp.Error
		if errors.As(err, &ie) {
			s.log.Info("issuer: ID-JAG refused", "client_id", c.ID, "reason", ie.Kind, "detail", ie.Detail)
		}
		return nil, jagError(err)
	}
	u, err := s.store.UserByIdentity(ctx, g.Issuer, g.Subject)
	if errors.Is(err, store.ErrNotFound) {
		s.log.Info("issuer: ID-JAG for a user not linked here", "iss", g.Issuer, "jti", g.JTI)
		return nil, errInvalidGrant("the assertion's subject is not a user of this server")
	}
	if err != nil {
		return nil, err
	}
	if !u.RevokedAt.IsZero() {
		return nil, errInvalidGrant("the user is revoked")
	}

	resource := g.Resource
	switch res := form["resource"]; {
	case len(res) > 1:
		return nil, errInvalidTarget("one resource per token")
	case len(res) == 1 && resource != "" && res[0] != resource:
		return nil, errInvalidTarget("resource differs from the assertion's")
	case len(res) == 1:
		resource = res[0]
	case resource == "":
		return nil, errInvalidTarget("resource is required (in the request or the assertion)")
	}
	if !validResource(resource) {
		return nil, errInvalidTarget("resource must be an absolute http or https URL without query or fragment")
	}
	ent := u.Entitlements[resource]
	if len(ent) == 0 {
		return nil, errInvalidTarget("the user has no access on this resource")
	}

	scopes := g.Scope
	if form.Has("scope") {
		requested, err := policy.ParseScopes(form.Get("scope"))
		if err != nil {
			return nil, errInvalidScope(err.Error())
		}
		if g.Scope != nil && !policy.Covers(g.Scope, requested) {
			return nil, errInvalidScope("scope: beyond the assertion's scope")
		}
		if requested != nil {
			scopes = requested
		}
	}
	if scopes == nil {
		scopes = ent
	}
	for _, sc := range scopes {
		if !policy.Allows(ent, sc) {
			return nil, errInvalidScope("scope: " + quote(sc) + " is beyond the user's entitlements on this resource")
		}
	}

	at := now()
	root := &store.Grant{
		ID: token.NewID(token.PrefixGrant), User: u.ID, Grantee: c.ID, Scopes: scopes, Audience: []string{resource},
		Via: store.GrantViaIDJAG + g.Issuer, CreatedAt: at, ExpiresAt: at.Add(s.cfg.AccessTTL),
	}
	if err := s.store.CreateGrant(ctx, root); err != nil {
		if errors.Is(err, store.ErrInactive) || errors.Is(err, store.ErrNotFound) {
			return nil, errInvalidGrant("the user is revoked")
		}
		return nil, err
	}
	is, err := s.mint(ctx, s.codeFlowMint(u.ID, c.ID, root, resource, scopes))
	if err != nil {
		return nil, err
	}
	s.event(Event{Kind: "issued", Subject: u.ID, ClientID: c.ID, Agents: is.Request.Agents, Chain: is.Request.Chain,
		TokenID: is.ID, Reason: "identity assertion (ID-JAG) from " + g.Issuer})
	return is.response(), nil
}

// jagError is the OAuth answer to a refused ID-JAG: the *idp.Error's code
// and fixed description (its detail goes to the log at the caller's
// level, never to the client).
func jagError(err error) error {
	var ie *idp.Error
	if !errors.As(err, &ie) {
		return err
	}
	status := http.StatusBadRequest
	if ie.Code == "temporarily_unavailable" {
		status = http.StatusServiceUnavailable
	}
	return &oauthError{Status: status, Code: ie.Code, Description: ie.Description}
}
