package token

import (
	"encoding/json"
	"fmt"

	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/kavachgate/kavach/policy"
)

// Mint signs claims as an at+jwt access token with k. The claims must satisfy
// every invariant Verify checks that does not depend on the clock, so a
// minted token is never one the gateway would reject for its shape.
//
// Header: {"alg":<k.Alg>,"kid":<k.KID>,"typ":"at+jwt"} as jwx encodes it.
func Mint(k *SigningKey, c *Claims) (string, error) {
	if err := c.validate(true); err != nil {
		return "", fmt.Errorf("mint: %w", err)
	}
	if _, err := policy.ParseScopes(c.Scope); err != nil {
		return "", fmt.Errorf("mint: scope: %w", err)
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("mint: %w", err)
	}
	hdr := jws.NewHeaders()
	if err := hdr.Set(jws.TypeKey, TypeAccessToken); err != nil {
		return "", err
	}
	if err := hdr.Set(jws.KeyIDKey, k.KID); err != nil {
		return "", err
	}
	signed, err := jws.Sign(payload, jws.WithKey(k.Alg, k.private, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		return "", fmt.Errorf("mint: %w", err)
	}
	if len(signed) > MaxTokenSize {
		return "", fmt.Errorf("mint: %w: %d bytes exceeds %d", ErrTooLarge, len(signed), MaxTokenSize)
	}
	return string(signed), nil
}
