package idp

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"golang.org/x/oauth2"
)

// Pending is what the issuer keeps between sending a browser to an IdP and
// the IdP's callback: the OAuth state, the OpenID nonce, the PKCE verifier
// (RFC 7636 §4.1), and what ties them to the issuer's pending authorize
// request and to this browser. It is sealed into a cookie (Sealer), never
// stored server-side, and is used once.
//
// Encoding (inside the AEAD): JSON with the short field names below, in
// field order. To change it, add fields with new names and keep reading
// the old ones until every record sealed before the change has expired
// (DefaultPendingLifetime); a change of meaning bumps sealVersion instead.
type Pending struct {
	// Provider is the config name of the IdP ("corpsso").
	Provider string `json:"p"`
	// State is the OAuth state sent to the IdP (RFC 6749 §10.12).
	State string `json:"s"`
	// Nonce is the OpenID nonce the ID token must carry (OIDC Core §3.1.2.1).
	Nonce string `json:"n"`
	// Verifier is the PKCE code verifier; its S256 challenge goes to the IdP.
	Verifier string `json:"v"`
	// Request is the issuer's pending authorize request id this sign-in
	// resumes.
	Request string `json:"r"`
	// Binding ties the record to one browser: an opaque value the issuer
	// derives from a cookie only that browser holds (a digest of its login
	// cookie), checked again at the callback. Empty binds nothing.
	Binding string `json:"b,omitempty"`
	// Prompt is the prompt value sent to the IdP ("login" forces
	// re-authentication), empty when none.
	Prompt string `json:"pr,omitempty"`
	// MaxAge is the max_age sent to the IdP in seconds (OIDC Core
	// §3.1.2.1); 0: none sent. The ID token's auth_time must then be
	// recent enough.
	MaxAge int64 `json:"ma,omitempty"`
	// Expires is when the record stops being accepted (Unix seconds).
	Expires int64 `json:"e"`
}

// NewPending returns a record with a fresh state, nonce and PKCE verifier
// (each 256 random bits) that expires after lifetime
// (DefaultPendingLifetime when 0).
func NewPending(provider, request, binding string, lifetime time.Duration) (*Pending, error) {
	if lifetime <= 0 {
		lifetime = DefaultPendingLifetime
	}
	state, err := randomString()
	if err != nil {
		return nil, err
	}
	nonce, err := randomString()
	if err != nil {
		return nil, err
	}
	return &Pending{
		Provider: provider,
		State:    state,
		Nonce:    nonce,
		Verifier: oauth2.GenerateVerifier(), // RFC 7636 §4.1: 43 characters from 32 random bytes
		Request:  request,
		Binding:  binding,
		Expires:  now().Add(lifetime).Unix(),
	}, nil
}

func randomString() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// Sealed form: base64url(sealVersion ‖ 12-byte GCM nonce ‖ ciphertext),
// with sealAAD as associated data so a value sealed for another purpose
// under the same key never opens here.
const (
	sealVersion = 1
	sealAAD     = "kavach idp pending v1"
)

// Sealer seals Pending records with AES-256-GCM and opens each at most
// once. Every issuer node that may receive the callback needs the same key
// and a shared ReplayStore.
type Sealer struct {
	aead   cipher.AEAD
	replay ReplayStore
}

// NewSealer returns a Sealer with a 32-byte key. The issuer derives the
// key from its own secret material (a dedicated key, or HKDF of one, never
// a signing key). replay makes each record single use (issuer.RedisReplay
// in a cluster); nil keeps used states in this process's memory.
func NewSealer(key []byte, replay ReplayStore) (*Sealer, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("idp: the pending-record key must be 32 bytes, not %d", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	if replay == nil {
		replay = NewMemoryReplay()
	}
	return &Sealer{aead: aead, replay: replay}, nil
}

// Seal encrypts and authenticates p into a cookie-safe string.
func (s *Sealer) Seal(p *Pending) (string, error) {
	plain, err := json.Marshal(p)
	if err != nil {
		return "", err
	}
	out := make([]byte, 1+s.aead.NonceSize(), 1+s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	out[0] = sealVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return "", err
	}
	out = s.aead.Seal(out, out[1:], plain, []byte(sealAAD))
	sealed := base64.RawURLEncoding.EncodeToString(out)
	if len(sealed) > MaxSealedLen {
		return "", errors.New("idp: pending record too large")
	}
	return sealed, nil
}

// Open checks a sealed record against the callback and consumes it. Check
// order: it decrypts under this key (else ErrPendingInvalid), has not
// expired (ErrPendingInvalid), its state equals the callback's state and
// its binding the browser's (ErrStateMismatch, constant time), and it was
// not used before (ErrPendingInvalid). A mismatch does not consume it.
func (s *Sealer) Open(ctx context.Context, sealed, state, binding string) (*Pending, error) {
	bad := func(detail string) (*Pending, error) {
		return nil, signInError(ErrPendingInvalid, "the sign-in expired or was already used; start again", detail, nil)
	}
	if sealed == "" {
		return bad("no pending sign-in record")
	}
	if len(sealed) > MaxSealedLen {
		return bad("pending record too large")
	}
	raw, err := base64.RawURLEncoding.DecodeString(sealed)
	ns := s.aead.NonceSize()
	if err != nil || len(raw) < 1+ns+s.aead.Overhead() || raw[0] != sealVersion {
		return bad("pending record malformed")
	}
	plain, err := s.aead.Open(nil, raw[1:1+ns], raw[1+ns:], []byte(sealAAD))
	if err != nil {
		return bad("pending record does not open under this key")
	}
	var p Pending
	if err := json.Unmarshal(plain, &p); err != nil {
		return bad("pending record undecodable")
	}
	at := now()
	if !at.Before(time.Unix(p.Expires, 0)) {
		return bad("pending record expired")
	}
	if p.State == "" || !equal(p.State, state) {
		return nil, signInError(ErrStateMismatch, "the sign-in response does not match this browser's request", "state mismatch", nil)
	}
	if !equal(p.Binding, binding) {
		return nil, signInError(ErrStateMismatch, "the sign-in response does not match this browser's request", "browser binding mismatch", nil)
	}
	fresh, err := s.replay.Use(ctx, "idp-state "+p.State, time.Unix(p.Expires, 0).Add(Leeway))
	if err != nil {
		return nil, signInError(ErrUnavailable, "sign-in is temporarily unavailable", "replay store", err)
	}
	if !fresh {
		return bad("pending record already used")
	}
	return &p, nil
}

// equal compares two strings in constant time (for equal lengths), by
// digests so that lengths leak nothing either.
func equal(a, b string) bool {
	da, db := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(da[:], db[:]) == 1
}
