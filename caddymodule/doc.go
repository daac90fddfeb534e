// Package caddymodule is Kavach's Caddy glue: it registers the modules,
// Caddyfile directives and CLI subcommands (package cli), passes the
// Caddyfile's dispenser to the grammars that live beside their configs
// (node, gateway), pools the node runtime (package node) across config
// reloads, and adapts Caddy's interfaces (handlers, placeholders, logs,
// metrics registry, listeners) to the Caddy-free packages that hold the
// logic.
//
// Importing it (as the root package kavach does) is all a Caddy build needs:
//
//	xcaddy build --with github.com/kavachgate/kavach
package caddymodule
