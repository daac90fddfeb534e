package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kavachgate/kavach/admin"
)

// The user command manages the issuer's users through its admin API on
// the Kavach admin listener (DESIGN.md §7).
func userCommand(env *Env) Command {
	return Command{
		Name:  "user",
		Usage: "create|entitle|list|show|revoke|consents|revoke-consent",
		Short: "Manages the issuer's users and their entitlements",
		Long: `
Manages users of the Kavach issuer through the admin listener (--admin,
default 127.0.0.1:2021; token from KAVACH_ADMIN_TOKEN or Caddy's data
directory; --issuer picks one issuer of a gateway that runs several).

  user create --name alice [--id usr_alice] [--password-stdin]
              --entitle <resource>=<scope>,<scope>… (repeatable)
  user entitle <id> --entitle <resource>=<scope>,…   (replaces all)
  user list [--json]    a table, or the admin API's JSON
  user show <id> [--json]   entitlements (and where they come from), IdP
                            accounts and the groups they last had
  user revoke <id>      every token of the user stops at once
  user consents <id>    the OAuth clients the user consented to (JSON)
  user revoke-consent <id> <grant>   that client's tokens stop; it must ask again
`,
		Setup: func(cmd *cobra.Command) {
			f := addAdminFlags(env, cmd.PersistentFlags(), true)
			cmd.AddCommand(userCreateCommand(f), userEntitleCommand(f), userListCommand(f),
				userShowCommand(f),
				&cobra.Command{
					Use:   "revoke <id>",
					Short: "Revokes a user and every token of theirs",
					Args:  cobra.ExactArgs(1),
					RunE: func(cmd *cobra.Command, args []string) error {
						return call(cmd, f, func(ctx context.Context, c *admin.Client) (*admin.Revoked, error) { return c.RevokeUser(ctx, args[0]) })
					},
				},
				&cobra.Command{
					Use:   "consents <id>",
					Short: "Lists the OAuth clients a user consented to",
					Args:  cobra.ExactArgs(1),
					RunE: func(cmd *cobra.Command, args []string) error {
						return call(cmd, f, func(ctx context.Context, c *admin.Client) (*admin.ConsentList, error) {
							l, err := c.Consents(ctx, args[0])
							return &admin.ConsentList{Consents: l}, err
						})
					},
				},
				&cobra.Command{
					Use:   "revoke-consent <id> <grant>",
					Short: "Revokes a user's consent to an OAuth client (its tokens stop)",
					Args:  cobra.ExactArgs(2),
					RunE: func(cmd *cobra.Command, args []string) error {
						return call(cmd, f, func(ctx context.Context, c *admin.Client) (*admin.Revoked, error) {
							return c.RevokeConsent(ctx, args[0], args[1])
						})
					},
				},
			)
		},
	}
}

// entitlements parses --entitle resource=scope,scope flags.
func entitlements(flags []string) (admin.Entitlements, error) {
	ent := admin.Entitlements{}
	for _, f := range flags {
		i := strings.LastIndex(f, "=")
		if i <= 0 || i == len(f)-1 {
			return nil, fmt.Errorf("--entitle %q: want <resource>=<scope>,<scope>…", f)
		}
		ent[f[:i]] = append(ent[f[:i]], strings.Split(f[i+1:], ",")...)
	}
	return ent, nil
}

func userCreateCommand(f *adminFlags) *cobra.Command {
	var in admin.UserCreate
	var ent []string
	var pwStdin bool
	c := &cobra.Command{
		Use:   "create --name <name> --entitle <resource>=<scopes> …",
		Short: "Creates a user",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := entitlements(ent)
			if err != nil {
				return err
			}
			in.Entitlements = e
			if pwStdin {
				line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if err != nil && !errors.Is(err, io.EOF) {
					return err
				}
				in.Password = strings.TrimRight(line, "\r\n")
			}
			return call(cmd, f, func(ctx context.Context, c *admin.Client) (*admin.User, error) { return c.CreateUser(ctx, in) })
		},
	}
	c.Flags().StringVar(&in.Name, "name", "", "login name")
	c.Flags().StringVar(&in.ID, "id", "", "user id (usr_…); generated when absent")
	c.Flags().StringArrayVar(&ent, "entitle", nil, "<resource>=<scope>,<scope>… (repeatable)")
	c.Flags().BoolVar(&pwStdin, "password-stdin", false, "read a login password from the first line of stdin")
	return c
}

func userEntitleCommand(f *adminFlags) *cobra.Command {
	var ent []string
	c := &cobra.Command{
		Use:   "entitle <id> --entitle <resource>=<scopes> …",
		Short: "Replaces a user's entitlements",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := entitlements(ent)
			if err != nil {
				return err
			}
			return call(cmd, f, func(ctx context.Context, c *admin.Client) (*admin.User, error) {
				return c.SetEntitlements(ctx, args[0], e)
			})
		},
	}
	c.Flags().StringArrayVar(&ent, "entitle", nil, "<resource>=<scope>,<scope>… (repeatable)")
	return c
}

func userShowCommand(f *adminFlags) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "show <id> [--json]",
		Short: "Shows a user: entitlements, their source, IdP accounts and groups",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			u, err := c.User(cmd.Context(), args[0])
			if err != nil {
				return f.explain(err)
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), u)
			}
			return userDetail(cmd.OutOrStdout(), u)
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print the admin API's JSON instead of a table")
	return c
}

func userListCommand(f *adminFlags) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "list [--json]",
		Short: "Lists users",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			users, err := c.Users(cmd.Context())
			if err != nil {
				return f.explain(err)
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), admin.UserList{Users: users})
			}
			return userTable(cmd.OutOrStdout(), users)
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print the admin API's JSON instead of a table")
	return c
}
