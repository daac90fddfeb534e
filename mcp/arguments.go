package mcp

import (
	"errors"
	"strings"
	"unicode/utf8"

	"github.com/kavachgate/kavach/internal/strictjson"
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
