package policy

import (
	"encoding/json"
	"strings"
	"testing"
)

func str(s string) ArgValue { return ArgValue{Type: ArgString, Text: s} }
func num(s string) ArgValue { return ArgValue{Type: ArgNumber, Text: s} }

func TestArgRuleCheck(t *testing.T) {
	t.Parallel()
	repo := ArgRule{Paths: StringList{"/repo/*", "/etc/hostname"}}
	corp := ArgRule{Hosts: StringList{"*.corp.example", "corp.example", "10.0.0.1", "2001:db8::1"}}
	corpURL := corp
	corpURL.URL = true
	ports := corpURL
	ports.Ports = PortList{8443}
	ftp := corpURL
	ftp.Schemes = StringList{"ftp"}
	enum := ArgRule{Enum: StringList{"dev", "staging"}}
	rng := ArgRule{Range: &Range{Min: 0, Max: 100}}
	maxlen := ArgRule{MaxLen: 3}
	optional := ArgRule{Paths: StringList{"/repo/*"}, Optional: true}

	tests := []struct {
		name string
		rule ArgRule
		v    ArgValue
		deny string // "" allowed; else a substring of the reason
	}{
		{"path inside", repo, str("/repo/a/b.go"), ""},
		{"path exact", repo, str("/etc/hostname"), ""},
		{"path dot segments dropped", repo, str("/repo/./a//b"), ""},
		{"path double leading slash", repo, str("//repo/a"), ""},
		{"path outside", repo, str("/etc/passwd"), `argument "path" is outside /repo/*, /etc/hostname`},
		{"path the directory itself", repo, str("/repo"), "is outside"},
		{"path sibling prefix", repo, str("/repository/x"), "is outside"},
		{"path case differs", repo, str("/REPO/a"), "is outside"},
		{"path traversal out", repo, str("/repo/../etc/passwd"), `has a '..' segment`},
		{"path traversal deep", repo, str("/repo/a/../../etc/passwd"), `'..'`},
		{"path traversal staying inside", repo, str("/repo/a/../b"), `'..'`},
		{"path trailing dotdot", repo, str("/repo/.."), `'..'`},
		{"path relative", repo, str("repo/a"), "not an absolute path"},
		{"path empty", repo, str(""), "not an absolute path"},
		{"path NUL", repo, str("/repo/a\x00.txt"), "control character"},
		{"path backslash", repo, str("/repo/..\\etc"), `backslash`},
		{"path encoded", repo, str("/repo/%2e%2e/etc/passwd"), "encoded"},
		{"path not a string", repo, num("1"), "must be a string"},
		{"path object", repo, ArgValue{Type: ArgOther, Text: "{}"}, "must be a string"},
		{"path missing", repo, ArgValue{}, `argument "path" is missing`},
		{"path null", repo, ArgValue{Type: ArgNull}, "is missing"},
		{"optional missing", optional, ArgValue{}, ""},
		{"optional null", optional, ArgValue{Type: ArgNull}, ""},
		{"optional present outside", optional, str("/etc/x"), "is outside"},

		{"url allowed", corp, str("https://api.corp.example/x?y=1"), ""},
		{"url apex", corp, str("https://corp.example/"), ""},
		{"url upper case host", corp, str("https://API.Corp.Example/x"), ""},
		{"url default port", corp, str("https://api.corp.example:443/"), ""},
		{"url other port", corp, str("https://api.corp.example:6379/"), "port 6379"},
		{"url listed port", ports, str("https://api.corp.example:8443/"), ""},
		{"url empty port", corp, str("https://api.corp.example:/"), "port"},
		{"url suffix trick", corp, str("https://api.corp.example.evil.example/"), "names a host outside"},
		{"url two labels below", corp, str("https://a.b.corp.example/"), "names a host outside"},
		{"url userinfo trick", corp, str("https://api.corp.example@evil.example/"), "userinfo"},
		{"url userinfo on allowed host", corp, str("https://evil.example@api.corp.example/"), "userinfo"},
		{"url encoded at", corp, str("https://api.corp.example%40evil.example/"), "'%'"},
		{"url backslash", corp, str("https://api.corp.example\\@evil.example/"), `backslash`},
		{"url metadata IP", corp, str("http://169.254.169.254/latest/meta-data/"), "names a host outside"},
		{"url listed IP", corp, str("http://10.0.0.1/"), ""},
		{"url decimal IP", corp, str("http://167772161/"), "non-canonical"},
		{"url hex IP", corp, str("http://0xa.0.0.1/"), "non-canonical"},
		{"url short IP", corp, str("http://10.1/"), "non-canonical"},
		{"url octal-looking IP", corp, str("http://010.0.0.1/"), "non-canonical"},
		{"url IPv6 listed", corp, str("http://[2001:db8::1]/"), ""},
		{"url IPv6 other spelling", corp, str("http://[2001:0db8::0001]/"), ""},
		{"url IPv6 mapped metadata", corp, str("http://[::ffff:169.254.169.254]/"), "names a host outside"},
		{"url IPv6 zone", corp, str("http://[fe80::1%25eth0]/"), "'%'"},
		{"url trailing dot", corp, str("https://api.corp.example./"), "ending in '.'"},
		{"url IDN", corp, str("https://аpi.corp.example/"), "non-ASCII"},
		{"url bad punycode", corp, str("https://xn--a.corp.example/"), "xn--"},
		{"url good punycode", corp, str("https://xn--bcher-kva.corp.example/"), ""},
		{"url scheme", corp, str("file:///etc/passwd"), "scheme"},
		{"url gopher", corp, str("gopher://api.corp.example/"), "scheme"},
		{"url listed scheme", ftp, str("ftp://api.corp.example/"), ""},
		{"url https not listed", ftp, str("https://api.corp.example/"), "scheme"},
		{"url opaque", corp, str("https:api.corp.example"), "not a host name"},
		{"url no host", corp, str("https:///x"), "no host"},
		{"url space", corp, str("https://api.corp.example /"), "space"},
		{"bare host", corp, str("api.corp.example"), ""},
		{"bare host with port", corp, str("api.corp.example:80"), "not a host name"},
		{"bare host outside", corp, str("evil.example"), "names a host outside"},
		{"bare host in url rule", corpURL, str("api.corp.example"), "not an absolute URL"},
		{"bare scheme-relative", corp, str("//evil.example/"), "not a host name"},

		{"enum in", enum, str("dev"), ""},
		{"enum out", enum, str("prod"), `is not one of dev, staging`},
		{"enum case", enum, str("Dev"), "is not one of"},
		{"enum number", enum, num("1"), "must be a string"},
		{"range in", rng, num("100"), ""},
		{"range fraction", rng, num("99.5"), ""},
		{"range low", rng, num("-1"), "is outside 0..100"},
		{"range high", rng, num("1e3"), "outside"},
		{"range huge", rng, num("1e400"), "outside"},
		{"range string", rng, str("5"), "must be a number"},
		{"maxlen ok", maxlen, str("abc"), ""},
		{"maxlen characters", maxlen, str("äöü"), ""},
		{"maxlen over", maxlen, str("abcd"), "longer than 3 characters"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			name := "path"
			if tc.rule.Hosts != nil {
				name = "url"
			}
			if reason := tc.rule.validate(); reason != "" {
				t.Fatalf("invalid rule: %s", reason)
			}
			_, _, fe := tc.rule.Check(name, tc.v)
			switch {
			case tc.deny == "" && fe != nil:
				t.Fatalf("denied: %v", fe)
			case tc.deny != "" && fe == nil:
				t.Fatalf("allowed, want denial %q", tc.deny)
			case tc.deny != "" && !strings.Contains(fe.Reason, tc.deny):
				t.Fatalf("reason %q, want it to contain %q", fe.Reason, tc.deny)
			case fe != nil && (fe.Field != "args" || !strings.Contains(fe.Reason, `"`+name+`"`)):
				t.Fatalf("denial %v does not name the argument", fe)
			}
		})
	}
}

func TestArgsTargetAgainstTokenHosts(t *testing.T) {
	t.Parallel()
	c := Constraints{Hosts: StringList{"api.corp.example", "*.2.3.4"}, Args: Args{"fetch": {"url": {Hosts: StringList{"*.corp.example", "1.2.3.4"}}}}}
	args := func(u string) func(string) ArgValue {
		return func(string) ArgValue { return str(u) }
	}
	if fe := c.PermitsArgs("fetch", args("https://api.corp.example/")); fe != nil {
		t.Fatal(fe)
	}
	if fe := c.PermitsArgs("fetch", args("https://www.corp.example/")); fe == nil || !strings.Contains(fe.Reason, "token's hosts") {
		t.Fatalf("www allowed by the args rule but outside the token's hosts: %v", fe)
	}
	// An IP address meets a hosts entry only when listed exactly: "*.2.3.4"
	// is no wildcard over addresses.
	if fe := c.PermitsArgs("fetch", args("http://1.2.3.4/")); fe == nil {
		t.Fatal("1.2.3.4 passed the token's *.2.3.4")
	}
	if fe := c.PermitsArgs("other", args("http://1.2.3.4/")); fe != nil {
		t.Fatalf("a tool without rules: %v", fe)
	}
}

func TestArgsValidate(t *testing.T) {
	t.Parallel()
	bad := []struct {
		args Args
		want string
	}{
		{Args{}, "must not be empty"},
		{Args{"t": {}}, "must not be empty"},
		{Args{"": {"a": {MaxLen: 1}}}, "empty tool name"},
		{Args{"t": {"": {MaxLen: 1}}}, "empty argument name"},
		{Args{"t": {"/a~2": {MaxLen: 1}}}, "RFC 6901"},
		{Args{"t": {"a": {}}}, "needs paths, hosts"},
		{Args{"t": {"a": {Optional: true}}}, "needs paths, hosts"},
		{Args{"t": {"a": {Paths: StringList{"/a"}, Enum: StringList{"x"}}}}, "one of them"},
		{Args{"t": {"a": {Range: &Range{0, 1}, MaxLen: 3}}}, "not both"},
		{Args{"t": {"a": {Paths: StringList{"/a"}, URL: true}}}, "come with hosts"},
		{Args{"t": {"a": {Paths: StringList{"/repo/**"}}}}, "last character"},
		{Args{"t": {"a": {Paths: StringList{"/repo/../x"}}}}, "'..'"},
		{Args{"t": {"a": {Hosts: StringList{"A.example"}}}}, "lowercase"},
		{Args{"t": {"a": {Hosts: StringList{"x.example"}, Schemes: StringList{"HTTP"}}}}, "scheme"},
		{Args{"t": {"a": {Hosts: StringList{"x.example"}, Ports: PortList{0}}}}, "not a port"},
		{Args{"t": {"a": {Enum: StringList{"x", "x"}}}}, "twice"},
		{Args{"t": {"a": {Range: &Range{2, 1}}}}, "above max"},
		{Args{"t": {"a": {Range: &Range{0, 1 << 60}}}}, "within"},
		{Args{"t": {"a": {MaxLen: -1}}}, "negative"},
	}
	for _, tc := range bad {
		c := Constraints{Args: tc.args}
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.args, err, tc.want)
		}
		if _, err := json.Marshal(c); err == nil {
			t.Errorf("%+v encoded", tc.args)
		}
	}
}

func TestArgsJSON(t *testing.T) {
	t.Parallel()
	c := Constraints{Hosts: StringList{"a.example"}, Args: Args{
		"read_file": {"path": {Paths: StringList{"/repo/*"}}, "/opts/mode": {Enum: StringList{"r"}, Optional: true}},
		"fetch":     {"url": {Hosts: StringList{"*.corp.example"}, URL: true, Schemes: StringList{"https"}, Ports: PortList{8443}, MaxLen: 2048}},
		"pay":       {"amount": {Range: &Range{Min: -5, Max: 100}}},
	}}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"hosts":["a.example"],"args":{"fetch":{"url":{"hosts":["*.corp.example"],"url":true,"schemes":["https"],"ports":[8443],"max_len":2048}},"pay":{"amount":{"range":[-5,100]}},"read_file":{"/opts/mode":{"enum":["r"],"optional":true},"path":{"paths":["/repo/*"]}}}}`
	if string(b) != want {
		t.Fatalf("encoded\n%s\nwant\n%s", b, want)
	}
	var back Constraints
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	b2, _ := json.Marshal(back)
	if string(b2) != want {
		t.Fatalf("round trip\n%s", b2)
	}

	bad := map[string]string{
		`{"args":null}`:     "null",
		`{"args":{}}`:       "empty",
		`{"args":{"t":{}}}`: "empty",
		`{"args":{"t":{"a":{"paths":["/a"]}},"t":{}}}`:             "twice",
		`{"args":{"t":{"a":{"paths":["/a"]},"a":{"max_len":1}}}}`:  "twice",
		`{"args":{"t":{"a":{"Paths":["/a"]}}}}`:                    "unknown rule",
		`{"args":{"t":{"a":{"paths":["/a"],"paths":["/b"]}}}}`:     "twice",
		`{"args":{"t":{"a":{"paths":[]}}}}`:                        "empty",
		`{"args":{"t":{"a":{"hosts":["x.example"],"url":false}}}}`: "must be true",
		`{"args":{"t":{"a":{"range":[1]}}}}`:                       "[min, max]",
		`{"args":{"t":{"a":{"range":[0,1.5]}}}}`:                   "integers",
		`{"args":{"t":{"a":{"max_len":0}}}}`:                       "must not be 0",
		`{"args":{"t":{"a":{"optional":true}}}}`:                   "needs paths",
		`{"args":{"t":{"a":{"enum":["x"],"paths":["/a"]}}}}`:       "one of them",
	}
	for in, want := range bad {
		var c Constraints
		err := json.Unmarshal([]byte(in), &c)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", in, err, want)
		}
	}
}

func TestAttenuateArgs(t *testing.T) {
	t.Parallel()
	parent := Rights{Scopes: []string{"a"}, Audience: []string{"https://r/"}, Constraints: Constraints{Args: Args{
		"read_file": {"path": {Paths: StringList{"/repo/*"}}},
		"fetch":     {"url": {Hosts: StringList{"*.corp.example", "10.0.0.1"}, URL: true}},
		"deploy":    {"env": {Enum: StringList{"dev", "staging"}}, "n": {Range: &Range{0, 10}}, "msg": {MaxLen: 100}},
	}}}
	ok := []Args{
		nil,
		{"read_file": {"path": {Paths: StringList{"/repo/src/*", "/repo/README"}}}},
		{"fetch": {"url": {Hosts: StringList{"api.corp.example"}}}},
		{"fetch": {"url": {Hosts: StringList{"10.0.0.1"}, Schemes: StringList{"https"}}}},
		{"deploy": {"env": {Enum: StringList{"dev"}}, "n": {Range: &Range{2, 3}}, "msg": {MaxLen: 10}}},
		{"deploy": {"env": {MaxLen: 3}}},
		{"other": {"x": {Enum: StringList{"y"}}}},
		{"read_file": {"mode": {Enum: StringList{"r"}}}},
	}
	for _, a := range ok {
		child, err := Attenuate(parent, Request{Constraints: Constraints{Args: a}})
		if err != nil {
			t.Errorf("%+v refused: %v", a, err)
			continue
		}
		if child.Constraints.Args["read_file"]["path"].Paths == nil {
			t.Errorf("%+v: the parent's path rule was not inherited: %+v", a, child.Constraints.Args)
		}
	}
	wide := map[string]Args{
		"path outside":       {"read_file": {"path": {Paths: StringList{"/etc/*"}}}},
		"path wider":         {"read_file": {"path": {Paths: StringList{"/repo*"}}}},
		"path made optional": {"read_file": {"path": {Optional: true, MaxLen: 5}}},
		"path to enum":       {"read_file": {"path": {Enum: StringList{"/etc/passwd"}}}},
		"host outside":       {"fetch": {"url": {Hosts: StringList{"evil.example"}}}},
		"wildcard deeper":    {"fetch": {"url": {Hosts: StringList{"*.a.corp.example"}}}},
		"scheme added":       {"fetch": {"url": {Hosts: StringList{"api.corp.example"}, Schemes: StringList{"ftp"}}}},
		"port added":         {"fetch": {"url": {Hosts: StringList{"api.corp.example"}, Ports: PortList{6379}}}},
		"enum added":         {"deploy": {"env": {Enum: StringList{"prod"}}}},
		"range wider":        {"deploy": {"n": {Range: &Range{0, 11}}}},
		"maxlen larger":      {"deploy": {"msg": {MaxLen: 101}}},
		"maxlen with range":  {"deploy": {"n": {MaxLen: 3}}},
	}
	for name, a := range wide {
		_, err := Attenuate(parent, Request{Constraints: Constraints{Args: a}})
		if fe, _ := err.(*FieldError); fe == nil || fe.Field != "args" {
			t.Errorf("%s: %v, want an args error", name, err)
		}
	}
	// An IP address is not within a parent wildcard that would HostMatch it.
	p2 := Rights{Constraints: Constraints{Args: Args{"f": {"u": {Hosts: StringList{"*.2.3.4"}}}}}}
	if _, err := Attenuate(p2, Request{Constraints: Constraints{Args: Args{"f": {"u": {Hosts: StringList{"1.2.3.4"}}}}}}); err == nil {
		t.Error("1.2.3.4 accepted within *.2.3.4")
	}
}

func TestPermitsArgs(t *testing.T) {
	t.Parallel()
	r := Rights{Scopes: []string{"a"}, Audience: []string{"https://r/"}, Constraints: Constraints{Args: Args{"read_file": {"path": {Paths: StringList{"/repo/*"}}}}}}
	op := Operation{Scopes: []string{"a"}, Resource: "https://r/", Tool: "read_file", BodySize: -1,
		Args: func(n string) ArgValue { return str("/etc/passwd") }}
	if fe := r.Permits(&op); fe == nil || fe.Field != "args" {
		t.Fatalf("outside path: %v", fe)
	}
	op.Args = nil
	if fe := r.Permits(&op); fe == nil || !strings.Contains(fe.Reason, "missing") {
		t.Fatalf("no arguments: %v", fe)
	}
	op.Tool = "write_file"
	if fe := r.Permits(&op); fe != nil {
		t.Fatalf("another tool: %v", fe)
	}
}
