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
	rec := argsRecorder{out: dst, start: len(dst), limit: len(dst) + max, redact: redact}
	rec.r.Reset(raw)
	err := rec.value(0)
	if err == nil && !rec.r.End() {
		err = strictjson.ErrSyntax
	}
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

type argsRecorder struct {
	r      strictjson.Reader
	out    []byte
	start  int
	limit  int
	redact []string
}

func (a *argsRecorder) value(depth int) error {
	if len(a.out) > a.limit {
		return errFull
	}
	if depth > MaxDepth {
		return strictjson.ErrSyntax
	}
	switch a.r.Peek() {
	case '{':
		a.r.Consume('{')
		a.out = append(a.out, '{')
		if a.r.Consume('}') {
			a.out = append(a.out, '}')
			return nil
		}
		for {
			if a.r.Peek() != '"' {
				return strictjson.ErrSyntax
			}
			key, err := a.r.Raw()
			if err != nil {
				return err
			}
			if !a.r.Consume(':') {
				return strictjson.ErrSyntax
			}
			a.out = append(a.out, key...)
			a.out = append(a.out, ':')
			if a.redacts(key) {
				if err := a.r.Skip(); err != nil {
					return err
				}
				a.out = append(a.out, Redacted...)
			} else if err := a.value(depth + 1); err != nil {
				return err
			}
			switch {
			case a.r.Consume(','):
				a.out = append(a.out, ',')
			case a.r.Consume('}'):
				a.out = append(a.out, '}')
				return nil
			default:
				return strictjson.ErrSyntax
			}
		}
	case '[':
		a.r.Consume('[')
		a.out = append(a.out, '[')
		if a.r.Consume(']') {
			a.out = append(a.out, ']')
			return nil
		}
		for {
			if err := a.value(depth + 1); err != nil {
				return err
			}
			switch {
			case a.r.Consume(','):
				a.out = append(a.out, ',')
			case a.r.Consume(']'):
				a.out = append(a.out, ']')
				return nil
			default:
				return strictjson.ErrSyntax
			}
		}
	}
	tok, err := a.r.Raw() // a string, number or literal, as sent
	if err != nil {
		return err
	}
	a.out = append(a.out, tok...)
	return nil
}

// redacts reports whether the member named by the string token key is
// one to redact.
func (a *argsRecorder) redacts(key []byte) bool {
	if len(a.redact) == 0 {
		return false
	}
	name, err := unquoteBytes(key)
	if err != nil {
		return true // unreadable: fail closed
	}
	for _, r := range a.redact {
		if strings.EqualFold(string(name), r) {
			return true
		}
	}
	return false
}
