package policy

import (
	"encoding/json"
	"net/netip"
	"testing"
	"time"
)

// benchRights is a token's rights as the gateway sees them: a realistic
// number of scopes, every constraint present.
func benchRights() Rights {
	return Rights{
		Scopes: []string{"mcp:review", "pullrequest:read", "repository:read", "repository:write",
			"comment:write", "issues:*", "mcp:github:*", "repository:*:admin"},
		Audience: []string{"https://other.example/", resource},
		Constraints: Constraints{
			Hosts:   StringList{"mcp.internal", "api.internal", "*.corp.example"},
			CIDRs:   prefixes("192.168.0.0/16", "10.0.0.0/8", "2001:db8::/32"),
			Methods: StringList{"GET", "POST"},
			Paths:   StringList{"/mcp", "/api/repos/*"},
			MaxBody: 5 << 20,
			Audit:   AuditRequired,
		},
		Expiry: t0.Add(5 * time.Minute),
		Depth:  2,
	}
}

func benchOp() Operation {
	return Operation{
		Scopes:   []string{"mcp:review", "repository:kavach:admin"},
		Resource: resource,
		Host:     "git.corp.example",
		ClientIP: netip.MustParseAddr("::ffff:10.1.2.3"),
		Method:   "POST",
		Path:     "/api/repos/kavach/pulls/7",
		BodySize: 4096,
		At:       t0,
	}
}

// TestZeroAllocs: the per-request paths allocate nothing when they allow.
// Not parallel: AllocsPerRun counts the whole process's allocations.
func TestZeroAllocs(t *testing.T) {
	r := benchRights()
	op := benchOp()
	have := r.Scopes
	c := &r.Constraints
	var fe *FieldError
	var ok bool
	tests := []struct {
		name string
		f    func()
	}{
		{"Match", func() { ok = Match("repository:*:admin", "repository:kavach:admin") }},
		{"Allows", func() { ok = Allows(have, "repository:kavach:admin") }},
		{"Allows miss", func() { ok = Allows(have, "nothing:here") }},
		{"HostMatch", func() { ok = HostMatch("*.corp.example", "Git.Corp.Example.") }},
		{"PathMatch", func() { ok = PathMatch("/api/repos/*", "/api/repos/x") }},
		{"AllowsHost", func() { ok = c.AllowsHost(op.Host) }},
		{"AllowsIP", func() { ok = c.AllowsIP(op.ClientIP) }},
		{"AllowsMethod", func() { ok = c.AllowsMethod(op.Method) }},
		{"AllowsPath", func() { ok = c.AllowsPath(op.Path) }},
		{"AllowsBody", func() { ok = c.AllowsBody(op.BodySize) }},
		{"Permits", func() { fe = r.Permits(&op) }},
	}
	for _, tt := range tests {
		if n := testing.AllocsPerRun(1000, tt.f); n != 0 {
			t.Errorf("%s: %v allocs per run, want 0", tt.name, n)
		}
	}
	if fe != nil {
		t.Fatalf("Permits denied the benchmark operation: %v", fe)
	}
	_ = ok
}

func BenchmarkMatch(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		Match("repository:*:admin", "repository:kavach:admin")
	}
}

func BenchmarkAllows(b *testing.B) {
	have := benchRights().Scopes
	b.ReportAllocs()
	for b.Loop() {
		if !Allows(have, "repository:kavach:admin") { // matched by the last pattern
			b.Fatal("not allowed")
		}
	}
}

func BenchmarkPermits(b *testing.B) {
	r := benchRights()
	op := benchOp()
	b.ReportAllocs()
	for b.Loop() {
		if fe := r.Permits(&op); fe != nil {
			b.Fatal(fe)
		}
	}
}

func BenchmarkAttenuate(b *testing.B) {
	parent := benchRights()
	req := Request{
		Scopes:      []string{"repository:read", "mcp:review"},
		Constraints: Constraints{Hosts: StringList{"git.corp.example"}, Paths: StringList{"/api/repos/kavach/*"}},
		Expiry:      t0.Add(time.Minute),
		Delegate:    true,
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Attenuate(parent, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkConstraintsUnmarshal is the cost kvc.cnst adds to decoding a
// token that is not in the verify cache.
func BenchmarkConstraintsUnmarshal(b *testing.B) {
	data, err := json.Marshal(benchRights().Constraints)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		var c Constraints
		if err := json.Unmarshal(data, &c); err != nil {
			b.Fatal(err)
		}
	}
}
