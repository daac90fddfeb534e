package token

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"reflect"
	"testing"
	"unsafe"

	"github.com/lestrrat-go/jwx/v2/jwa"

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
		Args:    policy.Args{"read_file": {"path": {Paths: policy.StringList{"/repo/*"}}}},
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

// TestCompactCarriesEveryField fills every field of a Token (claims,
// kvc, constraints, the act chain) by reflection, so a field added later
// without a line in Compact fails here rather than vanishing from cached
// tokens.
func TestCompactCarriesEveryField(t *testing.T) {
	var tok Token
	fillAll(t, reflect.ValueOf(&tok).Elem(), "tok", 0)
	// Never carried: a verified token with cnf is rejected (Verify), so
	// no cached token has one.
	tok.Confirmation = nil
	got := tok.Compact()
	if !reflect.DeepEqual(got, &tok) {
		t.Fatalf("Compact dropped or changed a field:\n got %+v\nwant %+v", got, &tok)
	}
}

// fillAll sets every settable field under v to a non-zero value that
// names its path.
func fillAll(t *testing.T, v reflect.Value, path string, depth int) {
	t.Helper()
	switch v.Type() {
	case reflect.TypeFor[jwa.SignatureAlgorithm]():
		v.Set(reflect.ValueOf(jwa.EdDSA))
		return
	case reflect.TypeFor[netip.Prefix]():
		v.Set(reflect.ValueOf(netip.MustParsePrefix("10.0.0.0/8")))
		return
	case reflect.TypeFor[json.RawMessage]():
		v.Set(reflect.ValueOf(json.RawMessage(`{"jkt":"x"}`)))
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(path)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(7 + depth))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k := reflect.New(v.Type().Key()).Elem()
		fillAll(t, k, path+"[key]", depth)
		e := reflect.New(v.Type().Elem()).Elem()
		fillAll(t, e, path+"[]", depth)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := range 2 {
			fillAll(t, s.Index(i), fmt.Sprintf("%s[%d]", path, i), depth)
		}
		v.Set(s)
	case reflect.Pointer:
		if depth > 3 { // the act chain: three hops are enough
			return
		}
		p := reflect.New(v.Type().Elem())
		fillAll(t, p.Elem(), path, depth+1)
		v.Set(p)
	case reflect.Struct:
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if !f.IsExported() {
				t.Fatalf("%s.%s: unexported field, teach fillAll about %s", path, f.Name, v.Type())
			}
			fillAll(t, v.Field(i), path+"."+f.Name, depth)
		}
	default:
		t.Fatalf("%s: teach fillAll about %s", path, v.Type())
	}
}
