package issuer

import (
	"cmp"
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/kavachgate/kavach/issuer/idp"
	"github.com/kavachgate/kavach/issuer/store"
	"github.com/kavachgate/kavach/policy"
)

// Grant and token types.
const (
	grantTokenExchange   = "urn:ietf:params:oauth:grant-type:token-exchange"
	tokenTypeAccessToken = "urn:ietf:params:oauth:token-type:access_token"
	tokenTypeJWT         = "urn:ietf:params:oauth:token-type:jwt"
)

// serveToken is /oauth/token, the only place tokens are minted.
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	form, err := parseForm(w, r, "resource", "audience")
	if err != nil {
		s.writeOAuthError(w, err)
		return
	}
	c, err := s.authenticateClient(r, form)
	if err != nil {
		s.writeOAuthError(w, err)
		return
	}
	var resp *tokenResponse
	switch gt := form.Get("grant_type"); gt {
	case "client_credentials":
		resp, err = s.grantClientCredentials(r.Context(), c, form)
	case grantTokenExchange:
		resp, err = s.grantTokenExchange(r.Context(), c, form)
	case "authorization_code":
		resp, err = s.grantAuthorizationCode(r.Context(), c, form)
	case "refresh_token":
		resp, err = s.grantRefreshToken(r.Context(), c, form)
	case idp.GrantTypeJWTBearer:
		if s.login.jag == nil {
			err = &oauthError{http.StatusBadRequest, "unsupported_grant_type", "the jwt-bearer grant is not enabled (no trusted identity provider)"}
			break
		}
		resp, err = s.grantJWTBearer(r.Context(), c, form)
	case "":
		err = errInvalidRequest("grant_type is required")
	default:
		err = &oauthError{http.StatusBadRequest, "unsupported_grant_type", "unsupported grant_type " + quote(gt)}
	}
	if err != nil {
		s.writeOAuthError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// grantClientCredentials mints an agent's own token: granted scopes ⊆ the
// owner's entitlements on the resource ∩ the agent's scopes (DESIGN.md §7).
func (s *Server) grantClientCredentials(ctx context.Context, c *caller, form url.Values) (*tokenResponse, error) {
	a := c.Agent
	if a == nil {
		return nil, errUnauthorizedClient("client_credentials is for agents")
	}
	at := now()
	if !a.RevokedAt.IsZero() || (!a.ExpiresAt.IsZero() && !at.Before(a.ExpiresAt)) {
		return nil, errInvalidClient("the agent is revoked or expired")
	}
	owner, err := s.store.GetUser(ctx, a.Owner)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, errInvalidGrant("the agent's owner no longer exists")
		}
		return nil, err
	}
	resource, err := s.pickResource(form, owner)
	if err != nil {
		return nil, err
	}
	requested, err := policy.ParseScopes(form.Get("scope"))
	if err != nil {
		return nil, errInvalidScope(err.Error())
	}
	scopes, err := grantable(requested, a.Scopes, owner.Entitlements[resource])
	if err != nil {
		return nil, err
	}
	is, err := s.mint(ctx, &mintRequest{
		AuthAgent: a,
		User:      a.Owner, ClientID: a.ID, Chain: a.Chain, Agents: a.Agents,
		Rights: policy.Rights{Scopes: scopes, Audience: []string{resource}, Constraints: a.Constraints, Expiry: a.ExpiresAt, Depth: len(a.Chain)},
	})
	if err != nil {
		return nil, err
	}
	s.event(Event{Kind: "issued", Subject: a.Owner, ClientID: a.ID, Agents: a.Agents, Chain: a.Chain, TokenID: is.ID})
	return is.response(), nil
}

// pickResource returns the one resource (RFC 8707) a token is for: the
// resource parameter, which must be one of the user's entitled resources;
// without it, the user's only resource.
func (s *Server) pickResource(form url.Values, u *store.User) (string, error) {
	res := form["resource"]
	switch len(res) {
	case 0:
		if len(u.Entitlements) == 1 {
			for r := range u.Entitlements {
				return r, nil
			}
		}
		return "", errInvalidTarget("resource is required")
	case 1:
	default:
		return "", errInvalidTarget("one resource per token")
	}
	if _, ok := u.Entitlements[res[0]]; !ok {
		return "", errInvalidTarget("unknown resource " + quote(res[0]))
	}
	return res[0], nil
}

// grantable returns the scopes to grant: requested, each within both
// limits; or, when nothing is requested, every scope of the first limit
// the second covers.
func grantable(requested, agent, entitled []string) ([]string, error) {
	if requested == nil {
		var out []string
		for _, sc := range agent {
			if policy.Allows(entitled, sc) {
				out = append(out, sc)
			}
		}
		for _, sc := range entitled {
			if policy.Allows(agent, sc) && !slices.Contains(out, sc) {
				out = append(out, sc)
			}
		}
		if len(out) == 0 {
			return nil, errInvalidScope("no scope is both allowed to the client and entitled on this resource")
		}
		return out, nil
	}
	for _, sc := range requested {
		if !policy.Allows(agent, sc) {
			return nil, errInvalidScope("scope: " + quote(sc) + " is not allowed to this client")
		}
		if !policy.Allows(entitled, sc) {
			return nil, errInvalidScope("scope: " + quote(sc) + " is beyond the user's entitlements on this resource")
		}
	}
	return requested, nil
}

// grantTokenExchange is RFC 8693 used for delegation at run time
// (DESIGN.md §7). The caller must be the subject token's current actor.
// With an actor_token (a registered child of the caller, asserting itself
// with its key) the result is a new hop; without, it is
// self-attenuation. Either way the result is policy.Attenuate of the
// subject token's rights and, for a child, also within the child's
// registration.
func (s *Server) grantTokenExchange(ctx context.Context, c *caller, form url.Values) (*tokenResponse, error) {
	a := c.Agent
	if a == nil {
		return nil, errUnauthorizedClient("token exchange is for agents")
	}
	if form.Get("subject_token") == "" || form.Get("subject_token_type") != tokenTypeAccessToken {
		return nil, errInvalidRequest("subject_token and subject_token_type " + tokenTypeAccessToken + " are required")
	}
	if rt := form.Get("requested_token_type"); rt != "" && rt != tokenTypeAccessToken {
		return nil, errInvalidRequest("only access tokens can be requested")
	}
	t, err := s.keys.verifier().Verify(form.Get("subject_token"))
	if err != nil {
		return nil, errInvalidGrant("subject_token is not a valid token of this issuer")
	}
	if err := s.checkLive(ctx, t); err != nil {
		if errors.Is(err, errTokenRevoked) {
			return nil, errInvalidGrant("subject_token is revoked or its chain is no longer active")
		}
		return nil, err
	}
	if t.CurrentActor() != a.ID {
		return nil, errInvalidGrant("only the subject token's current actor may exchange it")
	}
	parent := policy.Rights{Scopes: t.Scopes, Audience: t.Audience, Expiry: t.ExpiresAt(), Depth: len(t.Kavach.Chain)}
	if cn := t.Constraints(); cn != nil {
		parent.Constraints = *cn
	}
	req := policy.Request{MaxDepth: s.cfg.MaxDepth}
	if req.Scopes, err = policy.ParseScopes(form.Get("scope")); err != nil {
		return nil, errInvalidScope(err.Error())
	}
	if aud := append(append([]string(nil), form["resource"]...), form["audience"]...); len(aud) > 0 {
		req.Audience = aud
	}
	if raw := form.Get("constraints"); raw != "" {
		if err := req.Constraints.UnmarshalJSON([]byte(raw)); err != nil {
			return nil, errInvalidRequest("constraints: " + err.Error())
		}
	}
	if v := form.Get("expires_in"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 || n > int64(s.cfg.MaxTokenLifetime/time.Second) {
			return nil, errInvalidRequest("expires_in must be a positive number of seconds")
		}
		req.Expiry = now().Add(time.Duration(n) * time.Second)
	}

	m := &mintRequest{AuthAgent: a, User: t.Subject, ClientID: a.ID, Chain: t.Kavach.Chain, Agents: t.Kavach.Agents}
	var child *store.Agent
	if at := form.Get("actor_token"); at != "" {
		if form.Get("actor_token_type") != tokenTypeJWT {
			return nil, errInvalidRequest("actor_token_type must be " + tokenTypeJWT)
		}
		if child, err = s.verifyAgentAssertion(ctx, at); err != nil {
			return nil, errInvalidGrant("actor_token rejected")
		}
		if child.Parent != a.ID {
			return nil, errInvalidGrant("the actor is not a registered child of the caller")
		}
		req.Delegate = true
		if req.Scopes == nil {
			req.Scopes = slices.DeleteFunc(slices.Clone(child.Scopes), func(sc string) bool { return !policy.Allows(t.Scopes, sc) })
		}
		req.Constraints = mergeConstraints(req.Constraints, child.Constraints)
		if !child.ExpiresAt.IsZero() && child.ExpiresAt.Before(cmp.Or(req.Expiry, parent.Expiry)) {
			req.Expiry = child.ExpiresAt
		}
		m.ClientID, m.AuthAgent = child.ID, child
		m.Chain = append(slices.Clone(t.Kavach.Chain), child.Chain[len(child.Chain)-1])
		m.Agents = append(slices.Clone(t.Kavach.Agents), child.ID)
	} else if form.Get("actor_token_type") != "" {
		return nil, errInvalidRequest("actor_token_type without actor_token")
	}
	rights, err := policy.Attenuate(parent, req)
	if err != nil {
		return nil, attenuationError(err)
	}
	if child != nil {
		if !policy.Covers(child.Scopes, rights.Scopes) {
			return nil, errInvalidScope("scope: beyond what the child agent is registered for")
		}
		if fe := rights.Constraints.Within(&child.Constraints); fe != nil {
			return nil, errInvalidScope(fe.Error())
		}
	}
	m.Rights = rights
	is, err := s.mint(ctx, m)
	if err != nil {
		return nil, err
	}
	s.event(Event{Kind: "delegated", Subject: m.User, ClientID: m.ClientID, Agents: m.Agents, Chain: m.Chain, TokenID: is.ID})
	resp := is.response()
	resp.IssuedTokenType = tokenTypeAccessToken
	return resp, nil
}

// attenuationError names the field that would widen: invalid_target for
// the audience, invalid_scope for everything else (scopes and
// constraints are both the extent of access).
func attenuationError(err error) error {
	var fe *policy.FieldError
	if !errors.As(err, &fe) {
		return err
	}
	if fe.Field == "aud" {
		return errInvalidTarget(fe.Error())
	}
	return errInvalidScope(fe.Error())
}

// mergeConstraints fills the fields req leaves absent from def.
func mergeConstraints(req, def policy.Constraints) policy.Constraints {
	if req.Hosts == nil {
		req.Hosts = def.Hosts
	}
	if req.CIDRs == nil {
		req.CIDRs = def.CIDRs
	}
	if req.Methods == nil {
		req.Methods = def.Methods
	}
	if req.Paths == nil {
		req.Paths = def.Paths
	}
	if req.MaxBody == 0 {
		req.MaxBody = def.MaxBody
	}
	if req.Audit == "" {
		req.Audit = def.Audit
	}
	req.Args = req.Args.Inherit(def.Args)
	if req.Rate == "" {
		req.Rate = def.Rate
	}
	return req
}
