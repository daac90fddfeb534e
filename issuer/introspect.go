package issuer

import (
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/kavachgate/kavach/issuer/store"
	"github.com/kavachgate/kavach/revocation"
	"github.com/kavachgate/kavach/token"
)

// introspection is the RFC 7662 §2.2 response for an active token.
type introspection struct {
	Active    bool          `json:"active"`
	Scope     string        `json:"scope,omitempty"`
	ClientID  string        `json:"client_id,omitempty"`
	TokenType string        `json:"token_type,omitempty"`
	Exp       int64         `json:"exp,omitempty"`
	Iat       int64         `json:"iat,omitempty"`
	Sub       string        `json:"sub,omitempty"`
	Aud       []string      `json:"aud,omitempty"`
	Iss       string        `json:"iss,omitempty"`
	Jti       string        `json:"jti,omitempty"`
	Act       *token.Actor  `json:"act,omitempty"`
	Kvc       *token.Kavach `json:"kvc,omitempty"`
}

// serveIntrospect is RFC 7662. Callers authenticate with the admin token
// (any token), as a resource-server client (tokens whose aud names one of
// the resources it serves: RFC 7662 §4, the caller must be allowed to
// learn about the token), or as any other confidential client or agent
// (only tokens it could present itself: its own client_id, which is the
// current actor). An unknown, expired or revoked token, or one the caller
// may not learn about, is {"active": false}, nothing more (§2.2).
func (s *Server) serveIntrospect(w http.ResponseWriter, r *http.Request) {
	admin := s.cfg.AdminAuth != nil && strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") && s.cfg.AdminAuth(r)
	if !admin && strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
		s.writeOAuthError(w, errInvalidClient("bad admin token"))
		return
	}
	if admin {
		// the admin token is not a client credential: keep it out of
		// authenticateClient's Basic parsing.
		r.Header.Del("Authorization")
	}
	form, err := parseForm(w, r)
	if err != nil {
		s.writeOAuthError(w, err)
		return
	}
	var c *caller
	if !admin {
		if c, err = s.authenticateClient(r, form); err != nil {
			s.writeOAuthError(w, err)
			return
		}
		if c.Public {
			s.writeOAuthError(w, errInvalidClient("public clients cannot introspect"))
			return
		}
	}
	raw := form.Get("token")
	if raw == "" {
		s.writeOAuthError(w, errInvalidRequest("token is required"))
		return
	}
	inactive := &introspection{Active: false}
	t, err := s.keys.verifier().Verify(raw)
	if err != nil {
		writeJSON(w, http.StatusOK, inactive)
		return
	}
	if err := s.checkLive(r.Context(), t); err != nil {
		if errors.Is(err, errTokenRevoked) {
			writeJSON(w, http.StatusOK, inactive)
			return
		}
		s.writeOAuthError(w, err)
		return
	}
	if c != nil && !s.mayIntrospect(c, t) {
		writeJSON(w, http.StatusOK, inactive)
		return
	}
	writeJSON(w, http.StatusOK, &introspection{
		Active: true, Scope: t.Scope, ClientID: t.ClientID, TokenType: "Bearer",
		Exp: t.Expiry, Iat: t.IssuedAt, Sub: t.Subject, Aud: t.Audience, Iss: t.Issuer, Jti: t.ID,
		Act: t.Actor, Kvc: t.Kavach,
	})
}

// mayIntrospect reports whether an authenticated caller may learn about
// t: a resource server about tokens for one of its resources (one with
// none configured, registered before resources existed, about nothing);
// any other client or agent about its own tokens.
func (s *Server) mayIntrospect(c *caller, t *token.Token) bool {
	if c.Client != nil && c.Client.Kind == store.ClientResourceServer {
		if len(c.Client.Resources) == 0 {
			s.log.Warn("issuer: a resource server without resources introspected; answering inactive (set its resources with PUT /v1/clients/{id}/resources)", "client_id", c.ID)
			return false
		}
		return slices.ContainsFunc(t.Audience, func(aud string) bool { return slices.Contains(c.Client.Resources, aud) })
	}
	return t.ClientID == c.ID
}

// serveRevoke is RFC 7009. A refresh token revokes its whole family (the
// consent grant, so every access token of it dies at the gateways); an
// access token revokes its jti. Only the client the token was issued to
// may revoke it; an unknown or foreign token is answered 200 all the same
// (§2.2), so the endpoint tells nothing.
func (s *Server) serveRevoke(w http.ResponseWriter, r *http.Request) {
	form, err := parseForm(w, r)
	if err != nil {
		s.writeOAuthError(w, err)
		return
	}
	c, err := s.authenticateClient(r, form)
	if err != nil {
		s.writeOAuthError(w, err)
		return
	}
	raw := form.Get("token")
	if raw == "" {
		s.writeOAuthError(w, errInvalidRequest("token is required"))
		return
	}
	ctx := r.Context()
	at := now()
	if hint := form.Get("token_type_hint"); hint != "access_token" {
		rt, err := s.store.GetRefresh(ctx, hashSecret(raw))
		switch {
		case err == nil:
			if rt.ClientID == c.ID {
				ids, err := s.store.RevokeGrant(ctx, rt.Family, at, s.revocationUntil(at))
				if err != nil {
					s.writeOAuthError(w, err)
					return
				}
				s.publishIDs(ctx, ids, at)
				s.event(Event{Kind: "revoked", Subject: rt.User, ClientID: rt.ClientID, IDs: ids, Reason: "refresh token revoked"})
			}
			w.WriteHeader(http.StatusOK)
			return
		case !errors.Is(err, store.ErrNotFound):
			s.writeOAuthError(w, err)
			return
		}
	}
	t, err := s.keys.verifier().Verify(raw)
	if err == nil && t.ClientID == c.ID {
		e := revocation.Entry{ID: t.ID, Until: s.revocationUntil(at)}
		if err := s.store.AddRevocations(ctx, []revocation.Entry{e}); err != nil {
			s.writeOAuthError(w, err)
			return
		}
		s.publishRevocations(ctx, []revocation.Entry{e})
		s.event(Event{Kind: "revoked", Subject: t.Subject, ClientID: t.ClientID, TokenID: t.ID, IDs: []string{t.ID}, Reason: "access token revoked"})
	}
	w.WriteHeader(http.StatusOK)
}
