package token

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/kavachgate/kavach/policy"
)

// now is the clock; tests replace it.
var now = time.Now

// Token is a verified access token.
type Token struct {
	Claims
	// KeyID and Algorithm are from the protected header, as verified.
	KeyID     string
	Algorithm jwa.SignatureAlgorithm
	// Scopes is the scope claim parsed. For external issuers it holds only
	// concrete scopes: their tokens never carry Kavach wildcards.
	Scopes []string
	// External is true for tokens of an external (non-Kavach) issuer: their
	// kvc claim has been dropped and they get scope and audience checks only.
	External bool
}

// VerifierOptions tune a Verifier. Zero values mean the defaults.
type VerifierOptions struct {
	// MaxLifetime is the longest exp − iat accepted. Default DefaultMaxLifetime.
	MaxLifetime time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Verifier checks access tokens against a KeyRing that can be swapped
// atomically while requests are being verified.
type Verifier struct {
	ring        atomic.Pointer[KeyRing]
	maxLifetime time.Duration
	now         func() time.Time
}

// NewVerifier returns a verifier trusting ring (which may be nil until keys
// are known: every token is then rejected as signed by an unknown key).
func NewVerifier(ring *KeyRing, opts VerifierOptions) *Verifier {
	v := &Verifier{maxLifetime: opts.MaxLifetime, now: opts.Now}
	if v.maxLifetime <= 0 {
		v.maxLifetime = DefaultMaxLifetime
	}
	if v.now == nil {
		v.now = func() time.Time { return now() }
	}
	v.ring.Store(ring)
	return v
}

// SetKeyRing replaces the trusted keys; verifications already running finish
// with the ring they started with.
func (v *Verifier) SetKeyRing(r *KeyRing) { v.ring.Store(r) }

// KeyRing returns the current trusted keys.
func (v *Verifier) KeyRing() *KeyRing { return v.ring.Load() }

// Verify checks a compact JWS access token and returns its claims. The checks
// run in this fixed order, each failing closed, cheapest first and nothing
// trusted before the signature holds:
//
//  1. size ≤ MaxTokenSize, before any parsing (ErrTooLarge);
//  2. shape: three canonical base64url segments, nothing before or after
//     (ErrMalformed);
//  3. protected header: alg on the allowlist, no crit or b64 (ErrAlgorithm,
//     ErrMalformed);
//  4. kid → a key of a trusted issuer, whose policy allows alg and whose key
//     type fits it (ErrUnknownKey, ErrAlgorithm);
//  5. signature, by jwx's jws verifier for alg (ErrSignature);
//  6. typ is the issuer's (at+jwt for Kavach issuers, RFC 9068 §4) (ErrType);
//  7. claims decode (ErrClaims); iss equals the key's issuer exactly (ErrIssuer);
//  8. exp, nbf, iat with Leeway (ErrExpired, ErrNotYetValid);
//  9. exp − iat ≤ the maximum lifetime (ErrLifetime);
//  10. required claims, scope syntax, and for Kavach issuers the kvc
//     invariants (v, chain/agents lengths ≤ MaxChainLen, unique ids,
//     constraints present-never-empty) and act naming exactly the agents,
//     act.sub = the last agent (ErrClaims);
//  11. no cnf claim (ErrConfirmation).
//
// Every error is a *VerifyError whose Reason is one of the Err… values.
func (v *Verifier) Verify(token string) (*Token, error) {
	if len(token) > MaxTokenSize {
		return nil, reject(ErrTooLarge, "")
	}
	dot1, dot2, ok := compactSplit(token)
	if !ok {
		return nil, reject(ErrMalformed, "not a compact JWS")
	}
	ring := v.ring.Load()
	if ring == nil {
		return nil, reject(ErrUnknownKey, "no trusted keys loaded")
	}
	raw := []byte(token)
	var hbuf [512]byte
	hdrJSON, err := b64decode(hbuf[:0], raw[:dot1])
	if err != nil {
		return nil, reject(ErrMalformed, "header is not base64url")
	}
	h, err := decodeHeader(hdrJSON)
	if err != nil {
		return nil, reject(ErrMalformed, "header: "+err.Error())
	}
	alg := jwa.SignatureAlgorithm(h.alg)
	if !slices.Contains(externalAlgorithms, alg) {
		return nil, reject(ErrAlgorithm, "alg "+quoteShort(h.alg))
	}
	// RFC 7515 §4.1.11: extensions we do not understand must be refused;
	// we understand none, and b64 (RFC 7797) would change the signing input.
	if h.crit || h.b64 {
		return nil, reject(ErrMalformed, "crit and b64 headers are not supported")
	}
	payload, err := b64decode(nil, raw[dot1+1:dot2])
	if err != nil {
		return nil, reject(ErrMalformed, "payload is not base64url")
	}
	key, verr := ring.selectKey(alg, h.kid, payload)
	if verr != nil {
		return nil, verr
	}
	sig, err := b64decode(nil, raw[dot2+1:])
	if err != nil {
		return nil, reject(ErrMalformed, "signature is not base64url")
	}
	if err := verifiers[alg].Verify(raw[:dot2], sig, key.raw); err != nil {
		return nil, reject(ErrSignature, "kid "+key.kid)
	}
	issuer := key.issuer
	if !typeAllowed(h.typ, issuer.types) {
		return nil, reject(ErrType, "typ "+quoteShort(h.typ))
	}

	t := &Token{KeyID: key.kid, Algorithm: alg, External: issuer.external}
	if err := decodeClaims(payload, &t.Claims); err != nil {
		return nil, reject(ErrClaims, err.Error())
	}
	if t.Issuer != issuer.id {
		return nil, reject(ErrIssuer, "iss "+quoteShort(t.Issuer)+" does not own kid "+key.kid)
	}
	if err := v.checkTimes(&t.Claims, issuer); err != nil {
		return nil, err
	}
	if issuer.external {
		// kvc is honoured only from Kavach issuers (DESIGN.md §2).
		t.Kavach = nil
	}
	if err := t.validate(!issuer.external); err != nil {
		if errors.Is(err, ErrConfirmation) {
			return nil, reject(ErrConfirmation, "")
		}
		return nil, reject(ErrClaims, err.Error())
	}
	if issuer.external {
		t.Scopes = concreteScopes(t.Scope)
	} else if t.Scopes, err = policy.ParseScopes(t.Scope); err != nil {
		return nil, reject(ErrClaims, "scope: "+err.Error())
	}
	return t, nil
}

// verifiers are jwx's signature verifiers, one per allowed algorithm; they
// hold no state, so one of each serves every token.
var verifiers = func() map[jwa.SignatureAlgorithm]jws.Verifier {
	m := map[jwa.SignatureAlgorithm]jws.Verifier{}
	for _, alg := range externalAlgorithms {
		v, err := jws.NewVerifier(alg)
		if err != nil {
			panic(err)
		}
		m[alg] = v
	}
	return m
}()

func b64decode(dst, src []byte) ([]byte, error) {
	return base64.RawURLEncoding.AppendDecode(dst, src)
}

func (v *Verifier) checkTimes(c *Claims, is *issuerPolicy) error {
	if c.Expiry <= 0 || c.IssuedAt <= 0 {
		return reject(ErrClaims, "exp and iat are required")
	}
	n := v.now().Unix()
	leeway := int64(Leeway / time.Second)
	if n >= c.Expiry+leeway {
		return reject(ErrExpired, "")
	}
	if c.NotBefore > n+leeway {
		return reject(ErrNotYetValid, "nbf in the future")
	}
	if c.IssuedAt > n+leeway {
		return reject(ErrNotYetValid, "iat in the future")
	}
	max := v.maxLifetime
	if is.maxLifetime > 0 {
		max = is.maxLifetime
	}
	if c.Expiry-c.IssuedAt > int64(max/time.Second) {
		return reject(ErrLifetime, "")
	}
	return nil
}

// selectKey picks the key for kid whose issuer allows alg. When several
// issuers publish the same kid it chooses by the (not yet trusted) iss of
// the payload; Verify checks iss again after the signature.
func (r *KeyRing) selectKey(alg jwa.SignatureAlgorithm, kid string, payload []byte) (*trustedKey, *VerifyError) {
	candidates := r.byKID[kid]
	if len(candidates) == 0 {
		return nil, reject(ErrUnknownKey, "kid "+quoteShort(kid))
	}
	var pick *trustedKey
	for _, k := range candidates {
		if !k.fits(alg) {
			continue
		}
		if pick != nil {
			pick = byIssuer(candidates, alg, payload)
			break
		}
		pick = k
	}
	if pick == nil {
		return nil, reject(ErrAlgorithm, "alg "+quoteShort(string(alg))+" not allowed for kid "+quoteShort(kid))
	}
	return pick, nil
}

func byIssuer(candidates []*trustedKey, alg jwa.SignatureAlgorithm, payload []byte) *trustedKey {
	var peek Claims
	if decodeClaims(payload, &peek) != nil {
		return nil
	}
	for _, k := range candidates {
		if k.fits(alg) && k.issuer.id == peek.Issuer {
			return k
		}
	}
	return nil
}

// typeAllowed compares typ per RFC 9068 §4 and RFC 7515 §4.1.9: the
// "application/" prefix may be omitted and media types are case-insensitive.
func typeAllowed(typ string, allowed []string) bool {
	if len(typ) > len("application/") && strings.EqualFold(typ[:len("application/")], "application/") {
		typ = typ[len("application/"):]
	}
	for _, a := range allowed {
		if strings.EqualFold(typ, a) {
			return true
		}
	}
	return false
}

// compactSplit accepts exactly header.payload.signature, each a non-empty,
// canonical base64url string without padding. It rejects the JSON
// serialization, trailing data and whitespace before jwx sees the token, and,
// because jwx decodes leniently and verifies over a re-encoding, it also
// rejects non-canonical trailing bits (RFC 4648 §3.5) so that no two
// different strings verify as the same token.
func compactSplit(t string) (dot1, dot2 int, ok bool) {
	dots, seg := 0, 0
	for i := 0; i < len(t); i++ {
		c := t[i]
		if c == '.' {
			if dots == 2 || !canonicalTail(t[i-seg:i]) {
				return 0, 0, false
			}
			if dots == 0 {
				dot1 = i
			} else {
				dot2 = i
			}
			dots, seg = dots+1, 0
			continue
		}
		if b64Value(c) < 0 {
			return 0, 0, false
		}
		seg++
	}
	return dot1, dot2, dots == 2 && canonicalTail(t[len(t)-seg:])
}

// canonicalTail reports whether a raw base64url segment is non-empty, of a
// length that encodes whole bytes, and has zero unused bits in its last
// character.
func canonicalTail(seg string) bool {
	if seg == "" {
		return false
	}
	switch len(seg) % 4 {
	case 1:
		return false
	case 2: // one byte: the last character carries 2 bits
		return b64Value(seg[len(seg)-1])&0x0f == 0
	case 3: // two bytes: the last character carries 4 bits
		return b64Value(seg[len(seg)-1])&0x03 == 0
	}
	return true
}

func b64Value(c byte) int {
	switch {
	case c >= 'A' && c <= 'Z':
		return int(c - 'A')
	case c >= 'a' && c <= 'z':
		return int(c-'a') + 26
	case c >= '0' && c <= '9':
		return int(c-'0') + 52
	case c == '-':
		return 62
	case c == '_':
		return 63
	}
	return -1
}

// concreteScopes keeps the valid, wildcard-free scopes of an external token:
// a '*' from another issuer is a literal, never a Kavach wildcard.
func concreteScopes(s string) []string {
	var out []string
	for _, sc := range strings.Fields(s) {
		if policy.ValidRequiredScope(sc) == nil && !slices.Contains(out, sc) && len(out) < MaxScopes {
			out = append(out, sc)
		}
	}
	return out
}

// quoteShort quotes untrusted header or claim text for a log detail, cut to
// a bounded length.
func quoteShort(s string) string {
	const max = 64
	if len(s) > max {
		s = s[:max] + "…"
	}
	b, _ := json.Marshal(s)
	return string(b)
}
