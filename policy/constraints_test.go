package policy

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

func prefixes(ss ...string) PrefixList {
	out := make(PrefixList, len(ss))
	for i, s := range ss {
		// ParsePrefix, not MustParsePrefix: tests need non-canonical ones.
		p, err := netip.ParsePrefix(s)
		if err != nil {
			panic(err)
		}
		out[i] = p
	}
	return out
}

func TestConstraintsValidate(t *testing.T) {
	t.Parallel()
	tooMany := make(StringList, MaxConstraintEntries+1)
	for i := range tooMany {
		tooMany[i] = fmt.Sprintf("h%d.example", i)
	}
	longLabel := strings.Repeat("a", MaxLabelLen+1) + ".example"
	longHost := strings.Repeat("abcdefghi.", 25) + "example" // 257 bytes
	tests := []struct {
		name  string
		c     Constraints
		field string
		want  string // "" = valid
	}{
		{"zero", Constraints{}, "", ""},
		{"all fields", Constraints{
			Hosts:   StringList{"mcp.internal", "*.corp.example", "127.0.0.1", "::1"},
			CIDRs:   prefixes("10.0.0.0/8", "2001:db8::/32", "192.0.2.7/32"),
			Methods: StringList{"GET", "POST", "M-SEARCH"},
			Paths:   StringList{"/mcp", "/api/repos/*", "/*", "/", "/a/.*", "/files/my doc"},
			MaxBody: 5 << 20,
			Audit:   AuditRequired,
		}, "", ""},
		{"max entries", Constraints{Hosts: tooMany[:MaxConstraintEntries]}, "", ""},

		{"hosts empty list", Constraints{Hosts: StringList{}}, "hosts", "must not be empty"},
		{"hosts too many", Constraints{Hosts: tooMany}, "hosts", "65 entries, at most 64"},
		{"hosts uppercase", Constraints{Hosts: StringList{"Bad.Example"}}, "hosts", `hosts: "Bad.Example" must be lowercase`},
		{"hosts duplicate", Constraints{Hosts: StringList{"a.x", "b.x", "a.x"}}, "hosts", `"a.x" is listed twice`},
		{"hosts empty entry", Constraints{Hosts: StringList{""}}, "hosts", "empty entry"},
		{"hosts port", Constraints{Hosts: StringList{"a.x:443"}}, "hosts", "without a port"},
		{"hosts bracketed IPv6", Constraints{Hosts: StringList{"[::1]"}}, "hosts", "without brackets"},
		{"hosts non-canonical IPv6", Constraints{Hosts: StringList{"0:0::1"}}, "hosts", `write it as "::1"`},
		{"hosts IPv6 zone", Constraints{Hosts: StringList{"fe80::1%eth0"}}, "hosts", "zone"},
		{"hosts trailing dot", Constraints{Hosts: StringList{"a.x."}}, "hosts", "must not end with '.'"},
		{"hosts empty label", Constraints{Hosts: StringList{"a..x"}}, "hosts", "empty label"},
		{"hosts leading dot", Constraints{Hosts: StringList{".x"}}, "hosts", "empty label"},
		{"hosts bare wildcard", Constraints{Hosts: StringList{"*"}}, "hosts", "'*' is allowed only"},
		{"hosts wildcard without domain", Constraints{Hosts: StringList{"*."}}, "hosts", "empty label"},
		{"hosts wildcard inside", Constraints{Hosts: StringList{"a.*.x"}}, "hosts", "'*' is allowed only"},
		{"hosts partial wildcard", Constraints{Hosts: StringList{"a*.x"}}, "hosts", "'*' is allowed only"},
		{"hosts double wildcard", Constraints{Hosts: StringList{"*.*.x"}}, "hosts", "'*' is allowed only"},
		{"hosts label too long", Constraints{Hosts: StringList{longLabel}}, "hosts", "label longer than 63"},
		{"hosts too long", Constraints{Hosts: StringList{longHost}}, "hosts", "longer than 253"},
		{"hosts unicode", Constraints{Hosts: StringList{"bücher.example"}}, "hosts", "must be ASCII"},
		{"hosts slash", Constraints{Hosts: StringList{"a.x/p"}}, "hosts", "'/'"},
		{"hosts escapes echoed input", Constraints{Hosts: StringList{"a\nx"}}, "hosts", `"a\nx"`},

		{"cidrs empty list", Constraints{CIDRs: PrefixList{}}, "cidrs", "must not be empty"},
		{"cidrs host bits", Constraints{CIDRs: prefixes("10.0.0.1/8")}, "cidrs", `"10.0.0.1/8": host bits set`},
		{"cidrs zero prefix", Constraints{CIDRs: PrefixList{{}}}, "cidrs", "invalid prefix"},
		{"cidrs duplicate", Constraints{CIDRs: prefixes("10.0.0.0/8", "10.0.0.0/8")}, "cidrs", "listed twice"},
		{"cidrs 4in6", Constraints{CIDRs: prefixes("::ffff:10.0.0.0/104")}, "cidrs", "IPv4 form"},

		{"methods empty list", Constraints{Methods: StringList{}}, "methods", "must not be empty"},
		{"methods lowercase", Constraints{Methods: StringList{"get"}}, "methods", "must be uppercase"},
		{"methods mixed case", Constraints{Methods: StringList{"Get"}}, "methods", "must be uppercase"},
		{"methods not a token", Constraints{Methods: StringList{"GET POST"}}, "methods", "not an HTTP method token"},
		{"methods empty entry", Constraints{Methods: StringList{""}}, "methods", "empty entry"},
		{"methods duplicate", Constraints{Methods: StringList{"GET", "GET"}}, "methods", "listed twice"},
		{"methods too long", Constraints{Methods: StringList{strings.Repeat("A", MaxEntryLen+1)}}, "methods", "longer than 1024"},

		{"paths empty list", Constraints{Paths: StringList{}}, "paths", "must not be empty"},
		{"paths relative", Constraints{Paths: StringList{"api"}}, "paths", "must start with '/'"},
		{"paths bare star", Constraints{Paths: StringList{"*"}}, "paths", "must start with '/'"},
		{"paths inner star", Constraints{Paths: StringList{"/a/*/b"}}, "paths", "only as the last character"},
		{"paths double star", Constraints{Paths: StringList{"/a**"}}, "paths", "only as the last character"},
		{"paths dot segment", Constraints{Paths: StringList{"/a/./b"}}, "paths", "'.' or '..' segment"},
		{"paths dotdot segment", Constraints{Paths: StringList{"/a/../b"}}, "paths", "'.' or '..' segment"},
		{"paths trailing dotdot", Constraints{Paths: StringList{"/a/.."}}, "paths", "'.' or '..' segment"},
		{"paths dotdot before star", Constraints{Paths: StringList{"/a/../*"}}, "paths", "'.' or '..' segment"},
		{"paths percent", Constraints{Paths: StringList{"/a%2Fb"}}, "paths", "decoded form"},
		{"paths backslash", Constraints{Paths: StringList{`/a\b`}}, "paths", `'\'`},
		{"paths query", Constraints{Paths: StringList{"/a?x=1"}}, "paths", "query or fragment"},
		{"paths fragment", Constraints{Paths: StringList{"/a#x"}}, "paths", "query or fragment"},
		{"paths control", Constraints{Paths: StringList{"/a\x00"}}, "paths", "control character"},
		{"paths invalid utf8", Constraints{Paths: StringList{"/a\xff"}}, "paths", "UTF-8"},
		{"paths duplicate", Constraints{Paths: StringList{"/a", "/a"}}, "paths", "listed twice"},
		{"paths empty entry", Constraints{Paths: StringList{""}}, "paths", "empty entry"},

		{"max_body negative", Constraints{MaxBody: -1}, "max_body", "negative"},
		{"audit other value", Constraints{Audit: "optional"}, "audit", `"optional" is not "required"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			checkErr(t, tt.c.Validate(), tt.field, tt.want)
		})
	}
}

func TestConstraintsIsZero(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		c    *Constraints
		want bool
	}{
		{"nil", nil, true},
		{"zero", &Constraints{}, true},
		{"hosts", &Constraints{Hosts: StringList{"a"}}, false},
		{"non-nil empty list is not absent", &Constraints{Methods: StringList{}}, false},
		{"cidrs", &Constraints{CIDRs: PrefixList{}}, false},
		{"paths", &Constraints{Paths: StringList{"/"}}, false},
		{"max_body", &Constraints{MaxBody: 1}, false},
		{"audit", &Constraints{Audit: AuditRequired}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.c.IsZero(); got != tt.want {
				t.Errorf("IsZero = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestHostMatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		pattern, host string
		want          bool
	}{
		{"exact", "mcp.internal", "mcp.internal", true},
		{"exact other", "mcp.internal", "api.internal", false},
		{"exact case-insensitive", "mcp.internal", "MCP.Internal", true},
		{"trailing dot on host ignored", "mcp.internal", "mcp.internal.", true},
		{"two trailing dots", "mcp.internal", "mcp.internal..", false},
		{"wildcard one label", "*.corp.example", "a.corp.example", true},
		{"wildcard not the domain itself", "*.corp.example", "corp.example", false},
		{"wildcard not two labels", "*.corp.example", "a.b.corp.example", false},
		{"wildcard empty label", "*.corp.example", ".corp.example", false},
		{"wildcard suffix without dot", "*.corp.example", "evilcorp.example", false},
		{"wildcard case-insensitive", "*.corp.example", "A.CORP.Example", true},
		{"wildcard trailing dot", "*.corp.example", "a.corp.example.", true},
		{"exact pattern is not a suffix", "corp.example", "a.corp.example", false},
		{"no Unicode folding", "k.example", "\u212a.example", false},
		{"wildcard no Unicode folding", "*.k.example", "a.\u212a.example", false},
		{"port is not ignored", "mcp.internal", "mcp.internal:443", false},
		{"empty host", "mcp.internal", "", false},
		{"only dot", "mcp.internal", ".", false},
		{"IPv4", "127.0.0.1", "127.0.0.1", true},
		{"IPv6", "::1", "::1", true},
		{"IPv6 bracketed", "::1", "[::1]", true},
		{"brackets only unwrap IPv6", "a.x", "[a.x]", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := HostMatch(tt.pattern, tt.host); got != tt.want {
				t.Errorf("HostMatch(%q, %q) = %v, want %v", tt.pattern, tt.host, got, tt.want)
			}
		})
	}
}

func TestPathMatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		pattern, path string
		want          bool
	}{
		{"exact", "/mcp", "/mcp", true},
		{"exact is not a prefix", "/mcp", "/mcp/x", false},
		{"exact trailing slash differs", "/mcp", "/mcp/", false},
		{"wildcard suffix", "/api/repos/*", "/api/repos/kavach", true},
		{"wildcard deep suffix", "/api/repos/*", "/api/repos/a/b/c", true},
		{"wildcard empty suffix", "/api/repos/*", "/api/repos/", true},
		{"wildcard without slash", "/api/repos/*", "/api/repos", false},
		{"wildcard prefix of segment", "/api*", "/apix", true},
		{"root wildcard", "/*", "/anything", true},
		{"root exact", "/", "/", true},
		{"root exact only", "/", "/a", false},
		{"case folded like Caddy's path matcher", "/api/*", "/API/x", true},
		{"case folded, exact", "/api/Admin", "/API/admin", true},
		{"case folded, Unicode (Kelvin sign lowers to k)", "/api/key*", "/api/\u212aey", true},
		{"case folded, still a prefix", "/api/admin/*", "/API/ADMINX", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := PathMatch(tt.pattern, tt.path); got != tt.want {
				t.Errorf("PathMatch(%q, %q) = %v, want %v", tt.pattern, tt.path, got, tt.want)
			}
		})
	}
}

func TestConstraintsAllows(t *testing.T) {
	t.Parallel()
	full := &Constraints{
		Hosts:   StringList{"mcp.internal", "*.corp.example"},
		CIDRs:   prefixes("10.0.0.0/8", "2001:db8::/32"),
		Methods: StringList{"GET", "POST"},
		Paths:   StringList{"/mcp", "/api/repos/*"},
		MaxBody: 100,
		Audit:   AuditRequired,
	}
	empty := &Constraints{Hosts: StringList{}, CIDRs: PrefixList{}, Methods: StringList{}, Paths: StringList{}}
	var absent *Constraints
	ip := netip.MustParseAddr
	tests := []struct {
		name string
		c    *Constraints
		call func(*Constraints) bool
		want bool
	}{
		{"absent host", &Constraints{}, func(c *Constraints) bool { return c.AllowsHost("anything") }, true},
		{"nil constraints host", absent, func(c *Constraints) bool { return c.AllowsHost("anything") }, true},
		{"host exact", full, func(c *Constraints) bool { return c.AllowsHost("mcp.internal") }, true},
		{"host wildcard", full, func(c *Constraints) bool { return c.AllowsHost("git.corp.example") }, true},
		{"host wildcard apex", full, func(c *Constraints) bool { return c.AllowsHost("corp.example") }, false},
		{"host other", full, func(c *Constraints) bool { return c.AllowsHost("evil.example") }, false},
		{"host empty list allows nothing", empty, func(c *Constraints) bool { return c.AllowsHost("mcp.internal") }, false},

		{"absent ip", &Constraints{}, func(c *Constraints) bool { return c.AllowsIP(netip.Addr{}) }, true},
		{"ip inside", full, func(c *Constraints) bool { return c.AllowsIP(ip("10.1.2.3")) }, true},
		{"ip outside", full, func(c *Constraints) bool { return c.AllowsIP(ip("11.0.0.1")) }, false},
		{"ip mapped is unmapped", full, func(c *Constraints) bool { return c.AllowsIP(ip("::ffff:10.1.2.3")) }, true},
		{"ip6 inside", full, func(c *Constraints) bool { return c.AllowsIP(ip("2001:db8::1")) }, true},
		{"ip6 zone ignored", full, func(c *Constraints) bool { return c.AllowsIP(ip("2001:db8::1%eth0")) }, true},
		{"ip6 outside", full, func(c *Constraints) bool { return c.AllowsIP(ip("2001:db9::1")) }, false},
		{"ip zero denied", full, func(c *Constraints) bool { return c.AllowsIP(netip.Addr{}) }, false},
		{"ip empty list allows nothing", empty, func(c *Constraints) bool { return c.AllowsIP(ip("10.0.0.1")) }, false},

		{"absent method", &Constraints{}, func(c *Constraints) bool { return c.AllowsMethod("DELETE") }, true},
		{"method listed", full, func(c *Constraints) bool { return c.AllowsMethod("POST") }, true},
		{"method not listed", full, func(c *Constraints) bool { return c.AllowsMethod("DELETE") }, false},
		{"method case-sensitive", full, func(c *Constraints) bool { return c.AllowsMethod("get") }, false},
		{"method empty list allows nothing", empty, func(c *Constraints) bool { return c.AllowsMethod("GET") }, false},

		{"absent path", &Constraints{}, func(c *Constraints) bool { return c.AllowsPath("/x/../y") }, true},
		{"path exact", full, func(c *Constraints) bool { return c.AllowsPath("/mcp") }, true},
		{"path prefix", full, func(c *Constraints) bool { return c.AllowsPath("/api/repos/kavach") }, true},
		{"path outside", full, func(c *Constraints) bool { return c.AllowsPath("/admin") }, false},
		{"path dotdot escape refused", full, func(c *Constraints) bool { return c.AllowsPath("/api/repos/../../admin") }, false},
		{"path dot refused", full, func(c *Constraints) bool { return c.AllowsPath("/api/repos/./x") }, false},
		{"path backslash refused", full, func(c *Constraints) bool { return c.AllowsPath(`/api/repos/..\admin`) }, false},
		{"path relative refused", full, func(c *Constraints) bool { return c.AllowsPath("mcp") }, false},
		{"path dots in names fine", full, func(c *Constraints) bool { return c.AllowsPath("/api/repos/a..b/.git") }, true},
		{"path empty list allows nothing", empty, func(c *Constraints) bool { return c.AllowsPath("/") }, false},

		{"absent body", &Constraints{}, func(c *Constraints) bool { return c.AllowsBody(1 << 40) }, true},
		{"body at limit", full, func(c *Constraints) bool { return c.AllowsBody(100) }, true},
		{"body over limit", full, func(c *Constraints) bool { return c.AllowsBody(101) }, false},
		{"body unknown", full, func(c *Constraints) bool { return c.AllowsBody(-1) }, true},

		{"audit required", full, func(c *Constraints) bool { return c.AuditRequired() }, true},
		{"audit absent", &Constraints{}, func(c *Constraints) bool { return c.AuditRequired() }, false},
		{"audit nil", absent, func(c *Constraints) bool { return c.AuditRequired() }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.call(tt.c); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestConstraintsWithin(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		child, parent Constraints
		field         string // "" = within
	}{
		{"both absent", Constraints{}, Constraints{}, ""},
		{"parent absent: anything valid", Constraints{Hosts: StringList{"x"}, CIDRs: prefixes("0.0.0.0/0"), Methods: StringList{"DELETE"}, Paths: StringList{"/*"}, MaxBody: 1 << 40}, Constraints{}, ""},
		{"child absent inherits", Constraints{}, Constraints{Hosts: StringList{"x"}, MaxBody: 1, Audit: AuditRequired}, ""},

		{"hosts equal", Constraints{Hosts: StringList{"a.x"}}, Constraints{Hosts: StringList{"a.x"}}, ""},
		{"hosts subset", Constraints{Hosts: StringList{"b.x"}}, Constraints{Hosts: StringList{"a.x", "b.x"}}, ""},
		{"hosts add one", Constraints{Hosts: StringList{"a.x", "c.x"}}, Constraints{Hosts: StringList{"a.x", "b.x"}}, "hosts"},
		{"hosts wildcard covers one-label sub-host", Constraints{Hosts: StringList{"a.corp.example"}}, Constraints{Hosts: StringList{"*.corp.example"}}, ""},
		{"hosts wildcard does not cover apex", Constraints{Hosts: StringList{"corp.example"}}, Constraints{Hosts: StringList{"*.corp.example"}}, "hosts"},
		{"hosts wildcard does not cover two labels", Constraints{Hosts: StringList{"a.b.corp.example"}}, Constraints{Hosts: StringList{"*.corp.example"}}, "hosts"},
		{"hosts wildcard covers same wildcard", Constraints{Hosts: StringList{"*.corp.example"}}, Constraints{Hosts: StringList{"*.corp.example"}}, ""},
		{"hosts wildcard does not cover deeper wildcard", Constraints{Hosts: StringList{"*.a.corp.example"}}, Constraints{Hosts: StringList{"*.corp.example"}}, "hosts"},
		{"hosts exact does not cover wildcard", Constraints{Hosts: StringList{"*.corp.example"}}, Constraints{Hosts: StringList{"a.corp.example"}}, "hosts"},
		{"hosts empty parent allows nothing", Constraints{Hosts: StringList{"a.x"}}, Constraints{Hosts: StringList{}}, "hosts"},

		{"cidrs equal", Constraints{CIDRs: prefixes("10.0.0.0/8")}, Constraints{CIDRs: prefixes("10.0.0.0/8")}, ""},
		{"cidrs inside", Constraints{CIDRs: prefixes("10.1.0.0/16", "10.2.3.4/32")}, Constraints{CIDRs: prefixes("10.0.0.0/8")}, ""},
		{"cidrs outside", Constraints{CIDRs: prefixes("11.0.0.0/16")}, Constraints{CIDRs: prefixes("10.0.0.0/8")}, "cidrs"},
		{"cidrs wider", Constraints{CIDRs: prefixes("10.0.0.0/7")}, Constraints{CIDRs: prefixes("10.0.0.0/8")}, "cidrs"},
		{"cidrs partly outside", Constraints{CIDRs: prefixes("10.0.0.0/8", "192.168.0.0/16")}, Constraints{CIDRs: prefixes("10.0.0.0/8")}, "cidrs"},
		{"cidrs other family", Constraints{CIDRs: prefixes("::/0")}, Constraints{CIDRs: prefixes("0.0.0.0/0")}, "cidrs"},
		{"cidrs mapped is another family", Constraints{CIDRs: prefixes("::ffff:10.0.0.0/104")}, Constraints{CIDRs: prefixes("10.0.0.0/8")}, "cidrs"},
		{"cidrs ipv6 inside", Constraints{CIDRs: prefixes("2001:db8:1::/48")}, Constraints{CIDRs: prefixes("10.0.0.0/8", "2001:db8::/32")}, ""},

		{"methods subset", Constraints{Methods: StringList{"GET"}}, Constraints{Methods: StringList{"GET", "POST"}}, ""},
		{"methods add", Constraints{Methods: StringList{"GET", "DELETE"}}, Constraints{Methods: StringList{"GET", "POST"}}, "methods"},

		{"paths equal exact", Constraints{Paths: StringList{"/mcp"}}, Constraints{Paths: StringList{"/mcp"}}, ""},
		{"paths exact does not cover longer", Constraints{Paths: StringList{"/mcp/x"}}, Constraints{Paths: StringList{"/mcp"}}, "paths"},
		{"paths exact does not cover wildcard", Constraints{Paths: StringList{"/mcp*"}}, Constraints{Paths: StringList{"/mcp"}}, "paths"},
		{"paths exact within wildcard", Constraints{Paths: StringList{"/api/repos/x"}}, Constraints{Paths: StringList{"/api/*"}}, ""},
		{"paths narrower wildcard", Constraints{Paths: StringList{"/api/repos/*"}}, Constraints{Paths: StringList{"/api/*"}}, ""},
		{"paths /api/* within /api*", Constraints{Paths: StringList{"/api/*"}}, Constraints{Paths: StringList{"/api*"}}, ""},
		{"paths /api* not within /api/*", Constraints{Paths: StringList{"/api*"}}, Constraints{Paths: StringList{"/api/*"}}, "paths"},
		{"paths /api not within /api/*", Constraints{Paths: StringList{"/api"}}, Constraints{Paths: StringList{"/api/*"}}, "paths"},
		{"paths add", Constraints{Paths: StringList{"/mcp", "/admin"}}, Constraints{Paths: StringList{"/mcp"}}, "paths"},
		{"paths root wildcard covers all", Constraints{Paths: StringList{"/a", "/b/*"}}, Constraints{Paths: StringList{"/*"}}, ""},

		{"max_body lower", Constraints{MaxBody: 10}, Constraints{MaxBody: 100}, ""},
		{"max_body equal", Constraints{MaxBody: 100}, Constraints{MaxBody: 100}, ""},
		{"max_body raise", Constraints{MaxBody: 101}, Constraints{MaxBody: 100}, "max_body"},

		{"audit kept", Constraints{Audit: AuditRequired}, Constraints{Audit: AuditRequired}, ""},
		{"audit added", Constraints{Audit: AuditRequired}, Constraints{}, ""},
		{"audit dropped by bad value", Constraints{Audit: "none"}, Constraints{Audit: AuditRequired}, "audit"},

		{"first widening field reported", Constraints{Methods: StringList{"PUT"}, Hosts: StringList{"b"}}, Constraints{Methods: StringList{"GET"}, Hosts: StringList{"a"}}, "hosts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fe := tt.child.Within(&tt.parent)
			switch {
			case tt.field == "" && fe != nil:
				t.Fatalf("Within = %v, want nil", fe)
			case tt.field != "" && fe == nil:
				t.Fatalf("Within = nil, want field %q", tt.field)
			case tt.field != "" && fe.Field != tt.field:
				t.Fatalf("Within = %v, want field %q", fe, tt.field)
			}
		})
	}
}
