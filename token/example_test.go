package token_test

import (
	"fmt"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"

	"github.com/kavachgate/kavach/token"
)

// A parent agent agt_89 delegated to agt_123; the token says so in act and
// kvc, and the verifier checks that they agree.
func Example() {
	key, _ := token.GenerateSigningKey(jwa.EdDSA)
	jwks, _ := token.PublicSet(key)
	ring, _ := token.NewKeyRing(token.Issuer{ID: "https://issuer.example", Keys: jwks})
	verifier := token.NewVerifier(ring, token.VerifierOptions{})

	agents := []string{"agt_89", "agt_123"}
	now := time.Now()
	signed, err := token.Mint(key, &token.Claims{
		Issuer:   "https://issuer.example",
		Subject:  "usr_alice",
		Actor:    token.ActorFor(agents),
		ClientID: "agt_123",
		Audience: token.Audience{"https://mcp.example/mcp"},
		Scope:    "mcp:review repository:read",
		ID:       token.NewID(token.PrefixToken),
		IssuedAt: now.Unix(),
		Expiry:   now.Add(token.DefaultTTL).Unix(),
		Kavach:   &token.Kavach{Version: 1, Chain: []string{"dlg_a1", "dlg_b2"}, Agents: agents},
	})
	if err != nil {
		panic(err)
	}

	t, err := verifier.Verify(signed)
	if err != nil {
		panic(err)
	}
	fmt.Println(t.CurrentActor(), "acting for", t.Subject, "via", t.Agents(), "may", t.Scopes)
	// Output: agt_123 acting for usr_alice via [agt_89 agt_123] may [mcp:review repository:read]
}
