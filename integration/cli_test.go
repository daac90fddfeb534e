package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/kavachgate/kavach/token"
)

func TestBinaryIsCaddyWithKavachCommands(t *testing.T) {
	t.Parallel()
	if v := kavach(t, "", "version"); !strings.HasPrefix(v, "v2.11.") {
		t.Errorf("version = %q, want Caddy v2.11.x", v)
	}
	help := kavach(t, "", "help")
	for _, cmd := range []string{"run", "validate", "adapt", "list-modules", "keys", "token"} {
		if !slices.ContainsFunc(strings.Split(help, "\n"), func(l string) bool {
			f := strings.Fields(l)
			return len(f) > 0 && f[0] == cmd
		}) {
			t.Errorf("help does not list %q:\n%s", cmd, help)
		}
	}
	if !strings.Contains(help, "kavach") {
		t.Errorf("help does not name the binary kavach:\n%s", help)
	}
	if mods := kavach(t, "", "list-modules"); !strings.Contains(mods, "http.handlers.reverse_proxy") {
		t.Errorf("standard modules missing from list-modules")
	}
}

func TestKeysAndTokenCLI(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	kavach(t, dir, "keys", "generate", "--out", "key.jwk")
	st, err := os.Stat(filepath.Join(dir, "key.jwk"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", st.Mode().Perm())
	}
	if _, _, err := kavachRun(dir, "keys", "generate", "--out", "key.jwk"); err == nil {
		t.Error("keys generate overwrote an existing key file")
	}

	jwks := kavach(t, dir, "keys", "jwks", "--in", "key.jwk")
	if strings.Contains(jwks, `"d"`) {
		t.Fatalf("public JWK set contains private material:\n%s", jwks)
	}
	set, err := jwk.Parse([]byte(jwks))
	if err != nil || set.Len() != 1 {
		t.Fatalf("jwks output is not a one-key JWK set (%v):\n%s", err, jwks)
	}

	const iss, aud = "https://issuer.cli.test", "http://127.0.0.1:8080/mcp"
	out := kavach(t, dir, "token", "mint", "--key", "key.jwk", "--iss", iss, "--aud", aud,
		"--sub", "usr_alice", "--agent", "agt_89", "--agent", "agt_123",
		"--scope", "mcp:review repository:read", "--ttl", "2m",
		"--constraint", "hosts=127.0.0.1,*.corp.example", "--constraint", "max_body=5242880",
		"--constraint", "cidrs=10.0.0.0/8", "--constraint", "audit=required")
	if strings.Count(out, "\n") != 1 || strings.Count(out, ".") != 2 {
		t.Fatalf("token mint must print the token alone on one line, got %q", out)
	}
	ring, err := token.NewKeyRing(token.Issuer{ID: iss, Keys: set})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := token.NewVerifier(ring, token.VerifierOptions{}).Verify(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("minted token does not verify: %v", err)
	}
	if tok.Subject != "usr_alice" || tok.CurrentActor() != "agt_123" || tok.ClientID != "agt_123" {
		t.Errorf("sub %q actor %q client %q", tok.Subject, tok.CurrentActor(), tok.ClientID)
	}
	if got := tok.Kavach.Chain; len(got) != 2 || !strings.HasPrefix(got[0], "dlg_") || got[0] == got[1] {
		t.Errorf("chain = %q, want two distinct dlg_ ids", got)
	}
	if c := tok.Constraints(); c == nil || c.MaxBody != 5242880 || !c.AuditRequired() || len(c.Hosts) != 2 || len(c.CIDRs) != 1 {
		t.Errorf("constraints = %+v", c)
	}
	if got := tok.ExpiresAt().Sub(tok.IssuedAtTime()); got.Minutes() != 2 {
		t.Errorf("lifetime %v, want 2m", got)
	}

	insp := kavach(t, dir, "token", "inspect", strings.TrimSpace(out))
	var in struct {
		Claims   map[string]any `json:"claims"`
		Verified bool           `json:"verified"`
	}
	if err := json.Unmarshal([]byte(insp), &in); err != nil || in.Claims["sub"] != "usr_alice" || in.Verified {
		t.Errorf("inspect output (%v): %s", err, insp)
	}
	_, stderr, _ := kavachRun(dir, "token", "inspect", strings.TrimSpace(out))
	if !strings.Contains(stderr, "NOT VERIFIED") {
		t.Errorf("inspect does not warn that it did not verify: %q", stderr)
	}
}

func TestTokenMintRefusesBadInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	kavach(t, dir, "keys", "generate", "--out", "key.jwk")
	base := []string{"token", "mint", "--key", "key.jwk", "--iss", "https://i.test", "--aud", "https://r.test", "--sub", "usr_a", "--agent", "agt_a", "--scope", "a:b"}
	cases := map[string]struct {
		extra []string
		say   string
	}{
		"chain_count_mismatch": {[]string{"--agent", "agt_b", "--chain", "dlg_1"}, "--chain"},
		"unknown_constraint":   {[]string{"--constraint", "color=red"}, "color"},
		"empty_constraint":     {[]string{"--constraint", "hosts="}, "hosts"},
		"zero_max_body":        {[]string{"--constraint", "max_body=0"}, "max_body"},
		"non_canonical_cidr":   {[]string{"--constraint", "cidrs=10.0.0.1/8"}, "10.0.0.1/8"},
		"wildcard_in_scope":    {[]string{"--scope", "a:b*"}, "scope"},
		"negative_ttl":         {[]string{"--ttl", "-1m"}, "ttl"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			out, stderr, err := kavachRun(dir, append(slices.Clone(base), tc.extra...)...)
			if err == nil {
				t.Fatalf("minted: %q", out)
			}
			if out != "" {
				t.Errorf("printed to stdout on failure: %q", out)
			}
			if !strings.Contains(stderr, tc.say) {
				t.Errorf("error does not mention %q: %s", tc.say, stderr)
			}
		})
	}
}
