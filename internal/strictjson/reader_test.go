package strictjson

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestReaderValues(t *testing.T) {
	t.Parallel()
	r := NewReader([]byte(` { "s" : "a\u00e9\"b" , "n":-12, "l":["x","y"], "e":[], "o":{"a":[1,2.5e-3,true,false,null,{}]}, "z":null } `))
	got := map[string]any{}
	err := r.Object(func(key []byte) error {
		var err error
		switch string(key) {
		case "s":
			got["s"], err = r.String()
		case "n":
			got["n"], err = r.Int()
		case "l", "e":
			got[string(key)], err = r.Strings()
		case "o":
			var raw []byte
			raw, err = r.Raw()
			got["o"] = string(raw)
		case "z":
			if !r.Null() {
				err = errors.New("z is not null")
			}
		}
		return err
	})
	if err != nil || !r.End() {
		t.Fatalf("err %v end %v", err, r.End())
	}
	if got["s"] != "aé\"b" || got["n"] != int64(-12) || !slices.Equal(got["l"].([]string), []string{"x", "y"}) {
		t.Errorf("got %#v", got)
	}
	if e := got["e"].([]string); e == nil || len(e) != 0 {
		t.Errorf("[] must read as an empty, non-nil slice: %#v", e)
	}
	if got["o"] != `{"a":[1,2.5e-3,true,false,null,{}]}` {
		t.Errorf("raw = %q", got["o"])
	}
}

func TestReaderRejects(t *testing.T) {
	t.Parallel()
	cases := map[string]func(r *Reader) error{
		`"a` + "\x01" + `"`:    func(r *Reader) error { _, err := r.String(); return err },
		`"\x"`:                 func(r *Reader) error { _, err := r.String(); return err },
		`"\u12"`:               func(r *Reader) error { _, err := r.String(); return err },
		`"abc`:                 func(r *Reader) error { _, err := r.String(); return err },
		`1.5`:                  func(r *Reader) error { _, err := r.Int(); return err },
		`1e3`:                  func(r *Reader) error { _, err := r.Int(); return err },
		`01`:                   func(r *Reader) error { _, err := r.Int(); return err },
		`-`:                    func(r *Reader) error { _, err := r.Int(); return err },
		`99999999999999999999`: func(r *Reader) error { _, err := r.Int(); return err },
		`["a",]`:               func(r *Reader) error { _, err := r.Strings(); return err },
		`["a" "b"]`:            func(r *Reader) error { _, err := r.Strings(); return err },
		`[1]`:                  func(r *Reader) error { _, err := r.Strings(); return err },
		`null`:                 func(r *Reader) error { _, err := r.Strings(); return err },
		`{"a":1,}`:             func(r *Reader) error { return r.Skip() },
		`{"a" 1}`:              func(r *Reader) error { return r.Skip() },
		`[01]`:                 func(r *Reader) error { return r.Skip() },
		`[1.]`:                 func(r *Reader) error { return r.Skip() },
		`tru`:                  func(r *Reader) error { return r.Skip() },
		strings.Repeat("[", MaxDepth+2) + strings.Repeat("]", MaxDepth+2): func(r *Reader) error { return r.Skip() },
	}
	for in, read := range cases {
		if err := read(NewReader([]byte(in))); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

func TestReaderOffset(t *testing.T) {
	t.Parallel()
	data := []byte(`{ "a" : [1, {"b":2}] , "c":"d"}`)
	r := NewReader(data)
	var spans []string
	err := r.Object(func(key []byte) error {
		r.Peek()
		start := r.Offset()
		if err := r.Skip(); err != nil {
			return err
		}
		spans = append(spans, string(data[start:r.Offset()]))
		return nil
	})
	if err != nil || !slices.Equal(spans, []string{`[1, {"b":2}]`, `"d"`}) {
		t.Errorf("spans %q, err %v", spans, err)
	}
}

// FuzzSkip: Skip accepts only what encoding/json accepts as one value.
func FuzzSkip(f *testing.F) {
	for _, s := range []string{`{"a":[1,-2.5E+3,"x\n",true,null]}`, `"\ud800"`, `[[[]]]`, `-0`, `{"a":{"b":{}}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(data)
		if r.Skip() != nil || !r.End() {
			return
		}
		if !json.Valid(data) {
			t.Fatalf("Skip accepted invalid JSON %q", data)
		}
	})
}
