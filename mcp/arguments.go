package mcp

import (
	"bytes"
	"errors"
	"strings"
	"unicode/utf8"

	"github.com/kavachgate/kavach/internal/strictjson"
	"github.com/kavachgate/kavach/policy"
)

// Redacted replaces the value of a member RecordArguments redacts.
const Redacted = `"[redacted]"`

// errFull stops RecordArguments once its output is past the limit.
var errFull = errors.New("mcp: recorded arguments full")

// RecordArguments appends to dst the arguments raw (the bytes of a
// Message's Arguments span, which Decode checked) as an audit trail
// records them: compact, whitespace between tokens dropped, every string
// and number kept as sent (escapes included), and the value of every
// object member whose name is in redact replaced by "[redacted]", at any
// depth. Names compare once unescaped and without regard to case, so
// "Password" and "pass\u0077ord" meet a redact of "password". When the
// result would pass max bytes it is cut at a UTF-8 boundary and ends in
// "…" (at most max bytes in all); redaction comes first, so a cut never
// shows what it hides.
func RecordArguments(dst, raw []byte, redact []string, max int) ([]byte, error) {
	rec := argsRecorder{w: walkers.Get().(*walker), out: dst, start: len(dst), limit: len(dst) + max, redact: redact}
	defer walkers.Put(rec.w)
	rec.w.reset(raw)
	err := rec.value(0)
	if err == nil && !rec.w.r.End() {
		err = strictjson.ErrSyntax
	}
	rec.w.reset(nil)
	switch {
	case errors.Is(err, errFull) || err == nil && len(rec.out) > rec.limit:
		return cut(rec.out, rec.start, max), nil
	case err != nil:
		return dst, err
	}
	return rec.out, nil
}

// cut shortens out[start:] to at most max bytes ending in "…".
func cut(out []byte, start, max int) []byte {
	const ellipsis = "…"
	n := start + max - len(ellipsis)
	if n < start {
		return out[:start]
	}
	for n > start && !utf8.RuneStart(out[n]) {
		n--
	}
	return append(out[:n], ellipsis...)
}

// argsRecorder writes what the walker (see json.go) reads, compacted.
type argsRecorder struct {
	w      *walker
	out    []byte
	start  int
	limit  int
	redact []string
}

// value records one value at depth (the depth of the container holding
// it, 0 for the arguments themselves).
func (a *argsRecorder) value(depth int) error {
	if len(a.out) > a.limit {
		return errFull
	}
	switch a.w.r.Peek() {
	case '{':
		a.out = append(a.out, '{')
		n := 0
		for key, err := range a.w.members(depth + 1) {
			if err != nil {
				return err
			}
			if n++; n > 1 {
				a.out = append(a.out, ',')
			}
			a.out = append(a.out, a.w.keyTok...)
			a.out = append(a.out, ':')
			if a.redacts(key) {
				if err := a.w.r.Skip(); err != nil {
					return err
				}
				a.out = append(a.out, Redacted...)
			} else if err := a.value(depth + 1); err != nil {
				return err
			}
		}
		a.out = append(a.out, '}')
		return nil
	case '[':
		a.out = append(a.out, '[')
		n := 0
		for err := range a.w.elements(depth + 1) {
			if err != nil {
				return err
			}
			if n++; n > 1 {
				a.out = append(a.out, ',')
			}
			if err := a.value(depth + 1); err != nil {
				return err
			}
		}
		a.out = append(a.out, ']')
		return nil
	}
	tok, err := a.w.r.Raw() // a string, number or literal, as sent
	if err != nil {
		return err
	}
	a.out = append(a.out, tok...)
	return nil
}

// redacts reports whether the member named key (unescaped) is one to
// redact.
func (a *argsRecorder) redacts(key []byte) bool {
	for _, r := range a.redact {
		if strings.EqualFold(string(key), r) {
			return true
		}
	}
	return false
}

// ArgumentValues reads a call's arguments once (raw: the bytes of a
// Message's Arguments span, which Decode checked) and sets out[i] to the
// value of the argument names[i] names: a member name, or an RFC 6901
// pointer through nested objects (policy.ArgPointer). An argument that is
// not there (no arguments, not an object, a pointer meeting a non-object)
// is policy.ArgAbsent. Strings are unescaped; numbers are their tokens as
// sent; objects, arrays, true and false are ArgOther.
//
// Names compare exactly. A member whose name differs from a constrained
// one only in case is refused (ErrInvalidParams): decoders such as Go's
// encoding/json match member names case-insensitively, and the last of
// {"path":"/repo/a","PATH":"/etc/passwd"} would be the one the tool reads.
func ArgumentValues(raw []byte, names []string, out []policy.ArgValue) error {
	for i := range out {
		out[i] = policy.ArgValue{}
	}
	if len(raw) == 0 || len(names) == 0 {
		return nil
	}
	paths := make([][]string, len(names))
	idx := make([]int, len(names))
	for i, n := range names {
		paths[i], idx[i] = policy.ArgPointer(n), i
	}
	w := walkers.Get().(*walker)
	defer walkers.Put(w)
	w.reset(raw)
	defer w.reset(nil)
	return lookupArgs(w, 0, 0, paths, idx, out)
}

// lookupArgs reads the value at depth (the depth of its container) and,
// when it is an object, the members the pointers paths[idx] name at level.
func lookupArgs(w *walker, depth, level int, paths [][]string, idx []int, out []policy.ArgValue) error {
	if w.r.Peek() != '{' {
		return w.value(depth)
	}
	for key, err := range w.members(depth + 1) {
		if err != nil {
			return err
		}
		var exact, deeper []int
		for _, i := range idx {
			seg := paths[i][level]
			switch {
			case string(key) == seg:
				if level+1 == len(paths[i]) {
					exact = append(exact, i)
				} else {
					deeper = append(deeper, i)
				}
			case bytes.EqualFold(key, []byte(seg)):
				return invalid(pubParams, "a case variant of the argument "+excerpt(seg))
			}
		}
		if exact == nil && deeper == nil {
			if err := w.value(depth + 1); err != nil {
				return err
			}
			continue
		}
		var v policy.ArgValue
		switch w.r.Peek() {
		case '{':
			v.Type = policy.ArgOther
			if deeper != nil {
				if err := lookupArgs(w, depth+1, level+1, paths, deeper, out); err != nil {
					return err
				}
			} else if err := w.value(depth + 1); err != nil {
				return err
			}
		case '[':
			v.Type = policy.ArgOther
			if err := w.value(depth + 1); err != nil {
				return err
			}
		case '"':
			tok, err := w.stringToken()
			if err != nil {
				return err
			}
			s, err := unquote(tok)
			if err != nil {
				return err
			}
			v = policy.ArgValue{Type: policy.ArgString, Text: s}
		default:
			tok, err := w.r.Raw()
			if err != nil {
				return errSyntax
			}
			switch tok[0] {
			case 'n':
				v.Type = policy.ArgNull
			case 't', 'f':
				v.Type = policy.ArgOther
			default:
				v = policy.ArgValue{Type: policy.ArgNumber, Text: string(tok)}
			}
		}
		for _, i := range exact {
			out[i] = v
		}
	}
	return nil
}
