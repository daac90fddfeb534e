// Package cli is the kavach command line: user, agent, client, keys,
// token, revoke and audit, as plain Go over cobra, without Caddy. The
// issuer's admin API is called through admin.Client.
//
// A host program registers Commands as its subcommands (bin/kavach does
// it in caddymodule, so xcaddy builds have them) and fills Env with what
// only it knows: its data directory and how to read the audit option of a
// config file. Run executes the commands in a root of its own, for tests
// and for a program without Caddy:
//
//	env := &cli.Env{DataDir: dir}
//	code := cli.Run(ctx, env, []string{"agent", "list", "--json"}, os.Stdin, os.Stdout, os.Stderr)
//
// An error ends a command with exit status 1; an *ExitError names another
// status (audit verify's 3).
package cli
