package node

import (
	"encoding/json"
	"testing"
	"time"
)

// TestDuration: the app's durations read as Caddy's did (Go durations,
// "d" for days of 24 h, integer nanoseconds) and are written as
// nanoseconds.
func TestDuration(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in   string
		want time.Duration
		bad  bool
	}{
		{`"5m"`, 5 * time.Minute, false},
		{`"1h30m"`, 90 * time.Minute, false},
		{`"7d"`, 7 * 24 * time.Hour, false},
		{`"1.5d"`, 36 * time.Hour, false},
		{`"1d12h"`, 36 * time.Hour, false},
		{`"2h1d"`, 26 * time.Hour, false},
		{`"-1d"`, -24 * time.Hour, false},
		{`"90s"`, 90 * time.Second, false},
		{`3000000000`, 3 * time.Second, false},
		{`0`, 0, false},
		{`"d"`, 0, true},
		{`"5x"`, 0, true},
		{`""`, 0, true},
		{`true`, 0, true},
	} {
		var d Duration
		err := json.Unmarshal([]byte(tt.in), &d)
		if (err != nil) != tt.bad || (!tt.bad && time.Duration(d) != tt.want) {
			t.Errorf("%s: %v, %v; want %v (error: %v)", tt.in, time.Duration(d), err, tt.want, tt.bad)
		}
	}
	out, _ := json.Marshal(struct {
		D Duration `json:"d"`
	}{Duration(time.Minute)})
	if string(out) != `{"d":60000000000}` {
		t.Errorf("written as %s", out)
	}
}
