package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/kavachgate/kavach/audit"
	"github.com/kavachgate/kavach/mcp"
	"github.com/kavachgate/kavach/policy"
	"github.com/kavachgate/kavach/revocation"
	"github.com/kavachgate/kavach/token"
)

// recordedReason runs one request through the pipeline and returns the
// reason the trail got: the decision record's, or the junk count's (the
// request had no verifiable token), and whether it was a junk count.
func recordedReason(t *testing.T, g Gateway, rt *Route, r *http.Request) (reason string, junk bool) {
	t.Helper()
	tr := &trail{}
	g.Audit = tr
	_, a, _ := serve(&g, rt, r, &upstream{reply: "{}", ctype: "application/json"})
	if a.Allowed() {
		t.Fatalf("allowed; want a denial")
	}
	recs := tr.records()
	switch {
	case len(recs) == 1 && len(tr.junk) == 0:
		if recs[0].Kind != audit.KindDecision || recs[0].Decision != audit.Deny || recs[0].Status != a.Status {
			t.Fatalf("record %+v", recs[0])
		}
		return recs[0].Reason, false
	case len(recs) == 0 && len(tr.junk) == 1:
		for k := range tr.junk {
			return k, true
		}
	}
	t.Fatalf("records %+v, junk %v: want one of them", recs, tr.junk)
	return "", false
}

// TestDenialReasons: every denial the trail records says why the way the
// HTTP answer did, in words: the missing scope, the constraint and the
// value it refused, the MCP rule. A request without a verifiable token
// is counted under a reason of a small fixed set (the junk summary), and
// nothing of the token itself is ever written.
func TestDenialReasons(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	good := f.mint(t, nil)
	withCnst := func(c policy.Constraints) string {
		return f.mint(t, func(cl *token.Claims) { cl.Kavach.Constraints = &c })
	}
	mrt := mcpRoute(t, mcp.NewMemorySessions(0, 0))
	read := f.mcpToken(t, "mcp:call repo:read")
	call := func(tool string) string {
		return rpc(1, "tools/call", `{"name":"`+tool+`","arguments":{"path":"a"}}`)
	}
	expired := f.mint(t, func(c *token.Claims) {
		c.IssuedAt, c.Expiry = time.Now().Add(-time.Hour).Unix(), time.Now().Add(-time.Minute).Unix()
	})
	badSig := good[:len(good)-4] + "AAAA"
	if badSig == good {
		badSig = good[:len(good)-4] + "BBBB"
	}
	cases := []struct {
		name string
		rt   *Route
		req  *http.Request
		want string
		junk bool
	}{
		{"no token", f.rt, request("GET", "/api/x", ""), "missing_token: no bearer token", true},
		{"other scheme", f.rt, func() *http.Request {
			r := request("GET", "/api/x", "")
			r.Header.Set("Authorization", "Basic Zm9vOmJhcg==")
			return r
		}(), "missing_token: no bearer token", true},
		{"expired", f.rt, request("GET", "/api/x", expired), "invalid_token: token expired", true},
		{"bad signature", f.rt, request("GET", "/api/x", badSig), "invalid_token: invalid signature", true},
		{"garbage", f.rt, request("GET", "/api/x", "abc.def.ghi"), "invalid_token: malformed token", true},
		{"two Authorization headers", f.rt, func() *http.Request {
			r := request("GET", "/api/x", good)
			r.Header.Add("Authorization", "Bearer "+good)
			return r
		}(), "bad_request: more than one Authorization header", true},
		{"foreign origin", mrt, func() *http.Request {
			r := mcpPost(read, call("read_file"))
			r.Header.Set("Origin", "https://evil.example")
			return r
		}(), "bad_origin: Origin not allowed on this MCP route", true},

		{"wrong audience", f.rt, request("GET", "/api/x", f.mint(t, func(c *token.Claims) { c.Audience = token.Audience{"https://other.example/api"} })),
			"wrong_audience: the token is not for " + testResource, false},
		{"route scope", f.rt, request("GET", "/api/x", f.mint(t, func(c *token.Claims) { c.Scope = "repo:write" })), "insufficient_scope: repo:read", false},
		{"no rule", f.rt, request("DELETE", "/api/x", good), "no_rule: no scope rule matches DELETE /api/x", false},
		{"bad path", f.rt, func() *http.Request { r := request("GET", "/api/x", good); r.URL.Path = "/api/../admin"; return r }(), "bad_path: dot segment in path", false},
		{"methods", f.rt, request("GET", "/api/x", withCnst(policy.Constraints{Methods: policy.StringList{"POST"}})), "constraint: methods (POST) do not include GET", false},
		{"hosts", f.rt, request("GET", "/api/x", withCnst(policy.Constraints{Hosts: policy.StringList{"other.example", "*.corp.example"}})),
			"constraint: hosts (other.example *.corp.example) do not include api.example", false},
		{"cidrs", f.rt, request("GET", "/api/x", withCnst(policy.Constraints{CIDRs: policy.PrefixList{netip.MustParsePrefix("10.0.0.0/8")}})),
			"constraint: cidrs (10.0.0.0/8) do not include the client address 127.0.0.1", false},
		{"paths", f.rt, request("GET", "/api/x", withCnst(policy.Constraints{Paths: policy.StringList{"/api/y", "/api/z/*"}})),
			"constraint: paths (/api/y /api/z/*) do not include /api/x", false},
		{"max_body", f.rt, func() *http.Request {
			r := httptest.NewRequest("POST", "/api/write", strings.NewReader(strings.Repeat("a", 20)))
			r.Header.Set("Authorization", "Bearer "+f.mint(t, func(c *token.Claims) {
				c.Scope = "repo:write"
				c.Kavach.Constraints = &policy.Constraints{MaxBody: 10}
			}))
			return r
		}(), "too_large: Content-Length 20 is over the token's max_body 10", false},

		{"tool scope", mrt, mcpPost(read, call("write_file")), "insufficient_scope: repo:write", false},
		{"route scope on an MCP route", mrt, mcpPost(f.mcpToken(t, "repo:read repo:write"), call("write_file")), "insufficient_scope: mcp:call", false},
		{"tool no rule names", mrt, mcpPost(read, call("delete_repo")), "mcp_denied: no tool rule matches delete_repo", false},
		{"resource no rule names", mrt, mcpPost(read, rpc(1, "resources/read", `{"uri":"file:///etc/passwd"}`)),
			"mcp_denied: no resource rule matches file:///etc/passwd", false},
		{"unknown method", mrt, mcpPost(read, rpc(1, "tools/frobnicate", `{}`)), `mcp_unknown_method: method not found (method "tools/frobnicate")`, false},
		{"batch", mrt, mcpPost(read, "["+call("read_file")+"]"), "bad_request: JSON-RPC batches are not supported (body is a JSON array)", false},
		{"PUT", mrt, func() *http.Request { r := mcpPost(read, call("read_file")); r.Method = "PUT"; return r }(), "method_not_allowed: PUT on an MCP route", false},
		{"encoded body", mrt, func() *http.Request {
			r := mcpPost(read, call("read_file"))
			r.Header.Set("Content-Encoding", "gzip")
			return r
		}(),
			"unsupported_encoding: request Content-Encoding gzip", false},
		{"unknown session", mrt, func() *http.Request {
			r := mcpPost(read, call("read_file"))
			r.Header.Set("Mcp-Session-Id", "s-123")
			return r
		}(),
			"session_unknown: no session with this id is bound here (expired, or opened through another gateway)", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, junk := recordedReason(t, *f.gw, tc.rt, tc.req)
			if got != tc.want || junk != tc.junk {
				t.Errorf("reason %q (junk %v), want %q (junk %v)", got, junk, tc.want, tc.junk)
			}
			if tok := tc.req.Header.Get("Authorization"); len(tok) > 20 && strings.Contains(got, strings.TrimPrefix(tok, "Bearer ")[:20]) {
				t.Errorf("the reason carries the token: %q", got)
			}
		})
	}

	t.Run("revoked", func(t *testing.T) {
		until := time.Now().Add(time.Hour)
		for _, tc := range []struct {
			entry revocation.Entry
			want  string
		}{
			{revocation.Entry{ID: "agt_parent", Until: until}, "revoked: agt_parent is revoked"},
			{revocation.Entry{ID: "usr_alice", Cutoff: revocation.CutoffSubject, Before: time.Now().Add(time.Minute), Until: until},
				"revoked: tokens of user usr_alice issued before a cutoff"},
		} {
			f := newFixture(t)
			if err := f.rev.Revoke(context.Background(), tc.entry); err != nil {
				t.Fatal(err)
			}
			if got, _ := recordedReason(t, *f.gw, f.rt, request("GET", "/api/x", f.mint(t, nil))); got != tc.want {
				t.Errorf("reason %q, want %q", got, tc.want)
			}
		}
	})
	t.Run("session of another chain", func(t *testing.T) {
		sessions := mcp.NewMemorySessions(0, 0)
		rt := mcpRoute(t, sessions)
		other := f.mint(t, func(c *token.Claims) {
			c.Audience, c.Scope = token.Audience{mcpResource}, "mcp:call repo:read"
			c.Subject = "usr_bob"
		})
		tok, _ := f.gw.Verifier.Verify(other)
		if err := sessions.Bind(context.Background(), "s-bob", ChainKeyOf(tok)); err != nil {
			t.Fatal(err)
		}
		r := mcpPost(read, call("read_file"))
		r.Header.Set("Mcp-Session-Id", "s-bob")
		if got, _ := recordedReason(t, *f.gw, rt, r); got != "session_mismatch: the session belongs to another delegation chain" {
			t.Errorf("reason %q", got)
		}
	})
}

// TestArgumentsDigest: an MCP call's decision record carries the SHA-256
// of params.arguments exactly as the body holds them (whitespace, member
// order and escapes as sent), allowed or denied; other messages carry none.
func TestArgumentsDigest(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	rt := mcpRoute(t, mcp.NewMemorySessions(0, 0))
	read := f.mcpToken(t, "mcp:call repo:read")
	sum := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }
	for _, tc := range []struct {
		name, body, args string // args: the bytes the digest covers ("" for none)
	}{
		{"compact", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"README.md","n":1}}}`, `{"path":"README.md","n":1}`},
		{"whitespace as sent", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"arguments\" :\n\t{ \"n\": 1 ,\"path\":\"README.md\" } ,\"name\":\"read_file\"}}",
			`{ "n": 1 ,"path":"README.md" }`},
		{"escapes as sent", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_file","arguments":{"p\u0061th":"\u00e9\n"}}}`, `{"p\u0061th":"\u00e9\n"}`},
		{"denied call", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"write_file","arguments":{"path":"/etc/passwd"}}}`, `{"path":"/etc/passwd"}`},
		{"prompt arguments", `{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"review","arguments":{"pr":"7"}}}`, `{"pr":"7"}`},
		{"no arguments", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_file"}}`, ""},
		{"not a call", `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"arguments":{"x":1}}}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := &trail{}
			g := *f.gw
			g.Audit = tr
			u := &upstream{reply: "{}", ctype: "application/json"}
			_, a, _ := serve(&g, rt, mcpPost(read, tc.body), u)
			recs := tr.records()
			if len(recs) == 0 || recs[0].Kind != audit.KindDecision {
				t.Fatalf("no decision record: %+v (%s)", recs, a.Detail)
			}
			want := ""
			if tc.args != "" {
				want = sum(tc.args)
			}
			if recs[0].ArgsSHA256 != want {
				t.Errorf("args_sha256 %q, want %q (sha256 of %s)", recs[0].ArgsSHA256, want, tc.args)
			}
			if recs[0].Args != "" {
				t.Errorf("arguments recorded on a route that does not record them: %s", recs[0].Args)
			}
			if a.Allowed() && u.body != tc.body {
				t.Errorf("forwarded %q, want the body as sent", u.body)
			}
		})
	}
}

// TestArgumentsRecorded: a route with RecordArguments puts the arguments
// in the record with the named members redacted at any depth (names
// compared without regard to case or escapes), and cuts a long recording
// at audit.MaxArgsBytes; the digest still covers everything sent.
func TestArgumentsRecorded(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	rt := mcpRoute(t, mcp.NewMemorySessions(0, 0))
	rt.MCP.RecordArguments, rt.MCP.Redact = true, []string{"password", "api_key"}
	read := f.mcpToken(t, "mcp:call repo:read")
	record := func(args string) audit.Record {
		t.Helper()
		tr := &trail{}
		g := *f.gw
		g.Audit = tr
		body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_file","arguments":` + args + `}}`
		u := &upstream{reply: "{}", ctype: "application/json"}
		serve(&g, rt, mcpPost(read, body), u)
		if u.body != body {
			t.Fatalf("forwarded %q", u.body)
		}
		recs := tr.records()
		if len(recs) == 0 {
			t.Fatal("no record")
		}
		return recs[0]
	}
	args := `{ "path": "README.md", "Password": "hunter2", "opts": {"api_key": {"v": "sk-live-1"}, "list": [{"pass\u0077ord": "s3"}, 2, true, null]}, "n": -1.5e3 }`
	rec := record(args)
	want := `{"path":"README.md","Password":"[redacted]","opts":{"api_key":"[redacted]","list":[{"pass\u0077ord":"[redacted]"},2,true,null]},"n":-1.5e3}`
	if rec.Args != want {
		t.Errorf("args\n got %s\nwant %s", rec.Args, want)
	}
	for _, secret := range []string{"hunter2", "sk-live-1", "s3"} {
		if strings.Contains(rec.Args, secret) {
			t.Errorf("recorded args hold %q", secret)
		}
	}
	h := sha256.Sum256([]byte(args))
	if rec.ArgsSHA256 != hex.EncodeToString(h[:]) {
		t.Error("the digest does not cover the arguments as sent")
	}

	long := `{"path":"` + strings.Repeat("é", audit.MaxArgsBytes) + `"}`
	rec = record(long)
	if len(rec.Args) > audit.MaxArgsBytes || !strings.HasSuffix(rec.Args, "…") || !strings.HasPrefix(rec.Args, `{"path":"éé`) {
		t.Errorf("long arguments recorded as %d bytes: %.40q…", len(rec.Args), rec.Args)
	}
	h = sha256.Sum256([]byte(long))
	if rec.ArgsSHA256 != hex.EncodeToString(h[:]) {
		t.Error("the digest of cut arguments does not cover all of them")
	}
}

// TestOutcomeNamesWhoItActsFor: an outcome record repeats the user the
// chain acts for, so a row of the trail read alone still says it.
func TestOutcomeNamesWhoItActsFor(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tr := &trail{}
	g := *f.gw
	g.Audit = tr
	serve(&g, f.rt, request("GET", "/api/x", f.mint(t, nil)), &upstream{})
	recs := tr.records()
	if len(recs) != 2 || recs[1].Kind != audit.KindOutcome || recs[1].Sub != "usr_alice" || recs[1].Actor != "agt_child" {
		t.Fatalf("records %+v", recs)
	}
}
