package mcp

import (
	"bytes"
	"encoding/json"
	"iter"
	"strconv"
	"unicode/utf8"

	"github.com/kavachgate/kavach/internal/strictjson"
)

// The package reads JSON by hand rather than with encoding/json
// (internal/strictjson says why for every such reader), and here for a
// reason of its own: the bytes checked must be the bytes forwarded. The
// gateway forwards the body unchanged, so inspection judges the document
// as written (duplicate names, escapes, case variants of names, the spans
// of values), all of which a decoder into Go values throws away. Every
// reader in the package (Decode, the tools/list filter, RecordArguments)
// goes through walker below, and allocates nothing per member; FuzzDecode
// checks that what it accepts, encoding/json reads as the same message.

// walker is the strict JSON pass shared by Decode, the tools/list filter
// and RecordArguments. On top of internal/strictjson's RFC 8259 grammar
// it enforces, at every level of the document:
//
//   - no duplicate member names in an object, compared after unescaping
//     ("a" and "\u0061" are the same name), so no two parsers can disagree
//     on which of two values counts;
//   - no escaped UTF-16 surrogate that is not part of a pair ("\ud800"):
//     parsers decode a lone surrogate differently (U+FFFD, an error, a lone
//     UTF-16 code unit);
//   - nesting at most MaxDepth.
//
// Every object is read through members and every array through elements:
// they are the package's only loops over JSON containers.
//
// Callers check UTF-8 validity of the whole input first (RFC 8259 §8.1).
// Case-sensitivity of member names is the callers' rule: they reject case
// variants of the names they interpret, because decoders such as Go's
// encoding/json match names case-insensitively.
type walker struct {
	r    strictjson.Reader
	data []byte
	// keys holds the member names of the objects currently open, innermost
	// last, for duplicate detection in small objects.
	keys [][]byte
	// keyTok is the token of the member name members yielded last, as
	// written (quotes and escapes included).
	keyTok []byte
}

// reset readies w for data; reset(nil) drops every reference to the last
// input, so a pooled walker does not keep a body alive.
func (w *walker) reset(data []byte) {
	w.r.Reset(data)
	w.data = data
	clear(w.keys[:cap(w.keys)])
	w.keys = w.keys[:0]
	w.keyTok = nil
}

// smallObject is the member count up to which duplicates are found by
// comparing with each earlier name; beyond it a set is built, so a large
// object costs linear time, not quadratic.
const smallObject = 16

var errSyntax = invalid(pubSyntax, "JSON syntax")

func errDepth() *Error { return invalid(pubSyntax, "nesting deeper than "+strconv.Itoa(MaxDepth)) }

// members reads the object at depth (the object's own: a message is at
// depth 1) member by member. It yields each member's name, unescaped, with
// the name and ':' read; the loop body reads exactly one value, or stops
// the walk. A malformed object (a duplicate name among them) yields a nil
// name and the error, then ends; '}' ends it quietly:
//
//	for key, err := range w.members(depth) {
//		if err != nil {
//			return err
//		}
//		… read the value of key …
//	}
func (w *walker) members(depth int) iter.Seq2[[]byte, error] {
	return func(yield func([]byte, error) bool) {
		if depth > MaxDepth {
			yield(nil, errDepth())
			return
		}
		if !w.r.Consume('{') {
			yield(nil, errSyntax)
			return
		}
		it := objIter{base: len(w.keys)}
		for {
			key, more, err := w.next(&it)
			if err != nil {
				yield(nil, err)
				return
			}
			if !more || !yield(key, nil) {
				return
			}
		}
	}
}

// elements reads the array at depth element by element: it yields nil
// before each element, which the loop body reads; a malformed array
// yields its error, then ends; ']' ends it quietly.
func (w *walker) elements(depth int) iter.Seq[error] {
	return func(yield func(error) bool) {
		if depth > MaxDepth {
			yield(errDepth())
			return
		}
		if !w.r.Consume('[') {
			yield(errSyntax)
			return
		}
		if w.r.Consume(']') {
			return
		}
		for yield(nil) {
			if w.r.Consume(',') {
				continue
			}
			if !w.r.Consume(']') {
				yield(errSyntax)
			}
			return
		}
	}
}

// objIter is the state of one object members is reading.
type objIter struct {
	base int // w.keys[base:] are this object's names while it is small
	n    int
	set  map[string]struct{}
}

// next reads the separator before a member, then its name and ':'. more
// is false after '}'.
func (w *walker) next(it *objIter) (key []byte, more bool, err error) {
	if it.n > 0 {
		if !w.r.Consume(',') {
			if w.r.Consume('}') {
				w.keys = w.keys[:it.base]
				return nil, false, nil
			}
			return nil, false, errSyntax
		}
	} else if w.r.Consume('}') {
		return nil, false, nil
	}
	if w.r.Peek() != '"' {
		return nil, false, errSyntax
	}
	tok, err := w.r.Raw()
	if err != nil {
		return nil, false, errSyntax
	}
	if key, err = unquoteBytes(tok); err != nil {
		return nil, false, err
	}
	if !w.r.Consume(':') {
		return nil, false, errSyntax
	}
	switch {
	case it.set != nil:
		if _, dup := it.set[string(key)]; dup {
			return nil, false, duplicate(key)
		}
		it.set[string(key)] = struct{}{}
	case it.n < smallObject:
		for _, k := range w.keys[it.base:] {
			if bytes.Equal(k, key) {
				return nil, false, duplicate(key)
			}
		}
		w.keys = append(w.keys, key)
	default:
		it.set = make(map[string]struct{}, 2*smallObject)
		for _, k := range w.keys[it.base:] {
			it.set[string(k)] = struct{}{}
		}
		w.keys = w.keys[:it.base]
		if _, dup := it.set[string(key)]; dup {
			return nil, false, duplicate(key)
		}
		it.set[string(key)] = struct{}{}
	}
	it.n++
	w.keyTok = tok
	return key, true, nil
}

func duplicate(key []byte) *Error {
	return invalid(pubSyntax, "duplicate member name "+excerpt(string(key)))
}

// value reads and checks one value at depth (the depth of the container
// holding it; a value inside it is at depth+1).
func (w *walker) value(depth int) error {
	switch w.r.Peek() {
	case '{':
		for _, err := range w.members(depth + 1) {
			if err != nil {
				return err
			}
			if err := w.value(depth + 1); err != nil {
				return err
			}
		}
		return nil
	case '[':
		for err := range w.elements(depth + 1) {
			if err != nil {
				return err
			}
			if err := w.value(depth + 1); err != nil {
				return err
			}
		}
		return nil
	case '"':
		_, err := w.stringToken()
		return err
	case 0:
		return errSyntax
	default:
		// A number or a literal: strictjson's Skip reads scalars without
		// recursion.
		if w.r.Skip() != nil {
			return errSyntax
		}
		return nil
	}
}

// stringToken reads a string value and returns its token, quotes included,
// after checking its escapes.
func (w *walker) stringToken() ([]byte, error) {
	if w.r.Peek() != '"' {
		return nil, errSyntax
	}
	tok, err := w.r.Raw()
	if err != nil {
		return nil, errSyntax
	}
	if bytes.IndexByte(tok, '\\') >= 0 && !pairedSurrogates(tok) {
		return nil, invalid(pubSyntax, "unpaired UTF-16 surrogate escape")
	}
	return tok, nil
}

// unquoteBytes returns the value of a string token: the bytes between the
// quotes when there is no escape (the input is valid UTF-8, checked up
// front), else a decoded copy.
func unquoteBytes(tok []byte) ([]byte, error) {
	if bytes.IndexByte(tok, '\\') < 0 {
		return tok[1 : len(tok)-1], nil
	}
	if !pairedSurrogates(tok) {
		return nil, invalid(pubSyntax, "unpaired UTF-16 surrogate escape")
	}
	var s string
	if json.Unmarshal(tok, &s) != nil {
		return nil, errSyntax
	}
	return []byte(s), nil
}

// unquote is unquoteBytes as a string.
func unquote(tok []byte) (string, error) {
	b, err := unquoteBytes(tok)
	return string(b), err
}

// pairedSurrogates reports whether every \u escape of a UTF-16 surrogate
// in a string token is a high surrogate followed by a low one. The token
// is already known to be well-formed (strictjson checked the escapes).
func pairedSurrogates(tok []byte) bool {
	end := len(tok) - 1 // the closing quote
	for i := 1; i < end; i++ {
		if tok[i] != '\\' {
			continue
		}
		i++
		if tok[i] != 'u' {
			continue
		}
		v := hex4(tok[i+1 : i+5])
		i += 4
		switch {
		case v >= 0xDC00 && v <= 0xDFFF:
			return false
		case v >= 0xD800 && v <= 0xDBFF:
			// tok[i+1:i+7] must be `\uDC00`…`\uDFFF`.
			if i+6 >= end || tok[i+1] != '\\' || tok[i+2] != 'u' {
				return false
			}
			if lo := hex4(tok[i+3 : i+7]); lo < 0xDC00 || lo > 0xDFFF {
				return false
			}
			i += 6
		}
	}
	return true
}

func hex4(b []byte) rune {
	var v rune
	for _, c := range b[:4] {
		v <<= 4
		switch {
		case '0' <= c && c <= '9':
			v |= rune(c - '0')
		case 'a' <= c && c <= 'f':
			v |= rune(c - 'a' + 10)
		case 'A' <= c && c <= 'F':
			v |= rune(c - 'A' + 10)
		}
	}
	return v
}

// foldEqual reports whether key is name up to case, with the Unicode
// simple folding Go's encoding/json uses to match member names (so
// "ſ" (U+017F) matches "s" and "K" (U+212A) matches "k").
//
// name is lower-case ASCII. Before the full comparison, two cheap
// rejections that cannot change the answer: under simple folding an ASCII
// letter's only other forms are its upper case and, for 'k' and 's', one
// non-ASCII rune of at most 3 bytes (U+212A, U+017F), so key is 1 to 3
// bytes per byte of name, and it starts with name's first letter in either
// case unless that letter is 'k' or 's'.
func foldEqual(key []byte, name string) bool {
	if len(key) < len(name) || len(key) > 3*len(name) {
		return false
	}
	if c := name[0]; c != 'k' && c != 's' && key[0]|0x20 != c {
		return false
	}
	return bytes.EqualFold(key, []byte(name))
}

// appendJSONString appends s as a JSON string (RFC 8259 §7), the one
// encoding of every string this package writes (ID.String, ErrorBody):
// '"' and '\' escaped; \b, \f, \n, \r, \t short; every other C0 control,
// DEL, C1 control (U+0080–U+009F) and U+2028/U+2029 as \u00XX or \u20XX,
// so a log line or a JavaScript reader cannot be split or misled; invalid
// UTF-8 as \ufffd (what encoding/json writes). Everything else, '<', '>',
// '&' and non-ASCII included, is written as is: no HTML escaping.
func appendJSONString(dst []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < 0x7f && c != '"' && c != '\\' {
			i++
			continue
		}
		r, size := rune(c), 1
		if c >= utf8.RuneSelf {
			r, size = utf8.DecodeRuneInString(s[i:])
			invalid := r == utf8.RuneError && size == 1
			if !invalid && !(0x80 <= r && r < 0xa0) && r != '\u2028' && r != '\u2029' {
				i += size
				continue
			}
		}
		dst = append(dst, s[start:i]...)
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c == '\b':
			dst = append(dst, '\\', 'b')
		case c == '\f':
			dst = append(dst, '\\', 'f')
		case c == '\n':
			dst = append(dst, '\\', 'n')
		case c == '\r':
			dst = append(dst, '\\', 'r')
		case c == '\t':
			dst = append(dst, '\\', 't')
		case r == utf8.RuneError: // an invalid byte: U+FFFD itself went on above
			dst = append(dst, `\ufffd`...)
		default:
			dst = append(dst, '\\', 'u', hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
