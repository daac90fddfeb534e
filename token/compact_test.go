package token

import (
	"net/netip"
	"reflect"
	"testing"
	"unsafe"

	"github.com/kavachgate/kavach/policy"
)

// TestCompact: the compacted copy of a verified token is equal to it, field
// by field, for tokens with and without constraints, and shares no memory
// with it.
func TestCompact(t *testing.T) {
	full := testClaims()
	full.Kavach.Constraints = &policy.Constraints{
		Hosts:   policy.StringList{"mcp.internal", "*.corp.example"},
		CIDRs:   policy.PrefixList{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")},
		Methods: policy.StringList{"GET", "POST"},
		Paths:   policy.StringList{"/mcp", "/api/repos/*"},
		MaxBody: 5 << 20,
		Audit:   policy.AuditRequired,
	}
	full.NotBefore = full.IssuedAt
	oneHop := testClaims()
	oneHop.Actor = ActorFor([]string{"agt_1"})
	oneHop.Kavach.Chain, oneHop.Kavach.Agents = []string{"dlg_1"}, []string{"agt_1"}
	oneHop.ClientID = "agt_1"
	onlyPaths := testClaims()
	onlyPaths.Kavach.Constraints = &policy.Constraints{Paths: policy.StringList{"/x"}}

	v := testVerifier(t)
	for name, c := range map[string]*Claims{"constraints": full, "plain": testClaims(), "one hop": oneHop, "only paths": onlyPaths} {
		t.Run(name, func(t *testing.T) {
			tok, err := v.Verify(mint(t, testKey(t), c))
			if err != nil {
				t.Fatal(err)
			}
			got := tok.Compact()
			if !reflect.DeepEqual(got, tok) {
				t.Fatalf("compacted token differs:\n got %+v\nwant %+v", got, tok)
			}
			if got.Subject != "" && unsafe.StringData(got.Subject) == unsafe.StringData(tok.Subject) {
				t.Error("the copy shares string memory with the original")
			}
			// An append to one list must not write into the next.
			if len(got.Scopes) > 0 {
				before := append([]string(nil), got.Kavach.Chain...)
				_ = append(got.Scopes, "x:y")
				_ = append(got.Audience, "https://other.example")
				if !reflect.DeepEqual(got.Kavach.Chain, before) {
					t.Error("append to a compacted list wrote into its neighbour")
				}
			}
		})
	}
}

// BenchmarkCompact is the cost added to a cache miss.
func BenchmarkCompact(b *testing.B) {
	tok, err := testVerifier(b).Verify(mint(b, testKey(b), testClaims()))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = tok.Compact()
	}
}
