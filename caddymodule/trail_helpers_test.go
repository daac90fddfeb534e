package caddymodule

import (
	"context"

	"github.com/caddyserver/caddy/v2"

	"github.com/kavachgate/kavach/audit"
)

// openTrail opens the audit writer a kavach app with audit option c (nil:
// the default) opens when it starts: placeholders through Caddy's
// replacer, defaults in Caddy's data directory.
func openTrail(c *audit.Config) (*audit.Writer, error) {
	cfg := audit.Config{Sink: audit.SinkFile}
	if c != nil {
		cfg = *c
	}
	cfg.Resolve = func(s string) string { return caddy.NewReplacer().ReplaceAll(s, "") }
	cfg.DataDir = kavachDataDir()
	return audit.Open(context.Background(), cfg)
}
