package issuer

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/redis/go-redis/v9"

	"github.com/kavachgate/kavach/internal/strictjson"
	"github.com/kavachgate/kavach/issuer/store"
	"github.com/kavachgate/kavach/token"
)

// assertionTypeJWTBearer is the client assertion type (RFC 7523 §2.2).
const assertionTypeJWTBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// caller is the client a token-endpoint request authenticated as.
type caller struct {
	ID     string
	Agent  *store.Agent  // an agent (client_credentials, token exchange)
	Client *store.Client // an OAuth client (code flow), registered or from a metadata document
	// Public: identified by client_id only (PKCE public client).
	Public bool
}

// authenticateClient identifies the caller (RFC 6749 §2.3): HTTP Basic
// (client_secret_basic), client_secret_post, private_key_jwt (RFC 7523
// §2.2), or a public client's bare client_id. Exactly one method may be
// used. Failures are invalid_client without saying which part was wrong.
func (s *Server) authenticateClient(r *http.Request, form url.Values) (*caller, error) {
	ctx := r.Context()
	basicID, basicSecret, hasBasic := r.BasicAuth()
	if hasBasic {
		// RFC 6749 §2.3.1: both are form-urlencoded before Basic encoding.
		var err1, err2 error
		basicID, err1 = url.QueryUnescape(basicID)
		basicSecret, err2 = url.QueryUnescape(basicSecret)
		if err1 != nil || err2 != nil {
			return nil, errInvalidClient("malformed Basic credentials")
		}
	}
	formID, formSecret := form.Get("client_id"), form.Get("client_secret")
	assertionType, assertion := form.Get("client_assertion_type"), form.Get("client_assertion")
	methods := 0
	for _, used := range []bool{hasBasic, formSecret != "", assertion != "" || assertionType != ""} {
		if used {
			methods++
		}
	}
	if methods > 1 {
		return nil, errInvalidRequest("use exactly one client authentication method")
	}
	switch {
	case hasBasic:
		if formID != "" && formID != basicID {
			return nil, errInvalidRequest("client_id does not match the Basic credentials")
		}
		return s.checkSecret(ctx, basicID, basicSecret)
	case formSecret != "":
		return s.checkSecret(ctx, formID, formSecret)
	case assertion != "" || assertionType != "":
		if assertionType != assertionTypeJWTBearer {
			return nil, errInvalidClient("unsupported client_assertion_type")
		}
		return s.checkAssertion(ctx, formID, assertion)
	case formID != "":
		return s.publicClient(ctx, formID)
	}
	return nil, errInvalidClient("client authentication required")
}

// checkSecret authenticates an agent or a confidential client by its
// secret, compared as SHA-256 digests in constant time.
func (s *Server) checkSecret(ctx context.Context, id, secret string) (*caller, error) {
	bad := errInvalidClient("client authentication failed")
	if id == "" || secret == "" {
		return nil, bad
	}
	got := hashSecret(secret)
	switch {
	case strings.HasPrefix(id, token.PrefixAgent):
		a, err := s.store.GetAgent(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return nil, bad
		}
		if err != nil {
			return nil, err
		}
		if a.SecretHash == nil || subtle.ConstantTimeCompare(a.SecretHash, got) != 1 {
			return nil, bad
		}
		if !agentActive(a, now()) {
			return nil, errInvalidClient("the agent is revoked or expired")
		}
		return &caller{ID: a.ID, Agent: a}, nil
	case strings.HasPrefix(id, token.PrefixClient):
		c, err := s.store.GetClient(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return nil, bad
		}
		if err != nil {
			return nil, err
		}
		if c.SecretHash == nil || !c.RevokedAt.IsZero() || subtle.ConstantTimeCompare(c.SecretHash, got) != 1 {
			return nil, bad
		}
		return &caller{ID: c.ID, Client: c}, nil
	}
	return nil, bad
}

// agentActive reports whether an agent may still authenticate: not
// revoked, not expired. (Its ancestors are checked where its tokens are
// minted; a revoked agent learns nothing by introspecting or revoking, but
// it is not a client any more.)
func agentActive(a *store.Agent, at time.Time) bool {
	return a.RevokedAt.IsZero() && (a.ExpiresAt.IsZero() || at.Before(a.ExpiresAt))
}

// publicClient identifies a public client by client_id alone: a
// registered public client, or a client ID metadata document URL.
func (s *Server) publicClient(ctx context.Context, id string) (*caller, error) {
	bad := errInvalidClient("unknown client")
	if strings.HasPrefix(id, "https://") || strings.HasPrefix(id, "http://") {
		c, err := s.metadataClient(ctx, id)
		if err != nil {
			var ce cimdError
			if !errors.As(err, &ce) {
				return nil, err
			}
			return nil, errInvalidClient("client metadata document: " + ce.Error())
		}
		return &caller{ID: id, Client: c, Public: true}, nil
	}
	if !strings.HasPrefix(id, token.PrefixClient) {
		return nil, bad
	}
	c, err := s.store.GetClient(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, bad
	}
	if err != nil {
		return nil, err
	}
	if c.Kind != store.ClientPublic || !c.RevokedAt.IsZero() {
		return nil, errInvalidClient("client authentication required")
	}
	return &caller{ID: c.ID, Client: c, Public: true}, nil
}

// assertionClaims are the RFC 7523 §3 claims of a client assertion (and of
// an actor_token, which has the same shape).
type assertionClaims struct {
	Issuer    string          `json:"iss"`
	Subject   string          `json:"sub"`
	Audience  json.RawMessage `json:"aud"`
	Expiry    int64           `json:"exp"`
	NotBefore int64           `json:"nbf"`
	IssuedAt  int64           `json:"iat"`
	ID        string          `json:"jti"`
}

// checkAssertion authenticates an agent by a JWT it signed with its
// registered key (private_key_jwt).
func (s *Server) checkAssertion(ctx context.Context, formID, assertion string) (*caller, error) {
	a, err := s.verifyAgentAssertion(ctx, assertion)
	if err != nil {
		return nil, err
	}
	if formID != "" && formID != a.ID {
		return nil, errInvalidClient("client_id does not match the assertion")
	}
	return &caller{ID: a.ID, Agent: a}, nil
}

// verifyAgentAssertion checks a JWT an agent signed with its registered
// key: the compact serialization (RFC 7519 §1), a JOSE header whose alg
// is one the key is registered for (RFC 8725 §3.1) and without crit;
// RFC 7523 §3 (iss = sub = the agent, aud = this issuer or its token
// endpoint, exp within maxAssertionLifetime, a jti never seen before).
func (s *Server) verifyAgentAssertion(ctx context.Context, assertion string) (*store.Agent, error) {
	bad := errInvalidClient("client assertion rejected")
	if assertion == "" || len(assertion) > token.MaxTokenSize {
		return nil, bad
	}
	headerAlg, err := assertionAlg(assertion)
	if err != nil {
		return nil, bad
	}
	msg, err := jws.Parse([]byte(assertion))
	if err != nil || len(msg.Signatures()) != 1 {
		return nil, bad
	}
	var c assertionClaims
	if err := json.Unmarshal(msg.Payload(), &c); err != nil {
		return nil, bad
	}
	if c.Issuer == "" || c.Issuer != c.Subject || !strings.HasPrefix(c.Subject, token.PrefixAgent) {
		return nil, bad
	}
	a, err := s.store.GetAgent(ctx, c.Subject)
	if errors.Is(err, store.ErrNotFound) {
		return nil, bad
	}
	if err != nil {
		return nil, err
	}
	if a.PublicKey == nil {
		return nil, bad
	}
	key, alg, err := parseAgentKey(a.PublicKey)
	if err != nil {
		return nil, bad
	}
	// RFC 8725 §3.1: the header must name an algorithm the key is for, so
	// an assertion never means one thing to us and another to a verifier
	// that believes its header ("none", an HMAC keyed with the public key).
	if !slices.Contains(keyAlgs[alg], headerAlg) {
		return nil, bad
	}
	// The signature first, with the registered key and its algorithm only;
	// nothing about the assertion is trusted (or remembered) before.
	if _, err := jws.Verify([]byte(assertion), jws.WithKey(alg, key)); err != nil {
		return nil, bad
	}
	at := now()
	exp := time.Unix(c.Expiry, 0)
	if c.Expiry == 0 || !at.Before(exp.Add(token.Leeway)) || exp.Sub(at) > maxAssertionLifetime+token.Leeway {
		return nil, errInvalidClient("client assertion expired or too long-lived")
	}
	if c.NotBefore != 0 && at.Add(token.Leeway).Before(time.Unix(c.NotBefore, 0)) {
		return nil, bad
	}
	if !s.audienceIsMe(c.Audience) {
		return nil, errInvalidClient("client assertion aud must be this issuer")
	}
	if !agentActive(a, at) {
		return nil, errInvalidClient("the agent is revoked or expired")
	}
	if c.ID == "" {
		return nil, errInvalidClient("client assertion has no jti")
	}
	fresh, err := s.useAssertion(ctx, a.ID+" "+c.ID, exp.Add(token.Leeway))
	if err != nil {
		return nil, err
	}
	if !fresh {
		return nil, errInvalidClient("client assertion replayed")
	}
	return a, nil
}

// audienceIsMe accepts the issuer identifier or the token endpoint URL
// (RFC 7523 §3 item 3), as a string or in an array.
func (s *Server) audienceIsMe(raw json.RawMessage) bool {
	var list []string
	var one string
	if json.Unmarshal(raw, &one) == nil {
		list = []string{one}
	} else if json.Unmarshal(raw, &list) != nil {
		return false
	}
	return slices.Contains(list, s.cfg.Issuer) || slices.Contains(list, s.endpoint(pathToken))
}

// keyAlgs are the JOSE header alg values accepted for an agent key,
// by the algorithm it verifies with: an Ed25519 key also takes RFC 9864's
// fully-specified "Ed25519"; a P-256 key only ES256. assertionAlgs lists
// them all, for the RFC 8414 metadata.
var (
	keyAlgs = map[jwa.SignatureAlgorithm][]string{
		jwa.EdDSA: {"EdDSA", "Ed25519"},
		jwa.ES256: {"ES256"},
	}
	assertionAlgs = []string{"EdDSA", "Ed25519", "ES256"}
)

// assertionAlg reads the alg of a compact JWS's protected header, with the
// strict JSON reader (internal/strictjson says why not encoding/json): a
// repeated or case-variant alg, an alg that is not a
// string, or a crit or b64 member (RFC 7515 §4.1.11, RFC 7797: extensions
// we do not implement) is an error.
func assertionAlg(compact string) (string, error) {
	parts := strings.Split(compact, ".")
	if len(parts) != 3 {
		return "", errors.New("not a compact JWS")
	}
	data, err := base64.RawURLEncoding.Strict().DecodeString(parts[0])
	if err != nil {
		return "", err
	}
	alg, seen := "", false
	r := strictjson.NewReader(data)
	err = r.Object(func(key []byte) error {
		switch k := string(key); {
		case k == "alg" && !seen:
			seen = true
			var err error
			alg, err = r.String()
			return err
		case strings.EqualFold(k, "alg"), strings.EqualFold(k, "crit"), strings.EqualFold(k, "b64"):
			return fmt.Errorf("header member %q refused", k)
		}
		return r.Skip()
	})
	if err == nil && !r.End() {
		err = strictjson.ErrSyntax
	}
	if err != nil {
		return "", err
	}
	if alg == "" {
		return "", errors.New("no alg")
	}
	return alg, nil
}

// parseAgentKey reads an agent's registered public JWK: Ed25519 (EdDSA) or
// P-256 (ES256), public only.
func parseAgentKey(data []byte) (jwk.Key, jwa.SignatureAlgorithm, error) {
	key, err := jwk.ParseKey(data)
	if err != nil {
		return nil, "", err
	}
	if private, err := jwk.IsPrivateKey(key); err != nil || private {
		return nil, "", errors.New("the key must be a public Ed25519 (OKP) or P-256 (EC) JWK")
	}
	switch k := key.(type) {
	case jwk.OKPPublicKey:
		if k.Crv() == jwa.Ed25519 {
			return key, jwa.EdDSA, nil
		}
	case jwk.ECDSAPublicKey:
		if k.Crv() == jwa.P256 {
			return key, jwa.ES256, nil
		}
	}
	return nil, "", errors.New("the key must be a public Ed25519 (OKP) or P-256 (EC) JWK")
}

// ReplayStore remembers assertion ids across issuer processes (Redis in
// a cluster): Use records key until exp and reports whether it was new.
type ReplayStore interface {
	Use(ctx context.Context, key string, exp time.Time) (bool, error)
}

// useAssertion records an assertion id in this process and, when
// configured, in the shared replay store: a replay is refused on every
// issuer node. A shared store that cannot answer fails closed.
func (s *Server) useAssertion(ctx context.Context, key string, exp time.Time) (bool, error) {
	if !s.jtis.use(key, exp) {
		return false, nil
	}
	if s.cfg.Replay == nil {
		return true, nil
	}
	fresh, err := s.cfg.Replay.Use(ctx, key, exp)
	if err != nil {
		s.log.Error("issuer: replay store unavailable; refusing the assertion", "error", err)
		return false, &oauthError{http.StatusServiceUnavailable, "temporarily_unavailable", "try again later"}
	}
	return fresh, nil
}

// RedisReplay is a ReplayStore on Redis: SET NX with the assertion's
// expiry, keys kavach:jti:<sha256>.
type RedisReplay struct{ Client redis.UniversalClient }

// Use implements ReplayStore.
func (r RedisReplay) Use(ctx context.Context, key string, exp time.Time) (bool, error) {
	sum := sha256.Sum256([]byte(key))
	return r.Client.SetNX(ctx, "kavach:jti:"+hex.EncodeToString(sum[:]), 1, time.Until(exp)+time.Second).Result()
}

// replayCache remembers assertion ids until they expire.
type replayCache struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

func newReplayCache() *replayCache { return &replayCache{seen: map[string]time.Time{}} }

// use records id until exp and reports whether it was new.
func (c *replayCache) use(id string, exp time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if until, ok := c.seen[id]; ok && now().Before(until) {
		return false
	}
	c.seen[id] = exp
	return true
}

func (c *replayCache) sweep(at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, until := range c.seen {
		if !at.Before(until) {
			delete(c.seen, id)
		}
	}
}
