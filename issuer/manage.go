package issuer

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/kavachgate/kavach/admin"
	"github.com/kavachgate/kavach/issuer/store"
	"github.com/kavachgate/kavach/policy"
	"github.com/kavachgate/kavach/revocation"
	"github.com/kavachgate/kavach/token"
)

// The issuer's management operations: what the admin API (admin.go) does
// once a request is decoded. The rules live here, not in the handlers:
// who may be created with what, within whose rights, and what a
// revocation reaches. Each takes and returns the admin plane's types;
// an error is an *admin.Error, a *policy.FieldError or a store error,
// which adminError maps to an answer.

// maxIDLen bounds an id the operator chooses (a user's) or names (a
// registered client's).
const maxIDLen = 128

func badRequest(format string, a ...any) *admin.Error {
	return &admin.Error{Status: http.StatusBadRequest, Code: "invalid_request", Description: fmt.Sprintf(format, a...)}
}

func checkName(name string) error {
	if name == "" || len(name) > MaxNameLen {
		return badRequest("name is required (at most %d bytes)", MaxNameLen)
	}
	return nil
}

func showUser(u *store.User) *admin.User {
	return &admin.User{ID: u.ID, Name: u.Name, Entitlements: u.Entitlements, EntitlementsSource: u.EntitlementsSource,
		EntitlementsAt: optTime(u.EntitlementsAt), CreatedAt: u.CreatedAt, RevokedAt: optTime(u.RevokedAt)}
}

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// validEntitlements checks resource URLs and scope patterns.
func validEntitlements(ent map[string][]string) error {
	for res, scopes := range ent {
		u, err := url.Parse(res)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return badRequest("entitlements: resource %s must be an absolute http(s) URL without query or fragment", quote(res))
		}
		parsed, err := policy.ParseScopes(strings.Join(scopes, " "))
		if err != nil {
			return badRequest("entitlements for %s: %v", quote(res), err)
		}
		if len(parsed) != len(scopes) {
			return badRequest("entitlements for %s: repeated scope", quote(res))
		}
	}
	return nil
}

// createUser creates a user: an id of the user kind (generated when
// absent), a name, valid entitlements, and an optional password.
func (s *Server) createUser(ctx context.Context, in *admin.UserCreate) (*admin.User, error) {
	if in.ID == "" {
		in.ID = token.NewID(token.PrefixUser)
	}
	if !strings.HasPrefix(in.ID, token.PrefixUser) || !validIDChars(in.ID) {
		return nil, badRequest("id must start with %s and use only letters, digits, '-' and '_'", token.PrefixUser)
	}
	if err := checkName(in.Name); err != nil {
		return nil, err
	}
	if err := validEntitlements(in.Entitlements); err != nil {
		return nil, err
	}
	u := &store.User{ID: in.ID, Name: in.Name, Entitlements: in.Entitlements, CreatedAt: now()}
	if in.Password != "" {
		h, err := hashPassword(in.Password)
		if err != nil {
			return nil, badRequest("password: %v", err)
		}
		u.PasswordHash = h
	}
	if err := s.store.CreateUser(ctx, u); err != nil {
		return nil, err
	}
	return showUser(u), nil
}

func (s *Server) listUsers(ctx context.Context) (*admin.UserList, error) {
	users, err := s.store.ListUsers(ctx)
	if err != nil {
		return nil, err
	}
	out := &admin.UserList{Users: make([]*admin.User, len(users))}
	for i, u := range users {
		out.Users[i] = showUser(u)
	}
	return out, nil
}

// getUser shows a user with their IdP links.
func (s *Server) getUser(ctx context.Context, id string) (*admin.User, error) {
	u, err := s.store.GetUser(ctx, id)
	if err != nil {
		return nil, err
	}
	links, err := s.store.IdentityLinks(ctx, id)
	if err != nil {
		return nil, err
	}
	out := showUser(u)
	for _, l := range links {
		out.IdPLinks = append(out.IdPLinks, admin.IdPLink{Provider: l.Provider, Issuer: l.Issuer, Subject: l.Subject,
			Email: l.Email, Name: l.Name, Groups: l.Groups, CreatedAt: l.CreatedAt, SeenAt: l.SeenAt})
	}
	return out, nil
}

// setEntitlements replaces a user's entitlements.
func (s *Server) setEntitlements(ctx context.Context, id string, ent admin.Entitlements) (*admin.User, error) {
	if err := validEntitlements(ent); err != nil {
		return nil, err
	}
	if err := s.store.SetEntitlements(ctx, id, ent, now()); err != nil {
		return nil, err
	}
	return s.getUser(ctx, id)
}

// revokeUser revokes a user: the store refuses every mint for them and an
// issued-before cutoff on sub stops every token of theirs.
func (s *Server) revokeUser(ctx context.Context, id string) (*admin.Revoked, error) {
	return s.revokeWithCutoff(ctx, revocation.CutoffSubject, id, s.store.RevokeUser, Event{Kind: "revoked", Subject: id, IDs: []string{id}, Reason: "user revoked"})
}

// cutoff is an issued-before cutoff covering every token of (kind, id)
// issued up to at: iat is whole seconds, so the cutoff is the next second.
func (s *Server) cutoff(kind revocation.Kind, id string, at time.Time) revocation.Entry {
	return revocation.Entry{ID: id, Cutoff: kind, Before: at.Truncate(time.Second).Add(time.Second), Until: s.revocationUntil(at)}
}

// revokeWithCutoff revokes id in the store together with its cutoff, then
// publishes the cutoff to the gateways and records the event.
func (s *Server) revokeWithCutoff(ctx context.Context, kind revocation.Kind, id string,
	revoke func(ctx context.Context, id string, at time.Time, cut revocation.Entry) error, ev Event) (*admin.Revoked, error) {
	at := now()
	cut := s.cutoff(kind, id, at)
	if err := revoke(ctx, id, at, cut); err != nil {
		return nil, err
	}
	s.publishRevocations(ctx, []revocation.Entry{cut})
	s.event(ev)
	return &admin.Revoked{Revoked: []string{id}}, nil
}

func showAgent(a *store.Agent) *admin.Agent {
	out := &admin.Agent{
		ID: a.ID, ClientID: a.ID, Name: a.Name, Owner: a.Owner, Parent: a.Parent,
		Grant: a.Chain[len(a.Chain)-1], Chain: a.Chain, Agents: a.Agents, Scopes: a.Scopes,
		Auth: "client_secret_basic", CreatedAt: a.CreatedAt, ExpiresAt: a.ExpiresAt, RevokedAt: optTime(a.RevokedAt),
	}
	if a.PublicKey != nil {
		out.Auth = "private_key_jwt"
	}
	if !a.Constraints.IsZero() {
		c := a.Constraints
		out.Constraints = &c
	}
	return out
}

// credential returns an agent's credential: the registered public key,
// or a new secret (returned once, stored hashed).
func credential(publicKey json.RawMessage) (secret string, secretHash, pk []byte, err error) {
	if len(publicKey) > 0 && string(publicKey) != "null" {
		if _, _, err := parseAgentKey(publicKey); err != nil {
			return "", nil, nil, badRequest("public_key: %v", err)
		}
		return "", nil, append([]byte(nil), publicKey...), nil
	}
	secret = newSecret()
	return secret, hashSecret(secret), nil, nil
}

// newSecret returns 256 random bits, base64url.
func newSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (s *Server) agentTTL(in *admin.AgentCreate) (time.Duration, error) {
	ttl := time.Duration(in.TTL)
	if ttl == 0 {
		ttl = DefaultAgentTTL
	}
	if ttl < 0 || ttl > s.cfg.MaxAgentTTL {
		return 0, badRequest("ttl must be positive and at most %v", s.cfg.MaxAgentTTL)
	}
	return ttl, nil
}

// validAgent checks what an agent asks for on its own: a name, scopes
// (well-formed, none repeated) and constraints that are valid.
func validAgent(in *admin.AgentCreate) error {
	if err := checkName(in.Name); err != nil {
		return err
	}
	if len(in.Scopes) == 0 {
		return badRequest("scopes are required")
	}
	parsed, err := policy.ParseScopes(strings.Join(in.Scopes, " "))
	if err != nil {
		return badRequest("scopes: %v", err)
	}
	if len(parsed) != len(in.Scopes) {
		return badRequest("scopes: repeated scope")
	}
	if err := in.Constraints.Validate(); err != nil {
		return badRequest("constraints: %v", err)
	}
	return nil
}

// createAgent creates a root agent for a user: scopes within the union of
// the owner's entitlements; its root grant is the user's.
func (s *Server) createAgent(ctx context.Context, in *admin.AgentCreate) (*admin.Agent, error) {
	if err := validAgent(in); err != nil {
		return nil, err
	}
	ttl, err := s.agentTTL(in)
	if err != nil {
		return nil, err
	}
	owner, err := s.store.GetUser(ctx, in.Owner)
	if errors.Is(err, store.ErrNotFound) {
		return nil, badRequest("owner %s does not exist", quote(in.Owner))
	}
	if err != nil {
		return nil, err
	}
	var union []string
	for _, scopes := range owner.Entitlements {
		union = append(union, scopes...)
	}
	if out := policy.Uncovered(union, in.Scopes); out != nil {
		return nil, &admin.Error{Status: http.StatusBadRequest, Code: "invalid_scope", Description: fmt.Sprintf("scope: %s beyond the owner's entitlements", quote(out[0]))}
	}
	secret, sh, pk, err := credential(in.PublicKey)
	if err != nil {
		return nil, err
	}
	at := now()
	a := &store.Agent{
		ID: token.NewID(token.PrefixAgent), Name: in.Name, Owner: owner.ID,
		Scopes: in.Scopes, Constraints: in.Constraints, SecretHash: sh, PublicKey: pk,
		CreatedAt: at, ExpiresAt: at.Add(ttl),
	}
	g := &store.Grant{ID: token.NewID(token.PrefixGrant), User: owner.ID, Grantee: a.ID, Scopes: a.Scopes, Constraints: a.Constraints, CreatedAt: at, ExpiresAt: a.ExpiresAt}
	a.Chain, a.Agents = []string{g.ID}, []string{a.ID}
	return s.storeAgent(ctx, a, g, at, secret, "agent created")
}

// storeAgent inserts an agent with its grant and returns it with its
// secret (shown this once).
func (s *Server) storeAgent(ctx context.Context, a *store.Agent, g *store.Grant, at time.Time, secret, reason string) (*admin.Agent, error) {
	if err := s.store.CreateAgent(ctx, a, g, at); err != nil {
		return nil, err
	}
	s.event(Event{Kind: "delegated", Subject: a.Owner, ClientID: a.ID, Agents: a.Agents, Chain: a.Chain, Reason: reason})
	out := showAgent(a)
	out.ClientSecret = secret
	return out, nil
}

// createChild registers a child agent of an agent, with its grant:
// attenuated from the parent by policy.Attenuate (DESIGN.md §3).
func (s *Server) createChild(ctx context.Context, parentID string, in *admin.AgentCreate) (*admin.Agent, error) {
	if in.Owner != "" {
		return nil, badRequest("a child's owner is its parent's")
	}
	if err := validAgent(in); err != nil {
		return nil, err
	}
	ttl, err := s.agentTTL(in)
	if err != nil {
		return nil, err
	}
	parent, err := s.store.GetAgent(ctx, parentID)
	if err != nil {
		return nil, err
	}
	at := now()
	if !parent.RevokedAt.IsZero() || !at.Before(parent.ExpiresAt) {
		return nil, store.ErrInactive
	}
	// A child lives at most as long as its parent: a longer ttl is capped
	// to the parent's expiry (the response's expires_at says so).
	exp := at.Add(ttl)
	if exp.After(parent.ExpiresAt) {
		exp = parent.ExpiresAt
	}
	rights, err := policy.Attenuate(
		policy.Rights{Scopes: parent.Scopes, Constraints: parent.Constraints, Expiry: parent.ExpiresAt, Depth: len(parent.Chain)},
		policy.Request{Scopes: in.Scopes, Constraints: in.Constraints, Expiry: exp, Delegate: true, MaxDepth: s.cfg.MaxDepth},
	)
	if err != nil {
		return nil, err
	}
	secret, sh, pk, err := credential(in.PublicKey)
	if err != nil {
		return nil, err
	}
	a := &store.Agent{
		ID: token.NewID(token.PrefixAgent), Name: in.Name, Owner: parent.Owner, Parent: parent.ID,
		Scopes: rights.Scopes, Constraints: rights.Constraints, SecretHash: sh, PublicKey: pk,
		CreatedAt: at, ExpiresAt: rights.Expiry,
	}
	g := &store.Grant{
		ID: token.NewID(token.PrefixGrant), Parent: parent.Chain[len(parent.Chain)-1], User: parent.Owner, Grantee: a.ID,
		Scopes: a.Scopes, Constraints: a.Constraints, CreatedAt: at, ExpiresAt: a.ExpiresAt,
	}
	a.Chain = append(slices.Clone(parent.Chain), g.ID)
	a.Agents = append(slices.Clone(parent.Agents), a.ID)
	return s.storeAgent(ctx, a, g, at, secret, "child agent created")
}

func (s *Server) listAgents(ctx context.Context, owner string) (*admin.AgentList, error) {
	agents, err := s.store.ListAgents(ctx, owner)
	if err != nil {
		return nil, err
	}
	out := &admin.AgentList{Agents: make([]*admin.Agent, len(agents))}
	for i, a := range agents {
		out.Agents[i] = showAgent(a)
	}
	return out, nil
}

// getAgent shows an agent with its children.
func (s *Server) getAgent(ctx context.Context, id string) (*admin.Agent, error) {
	a, err := s.store.GetAgent(ctx, id)
	if err != nil {
		return nil, err
	}
	kids, err := s.store.Children(ctx, a.ID)
	if err != nil {
		return nil, err
	}
	out := showAgent(a)
	for _, k := range kids {
		out.Children = append(out.Children, k.ID)
	}
	return out, nil
}

// revokeAgent revokes an agent, its grants and every descendant: first in
// the store (which then refuses to mint for them), then in the gateways'
// set.
func (s *Server) revokeAgent(ctx context.Context, id string) (*admin.Revoked, error) {
	at := now()
	ids, err := s.store.RevokeAgent(ctx, id, at, s.revocationUntil(at))
	if err != nil {
		return nil, err
	}
	s.publishIDs(ctx, ids, at)
	s.event(Event{Kind: "revoked", IDs: ids, Reason: "agent revoked"})
	return &admin.Revoked{Revoked: ids}, nil
}

// listConsents lists the consents a user gave OAuth clients that still
// hold.
func (s *Server) listConsents(ctx context.Context, user string) (*admin.ConsentList, error) {
	grants, err := s.store.Consents(ctx, user, now())
	if err != nil {
		return nil, err
	}
	out := &admin.ConsentList{Consents: make([]*admin.Consent, len(grants))}
	for i, g := range grants {
		out.Consents[i] = &admin.Consent{Grant: g.ID, ClientID: g.Grantee, Scopes: g.Scopes, Audience: g.Audience,
			Via: g.Via, CreatedAt: g.CreatedAt, ExpiresAt: g.ExpiresAt}
	}
	return out, nil
}

// revokeConsent revokes one consent of a user: the root grant of an OAuth
// client's tokens, with its refresh-token family, so the client must ask
// the user again and the gateways drop its tokens by their chain. The
// client itself stays registered (other users' consents are theirs). A
// grant that is not a consent of this user is not found: the console and
// the admin API name nothing they may not touch.
func (s *Server) revokeConsent(ctx context.Context, user, grantID string) (*admin.Revoked, error) {
	notFound := &admin.Error{Status: http.StatusNotFound, Code: "not_found", Description: "no such consent of this user"}
	if !strings.HasPrefix(grantID, token.PrefixGrant) || !validIDChars(grantID) {
		return nil, notFound
	}
	g, err := s.store.GetGrant(ctx, grantID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound
	}
	if err != nil {
		return nil, err
	}
	if g.User != user || g.Parent != "" || strings.HasPrefix(g.Grantee, token.PrefixAgent) {
		return nil, notFound
	}
	at := now()
	ids, err := s.store.RevokeGrant(ctx, g.ID, at, s.revocationUntil(at))
	if err != nil {
		return nil, err
	}
	s.publishIDs(ctx, ids, at)
	s.event(Event{Kind: "revoked", Subject: user, ClientID: g.Grantee, IDs: ids, Reason: "consent revoked"})
	return &admin.Revoked{Revoked: ids}, nil
}

// rotateAgent replaces an agent's credential (a new secret, or the public
// key) and stops every token the old one obtained (an issued-before
// cutoff on the client id): rotation usually follows a leak.
func (s *Server) rotateAgent(ctx context.Context, id string, publicKey json.RawMessage) (*admin.Credential, error) {
	a, err := s.store.GetAgent(ctx, id)
	if err != nil {
		return nil, err
	}
	if !a.RevokedAt.IsZero() {
		return nil, store.ErrInactive
	}
	secret, sh, pk, err := credential(publicKey)
	if err != nil {
		return nil, err
	}
	if err := s.store.SetAgentCredential(ctx, a.ID, sh, pk); err != nil {
		return nil, err
	}
	at := now()
	// The cutoff covers the current second; mint issues the new
	// credential's tokens from the next (see issuedAt).
	cut := s.cutoff(revocation.CutoffClient, a.ID, at)
	if err := s.store.AddRevocations(ctx, []revocation.Entry{cut}); err != nil {
		return nil, err
	}
	s.publishRevocations(ctx, []revocation.Entry{cut})
	out := &admin.Credential{ID: a.ID, ClientID: a.ID, Auth: "private_key_jwt"}
	if secret != "" {
		out.ClientSecret = secret
		out.Auth = "client_secret_basic"
	}
	return out, nil
}

// createClient registers an OAuth client by hand: a resource server that
// may introspect tokens for the resources it serves, or a confidential
// client with redirect URIs.
func (s *Server) createClient(ctx context.Context, in *admin.ClientCreate) (*admin.ClientCreated, error) {
	if in.Name == "" {
		return nil, badRequest("name is required")
	}
	switch in.Kind {
	case store.ClientResourceServer, store.ClientConfidential:
	case "":
		in.Kind = store.ClientResourceServer
	default:
		return nil, badRequest("kind must be %s or %s", store.ClientResourceServer, store.ClientConfidential)
	}
	for _, u := range in.RedirectURIs {
		if err := checkRedirectURI(u); err != nil {
			return nil, badRequest("redirect_uris: %v", err)
		}
	}
	if in.Kind == store.ClientResourceServer {
		if err := checkResources(in.Resources); err != nil {
			return nil, err
		}
	} else if in.Resources != nil {
		return nil, badRequest("resources: only a resource server serves resources")
	}
	secret := newSecret()
	c := &store.Client{ID: token.NewID(token.PrefixClient), Name: in.Name, Kind: in.Kind, RedirectURIs: in.RedirectURIs,
		Resources: in.Resources, SecretHash: hashSecret(secret), CreatedAt: now()}
	if err := s.store.CreateClient(ctx, c); err != nil {
		return nil, err
	}
	out := &admin.ClientCreated{ClientID: c.ID, ClientSecret: secret, Name: c.Name, Kind: c.Kind, RedirectURIs: c.RedirectURIs}
	if c.Kind == store.ClientResourceServer {
		out.Resources = c.Resources
	}
	return out, nil
}

// setClientResources replaces the resources a resource server serves
// (also how one registered before resources existed, which introspects
// nothing, is put back to work).
func (s *Server) setClientResources(ctx context.Context, id string, resources []string) (*admin.ClientResources, error) {
	c, err := s.store.GetClient(ctx, id)
	if err != nil {
		return nil, err
	}
	if c.Kind != store.ClientResourceServer {
		return nil, badRequest("only a resource server serves resources")
	}
	if err := checkResources(resources); err != nil {
		return nil, err
	}
	if err := s.store.SetClientResources(ctx, id, resources); err != nil {
		return nil, err
	}
	return &admin.ClientResources{ClientID: id, Resources: resources}, nil
}

// checkResources validates a resource server's resources: at least one
// (one without any could introspect nothing), each an absolute http(s)
// URL without fragment or userinfo (RFC 8707 §2: a resource indicator),
// no repeats. They are compared exactly with the tokens' aud.
func checkResources(resources []string) error {
	if len(resources) == 0 {
		return badRequest("resources is required for a resource server: the resource URLs (token audiences) it serves, the only ones whose tokens it may introspect")
	}
	for i, raw := range resources {
		u, err := url.Parse(raw)
		switch {
		case err != nil || raw == "" || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "":
			return badRequest("resources: %s is not an absolute http(s) URL", quote(raw))
		case u.Fragment != "" || strings.Contains(raw, "#"):
			return badRequest("resources: %s has a fragment", quote(raw))
		case u.User != nil:
			return badRequest("resources: %s has userinfo", quote(raw))
		case slices.Contains(resources[:i], raw):
			return badRequest("resources: %s is listed twice", quote(raw))
		}
	}
	return nil
}

// revokeClients revokes by the body of POST /v1/clients/revoke: one
// client by id, or every client ID metadata document client on a host or
// a subdomain of it, including ones never seen yet.
func (s *Server) revokeClients(ctx context.Context, in *admin.ClientsRevoke) (*admin.Revoked, error) {
	switch {
	case (in.ClientID == "") == (in.Host == ""):
		return nil, badRequest("give exactly one of client_id and host")
	case in.ClientID != "":
		return s.revokeClient(ctx, in.ClientID)
	}
	host, err := revocableHost(in.Host)
	if err != nil {
		return nil, err
	}
	return s.revokeMetadataClients(ctx, store.ClientRevocation{Host: host}, "client metadata host revoked")
}

// revokeClient revokes an OAuth client: a registered one (cli_…), or one
// identified by a client ID metadata document URL. Either way it can no
// longer authenticate or be authorized, the consents users gave it are
// revoked with their refresh tokens (so the gateways drop its tokens by
// their chain), and an issued-before cutoff on its client_id stops every
// token it holds.
func (s *Server) revokeClient(ctx context.Context, id string) (*admin.Revoked, error) {
	if strings.Contains(id, "://") {
		if err := revocableClientURL(id); err != nil {
			return nil, err
		}
		return s.revokeMetadataClients(ctx, store.ClientRevocation{ClientID: id}, "client revoked")
	}
	if !strings.HasPrefix(id, token.PrefixClient) || !validIDChars(id) {
		return nil, &admin.Error{Status: http.StatusNotFound, Code: "not_found", Description: fmt.Sprintf("no client %s: a client id is cli_… or a client metadata document URL", quote(id))}
	}
	at := now()
	cut := s.cutoff(revocation.CutoffClient, id, at)
	ids, err := s.store.RevokeClient(ctx, id, at, s.revocationUntil(at), cut)
	if err != nil {
		return nil, err
	}
	s.publishRevocations(ctx, []revocation.Entry{cut})
	s.publishIDs(ctx, ids, at)
	all := append([]string{id}, ids...)
	s.event(Event{Kind: "revoked", ClientID: id, IDs: all, Reason: "client revoked"})
	return &admin.Revoked{Revoked: all}, nil
}

// revokeMetadataClients records the revocation of metadata document
// clients in the store (with their consents and cutoffs), then publishes
// the cutoffs and revoked grants to the gateways.
func (s *Server) revokeMetadataClients(ctx context.Context, rev store.ClientRevocation, reason string) (*admin.Revoked, error) {
	at := now()
	var cuts []revocation.Entry
	clients, ids, err := s.store.RevokeMetadataClients(ctx, rev, at, s.revocationUntil(at), func(client string) revocation.Entry {
		cut := s.cutoff(revocation.CutoffClient, client, at)
		cuts = append(cuts, cut)
		return cut
	})
	if err != nil {
		return nil, err
	}
	s.publishRevocations(ctx, cuts)
	s.publishIDs(ctx, ids, at)
	all := append(slices.Clone(clients), ids...)
	s.event(Event{Kind: "revoked", ClientID: rev.ClientID, IDs: all, Reason: reason})
	out := &admin.Revoked{Revoked: all}
	if rev.Host != "" {
		out.Host = rev.Host
		out.Clients = clients
		if out.Clients == nil {
			out.Clients = []string{} // a host revocation always lists the clients it reached
		}
	}
	return out, nil
}

// revocableClientURL checks a client ID metadata document URL given for
// revocation: an absolute http(s) URL that can be a client_id (and so a
// revocation entry id). It need not be fetchable: an operator may revoke
// a URL before anyone uses it.
func revocableClientURL(id string) error {
	if len(id) > token.MaxIDLen {
		return badRequest("client_id: longer than %d bytes", token.MaxIDLen)
	}
	for i := 0; i < len(id); i++ {
		if b := id[i]; b <= ' ' || b >= 0x7f || b == '"' || b == '\\' || b == ',' {
			return badRequest("client_id: a client metadata document URL has no space, quote, backslash or comma")
		}
	}
	u, err := url.Parse(id)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return badRequest("client_id: not an absolute http(s) URL")
	}
	return nil
}

// revocableHost checks and normalises the host of a host revocation: a
// DNS name of at least two labels (it covers its subdomains too, so a
// top-level domain is refused), or an IP address; lower case, without a
// trailing dot or IPv6 brackets, as store.ClientRevocation wants it.
func revocableHost(h string) (string, error) {
	bad := badRequest("host: want a host name such as tools.example (it covers its subdomains) or an IP address, not a URL or a pattern")
	h = strings.TrimSuffix(strings.ToLower(h), ".")
	if ip, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")); err == nil && ip.Zone() == "" {
		return ip.String(), nil
	}
	if h == "" || len(h) > 253 || !strings.Contains(h, ".") {
		return "", bad
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return "", bad
		}
		for i := 0; i < len(label); i++ {
			if c := label[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return "", bad
			}
		}
	}
	return h, nil
}

// rotateKeys adds a signing key, published now and signing after
// KeyPublishAhead (one gateway JWKS refresh interval).
func (s *Server) rotateKeys(ctx context.Context) (*admin.KeyRotated, error) {
	k, err := s.keys.rotate(ctx, now(), s.cfg.KeyPublishAhead)
	if err != nil {
		return nil, err
	}
	return &admin.KeyRotated{KID: k.KID, PublishedAt: k.CreatedAt, SignsFrom: k.ActiveAt}, nil
}

// revokeKey withdraws a (compromised) signing key at once: if it signs
// now, a new key replaces it immediately (no publish-ahead: tokens of the
// old key must stop anyway), and an issued-before cutoff on its kid stops
// every token it signed.
func (s *Server) revokeKey(ctx context.Context, kid string) (*admin.Revoked, error) {
	at := now()
	current, err := s.keys.signer(at)
	if err != nil {
		return nil, err
	}
	found := false
	for _, k := range s.keys.records() {
		found = found || k.KID == kid
	}
	if !found {
		return nil, store.ErrNotFound
	}
	if current.KID == kid {
		if _, err := s.keys.rotate(ctx, at, 0); err != nil {
			return nil, err
		}
	} else if err := s.store.RetireSigningKey(ctx, kid, at); err != nil {
		return nil, err
	}
	cut := s.cutoff(revocation.CutoffKey, kid, at)
	if err := s.store.AddRevocations(ctx, []revocation.Entry{cut}); err != nil {
		return nil, err
	}
	s.publishRevocations(ctx, []revocation.Entry{cut})
	if err := s.keys.load(ctx, at); err != nil {
		return nil, err
	}
	s.event(Event{Kind: "revoked", IDs: []string{kid}, Reason: "signing key revoked"})
	return &admin.Revoked{Revoked: []string{kid}}, nil
}

// Reseeder is a revocation set that can be rewritten wholesale (Redis).
type Reseeder interface {
	Reseed(ctx context.Context, entries []revocation.Entry) error
}

// Reseed writes the store's live revocations to the gateways' set: all at
// once when the set can be re-seeded (Redis: entries and epoch), else one
// by one.
func (s *Server) Reseed(ctx context.Context) (int, error) {
	entries, err := s.store.LiveRevocations(ctx, now())
	if err != nil {
		return 0, err
	}
	if rs, ok := s.cfg.Revoked.(Reseeder); ok {
		return len(entries), rs.Reseed(ctx, entries)
	}
	s.publishRevocations(ctx, entries)
	return len(entries), nil
}

// validIDChars: ids are URL-safe.
func validIDChars(id string) bool {
	if len(id) > maxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
