package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// Algorithms a Kavach issuer may sign with (DESIGN.md §2). EdDSA (Ed25519) is
// the default; ES256 is accepted for interop. Never none, never HMAC.
var KavachAlgorithms = []jwa.SignatureAlgorithm{jwa.EdDSA, jwa.ES256}

// externalAlgorithms are those an external issuer may be configured with.
// Asymmetric only: an HMAC "key" would be a shared secret the gateway holds,
// and HS256 keyed with a public key is the classic confusion attack.
var externalAlgorithms = []jwa.SignatureAlgorithm{
	jwa.EdDSA, jwa.ES256, jwa.ES384, jwa.RS256, jwa.RS384, jwa.RS512, jwa.PS256, jwa.PS384, jwa.PS512,
}

// minRSABits is the smallest RSA modulus accepted from an external issuer.
const minRSABits = 2048

// SigningKey is a private key with its key id and algorithm.
//
// File form (kavach keys generate): one private JWK, JSON, with "kid" (the
// RFC 7638 SHA-256 thumbprint, base64url), "alg" and "use":"sig". Files are
// written 0600.
type SigningKey struct {
	KID     string
	Alg     jwa.SignatureAlgorithm
	private crypto.Signer // ed25519.PrivateKey or *ecdsa.PrivateKey (P-256)
}

// GenerateSigningKey makes a new key for alg (EdDSA or ES256).
func GenerateSigningKey(alg jwa.SignatureAlgorithm) (*SigningKey, error) {
	return generateSigningKey(alg, rand.Reader)
}

func generateSigningKey(alg jwa.SignatureAlgorithm, r io.Reader) (*SigningKey, error) {
	var priv crypto.Signer
	switch alg {
	case jwa.EdDSA:
		_, k, err := ed25519.GenerateKey(r)
		if err != nil {
			return nil, err
		}
		priv = k
	case jwa.ES256:
		k, err := ecdsa.GenerateKey(elliptic.P256(), r)
		if err != nil {
			return nil, err
		}
		priv = k
	default:
		return nil, fmt.Errorf("signing algorithm %q not supported (use EdDSA or ES256)", alg)
	}
	return NewSigningKey(priv)
}

// NewSigningKey wraps an Ed25519 or P-256 private key, deriving its kid.
func NewSigningKey(priv crypto.Signer) (*SigningKey, error) {
	k := &SigningKey{private: priv}
	switch p := priv.(type) {
	case ed25519.PrivateKey:
		k.Alg = jwa.EdDSA
	case *ecdsa.PrivateKey:
		if p.Curve != elliptic.P256() {
			return nil, errors.New("ECDSA signing keys must be P-256 (ES256)")
		}
		k.Alg = jwa.ES256
	default:
		return nil, fmt.Errorf("unsupported signing key type %T", priv)
	}
	pub, err := jwk.FromRaw(priv.Public())
	if err != nil {
		return nil, err
	}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, err
	}
	k.KID = base64.RawURLEncoding.EncodeToString(tp)
	return k, nil
}

// Public returns the public half as a JWK with kid, alg and use set.
func (k *SigningKey) Public() (jwk.Key, error) {
	pub, err := jwk.FromRaw(k.private.Public())
	if err != nil {
		return nil, err
	}
	if err := setKeyMeta(pub, k); err != nil {
		return nil, err
	}
	return pub, nil
}

// MarshalJSON encodes the private JWK (the key file's content).
func (k *SigningKey) MarshalJSON() ([]byte, error) {
	priv, err := jwk.FromRaw(k.private)
	if err != nil {
		return nil, err
	}
	if err := setKeyMeta(priv, k); err != nil {
		return nil, err
	}
	return json.Marshal(priv)
}

func setKeyMeta(key jwk.Key, k *SigningKey) error {
	for name, v := range map[string]any{jwk.KeyIDKey: k.KID, jwk.AlgorithmKey: k.Alg, jwk.KeyUsageKey: jwk.ForSignature} {
		if err := key.Set(name, v); err != nil {
			return err
		}
	}
	return nil
}

// ParseSigningKey reads a private JWK written by MarshalJSON. The kid is
// recomputed from the key, so an edited kid cannot make a key sign under
// another key's name.
func ParseSigningKey(data []byte) (*SigningKey, error) {
	key, err := jwk.ParseKey(data)
	if err != nil {
		return nil, fmt.Errorf("parse signing key: %w", err)
	}
	var raw any
	if err := key.Raw(&raw); err != nil {
		return nil, fmt.Errorf("parse signing key: %w", err)
	}
	signer, ok := raw.(crypto.Signer)
	if !ok {
		return nil, errors.New("parse signing key: the JWK is not a private key")
	}
	if p, ok := raw.(ed25519.PrivateKey); ok {
		signer = p
	}
	k, err := NewSigningKey(signer)
	if err != nil {
		return nil, err
	}
	if kid := key.KeyID(); kid != "" && kid != k.KID {
		return nil, fmt.Errorf("parse signing key: kid %q does not match the key's thumbprint", kid)
	}
	return k, nil
}

// PublicSet is the JWK set publishing the public halves of keys.
func PublicSet(keys ...*SigningKey) (jwk.Set, error) {
	set := jwk.NewSet()
	for _, k := range keys {
		pub, err := k.Public()
		if err != nil {
			return nil, err
		}
		if err := set.AddKey(pub); err != nil {
			return nil, err
		}
	}
	return set, nil
}

// Issuer is one trusted token issuer and its verification policy.
type Issuer struct {
	// ID is the iss value, compared exactly.
	ID string
	// External marks a non-Kavach issuer (Okta, Entra, Keycloak): its tokens
	// get scope and audience checks only and their kvc claim is ignored.
	External bool
	// Algorithms allowed for this issuer. Kavach issuers: a subset of
	// EdDSA and ES256, default both. External issuers must list theirs.
	Algorithms []jwa.SignatureAlgorithm
	// Types are the accepted JOSE typ values. Kavach issuers accept only
	// at+jwt (RFC 9068 §2.1); external issuers default to at+jwt.
	Types []string
	// MaxLifetime overrides the verifier's maximum exp − iat when non-zero.
	MaxLifetime time.Duration
	// Keys is the issuer's public JWK set.
	Keys jwk.Set
}

// trustedKey is one verification key, converted once to its raw form so the
// signature check does no JWK export per token.
type trustedKey struct {
	issuer *issuerPolicy
	kid    string
	alg    jwa.SignatureAlgorithm // the JWK's "alg", or "" when unset
	raw    any                    // ed25519.PublicKey, *ecdsa.PublicKey or *rsa.PublicKey
}

type issuerPolicy struct {
	id          string
	external    bool
	algs        []jwa.SignatureAlgorithm
	types       []string
	maxLifetime time.Duration
}

// KeyRing is an immutable snapshot of every trusted issuer's keys, indexed by
// kid. Build a new one when keys change and swap it into the Verifier.
type KeyRing struct {
	byKID   map[string][]*trustedKey
	issuers map[string]*issuerPolicy
}

// NewKeyRing checks every issuer's policy and keys and indexes them. A
// private key in a trusted set, a key without kid, an algorithm outside the
// allowlist, or an RSA key under 2048 bits is an error.
func NewKeyRing(issuers ...Issuer) (*KeyRing, error) {
	r := &KeyRing{byKID: map[string][]*trustedKey{}, issuers: map[string]*issuerPolicy{}}
	for _, is := range issuers {
		if is.ID == "" {
			return nil, errors.New("trusted issuer without an identifier")
		}
		if _, dup := r.issuers[is.ID]; dup {
			return nil, fmt.Errorf("issuer %q is configured twice", is.ID)
		}
		p, err := newIssuerPolicy(is)
		if err != nil {
			return nil, err
		}
		r.issuers[is.ID] = p
		if is.Keys == nil {
			continue
		}
		for i := 0; i < is.Keys.Len(); i++ {
			key, _ := is.Keys.Key(i)
			tk, err := newTrustedKey(p, key)
			if err != nil {
				return nil, fmt.Errorf("issuer %q key %d: %w", is.ID, i, err)
			}
			for _, other := range r.byKID[tk.kid] {
				if other.issuer == p {
					return nil, fmt.Errorf("issuer %q publishes kid %q twice", is.ID, tk.kid)
				}
			}
			r.byKID[tk.kid] = append(r.byKID[tk.kid], tk)
		}
	}
	return r, nil
}

func newIssuerPolicy(is Issuer) (*issuerPolicy, error) {
	p := &issuerPolicy{id: is.ID, external: is.External, algs: is.Algorithms, types: is.Types, maxLifetime: is.MaxLifetime}
	allowed := KavachAlgorithms
	if is.External {
		allowed = externalAlgorithms
		if len(p.algs) == 0 {
			return nil, fmt.Errorf("external issuer %q: list its signing algorithms", is.ID)
		}
	} else {
		if len(p.algs) == 0 {
			p.algs = KavachAlgorithms
		}
		if len(p.types) != 0 && !slices.Equal(p.types, []string{TypeAccessToken}) {
			return nil, fmt.Errorf("Kavach issuer %q: tokens are always typ %s", is.ID, TypeAccessToken)
		}
	}
	for _, a := range p.algs {
		if !slices.Contains(allowed, a) {
			return nil, fmt.Errorf("issuer %q: algorithm %q is not allowed", is.ID, a)
		}
	}
	if len(p.types) == 0 {
		p.types = []string{TypeAccessToken}
	}
	if p.maxLifetime < 0 {
		return nil, fmt.Errorf("issuer %q: negative max lifetime", is.ID)
	}
	return p, nil
}

func newTrustedKey(p *issuerPolicy, key jwk.Key) (*trustedKey, error) {
	if priv, err := jwk.IsPrivateKey(key); err == nil && priv {
		return nil, errors.New("is a private key: publish only public keys")
	}
	if key.KeyID() == "" {
		return nil, errors.New("has no kid")
	}
	if u := key.KeyUsage(); u != "" && u != string(jwk.ForSignature) {
		return nil, fmt.Errorf("use is %q, not sig", u)
	}
	tk := &trustedKey{issuer: p, kid: key.KeyID()}
	if a := key.Algorithm(); a != nil && a.String() != "" {
		tk.alg = jwa.SignatureAlgorithm(a.String())
		if !slices.Contains(p.algs, tk.alg) {
			return nil, fmt.Errorf("alg %q is not allowed for this issuer", tk.alg)
		}
	}
	var raw any
	if err := key.Raw(&raw); err != nil {
		return nil, err
	}
	switch k := raw.(type) {
	case ed25519.PublicKey:
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return nil, errors.New("unsupported elliptic curve")
		}
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("RSA key shorter than %d bits", minRSABits)
		}
	default:
		return nil, fmt.Errorf("unsupported key type %T", raw)
	}
	tk.raw = raw
	return tk, nil
}

// fits reports whether alg may be used with this key: allowed for the
// issuer, equal to the JWK's own alg when it names one, and of the key's type.
func (k *trustedKey) fits(alg jwa.SignatureAlgorithm) bool {
	if !slices.Contains(k.issuer.algs, alg) || (k.alg != "" && k.alg != alg) {
		return false
	}
	switch raw := k.raw.(type) {
	case ed25519.PublicKey:
		return alg == jwa.EdDSA
	case *ecdsa.PublicKey:
		return (alg == jwa.ES256 && raw.Curve == elliptic.P256()) || (alg == jwa.ES384 && raw.Curve == elliptic.P384())
	case *rsa.PublicKey:
		switch alg {
		case jwa.RS256, jwa.RS384, jwa.RS512, jwa.PS256, jwa.PS384, jwa.PS512:
			return true
		}
	}
	return false
}

// Issuers lists the configured issuer identifiers.
func (r *KeyRing) Issuers() []string {
	ids := make([]string, 0, len(r.issuers))
	for id := range r.issuers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}
