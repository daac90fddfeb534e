package policy

import (
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const resource = "https://gw.example/mcp"

func parentRights() Rights {
	return Rights{
		Scopes:   []string{"mcp:review", "repository:*", "comment:write"},
		Audience: []string{resource, "https://api.example/"},
		Constraints: Constraints{
			Hosts:   StringList{"mcp.internal", "*.corp.example"},
			CIDRs:   prefixes("10.0.0.0/8"),
			Methods: StringList{"GET", "POST"},
			Paths:   StringList{"/mcp", "/api/*"},
			MaxBody: 1000,
			Audit:   AuditRequired,
		},
		Expiry: t0.Add(time.Hour),
		Depth:  1,
	}
}

func TestAttenuate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		parent func(*Rights) // adjusts parentRights(); nil: as is
		req    Request
		field  string // "" = allowed
		reason string // substring of the error
	}{
		{"empty request: same rights", nil, Request{}, "", ""},
		{"delegate empty request", nil, Request{Delegate: true}, "", ""},

		{"scope narrower", nil, Request{Scopes: []string{"repository:read"}}, "", ""},
		{"scope same pattern", nil, Request{Scopes: []string{"repository:*"}}, "", ""},
		{"scope wider", nil, Request{Scopes: []string{"repository:read", "admin"}}, "scope", `"admin" not within`},
		{"scope deeper not covered", func(r *Rights) { r.Scopes = []string{"mcp:github"} }, Request{Scopes: []string{"mcp:github:admin"}}, "scope", `"mcp:github:admin"`},
		{"scope * does not cover a:b", func(r *Rights) { r.Scopes = []string{"*"} }, Request{Scopes: []string{"a:b"}}, "scope", "not within"},
		{"scope concrete does not cover pattern", func(r *Rights) { r.Scopes = []string{"mcp:x"} }, Request{Scopes: []string{"mcp:*"}}, "scope", "not within"},
		{"scope pattern covers pattern", func(r *Rights) { r.Scopes = []string{"mcp:*"} }, Request{Scopes: []string{"mcp:*", "mcp:x"}}, "", ""},
		{"scope empty list", nil, Request{Scopes: []string{}}, "scope", "nothing to delegate"},
		{"scope invalid", nil, Request{Scopes: []string{"repository::read"}}, "scope", "empty segment"},
		{"scope too many", func(r *Rights) { r.Scopes = []string{"*"} }, Request{Scopes: manyScopes(MaxScopes + 1)}, "scope", "more than 64"},
		{"scope from parent without scopes", func(r *Rights) { r.Scopes = nil }, Request{Scopes: []string{"a"}}, "scope", "not within"},

		{"aud subset", nil, Request{Audience: []string{resource}}, "", ""},
		{"aud other", nil, Request{Audience: []string{"https://other.example/"}}, "aud", `"https://other.example/" is not one of`},
		{"aud not a prefix match", nil, Request{Audience: []string{resource + "/x"}}, "aud", "not one of"},
		{"aud empty list", nil, Request{Audience: []string{}}, "aud", "nothing to delegate"},

		{"hosts narrower", nil, Request{Constraints: Constraints{Hosts: StringList{"a.corp.example"}}}, "", ""},
		{"hosts apex of wildcard", nil, Request{Constraints: Constraints{Hosts: StringList{"corp.example"}}}, "hosts", `"corp.example"`},
		{"hosts two labels below wildcard", nil, Request{Constraints: Constraints{Hosts: StringList{"a.b.corp.example"}}}, "hosts", "not within"},
		{"hosts other", nil, Request{Constraints: Constraints{Hosts: StringList{"evil.example"}}}, "hosts", "not within"},
		{"hosts invalid", nil, Request{Constraints: Constraints{Hosts: StringList{"Bad.Example"}}}, "hosts", "must be lowercase"},
		{"hosts empty list", nil, Request{Constraints: Constraints{Hosts: StringList{}}}, "hosts", "must not be empty"},

		{"cidrs inside", nil, Request{Constraints: Constraints{CIDRs: prefixes("10.1.0.0/16")}}, "", ""},
		{"cidrs outside", nil, Request{Constraints: Constraints{CIDRs: prefixes("192.168.0.0/16")}}, "cidrs", `"192.168.0.0/16"`},
		{"cidrs add outside", nil, Request{Constraints: Constraints{CIDRs: prefixes("10.1.0.0/16", "11.0.0.0/8")}}, "cidrs", "not inside"},
		{"cidrs non-canonical", nil, Request{Constraints: Constraints{CIDRs: prefixes("10.1.2.3/16")}}, "cidrs", "host bits set"},

		{"methods subset", nil, Request{Constraints: Constraints{Methods: StringList{"GET"}}}, "", ""},
		{"methods add", nil, Request{Constraints: Constraints{Methods: StringList{"GET", "DELETE"}}}, "methods", `"DELETE"`},
		{"methods invalid", nil, Request{Constraints: Constraints{Methods: StringList{"get"}}}, "methods", "uppercase"},

		{"paths narrower", nil, Request{Constraints: Constraints{Paths: StringList{"/api/repos/*", "/mcp"}}}, "", ""},
		{"paths add", nil, Request{Constraints: Constraints{Paths: StringList{"/mcp", "/admin"}}}, "paths", `"/admin"`},
		{"paths widen exact to wildcard", nil, Request{Constraints: Constraints{Paths: StringList{"/mcp*"}}}, "paths", "not within"},
		{"paths /api* not within /api/*", nil, Request{Constraints: Constraints{Paths: StringList{"/api*"}}}, "paths", "not within"},
		{"paths invalid", nil, Request{Constraints: Constraints{Paths: StringList{"/api/../x"}}}, "paths", "segment"},

		{"max_body lower", nil, Request{Constraints: Constraints{MaxBody: 10}}, "", ""},
		{"max_body raise", nil, Request{Constraints: Constraints{MaxBody: 1001}}, "max_body", "1001 exceeds the parent's 1000"},
		{"max_body negative", nil, Request{Constraints: Constraints{MaxBody: -1}}, "max_body", "negative"},
		{"max_body set under unlimited parent", func(r *Rights) { r.Constraints.MaxBody = 0 }, Request{Constraints: Constraints{MaxBody: 1 << 40}}, "", ""},

		{"audit cannot be dropped by an invalid value", nil, Request{Constraints: Constraints{Audit: "none"}}, "audit", "not \"required\""},
		{"audit added", func(r *Rights) { r.Constraints.Audit = "" }, Request{Constraints: Constraints{Audit: AuditRequired}}, "", ""},

		{"exp earlier", nil, Request{Expiry: t0}, "", ""},
		{"exp equal", nil, Request{Expiry: t0.Add(time.Hour)}, "", ""},
		{"exp outlives parent", nil, Request{Expiry: t0.Add(time.Hour + time.Second)}, "exp", "after the parent's expiry"},
		{"exp any under unbounded parent", func(r *Rights) { r.Expiry = time.Time{} }, Request{Expiry: t0.Add(1000 * time.Hour)}, "", ""},

		{"depth delegate within default", func(r *Rights) { r.Depth = DefaultMaxDepth - 1 }, Request{Delegate: true}, "", ""},
		{"depth delegate beyond default", func(r *Rights) { r.Depth = DefaultMaxDepth }, Request{Delegate: true}, "depth", "depth 6 exceeds max_depth 5"},
		{"depth delegate beyond issuer max", func(r *Rights) { r.Depth = 2 }, Request{Delegate: true, MaxDepth: 2}, "depth", "depth 3 exceeds max_depth 2"},
		{"depth issuer max above format limit is clamped", func(r *Rights) { r.Depth = MaxDepth }, Request{Delegate: true, MaxDepth: 100}, "depth", "depth 17 exceeds max_depth 16"},
		{"depth clamped limit still allows up to it", func(r *Rights) { r.Depth = MaxDepth - 1 }, Request{Delegate: true, MaxDepth: 100}, "", ""},
		{"depth self-attenuation at max", func(r *Rights) { r.Depth = DefaultMaxDepth }, Request{Scopes: []string{"mcp:review"}}, "", ""},
		{"depth self-attenuation over lowered max", func(r *Rights) { r.Depth = 3 }, Request{MaxDepth: 2}, "depth", "exceeds max_depth 2"},
		{"depth negative max", nil, Request{MaxDepth: -1}, "depth", "negative"},
		{"depth negative parent", func(r *Rights) { r.Depth = -1 }, Request{}, "depth", "negative"},

		{"first failing field in order", nil, Request{Audience: []string{"x"}, Constraints: Constraints{Methods: StringList{"PUT"}}, Delegate: true, MaxDepth: 1}, "aud", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			parent := parentRights()
			if tt.parent != nil {
				tt.parent(&parent)
			}
			child, err := Attenuate(parent, tt.req)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Attenuate: %v", err)
				}
				if fe := child.Constraints.Within(&parent.Constraints); fe != nil {
					t.Errorf("child not within parent: %v", fe)
				}
				if !Covers(parent.Scopes, child.Scopes) {
					t.Errorf("child scopes %q not covered by %q", child.Scopes, parent.Scopes)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Attenuate = %v (%T), want *FieldError %q", err, err, tt.field)
			}
			if fe.Field != tt.field || !strings.Contains(fe.Reason, tt.reason) {
				t.Errorf("Attenuate = %q, want field %q with %q", err, tt.field, tt.reason)
			}
			if !reflect.DeepEqual(child, Rights{}) {
				t.Errorf("error with non-zero rights %+v", child)
			}
		})
	}
}

func manyScopes(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "s" + strings.Repeat("x", i)
	}
	return out
}

// TestAttenuateInherits checks the returned Rights field by field: an
// absent request field takes the parent's value, a present one its own.
func TestAttenuateInherits(t *testing.T) {
	t.Parallel()
	parent := parentRights()
	tests := []struct {
		name  string
		req   Request
		check func(t *testing.T, child Rights)
	}{
		{"everything absent", Request{}, func(t *testing.T, child Rights) {
			want := parentRights()
			if !reflect.DeepEqual(child, want) {
				t.Errorf("child = %+v, want the parent's %+v", child, want)
			}
		}},
		{"audit required cannot be dropped by omission", Request{Constraints: Constraints{Hosts: StringList{"mcp.internal"}}}, func(t *testing.T, child Rights) {
			if !child.Constraints.AuditRequired() {
				t.Error("child lost audit: required")
			}
			if !slices.Equal(child.Constraints.Hosts, StringList{"mcp.internal"}) {
				t.Errorf("hosts = %q", child.Constraints.Hosts)
			}
			if !slices.Equal(child.Constraints.Methods, parent.Constraints.Methods) ||
				!slices.Equal(child.Constraints.Paths, parent.Constraints.Paths) ||
				!slices.Equal(child.Constraints.CIDRs, parent.Constraints.CIDRs) ||
				child.Constraints.MaxBody != parent.Constraints.MaxBody {
				t.Errorf("absent constraints not inherited: %+v", child.Constraints)
			}
		}},
		{"scopes given, audience inherited", Request{Scopes: []string{"repository:read", "repository:read"}}, func(t *testing.T, child Rights) {
			if !slices.Equal(child.Scopes, []string{"repository:read"}) {
				t.Errorf("scopes = %q (duplicates should be dropped)", child.Scopes)
			}
			if !slices.Equal(child.Audience, parent.Audience) {
				t.Errorf("audience = %q", child.Audience)
			}
		}},
		{"expiry inherited", Request{Delegate: true}, func(t *testing.T, child Rights) {
			if !child.Expiry.Equal(parent.Expiry) || child.Depth != parent.Depth+1 {
				t.Errorf("expiry %v depth %d", child.Expiry, child.Depth)
			}
		}},
		{"self-attenuation keeps depth", Request{Expiry: t0}, func(t *testing.T, child Rights) {
			if !child.Expiry.Equal(t0) || child.Depth != parent.Depth {
				t.Errorf("expiry %v depth %d", child.Expiry, child.Depth)
			}
		}},
		{"max_body and audit set", Request{Constraints: Constraints{MaxBody: 7, Audit: AuditRequired}}, func(t *testing.T, child Rights) {
			if child.Constraints.MaxBody != 7 || !child.Constraints.AuditRequired() {
				t.Errorf("constraints %+v", child.Constraints)
			}
		}},
		{"audience duplicates dropped", Request{Audience: []string{resource, resource}}, func(t *testing.T, child Rights) {
			if !slices.Equal(child.Audience, []string{resource}) {
				t.Errorf("audience = %q", child.Audience)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			child, err := Attenuate(parentRights(), tt.req)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, child)
		})
	}
}

// TestAttenuateNoAliasing: the child shares no slice with the parent or the
// request, and neither input is modified.
func TestAttenuateNoAliasing(t *testing.T) {
	t.Parallel()
	for _, req := range []Request{
		{},
		{Scopes: []string{"repository:read"}, Audience: []string{resource}, Constraints: Constraints{
			Hosts: StringList{"mcp.internal"}, CIDRs: prefixes("10.0.0.0/16"), Methods: StringList{"GET"}, Paths: StringList{"/mcp"}}},
	} {
		parent := parentRights()
		reqCopy := cloneRequest(req)
		child, err := Attenuate(parent, req)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(parent, parentRights()) || !reflect.DeepEqual(req, reqCopy) {
			t.Fatal("Attenuate modified an input")
		}
		child.Scopes[0] = "mutated"
		child.Audience[0] = "mutated"
		child.Constraints.Hosts[0] = "mutated"
		child.Constraints.CIDRs[0] = netip.Prefix{}
		child.Constraints.Methods[0] = "mutated"
		child.Constraints.Paths[0] = "mutated"
		if !reflect.DeepEqual(parent, parentRights()) || !reflect.DeepEqual(req, reqCopy) {
			t.Errorf("child aliases an input (request %+v)", req)
		}
	}
}

func cloneRequest(r Request) Request {
	r.Scopes = slices.Clone(r.Scopes)
	r.Audience = slices.Clone(r.Audience)
	r.Constraints = inherit(&r.Constraints, &Constraints{})
	return r
}

func TestFieldError(t *testing.T) {
	t.Parallel()
	var err error = &FieldError{Field: "hosts", Reason: `"Bad.Example" must be lowercase`}
	if got, want := err.Error(), `hosts: "Bad.Example" must be lowercase`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	// Echoed input is quoted and cut.
	_, err = Attenuate(parentRights(), Request{Audience: []string{strings.Repeat("\n", 1000)}})
	if err == nil || strings.Contains(err.Error(), "\n") || len(err.Error()) > 300 {
		t.Errorf("echoed input not escaped or not cut: %q", err)
	}
}

func TestPermits(t *testing.T) {
	t.Parallel()
	okOp := func() Operation {
		return Operation{
			Scopes:   []string{"mcp:review", "repository:read"},
			Resource: resource,
			Host:     "git.corp.example",
			ClientIP: netip.MustParseAddr("10.1.2.3"),
			Method:   "POST",
			Path:     "/api/repos/kavach",
			BodySize: 1000,
			At:       t0,
		}
	}
	tests := []struct {
		name  string
		op    func(*Operation)
		field string // "" = allowed
	}{
		{"allowed", func(*Operation) {}, ""},
		{"no scopes needed", func(o *Operation) { o.Scopes = nil }, ""},
		{"unknown body size", func(o *Operation) { o.BodySize = -1 }, ""},
		{"mapped client address", func(o *Operation) { o.ClientIP = netip.MustParseAddr("::ffff:10.1.2.3") }, ""},
		{"host with trailing dot", func(o *Operation) { o.Host = "git.corp.example." }, ""},

		{"expired at exp", func(o *Operation) { o.At = t0.Add(time.Hour) }, "exp"},
		{"expired after exp", func(o *Operation) { o.At = t0.Add(2 * time.Hour) }, "exp"},
		{"other resource", func(o *Operation) { o.Resource = "https://other.example/" }, "aud"},
		{"empty resource", func(o *Operation) { o.Resource = "" }, "aud"},
		{"host not allowed", func(o *Operation) { o.Host = "corp.example" }, "hosts"},
		{"client outside cidrs", func(o *Operation) { o.ClientIP = netip.MustParseAddr("192.168.1.1") }, "cidrs"},
		{"client unknown", func(o *Operation) { o.ClientIP = netip.Addr{} }, "cidrs"},
		{"method not allowed", func(o *Operation) { o.Method = "DELETE" }, "methods"},
		{"path not allowed", func(o *Operation) { o.Path = "/admin" }, "paths"},
		{"path escape", func(o *Operation) { o.Path = "/api/../admin" }, "paths"},
		{"body too large", func(o *Operation) { o.BodySize = 1001 }, "max_body"},
		{"scope not granted", func(o *Operation) { o.Scopes = []string{"mcp:review", "repository:admin:x"} }, "scope"},
		{"constraint reported before scope", func(o *Operation) { o.Method = "PUT"; o.Scopes = []string{"nope"} }, "methods"},
		{"exp reported first", func(o *Operation) { o.At = t0.Add(time.Hour); o.Resource = "" }, "exp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := parentRights()
			op := okOp()
			tt.op(&op)
			fe := r.Permits(&op)
			switch {
			case tt.field == "" && fe != nil:
				t.Fatalf("Permits = %v, want allowed", fe)
			case tt.field != "" && (fe == nil || fe.Field != tt.field):
				t.Fatalf("Permits = %v, want field %q", fe, tt.field)
			}
		})
	}
}

// TestPermitsUnconstrained: absent constraints and a zero expiry deny
// nothing, but audience and scopes still apply.
func TestPermitsUnconstrained(t *testing.T) {
	t.Parallel()
	r := Rights{Scopes: []string{"a"}, Audience: []string{resource}}
	op := Operation{Scopes: []string{"a"}, Resource: resource, Method: "DELETE", Path: "/x/../y", BodySize: 1 << 40, At: t0.Add(1e6 * time.Hour)}
	if fe := r.Permits(&op); fe != nil {
		t.Errorf("Permits = %v", fe)
	}
	var noAud Rights
	if fe := noAud.Permits(&op); fe == nil || fe.Field != "aud" {
		t.Errorf("rights without audience: Permits = %v, want aud", fe)
	}
}

// TestPermitsZeroTimeUsesClock: an Operation without At is judged at the
// current time, never as "not expired". Not parallel: it replaces now.
func TestPermitsZeroTimeUsesClock(t *testing.T) {
	saved := now
	t.Cleanup(func() { now = saved })
	r := Rights{Scopes: []string{"a"}, Audience: []string{resource}, Expiry: t0}
	op := Operation{Resource: resource}

	now = func() time.Time { return t0.Add(-time.Second) }
	if fe := r.Permits(&op); fe != nil {
		t.Errorf("before exp: %v", fe)
	}
	now = func() time.Time { return t0 }
	if fe := r.Permits(&op); fe == nil || fe.Field != "exp" {
		t.Errorf("at exp: %v, want exp", fe)
	}
}
