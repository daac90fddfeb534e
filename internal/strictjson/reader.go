// Package strictjson is a small, strict JSON reader for the documents Kavach
// decodes on its hot paths (JOSE headers, token claims, constraints). It
// reads RFC 8259 JSON without reflection and allocates only the strings it
// returns.
//
// Why not encoding/json. The documents read with this package are security
// inputs that two parsers must read the same way, and encoding/json is
// lenient where that matters: it matches member names without regard to
// case ("ALG" sets alg), takes the last of two repeated members, ignores
// unknown or misspelt ones, and accepts null for anything. A token, an
// assertion header or an MCP message that one reader takes one way and the
// next hop another is an authorization bypass; so each reader here says
// exactly which names it knows and refuses the rest. And it is cheap: on the
// uncached path the whole token check is budgeted against one Ed25519
// verification (DESIGN.md §9), where reflection-based decoding alone cost a
// fifth of it. Strings with escapes or non-ASCII bytes are still decoded by
// encoding/json, so their meaning is exactly JSON's, and the fuzz tests of
// each reader check that whatever it accepts, encoding/json decodes to the
// same value. Readers built on this package (token/decode.go,
// policy/constraints_json.go, revocation's decodeEntry, issuer's
// assertionAlg, mcp/json.go) refer here for the choice and give only their
// own rules.
//
// It is stricter than encoding/json: control characters in strings, numbers
// that are not integers where an integer is wanted, and nesting deeper than
// MaxDepth are errors. Callers add their own rules (duplicate or
// case-variant member names, null where a value is required).
package strictjson

import (
	"encoding/json"
	"errors"
	"strconv"
	"unicode/utf8"
)

// MaxDepth bounds the nesting of skipped values.
const MaxDepth = 32

// ErrSyntax is returned for anything that is not the JSON expected.
var ErrSyntax = errors.New("invalid JSON")

// Reader reads JSON values from a byte slice, left to right.
type Reader struct {
	data []byte
	pos  int
}

// NewReader reads data.
func NewReader(data []byte) *Reader { return &Reader{data: data} }

// Reset makes r read data from the start.
func (r *Reader) Reset(data []byte) { r.data, r.pos = data, 0 }

func (r *Reader) space() {
	for r.pos < len(r.data) {
		switch r.data[r.pos] {
		case ' ', '\t', '\n', '\r':
			r.pos++
		default:
			return
		}
	}
}

// Offset is the position of the next byte to read: callers that need the
// span of a value take Offset after Peek (which skips whitespace) and again
// after reading it.
func (r *Reader) Offset() int { return r.pos }

// Peek returns the next non-space byte, or 0 at the end.
func (r *Reader) Peek() byte {
	r.space()
	if r.pos < len(r.data) {
		return r.data[r.pos]
	}
	return 0
}

// Consume reads c if it is the next non-space byte.
func (r *Reader) Consume(c byte) bool {
	if r.Peek() == c {
		r.pos++
		return true
	}
	return false
}

// End reports whether only whitespace remains.
func (r *Reader) End() bool {
	r.space()
	return r.pos == len(r.data)
}

// Null reads a null literal if it is next.
func (r *Reader) Null() bool {
	if r.Peek() == 'n' && len(r.data)-r.pos >= 4 && string(r.data[r.pos:r.pos+4]) == "null" {
		r.pos += 4
		return true
	}
	return false
}

// stringToken scans a string literal and returns it with its quotes, and
// whether its content is plain (ASCII without escapes: the bytes are the
// value).
func (r *Reader) stringToken() (tok []byte, plain bool, err error) {
	if r.Peek() != '"' {
		return nil, false, ErrSyntax
	}
	start := r.pos
	plain = true
	for r.pos++; r.pos < len(r.data); r.pos++ {
		switch c := r.data[r.pos]; {
		case c == '"':
			r.pos++
			return r.data[start:r.pos], plain, nil
		case c == '\\':
			plain = false
			r.pos++
			if r.pos >= len(r.data) {
				return nil, false, ErrSyntax
			}
			switch r.data[r.pos] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if len(r.data)-r.pos < 5 || !isHex4(r.data[r.pos+1:r.pos+5]) {
					return nil, false, ErrSyntax
				}
				r.pos += 4
			default:
				return nil, false, ErrSyntax
			}
		case c < 0x20:
			// RFC 8259 §7: control characters must be escaped.
			return nil, false, ErrSyntax
		case c >= utf8.RuneSelf:
			plain = false
		}
	}
	return nil, false, ErrSyntax
}

func isHex4(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// Key reads an object member name and the ':' after it. The returned bytes
// alias the input when the name has no escapes; do not keep them.
func (r *Reader) Key() ([]byte, error) {
	tok, plain, err := r.stringToken()
	if err != nil {
		return nil, err
	}
	if !r.Consume(':') {
		return nil, ErrSyntax
	}
	if plain {
		return tok[1 : len(tok)-1], nil
	}
	s, err := unquote(tok)
	return []byte(s), err
}

// String reads a string value (not null).
func (r *Reader) String() (string, error) {
	tok, plain, err := r.stringToken()
	if err != nil {
		return "", err
	}
	if plain {
		return string(tok[1 : len(tok)-1]), nil
	}
	return unquote(tok)
}

// unquote decodes escapes and non-ASCII text the way encoding/json does, so
// a value reads the same whichever decoder saw it.
func unquote(tok []byte) (string, error) {
	var s string
	if json.Unmarshal(tok, &s) != nil {
		return "", ErrSyntax
	}
	return s, nil
}

// Strings reads an array of strings (not null; [] gives an empty, non-nil
// slice so callers can tell it from absent).
func (r *Reader) Strings() ([]string, error) {
	if !r.Consume('[') {
		return nil, ErrSyntax
	}
	out := make([]string, 0, 4)
	if r.Consume(']') {
		return out, nil
	}
	for {
		s, err := r.String()
		if err != nil {
			return nil, err
		}
		out = append(out, s)
		if r.Consume(',') {
			continue
		}
		if r.Consume(']') {
			return out, nil
		}
		return nil, ErrSyntax
	}
}

// Int reads a JSON number that is an integer fitting in int64: no fraction,
// no exponent.
func (r *Reader) Int() (int64, error) {
	r.space()
	start := r.pos
	if r.pos < len(r.data) && r.data[r.pos] == '-' {
		r.pos++
	}
	digits := r.pos
	for r.pos < len(r.data) && '0' <= r.data[r.pos] && r.data[r.pos] <= '9' {
		r.pos++
	}
	n := r.pos - digits
	if n == 0 || (n > 1 && r.data[digits] == '0') {
		return 0, ErrSyntax
	}
	if r.pos < len(r.data) {
		switch r.data[r.pos] {
		case '.', 'e', 'E':
			return 0, ErrSyntax
		}
	}
	v, err := strconv.ParseInt(string(r.data[start:r.pos]), 10, 64)
	if err != nil {
		return 0, ErrSyntax
	}
	return v, nil
}

// Object reads an object, calling member with each name; member must read
// exactly one value (or call Skip).
func (r *Reader) Object(member func(key []byte) error) error {
	if !r.Consume('{') {
		return ErrSyntax
	}
	if r.Consume('}') {
		return nil
	}
	for {
		key, err := r.Key()
		if err != nil {
			return err
		}
		if err := member(key); err != nil {
			return err
		}
		if r.Consume(',') {
			continue
		}
		if r.Consume('}') {
			return nil
		}
		return ErrSyntax
	}
}

// Raw reads any value and returns its bytes (aliasing the input).
func (r *Reader) Raw() ([]byte, error) {
	r.space()
	start := r.pos
	if err := r.skip(0); err != nil {
		return nil, err
	}
	return r.data[start:r.pos], nil
}

// Skip reads any value and discards it.
func (r *Reader) Skip() error { return r.skip(0) }

func (r *Reader) skip(depth int) error {
	if depth > MaxDepth {
		return ErrSyntax
	}
	switch c := r.Peek(); {
	case c == '"':
		_, _, err := r.stringToken()
		return err
	case c == '{':
		return r.Object(func([]byte) error { return r.skip(depth + 1) })
	case c == '[':
		r.pos++
		if r.Consume(']') {
			return nil
		}
		for {
			if err := r.skip(depth + 1); err != nil {
				return err
			}
			if r.Consume(',') {
				continue
			}
			if r.Consume(']') {
				return nil
			}
			return ErrSyntax
		}
	case c == '-' || '0' <= c && c <= '9':
		return r.number()
	default:
		for _, lit := range [...]string{"true", "false", "null"} {
			if len(r.data)-r.pos >= len(lit) && string(r.data[r.pos:r.pos+len(lit)]) == lit {
				r.pos += len(lit)
				return nil
			}
		}
		return ErrSyntax
	}
}

// number reads any RFC 8259 §6 number.
func (r *Reader) number() error {
	if r.data[r.pos] == '-' {
		r.pos++
	}
	first := r.pos
	if n := r.digits(); n == 0 || (n > 1 && r.data[first] == '0') {
		return ErrSyntax
	}
	if r.pos < len(r.data) && r.data[r.pos] == '.' {
		r.pos++
		if r.digits() == 0 {
			return ErrSyntax
		}
	}
	if r.pos < len(r.data) && (r.data[r.pos] == 'e' || r.data[r.pos] == 'E') {
		r.pos++
		if r.pos < len(r.data) && (r.data[r.pos] == '+' || r.data[r.pos] == '-') {
			r.pos++
		}
		if r.digits() == 0 {
			return ErrSyntax
		}
	}
	return nil
}

func (r *Reader) digits() int {
	start := r.pos
	for r.pos < len(r.data) && '0' <= r.data[r.pos] && r.data[r.pos] <= '9' {
		r.pos++
	}
	return r.pos - start
}
