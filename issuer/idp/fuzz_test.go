package idp

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// FuzzJAGValidate: whatever arrives as an assertion, Validate returns a
// grant or an *Error with an OAuth code, never panics, and accepts
// nothing from an untrusted or unsigned token (the seeds' IdP has no
// reachable JWK set, so nothing can verify).
func FuzzJAGValidate(f *testing.F) {
	for _, s := range []string{
		"", "a.b.c", "eyJhbGciOiJub25lIn0.e30.",
		raw(map[string]any{"alg": "RS256", "typ": JAGType}, map[string]any{"iss": "http://127.0.0.1:1"}, []byte("sig")),
		raw(map[string]any{"alg": "RS256", "typ": JAGType, "crit": []string{"x"}}, map[string]any{}, nil),
		raw(map[string]any{"alg": "HS256", "typ": "JWT"}, map[string]any{"iss": "http://127.0.0.1:1", "aud": jagAudience}, []byte("x")),
	} {
		f.Add(s)
	}
	v, err := NewJAGValidator(JAGConfig{Trusted: []TrustedIssuer{{Issuer: "http://127.0.0.1:1", JWKS: "http://127.0.0.1:1/jwks"}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, a string) {
		g, err := v.Validate(context.Background(), a, expect)
		if err == nil {
			t.Fatalf("accepted %q: %+v", a, g)
		}
		var e *Error
		if !errors.As(err, &e) || e.Code == "" || e.Description == "" {
			t.Fatalf("error %v is not an *Error with a code", err)
		}
		if len(a) > 8 && strings.Contains(e.Description, a) {
			t.Fatalf("description echoes the assertion")
		}
	})
}

// FuzzParseRule: a rule that parses prints back to the same rule.
func FuzzParseRule(f *testing.F) {
	f.Add("group platform-eng http://127.0.0.1:8080/mcp mcp:review repository:read")
	f.Add("claim realm_access.roles admin https://x.example/mcp repo:*")
	f.Add("role r http://h/ a")
	f.Fuzz(func(t *testing.T, line string) {
		r, err := ParseRule(strings.Fields(line))
		if err != nil {
			return
		}
		back, err := ParseRule(strings.Fields(r.String()))
		if err != nil || back.String() != r.String() {
			t.Fatalf("%q → %q → %v", line, r.String(), err)
		}
	})
}
