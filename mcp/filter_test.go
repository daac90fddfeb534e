package mcp

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

// demoRules: read_file needs files:read, write_file files:write; no "*"
// rule, so any other tool is hidden.
func demoRules(t testing.TB) *Rules {
	return mustRules(t, Rules{Tools: []Rule{
		{"read_file", scopes("files:read")},
		{"write_file", scopes("files:write")},
	}})
}

const (
	toolRead  = `{"name":"read_file","description":"Read a file","inputSchema":{"type":"object","properties":{"path":{"type":"string"}}}}`
	toolWrite = `{"name":"write_file","inputSchema":{"type":"object"}}`
	toolOther = `{"name":"other","inputSchema":{}}`
	listResp  = `{"jsonrpc":"2.0","id":3,"result":{"tools":[` + toolRead + `,` + toolWrite + `,` + toolOther + `],"nextCursor":"c2"}}`
)

func filterJSON(t testing.TB, body string, cfg FilterConfig) (string, error) {
	t.Helper()
	cfg.Format = FormatJSON
	var out bytes.Buffer
	err := FilterTools(&out, strings.NewReader(body), cfg)
	return out.String(), err
}

func TestFilterJSON(t *testing.T) {
	t.Parallel()
	rules := demoRules(t)
	cases := []struct {
		name   string
		scopes []string
		want   string
	}{
		{"one allowed", scopes("files:read"), `{"jsonrpc":"2.0","id":3,"result":{"tools":[` + toolRead + `],"nextCursor":"c2"}}`},
		{"two allowed", scopes("files:read", "files:write"), `{"jsonrpc":"2.0","id":3,"result":{"tools":[` + toolRead + `,` + toolWrite + `],"nextCursor":"c2"}}`},
		{"none allowed", nil, `{"jsonrpc":"2.0","id":3,"result":{"tools":[],"nextCursor":"c2"}}`},
		{"only the last allowed", scopes("files:write"), `{"jsonrpc":"2.0","id":3,"result":{"tools":[` + toolWrite + `],"nextCursor":"c2"}}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got, err := filterJSON(t, listResp, FilterConfig{Request: IntID(3), Rules: rules, Scopes: c.scopes})
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Errorf("got  %s\nwant %s", got, c.want)
			}
		})
	}

	// Every tool allowed: the body is written unchanged, byte for byte.
	star := mustRules(t, Rules{Tools: []Rule{{"*", scopes("mcp:call")}}})
	pretty := "{\n  \"jsonrpc\": \"2.0\",\n  \"id\": \"l1\",\n  \"result\": {\n    \"tools\": [\n      {\"name\": \"a\"},\n      {\"name\": \"b\"}\n    ]\n  }\n}\n"
	got, err := filterJSON(t, pretty, FilterConfig{Request: StringID("l1"), Rules: star, Scopes: scopes("mcp:call")})
	if err != nil || got != pretty {
		t.Errorf("all allowed: %q, %v", got, err)
	}
	// Pretty-printed input, filtered: still valid JSON, with what was kept.
	part := mustRules(t, Rules{Tools: []Rule{{"b", scopes("s")}}})
	got, err = filterJSON(t, pretty, FilterConfig{Request: StringID("l1"), Rules: part, Scopes: scopes("s")})
	if err != nil {
		t.Fatal(err)
	}
	if names := toolNames(t, got); !slices.Equal(names, []string{"b"}) {
		t.Errorf("kept %q in %s", names, got)
	}
	// An error response is passed through.
	errResp := `{"jsonrpc":"2.0","id":3,"error":{"code":-32603,"message":"boom"}}`
	if got, err := filterJSON(t, errResp, FilterConfig{Request: IntID(3), Rules: rules}); err != nil || got != errResp {
		t.Errorf("error response: %q, %v", got, err)
	}
}

// toolNames returns the names of result.tools in a JSON-RPC response.
func toolNames(t testing.TB, resp string) []string {
	t.Helper()
	var v struct {
		Result struct {
			Tools []struct {
				Name string `json:"name"`
			} `json:"tools"`
		} `json:"result"`
	}
	if err := json.Unmarshal([]byte(resp), &v); err != nil {
		t.Fatalf("%v in %q", err, resp)
	}
	names := []string{}
	for _, tl := range v.Result.Tools {
		names = append(names, tl.Name)
	}
	return names
}

func TestFilterJSONFailsClosed(t *testing.T) {
	t.Parallel()
	rules := demoRules(t)
	cases := []struct {
		name, body string
		max        int
	}{
		{"empty", ``, 0},
		{"not JSON", `<html>`, 0},
		{"truncated", listResp[:len(listResp)-2], 0},
		{"trailing data", listResp + `{}`, 0},
		{"batch", `[` + listResp + `]`, 0},
		{"another id", strings.Replace(listResp, `"id":3`, `"id":4`, 1), 0},
		{"string id for an integer request", strings.Replace(listResp, `"id":3`, `"id":"3"`, 1), 0},
		{"id 3.0", strings.Replace(listResp, `"id":3`, `"id":3.0`, 1), 0},
		{"no id", strings.Replace(listResp, `"id":3,`, ``, 1), 0},
		{"a request, not a response", `{"jsonrpc":"2.0","id":3,"method":"ping"}`, 0},
		{"no tools", `{"jsonrpc":"2.0","id":3,"result":{}}`, 0},
		{"tools not an array", `{"jsonrpc":"2.0","id":3,"result":{"tools":{}}}`, 0},
		{"tool not an object", `{"jsonrpc":"2.0","id":3,"result":{"tools":["read_file"]}}`, 0},
		{"tool without a name", `{"jsonrpc":"2.0","id":3,"result":{"tools":[{"title":"x"}]}}`, 0},
		{"tool name not a string", `{"jsonrpc":"2.0","id":3,"result":{"tools":[{"name":1}]}}`, 0},
		{"tool Name variant", `{"jsonrpc":"2.0","id":3,"result":{"tools":[{"name":"read_file","Name":"write_file"}]}}`, 0},
		{"duplicate tool name member", `{"jsonrpc":"2.0","id":3,"result":{"tools":[{"name":"read_file","name":"write_file"}]}}`, 0},
		{"Tools variant", `{"jsonrpc":"2.0","id":3,"result":{"tools":[],"Tools":[{"name":"write_file"}]}}`, 0},
		{"Result variant", `{"jsonrpc":"2.0","id":3,"result":{"tools":[]},"Result":{"tools":[{"name":"write_file"}]}}`, 0},
		{"duplicate result", `{"jsonrpc":"2.0","id":3,"result":{"tools":[]},"result":{"tools":[{"name":"write_file"}]}}`, 0},
		{"result and error", `{"jsonrpc":"2.0","id":3,"result":{"tools":[]},"error":{}}`, 0},
		{"lone surrogate", `{"jsonrpc":"2.0","id":3,"result":{"tools":[{"name":"read_file","d":"\udc00"}]}}`, 0},
		{"invalid UTF-8", "{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{\"tools\":[{\"name\":\"\xff\"}]}}", 0},
		{"too deep", `{"jsonrpc":"2.0","id":3,"result":{"tools":[{"name":"a","s":` + nest(MaxDepth) + `}]}}`, 0},
		{"over the size limit", listResp, len(listResp) - 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got, err := filterJSON(t, c.body, FilterConfig{Request: IntID(3), Rules: rules, Scopes: scopes("files:read"), MaxSize: c.max})
			if err == nil {
				t.Fatalf("accepted, wrote %q", got)
			}
			if !errors.Is(err, ErrUpstream) || HTTPStatus(err) != 502 {
				t.Errorf("error %v is not a 502 upstream error", err)
			}
			if got != "" {
				t.Errorf("wrote %q despite the error", got)
			}
		})
	}
}

// A filter that failed stays failed.
func TestFilterStaysFailed(t *testing.T) {
	t.Parallel()
	f := NewToolsFilter(io.Discard, FilterConfig{Format: FormatSSE, Request: IntID(1), Rules: demoRules(t), MaxSize: 8})
	if _, err := f.Write([]byte("data: 0123456789")); !errors.Is(err, ErrUpstream) {
		t.Fatalf("oversized event: %v", err)
	}
	if _, err := f.Write([]byte("\n\n")); !errors.Is(err, ErrUpstream) {
		t.Errorf("write after failure: %v", err)
	}
	if err := f.Close(); !errors.Is(err, ErrUpstream) {
		t.Errorf("close after failure: %v", err)
	}
	g := NewToolsFilter(io.Discard, FilterConfig{Rules: demoRules(t)})
	if _, err := g.Write([]byte("x")); !errors.Is(err, ErrUpstream) {
		t.Errorf("no format: %v", err)
	}
}

// sseStream is a POST response stream: a comment, a priming event, a
// progress notification, a server request that reuses the client's id
// number, the tools/list response split over two data lines, and a last
// comment.
func sseStream(nl string) (in, want string) {
	line1 := `{"jsonrpc":"2.0","id":3,`
	line2 := `"result":{"tools":[` + toolRead + `,` + toolWrite + `,` + toolOther + `]}}`
	kept2 := `"result":{"tools":[` + toolRead + `]}}`
	unchanged := ": keepalive" + nl + nl +
		"id: e1" + nl + "data:" + nl + nl +
		"event: message" + nl + `data: {"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":0.5}}` + nl + nl +
		`data: {"jsonrpc":"2.0","id":3,"method":"roots/list"}` + nl + nl
	in = unchanged +
		"id: e2" + nl + "event: message" + nl + "data: " + line1 + nl + "data:" + line2 + nl + ": trailing comment in the event" + nl + nl +
		": bye" + nl + nl
	want = unchanged +
		"id: e2" + nl + "event: message" + nl + "data: " + line1 + "\n" + "data: " + kept2 + "\n" + ": trailing comment in the event" + nl + nl +
		": bye" + nl + nl
	return in, want
}

func filterSSE(t testing.TB, in string, chunk int, cfg FilterConfig) (string, error) {
	t.Helper()
	cfg.Format = FormatSSE
	var out bytes.Buffer
	var src io.Reader = strings.NewReader(in)
	if chunk > 0 {
		src = iotest.OneByteReader(src)
		if chunk > 1 {
			src = &chunkReader{r: strings.NewReader(in), n: chunk}
		}
	}
	err := FilterTools(&out, src, cfg)
	return out.String(), err
}

type chunkReader struct {
	r io.Reader
	n int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(p) > c.n {
		p = p[:c.n]
	}
	return c.r.Read(p)
}

func TestFilterSSE(t *testing.T) {
	t.Parallel()
	rules := demoRules(t)
	for _, nl := range []string{"\n", "\r\n", "\r"} {
		in, want := sseStream(nl)
		cfg := FilterConfig{Request: IntID(3), Rules: rules, Scopes: scopes("files:read")}
		// Every way of splitting the stream into reads gives the same output.
		for chunk := 0; chunk <= 40; chunk++ {
			got, err := filterSSE(t, in, chunk, cfg)
			if err != nil {
				t.Fatalf("%q chunk %d: %v", nl, chunk, err)
			}
			if got != want {
				t.Fatalf("%q chunk %d:\ngot  %q\nwant %q", nl, chunk, got, want)
			}
		}
	}
}

func TestFilterSSECases(t *testing.T) {
	t.Parallel()
	rules := demoRules(t)
	resp := `{"jsonrpc":"2.0","id":3,"result":{"tools":[` + toolRead + `,` + toolWrite + `]}}`
	kept := `{"jsonrpc":"2.0","id":3,"result":{"tools":[` + toolRead + `]}}`
	cases := []struct {
		name    string
		request ID
		in      string
		want    string // "" with ok false: an error
		ok      bool
	}{
		{"response without trailing blank line", IntID(3), "data: " + resp, "data: " + kept + "\n", true},
		{"BOM at the start", IntID(3), "\xEF\xBB\xBFdata: " + resp + "\n\n", "\xEF\xBB\xBFdata: " + kept + "\n\n", true},
		{"BOM and no line end", IntID(3), "\xEF\xBB\xBFdata: " + resp, "\xEF\xBB\xBFdata: " + kept + "\n", true},
		{"BOM then blank line", IntID(3), "\xEF\xBB\xBF\ndata: " + resp + "\n\n", "\xEF\xBB\xBF\ndata: " + kept + "\n\n", true},
		{"data without space", IntID(3), "data:" + resp + "\n\n", "data: " + kept + "\n\n", true},
		{"error response passes", IntID(3), `data: {"jsonrpc":"2.0","id":3,"error":{"code":1,"message":"x"}}` + "\n\n", `data: {"jsonrpc":"2.0","id":3,"error":{"code":1,"message":"x"}}` + "\n\n", true},
		{"unknown fields kept", IntID(3), "retry: 10\nfoo: bar\ndata: " + resp + "\n\n", "retry: 10\nfoo: bar\ndata: " + kept + "\n\n", true},
		{"Data is not data", IntID(3), "Data: {\"x\":1}\n\n", "Data: {\"x\":1}\n\n", true},
		{"any response mode filters tool lists", ID{}, "data: " + resp + "\n\n", "data: " + kept + "\n\n", true},
		{"any response mode passes other results", ID{}, `data: {"jsonrpc":"2.0","id":9,"result":{"content":[]}}` + "\n\n", `data: {"jsonrpc":"2.0","id":9,"result":{"content":[]}}` + "\n\n", true},
		{"response for another id", IntID(4), "data: " + resp + "\n\n", "", false},
		{"result without tools for this id", IntID(3), `data: {"jsonrpc":"2.0","id":3,"result":{}}` + "\n\n", "", false},
		{"data not JSON", IntID(3), "data: hello\n\n", "", false},
		{"data a batch", IntID(3), "data: [" + resp + "]\n\n", "", false},
		{"data split mid-token", IntID(3), "data: {\"jsonrpc\":\"2.0\",\"id\":3,\"resu\ndata: lt\":{\"tools\":[]}}\n\n", "", false},
		{"neither request nor response", IntID(3), `data: {"jsonrpc":"2.0"}` + "\n\n", "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got, err := filterSSE(t, c.in, 0, FilterConfig{Request: c.request, Rules: rules, Scopes: scopes("files:read")})
			if (err == nil) != c.ok {
				t.Fatalf("err %v, wrote %q", err, got)
			}
			if c.ok && got != c.want {
				t.Errorf("got  %q\nwant %q", got, c.want)
			}
			if !c.ok && !errors.Is(err, ErrUpstream) {
				t.Errorf("error %v is not ErrUpstream", err)
			}
		})
	}
}

// Events before a failing one are already written (and flushed); nothing
// is written after it.
func TestFilterSSEOversizedEvent(t *testing.T) {
	t.Parallel()
	in := ": ok\n\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"data\":\"" + strings.Repeat("x", 200) + "\"}}\n\n: after\n\n"
	for _, chunk := range []int{0, 1, 7} {
		got, err := filterSSE(t, in, chunk, FilterConfig{Request: IntID(1), Rules: demoRules(t), MaxSize: 100})
		if !errors.Is(err, ErrUpstream) {
			t.Fatalf("chunk %d: %v", chunk, err)
		}
		if got != ": ok\n\n" {
			t.Errorf("chunk %d: wrote %q", chunk, got)
		}
	}
}

type flushRecorder struct {
	bytes.Buffer
	flushes []string // what had been written at each flush
}

func (f *flushRecorder) Flush() { f.flushes = append(f.flushes, f.String()) }

func TestFilterSSEFlushesEachEvent(t *testing.T) {
	t.Parallel()
	var dst flushRecorder
	f := NewToolsFilter(&dst, FilterConfig{Format: FormatSSE, Request: IntID(3), Rules: demoRules(t)})
	for _, w := range []string{": a\n", "\n", "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}", "\n\n: b\n\n: incomplete"} {
		if _, err := f.Write([]byte(w)); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{
		": a\n\n",
		": a\n\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\n\n: b\n\n",
	}
	if !slices.Equal(dst.flushes, want) {
		t.Errorf("flushes %q", dst.flushes)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(dst.String(), ": incomplete") || len(dst.flushes) != 3 {
		t.Errorf("close: %q after %d flushes", dst.String(), len(dst.flushes))
	}
}

// The list a token sees is exactly the set of tools Decide lets it call.
func TestFilterMatchesDecide(t *testing.T) {
	t.Parallel()
	rules := mustRules(t, Rules{Tools: []Rule{
		{"read_file", scopes("files:read")},
		{"write_file", scopes("files:write")},
		{"*", scopes("mcp:call")},
	}})
	all := []string{"read_file", "write_file", "post_comment", "Read_File", "a\u0000b", "tööl"}
	var list strings.Builder
	list.WriteString(`{"jsonrpc":"2.0","id":1,"result":{"tools":[`)
	for i, n := range all {
		if i > 0 {
			list.WriteByte(',')
		}
		b, _ := json.Marshal(n)
		list.WriteString(`{"name":` + string(b) + `}`)
	}
	list.WriteString(`]}}`)
	for _, have := range [][]string{nil, scopes("mcp:call"), scopes("files:read"), scopes("files:read", "mcp:call"), scopes("files:*", "mcp:call")} {
		got, err := filterJSON(t, list.String(), FilterConfig{Request: IntID(1), Rules: rules, Scopes: have})
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, n := range all {
			if ok, _ := Decide(rules, have, call(n)); ok {
				want = append(want, n)
			}
		}
		if names := toolNames(t, got); !slices.Equal(names, append([]string{}, want...)) {
			t.Errorf("scopes %q: listed %q, callable %q", have, names, want)
		}
	}
}
