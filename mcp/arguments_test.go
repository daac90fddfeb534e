package mcp

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/kavachgate/kavach/policy"
)

func TestRecordArguments(t *testing.T) {
	t.Parallel()
	redact := []string{"password", "Token"}
	for _, c := range []struct {
		name, raw, want string
		max             int
	}{
		{"compact", "{ \"a\" : [ 1 , true , null ] ,\n\"b\":\"x y\" }", `{"a":[1,true,null],"b":"x y"}`, 100},
		{"redact at any depth", `{"password":"p","a":[{"TOKEN":{"deep":1}},{"x":{"Password":[1,2]}}]}`,
			`{"password":"[redacted]","a":[{"TOKEN":"[redacted]"},{"x":{"Password":"[redacted]"}}]}`, 200},
		{"escaped name", `{"pass\u0077ord":"p"}`, `{"pass\u0077ord":"[redacted]"}`, 100},
		{"a value named like a member stays", `{"note":"password"}`, `{"note":"password"}`, 100},
		{"scalar", `"just a string"`, `"just a string"`, 100},
		{"cut", `{"a":"0123456789"}`, `{"a":"01234…`, 14},
		{"cut at a rune boundary", `{"a":"éééé"}`, `{"a":"é…`, 12},
		{"cut after redaction", `{"password":"0123456789abcdef","b":1}`, `{"password":"[redac…`, 22},
	} {
		got, err := RecordArguments([]byte("prefix:"), []byte(c.raw), redact, c.max)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if string(got) != "prefix:"+c.want {
			t.Errorf("%s:\n got %s\nwant prefix:%s", c.name, got, c.want)
		}
		if n := len(got) - len("prefix:"); n > c.max || !utf8.Valid(got) {
			t.Errorf("%s: %d bytes (max %d), valid UTF-8 %v", c.name, n, c.max, utf8.Valid(got))
		}
	}
	if _, err := RecordArguments(nil, []byte(`{"a":1`), nil, 100); err == nil {
		t.Error("truncated JSON recorded")
	}
	if _, err := RecordArguments(nil, []byte(`{"a":1} x`), nil, 100); err == nil {
		t.Error("trailing data recorded")
	}
}

// FuzzRecordArguments: for the arguments of any message Decode accepts,
// the recording without redaction is json.Compact of them (every token as
// sent), and with redaction it is valid JSON without the redacted values.
func FuzzRecordArguments(f *testing.F) {
	for _, s := range []string{`{"path":"README.md","n":1}`, `{"password":"x","a":[{"password":{"b":2}}]}`, `[1, "password", {"password": null}]`, `"s"`, `{ "p\u0061ssword" : "x" }`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, args string) {
		body := []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":` + args + `}}`)
		m, err := Decode(body)
		if err != nil || m.Arguments.IsZero() {
			return
		}
		raw := m.Arguments.Of(body)
		got, err := RecordArguments(nil, raw, nil, len(raw)+1)
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		var want bytes.Buffer
		if err := json.Compact(&want, raw); err != nil || !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("%s: recorded %s, compact %s (%v)", raw, got, want.Bytes(), err)
		}
		red, err := RecordArguments(nil, raw, []string{"password"}, len(raw)+len(Redacted)*len(raw))
		if err != nil || !json.Valid(red) {
			t.Fatalf("%s: redacted %s (%v)", raw, red, err)
		}
		var v any
		_ = json.Unmarshal(red, &v)
		if holdsRedactedValue(v) {
			t.Fatalf("%s: a password survived: %s", raw, red)
		}
	})
}

// holdsRedactedValue reports whether a member named password (any case)
// has a value other than "[redacted]".
func holdsRedactedValue(v any) bool {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if strings.EqualFold(k, "password") && e != "[redacted]" {
				return true
			}
			if holdsRedactedValue(e) {
				return true
			}
		}
	case []any:
		for _, e := range x {
			if holdsRedactedValue(e) {
				return true
			}
		}
	}
	return false
}

func TestArgumentValues(t *testing.T) {
	t.Parallel()
	raw := []byte(`{"path":"/repo/\u0061","n":1.5e2,"opt":null,"flag":true,"list":[1,{"path":"x"}],"options":{"mode":"r","deep":{"x":"y"}},"a/b":"slash"}`)
	names := []string{"path", "n", "opt", "flag", "list", "/options/mode", "/options/deep/x", "/options", "missing", "/path/x", "/a~1b", "/options/none"}
	out := make([]policy.ArgValue, len(names))
	if err := ArgumentValues(raw, names, out); err != nil {
		t.Fatal(err)
	}
	want := []policy.ArgValue{
		{Type: policy.ArgString, Text: "/repo/a"},
		{Type: policy.ArgNumber, Text: "1.5e2"},
		{Type: policy.ArgNull},
		{Type: policy.ArgOther},
		{Type: policy.ArgOther},
		{Type: policy.ArgString, Text: "r"},
		{Type: policy.ArgString, Text: "y"},
		{Type: policy.ArgOther},
		{},
		{},
		{Type: policy.ArgString, Text: "slash"},
		{},
	}
	for i := range want {
		if out[i] != want[i] {
			t.Errorf("%s = %+v, want %+v", names[i], out[i], want[i])
		}
	}
	for _, raw := range []string{`{"path":"/repo/a","PATH":"/etc/passwd"}`, `{"Path":"/etc/passwd"}`, `{"options":{"MODE":"w"}}`} {
		err := ArgumentValues([]byte(raw), []string{"path", "/options/mode"}, out)
		if !errors.Is(err, ErrInvalidParams) {
			t.Errorf("%s: %v, want a case variant refused", raw, err)
		}
	}
	if err := ArgumentValues([]byte(`"text"`), []string{"path"}, out); err != nil || out[0].Type != policy.ArgAbsent {
		t.Errorf("arguments not an object: %v %+v", err, out[0])
	}
}

// FuzzArgumentValues: on any valid JSON arguments, ArgumentValues never
// panics, and what it reads for a top-level member is what encoding/json
// reads (absent, null, the string, the number token).
func FuzzArgumentValues(f *testing.F) {
	for _, s := range []string{`{"path":"/repo/a"}`, `{"path":"\u002e\u002e","n":1e2}`, `{"a":{"path":null}}`, `[]`, `"x"`, `{"path":["x"],"Path":1}`} {
		f.Add([]byte(s))
	}
	names := []string{"path", "n", "/a/path", "a"}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if !utf8.Valid(raw) || !json.Valid(raw) {
			return
		}
		out := make([]policy.ArgValue, len(names))
		if err := ArgumentValues(raw, names, out); err != nil {
			return
		}
		var m map[string]json.RawMessage
		if json.Unmarshal(raw, &m) != nil {
			for _, v := range out {
				if v.Type != policy.ArgAbsent {
					t.Fatalf("%s: not an object, yet %+v", raw, out)
				}
			}
			return
		}
		for i, n := range names[:2] {
			v, ok := m[n]
			got := out[i]
			switch {
			case !ok:
				if got.Type != policy.ArgAbsent {
					t.Fatalf("%s: %s absent, read %+v", raw, n, got)
				}
			case string(v) == "null":
				if got.Type != policy.ArgNull {
					t.Fatalf("%s: %s null, read %+v", raw, n, got)
				}
			case v[0] == '"':
				var s string
				_ = json.Unmarshal(v, &s)
				if got.Type != policy.ArgString || got.Text != s {
					t.Fatalf("%s: %s = %q, read %+v", raw, n, s, got)
				}
			case v[0] == '-' || v[0] >= '0' && v[0] <= '9':
				if got.Type != policy.ArgNumber || got.Text != string(v) {
					t.Fatalf("%s: %s = %s, read %+v", raw, n, v, got)
				}
			default:
				if got.Type != policy.ArgOther {
					t.Fatalf("%s: %s = %s, read %+v", raw, n, v, got)
				}
			}
		}
	})
}
