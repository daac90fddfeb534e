package caddymodule

import (
	"encoding/json"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/kavachgate/kavach/node"
)

// TestDurationLikeCaddy: the kavach app's durations (node.Duration) read
// every JSON value as caddy.Duration, their type before, does.
func TestDurationLikeCaddy(t *testing.T) {
	t.Parallel()
	for _, in := range []string{`"5m"`, `"1h30m"`, `"7d"`, `"1.5d"`, `"1d12h"`, `"2h1d"`, `"-1d"`, `"+2d"`, `"0.5d30m"`, `3000000000`, `0`, `"d"`, `"5x"`, `""`, `"1dd"`, `"h1d"`, `true`} {
		var c caddy.Duration
		var n node.Duration
		cerr, nerr := json.Unmarshal([]byte(in), &c), json.Unmarshal([]byte(in), &n)
		if (cerr != nil) != (nerr != nil) || (cerr == nil && int64(c) != int64(n)) {
			t.Errorf("%s: caddy %v (%v), node %v (%v)", in, int64(c), cerr, int64(n), nerr)
		}
	}
}
