package issuer

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/url"
	"time"

	"github.com/kavachgate/kavach/issuer/store"
	"github.com/kavachgate/kavach/policy"
)

// grantAuthorizationCode redeems an authorization code (RFC 6749 §4.1.3,
// PKCE per RFC 7636 §4.6). Checks run in this order, every failure
// invalid_grant unless noted: the code exists and was never used (a
// second use revokes what the first produced); it has not expired; it was
// issued to this client; redirect_uri is the authorization request's,
// exactly; the code_verifier matches the S256 challenge; resource, if
// given, is the code's (invalid_target). The code is spent by the first
// attempt whatever its outcome.
func (s *Server) grantAuthorizationCode(ctx context.Context, c *caller, form url.Values) (*tokenResponse, error) {
	if c.Client == nil {
		return nil, errUnauthorizedClient("the authorization_code grant is for OAuth clients")
	}
	raw := form.Get("code")
	if raw == "" {
		return nil, errInvalidRequest("code is required")
	}
	if len(raw) > maxCodeLen {
		return nil, errInvalidGrant("invalid authorization code")
	}
	at := now()
	code, err := s.store.ConsumeCode(ctx, hashSecret(raw), at)
	switch {
	case errors.Is(err, store.ErrUsed):
		// RFC 6749 §4.1.2, §10.5 (and OAuth 2.1 §4.1.3): a code used twice
		// was probably stolen; revoke the tokens the first use produced.
		// Their chain root is the consent grant, so the gateways drop them.
		if code != nil && code.Grant != "" {
			if err := s.revokeFamily(ctx, code.Grant, code.User, code.ClientID, at, "authorization code reused"); err != nil {
				return nil, err
			}
		}
		return nil, errInvalidGrant("the authorization code was already used")
	case errors.Is(err, store.ErrNotFound):
		return nil, errInvalidGrant("invalid authorization code")
	case err != nil:
		return nil, err
	}
	if !at.Before(code.ExpiresAt) {
		return nil, errInvalidGrant("the authorization code has expired")
	}
	if code.ClientID != c.ID {
		return nil, errInvalidGrant("the authorization code was issued to another client")
	}
	// RFC 6749 §4.1.3: identical to the authorization request's.
	if form.Get("redirect_uri") != code.RedirectURI {
		return nil, errInvalidGrant("redirect_uri does not match the authorization request")
	}
	if !verifyPKCE(form.Get("code_verifier"), code.Challenge) {
		return nil, errInvalidGrant("code_verifier does not match the code_challenge")
	}
	if err := sameResource(form, code.Resource); err != nil {
		return nil, err
	}
	grant, err := s.store.GetGrant(ctx, code.Grant)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errInvalidGrant("the consent is no longer valid")
	}
	if err != nil {
		return nil, err
	}
	scopes, err := s.stillEntitled(ctx, code.User, code.Resource, code.Scopes, false)
	if err != nil {
		return nil, err
	}
	is, err := s.mint(ctx, s.codeFlowMint(code.User, c.ID, grant, code.Resource, scopes))
	if err != nil {
		return nil, err
	}
	refresh := newSecret()
	rt := &store.RefreshToken{
		Hash: hashSecret(refresh), Family: grant.ID, ClientID: c.ID, User: code.User,
		Resource: code.Resource, Scopes: code.Scopes, CreatedAt: at, ExpiresAt: s.refreshExpiry(at, grant),
	}
	if err := s.store.CreateRefresh(ctx, rt); err != nil {
		return nil, err
	}
	s.event(Event{Kind: "issued", Subject: code.User, ClientID: c.ID, Agents: is.Request.Agents, Chain: is.Request.Chain, TokenID: is.ID})
	resp := is.response()
	resp.RefreshToken = refresh
	return resp, nil
}

// grantRefreshToken exchanges a refresh token for a new access token and
// a new refresh token (rotation, OAuth 2.1 §4.3.1; DESIGN.md §7). Check
// order: the token exists and is not revoked; it was not rotated more
// than RefreshGrace ago (else reuse: the family is revoked); it belongs to
// this client and has not expired; resource, if given, is the original
// (invalid_target); scope, if given, narrows the original (invalid_scope).
// Without scope or resource the original ones are kept (RFC 6749 §6); the
// new refresh token always carries the original scope, so a narrowed
// request does not shrink later ones.
//
// The grace window is idempotent: a token presented again within
// RefreshGrace of its rotation (a lost response, or requests racing)
// gets a new access token for the same grant and the same successor the
// first rotation produced, while that successor is unused; otherwise the
// family is revoked. There is never a second live chain.
func (s *Server) grantRefreshToken(ctx context.Context, c *caller, form url.Values) (*tokenResponse, error) {
	if c.Client == nil {
		return nil, errUnauthorizedClient("the refresh_token grant is for OAuth clients")
	}
	raw := form.Get("refresh_token")
	if raw == "" {
		return nil, errInvalidRequest("refresh_token is required")
	}
	if len(raw) > maxCodeLen {
		return nil, errInvalidGrant("invalid refresh token")
	}
	hash := hashSecret(raw)
	at := now()
	old, err := s.store.GetRefresh(ctx, hash)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errInvalidGrant("invalid refresh token")
	}
	if err != nil {
		return nil, err
	}
	if !old.RevokedAt.IsZero() {
		return nil, errInvalidGrant("the refresh token is revoked")
	}
	// The same rule RotateRefresh applies atomically; checked here first
	// so a replayed token is caught before anything else is said about it.
	if !old.RotatedAt.IsZero() && !at.Before(old.RotatedAt.Add(s.cfg.RefreshGrace)) {
		if err := s.revokeFamily(ctx, old.Family, old.User, old.ClientID, at, "refresh token reused"); err != nil {
			return nil, err
		}
		return nil, errInvalidGrant("the refresh token was already used")
	}
	if old.ClientID != c.ID {
		return nil, errInvalidGrant("the refresh token was issued to another client")
	}
	if !at.Before(old.ExpiresAt) {
		return nil, errInvalidGrant("the refresh token has expired")
	}
	if err := sameResource(form, old.Resource); err != nil {
		return nil, err
	}
	requested, err := policy.ParseScopes(form.Get("scope"))
	if err != nil {
		return nil, errInvalidScope(err.Error())
	}
	explicit := requested != nil
	if !explicit {
		requested = old.Scopes
	} else if out := policy.Uncovered(old.Scopes, requested); out != nil {
		return nil, errInvalidScope("scope: " + quote(out[0]) + " was not granted; a refresh may only narrow the scope")
	}
	scopes, err := s.stillEntitled(ctx, old.User, old.Resource, requested, explicit)
	if err != nil {
		return nil, err
	}
	grant, err := s.store.GetGrant(ctx, old.Family)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errInvalidGrant("the consent is no longer valid")
	}
	if err != nil {
		return nil, err
	}
	// Mint first (it checks the chain is alive), rotate second: a token
	// minted for a rotation that then fails is never handed out.
	is, err := s.mint(ctx, s.codeFlowMint(old.User, c.ID, grant, old.Resource, scopes))
	if err != nil {
		return nil, err
	}
	refresh := newSecret()
	sealed, err := sealSuccessor(raw, hash, refresh)
	if err != nil {
		return nil, err
	}
	next := &store.RefreshToken{
		Hash: hashSecret(refresh), Family: old.Family, ClientID: old.ClientID, User: old.User,
		Resource: old.Resource, Scopes: old.Scopes, CreatedAt: at, ExpiresAt: s.refreshExpiry(at, grant),
	}
	rotated, err := s.store.RotateRefresh(ctx, hash, next, sealed, at, s.cfg.RefreshGrace)
	switch {
	case errors.Is(err, store.ErrRotated):
		// A retry inside the grace window, or a concurrent request that
		// lost the rotation: the successor the first rotation produced,
		// never a second live chain (DESIGN.md §7).
		if refresh, err = s.graceSuccessor(ctx, raw, rotated); err != nil {
			return nil, err
		}
	case errors.Is(err, store.ErrUsed):
		// Lost a race with another use past the grace window.
		if err := s.revokeFamily(ctx, old.Family, old.User, old.ClientID, at, "refresh token reused"); err != nil {
			return nil, err
		}
		return nil, errInvalidGrant("the refresh token was already used")
	case errors.Is(err, store.ErrNotFound):
		return nil, errInvalidGrant("invalid refresh token")
	case err != nil:
		return nil, err
	}
	s.event(Event{Kind: "refreshed", Subject: old.User, ClientID: c.ID, Agents: is.Request.Agents, Chain: is.Request.Chain, TokenID: is.ID})
	resp := is.response()
	resp.RefreshToken = refresh
	return resp, nil
}

// graceSuccessor answers a refresh token presented again inside its
// grace window: the successor its first rotation stored, as long as that
// successor has not been used. Once it has, whoever got the first answer
// has moved on, so this is no lost response but a second holder: reuse,
// and the family is revoked. A successor that cannot be opened (none
// kept, e.g. rotated before the upgrade that keeps them) fails the same
// closed way.
func (s *Server) graceSuccessor(ctx context.Context, raw string, old *store.RefreshToken) (string, error) {
	reuse := func(reason string) (string, error) {
		if err := s.revokeFamily(ctx, old.Family, old.User, old.ClientID, now(), reason); err != nil {
			return "", err
		}
		return "", errInvalidGrant("the refresh token was already used")
	}
	succ, err := openSuccessor(raw, old.Hash, old.Successor)
	if err != nil {
		return reuse("refresh token reused (no successor to repeat)")
	}
	next, err := s.store.GetRefresh(ctx, hashSecret(succ))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return reuse("refresh token reused (its successor is gone)")
	case err != nil:
		return "", err
	case !next.RotatedAt.IsZero() || !next.RevokedAt.IsZero():
		return reuse("refresh token reused after its successor was used")
	}
	return succ, nil
}

// Sealed successors. A retry inside the grace window must get the
// successor the first rotation handed out, but refresh tokens are stored
// only as SHA-256, so the successor's plaintext is kept, sealed, on the
// rotated token's row until the window ends (then the store clears it).
//
// The sealing key is derived from the rotated token itself, so only a
// holder of that token can open it: whoever presents it inside the window
// is, by the grace rule, entitled to exactly that successor, and anyone
// else, including a reader of the database (which holds only SHA-256 of
// the token, not this key), learns nothing. This was chosen over deriving
// successors from the old token with an HMAC under a server key: that
// needs a long-lived secret shared by every issuer node, and whoever
// obtained it with the database and any old token of a family could
// compute every later token of it, forever; a sealed successor expires
// with its window and leaves no key to steal.
//
// Format: nonce (12 bytes) || AES-256-GCM(key, nonce, successor, aad =
// SHA-256 of the rotated token), key = HKDF-SHA256(secret = the rotated
// token, salt = successorSalt, info = successorInfo). Each key seals at
// most a few successors (one stored, the rest from racing requests that
// lose and are discarded), each under a random nonce.
const (
	successorSalt = "kavach refresh successor"
	successorInfo = "v1"
	gcmNonceSize  = 12
)

func successorAEAD(rotated string) (cipher.AEAD, error) {
	key, err := hkdf.Key(sha256.New, []byte(rotated), []byte(successorSalt), successorInfo, 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// sealSuccessor seals successor under a key derived from rotated, bound
// to rotated's hash.
func sealSuccessor(rotated string, rotatedHash []byte, successor string) ([]byte, error) {
	aead, err := successorAEAD(rotated)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, gcmNonceSize, gcmNonceSize+len(successor)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return aead.Seal(nonce, nonce, []byte(successor), rotatedHash), nil
}

// openSuccessor opens what sealSuccessor sealed; anything else is an error.
func openSuccessor(rotated string, rotatedHash, sealed []byte) (string, error) {
	if len(sealed) < gcmNonceSize {
		return "", errors.New("no sealed successor")
	}
	aead, err := successorAEAD(rotated)
	if err != nil {
		return "", err
	}
	plain, err := aead.Open(nil, sealed[:gcmNonceSize], sealed[gcmNonceSize:], rotatedHash)
	if err != nil {
		return "", err
	}
	return string(plain), nil
}

// codeFlowMint is the token of the code flow (DESIGN.md §2): one hop,
// whose grant is the user's consent and whose actor is the client.
func (s *Server) codeFlowMint(user, clientID string, grant *store.Grant, resource string, scopes []string) *mintRequest {
	return &mintRequest{
		User: user, ClientID: clientID, Chain: []string{grant.ID}, Agents: []string{clientID},
		Rights: policy.Rights{Scopes: scopes, Audience: []string{resource}, Expiry: grant.ExpiresAt, Depth: 1},
	}
}

// refreshExpiry: RefreshTTL from now, never past the consent grant.
func (s *Server) refreshExpiry(at time.Time, grant *store.Grant) time.Time {
	exp := at.Add(s.cfg.RefreshTTL)
	if !grant.ExpiresAt.IsZero() && grant.ExpiresAt.Before(exp) {
		exp = grant.ExpiresAt
	}
	return exp
}

// stillEntitled applies DESIGN.md §7 "at every mint the granted scope ⊆
// entitlements[resource]" to the user's entitlements as they are now: a
// scope explicitly requested beyond them is invalid_scope; otherwise
// scopes the user has lost since consenting are dropped, and a consent
// left with none is invalid_grant.
func (s *Server) stillEntitled(ctx context.Context, userID, resource string, scopes []string, explicit bool) ([]string, error) {
	u, err := s.store.GetUser(ctx, userID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errInvalidGrant("the user no longer exists")
	}
	if err != nil {
		return nil, err
	}
	ent := u.Entitlements[resource]
	var out []string
	for _, sc := range scopes {
		if policy.Allows(ent, sc) {
			out = append(out, sc)
		} else if explicit {
			return nil, errInvalidScope("scope: " + quote(sc) + " is beyond the user's entitlements on this resource")
		}
	}
	if len(out) == 0 {
		return nil, errInvalidGrant("the user is no longer entitled to any granted scope on this resource")
	}
	return out, nil
}

// sameResource checks the token request's resource parameter (RFC 8707
// §2) against the one the grant is for: absent means that one; anything
// else is invalid_target.
func sameResource(form url.Values, resource string) error {
	res := form["resource"]
	switch {
	case len(res) == 0:
		return nil
	case len(res) > 1:
		return errInvalidTarget("one resource per token")
	case res[0] != resource:
		return errInvalidTarget("resource differs from the one the user consented to")
	}
	return nil
}

// revokeFamily revokes a consent grant (a refresh family) and everything
// below it, in the store first, then in the gateways' set.
func (s *Server) revokeFamily(ctx context.Context, family, user, clientID string, at time.Time, reason string) error {
	ids, err := s.store.RevokeGrant(ctx, family, at, s.revocationUntil(at))
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	s.publishIDs(ctx, ids, at)
	s.log.Warn("issuer: grant revoked", "grant", family, "client_id", clientID, "reason", reason)
	s.event(Event{Kind: "revoked", Subject: user, ClientID: clientID, Chain: []string{family}, IDs: ids, Reason: reason})
	return nil
}

// verifyPKCE is RFC 7636 §4.6 for S256, the only method (OAuth 2.1
// §4.1.1): BASE64URL(SHA256(verifier)) == challenge, where the verifier is
// 43–128 unreserved characters (§4.1).
func verifyPKCE(verifier, challenge string) bool {
	if len(verifier) < minVerifierLen || len(verifier) > maxVerifierLen || challenge == "" {
		return false
	}
	for i := 0; i < len(verifier); i++ {
		if !unreserved(verifier[i]) {
			return false
		}
	}
	sum := sha256.Sum256([]byte(verifier))
	got := base64.RawURLEncoding.EncodeToString(sum[:])
	return subtle.ConstantTimeCompare([]byte(got), []byte(challenge)) == 1
}

// unreserved is RFC 3986 §2.3 (RFC 7636 §4.1's alphabet).
func unreserved(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

// validChallenge checks an S256 code_challenge: the base64url (no
// padding) encoding of a SHA-256 digest, 43 characters (RFC 7636 §4.2).
func validChallenge(ch string) bool {
	if len(ch) != 43 {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(ch)
	return err == nil && len(b) == sha256.Size
}
