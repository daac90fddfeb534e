package store

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/kavachgate/kavach/policy"
)

// Column encodings shared by both databases: times as Unix milliseconds
// (0 = zero time), lists, maps and constraints as JSON text ('' = empty),
// optional bytes and parent ids as NULL when empty.

func millis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMillis(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

func listText(l []string) string {
	if len(l) == 0 {
		return ""
	}
	b, _ := json.Marshal(l) // a []string always encodes
	return string(b)
}

func mapText(m map[string][]string) string {
	if len(m) == 0 {
		return ""
	}
	b, _ := json.Marshal(m) // a map[string][]string always encodes
	return string(b)
}

// constraintsText validates c (MarshalJSON refuses invalid constraints, so
// nothing unreadable is ever stored).
func constraintsText(c policy.Constraints) (string, error) {
	if c.IsZero() {
		return "", nil
	}
	b, err := c.MarshalJSON()
	if err != nil {
		return "", fmt.Errorf("store: constraints: %w", err)
	}
	return string(b), nil
}

func nullBytes(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// decoder reads JSON columns, keeping the first error so that a scan
// function checks once. An error means the database holds what the store
// never writes.
type decoder struct{ err error }

func (d *decoder) fail(column string, err error) {
	if d.err == nil {
		d.err = fmt.Errorf("store: decoding %s: %w", column, err)
	}
}

func (d *decoder) list(column, s string) []string {
	if s == "" {
		return nil
	}
	var l []string
	if err := json.Unmarshal([]byte(s), &l); err != nil {
		d.fail(column, err)
	}
	if len(l) == 0 {
		return nil
	}
	return l
}

func (d *decoder) entitlements(s string) map[string][]string {
	if s == "" {
		return nil
	}
	var m map[string][]string
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		d.fail("entitlements", err)
	}
	for k, v := range m {
		if len(v) == 0 {
			m[k] = nil
		}
	}
	if len(m) == 0 {
		return nil
	}
	return m
}

func (d *decoder) constraints(s string) policy.Constraints {
	var c policy.Constraints
	if s == "" {
		return c
	}
	if err := c.UnmarshalJSON([]byte(s)); err != nil {
		d.fail("constraints", err)
	}
	return c
}
