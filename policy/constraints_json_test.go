package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func TestConstraintsJSONRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
	}{
		{"hosts null", `{"hosts":null}`, "hosts: must not be null"},
		{"hosts empty", `{"hosts":[]}`, "hosts: must not be empty"},
		{"hosts empty string", `{"hosts":[""]}`, "hosts: empty entry"},
		{"hosts null entry", `{"hosts":["a.x",null]}`, "hosts: must be an array of strings"},
		{"hosts not array", `{"hosts":"a.x"}`, "hosts: must be an array of strings"},
		{"hosts zero", `{"hosts":0}`, "hosts: must be an array of strings"},
		{"hosts uppercase", `{"hosts":["Bad.Example"]}`, `hosts: "Bad.Example" must be lowercase`},
		{"cidrs null", `{"cidrs":null}`, "cidrs: must not be null"},
		{"cidrs empty", `{"cidrs":[]}`, "cidrs: must not be empty"},
		{"cidrs empty string", `{"cidrs":[""]}`, `cidrs: "" is not a CIDR prefix`},
		{"cidrs zero", `{"cidrs":0}`, "cidrs: must be an array"},
		{"cidrs non-canonical", `{"cidrs":["10.0.0.1/8"]}`, `cidrs: "10.0.0.1/8": host bits set`},
		{"cidrs ipv6 host bits", `{"cidrs":["2001:db8::1/32"]}`, "host bits set"},
		{"cidrs ipv6 uppercase", `{"cidrs":["2001:DB8::/32"]}`, `write it as "2001:db8::/32"`},
		{"cidrs address without length", `{"cidrs":["10.0.0.1"]}`, "not a CIDR prefix"},
		{"cidrs duplicate", `{"cidrs":["10.0.0.0/8","10.0.0.0/8"]}`, "listed twice"},
		{"methods null", `{"methods":null}`, "methods: must not be null"},
		{"methods empty", `{"methods":[]}`, "methods: must not be empty"},
		{"methods empty string", `{"methods":[""]}`, "methods: empty entry"},
		{"methods zero", `{"methods":0}`, "methods: must be an array"},
		{"methods lowercase", `{"methods":["get"]}`, "must be uppercase"},
		{"paths null", `{"paths":null}`, "paths: must not be null"},
		{"paths empty", `{"paths":[]}`, "paths: must not be empty"},
		{"paths empty string", `{"paths":[""]}`, "paths: empty entry"},
		{"paths zero", `{"paths":0}`, "paths: must be an array"},
		{"paths dotdot", `{"paths":["/a/../b"]}`, "segment"},
		{"max_body null", `{"max_body":null}`, "max_body: must not be null"},
		{"max_body zero", `{"max_body":0}`, "max_body: must not be 0"},
		{"max_body negative", `{"max_body":-5}`, "max_body: must be positive"},
		{"max_body fraction", `{"max_body":1.5}`, "max_body: must be a positive integer"},
		{"max_body exponent", `{"max_body":1e3}`, "max_body: must be a positive integer"},
		{"max_body string", `{"max_body":"5"}`, "max_body: must be a positive integer"},
		{"max_body empty string", `{"max_body":""}`, "max_body: must be a positive integer"},
		{"max_body overflow", `{"max_body":9223372036854775808}`, "fits in 63 bits"},
		{"audit null", `{"audit":null}`, "audit: must not be null"},
		{"audit empty", `{"audit":""}`, `audit: "" is not "required"`},
		{"audit other", `{"audit":"optional"}`, `audit: "optional" is not "required"`},
		{"audit zero", `{"audit":0}`, "audit: must be the string"},
		{"audit case", `{"audit":"Required"}`, `"Required" is not "required"`},
		{"unknown field", `{"hosts":["a.x"],"ports":[443]}`, `unknown constraint "ports"`},
		{"case-variant field", `{"Hosts":["a.x"]}`, `unknown constraint "Hosts"`},
		{"repeated field", `{"hosts":["a.x"],"hosts":["b.x"]}`, "hosts: appears twice"},
		{"null object", `null`, "must be a JSON object"},
		{"array object", `[]`, "must be a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var c Constraints
			err := json.Unmarshal([]byte(tt.in), &c)
			if err == nil {
				t.Fatalf("Unmarshal(%s) = nil error, decoded %+v", tt.in, c)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Unmarshal(%s) = %q, want it to contain %q", tt.in, err, tt.want)
			}
			if !c.IsZero() {
				t.Errorf("a failed decode changed the value: %+v", c)
			}
		})
	}
}

// TestNamedTypesSeeJSONNull proves that encoding/json hands a JSON null to
// the UnmarshalJSON of these non-pointer named types (rather than silently
// leaving the field zero, which would read as "absent"), without going
// through Constraints.UnmarshalJSON.
func TestNamedTypesSeeJSONNull(t *testing.T) {
	t.Parallel()
	type plain struct {
		Hosts   StringList `json:"hosts,omitempty"`
		CIDRs   PrefixList `json:"cidrs,omitempty"`
		MaxBody ByteLimit  `json:"max_body,omitempty"`
		Audit   AuditMode  `json:"audit,omitempty"`
	}
	for _, in := range []string{`{"hosts":null}`, `{"cidrs":null}`, `{"max_body":null}`, `{"audit":null}`} {
		var p plain
		err := json.Unmarshal([]byte(in), &p)
		if !errors.Is(err, errNull) {
			t.Errorf("Unmarshal(%s) into a plain struct = %v, want errNull", in, err)
		}
	}
	for _, in := range []string{`{"hosts":null}`, `{"cidrs":null}`, `{"max_body":null}`, `{"audit":null}`} {
		var c Constraints
		if err := json.Unmarshal([]byte(in), &c); err == nil {
			t.Errorf("Unmarshal(%s) into Constraints succeeded", in)
		}
	}
}

func TestConstraintsJSONAbsent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want Constraints
	}{
		{"empty object", `{}`, Constraints{}},
		{"one field", `{"methods":["GET"]}`, Constraints{Methods: StringList{"GET"}}},
		{"whitespace", " { \"max_body\" : 5 } ", Constraints{MaxBody: 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var c Constraints
			if err := json.Unmarshal([]byte(tt.in), &c); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c, tt.want) {
				t.Fatalf("got %#v, want %#v", c, tt.want)
			}
			// Absent must decode as nil, not as an empty list.
			if c.Hosts != nil || c.CIDRs != nil || c.Paths != nil {
				t.Errorf("absent lists decoded non-nil: %#v", c)
			}
		})
	}
	// Absent kvc.cnst fields through a pointer, as the token package holds it.
	var claim struct {
		C *Constraints `json:"cnst,omitempty"`
	}
	if err := json.Unmarshal([]byte(`{}`), &claim); err != nil || claim.C != nil {
		t.Errorf("absent cnst: %v, %+v", err, claim.C)
	}
}

func fullConstraints() Constraints {
	return Constraints{
		Hosts:   StringList{"mcp.internal", "*.corp.example"},
		CIDRs:   prefixes("10.0.0.0/8", "2001:db8::/32"),
		Methods: StringList{"GET", "POST"},
		Paths:   StringList{"/mcp", "/api/repos/*", "/q&a"},
		MaxBody: 5242880,
		Audit:   AuditRequired,
	}
}

func TestConstraintsJSONRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		c    Constraints
	}{
		{"zero", Constraints{}},
		{"full", fullConstraints()},
		{"hosts only", Constraints{Hosts: StringList{"a.x"}}},
		{"cidrs only", Constraints{CIDRs: prefixes("::/0")}},
		{"audit only", Constraints{Audit: AuditRequired}},
		{"max_body only", Constraints{MaxBody: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b, err := json.Marshal(tt.c)
			if err != nil {
				t.Fatal(err)
			}
			var back Constraints
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatalf("Unmarshal(%s): %v", b, err)
			}
			if !reflect.DeepEqual(back, tt.c) {
				t.Fatalf("round trip of %s: got %#v, want %#v", b, back, tt.c)
			}
			b2, err := json.Marshal(&back)
			if err != nil || !bytes.Equal(b, b2) {
				t.Errorf("re-encoding differs: %s vs %s (%v)", b, b2, err)
			}
		})
	}
}

// TestConstraintsGolden pins the wire form: field order, spelling, escaping.
// Run with -update to accept a deliberate format change.
func TestConstraintsGolden(t *testing.T) {
	t.Parallel()
	b, err := json.Marshal(fullConstraints())
	if err != nil {
		t.Fatal(err)
	}
	var noEscape bytes.Buffer
	enc := json.NewEncoder(&noEscape)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(fullConstraints()); err != nil {
		t.Fatal(err)
	}
	got := append(append(b, '\n'), noEscape.Bytes()...)
	path := filepath.Join("testdata", "constraints.golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("encoding changed:\n got: %s\nwant: %s", got, want)
	}
}

// TestConstraintsMarshalRejectsInvalid: encoding must fail rather than let
// omitempty drop a present-but-empty list, which would widen the token.
func TestConstraintsMarshalRejectsInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		c    Constraints
		want string
	}{
		{"empty hosts", Constraints{Hosts: StringList{}}, "hosts: must not be empty"},
		{"empty cidrs", Constraints{CIDRs: PrefixList{}}, "cidrs: must not be empty"},
		{"empty methods", Constraints{Methods: StringList{}}, "methods: must not be empty"},
		{"empty paths", Constraints{Paths: StringList{}}, "paths: must not be empty"},
		{"negative max_body", Constraints{MaxBody: -1}, "max_body"},
		{"bad audit", Constraints{Audit: "no"}, "audit"},
		{"zero prefix", Constraints{CIDRs: PrefixList{{}}}, "cidrs: invalid prefix"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, v := range []any{tt.c, &tt.c, struct {
				C *Constraints `json:"cnst,omitempty"`
			}{&tt.c}} {
				b, err := json.Marshal(v)
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("Marshal(%T) = %s, %v; want error %q", v, b, err, tt.want)
				}
			}
		})
	}
}

func TestPrefixListMarshal(t *testing.T) {
	t.Parallel()
	b, err := json.Marshal(PrefixList(nil))
	if err != nil || string(b) != "null" {
		t.Errorf("nil: %s, %v", b, err)
	}
	if _, err := json.Marshal(PrefixList{{}}); err == nil {
		t.Error("zero prefix encoded")
	}
}
