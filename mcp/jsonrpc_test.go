package mcp

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"strings"
	"testing"
	"unicode/utf8"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// The error body, byte for byte: testdata/errorbody.golden holds one line
// per case, "name: body". Run with -update after a deliberate change and
// review the diff.
func TestErrorBodyGolden(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		id      ID
		code    int
		message string
	}{
		{"integer id", IntID(7), CodeAccessDenied, "the token does not allow this tool"},
		{"zero integer id", IntID(0), CodeMethodNotFound, "method not found"},
		{"negative id", IntID(-42), CodeInvalidParams, "invalid params for this method"},
		{"max id", IntID(9223372036854775807), CodeHeaderMismatch, "Mcp-Method or Mcp-Name header does not match the body"},
		{"min id", IntID(-9223372036854775808), CodeInvalidRequest, "x"},
		{"string id", StringID("req-1"), CodeSessionNotFound, "Session not found"},
		{"string id that looks like a number", StringID("1"), CodeAccessDenied, "denied"},
		{"empty string id", StringID(""), CodeAccessDenied, "denied"},
		{"null id", ID{}, CodeParseError, "malformed JSON-RPC message"},
		{"quotes and backslashes", StringID(`a"b\c`), CodeAccessDenied, `say "no" \ again`},
		{"control characters", StringID("\x00\x01\t\n"), CodeAccessDenied, "a\x00b\bc\fd\ne\rf\tg\x1fh\x7fi"},
		{"C1 and line separators", StringID("\u0085"), CodeAccessDenied, "a\u0085b\u2028c\u2029d"},
		{"non-ASCII", StringID("ид-😀"), CodeAccessDenied, "refusé: ツール 😀"},
		{"no HTML escaping", StringID("<a&b>"), CodeAccessDenied, "<script>alert('x')</script> & more"},
		{"invalid UTF-8", StringID("a\xffb"), CodeAccessDenied, "c\xc3d\xed\xa0\x80e"},
		{"U+FFFD itself", IntID(1), CodeAccessDenied, "\uFFFD"},
		{"empty message", IntID(1), CodeInternalError, ""},
	}
	var got bytes.Buffer
	for _, c := range cases {
		body := ErrorBody(c.id, c.code, c.message)
		got.WriteString(c.name + ": ")
		got.Write(body)
		got.WriteByte('\n')

		// It is JSON, with exactly these members, and reads back as the
		// id, code and message given (invalid UTF-8 as U+FFFD).
		var v struct {
			JSONRPC string          `json:"jsonrpc"`
			ID      json.RawMessage `json:"id"`
			Error   struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&v); err != nil {
			t.Errorf("%s: %s: %v", c.name, body, err)
			continue
		}
		wantID := "null"
		if !c.id.IsZero() {
			wantID = c.id.String()
		}
		wantMsg, _ := json.Marshal(c.message)
		var msg string
		_ = json.Unmarshal(wantMsg, &msg)
		if v.JSONRPC != "2.0" || string(v.ID) != wantID || v.Error.Code != c.code || v.Error.Message != msg {
			t.Errorf("%s: %s reads as %+v", c.name, body, v)
		}
		// With an id Decode can have read (valid UTF-8), the body is a
		// valid MCP response to that request. (Decode refuses a null id.)
		if !c.id.IsZero() && utf8.ValidString(c.id.str) {
			if m, err := Decode(body); err != nil || m.Kind != KindResponse || m.ID != c.id {
				t.Errorf("%s: Decode(%s) = %+v, %v", c.name, body, m, err)
			}
		}
	}
	golden(t, "testdata/errorbody.golden", got.Bytes())
}

// ErrorBodyFor answers every error of this package with its code, public
// text and id, and any other error without echoing its text.
func TestErrorBodyFor(t *testing.T) {
	t.Parallel()
	m, _ := Decode([]byte(`{"jsonrpc":"2.0","id":"q\"1","method":"Tools/Call","params":{"name":"x"}}`))
	_, params := Decode([]byte(`{"jsonrpc":"2.0","id":9,"method":"prompts/get","params":{"name":""}}`))
	_, syntax := Decode([]byte(`{"jsonrpc":"2.0","id":9,"method":"ping"`))
	cases := []struct {
		err  error
		want string
	}{
		{CheckMethod(&m), `{"jsonrpc":"2.0","id":"q\"1","error":{"code":-32601,"message":"method not found"}}`},
		{params, `{"jsonrpc":"2.0","id":9,"error":{"code":-32602,"message":"invalid params for this method"}}`},
		{syntax, `{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"malformed JSON-RPC message"}}`},
		{os.ErrClosed, `{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"internal error"}}`},
	}
	for _, c := range cases {
		if got := string(ErrorBodyFor(c.err)); got != c.want {
			t.Errorf("%v:\n got %s\nwant %s", c.err, got, c.want)
		}
	}
}

// golden compares got with the file, or rewrites it under -update.
func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		for i := 0; i < len(gl) || i < len(wl); i++ {
			var g, w string
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				t.Errorf("%s line %d:\n got %s\nwant %s", path, i+1, g, w)
			}
		}
	}
}
