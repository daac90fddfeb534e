package mcp

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// FuzzDecode: Decode never panics, and whatever it accepts is valid JSON
// that encoding/json — case-insensitive and last-duplicate-wins, as Go MCP
// servers read it — reads as the same message: exactly one method member
// for a request or notification (none for a response), with the method and
// the target Decode reported. Seeds: testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		callBody,
		`{"jsonrpc":"2.0","id":"x","method":"resources/read","params":{"uri":"file:///a"}}`,
		`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
		`{"jsonrpc":"2.0","id":1,"result":{}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/list","Method":"tools/call"}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"n\u0061me":"a","Name":"b"}}`,
		`[{"jsonrpc":"2.0","id":1,"method":"ping"}]`,
		`{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"review"},"argument":{"name":"a","value":"b"}}}`,
		`{"jsonrpc":"2.0","id":2,"method":"completion/complete","params":{"ref":{"type":"ref/resource","uri":"file:///repo/{path}"}}}`,
		`{"jsonrpc":"2.0","id":3,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"a","Name":"b"}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		orig := bytes.Clone(body)
		m, err := Decode(body)
		if !bytes.Equal(body, orig) {
			t.Fatal("Decode changed its input")
		}
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || HTTPStatus(err) != 400 {
				t.Fatalf("error %v (%T) is not a 400 *Error", err, err)
			}
			return
		}
		if !json.Valid(body) {
			t.Fatalf("accepted invalid JSON %q", body)
		}
		var members map[string]json.RawMessage
		if err := json.Unmarshal(body, &members); err != nil {
			t.Fatalf("accepted %q, encoding/json: %v", body, err)
		}
		methods := 0
		for k := range members {
			if strings.EqualFold(k, "method") {
				methods++
			}
		}
		var v struct {
			Method *string
			Params json.RawMessage
		}
		if err := json.Unmarshal(body, &v); err != nil {
			t.Fatalf("accepted %q, encoding/json: %v", body, err)
		}
		switch m.Kind {
		case KindRequest, KindNotification:
			if methods != 1 || v.Method == nil || *v.Method != m.Method {
				t.Fatalf("%q: Decode read method %q, encoding/json %d members, %v", body, m.Method, methods, v.Method)
			}
		case KindResponse:
			if methods != 0 || m.Method != "" {
				t.Fatalf("%q: a response with a method", body)
			}
		default:
			t.Fatalf("%q: accepted with kind %v", body, m.Kind)
		}
		if m.Name != "" {
			var p struct {
				Name, URI *string
				Ref       *struct{ Type, Name, URI *string }
			}
			if err := json.Unmarshal(v.Params, &p); err != nil {
				t.Fatalf("%q: params: %v", body, err)
			}
			var got *string
			switch c := classOf(m.Method); {
			case c == completionRequest:
				if p.Ref == nil || p.Ref.Type == nil {
					t.Fatalf("%q: Decode read a completion of %v %q, encoding/json no ref type", body, m.Target, m.Name)
				}
				switch *p.Ref.Type {
				case "ref/prompt":
					got = p.Ref.Name
					if m.Target != TargetPrompt || p.Ref.URI != nil {
						t.Fatalf("%q: Decode read target kind %v", body, m.Target)
					}
				case "ref/resource":
					got = p.Ref.URI
					if m.Target != TargetResource || p.Ref.Name != nil {
						t.Fatalf("%q: Decode read target kind %v", body, m.Target)
					}
				}
			case c.targetMember() == "uri":
				got = p.URI
			default:
				got = p.Name
			}
			if got == nil || *got != m.Name {
				t.Fatalf("%q: Decode read target %q, encoding/json %v", body, m.Name, got)
			}
		} else if m.Target != TargetNone {
			t.Fatalf("%q: target kind %v without a name", body, m.Target)
		}
	})
}

// FuzzToolsFilterSSE: the SSE filter never panics, and its verdict and
// output do not depend on how the stream is split into writes.
func FuzzToolsFilterSSE(f *testing.F) {
	in, _ := sseStream("\n")
	f.Add([]byte(in), uint8(3))
	in, _ = sseStream("\r\n")
	f.Add([]byte(in), uint8(1))
	f.Add([]byte("\xEF\xBB\xBF\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{\"tools\":[{\"name\":\"read_file\"},{\"name\":\"x\"}]}}\r\r"), uint8(2))
	rules := demoRules(f)
	f.Fuzz(func(t *testing.T, stream []byte, chunk uint8) {
		cfg := FilterConfig{Request: IntID(3), Rules: rules, Scopes: scopes("files:read"), MaxSize: 4096}
		whole, errWhole := filterSSE(t, string(stream), 0, cfg)
		split, errSplit := filterSSE(t, string(stream), int(chunk%16)+1, cfg)
		if (errWhole == nil) != (errSplit == nil) {
			t.Fatalf("whole: %v, in chunks of %d: %v", errWhole, chunk%16+1, errSplit)
		}
		if errWhole == nil && whole != split {
			t.Fatalf("whole %q, in chunks %q", whole, split)
		}
	})
}

// FuzzURIAliasFree: a resource URI that Decide would match is read the
// same way by every kind of server a textual rule must agree with. For
// "file:///repo/" + suffix, when uriAliasFree accepts it, each modelled
// reading of its path (up to '?' or '#') gives exactly what decoding its
// percent-escapes once gives, so a rule that matched the text also matched
// what the server opens:
//
//   - a server that decodes twice;
//   - RFC 3986 §5.2.4 dot-segment removal after decoding;
//   - one that merges repeated slashes (file systems, nginx);
//   - Tomcat and Jetty, which strip ";parameters" from each segment before
//     decoding, and frameworks that strip them after;
//   - Windows, which reads '\' as '/' and strips trailing dots and spaces
//     from each name.
//
// and the decoded path holds no control character. Seeds:
// testdata/fuzz/FuzzURIAliasFree.
func FuzzURIAliasFree(f *testing.F) {
	for _, s := range []string{
		"src/main.go", "a%20b.txt", "..;/secret", ".;x/secret", "a./b", "%252e%252e/secret",
		"a%2Fb", "%C3%A9", "a//b", "secret;x/key", "a%00", "a \\b", "dir/?q=../x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, suffix string) {
		uri := "file:///repo/" + suffix
		if !uriAliasFree(uri) {
			return
		}
		path := uri[len("file://"):]
		if i := strings.IndexAny(path, "?#"); i >= 0 {
			path = path[:i]
		}
		want := pctDecode(path)
		for _, r := range want {
			if r < 0x20 || r >= 0x7f && r < 0xa0 {
				t.Fatalf("%q accepted, decoded path %q has a control character", uri, want)
			}
		}
		if !strings.HasPrefix(want, "/repo/") {
			t.Fatalf("%q accepted, decoded path %q", uri, want)
		}
		readings := map[string]string{
			"decoded twice":          pctDecode(want),
			"dot segments removed":   removeDotSegments(want),
			"slashes merged":         mergeSlashes(want),
			"params stripped raw":    removeDotSegments(pctDecode(stripParams(path))),
			"params stripped after":  removeDotSegments(stripParams(want)),
			"windows file name rule": mergeSlashes(removeDotSegments(windowsNames(strings.ReplaceAll(want, `\`, "/")))),
		}
		for name, got := range readings {
			if got != want {
				t.Fatalf("%q accepted; %s reads %q, the rule saw %q", uri, name, got, want)
			}
		}
	})
}

// pctDecode decodes every well-formed percent-escape once.
func pctDecode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// removeDotSegments is RFC 3986 §5.2.4 for an absolute path.
func removeDotSegments(p string) string {
	var out []string
	segs := strings.Split(p, "/")[1:]
	for i, s := range segs {
		last := i == len(segs)-1
		switch s {
		case ".":
			if last {
				out = append(out, "")
			}
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			if last {
				out = append(out, "")
			}
		default:
			out = append(out, s)
		}
	}
	return "/" + strings.Join(out, "/")
}

func mergeSlashes(p string) string {
	for strings.Contains(p, "//") {
		p = strings.ReplaceAll(p, "//", "/")
	}
	return p
}

// stripParams removes ";…" from every segment (Servlet path parameters).
func stripParams(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		if j := strings.IndexByte(s, ';'); j >= 0 {
			segs[i] = s[:j]
		}
	}
	return strings.Join(segs, "/")
}

// windowsNames strips trailing dots and spaces from every name except the
// "." and ".." segments.
func windowsNames(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		if s != "." && s != ".." {
			segs[i] = strings.TrimRight(s, ". ")
		}
	}
	return strings.Join(segs, "/")
}

// FuzzJSONString: appendJSONString writes valid JSON that reads back as
// encoding/json reads its own encoding of the same string, with no raw
// control character, DEL, C1 control or U+2028/U+2029 left in it.
func FuzzJSONString(f *testing.F) {
	for _, s := range []string{"", "a\"b\\c", "\x00\x1f\x7f", "é\u0085\u2028\u2029😀", "\xff\xfe", "\uFFFD", "<&>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := appendJSONString(nil, s)
		var got string
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("%q → %s: %v", s, out, err)
		}
		ref, _ := json.Marshal(s)
		var want string
		if err := json.Unmarshal(ref, &want); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("%q → %s reads %q; encoding/json %q", s, out, got, want)
		}
		for _, r := range string(out) {
			if r < 0x20 || r == 0x7f || 0x80 <= r && r < 0xa0 || r == '\u2028' || r == '\u2029' {
				t.Fatalf("%q → %s holds %U raw", s, out, r)
			}
		}
	})
}
