package idp

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/kavachgate/kavach/internal/strictjson"
	"github.com/kavachgate/kavach/policy"
)

// Identity Assertion JWT Authorization Grant
// (draft-ietf-oauth-identity-assertion-authz-grant), presented with the
// RFC 7523 §2.1 grant type.
const (
	GrantTypeJWTBearer = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	// JAGType is the typ header an ID-JAG must carry (RFC 8725 §3.11
	// explicit typing).
	JAGType = "oauth-id-jag+jwt"
)

// TrustedIssuer is an IdP whose ID-JAGs the issuer accepts (the
// Caddyfile's `trust_idjag <issuer> { jwks <url> }`).
type TrustedIssuer struct {
	// Issuer is the IdP's issuer identifier, compared exactly with iss.
	Issuer string `json:"issuer"`
	// JWKS is the URL of the IdP's JWK set.
	JWKS string `json:"jwks"`
	// Algorithms are the accepted JWS alg values. Default: RS256 ES256
	// EdDSA. "none" and HMAC algorithms are refused.
	Algorithms []string `json:"algorithms,omitempty"`
}

// signatureAlgs are the alg values a trusted IdP may be allowed:
// asymmetric signatures only (RFC 8725 §3.1, §3.2).
var signatureAlgs = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// Validate reports the first problem of the config.
func (t *TrustedIssuer) Validate() error {
	if u, err := url.Parse(t.Issuer); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Fragment != "" || u.RawQuery != "" {
		return fmt.Errorf("idp: trusted issuer %q must be an http(s) URL without query or fragment", t.Issuer)
	}
	if u, err := url.Parse(t.JWKS); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("idp: trusted issuer %s: jwks must be an http(s) URL", t.Issuer)
	}
	for _, a := range t.Algorithms {
		if !slices.Contains(signatureAlgs, a) {
			return fmt.Errorf("idp: trusted issuer %s: algorithm %q not allowed (use one of %s)", t.Issuer, a, strings.Join(signatureAlgs, " "))
		}
	}
	return nil
}

// JAGConfig configures a JAGValidator.
type JAGConfig struct {
	Trusted []TrustedIssuer
	// Replay remembers used jti values until the assertion expires; in a
	// cluster a shared one (issuer.RedisReplay). Default: this process's
	// memory.
	Replay ReplayStore
	// HTTPClient fetches the JWK sets. Default: a client with HTTPTimeout.
	HTTPClient *http.Client
	// MaxLifetime bounds exp − iat. Default: DefaultMaxJAGLifetime.
	MaxLifetime time.Duration
	// MinRefetch is the shortest interval between two fetches of one
	// JWK set. Default: DefaultJWKSMinRefetch.
	MinRefetch time.Duration
}

// JAGValidator checks ID-JAGs from trusted IdPs. Safe for concurrent use.
type JAGValidator struct {
	trusted     map[string]*trusted
	replay      ReplayStore
	maxLifetime time.Duration
}

type trusted struct {
	cfg  TrustedIssuer
	keys *remoteKeys
}

// NewJAGValidator checks cfg and returns a validator. It fetches nothing
// until the first assertion.
func NewJAGValidator(cfg JAGConfig) (*JAGValidator, error) {
	v := &JAGValidator{trusted: map[string]*trusted{}, replay: cfg.Replay, maxLifetime: cfg.MaxLifetime}
	if v.replay == nil {
		v.replay = NewMemoryReplay()
	}
	if v.maxLifetime <= 0 {
		v.maxLifetime = DefaultMaxJAGLifetime
	}
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: HTTPTimeout}
	}
	minRefetch := cfg.MinRefetch
	if minRefetch <= 0 {
		minRefetch = DefaultJWKSMinRefetch
	}
	for _, t := range cfg.Trusted {
		if err := t.Validate(); err != nil {
			return nil, err
		}
		if _, dup := v.trusted[t.Issuer]; dup {
			return nil, fmt.Errorf("idp: trusted issuer %s listed twice", t.Issuer)
		}
		if len(t.Algorithms) == 0 {
			t.Algorithms = DefaultJAGAlgorithms
		}
		t.Algorithms = slices.Clone(t.Algorithms)
		v.trusted[t.Issuer] = &trusted{cfg: t, keys: &remoteKeys{url: t.JWKS, client: client, minRefetch: minRefetch}}
	}
	return v, nil
}

// Expect is what the token endpoint knows about the request.
type Expect struct {
	// Audience is this issuer's identifier: aud must be exactly it.
	Audience string
	// ClientID is the client that authenticated at the token endpoint:
	// the client_id claim must be it.
	ClientID string
	// Now is the time to check against. Default: the current time.
	Now time.Time
}

// Grant is what a valid ID-JAG says.
type Grant struct {
	Issuer   string // iss: the trusted IdP
	Subject  string // sub: the user at that IdP; link to (Issuer, Subject)
	ClientID string // client_id: the client it was issued to
	// Resource is the resource claim (RFC 8707 indicator), "" when absent.
	Resource string
	// Scope is the scope claim split into scopes, nil when absent.
	Scope    []string
	JTI      string
	IssuedAt time.Time
	Expiry   time.Time
	// Email is the email claim, informational only (never the link).
	Email string
}

// jagClaims are the ID-JAG claims read; others are ignored.
type jagClaims struct {
	Issuer    string          `json:"iss"`
	Subject   string          `json:"sub"`
	Audience  json.RawMessage `json:"aud"`
	ClientID  string          `json:"client_id"`
	ID        string          `json:"jti"`
	Expiry    json.Number     `json:"exp"`
	IssuedAt  json.Number     `json:"iat"`
	NotBefore json.Number     `json:"nbf"`
	Resource  json.RawMessage `json:"resource"`
	Scope     *string         `json:"scope"`
	Email     string          `json:"email"`
}

// Validate checks an ID-JAG, in this order (every refusal is an *Error
// with Code invalid_grant, RFC 7523 §3.1, and its own description):
//
//  1. size and compact JWS form (ErrMalformed);
//  2. the protected header, read strictly (no duplicate or case-variant
//     alg/typ/kid, no crit or b64): typ is oauth-id-jag+jwt (ErrWrongType);
//  3. iss (read before the signature only to choose the keys) is a
//     trusted IdP (ErrWrongIssuer);
//  4. alg is one the IdP is allowed (ErrBadSignature), and the signature
//     verifies with a key of its JWK set (kid, refetched when unknown)
//     (ErrBadSignature; a JWK set that cannot be fetched is
//     ErrIdPUnavailable) — nothing after this point trusts unsigned data;
//  5. aud is exactly expect.Audience, as a string or a one-element array
//     (ErrWrongAudience);
//  6. client_id is expect.ClientID (ErrWrongClient);
//  7. exp present and not passed, iat present and not in the future, nbf
//     (if any) passed, all with Leeway (ErrExpired); exp − iat at most
//     the max lifetime (ErrTooLongLived);
//  8. sub and jti present, resource and scope well-formed (ErrMalformed);
//  9. jti not used before for this iss (ErrReplayed); recorded until exp.
//
// typ: RFC 7515 §4.1.9 makes typ a media type, compared case-insensitively
// (RFC 2045 §5.1), where "application/" may be omitted; so
// "oauth-id-jag+jwt", "OAuth-ID-JAG+JWT" and "application/oauth-id-jag+jwt"
// are accepted and "JWT" or a missing typ is not.
func (v *JAGValidator) Validate(ctx context.Context, assertion string, expect Expect) (*Grant, error) {
	at := expect.Now
	if at.IsZero() {
		at = now()
	}
	if assertion == "" || len(assertion) > MaxAssertionLen || strings.Count(assertion, ".") != 2 {
		return nil, grantError(ErrMalformed, "assertion is not a JWT", "")
	}
	hdr, err := readJOSEHeader(assertion[:strings.IndexByte(assertion, '.')])
	if err != nil {
		return nil, grantError(ErrMalformed, "assertion is not a JWT", err.Error())
	}
	if !isJAGType(hdr.typ) {
		return nil, grantError(ErrWrongType, "assertion typ must be "+JAGType, "typ "+strconv.Quote(hdr.typ))
	}
	// 3. The unverified iss chooses the keys; nothing else is read yet.
	var unverified struct {
		Issuer string `json:"iss"`
	}
	payload, err := base64.RawURLEncoding.Strict().DecodeString(assertion[strings.IndexByte(assertion, '.')+1 : strings.LastIndexByte(assertion, '.')])
	if err != nil || json.Unmarshal(payload, &unverified) != nil {
		return nil, grantError(ErrMalformed, "assertion is not a JWT", "payload")
	}
	t, ok := v.trusted[unverified.Issuer]
	if !ok {
		return nil, grantError(ErrWrongIssuer, "assertion issuer is not trusted", "iss "+strconv.Quote(unverified.Issuer))
	}
	// 4. RFC 8725 §3.1: only the algorithms configured for this IdP.
	if !slices.Contains(t.cfg.Algorithms, hdr.alg) {
		return nil, grantError(ErrBadSignature, "assertion alg not allowed", "alg "+strconv.Quote(hdr.alg))
	}
	verified, err := v.verify(ctx, t, assertion, hdr)
	if err != nil {
		return nil, err
	}
	var c jagClaims
	dec := json.NewDecoder(bytes.NewReader(verified))
	dec.UseNumber()
	if err := dec.Decode(&c); err != nil {
		return nil, grantError(ErrMalformed, "assertion claims malformed", err.Error())
	}
	// The signed iss must be the one that chose the keys.
	if c.Issuer != t.cfg.Issuer {
		return nil, grantError(ErrWrongIssuer, "assertion issuer is not trusted", "signed iss differs")
	}
	// 5. draft-ietf-oauth-identity-assertion-authz-grant: aud is the
	// issuer identifier of the authorization server it is for; one
	// audience, so an assertion for several servers is not taken here.
	if !soleAudience(c.Audience, expect.Audience) {
		return nil, grantError(ErrWrongAudience, "assertion aud is not this issuer", "")
	}
	// 6. The client the IdP issued it to is the one presenting it.
	if c.ClientID == "" || c.ClientID != expect.ClientID {
		return nil, grantError(ErrWrongClient, "assertion client_id is not the authenticated client", "")
	}
	// 7. Time, with Leeway on every comparison (RFC 7519 §4.1.4–6).
	exp, okExp := numericDate(c.Expiry)
	iat, okIat := numericDate(c.IssuedAt)
	if !okExp || !okIat {
		return nil, grantError(ErrMalformed, "assertion exp and iat are required", "")
	}
	if !at.Before(exp.Add(Leeway)) {
		return nil, grantError(ErrExpired, "assertion expired", "")
	}
	if iat.After(at.Add(Leeway)) {
		return nil, grantError(ErrExpired, "assertion issued in the future", "")
	}
	if c.NotBefore != "" {
		nbf, ok := numericDate(c.NotBefore)
		if !ok {
			return nil, grantError(ErrMalformed, "assertion nbf malformed", "")
		}
		if nbf.After(at.Add(Leeway)) {
			return nil, grantError(ErrExpired, "assertion not yet valid", "")
		}
	}
	if exp.Sub(iat) > v.maxLifetime {
		return nil, grantError(ErrTooLongLived, "assertion lifetime too long", fmt.Sprintf("exp - iat = %s", exp.Sub(iat)))
	}
	// 8. The rest of the content.
	if c.Subject == "" {
		return nil, grantError(ErrMalformed, "assertion has no sub", "")
	}
	if c.ID == "" || len(c.ID) > 256 {
		return nil, grantError(ErrMalformed, "assertion has no jti", "")
	}
	g := &Grant{Issuer: c.Issuer, Subject: c.Subject, ClientID: c.ClientID, JTI: c.ID, IssuedAt: iat, Expiry: exp, Email: c.Email}
	if g.Resource, ok = oneResource(c.Resource); !ok {
		return nil, grantError(ErrMalformed, "assertion resource malformed", "")
	}
	if c.Scope != nil {
		if g.Scope, err = policy.ParseScopes(*c.Scope); err != nil {
			return nil, grantError(ErrMalformed, "assertion scope malformed", err.Error())
		}
	}
	// 9. Last, so that only assertions otherwise valid are remembered.
	fresh, err := v.replay.Use(ctx, "idjag "+c.Issuer+" "+c.ID, exp.Add(Leeway))
	if err != nil {
		e := grantError(ErrUnavailable, "try again later", "replay store")
		e.Err = err
		return nil, e
	}
	if !fresh {
		return nil, grantError(ErrReplayed, "assertion replayed", "jti "+strconv.Quote(c.ID))
	}
	return g, nil
}

// verify checks the signature with the IdP's key named by kid, or with
// each of its keys when the header has no kid, and returns the payload.
func (v *JAGValidator) verify(ctx context.Context, t *trusted, assertion string, hdr joseHeader) ([]byte, error) {
	keys, err := t.keys.lookup(ctx, hdr.kid)
	if err != nil {
		e := grantError(ErrIdPUnavailable, "the assertion issuer's keys cannot be fetched", t.cfg.JWKS)
		e.Err = err
		return nil, e
	}
	alg := jwa.SignatureAlgorithm(hdr.alg)
	for _, key := range keys {
		// A key that names its algorithm is used only with it.
		if ka := key.Algorithm().String(); ka != "" && ka != hdr.alg {
			continue
		}
		if payload, err := jws.Verify([]byte(assertion), jws.WithKey(alg, key)); err == nil {
			return payload, nil
		}
	}
	if len(keys) == 0 {
		return nil, grantError(ErrBadSignature, "assertion signature invalid", "no key with kid "+strconv.Quote(hdr.kid))
	}
	return nil, grantError(ErrBadSignature, "assertion signature invalid", "")
}

// joseHeader is the part of a protected header that is read.
type joseHeader struct{ alg, typ, kid string }

// readJOSEHeader reads a compact JWS's protected header with the strict
// JSON reader: alg required; alg, typ, kid strings at most once, and no
// case variant of them; crit and b64 refused (RFC 7515 §4.1.11, RFC 7797):
// a header that makes a JWS extension critical asks for processing this
// reader does not do, so the assertion is refused rather than misread.
func readJOSEHeader(b64 string) (joseHeader, error) {
	var h joseHeader
	data, err := base64.RawURLEncoding.Strict().DecodeString(b64)
	if err != nil {
		return h, err
	}
	seen := map[string]bool{}
	r := strictjson.NewReader(data)
	err = r.Object(func(key []byte) error {
		k := string(key)
		for _, name := range []string{"alg", "typ", "kid", "crit", "b64"} {
			if !strings.EqualFold(k, name) {
				continue
			}
			if k != name || seen[name] || name == "crit" || name == "b64" {
				return fmt.Errorf("header member %q refused", k)
			}
			seen[name] = true
			s, err := r.String()
			switch name {
			case "alg":
				h.alg = s
			case "typ":
				h.typ = s
			case "kid":
				h.kid = s
			}
			return err
		}
		return r.Skip()
	})
	if err == nil && !r.End() {
		err = strictjson.ErrSyntax
	}
	if err == nil && h.alg == "" {
		err = fmt.Errorf("no alg")
	}
	return h, err
}

// isJAGType compares a typ with JAGType as media types (RFC 7515 §4.1.9).
func isJAGType(typ string) bool {
	typ = strings.ToLower(typ)
	return typ == JAGType || typ == "application/"+JAGType
}

// soleAudience: aud is want, or [want].
func soleAudience(raw json.RawMessage, want string) bool {
	if want == "" {
		return false
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return one == want
	}
	var list []string
	return json.Unmarshal(raw, &list) == nil && len(list) == 1 && list[0] == want
}

// oneResource reads the resource claim: absent, a valid resource
// indicator, or a one-element array of one. Several resources are refused:
// a Kavach token is for one resource.
func oneResource(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", true
	}
	var one string
	if json.Unmarshal(raw, &one) != nil {
		var list []string
		if json.Unmarshal(raw, &list) != nil || len(list) != 1 {
			return "", false
		}
		one = list[0]
	}
	return one, ValidResource(one)
}

// numericDate reads an RFC 7519 §2 NumericDate (seconds, possibly
// fractional), truncated to the second.
func numericDate(n json.Number) (time.Time, bool) {
	if n == "" {
		return time.Time{}, false
	}
	f, err := n.Float64()
	if err != nil || f <= 0 || f > math.MaxInt32*4 || math.IsNaN(f) {
		return time.Time{}, false
	}
	return time.Unix(int64(f), 0), true
}
