package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"unicode/utf8"
)

// The constraint JSON is decoded by a small reader for exactly its shape (an
// object of string arrays, one integer, one string) rather than by
// reflection: it runs for every token that misses the verify cache, where
// the whole decision is budgeted against one Ed25519 verification, and
// encoding/json with a strict key check costs several times more. Strings
// with escapes or non-ASCII bytes are still decoded by encoding/json, so
// their meaning is exactly JSON's.

// Present-but-empty values are refused at decode time: omitempty would drop
// them on the next encoding and turn "nothing allowed" into "no constraint".
var (
	errNull           = errors.New("must not be null (omit the field for no constraint)")
	errEmptyList      = errors.New(emptyListReason)
	errNotStringArray = errors.New("must be an array of strings")
	errNotByteLimit   = errors.New("must be a positive integer number of bytes")
	errNotAudit       = fmt.Errorf("must be the string %q", AuditRequired)
	errSyntax         = errors.New("constraints: malformed JSON")
)

// jsonReader reads JSON values from data, skipping insignificant
// whitespace before each token.
type jsonReader struct {
	data []byte
	pos  int
}

func (r *jsonReader) skipSpace() {
	for r.pos < len(r.data) {
		switch r.data[r.pos] {
		case ' ', '\t', '\n', '\r': // RFC 8259 §2: the only whitespace
			r.pos++
		default:
			return
		}
	}
}

// consume skips whitespace and then c, reporting whether c was there.
func (r *jsonReader) consume(c byte) bool {
	r.skipSpace()
	if r.pos < len(r.data) && r.data[r.pos] == c {
		r.pos++
		return true
	}
	return false
}

// end reports whether only whitespace is left.
func (r *jsonReader) end() bool {
	r.skipSpace()
	return r.pos == len(r.data)
}

// null consumes a JSON null if one is next.
func (r *jsonReader) null() bool {
	r.skipSpace()
	if bytes.HasPrefix(r.data[r.pos:], []byte("null")) {
		r.pos += 4
		return true
	}
	return false
}

// str reads a JSON string.
func (r *jsonReader) str() (string, bool) {
	r.skipSpace()
	if r.pos >= len(r.data) || r.data[r.pos] != '"' {
		return "", false
	}
	start := r.pos
	plain := true // no escapes, ASCII only: the bytes are the value
	for r.pos++; r.pos < len(r.data); r.pos++ {
		switch c := r.data[r.pos]; {
		case c == '"':
			r.pos++
			tok := r.data[start:r.pos]
			if plain {
				return string(tok[1 : len(tok)-1]), true
			}
			var s string
			if json.Unmarshal(tok, &s) != nil {
				return "", false
			}
			return s, true
		case c == '\\':
			plain = false
			r.pos++ // the escaped byte cannot end the string
		case c < 0x20:
			return "", false // RFC 8259 §7: control characters must be escaped
		case c >= utf8.RuneSelf:
			plain = false
		}
	}
	return "", false
}

// stringArray reads a non-empty array of strings.
func (r *jsonReader) stringArray() ([]string, error) {
	if r.null() {
		return nil, errNull
	}
	if !r.consume('[') {
		return nil, errNotStringArray
	}
	if r.consume(']') {
		return nil, errEmptyList
	}
	out := make([]string, 0, 4)
	for {
		s, ok := r.str()
		if !ok {
			return nil, errNotStringArray
		}
		out = append(out, s)
		if r.consume(',') {
			continue
		}
		if r.consume(']') {
			return out, nil
		}
		return nil, errNotStringArray
	}
}

// prefixes reads a non-empty array of canonical prefix strings.
func (r *jsonReader) prefixes() (PrefixList, error) {
	strs, err := r.stringArray()
	if err != nil {
		return nil, err
	}
	out := make(PrefixList, len(strs))
	for i, s := range strs {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("%s is not a CIDR prefix", quote(s))
		}
		if reason := prefixError(p); reason != "" {
			return nil, errors.New(reason)
		}
		var buf [64]byte // longest prefix text: 39 (IPv6) + 4
		if string(p.AppendTo(buf[:0])) != s {
			// One spelling per prefix keeps the encoding deterministic.
			return nil, fmt.Errorf("%s: write it as %s", quote(s), quote(p.String()))
		}
		out[i] = p
	}
	return out, nil
}

// byteLimit reads a positive JSON integer.
func (r *jsonReader) byteLimit() (ByteLimit, error) {
	if r.null() {
		return 0, errNull
	}
	start := r.pos
	for r.pos < len(r.data) && bytes.IndexByte([]byte("+-.0123456789eE"), r.data[r.pos]) >= 0 {
		r.pos++
	}
	tok := r.data[start:r.pos]
	switch {
	case len(tok) > 0 && tok[0] == '-':
		return 0, errors.New("must be positive (omit the field for no limit)")
	case string(tok) == "0":
		return 0, errors.New("must not be 0 (omit the field for no limit)")
	case len(tok) == 0 || tok[0] == '0':
		return 0, errNotByteLimit
	}
	for _, c := range tok {
		if c < '0' || c > '9' { // fractions and exponents are not byte counts
			return 0, errNotByteLimit
		}
	}
	n, err := strconv.ParseInt(string(tok), 10, 64)
	if err != nil {
		return 0, errors.New("must be a positive integer number of bytes that fits in 63 bits")
	}
	return ByteLimit(n), nil
}

// audit reads the string "required".
func (r *jsonReader) audit() (AuditMode, error) {
	if r.null() {
		return "", errNull
	}
	s, ok := r.str()
	if !ok {
		return "", errNotAudit
	}
	if AuditMode(s) != AuditRequired {
		return "", fmt.Errorf("%s is not %q (omit the field when audit is not required)", quote(s), AuditRequired)
	}
	return AuditRequired, nil
}

// whole runs read on all of data, which must hold one value and nothing
// else.
func whole[T any](data []byte, read func(*jsonReader) (T, error), notValue error) (T, error) {
	r := jsonReader{data: data}
	v, err := read(&r)
	if err == nil && !r.end() {
		var zero T
		return zero, notValue
	}
	return v, err
}

// UnmarshalJSON decodes a non-empty JSON array of strings; null and [] are
// errors.
func (l *StringList) UnmarshalJSON(data []byte) error {
	v, err := whole(data, (*jsonReader).stringArray, errNotStringArray)
	if err != nil {
		return err
	}
	*l = v
	return nil
}

// UnmarshalJSON decodes a non-empty JSON array of canonical prefix strings;
// null, [], an unparseable prefix and a prefix with host bits set are errors.
func (l *PrefixList) UnmarshalJSON(data []byte) error {
	v, err := whole(data, (*jsonReader).prefixes, errNotStringArray)
	if err != nil {
		return err
	}
	*l = v
	return nil
}

// MarshalJSON encodes the prefixes as an array of strings. An invalid
// (zero) prefix is an error rather than the text "invalid Prefix".
func (l PrefixList) MarshalJSON() ([]byte, error) {
	if l == nil {
		return []byte("null"), nil
	}
	b := make([]byte, 0, 2+len(l)*22)
	b = append(b, '[')
	for i, p := range l {
		if !p.IsValid() {
			return nil, errors.New("cidrs: invalid prefix")
		}
		if i > 0 {
			b = append(b, ',')
		}
		// Prefix text is hex digits, '.', ':' and '/': nothing to escape.
		b = append(b, '"')
		b = p.AppendTo(b)
		b = append(b, '"')
	}
	return append(b, ']'), nil
}

// UnmarshalJSON decodes a positive JSON integer; null, 0, negative numbers,
// fractions and exponents are errors.
func (b *ByteLimit) UnmarshalJSON(data []byte) error {
	v, err := whole(data, (*jsonReader).byteLimit, errNotByteLimit)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// UnmarshalJSON decodes the string "required"; null, "" and any other
// value are errors.
func (a *AuditMode) UnmarshalJSON(data []byte) error {
	v, err := whole(data, (*jsonReader).audit, errNotAudit)
	if err != nil {
		return err
	}
	*a = v
	return nil
}

// constraintFields are the JSON member names of Constraints, in field order.
var constraintFields = [...]string{"hosts", "cidrs", "methods", "paths", "max_body", "audit"}

// UnmarshalJSON decodes a kvc.cnst object strictly: case-sensitive member
// names, no unknown or repeated member (encoding/json would skip an unknown
// one, and a constraint that is not enforced widens the token), then
// Validate. Errors are *FieldError where a field is at fault.
func (c *Constraints) UnmarshalJSON(data []byte) error {
	r := jsonReader{data: data}
	if !r.consume('{') {
		return errors.New("constraints must be a JSON object")
	}
	var out Constraints
	var seen [len(constraintFields)]bool
	for more := !r.consume('}'); more; {
		key, ok := r.str()
		if !ok || !r.consume(':') {
			return errSyntax
		}
		i := slices.Index(constraintFields[:], key)
		if i < 0 {
			return fmt.Errorf("unknown constraint %s", quote(key))
		}
		if seen[i] {
			return &FieldError{Field: key, Reason: "appears twice"}
		}
		seen[i] = true
		var err error
		switch i {
		case 0:
			out.Hosts, err = r.stringArray()
		case 1:
			out.CIDRs, err = r.prefixes()
		case 2:
			out.Methods, err = r.stringArray()
		case 3:
			out.Paths, err = r.stringArray()
		case 4:
			out.MaxBody, err = r.byteLimit()
		case 5:
			out.Audit, err = r.audit()
		}
		if err != nil {
			return &FieldError{Field: key, Reason: err.Error()}
		}
		switch {
		case r.consume(','):
		case r.consume('}'):
			more = false
		default:
			return errSyntax
		}
	}
	if !r.end() {
		return errors.New("constraints: trailing data after the object")
	}
	if fe := out.validate(); fe != nil {
		return fe
	}
	*c = out
	return nil
}

// constraintsJSON has Constraints' fields and tags but not its methods, so
// MarshalJSON can use the default struct encoding.
type constraintsJSON Constraints

// MarshalJSON validates c, then encodes it in field order with absent
// fields omitted. Refusing invalid constraints here is what keeps a non-nil
// empty list (allows nothing) from being omitted (allows everything).
func (c Constraints) MarshalJSON() ([]byte, error) {
	if fe := c.validate(); fe != nil {
		return nil, fe
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	// The outer encoder applies its own HTML-escaping setting to what we
	// return; escaping here would override an outer SetEscapeHTML(false).
	enc.SetEscapeHTML(false)
	if err := enc.Encode(constraintsJSON(c)); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}), nil
}
