package token

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
)

const testIssuer = "https://issuer.test"

// testNow is the fixed clock of every test: tokens are minted at it and
// verified at it unless a test moves it.
var testNow = time.Unix(1_800_000_000, 0)

// testKey is deterministic so golden files are stable.
func testKey(t testing.TB) *SigningKey {
	t.Helper()
	k, err := NewSigningKey(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize)))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func otherKey(t testing.TB) *SigningKey {
	t.Helper()
	k, err := NewSigningKey(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, ed25519.SeedSize)))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func testClaims() *Claims {
	return &Claims{
		Issuer:   testIssuer,
		Subject:  "usr_alice",
		Actor:    ActorFor([]string{"agt_89", "agt_123"}),
		ClientID: "agt_123",
		Audience: Audience{"https://mcp.example/mcp"},
		Scope:    "mcp:review pullrequest:read",
		ID:       "tok_test1",
		IssuedAt: testNow.Unix(),
		Expiry:   testNow.Add(5 * time.Minute).Unix(),
		Kavach: &Kavach{
			Version: 1,
			Chain:   []string{"dlg_a1", "dlg_b2"},
			Agents:  []string{"agt_89", "agt_123"},
		},
	}
}

func ringFor(t testing.TB, issuers ...Issuer) *KeyRing {
	t.Helper()
	r, err := NewKeyRing(issuers...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func publicSet(t testing.TB, keys ...*SigningKey) jwk.Set {
	t.Helper()
	s, err := PublicSet(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func testVerifier(t testing.TB) *Verifier {
	t.Helper()
	ring := ringFor(t, Issuer{ID: testIssuer, Keys: publicSet(t, testKey(t))})
	return NewVerifier(ring, VerifierOptions{Now: func() time.Time { return testNow }})
}

func mint(t testing.TB, k *SigningKey, c *Claims) string {
	t.Helper()
	s, err := Mint(k, c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// signRaw signs any payload with any protected header, bypassing Mint's
// checks, to build the tokens Verify must refuse.
func signRaw(t testing.TB, alg jwa.SignatureAlgorithm, key any, hdr map[string]any, payload any) string {
	t.Helper()
	var body []byte
	switch p := payload.(type) {
	case []byte:
		body = p
	default:
		var err error
		if body, err = json.Marshal(p); err != nil {
			t.Fatal(err)
		}
	}
	h := jws.NewHeaders()
	for k, v := range hdr {
		if err := h.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	out, err := jws.Sign(body, jws.WithKey(alg, key, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func b64(v any) string {
	var b []byte
	switch x := v.(type) {
	case string:
		b = []byte(x)
	case []byte:
		b = x
	default:
		b, _ = json.Marshal(x)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// claimsMap is the test claims as a generic map, for edits Go's types forbid.
func claimsMap(t testing.TB, edit func(m map[string]any)) map[string]any {
	t.Helper()
	b, err := json.Marshal(testClaims())
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(m)
	}
	return m
}
