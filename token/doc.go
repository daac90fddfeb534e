// Package token is the Kavach access-token format: at+jwt JWTs (RFC 9068)
// signed with Ed25519 (or ES256), carrying the delegation chain in "act"
// (RFC 8693) and "kvc", minted by the issuer and verified by the gateway.
//
// The format, claim by claim, is DESIGN.md §2; every bound is in limits.go;
// the check order is documented on Verifier.Verify. JWS handling is jwx's
// (no hand-written signature parsing); claims decode into Claims.
//
//	key, _ := token.GenerateSigningKey(jwa.EdDSA)
//	jwks, _ := token.PublicSet(key)
//	ring, _ := token.NewKeyRing(token.Issuer{ID: "https://issuer.example", Keys: jwks})
//	v := token.NewVerifier(ring, token.VerifierOptions{})
//	t, err := v.Verify(raw) // err is a *VerifyError; errors.Is(err, token.ErrExpired) …
package token
