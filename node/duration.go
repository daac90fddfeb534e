package node

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration in configuration JSON, read the way Caddy
// reads its own durations (caddy.Duration), so that the kavach app's JSON
// means what it meant when its fields were caddy.Duration: a string is a
// Go duration ("90s", "1h30m") that may also use "d" for days of 24 h
// ("7d", "1.5d12h"); a number is nanoseconds. It is written as
// nanoseconds (the Caddyfile adapter's output).
type Duration time.Duration

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if len(b) == 0 {
		return errors.New("duration: empty JSON value")
	}
	var v time.Duration
	var err error
	if len(b) >= 2 && b[0] == '"' && b[len(b)-1] == '"' {
		v, err = ParseDuration(string(b[1 : len(b)-1]))
	} else {
		err = json.Unmarshal(b, &v)
	}
	*d = Duration(v)
	return err
}

// maxDurationText bounds the text ParseDuration reads (as Caddy does).
const maxDurationText = 1024

// ParseDuration reads a Go duration in which a number may also carry the
// unit "d", a day of 24 hours: each "<n>d" becomes the same number of
// hours before time.ParseDuration reads the whole.
func ParseDuration(s string) (time.Duration, error) {
	if len(s) > maxDurationText {
		return 0, errors.New("parsing duration: input string too long")
	}
	var b strings.Builder
	num := 0 // start of the number being read, in s
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == 'd' {
			days, err := strconv.ParseFloat(s[num:i], 64)
			if err != nil {
				return 0, err
			}
			b.WriteString(strconv.FormatFloat(days*24, 'f', -1, 64))
			b.WriteByte('h')
			num = i + 1
			continue
		}
		if !numberByte(c) {
			b.WriteString(s[num : i+1])
			num = i + 1
		}
	}
	b.WriteString(s[num:])
	return time.ParseDuration(b.String())
}

// numberByte reports whether c can be part of a duration's number.
func numberByte(c byte) bool {
	return c >= '0' && c <= '9' || c == '.' || c == '-' || c == '+'
}
