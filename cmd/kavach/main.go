// Command kavach is Caddy with the standard modules and the Kavach modules:
// the gateway, the issuer and their CLI subcommands.
package main

import (
	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	// The standard Caddy distribution.
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	// Kavach's modules and subcommands.
	_ "github.com/kavachgate/kavach"
	"github.com/kavachgate/kavach/cli"
)

func main() {
	caddy.CustomBinaryName = "kavach"
	caddy.CustomLongDescription = `Kavach is an authorization gateway for AI agents, built on Caddy.

It gives every agent its own identity and short-lived, scoped tokens, lets a
parent agent delegate a strict subset of its rights to a child, stops a whole
delegation chain the moment any link is revoked, and writes a tamper-evident
audit record for every request.

Every Caddy command works as in Caddy ('kavach run', 'kavach validate',
'kavach adapt', 'kavach list-modules'). Kavach adds:

` + cli.Summary() + `
'kavach help <command>' tells more about each.`
	caddycmd.Main()
}
