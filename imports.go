// Package kavach is the xcaddy build target: importing it registers the
// Kavach Caddy modules and CLI subcommands.
//
//	xcaddy build --with github.com/kavachgate/kavach
package kavach

import (
	// Registers the kavach app, handlers, directives and subcommands.
	_ "github.com/kavachgate/kavach/caddymodule"
)
