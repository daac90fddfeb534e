package mcp

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// walkAll reads data as one value with the walker and returns the member
// names members yielded (innermost objects' names among them, in order).
func walkAll(data string) (names []string, err error) {
	var w walker
	w.reset([]byte(data))
	var read func(depth int) error
	read = func(depth int) error {
		switch w.r.Peek() {
		case '{':
			for key, err := range w.members(depth + 1) {
				if err != nil {
					return err
				}
				names = append(names, string(key))
				if err := read(depth + 1); err != nil {
					return err
				}
			}
			return nil
		case '[':
			for err := range w.elements(depth + 1) {
				if err != nil {
					return err
				}
				if err := read(depth + 1); err != nil {
					return err
				}
			}
			return nil
		}
		return w.value(depth)
	}
	if err := read(0); err != nil {
		return names, err
	}
	if !w.r.End() {
		return names, errSyntax
	}
	return names, nil
}

func TestWalkerMembers(t *testing.T) {
	t.Parallel()
	large := func(dupAt int) string {
		var b strings.Builder
		b.WriteByte('{')
		for i := range 3 * smallObject {
			if i > 0 {
				b.WriteByte(',')
			}
			n := i
			if i == dupAt {
				n = 1
			}
			fmt.Fprintf(&b, `"k%d":%d`, n, i)
		}
		b.WriteByte('}')
		return b.String()
	}
	for _, tc := range []struct {
		name, in string
		names    string // the names yielded, space-separated
		wantErr  string // a substring of the error, "" for none
	}{
		{"empty object", `{}`, "", ""},
		{"members in order", ` { "a" : 1 , "b" : [ 2 , { "c" : null } ] } `, "a b c", ""},
		{"escaped names unescaped", `{"\u0061":1,"b\n":2}`, "a b\n", ""},
		{"same name in sibling objects", `[{"a":1},{"a":2}]`, "a a", ""},
		{"same name in nested object", `{"a":{"a":1}}`, "a a", ""},
		{"duplicate", `{"a":1,"a":2}`, "a", "duplicate member name"},
		{"duplicate once unescaped", `{"a":1,"\u0061":2}`, "a", "duplicate member name"},
		{"duplicate in a large object", large(2 * smallObject), "", "duplicate member name"},
		{"large object", large(-1), "", ""},
		{"lone surrogate in a name", `{"\ud800":1}`, "", "unpaired UTF-16 surrogate"},
		{"lone surrogate in a value", `{"a":"\udc00"}`, "a", "unpaired UTF-16 surrogate"},
		{"trailing comma", `{"a":1,}`, "a", "JSON syntax"},
		{"missing colon", `{"a" 1}`, "", "JSON syntax"},
		{"name not a string", `{1:2}`, "", "JSON syntax"},
		{"unclosed", `{"a":1`, "a", "JSON syntax"},
		{"array trailing comma", `[1,]`, "", "JSON syntax"},
		{"array unclosed", `[1`, "", "JSON syntax"},
		{"too deep", strings.Repeat(`{"a":`, MaxDepth+1) + "1" + strings.Repeat("}", MaxDepth+1), strings.TrimSpace(strings.Repeat("a ", MaxDepth)), "nesting deeper"},
		{"deepest allowed", strings.Repeat(`[`, MaxDepth) + strings.Repeat("]", MaxDepth), "", ""},
		{"array too deep", strings.Repeat(`[`, MaxDepth+1) + strings.Repeat("]", MaxDepth+1), "", "nesting deeper"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			names, err := walkAll(tc.in)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
			if strings.HasPrefix(tc.name, "large") || strings.HasPrefix(tc.name, "duplicate in a large") {
				return
			}
			if got := strings.Join(names, " "); got != tc.names {
				t.Fatalf("names %q, want %q", got, tc.names)
			}
		})
	}
}

// TestWalkerStopsEarly: a loop that returns leaves the object unread and
// the walker says so no further (no yield after the body stopped).
func TestWalkerStopsEarly(t *testing.T) {
	t.Parallel()
	var w walker
	w.reset([]byte(`{"a":1,"b":2}`))
	stop := errors.New("stop")
	err := func() error {
		for key, err := range w.members(1) {
			if err != nil {
				return err
			}
			if string(key) == "a" {
				return stop
			}
		}
		return nil
	}()
	if err != stop {
		t.Fatalf("got %v, want the body's own error", err)
	}
	if string(w.keyTok) != `"a"` {
		t.Fatalf("keyTok %s, want the name as written", w.keyTok)
	}
}
