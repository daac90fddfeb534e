package issuer

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/kavachgate/kavach/issuer/store"
	"github.com/kavachgate/kavach/policy"
	"github.com/kavachgate/kavach/revocation"
	"github.com/kavachgate/kavach/token"
)

// adminRoutes is the agent admin API (DESIGN.md §7), JSON in and out. The
// Kavach admin listener authenticates every request before it gets here.
func (s *Server) adminRoutes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/users", s.adminCreateUser)
	mux.HandleFunc("GET /v1/users", s.adminListUsers)
	mux.HandleFunc("GET /v1/users/{id}", s.adminGetUser)
	mux.HandleFunc("PUT /v1/users/{id}/entitlements", s.adminSetEntitlements)
	mux.HandleFunc("POST /v1/users/{id}/revoke", s.adminRevokeUser)
	mux.HandleFunc("POST /v1/agents", s.adminCreateAgent)
	mux.HandleFunc("GET /v1/agents", s.adminListAgents)
	mux.HandleFunc("GET /v1/agents/{id}", s.adminGetAgent)
	mux.HandleFunc("POST /v1/agents/{id}/children", s.adminCreateChild)
	mux.HandleFunc("POST /v1/agents/{id}/revoke", s.adminRevokeAgent)
	mux.HandleFunc("POST /v1/agents/{id}/rotate", s.adminRotateAgent)
	mux.HandleFunc("POST /v1/clients", s.adminCreateClient)
	mux.HandleFunc("POST /v1/clients/{id}/revoke", s.adminRevokeClient)
	mux.HandleFunc("PUT /v1/clients/{id}/resources", s.adminSetClientResources)
	mux.HandleFunc("POST /v1/clients/revoke", s.adminRevokeClients)
	mux.HandleFunc("POST /v1/keys/rotate", s.adminRotateKeys)
	mux.HandleFunc("POST /v1/keys/{kid}/revoke", s.adminRevokeKey)
	mux.HandleFunc("POST /v1/reseed", s.adminReseed)
	return mux
}

// apiError is the admin API's error body, in the shape of every error of
// the admin listener and of OAuth (RFC 6749 §5.2).
type apiError struct {
	Status  int    `json:"-"`
	Code    string `json:"error"`
	Message string `json:"error_description"`
}

func (e *apiError) Error() string { return e.Message }

func badRequest(format string, a ...any) *apiError {
	return &apiError{http.StatusBadRequest, "invalid_request", fmt.Sprintf(format, a...)}
}

func (s *Server) adminError(w http.ResponseWriter, err error) {
	var ae *apiError
	var fe *policy.FieldError
	switch {
	case errors.As(err, &ae):
	case errors.As(err, &fe):
		code := "invalid_scope"
		if fe.Field == "aud" {
			code = "invalid_target"
		}
		ae = &apiError{http.StatusBadRequest, code, fe.Error()}
	case errors.Is(err, store.ErrNotFound):
		ae = &apiError{http.StatusNotFound, "not_found", "not found"}
	case errors.Is(err, store.ErrExists):
		ae = &apiError{http.StatusConflict, "conflict", "already exists"}
	case errors.Is(err, store.ErrInactive):
		ae = &apiError{http.StatusConflict, "inactive", "the parent, owner or chain is revoked or expired"}
	default:
		s.log.Error("issuer: admin request failed", "error", err)
		ae = &apiError{http.StatusInternalServerError, "server_error", "internal error"}
	}
	writeJSON(w, ae.Status, ae)
}

// readJSON decodes a JSON body strictly: at most maxJSONBody bytes, no
// unknown fields, nothing after the value.
func readJSON(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxJSONBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &apiError{http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("body larger than %d bytes", maxJSONBody)}
		}
		return badRequest("could not read the body")
	}
	if err := checkMembers(body, v); err != nil {
		return badRequest("body: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("body: %v", err)
	}
	if dec.More() {
		return badRequest("body: data after the JSON value")
	}
	return nil
}

// checkMembers closes the gaps encoding/json leaves in a top-level
// object: a repeated member (the last would silently win) and a member
// whose case differs from the field's name (matched case-insensitively)
// are errors. For a struct, member names must be its json names exactly.
func checkMembers(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil // not an object: the decoder reports what is wrong
	}
	var names map[string]bool
	if rt := reflect.TypeOf(v); rt.Kind() == reflect.Pointer && rt.Elem().Kind() == reflect.Struct {
		names = map[string]bool{}
		for f := range rt.Elem().Fields() {
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name != "" && name != "-" {
				names[name] = true
			}
		}
	}
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil
		}
		key, _ := t.(string)
		if seen[strings.ToLower(key)] {
			return fmt.Errorf("member %s is repeated", quote(key))
		}
		seen[strings.ToLower(key)] = true
		if names != nil && !names[key] {
			return fmt.Errorf("unknown member %s", quote(key))
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil
		}
	}
	return nil
}

// Duration is a JSON duration: a Go duration string ("10m", "1h") or
// seconds.
type Duration time.Duration

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

// userJSON is a user as the admin API shows it (never the password hash).
type userJSON struct {
	ID           string              `json:"id"`
	Name         string              `json:"name"`
	Entitlements map[string][]string `json:"entitlements"`
	CreatedAt    time.Time           `json:"created_at"`
	RevokedAt    *time.Time          `json:"revoked_at,omitempty"`
}

func showUser(u *store.User) *userJSON {
	return &userJSON{ID: u.ID, Name: u.Name, Entitlements: u.Entitlements, CreatedAt: u.CreatedAt, RevokedAt: optTime(u.RevokedAt)}
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

func (s *Server) adminCreateUser(w http.ResponseWriter, r *http.Request) {
	var in struct {
		ID           string              `json:"id"`
		Name         string              `json:"name"`
		Password     string              `json:"password"`
		Entitlements map[string][]string `json:"entitlements"`
	}
	if err := readJSON(w, r, &in); err != nil {
		s.adminError(w, err)
		return
	}
	if in.ID == "" {
		in.ID = token.NewID(token.PrefixUser)
	}
	if !strings.HasPrefix(in.ID, token.PrefixUser) || !validIDChars(in.ID) {
		s.adminError(w, badRequest("id must start with %s and use only letters, digits, '-' and '_'", token.PrefixUser))
		return
	}
	if in.Name == "" || len(in.Name) > 128 {
		s.adminError(w, badRequest("name is required (at most 128 bytes)"))
		return
	}
	if err := validEntitlements(in.Entitlements); err != nil {
		s.adminError(w, err)
		return
	}
	u := &store.User{ID: in.ID, Name: in.Name, Entitlements: in.Entitlements, CreatedAt: now()}
	if in.Password != "" {
		h, err := hashPassword(in.Password)
		if err != nil {
			s.adminError(w, badRequest("password: %v", err))
			return
		}
		u.PasswordHash = h
	}
	if err := s.store.CreateUser(r.Context(), u); err != nil {
		s.adminError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, showUser(u))
}

func (s *Server) adminListUsers(w http.ResponseWriter, r *http.Request) {
	users, err := s.store.ListUsers(r.Context())
	if err != nil {
		s.adminError(w, err)
		return
	}
	out := make([]*userJSON, len(users))
	for i, u := range users {
		out[i] = showUser(u)
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": out})
}

func (s *Server) adminGetUser(w http.ResponseWriter, r *http.Request) {
	u, err := s.store.GetUser(r.Context(), r.PathValue("id"))
	if err != nil {
		s.adminError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, showUser(u))
}

func (s *Server) adminSetEntitlements(w http.ResponseWriter, r *http.Request) {
	var ent map[string][]string
	if err := readJSON(w, r, &ent); err != nil {
		s.adminError(w, err)
		return
	}
	if err := validEntitlements(ent); err != nil {
		s.adminError(w, err)
		return
	}
	id := r.PathValue("id")
	if err := s.store.SetEntitlements(r.Context(), id, ent); err != nil {
		s.adminError(w, err)
		return
	}
	u, err := s.store.GetUser(r.Context(), id)
	if err != nil {
		s.adminError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, showUser(u))
}

// adminRevokeUser revokes a user: the store refuses every mint for them
// and an issued-before cutoff on sub stops every token of theirs.
func (s *Server) adminRevokeUser(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.revokeWithCutoff(w, r, revocation.CutoffSubject, id, s.store.RevokeUser, Event{Kind: "revoked", Subject: id, IDs: []string{id}, Reason: "user revoked"})
}

// cutoff is an issued-before cutoff covering every token of (kind, id)
// issued up to at: iat is whole seconds, so the cutoff is the next second.
func (s *Server) cutoff(kind revocation.Kind, id string, at time.Time) revocation.Entry {
	return revocation.Entry{ID: id, Cutoff: kind, Before: at.Truncate(time.Second).Add(time.Second), Until: s.revocationUntil(at)}
}

// revokeWithCutoff revokes id in the store together with its cutoff, then
// publishes the cutoff to the gateways and records the event.
func (s *Server) revokeWithCutoff(w http.ResponseWriter, r *http.Request, kind revocation.Kind, id string,
	revoke func(ctx context.Context, id string, at time.Time, cut revocation.Entry) error, ev Event) {
	at := now()
	cut := s.cutoff(kind, id, at)
	if err := revoke(r.Context(), id, at, cut); err != nil {
		s.adminError(w, err)
		return
	}
	s.publishRevocations(r.Context(), []revocation.Entry{cut})
	s.event(ev)
	writeJSON(w, http.StatusOK, map[string]any{"revoked": []string{id}})
}

// agentJSON is an agent as the admin API shows it.
type agentJSON struct {
	ID           string              `json:"id"`
	ClientID     string              `json:"client_id"`
	ClientSecret string              `json:"client_secret,omitempty"` // only when created or rotated
	Name         string              `json:"name"`
	Owner        string              `json:"owner"`
	Parent       string              `json:"parent,omitempty"`
	Grant        string              `json:"grant"`
	Chain        []string            `json:"chain"`
	Agents       []string            `json:"agents"`
	Scopes       []string            `json:"scopes"`
	Constraints  *policy.Constraints `json:"constraints,omitempty"`
	Auth         string              `json:"token_endpoint_auth_method"`
	Children     []string            `json:"children,omitempty"`
	CreatedAt    time.Time           `json:"created_at"`
	ExpiresAt    time.Time           `json:"expires_at"`
	RevokedAt    *time.Time          `json:"revoked_at,omitempty"`
}

func showAgent(a *store.Agent) *agentJSON {
	out := &agentJSON{
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

// agentInput is the body of POST /v1/agents and …/children.
type agentInput struct {
	Name        string             `json:"name"`
	Owner       string             `json:"owner"`
	Scopes      []string           `json:"scopes"`
	TTL         Duration           `json:"ttl"`
	Constraints policy.Constraints `json:"constraints"`
	PublicKey   json.RawMessage    `json:"public_key"`
}

// credential returns the agent's credential: the registered public key,
// or a new secret (returned once, stored hashed).
func credential(in *agentInput) (secret string, secretHash, publicKey []byte, err error) {
	if len(in.PublicKey) > 0 && string(in.PublicKey) != "null" {
		if _, _, err := parseAgentKey(in.PublicKey); err != nil {
			return "", nil, nil, badRequest("public_key: %v", err)
		}
		return "", nil, append([]byte(nil), in.PublicKey...), nil
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

func (s *Server) agentTTL(in *agentInput) (time.Duration, error) {
	ttl := time.Duration(in.TTL)
	if ttl == 0 {
		ttl = DefaultAgentTTL
	}
	if ttl < 0 || ttl > s.cfg.MaxAgentTTL {
		return 0, badRequest("ttl must be positive and at most %v", s.cfg.MaxAgentTTL)
	}
	return ttl, nil
}

func (in *agentInput) validate() error {
	if in.Name == "" || len(in.Name) > 128 {
		return badRequest("name is required (at most 128 bytes)")
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

// adminCreateAgent creates a root agent for a user: scopes within the
// union of the owner's entitlements; its root grant is the user's.
func (s *Server) adminCreateAgent(w http.ResponseWriter, r *http.Request) {
	var in agentInput
	if err := readJSON(w, r, &in); err != nil {
		s.adminError(w, err)
		return
	}
	if err := in.validate(); err != nil {
		s.adminError(w, err)
		return
	}
	ttl, err := s.agentTTL(&in)
	if err != nil {
		s.adminError(w, err)
		return
	}
	ctx := r.Context()
	owner, err := s.store.GetUser(ctx, in.Owner)
	if errors.Is(err, store.ErrNotFound) {
		s.adminError(w, badRequest("owner %s does not exist", quote(in.Owner)))
		return
	}
	if err != nil {
		s.adminError(w, err)
		return
	}
	var union []string
	for _, scopes := range owner.Entitlements {
		union = append(union, scopes...)
	}
	if out := policy.Uncovered(union, in.Scopes); out != nil {
		s.adminError(w, &apiError{http.StatusBadRequest, "invalid_scope", fmt.Sprintf("scope: %s beyond the owner's entitlements", quote(out[0]))})
		return
	}
	secret, sh, pk, err := credential(&in)
	if err != nil {
		s.adminError(w, err)
		return
	}
	at := now()
	a := &store.Agent{
		ID: token.NewID(token.PrefixAgent), Name: in.Name, Owner: owner.ID,
		Scopes: in.Scopes, Constraints: in.Constraints, SecretHash: sh, PublicKey: pk,
		CreatedAt: at, ExpiresAt: at.Add(ttl),
	}
	g := &store.Grant{ID: token.NewID(token.PrefixGrant), User: owner.ID, Grantee: a.ID, Scopes: a.Scopes, Constraints: a.Constraints, CreatedAt: at, ExpiresAt: a.ExpiresAt}
	a.Chain, a.Agents = []string{g.ID}, []string{a.ID}
	s.storeAgent(w, r, a, g, at, secret, "agent created")
}

// storeAgent inserts an agent with its grant and answers 201 with the
// agent (and its secret, shown this once).
func (s *Server) storeAgent(w http.ResponseWriter, r *http.Request, a *store.Agent, g *store.Grant, at time.Time, secret, reason string) {
	if err := s.store.CreateAgent(r.Context(), a, g, at); err != nil {
		s.adminError(w, err)
		return
	}
	s.event(Event{Kind: "delegated", Subject: a.Owner, ClientID: a.ID, Agents: a.Agents, Chain: a.Chain, Reason: reason})
	out := showAgent(a)
	out.ClientSecret = secret
	writeJSON(w, http.StatusCreated, out)
}

// adminCreateChild registers a child agent of an agent, with its grant:
// attenuated from the parent by policy.Attenuate (DESIGN.md §3).
func (s *Server) adminCreateChild(w http.ResponseWriter, r *http.Request) {
	var in agentInput
	if err := readJSON(w, r, &in); err != nil {
		s.adminError(w, err)
		return
	}
	if in.Owner != "" {
		s.adminError(w, badRequest("a child's owner is its parent's"))
		return
	}
	if err := in.validate(); err != nil {
		s.adminError(w, err)
		return
	}
	ttl, err := s.agentTTL(&in)
	if err != nil {
		s.adminError(w, err)
		return
	}
	ctx := r.Context()
	parent, err := s.store.GetAgent(ctx, r.PathValue("id"))
	if err != nil {
		s.adminError(w, err)
		return
	}
	at := now()
	if !parent.RevokedAt.IsZero() || !at.Before(parent.ExpiresAt) {
		s.adminError(w, store.ErrInactive)
		return
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
		s.adminError(w, err)
		return
	}
	secret, sh, pk, err := credential(&in)
	if err != nil {
		s.adminError(w, err)
		return
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
	s.storeAgent(w, r, a, g, at, secret, "child agent created")
}

func (s *Server) adminListAgents(w http.ResponseWriter, r *http.Request) {
	agents, err := s.store.ListAgents(r.Context(), r.URL.Query().Get("owner"))
	if err != nil {
		s.adminError(w, err)
		return
	}
	out := make([]*agentJSON, len(agents))
	for i, a := range agents {
		out[i] = showAgent(a)
	}
	writeJSON(w, http.StatusOK, map[string]any{"agents": out})
}

func (s *Server) adminGetAgent(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	a, err := s.store.GetAgent(ctx, r.PathValue("id"))
	if err != nil {
		s.adminError(w, err)
		return
	}
	kids, err := s.store.Children(ctx, a.ID)
	if err != nil {
		s.adminError(w, err)
		return
	}
	out := showAgent(a)
	for _, k := range kids {
		out.Children = append(out.Children, k.ID)
	}
	writeJSON(w, http.StatusOK, out)
}

// adminRevokeAgent revokes an agent, its grants and every descendant:
// first in the store (which then refuses to mint for them), then in the
// gateways' set.
func (s *Server) adminRevokeAgent(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	at := now()
	ids, err := s.store.RevokeAgent(ctx, r.PathValue("id"), at, s.revocationUntil(at))
	if err != nil {
		s.adminError(w, err)
		return
	}
	s.publishIDs(ctx, ids, at)
	s.event(Event{Kind: "revoked", IDs: ids, Reason: "agent revoked"})
	writeJSON(w, http.StatusOK, map[string]any{"revoked": ids})
}

// adminRotateAgent replaces an agent's credential (a new secret, or the
// public key in the body) and stops every token the old one obtained (an
// issued-before cutoff on the client id): rotation usually follows a leak.
func (s *Server) adminRotateAgent(w http.ResponseWriter, r *http.Request) {
	var in struct {
		PublicKey json.RawMessage `json:"public_key"`
	}
	if r.ContentLength != 0 {
		if err := readJSON(w, r, &in); err != nil {
			s.adminError(w, err)
			return
		}
	}
	ctx := r.Context()
	a, err := s.store.GetAgent(ctx, r.PathValue("id"))
	if err != nil {
		s.adminError(w, err)
		return
	}
	if !a.RevokedAt.IsZero() {
		s.adminError(w, store.ErrInactive)
		return
	}
	secret, sh, pk, err := credential(&agentInput{PublicKey: in.PublicKey})
	if err != nil {
		s.adminError(w, err)
		return
	}
	if err := s.store.SetAgentCredential(ctx, a.ID, sh, pk); err != nil {
		s.adminError(w, err)
		return
	}
	at := now()
	// The cutoff covers the current second; mint issues the new
	// credential's tokens from the next (see issuedAt).
	cut := s.cutoff(revocation.CutoffClient, a.ID, at)
	if err := s.store.AddRevocations(ctx, []revocation.Entry{cut}); err != nil {
		s.adminError(w, err)
		return
	}
	s.publishRevocations(ctx, []revocation.Entry{cut})
	out := map[string]any{"id": a.ID, "client_id": a.ID, "token_endpoint_auth_method": "private_key_jwt"}
	if secret != "" {
		out["client_secret"] = secret
		out["token_endpoint_auth_method"] = "client_secret_basic"
	}
	writeJSON(w, http.StatusOK, out)
}

// adminCreateClient registers an OAuth client by hand: a resource server
// that may introspect tokens for the resources it serves, or a
// confidential client with redirect URIs.
func (s *Server) adminCreateClient(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Name         string   `json:"name"`
		Kind         string   `json:"kind"`
		RedirectURIs []string `json:"redirect_uris"`
		Resources    []string `json:"resources"`
	}
	if err := readJSON(w, r, &in); err != nil {
		s.adminError(w, err)
		return
	}
	if in.Name == "" {
		s.adminError(w, badRequest("name is required"))
		return
	}
	switch in.Kind {
	case store.ClientResourceServer, store.ClientConfidential:
	case "":
		in.Kind = store.ClientResourceServer
	default:
		s.adminError(w, badRequest("kind must be %s or %s", store.ClientResourceServer, store.ClientConfidential))
		return
	}
	for _, u := range in.RedirectURIs {
		if err := checkRedirectURI(u); err != nil {
			s.adminError(w, badRequest("redirect_uris: %v", err))
			return
		}
	}
	if in.Kind == store.ClientResourceServer {
		if err := checkResources(in.Resources); err != nil {
			s.adminError(w, err)
			return
		}
	} else if in.Resources != nil {
		s.adminError(w, badRequest("resources: only a resource server serves resources"))
		return
	}
	secret := newSecret()
	c := &store.Client{ID: token.NewID(token.PrefixClient), Name: in.Name, Kind: in.Kind, RedirectURIs: in.RedirectURIs,
		Resources: in.Resources, SecretHash: hashSecret(secret), CreatedAt: now()}
	if err := s.store.CreateClient(r.Context(), c); err != nil {
		s.adminError(w, err)
		return
	}
	out := map[string]any{"client_id": c.ID, "client_secret": secret, "name": c.Name, "kind": c.Kind, "redirect_uris": c.RedirectURIs}
	if c.Kind == store.ClientResourceServer {
		out["resources"] = c.Resources
	}
	writeJSON(w, http.StatusCreated, out)
}

// adminSetClientResources replaces the resources a resource server
// serves (also how one registered before resources existed, which
// introspects nothing, is put back to work).
func (s *Server) adminSetClientResources(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Resources []string `json:"resources"`
	}
	if err := readJSON(w, r, &in); err != nil {
		s.adminError(w, err)
		return
	}
	ctx := r.Context()
	id := r.PathValue("id")
	c, err := s.store.GetClient(ctx, id)
	if err != nil {
		s.adminError(w, err)
		return
	}
	if c.Kind != store.ClientResourceServer {
		s.adminError(w, badRequest("only a resource server serves resources"))
		return
	}
	if err := checkResources(in.Resources); err != nil {
		s.adminError(w, err)
		return
	}
	if err := s.store.SetClientResources(ctx, id, in.Resources); err != nil {
		s.adminError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"client_id": id, "resources": in.Resources})
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

// adminRevokeClient revokes an OAuth client: a registered one (cli_…),
// or one identified by a client ID metadata document URL, URL-encoded
// into the path segment (https%3A%2F%2Ftools.example%2Fclient.json).
// Either way it can no longer authenticate or be authorized, the consents
// users gave it are revoked with their refresh tokens (so the gateways
// drop its tokens by their chain), and an issued-before cutoff on its
// client_id stops every token it holds.
func (s *Server) adminRevokeClient(w http.ResponseWriter, r *http.Request) {
	s.revokeClient(w, r, r.PathValue("id"))
}

// adminRevokeClients is POST /v1/clients/revoke with {"client_id": id}
// (the same as the path form, for ids awkward in a path) or {"host": h}:
// every client ID metadata document client on host h or a subdomain of
// it, including ones never seen yet.
func (s *Server) adminRevokeClients(w http.ResponseWriter, r *http.Request) {
	var in struct {
		ClientID string `json:"client_id"`
		Host     string `json:"host"`
	}
	if err := readJSON(w, r, &in); err != nil {
		s.adminError(w, err)
		return
	}
	switch {
	case (in.ClientID == "") == (in.Host == ""):
		s.adminError(w, badRequest("give exactly one of client_id and host"))
	case in.ClientID != "":
		s.revokeClient(w, r, in.ClientID)
	default:
		host, err := revocableHost(in.Host)
		if err != nil {
			s.adminError(w, err)
			return
		}
		s.revokeMetadataClients(w, r, store.ClientRevocation{Host: host}, "client metadata host revoked")
	}
}

// revokeClient revokes a registered client or a metadata document client.
func (s *Server) revokeClient(w http.ResponseWriter, r *http.Request, id string) {
	if strings.Contains(id, "://") {
		if err := revocableClientURL(id); err != nil {
			s.adminError(w, err)
			return
		}
		s.revokeMetadataClients(w, r, store.ClientRevocation{ClientID: id}, "client revoked")
		return
	}
	if !strings.HasPrefix(id, token.PrefixClient) || !validIDChars(id) {
		s.adminError(w, &apiError{http.StatusNotFound, "not_found", fmt.Sprintf("no client %s: a client id is cli_… or a client metadata document URL", quote(id))})
		return
	}
	ctx := r.Context()
	at := now()
	cut := s.cutoff(revocation.CutoffClient, id, at)
	ids, err := s.store.RevokeClient(ctx, id, at, s.revocationUntil(at), cut)
	if err != nil {
		s.adminError(w, err)
		return
	}
	s.publishRevocations(ctx, []revocation.Entry{cut})
	s.publishIDs(ctx, ids, at)
	all := append([]string{id}, ids...)
	s.event(Event{Kind: "revoked", ClientID: id, IDs: all, Reason: "client revoked"})
	writeJSON(w, http.StatusOK, map[string]any{"revoked": all})
}

// revokeMetadataClients records the revocation of metadata document
// clients in the store (with their consents and cutoffs), then publishes
// the cutoffs and revoked grants to the gateways.
func (s *Server) revokeMetadataClients(w http.ResponseWriter, r *http.Request, rev store.ClientRevocation, reason string) {
	ctx := r.Context()
	at := now()
	var cuts []revocation.Entry
	clients, ids, err := s.store.RevokeMetadataClients(ctx, rev, at, s.revocationUntil(at), func(client string) revocation.Entry {
		cut := s.cutoff(revocation.CutoffClient, client, at)
		cuts = append(cuts, cut)
		return cut
	})
	if err != nil {
		s.adminError(w, err)
		return
	}
	s.publishRevocations(ctx, cuts)
	s.publishIDs(ctx, ids, at)
	all := append(slices.Clone(clients), ids...)
	s.event(Event{Kind: "revoked", ClientID: rev.ClientID, IDs: all, Reason: reason})
	out := map[string]any{"revoked": all}
	if rev.Host != "" {
		out["host"] = rev.Host
		out["clients"] = clients
	}
	writeJSON(w, http.StatusOK, out)
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

// adminRotateKeys adds a signing key, published now and signing after
// KeyPublishAhead (one gateway JWKS refresh interval).
func (s *Server) adminRotateKeys(w http.ResponseWriter, r *http.Request) {
	k, err := s.keys.rotate(r.Context(), now(), s.cfg.KeyPublishAhead)
	if err != nil {
		s.adminError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"kid": k.KID, "published_at": k.CreatedAt, "signs_from": k.ActiveAt})
}

// adminRevokeKey withdraws a (compromised) signing key at once: if it
// signs now, a new key replaces it immediately (no publish-ahead: tokens of
// the old key must stop anyway), and an issued-before cutoff on its kid
// stops every token it signed.
func (s *Server) adminRevokeKey(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	kid := r.PathValue("kid")
	at := now()
	current, err := s.keys.signer(at)
	if err != nil {
		s.adminError(w, err)
		return
	}
	found := false
	for _, k := range s.keys.records() {
		found = found || k.KID == kid
	}
	if !found {
		s.adminError(w, store.ErrNotFound)
		return
	}
	if current.KID == kid {
		if _, err := s.keys.rotate(ctx, at, 0); err != nil {
			s.adminError(w, err)
			return
		}
	} else if err := s.store.RetireSigningKey(ctx, kid, at); err != nil {
		s.adminError(w, err)
		return
	}
	cut := s.cutoff(revocation.CutoffKey, kid, at)
	if err := s.store.AddRevocations(ctx, []revocation.Entry{cut}); err != nil {
		s.adminError(w, err)
		return
	}
	s.publishRevocations(ctx, []revocation.Entry{cut})
	if err := s.keys.load(ctx, at); err != nil {
		s.adminError(w, err)
		return
	}
	s.event(Event{Kind: "revoked", IDs: []string{kid}, Reason: "signing key revoked"})
	writeJSON(w, http.StatusOK, map[string]any{"revoked": []string{kid}})
}

// adminReseed rewrites every live revocation of the store into the
// gateways' set (after Redis lost its data).
func (s *Server) adminReseed(w http.ResponseWriter, r *http.Request) {
	n, err := s.Reseed(r.Context())
	if err != nil {
		s.adminError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"entries": n})
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
	if len(id) > 128 {
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
