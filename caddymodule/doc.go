// Package caddymodule is Kavach's Caddy glue: it registers the modules,
// Caddyfile directives and CLI subcommands, parses configuration and adapts
// Caddy's interfaces to the Caddy-free packages (token, policy, …) that hold
// the logic.
//
// Importing it (as the root package kavach does) is all a Caddy build needs:
//
//	xcaddy build --with github.com/kavachgate/kavach
package caddymodule
