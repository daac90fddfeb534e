package token

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/kavachgate/kavach/policy"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// goldenClaims exercises every claim and constraint field.
func goldenClaims() *Claims {
	c := testClaims()
	c.NotBefore = c.IssuedAt
	c.Kavach.Constraints = &policy.Constraints{
		Hosts:   policy.StringList{"mcp.internal", "*.corp.example"},
		Methods: policy.StringList{"GET", "POST"},
		Paths:   policy.StringList{"/mcp", "/api/repos/*"},
		MaxBody: 5242880,
		Audit:   policy.AuditRequired,
		Args: policy.Args{
			"read_file": {"path": {Paths: policy.StringList{"/repo/*"}}},
			"fetch":     {"url": {Hosts: policy.StringList{"*.corp.example"}, URL: true, Schemes: policy.StringList{"https"}, Ports: policy.PortList{8443}}},
			"deploy":    {"env": {Enum: policy.StringList{"dev", "staging"}, MaxLen: 16}, "/opts/n": {Range: &policy.Range{Min: 0, Max: 100}, Optional: true}},
		},
	}
	if err := json.Unmarshal([]byte(`["10.0.0.0/8"]`), &c.Kavach.Constraints.CIDRs); err != nil {
		panic(err)
	}
	return c
}

// TestGolden pins the encoding: Ed25519 signatures are deterministic, so the
// whole token is. A change here changes every token minted; run
// `go test ./token -run TestGolden -update` and review the diff.
func TestGolden(t *testing.T) {
	t.Parallel()
	tok := mint(t, testKey(t), goldenClaims())
	in, err := Inspect(tok)
	if err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string][]byte{
		"token_eddsa.golden": []byte(tok + "\n"),
		"header.golden":      append(in.Header, '\n'),
		"claims.golden":      append(in.Claims, '\n'),
	} {
		path := filepath.Join("testdata", name)
		if *update {
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run with -update to create it)", err)
		}
		if string(got) != string(want) {
			t.Errorf("%s changed:\n got: %s\nwant: %s", name, got, want)
		}
	}
	// The golden token still verifies and decodes to the same claims.
	v := testVerifier(t)
	vt, err := v.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := json.Marshal(&vt.Claims)
	if string(again) != string(in.Claims) {
		t.Errorf("decode/encode is not stable:\n%s\n%s", again, in.Claims)
	}
}
