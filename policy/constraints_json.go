package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/kavachgate/kavach/internal/strictjson"
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
	errNotByteLimit   = errors.New("must be a positive integer number of bytes that fits in 63 bits")
	errNotAudit       = fmt.Errorf("must be the string %q", AuditRequired)
	errSyntax         = errors.New("constraints: malformed JSON")
)

// stringArray reads a non-empty array of strings.
func stringArray(r *strictjson.Reader) ([]string, error) {
	if r.Null() {
		return nil, errNull
	}
	l, err := r.Strings()
	switch {
	case err != nil:
		return nil, errNotStringArray
	case len(l) == 0:
		return nil, errEmptyList
	}
	return l, nil
}

// readPrefixes reads a non-empty array of canonical prefix strings.
func readPrefixes(r *strictjson.Reader) (PrefixList, error) {
	strs, err := stringArray(r)
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
func byteLimit(r *strictjson.Reader) (ByteLimit, error) {
	if r.Null() {
		return 0, errNull
	}
	n, err := r.Int()
	switch {
	case err != nil:
		return 0, errNotByteLimit
	case n < 0:
		return 0, errors.New("must be positive (omit the field for no limit)")
	case n == 0:
		return 0, errors.New("must not be 0 (omit the field for no limit)")
	}
	return ByteLimit(n), nil
}

// audit reads the string "required".
func audit(r *strictjson.Reader) (AuditMode, error) {
	if r.Null() {
		return "", errNull
	}
	s, err := r.String()
	if err != nil {
		return "", errNotAudit
	}
	if AuditMode(s) != AuditRequired {
		return "", fmt.Errorf("%s is not %q (omit the field when audit is not required)", quote(s), AuditRequired)
	}
	return AuditRequired, nil
}

// rate reads a "<n>/<s|m|h>" string (checked by validate).
func rate(r *strictjson.Reader) (RateLimit, error) {
	if r.Null() {
		return "", errNull
	}
	s, err := r.String()
	if err != nil || s == "" {
		return "", errors.New(`must be a string "<n>/<s|m|h>"`)
	}
	return RateLimit(s), nil
}

// whole runs read on all of data, which must hold one value and nothing
// else.
func whole[T any](data []byte, read func(*strictjson.Reader) (T, error), notValue error) (T, error) {
	r := strictjson.NewReader(data)
	v, err := read(r)
	if err == nil && !r.End() {
		var zero T
		return zero, notValue
	}
	return v, err
}

// UnmarshalJSON decodes a non-empty JSON array of strings; null and [] are
// errors.
func (l *StringList) UnmarshalJSON(data []byte) error {
	v, err := whole(data, stringArray, errNotStringArray)
	if err != nil {
		return err
	}
	*l = v
	return nil
}

// UnmarshalJSON decodes a non-empty JSON array of canonical prefix strings;
// null, [], an unparseable prefix and a prefix with host bits set are errors.
func (l *PrefixList) UnmarshalJSON(data []byte) error {
	v, err := whole(data, readPrefixes, errNotStringArray)
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
	v, err := whole(data, byteLimit, errNotByteLimit)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// UnmarshalJSON decodes the string "required"; null, "" and any other
// value are errors.
func (a *AuditMode) UnmarshalJSON(data []byte) error {
	v, err := whole(data, audit, errNotAudit)
	if err != nil {
		return err
	}
	*a = v
	return nil
}

// constraintFields are the JSON member names of Constraints, in field order.
var constraintFields = [...]string{"hosts", "cidrs", "methods", "paths", "max_body", "audit", "args", "rate"}

// UnmarshalJSON decodes a kvc.cnst object strictly: case-sensitive member
// names, no unknown or repeated member (encoding/json would skip an unknown
// one, and a constraint that is not enforced widens the token), then
// Validate. Errors are *FieldError where a field is at fault.
func (c *Constraints) UnmarshalJSON(data []byte) error {
	r := strictjson.NewReader(data)
	if r.Peek() != '{' {
		return errors.New("constraints must be a JSON object")
	}
	var out Constraints
	var seen [len(constraintFields)]bool
	err := r.Object(func(name []byte) error {
		key := string(name)
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
			out.Hosts, err = stringArray(r)
		case 1:
			out.CIDRs, err = readPrefixes(r)
		case 2:
			out.Methods, err = stringArray(r)
		case 3:
			out.Paths, err = stringArray(r)
		case 4:
			out.MaxBody, err = byteLimit(r)
		case 5:
			out.Audit, err = audit(r)
		case 6:
			out.Args, err = readArgs(r)
		case 7:
			out.Rate, err = rate(r)
		}
		if err != nil {
			return &FieldError{Field: key, Reason: err.Error()}
		}
		return nil
	})
	if errors.Is(err, strictjson.ErrSyntax) {
		return errSyntax
	}
	if err != nil {
		return err
	}
	if !r.End() {
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
