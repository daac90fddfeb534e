package idp

import (
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
)

const mcp = "http://127.0.0.1:8080/mcp"

func mustRules(t *testing.T, lines ...string) Rules {
	t.Helper()
	var rs Rules
	for _, l := range lines {
		r, err := ParseRule(strings.Fields(l))
		if err != nil {
			t.Fatalf("%s: %v", l, err)
		}
		rs = append(rs, r)
	}
	if err := rs.Validate(); err != nil {
		t.Fatal(err)
	}
	return rs
}

func TestParseRule(t *testing.T) {
	r, err := ParseRule(strings.Fields("group platform-eng " + mcp + " mcp:review repository:read"))
	if err != nil {
		t.Fatal(err)
	}
	want := Rule{Kind: RuleGroup, Value: "platform-eng", Resource: mcp, Scopes: []string{"mcp:review", "repository:read"}}
	if !reflect.DeepEqual(r, want) {
		t.Fatalf("%+v", r)
	}
	if r.String() != "group platform-eng "+mcp+" mcp:review repository:read" {
		t.Errorf("String %q", r.String())
	}
	c, err := ParseRule(strings.Fields("claim realm_access.roles admin " + mcp + " repository:*"))
	if err != nil || c.Claim != "realm_access.roles" || c.Value != "admin" || c.Scopes[0] != "repository:*" {
		t.Fatalf("%+v %v", c, err)
	}
	if back, err := ParseRule(strings.Fields(c.String())); err != nil || !reflect.DeepEqual(back, c) {
		t.Errorf("round trip %+v %v", back, err)
	}
}

func TestParseRuleRefuses(t *testing.T) {
	for _, l := range []string{
		"",
		"team platform-eng " + mcp + " mcp:review",
		"group platform-eng " + mcp,
		"group platform-eng mcp:review",
		"group platform-eng 127.0.0.1:8080/mcp mcp:review",
		"group platform-eng " + mcp + "?x=1 mcp:review",
		"group platform-eng " + mcp + "#f mcp:review",
		"group platform-eng http://u:p@127.0.0.1/mcp mcp:review",
		"group platform-eng ftp://127.0.0.1/mcp mcp:review",
		"group platform-eng " + mcp + " mcp:review mcp:review",
		"group platform-eng " + mcp + " mcp::review",
		"group platform-eng " + mcp + " repo*",
		"claim email " + mcp + " mcp:review",
		"role " + strings.Repeat("x", MaxClaimLen+1) + " " + mcp + " mcp:review",
	} {
		if r, err := ParseRule(strings.Fields(l)); err == nil {
			t.Errorf("%q accepted: %+v", l, r)
		}
	}
	// The same matcher and resource twice.
	a, _ := ParseRule(strings.Fields("group eng " + mcp + " mcp:review"))
	b, _ := ParseRule(strings.Fields("group eng " + mcp + " repository:read"))
	if err := (Rules{a, b}).Validate(); err == nil {
		t.Error("two rules for one group and resource accepted")
	}
}

func TestEvaluate(t *testing.T) {
	rs := mustRules(t,
		"group platform-eng "+mcp+" mcp:review repository:read",
		"group staff "+mcp+" mcp:review",
		"group staff https://wiki.example/mcp wiki:read",
		"role admin "+mcp+" repository:write",
		"claim department security https://audit.example/mcp audit:read",
		"claim email_verified true https://mail.example/mcp mail:send",
		"claim realm_access.roles ops https://ops.example/mcp ops:*",
	)
	alice := &Identity{Provider: "corpsso", Groups: []string{"platform-eng", "staff"}, Claims: map[string]any{
		"department": "security", "email_verified": true,
		"realm_access": map[string]any{"roles": []any{"ops", "dev"}},
	}}
	got := rs.Evaluate(alice)
	want := Entitlements{
		mcp:                         {"mcp:review", "repository:read"},
		"https://wiki.example/mcp":  {"wiki:read"},
		"https://audit.example/mcp": {"audit:read"},
		"https://mail.example/mcp":  {"mail:send"},
		"https://ops.example/mcp":   {"ops:*"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Evaluate:\n got %v\nwant %v", got, want)
	}
	// Order of rules does not matter.
	rev := slices.Clone(rs)
	slices.Reverse(rev)
	if !reflect.DeepEqual(rev.Evaluate(alice), want) {
		t.Error("result depends on rule order")
	}
	// Evaluating leaves the rules as they were.
	if rs[0].Scopes[0] != "mcp:review" || len(rs[0].Scopes) != 2 {
		t.Error("Evaluate changed a rule")
	}
	// A role; nobody; a rule limited to another provider.
	if got := rs.Evaluate(&Identity{Roles: []string{"admin"}}); !reflect.DeepEqual(got, Entitlements{mcp: {"repository:write"}}) {
		t.Errorf("role: %v", got)
	}
	if got := rs.Evaluate(&Identity{Groups: []string{"marketing"}}); got == nil || len(got) != 0 {
		t.Errorf("no match: %#v, want an empty map", got)
	}
	only := mustRules(t, "group staff "+mcp+" mcp:review")
	only[0].Provider = "othersso"
	if got := only.Evaluate(alice); len(got) != 0 {
		t.Errorf("rule for another provider matched: %v", got)
	}
	// Group names are compared exactly.
	if got := rs.Evaluate(&Identity{Groups: []string{"Platform-Eng"}}); len(got) != 0 {
		t.Errorf("case-folded group matched: %v", got)
	}
}

func TestShrunk(t *testing.T) {
	old := Entitlements{mcp: {"mcp:review", "repository:read"}, "https://wiki.example/mcp": {"wiki:read"}}
	cases := []struct {
		name string
		new  Entitlements
		lost Entitlements
	}{
		{"same", maps.Clone(old), nil},
		{"wider", Entitlements{mcp: {"mcp:review", "repository:*"}, "https://wiki.example/mcp": {"wiki:read", "wiki:write"}}, nil},
		{"scope removed", Entitlements{mcp: {"mcp:review"}, "https://wiki.example/mcp": {"wiki:read"}}, Entitlements{mcp: {"repository:read"}}},
		{"resource removed", Entitlements{mcp: {"mcp:review", "repository:read"}}, Entitlements{"https://wiki.example/mcp": {"wiki:read"}}},
		{"group removed: nothing left", Entitlements{}, old},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			lost := Shrunk(old, c.new)
			if !reflect.DeepEqual(lost, c.lost) {
				t.Errorf("Shrunk %v, want %v", lost, c.lost)
			}
			if Narrowed(old, c.new) != (c.lost != nil) {
				t.Errorf("Narrowed %v", Narrowed(old, c.new))
			}
		})
	}
	// A pattern that is replaced by one of its instances is a narrowing.
	if !Narrowed(Entitlements{mcp: {"repository:*"}}, Entitlements{mcp: {"repository:read"}}) {
		t.Error("repository:* → repository:read not narrowed")
	}
	// Nothing before, anything now: not narrowed.
	if Narrowed(nil, Entitlements{mcp: {"x"}}) {
		t.Error("first sign-in narrowed")
	}
}
