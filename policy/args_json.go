package policy

import (
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/kavachgate/kavach/internal/strictjson"
)

// kvc.cnst.args is read by the same strict reader as the rest of the
// constraints: case-sensitive names, no unknown or repeated member (a
// repeated tool or argument name is refused, not merged: two readers
// could keep different ones), present values never empty, zero or false.

// argRuleFields are the JSON member names of ArgRule, in field order.
var argRuleFields = [...]string{"paths", "hosts", "url", "schemes", "ports", "enum", "range", "max_len", "optional"}

var errNotTrue = errors.New("must be true (omit the member otherwise)")

// readArgs reads kvc.cnst.args; the caller validates the result.
func readArgs(r *strictjson.Reader) (Args, error) {
	if r.Null() {
		return nil, errNull
	}
	return readMap[Args](r, "tool", readToolArgs)
}

func readToolArgs(r *strictjson.Reader) (ToolArgs, error) {
	return readMap[ToolArgs](r, "argument", readArgRule)
}

// readMap reads a non-empty JSON object of kind (tools, arguments) into a
// map, each member's value by read; a repeated name is an error.
func readMap[M ~map[string]V, V any](r *strictjson.Reader, kind string, read func(*strictjson.Reader) (V, error)) (M, error) {
	if r.Peek() != '{' {
		return nil, fmt.Errorf("must be an object of %ss", kind)
	}
	out := M{}
	err := r.Object(func(name []byte) error {
		key := string(name)
		if _, dup := out[key]; dup {
			return fmt.Errorf("%s %s appears twice", kind, quote(key))
		}
		v, err := read(r)
		if err != nil {
			return fmt.Errorf("%s %s: %w", kind, quote(key), err)
		}
		out[key] = v
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, errEmptyList
	}
	return out, nil
}

func readArgRule(r *strictjson.Reader) (ArgRule, error) {
	var out ArgRule
	if r.Peek() != '{' {
		return out, errors.New("must be an object")
	}
	var seen [len(argRuleFields)]bool
	err := r.Object(func(name []byte) error {
		key := string(name)
		i := slices.Index(argRuleFields[:], key)
		if i < 0 {
			return fmt.Errorf("unknown rule %s", quote(key))
		}
		if seen[i] {
			return fmt.Errorf("%s appears twice", key)
		}
		seen[i] = true
		var err error
		switch i {
		case 0:
			out.Paths, err = stringArray(r)
		case 1:
			out.Hosts, err = stringArray(r)
		case 2:
			out.URL, err = readTrue(r)
		case 3:
			out.Schemes, err = stringArray(r)
		case 4:
			out.Ports, err = readPorts(r)
		case 5:
			out.Enum, err = stringArray(r)
		case 6:
			out.Range, err = readRange(r)
		case 7:
			var n ByteLimit
			n, err = byteLimit(r)
			out.MaxLen = int64(n)
		case 8:
			out.Optional, err = readTrue(r)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		return nil
	})
	return out, err
}

func readTrue(r *strictjson.Reader) (bool, error) {
	tok, err := r.Raw()
	if err != nil || string(tok) != "true" {
		return false, errNotTrue
	}
	return true, nil
}

// readInts reads a JSON array of integers.
func readInts(r *strictjson.Reader) ([]int64, error) {
	if r.Null() {
		return nil, errNull
	}
	if !r.Consume('[') {
		return nil, errors.New("must be an array of integers")
	}
	var out []int64
	if r.Consume(']') {
		return []int64{}, nil
	}
	for {
		n, err := r.Int()
		if err != nil {
			return nil, errors.New("must be an array of integers")
		}
		out = append(out, n)
		if r.Consume(',') {
			continue
		}
		if r.Consume(']') {
			return out, nil
		}
		return nil, strictjson.ErrSyntax
	}
}

func readPorts(r *strictjson.Reader) (PortList, error) {
	l, err := readInts(r)
	if err != nil {
		return nil, err
	}
	if len(l) == 0 {
		return nil, errEmptyList
	}
	out := make(PortList, len(l))
	for i, n := range l {
		if n < 1 || n > 65535 {
			return nil, fmt.Errorf("%d is not a port (1 to 65535)", n)
		}
		out[i] = int(n)
	}
	return out, nil
}

func readRange(r *strictjson.Reader) (*Range, error) {
	l, err := readInts(r)
	if err != nil {
		return nil, err
	}
	if len(l) != 2 {
		return nil, errors.New("must be [min, max]")
	}
	return &Range{Min: l[0], Max: l[1]}, nil
}

// MarshalJSON encodes the range as [min,max].
func (g Range) MarshalJSON() ([]byte, error) {
	b := append([]byte{'['}, strconv.FormatInt(g.Min, 10)...)
	b = append(b, ',')
	b = strconv.AppendInt(b, g.Max, 10)
	return append(b, ']'), nil
}

// UnmarshalJSON decodes [min,max].
func (g *Range) UnmarshalJSON(data []byte) error {
	v, err := whole(data, readRange, errors.New("range must be [min, max]"))
	if err != nil {
		return err
	}
	*g = *v
	return nil
}

// UnmarshalJSON decodes a non-empty array of ports.
func (l *PortList) UnmarshalJSON(data []byte) error {
	v, err := whole(data, readPorts, errors.New("ports must be an array of integers"))
	if err != nil {
		return err
	}
	*l = v
	return nil
}

// UnmarshalJSON decodes kvc.cnst.args strictly and validates it: the form
// the CLI and the admin API take on their own.
func (a *Args) UnmarshalJSON(data []byte) error {
	v, err := whole(data, readArgs, errors.New("args: trailing data"))
	if err != nil {
		if errors.Is(err, strictjson.ErrSyntax) {
			return errSyntax
		}
		return &FieldError{Field: "args", Reason: err.Error()}
	}
	if fe := v.validate(); fe != nil {
		return fe
	}
	*a = v
	return nil
}
