package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// gatewayHeaders plays the gateway: it adds the identity headers a
// verified token gives.
type gatewayHeaders struct {
	next http.RoundTripper
	h    map[string]string
}

func (g gatewayHeaders) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range g.h {
		r.Header.Set(k, v)
	}
	return g.next.RoundTrip(r)
}

var reviewer = map[string]string{
	"Kavach-Subject": "usr_alice",
	"Kavach-Actor":   "agt_reviewer",
	"Kavach-Chain":   "agt_orchestrator,agt_reviewer",
	"Kavach-Scope":   "mcp:review pullrequest:read repository:read",
}

const reviewerSummary = "agt_reviewer, child of agt_orchestrator, acting for usr_alice"

func newTestServer(t *testing.T, stateless, sse bool) *httptest.Server {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := httptest.NewServer(newHandler(NewRepo(), log, stateless, sse))
	t.Cleanup(srv.Close)
	return srv
}

func connect(t *testing.T, srv *httptest.Server, headers map[string]string) *mcp.ClientSession {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	client := mcp.NewClient(&mcp.Implementation{Name: "demo-test", Version: "1"}, nil)
	hc := &http.Client{Transport: gatewayHeaders{http.DefaultTransport, headers}}
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: srv.URL + "/mcp", HTTPClient: hc}, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	return cs
}

func call(t *testing.T, cs *mcp.ClientSession, tool string, args map[string]any) (*mcp.CallToolResult, map[string]any) {
	t.Helper()
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		t.Fatalf("%s: %v", tool, err)
	}
	var out map[string]any
	if res.StructuredContent != nil {
		data, _ := json.Marshal(res.StructuredContent)
		if err := json.Unmarshal(data, &out); err != nil {
			t.Fatalf("%s: structured content: %v", tool, err)
		}
	}
	return res, out
}

func textOf(res *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

func calledBy(t *testing.T, tool string, out map[string]any) {
	t.Helper()
	cb, _ := out["called_by"].(map[string]any)
	if cb["summary"] != reviewerSummary || cb["subject"] != "usr_alice" || cb["actor"] != "agt_reviewer" {
		t.Errorf("%s: called_by = %v, want %q", tool, cb, reviewerSummary)
	}
	if chain, _ := cb["chain"].([]any); len(chain) != 2 || chain[0] != "agt_orchestrator" || chain[1] != "agt_reviewer" {
		t.Errorf("%s: chain = %v", tool, cb["chain"])
	}
}

func TestMCPToolsThroughSDKClient(t *testing.T) {
	for _, tc := range []struct {
		name           string
		stateless, sse bool
	}{{"stateful-json", false, false}, {"stateful-sse", false, true}, {"stateless-json", true, false}} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newTestServer(t, tc.stateless, tc.sse)
			cs := connect(t, srv, reviewer)

			list, err := cs.ListTools(context.Background(), nil)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, tool := range list.Tools {
				names = append(names, tool.Name)
				want := toolScopes[tool.Name]
				if want == "" || !strings.Contains(tool.Description, "Kavach scope: "+want+".") || tool.Meta["kavach/scope"] != want {
					t.Errorf("tool %s does not document its scope %q: %q %v", tool.Name, want, tool.Description, tool.Meta)
				}
			}
			slices.Sort(names)
			if !slices.Equal(names, []string{"post_comment", "read_diff", "read_file", "write_file"}) {
				t.Fatalf("tools = %v", names)
			}

			res, out := call(t, cs, "read_diff", map[string]any{})
			if res.IsError || !strings.Contains(out["diff"].(string), "+++ b/ratelimit/bucket.go") || !strings.Contains(textOf(res), "called by "+reviewerSummary) {
				t.Errorf("read_diff: %v %s", res.IsError, textOf(res))
			}
			calledBy(t, "read_diff", out)

			res, out = call(t, cs, "read_file", map[string]any{"path": "ratelimit/bucket.go"})
			if res.IsError || !strings.Contains(out["content"].(string), "func (b *Bucket) Allow() bool") {
				t.Errorf("read_file: %s", textOf(res))
			}
			calledBy(t, "read_file", out)

			res, out = call(t, cs, "write_file", map[string]any{"path": "NOTES.md", "content": "reviewed\n"})
			if res.IsError || out["created"] != true {
				t.Errorf("write_file: %s", textOf(res))
			}
			calledBy(t, "write_file", out)
			res, out = call(t, cs, "read_file", map[string]any{"path": "NOTES.md"})
			if res.IsError || out["content"] != "reviewed\n" {
				t.Errorf("read_file after write_file: %s", textOf(res))
			}

			res, out = call(t, cs, "post_comment", map[string]any{"body": "LGTM", "path": "ratelimit/bucket.go", "line": 22})
			if res.IsError || out["total_comments"] != float64(1) {
				t.Errorf("post_comment: %s", textOf(res))
			}
			calledBy(t, "post_comment", out)
			if cm, _ := out["comment"].(map[string]any); cm["body"] != "LGTM" || cm["line"] != float64(22) {
				t.Errorf("post_comment: comment = %v", cm)
			}

			// Tool errors are results, not protocol errors.
			res, _ = call(t, cs, "read_file", map[string]any{"path": "../etc/passwd"})
			if !res.IsError {
				t.Errorf("read_file ../etc/passwd: not an error: %s", textOf(res))
			}
			res, _ = call(t, cs, "read_file", map[string]any{"path": "missing.go"})
			if !res.IsError || !strings.Contains(textOf(res), "no such file") {
				t.Errorf("read_file missing.go: %s", textOf(res))
			}
			res, _ = call(t, cs, "read_diff", map[string]any{"pr": 2})
			if !res.IsError {
				t.Errorf("read_diff pr 2: not an error")
			}
		})
	}
}

func TestMCPAnonymousCaller(t *testing.T) {
	srv := newTestServer(t, false, false)
	cs := connect(t, srv, nil)
	res, out := call(t, cs, "read_diff", nil)
	if res.IsError {
		t.Fatal(textOf(res))
	}
	cb, _ := out["called_by"].(map[string]any)
	if s, _ := cb["summary"].(string); !strings.HasPrefix(s, "anonymous") {
		t.Errorf("called_by without headers = %v", cb)
	}
}

// TestMCPRawJSONRPC is what scripts/demo-call.sh does with curl.
func TestMCPRawJSONRPC(t *testing.T) {
	srv := newTestServer(t, false, false)
	post := func(session, body string) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/mcp", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if session != "" {
			req.Header.Set("Mcp-Session-Id", session)
			req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
		}
		for k, v := range reviewer {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	resp := post("", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}`)
	resp.Body.Close()
	sid := resp.Header.Get("Mcp-Session-Id")
	if resp.StatusCode != 200 || sid == "" {
		t.Fatalf("initialize: %s, session %q", resp.Status, sid)
	}
	resp = post(sid, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("notifications/initialized: %s", resp.Status)
	}
	resp = post(sid, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"read_diff","arguments":{}}}`)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") || !strings.Contains(string(body), reviewerSummary) {
		t.Fatalf("tools/call: %s %s %s", resp.Status, resp.Header.Get("Content-Type"), body)
	}
}

func TestREST(t *testing.T) {
	srv := newTestServer(t, false, false)
	do := func(method, path, body string, headers map[string]string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %s: Content-Type %q", method, path, ct)
		}
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		if cb, _ := out["called_by"].(map[string]any); headers != nil && cb["summary"] != reviewerSummary {
			t.Errorf("%s %s: called_by = %v", method, path, cb)
		}
		return resp.StatusCode, out
	}
	const base = "/api/repos/demo"
	if st, out := do("GET", base+"/pulls/1/diff", "", reviewer); st != 200 || !strings.Contains(out["diff"].(string), "diff --git") {
		t.Errorf("diff: %d %v", st, out)
	}
	if st, out := do("GET", base+"/files", "", reviewer); st != 200 || !slices.Contains(out["files"].([]any), any("ratelimit/bucket.go")) {
		t.Errorf("files: %d %v", st, out)
	}
	if st, out := do("GET", base+"/files/README.md", "", reviewer); st != 200 || !strings.HasPrefix(out["content"].(string), "# demo") {
		t.Errorf("README.md: %d %v", st, out)
	}
	if st, _ := do("GET", base+"/files/nope.txt", "", reviewer); st != 404 {
		t.Errorf("missing file: %d", st)
	}
	if st, _ := do("PUT", base+"/files/docs/NOTES.md", "hello\n", reviewer); st != 201 {
		t.Errorf("PUT new file: %d", st)
	}
	if st, _ := do("PUT", base+"/files/docs/NOTES.md", "hello again\n", reviewer); st != 200 {
		t.Errorf("PUT existing file: %d", st)
	}
	if st, out := do("GET", base+"/files/docs/NOTES.md", "", reviewer); st != 200 || out["content"] != "hello again\n" {
		t.Errorf("file after PUT: %d %v", st, out)
	}
	if st, out := do("POST", base+"/comments", `{"body":"nit: name the constant","line":3}`, reviewer); st != 201 {
		t.Errorf("POST comment: %d %v", st, out)
	}
	if st, _ := do("POST", base+"/comments", `{"body":""}`, reviewer); st != 400 {
		t.Errorf("empty comment: %d", st)
	}
	if st, _ := do("POST", base+"/comments", `{"body":"x","extra":1}`, reviewer); st != 400 {
		t.Errorf("unknown field: %d", st)
	}
	st, out := do("GET", base+"/comments", "", reviewer)
	cs, _ := out["comments"].([]any)
	if st != 200 || len(cs) != 1 {
		t.Fatalf("comments: %d %v", st, out)
	}
	if a, _ := cs[0].(map[string]any)["author"].(map[string]any); a["actor"] != "agt_reviewer" {
		t.Errorf("comment author = %v", a)
	}
	if st, _ := do("DELETE", base+"/comments", "", reviewer); st != 404 && st != 405 {
		t.Errorf("DELETE comments: %d", st)
	}
	if st, _ := do("GET", "/api/repos/other/files/x", "", reviewer); st != 404 {
		t.Errorf("other repo: %d", st)
	}
	if _, out := do("GET", base+"/files", "", nil); !strings.HasPrefix(out["called_by"].(map[string]any)["summary"].(string), "anonymous") {
		t.Errorf("no headers: %v", out["called_by"])
	}
}

func TestMCPAndRESTShareTheRepository(t *testing.T) {
	srv := newTestServer(t, false, false)
	cs := connect(t, srv, reviewer)
	call(t, cs, "post_comment", map[string]any{"body": "from MCP"})
	resp, err := http.Get(srv.URL + "/api/repos/demo/comments")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(body), "from MCP") {
		t.Errorf("REST does not see the MCP comment: %s", body)
	}
}

func TestDescribe(t *testing.T) {
	for _, tc := range []struct {
		h    map[string]string
		want string
	}{
		{reviewer, reviewerSummary},
		{map[string]string{"Kavach-Subject": "usr_alice", "Kavach-Actor": "agt_a", "Kavach-Chain": "agt_a"}, "agt_a, acting for usr_alice"},
		{map[string]string{"Kavach-Subject": "usr_alice", "Kavach-Actor": "agt_c", "Kavach-Chain": "agt_a, agt_b, agt_c"}, "agt_c, child of agt_b, child of agt_a, acting for usr_alice"},
		{map[string]string{"Kavach-Subject": "usr_bob"}, "no agent, acting for usr_bob"},
		{nil, "anonymous: no Kavach identity headers (called directly, not through the gateway)"},
	} {
		h := http.Header{}
		for k, v := range tc.h {
			h.Set(k, v)
		}
		if got := callerFrom(h).Summary; got != tc.want {
			t.Errorf("%v: %q, want %q", tc.h, got, tc.want)
		}
	}
}

func TestCleanPath(t *testing.T) {
	for p, ok := range map[string]bool{
		"README.md": true, "/README.md": true, "a/b.go": true,
		"": false, ".": false, "..": false, "../x": false, "a/../b": false, "a//b": false, "a/./b": false, `a\b`: false, "a/": false,
	} {
		if _, err := cleanPath(p); (err == nil) != ok {
			t.Errorf("cleanPath(%q): %v", p, err)
		}
	}
}

func TestLoopbackOnly(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:8082": true, "[::1]:8082": true, "localhost:8082": true, "127.0.0.1:0": true,
		"0.0.0.0:8082": false, ":8082": false, "10.0.0.5:8082": false, "example.com:80": false, "8082": false,
	} {
		if err := loopbackOnly(addr); (err == nil) != ok {
			t.Errorf("loopbackOnly(%q): %v", addr, err)
		}
	}
}

func TestRunRefusesNonLoopback(t *testing.T) {
	if err := run([]string{"-addr", "0.0.0.0:0"}); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("run -addr 0.0.0.0:0: %v", err)
	}
}

// TestDiffMatchesHead: the pull request's diff is consistent with the
// files read_file serves (its added and context lines are in the head).
func TestDiffMatchesHead(t *testing.T) {
	head := strings.Split(initialFiles["ratelimit/bucket.go"], "\n")
	for _, l := range strings.Split(prDiff, "\n") {
		if l == "" || strings.HasPrefix(l, "+++") || strings.HasPrefix(l, "---") || strings.HasPrefix(l, "@@") ||
			strings.HasPrefix(l, "diff ") || strings.HasPrefix(l, "index ") || strings.HasPrefix(l, "-") {
			continue
		}
		if !slices.Contains(head, l[1:]) {
			t.Errorf("diff line %q is not in the head's ratelimit/bucket.go", l)
		}
	}
}
