package cli

import (
	"context"
	"errors"

	"github.com/spf13/cobra"

	"github.com/kavachgate/kavach/admin"
)

// The client command manages the issuer's OAuth clients through its admin
// API on the Kavach admin listener (DESIGN.md §7).
func clientCommand(env *Env) Command {
	return Command{
		Name:  "client",
		Usage: "create|revoke",
		Short: "Manages the issuer's OAuth clients",
		Long: `
Manages OAuth clients of the Kavach issuer through the admin listener
(--admin, default 127.0.0.1:2021; token from KAVACH_ADMIN_TOKEN or Caddy's
data directory; --issuer picks one issuer of a gateway that runs several).

  client create --name <name> --resource <url> …
  client create --name <name> --kind confidential --redirect-uri <uri> …
      Registers a client by hand: a resource server (the default) that may
      introspect the tokens whose aud is one of its --resource URLs, or a
      confidential client of the code flow. The secret is printed once.

  client revoke <client_id>
      Revokes a client: a registered one (cli_…) or one identified by its
      client ID metadata document URL (https://tools.example/client.json).
      It is refused from then on, the consents users gave it are revoked
      with their refresh tokens, and gateways reject every token it holds.

  client revoke --host <host>
      Revokes every client ID metadata document client on the host and its
      subdomains (tools.example covers eu.tools.example), including ones
      not seen yet.
`,
		Setup: func(cmd *cobra.Command) {
			f := addAdminFlags(env, cmd.PersistentFlags(), true)
			cmd.AddCommand(clientCreateCommand(f), clientRevokeCommand(f))
		},
	}
}

func clientCreateCommand(f *adminFlags) *cobra.Command {
	var in admin.ClientCreate
	c := &cobra.Command{
		Use:   "create --name <name> [--kind resource_server|confidential] [--resource <url> …] [--redirect-uri <uri> …]",
		Short: "Registers a resource server or a confidential client; prints its secret once",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return call(cmd, f, func(ctx context.Context, c *admin.Client) (*admin.ClientCreated, error) {
				return c.CreateClient(ctx, in)
			})
		},
	}
	c.Flags().StringVar(&in.Name, "name", "", "client name")
	c.Flags().StringVar(&in.Kind, "kind", admin.ClientResourceServer, "resource_server (may introspect) or confidential (code flow with a secret)")
	c.Flags().StringArrayVar(&in.RedirectURIs, "redirect-uri", nil, "redirect URI of a confidential client (repeatable)")
	c.Flags().StringArrayVar(&in.Resources, "resource", nil, "a resource (the tokens' aud) a resource server may introspect tokens for (repeatable; required for one)")
	return c
}

func clientRevokeCommand(f *adminFlags) *cobra.Command {
	var host string
	c := &cobra.Command{
		Use:   "revoke <client_id> | --host <host>",
		Short: "Revokes a client, or every client metadata document client of a host",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case host != "" && len(args) == 0:
				return call(cmd, f, func(ctx context.Context, c *admin.Client) (*admin.Revoked, error) {
					return c.RevokeClients(ctx, admin.ClientsRevoke{Host: host})
				})
			case host == "" && len(args) == 1:
				// A metadata document URL becomes one path segment: its
				// '/', '?' and '%' are escaped.
				return call(cmd, f, func(ctx context.Context, c *admin.Client) (*admin.Revoked, error) {
					return c.RevokeClient(ctx, args[0])
				})
			}
			return errors.New("give a client id or --host, not both")
		},
	}
	c.Flags().StringVar(&host, "host", "", "revoke every client metadata document client on this host and its subdomains")
	return c
}
