package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/kavachgate/kavach/token"
)

// TestKeysAndTokens: keys generate writes a private key once (0600, never
// over an existing file), keys jwks publishes its public half, token mint
// signs a token that verifies against that set with the claims asked
// for, and token inspect shows them, saying on stderr that it did not
// verify.
func TestKeysAndTokens(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	key := filepath.Join(dir, "key.jwk")
	out, errOut, code := run(t, nil, "", "keys", "generate", "--out", key)
	if code != 0 || !strings.HasPrefix(out, "wrote "+key+" (kid ") {
		t.Fatalf("keys generate: %d %q %q", code, out, errOut)
	}
	if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	before, _ := os.ReadFile(key)
	if _, errOut, code := run(t, nil, "", "keys", "generate", "--out", key); code != 1 || !strings.Contains(errOut, "exists") {
		t.Errorf("keys generate over a key: %d %q", code, errOut)
	}
	if after, _ := os.ReadFile(key); string(after) != string(before) {
		t.Error("keys generate replaced a key")
	}
	jwks, _, code := run(t, nil, "", "keys", "jwks", "--in", key)
	if code != 0 || strings.Contains(jwks, `"d"`) {
		t.Fatalf("keys jwks: %d\n%s", code, jwks)
	}

	tok, _, code := run(t, nil, "", "token", "mint", "--key", key, "--iss", "https://issuer.example", "--aud", "https://api.example/mcp",
		"--sub", "usr_alice", "--agent", "agt_orch", "--agent", "agt_rev", "--scope", "mcp:review repo:read", "--ttl", "2m", "--constraint", "hosts=api.example")
	tok = strings.TrimSpace(tok)
	if code != 0 || strings.Count(tok, ".") != 2 {
		t.Fatalf("token mint: %d %q", code, tok)
	}
	set, err := jwk.Parse([]byte(jwks))
	if err != nil {
		t.Fatal(err)
	}
	ring, err := token.NewKeyRing(token.Issuer{ID: "https://issuer.example", Keys: set})
	if err != nil {
		t.Fatal(err)
	}
	got, err := token.NewVerifier(ring, token.VerifierOptions{}).Verify(tok)
	if err != nil {
		t.Fatalf("the minted token does not verify: %v", err)
	}
	if got.Subject != "usr_alice" || got.Actor.Subject != "agt_rev" || got.ClientID != "agt_rev" || len(got.Kavach.Chain) != 2 ||
		got.Kavach.Constraints == nil || got.Kavach.Constraints.Hosts[0] != "api.example" {
		t.Errorf("claims %+v", got)
	}

	out, errOut, code = run(t, nil, tok+"\n", "token", "inspect", "-")
	var in struct{ Claims map[string]any }
	if code != 0 || json.Unmarshal([]byte(out), &in) != nil || in.Claims["sub"] != "usr_alice" || !strings.HasPrefix(errOut, "NOT VERIFIED") {
		t.Errorf("token inspect: %d %q\n%s", code, errOut, out)
	}
	for _, args := range [][]string{
		{"token", "mint", "--key", key, "--iss", "i", "--aud", "a", "--sub", "usr_a"},                                                             // no agent
		{"token", "mint", "--key", key, "--iss", "i", "--aud", "a", "--sub", "usr_a", "--agent", "agt_a", "--chain", "dlg_a", "--chain", "dlg_b"}, // two grants for one agent
		{"token", "mint", "--key", key, "--iss", "i", "--aud", "a", "--sub", "usr_a", "--agent", "agt_a", "--constraint", "audit=optional"},
		{"token", "inspect", "not-a-token"},
		{"keys", "jwks"},
	} {
		if _, errOut, code := run(t, nil, "", args...); code != 1 || errOut == "" {
			t.Errorf("%q: %d %q", args, code, errOut)
		}
	}
}
