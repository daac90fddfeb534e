package token

import (
	"crypto/ed25519"
	"encoding/base64"
	"strings"
	"testing"
)

// BenchmarkVerify is the uncached decision's token work: every check of
// Verify, claims decoded into Claims. Its budget (DESIGN.md §9) is 1.35× the
// raw signature check below on the same token.
func BenchmarkVerify(b *testing.B) {
	v := testVerifier(b)
	tok := mint(b, testKey(b), goldenClaims())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEd25519Verify is the floor: ed25519.Verify of the same signature
// over the same signing input.
func BenchmarkEd25519Verify(b *testing.B) {
	k := testKey(b)
	tok := mint(b, k, goldenClaims())
	dot := strings.LastIndexByte(tok, '.')
	input := []byte(tok[:dot])
	sig, err := base64.RawURLEncoding.DecodeString(tok[dot+1:])
	if err != nil {
		b.Fatal(err)
	}
	pub := k.private.Public().(ed25519.PublicKey)
	b.ReportAllocs()
	for b.Loop() {
		if !ed25519.Verify(pub, input, sig) {
			b.Fatal("signature does not verify")
		}
	}
}
