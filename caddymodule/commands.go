package caddymodule

import (
	"errors"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/kavachgate/kavach/cli"
)

// The kavach subcommands (package cli) are registered here, in an
// imported package, so xcaddy builds have them. The glue gives them
// Caddy's data directory, placeholders and Caddyfile adapter.
func init() {
	env := &cli.Env{DataDir: caddy.AppDataDir(), Resolve: resolve, Adapt: adaptCaddyfile}
	for _, c := range cli.Commands(env) {
		caddycmd.RegisterCommand(caddycmd.Command{
			Name: c.Name, Usage: c.Usage, Short: c.Short, Long: c.Long,
			CobraFunc: func(cmd *cobra.Command) {
				c.Setup(cmd)
				exitStatus(cmd)
			},
		})
	}
}

// exitStatus makes a cli.ExitError the process's exit status, the way
// caddycmd.Main exits with a command's status.
func exitStatus(cmd *cobra.Command) {
	if run := cmd.RunE; run != nil {
		cmd.RunE = func(cmd *cobra.Command, args []string) error {
			err := run(cmd, args)
			if ee, ok := errors.AsType[*cli.ExitError](err); ok {
				cmd.SilenceErrors = true
				return caddycmd.WrapCommandFuncForCobra(func(caddycmd.Flags) (int, error) { return ee.Code, nil })(cmd, args)
			}
			return err
		}
	}
	for _, sub := range cmd.Commands() {
		exitStatus(sub)
	}
}

// adaptCaddyfile turns a Caddyfile into its JSON config.
func adaptCaddyfile(body []byte, filename string) ([]byte, error) {
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt(body, map[string]any{"filename": filename})
	return out, err
}

// resolve replaces a config value's placeholders ({env.X}) as Caddy does
// when it runs the config.
func resolve(s string) string { return caddy.NewReplacer().ReplaceAll(s, "") }
