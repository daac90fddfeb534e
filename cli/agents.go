package cli

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kavachgate/kavach/admin"
	"github.com/kavachgate/kavach/policy"
)

// The agent command manages agents through the issuer's admin API on the
// Kavach admin listener (DESIGN.md §7).
func agentCommand(env *Env) Command {
	return Command{
		Name:  "agent",
		Usage: "create|child|revoke|rotate|list|show",
		Short: "Manages agents, their delegations and credentials",
		Long: `
Manages agents of the Kavach issuer through the admin listener (--admin,
default 127.0.0.1:2021; token from KAVACH_ADMIN_TOKEN or Caddy's data
directory; --issuer picks one issuer of a gateway that runs several). The
client secret is printed once, when created or rotated.

  agent create --name orchestrator --owner usr_alice --scope a:b --scope c:d
               [--ttl 24h] [--constraint hosts=x,y …] [--public-key key.pub.jwk]
               [--arg "read_file path /repo/*" …]
  agent child <parent-id> --name reviewer --scope a:b [--ttl 180s]
               [--constraint …] [--arg …] [--public-key …]
  agent revoke <id>        the agent, its grants and every descendant
  agent rotate <id> [--public-key key.pub.jwk]
  agent list [--owner usr_…] [--json]
  agent show <id> [--json] parent, children and chain

create, child, revoke and rotate print the admin API's JSON; list and
show print a table, or with --json the admin API's JSON.
`,
		Setup: func(cmd *cobra.Command) {
			f := addAdminFlags(env, cmd.PersistentFlags(), true)
			cmd.AddCommand(agentCreateCommand(f, false), agentCreateCommand(f, true), agentRotateCommand(f),
				agentListCommand(f), agentShowCommand(f),
				&cobra.Command{
					Use:   "revoke <id>",
					Short: "Revokes an agent, its grants and every descendant",
					Args:  cobra.ExactArgs(1),
					RunE: func(cmd *cobra.Command, args []string) error {
						return call(cmd, f, func(ctx context.Context, c *admin.Client) (*admin.Revoked, error) { return c.RevokeAgent(ctx, args[0]) })
					},
				},
			)
		},
	}
}

func agentCreateCommand(f *adminFlags, child bool) *cobra.Command {
	var in admin.AgentCreate
	var pubFile string
	var scopes, cnst, argLines []string
	var ttl time.Duration
	use, short, nargs := "create --name <name> --owner <usr_…> --scope <scope> …", "Creates a root agent for a user", 0
	if child {
		use, short, nargs = "child <parent-id> --name <name> --scope <scope> …", "Creates a child agent, attenuated from its parent", 1
	}
	c := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(nargs),
		RunE: func(cmd *cobra.Command, args []string) error {
			in.Scopes = nil
			for _, s := range scopes {
				in.Scopes = append(in.Scopes, strings.Fields(s)...)
			}
			in.TTL = admin.Duration(max(ttl, 0))
			in.Constraints = policy.Constraints{}
			for _, kv := range cnst {
				if err := setConstraint(&in.Constraints, kv); err != nil {
					return err
				}
			}
			if err := addArgLines(&in.Constraints, argLines); err != nil {
				return err
			}
			if pubFile != "" {
				data, err := os.ReadFile(pubFile)
				if err != nil {
					return err
				}
				in.PublicKey = json.RawMessage(data)
			}
			return call(cmd, f, func(ctx context.Context, c *admin.Client) (*admin.Agent, error) {
				if child {
					return c.CreateChild(ctx, args[0], in)
				}
				return c.CreateAgent(ctx, in)
			})
		},
	}
	c.Flags().StringVar(&in.Name, "name", "", "agent name")
	if !child {
		c.Flags().StringVar(&in.Owner, "owner", "", "the user (usr_…) the agent acts for")
	}
	c.Flags().StringArrayVar(&scopes, "scope", nil, "scope (repeatable, or space-separated)")
	c.Flags().DurationVar(&ttl, "ttl", 0, "lifetime of the agent (default 24h; a child's at most its parent's)")
	c.Flags().StringArrayVar(&cnst, "constraint", nil, "constraint name=value: hosts, cidrs, methods, paths (comma-separated), max_body, audit=required, rate=<n>/<s|m|h>, args=<JSON>")
	c.Flags().StringArrayVar(&argLines, "arg", nil, `argument rule "<tool> <argument> <facet> <value…>" (repeatable), e.g. "read_file path /repo/*"`)
	c.Flags().StringVar(&pubFile, "public-key", "", "public JWK file for private_key_jwt (no secret is issued)")
	return c
}

func agentRotateCommand(f *adminFlags) *cobra.Command {
	var pubFile string
	c := &cobra.Command{
		Use:   "rotate <id> [--public-key key.pub.jwk]",
		Short: "Replaces an agent's credential; tokens obtained with the old one stop",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var pub json.RawMessage
			if pubFile != "" {
				data, err := os.ReadFile(pubFile)
				if err != nil {
					return err
				}
				pub = data
			}
			return call(cmd, f, func(ctx context.Context, c *admin.Client) (*admin.Credential, error) {
				return c.RotateAgent(ctx, args[0], pub)
			})
		},
	}
	c.Flags().StringVar(&pubFile, "public-key", "", "new public JWK file (default: a new secret)")
	return c
}

func agentListCommand(f *adminFlags) *cobra.Command {
	var owner string
	var asJSON bool
	c := &cobra.Command{
		Use:   "list [--owner usr_…] [--json]",
		Short: "Lists agents",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			agents, err := c.Agents(cmd.Context(), owner)
			if err != nil {
				return f.explain(err)
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), admin.AgentList{Agents: agents})
			}
			return agentTable(cmd.OutOrStdout(), agents)
		},
	}
	c.Flags().StringVar(&owner, "owner", "", "only this user's agents")
	c.Flags().BoolVar(&asJSON, "json", false, "print the admin API's JSON instead of a table")
	return c
}

func agentShowCommand(f *adminFlags) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "show <id> [--json]",
		Short: "Shows an agent: its parent, children and chain",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			a, err := c.Agent(cmd.Context(), args[0])
			if err != nil {
				return f.explain(err)
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), a)
			}
			return agentDetail(cmd.OutOrStdout(), a)
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print the admin API's JSON instead of a table")
	return c
}
