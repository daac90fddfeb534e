package mcp

import (
	"slices"
	"strings"
	"testing"
)

func mustRules(t testing.TB, r Rules) *Rules {
	t.Helper()
	if err := r.Compile(); err != nil {
		t.Fatal(err)
	}
	return &r
}

func scopes(s ...string) []string { return s }

func TestCompileErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		rules Rules
		want  string // in the error
	}{
		{"bad scope", Rules{Tools: []Rule{{"read_file", scopes("a::b")}}}, `tool "read_file"`},
		{"wildcard scope", Rules{Tools: []Rule{{"read_file", scopes("repository:*")}}}, "concrete"},
		{"wildcard scope names it", Rules{Prompts: []Rule{{"p", scopes("ok", "x:*")}}}, `"x:*"`},
		{"no scope", Rules{Tools: []Rule{{"read_file", nil}}}, "requires no scope"},
		{"empty pattern", Rules{Tools: []Rule{{"", scopes("a")}}}, "is empty"},
		{"control character", Rules{Tools: []Rule{{"a\nb", scopes("a")}}}, "control"},
		{"tool glob", Rules{Tools: []Rule{{"git_*", scopes("a")}}}, "whole pattern"},
		{"prompt glob", Rules{Prompts: []Rule{{"*x", scopes("a")}}}, "whole pattern"},
		{"resource inner star", Rules{Resources: []Rule{{"file:///a*/b", scopes("a")}}}, "last character"},
		{"resource two stars", Rules{Resources: []Rule{{"file:///a**", scopes("a")}}}, "last character"},
		{"resource without scheme", Rules{Resources: []Rule{{"/repo/*", scopes("a")}}}, "absolute URI"},
		{"resource star after scheme only", Rules{Resources: []Rule{{"fi*", scopes("a")}}}, "absolute URI"},
		{"duplicate tool", Rules{Tools: []Rule{{"x", scopes("a")}, {"x", scopes("b")}}}, "twice"},
		{"duplicate star", Rules{Tools: []Rule{{"*", scopes("a")}, {"*", scopes("b")}}}, "twice"},
		{"duplicate resource by scheme case", Rules{Resources: []Rule{{"file:///a", scopes("a")}, {"FILE:///a", scopes("b")}}}, "twice"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			err := c.rules.Compile()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
			if c.rules.compiled {
				t.Error("compiled despite the error")
			}
		})
	}
}

func call(name string) *Message {
	return &Message{Kind: KindRequest, Method: MethodToolsCall, ID: IntID(1), Name: name}
}

func TestDecideTools(t *testing.T) {
	t.Parallel()
	withStar := mustRules(t, Rules{Tools: []Rule{
		{"read_file", scopes("files:read")},
		{"write_file", scopes("files:write", "files:read")},
		{"*", scopes("mcp:demo:call")},
	}})
	exactOnly := mustRules(t, Rules{Tools: []Rule{{"read_file", scopes("files:read")}}})
	cases := []struct {
		name        string
		rules       *Rules
		have        []string
		tool        string
		ok          bool
		missing     string
		requiredAll []string
	}{
		{"exact and star both held", withStar, scopes("files:read", "mcp:demo:call"), "read_file", true, "", scopes("files:read", "mcp:demo:call")},
		{"star applies to a named tool too", withStar, scopes("files:read"), "read_file", false, "mcp:demo:call", scopes("files:read", "mcp:demo:call")},
		{"exact scope missing", withStar, scopes("mcp:demo:call"), "read_file", false, "files:read", scopes("files:read", "mcp:demo:call")},
		{"every scope of the rule", withStar, scopes("files:write", "mcp:demo:call"), "write_file", false, "files:read", scopes("files:write", "files:read", "mcp:demo:call")},
		{"granted wildcard", withStar, scopes("files:*", "mcp:*:call"), "write_file", true, "", scopes("files:write", "files:read", "mcp:demo:call")},
		{"unnamed tool under star", withStar, scopes("mcp:demo:call"), "post_comment", true, "", scopes("mcp:demo:call")},
		{"unnamed tool under star, no scope", withStar, nil, "post_comment", false, "mcp:demo:call", scopes("mcp:demo:call")},
		{"names are case-sensitive", exactOnly, scopes("files:read"), "Read_File", false, "", nil},
		{"no rule matches: denied", exactOnly, scopes("files:read", "mcp:demo:call"), "write_file", false, "", nil},
		{"exact only", exactOnly, scopes("files:read"), "read_file", true, "", scopes("files:read")},
		{"invalid name", withStar, scopes("mcp:demo:call"), "a\x00", false, "", scopes("mcp:demo:call")},
		{"empty name", withStar, scopes("mcp:demo:call"), "", false, "", scopes("mcp:demo:call")},
		{"nil rules", nil, scopes("files:read"), "read_file", false, "", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ok, missing := Decide(c.rules, c.have, call(c.tool))
			if ok != c.ok || missing != c.missing {
				t.Errorf("Decide = %v, %q; want %v, %q", ok, missing, c.ok, c.missing)
			}
			if got := RequiredScopes(c.rules, call(c.tool)); !slices.Equal(got, c.requiredAll) {
				t.Errorf("RequiredScopes = %q, want %q", got, c.requiredAll)
			}
		})
	}
}

func TestDecideUncompiled(t *testing.T) {
	t.Parallel()
	r := &Rules{Tools: []Rule{{"*", scopes("a")}}}
	if ok, _ := Decide(r, scopes("a"), call("x")); ok {
		t.Error("uncompiled rules allowed a call")
	}
	if RequiredScopes(r, call("x")) != nil {
		t.Error("uncompiled rules required scopes")
	}
}

func TestDecideMethods(t *testing.T) {
	t.Parallel()
	// No rules at all: only targeted methods are refused.
	empty := mustRules(t, Rules{})
	cases := []struct {
		name string
		m    Message
		ok   bool
	}{
		{"response", Message{Kind: KindResponse, ID: IntID(1)}, true},
		{"initialized", Message{Kind: KindNotification, Method: NotificationInitialized}, true},
		{"cancelled", Message{Kind: KindNotification, Method: NotificationCancelled}, true},
		{"unknown notification", Message{Kind: KindNotification, Method: "notifications/message"}, false},
		{"notification with a request method", Message{Kind: KindNotification, Method: MethodToolsCall}, false},
		{"request with a notification method", Message{Kind: KindRequest, Method: NotificationInitialized, ID: IntID(1)}, false},
		{"initialize", Message{Kind: KindRequest, Method: MethodInitialize, ID: IntID(1)}, true},
		{"tools/list", Message{Kind: KindRequest, Method: MethodToolsList, ID: IntID(1)}, true},
		{"resources/subscribe without a rule", Message{Kind: KindRequest, Method: MethodResourcesSubscribe, ID: IntID(1), Name: "file:///x"}, false},
		{"resources/unsubscribe without a rule", Message{Kind: KindRequest, Method: MethodResourcesUnsubscribe, ID: IntID(1), Name: "file:///x"}, false},
		{"resources/list", Message{Kind: KindRequest, Method: MethodResourcesList, ID: IntID(1)}, true},
		{"server/discover", Message{Kind: KindRequest, Method: MethodServerDiscover, ID: IntID(1)}, true},
		{"case variant", Message{Kind: KindRequest, Method: "Tools/List", ID: IntID(1)}, false},
		{"unknown", Message{Kind: KindRequest, Method: "tasks/result", ID: IntID(1)}, false},
		{"server-only method", Message{Kind: KindRequest, Method: "sampling/createMessage", ID: IntID(1)}, false},
		{"tools/call without a rule", *call("x"), false},
		{"resources/read without a rule", Message{Kind: KindRequest, Method: MethodResourcesRead, ID: IntID(1), Name: "file:///x"}, false},
		{"prompts/get without a rule", Message{Kind: KindRequest, Method: MethodPromptsGet, ID: IntID(1), Name: "p"}, false},
		{"zero kind", Message{Method: MethodToolsList}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ok, missing := Decide(empty, nil, &c.m)
			if ok != c.ok || missing != "" {
				t.Errorf("Decide = %v, %q; want %v", ok, missing, c.ok)
			}
		})
	}
	if ok, _ := Decide(empty, nil, nil); ok {
		t.Error("nil message allowed")
	}
}

func read(uri string) *Message {
	return &Message{Kind: KindRequest, Method: MethodResourcesRead, ID: IntID(1), Name: uri}
}

func TestDecideResources(t *testing.T) {
	t.Parallel()
	r := mustRules(t, Rules{Resources: []Rule{
		{"file:///repo/README.md", scopes("docs:read")},
		{"file:///repo/*", scopes("repository:read")},
		{"file:///repo/secret/*", scopes("secret:read")},
		{"https://api.example/items", scopes("items:read")},
	}})
	all := scopes("docs:read", "repository:read", "secret:read", "items:read")
	cases := []struct {
		uri     string
		have    []string
		ok      bool
		missing string
	}{
		{"file:///repo/README.md", scopes("docs:read", "repository:read"), true, ""},
		{"file:///repo/README.md", scopes("docs:read"), false, "repository:read"},
		{"file:///repo/src/main.go", scopes("repository:read"), true, ""},
		{"file:///repo/secret/key", scopes("repository:read"), false, "secret:read"},
		{"file:///repo/secret/key", scopes("repository:read", "secret:read"), true, ""},
		{"FILE:///repo/secret/key", scopes("repository:read"), false, "secret:read"},
		{"File:///repo/src/a", scopes("repository:read"), true, ""},
		{"file:///REPO/src/a", all, false, ""}, // only the scheme folds
		{"file:///repository", all, false, ""},
		{"file:///other", all, false, ""},
		{"https://api.example/items", scopes("items:read"), true, ""},
		{"https://api.example/items/1", all, false, ""},
		{"file:///repo/a%20b.txt", scopes("repository:read"), true, ""},
		// Spellings that could name another resource are denied outright.
		{"file:///repo/../etc/passwd", all, false, ""},
		{"file:///repo/src/..", all, false, ""},
		{"file:///repo/./secret/key", all, false, ""},
		{"file:///repo/x/..?a", all, false, ""},
		{"file:///repo/%2e%2e/etc/passwd", all, false, ""},
		{"file:///repo/%2Fetc", all, false, ""},
		{"file:///repo/%73ecret/key", all, false, ""},
		{"file:///repo/%7E", all, false, ""},
		{"file:///repo\\secret\\key", all, false, ""},
		{"file:///repo/%zz", all, false, ""},
		{"file:///repo/%4", all, false, ""},
		{"file:///repo/%00", all, false, ""},
		{"file:///repo/a..b", scopes("repository:read"), true, ""},
		{"file:///repo/.hidden", scopes("repository:read"), true, ""},
		// Spellings whose meaning differs between servers (issue 13, hole
		// 7): Tomcat-style path parameters, which such servers strip (and
		// resolve "..;" as ".."); Windows, which strips trailing dots and
		// spaces from a name; servers that decode twice; controls.
		{"file:///repo/..;/secret", all, false, ""},
		{"file:///repo/..;/etc/passwd", all, false, ""},
		{"file:///repo/.;x/secret/key", all, false, ""},
		{"file:///repo/...;x/secret/key", all, false, ""},
		{"file:///repo/;x/secret/key", all, false, ""},
		{"file:///repo/secret;x/key", all, false, ""},
		{"file:///repo/secret;jsessionid=1", all, false, ""},
		{"file:///repo/a%3Bb", all, false, ""},
		{"file:///repo/a./b", all, false, ""},
		{"file:///repo/secret./key", all, false, ""},
		{"file:///repo/secret../key", all, false, ""},
		{"file:///repo/secret.", all, false, ""},
		{"file:///repo/.../secret/key", all, false, ""},
		{"file:///repo/secret /key", all, false, ""},
		{"file:///repo/secret%20/key", all, false, ""},
		{"file:///repo/secret.#x", all, false, ""},
		{"file:///repo/%25", all, false, ""},
		{"file:///repo/100%25.txt", all, false, ""},
		{"file:///repo/%252e%252e/secret", all, false, ""},
		{"file:///repo/%252E%252E/secret", all, false, ""},
		{"file:///repo/%25252e/secret", all, false, ""},
		{"file:///repo/a\x00b", all, false, ""},
		{"file:///repo/a\x1fb", all, false, ""},
		{"file:///repo/a\x7fb", all, false, ""},
		{"file:///repo/a\u0085b", all, false, ""},
		{"file:///repo/a%0Ab", all, false, ""},
		{"file:///repo/a%7F", all, false, ""},
		{"file:///repo/a%C2%85b", all, false, ""},
		{"file:///repo/a%C2%9F", all, false, ""},
		{"file:///repo//secret/key", all, false, ""},
		{"file:///repo/src//a", all, false, ""},
		// RFC 3986 §6.2.2.1: "%c3" and "%C3" are one octet; only the
		// upper-case spelling (what every common encoder writes) matches.
		{"file:///repo/%c3%a9", all, false, ""},
		{"file:///repo/%C3%a9", all, false, ""},
		// Authorities that name the same host another way.
		{"file://localhost/repo/secret/key", all, false, ""},
		{"https://API.example/items", all, false, ""},
		{"https://api.example./items", all, false, ""},
		{"https://user@api.example/items", all, false, ""},
		{"https://api.example@evil.example/items", all, false, ""},
		{"https://api.example:/items", all, false, ""},
		{"https://api.example:443/items", all, false, ""},
		{"https://api.example:0443/items", all, false, ""},
		// What stays allowed.
		{"file:///repo/%C3%A9t%C3%A9.txt", scopes("repository:read"), true, ""},
		{"file:///repo/src/", scopes("repository:read"), true, ""},
		{"file:///repo/a.b/c", scopes("repository:read"), true, ""},
		{"file:///repo/a%2Cb", scopes("repository:read"), true, ""},
		{"file:///repo/a?v=1.", scopes("repository:read"), true, ""},
		{"file:///repo/{path}", scopes("repository:read"), true, ""},
		{"file:///repo/secret/key", scopes("repository:read", "secret:read"), true, ""},
	}
	for _, c := range cases {
		ok, missing := Decide(r, c.have, read(c.uri))
		if ok != c.ok || missing != c.missing {
			t.Errorf("%s with %q: %v, %q; want %v, %q", c.uri, c.have, ok, missing, c.ok, c.missing)
		}
	}
	anyRes := mustRules(t, Rules{Resources: []Rule{{"*", scopes("res:read")}}})
	for _, uri := range []string{"urn:x", "https://api.example:8443/items?q=a;b", "data:text/plain;base64,SGk=", "urn:a:b;c", "https://[2001:db8::1]/x"} {
		if ok, _ := Decide(anyRes, scopes("res:read"), read(uri)); !ok {
			t.Errorf(`"*" does not cover %s`, uri)
		}
	}
	for _, uri := range []string{"urn:a/..;/b", "urn:a/.;/b", "urn:a//b", "urn:a./b", "https://[2001:DB8::1]/x", "https://h/a;b"} {
		if ok, _ := Decide(anyRes, scopes("res:read"), read(uri)); ok {
			t.Errorf(`"*" allowed %s`, uri)
		}
	}
	if ok, _ := Decide(anyRes, scopes("res:read"), read("file:///a/../b")); ok {
		t.Error(`"*" allowed a dot segment`)
	}
	if got := RequiredScopes(r, read("file:///repo/secret/k")); !slices.Equal(got, scopes("repository:read", "secret:read")) {
		t.Errorf("RequiredScopes %q", got)
	}
}

// resources/subscribe and resources/unsubscribe name a resource as
// resources/read does (params.uri), and a subscription delivers that
// resource's updates: they meet the same rules (DESIGN.md §4.1).
func TestDecideSubscribe(t *testing.T) {
	t.Parallel()
	r := mustRules(t, Rules{Resources: []Rule{
		{"file:///repo/*", scopes("repository:read")},
		{"file:///repo/secret/*", scopes("secret:read")},
	}})
	for _, method := range []string{MethodResourcesRead, MethodResourcesSubscribe, MethodResourcesUnsubscribe} {
		m := func(uri string) *Message {
			return &Message{Kind: KindRequest, Method: method, ID: IntID(1), Name: uri}
		}
		cases := []struct {
			uri     string
			have    []string
			ok      bool
			missing string
			need    []string
		}{
			{"file:///etc/passwd", scopes("repository:read", "secret:read"), false, "", nil},
			{"file:///repo/a", scopes("repository:read"), true, "", scopes("repository:read")},
			{"file:///repo/a", nil, false, "repository:read", scopes("repository:read")},
			{"file:///repo/secret/k", scopes("repository:read"), false, "secret:read", scopes("repository:read", "secret:read")},
			{"file:///repo/../etc/passwd", scopes("repository:read", "secret:read"), false, "", nil},
		}
		for _, c := range cases {
			ok, missing := Decide(r, c.have, m(c.uri))
			if ok != c.ok || missing != c.missing {
				t.Errorf("%s %s with %q: %v, %q; want %v, %q", method, c.uri, c.have, ok, missing, c.ok, c.missing)
			}
			if got := RequiredScopes(r, m(c.uri)); !slices.Equal(got, c.need) {
				t.Errorf("%s %s: RequiredScopes %q, want %q", method, c.uri, got, c.need)
			}
		}
	}
	// A subscription to file:///etc/passwd on a route with no resource
	// rule at all (issue 13, hole 7).
	if ok, _ := Decide(mustRules(t, Rules{}), scopes("repository:read"), &Message{Kind: KindRequest, Method: MethodResourcesSubscribe, ID: IntID(1), Name: "file:///etc/passwd"}); ok {
		t.Error("subscribe without resource rules allowed")
	}
}

// completion/complete meets the rules of what it completes: the prompt
// rules for a ref/prompt, the resource rules for a ref/resource, whose URI
// template is matched as text with the same alias rules as a URI.
func TestDecideCompletion(t *testing.T) {
	t.Parallel()
	r := mustRules(t, Rules{
		Prompts: []Rule{{"review", scopes("pullrequest:read")}},
		Resources: []Rule{
			{"file:///repo/*", scopes("repository:read")},
			{"file:///repo/secret/*", scopes("secret:read")},
		},
		Tools: []Rule{{"*", scopes("mcp:call")}},
	})
	complete := func(target Target, name string) *Message {
		return &Message{Kind: KindRequest, Method: MethodCompletionComplete, ID: IntID(1), Name: name, Target: target}
	}
	all := scopes("pullrequest:read", "repository:read", "secret:read", "mcp:call")
	cases := []struct {
		name    string
		m       *Message
		have    []string
		ok      bool
		missing string
		need    []string
	}{
		{"prompt", complete(TargetPrompt, "review"), scopes("pullrequest:read"), true, "", scopes("pullrequest:read")},
		{"prompt without its scope", complete(TargetPrompt, "review"), scopes("repository:read"), false, "pullrequest:read", scopes("pullrequest:read")},
		{"prompt no rule names", complete(TargetPrompt, "deploy"), all, false, "", nil},
		{"prompt name is not a tool name", complete(TargetPrompt, "x"), all, false, "", nil},
		{"template inside the repo", complete(TargetResource, "file:///repo/src/{path}"), scopes("repository:read"), true, "", scopes("repository:read")},
		{"template inside the secret", complete(TargetResource, "file:///repo/secret/{name}"), scopes("repository:read"), false, "secret:read", scopes("repository:read", "secret:read")},
		// A template wider than every rule lists what no rule allows.
		{"template wider than the rules", complete(TargetResource, "file:///{path}"), all, false, "", nil},
		{"template escaping by dots", complete(TargetResource, "file:///repo/../{path}"), all, false, "", nil},
		{"template with an alias", complete(TargetResource, "file:///repo/%73ecret/{name}"), all, false, "", nil},
		{"resource template matched as text", complete(TargetResource, "review"), all, false, "", nil},
		{"no target", complete(TargetNone, "review"), all, false, "", nil},
		{"tool target", complete(TargetTool, "x"), all, false, "", nil},
		{"empty name", complete(TargetPrompt, ""), all, false, "", nil},
		{"nil rules", nil, all, false, "", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			rules := r
			m := c.m
			if m == nil {
				rules, m = nil, complete(TargetPrompt, "review")
			}
			ok, missing := Decide(rules, c.have, m)
			if ok != c.ok || missing != c.missing {
				t.Errorf("Decide = %v, %q; want %v, %q", ok, missing, c.ok, c.missing)
			}
			if got := RequiredScopes(rules, m); !slices.Equal(got, c.need) {
				t.Errorf("RequiredScopes = %q, want %q", got, c.need)
			}
		})
	}
	// The method decides the rules of every other targeted method: a
	// Target that disagrees (a hand-built Message) changes nothing.
	if ok, _ := Decide(r, scopes("pullrequest:read"), &Message{Kind: KindRequest, Method: MethodToolsCall, ID: IntID(1), Name: "review", Target: TargetPrompt}); ok {
		t.Error("a tools/call was decided by the prompt rules")
	}
	// Decoded bodies: a completion on a prompt with no rule is refused
	// (issue 13, hole 7), one on a ruled prompt passes.
	for body, want := range map[string]bool{
		`{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"deploy"},"argument":{"name":"env","value":"p"}}}`:               false,
		`{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"review"},"argument":{"name":"lang","value":"p"}}}`:              true,
		`{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/resource","uri":"file:///etc/{file}"},"argument":{"name":"file","value":"p"}}}`: false,
	} {
		m, err := Decode([]byte(body))
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		if ok, _ := Decide(r, all, &m); ok != want {
			t.Errorf("%s: allowed %v, want %v", body, ok, want)
		}
	}
}

func TestDecidePrompts(t *testing.T) {
	t.Parallel()
	r := mustRules(t, Rules{Prompts: []Rule{{"review", scopes("pullrequest:read")}}})
	get := func(name string) *Message {
		return &Message{Kind: KindRequest, Method: MethodPromptsGet, ID: IntID(1), Name: name}
	}
	if ok, _ := Decide(r, scopes("pullrequest:read"), get("review")); !ok {
		t.Error("review denied")
	}
	if ok, missing := Decide(r, nil, get("review")); ok || missing != "pullrequest:read" {
		t.Errorf("review without scope: %v, %q", ok, missing)
	}
	if ok, _ := Decide(r, scopes("pullrequest:read"), get("other")); ok {
		t.Error("unnamed prompt allowed")
	}
	// Tool rules do not leak into prompts, nor prompt rules into tools.
	if ok, _ := Decide(r, scopes("pullrequest:read"), call("review")); ok {
		t.Error("a prompt rule allowed a tool")
	}
}

// Decide is what a decoded body gets: no rule check can be skipped by
// spelling the body differently.
func TestDecideOnDecodedBodies(t *testing.T) {
	t.Parallel()
	r := mustRules(t, Rules{Tools: []Rule{{"read_file", scopes("files:read")}}})
	for _, body := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"write_file"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"Tools/Call","params":{"name":"read_file"}}`,
		`{"jsonrpc":"2.0","method":"tools/call","params":{"name":"write_file"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"notifications/initialized","params":{"name":"write_file"}}`,
	} {
		m, err := Decode([]byte(body))
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		if ok, _ := Decide(r, scopes("files:read"), &m); ok {
			t.Errorf("%s allowed", body)
		}
	}
}
