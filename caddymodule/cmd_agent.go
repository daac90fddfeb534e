package caddymodule

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/kavachgate/kavach/policy"
)

// The user and agent commands talk to the issuer's admin API on the
// Kavach admin listener (DESIGN.md §7) and print its JSON answers.
func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "user",
		Usage: "create|entitle|list|show|revoke",
		Short: "Manages the issuer's users and their entitlements",
		Long: `
Manages users of the Kavach issuer through the admin listener (--admin,
default 127.0.0.1:2021; token from KAVACH_ADMIN_TOKEN or Caddy's data
directory).

  user create --name alice [--id usr_alice] [--password-stdin]
              --entitle <resource>=<scope>,<scope>… (repeatable)
  user entitle <id> --entitle <resource>=<scope>,…   (replaces all)
  user list
  user show <id>
  user revoke <id>      every token of the user stops at once
`,
		CobraFunc: func(cmd *cobra.Command) {
			admin := cmd.PersistentFlags().String("admin", "127.0.0.1:2021", "address of the Kavach admin listener")
			cmd.AddCommand(userCreateCommand(admin), userEntitleCommand(admin),
				simpleAdminCommand(admin, "list", "Lists users", http.MethodGet, func([]string) string { return "/v1/users" }, 0),
				simpleAdminCommand(admin, "show <id>", "Shows a user", http.MethodGet, func(a []string) string { return "/v1/users/" + url.PathEscape(a[0]) }, 1),
				simpleAdminCommand(admin, "revoke <id>", "Revokes a user and every token of theirs", http.MethodPost, func(a []string) string { return "/v1/users/" + url.PathEscape(a[0]) + "/revoke" }, 1),
			)
		},
	})
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "agent",
		Usage: "create|child|revoke|rotate|list|show",
		Short: "Manages agents, their delegations and credentials",
		Long: `
Manages agents of the Kavach issuer through the admin listener (--admin,
default 127.0.0.1:2021; token from KAVACH_ADMIN_TOKEN or Caddy's data
directory). The client secret is printed once, when created or rotated.

  agent create --name orchestrator --owner usr_alice --scope a:b --scope c:d
               [--ttl 24h] [--constraint hosts=x,y …] [--public-key key.pub.jwk]
  agent child <parent-id> --name reviewer --scope a:b [--ttl 180s]
               [--constraint …] [--public-key …]
  agent revoke <id>        the agent, its grants and every descendant
  agent rotate <id> [--public-key key.pub.jwk]
  agent list [--owner usr_…]
  agent show <id>          parent, children and chain
`,
		CobraFunc: func(cmd *cobra.Command) {
			admin := cmd.PersistentFlags().String("admin", "127.0.0.1:2021", "address of the Kavach admin listener")
			cmd.AddCommand(agentCreateCommand(admin, false), agentCreateCommand(admin, true), agentRotateCommand(admin), agentListCommand(admin),
				simpleAdminCommand(admin, "show <id>", "Shows an agent", http.MethodGet, func(a []string) string { return "/v1/agents/" + url.PathEscape(a[0]) }, 1),
				simpleAdminCommand(admin, "revoke <id>", "Revokes an agent, its grants and every descendant", http.MethodPost, func(a []string) string { return "/v1/agents/" + url.PathEscape(a[0]) + "/revoke" }, 1),
			)
		},
	})
}

func simpleAdminCommand(admin *string, use, short, method string, path func([]string) string, nargs int) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(nargs),
		RunE: func(cmd *cobra.Command, args []string) error {
			return adminPrint(cmd, *admin, method, path(args), nil)
		},
	}
}

// entitlements parses --entitle resource=scope,scope flags.
func entitlements(flags []string) (map[string][]string, error) {
	ent := map[string][]string{}
	for _, f := range flags {
		i := strings.LastIndex(f, "=")
		if i <= 0 || i == len(f)-1 {
			return nil, fmt.Errorf("--entitle %q: want <resource>=<scope>,<scope>…", f)
		}
		ent[f[:i]] = append(ent[f[:i]], strings.Split(f[i+1:], ",")...)
	}
	return ent, nil
}

func userCreateCommand(admin *string) *cobra.Command {
	var name, id string
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
			body := map[string]any{"name": name, "entitlements": e}
			if id != "" {
				body["id"] = id
			}
			if pwStdin {
				line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if err != nil && !errors.Is(err, io.EOF) {
					return err
				}
				body["password"] = strings.TrimRight(line, "\r\n")
			}
			return adminPrint(cmd, *admin, http.MethodPost, "/v1/users", body)
		},
	}
	c.Flags().StringVar(&name, "name", "", "login name")
	c.Flags().StringVar(&id, "id", "", "user id (usr_…); generated when absent")
	c.Flags().StringArrayVar(&ent, "entitle", nil, "<resource>=<scope>,<scope>… (repeatable)")
	c.Flags().BoolVar(&pwStdin, "password-stdin", false, "read a login password from the first line of stdin")
	return c
}

func userEntitleCommand(admin *string) *cobra.Command {
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
			return adminPrint(cmd, *admin, http.MethodPut, "/v1/users/"+url.PathEscape(args[0])+"/entitlements", e)
		},
	}
	c.Flags().StringArrayVar(&ent, "entitle", nil, "<resource>=<scope>,<scope>… (repeatable)")
	return c
}

func agentCreateCommand(admin *string, child bool) *cobra.Command {
	var name, owner, pubFile string
	var scopes, cnst []string
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
			var all []string
			for _, s := range scopes {
				all = append(all, strings.Fields(s)...)
			}
			body := map[string]any{"name": name, "scopes": all}
			if ttl > 0 {
				body["ttl"] = ttl.String()
			}
			if len(cnst) > 0 {
				var c policy.Constraints
				for _, kv := range cnst {
					if err := setConstraint(&c, kv); err != nil {
						return err
					}
				}
				body["constraints"] = c
			}
			if pubFile != "" {
				data, err := os.ReadFile(pubFile)
				if err != nil {
					return err
				}
				body["public_key"] = json.RawMessage(data)
			}
			path := "/v1/agents"
			if child {
				path = "/v1/agents/" + url.PathEscape(args[0]) + "/children"
			} else {
				body["owner"] = owner
			}
			return adminPrint(cmd, *admin, http.MethodPost, path, body)
		},
	}
	c.Flags().StringVar(&name, "name", "", "agent name")
	if !child {
		c.Flags().StringVar(&owner, "owner", "", "the user (usr_…) the agent acts for")
	}
	c.Flags().StringArrayVar(&scopes, "scope", nil, "scope (repeatable, or space-separated)")
	c.Flags().DurationVar(&ttl, "ttl", 0, "lifetime of the agent (default 24h; a child's at most its parent's)")
	c.Flags().StringArrayVar(&cnst, "constraint", nil, "constraint name=value: hosts, cidrs, methods, paths (comma-separated), max_body, audit=required")
	c.Flags().StringVar(&pubFile, "public-key", "", "public JWK file for private_key_jwt (no secret is issued)")
	return c
}

func agentRotateCommand(admin *string) *cobra.Command {
	var pubFile string
	c := &cobra.Command{
		Use:   "rotate <id> [--public-key key.pub.jwk]",
		Short: "Replaces an agent's credential; tokens obtained with the old one stop",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var body any
			if pubFile != "" {
				data, err := os.ReadFile(pubFile)
				if err != nil {
					return err
				}
				body = map[string]any{"public_key": json.RawMessage(data)}
			}
			return adminPrint(cmd, *admin, http.MethodPost, "/v1/agents/"+url.PathEscape(args[0])+"/rotate", body)
		},
	}
	c.Flags().StringVar(&pubFile, "public-key", "", "new public JWK file (default: a new secret)")
	return c
}

func agentListCommand(admin *string) *cobra.Command {
	var owner string
	c := &cobra.Command{
		Use:   "list [--owner usr_…]",
		Short: "Lists agents",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path := "/v1/agents"
			if owner != "" {
				path += "?owner=" + url.QueryEscape(owner)
			}
			return adminPrint(cmd, *admin, http.MethodGet, path, nil)
		},
	}
	c.Flags().StringVar(&owner, "owner", "", "only this user's agents")
	return c
}

// adminPrint calls the admin API and prints its answer.
func adminPrint(cmd *cobra.Command, admin, method, path string, body any) error {
	out, err := adminCall(admin, method, path, body)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(cmd.OutOrStdout(), out)
	return err
}

// adminSecretForCLI finds the admin token: KAVACH_ADMIN_TOKEN, else the
// file a gateway generated into Caddy's data directory.
func adminSecretForCLI() (string, error) {
	if s := os.Getenv("KAVACH_ADMIN_TOKEN"); s != "" {
		return s, nil
	}
	data, err := os.ReadFile(adminTokenFile())
	if err != nil {
		return "", errors.New("no admin token: set KAVACH_ADMIN_TOKEN")
	}
	return strings.TrimSpace(string(data)), nil
}

// adminCall sends one request to the admin listener; a non-2xx answer is
// an error carrying the server's message.
func adminCall(admin, method, path string, body any) (string, error) {
	secret, err := adminSecretForCLI()
	if err != nil {
		return "", err
	}
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return "", err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, "http://"+admin+path, rd)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+secret)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return "", fmt.Errorf("admin listener %s: %w", admin, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode == http.StatusUnauthorized {
		var e struct {
			Description string `json:"error_description"`
		}
		_ = json.Unmarshal(out, &e)
		if e.Description == "" {
			e.Description = "admin token rejected"
		}
		return "", fmt.Errorf("admin listener %s: %s (the CLI sends KAVACH_ADMIN_TOKEN if set, else the token in %s)", admin, e.Description, adminTokenFile())
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Code        string `json:"error"`
			Description string `json:"error_description"`
		}
		if json.Unmarshal(out, &e) == nil && e.Code != "" {
			return "", fmt.Errorf("admin listener answered %s: %s: %s", resp.Status, e.Code, e.Description)
		}
		return "", fmt.Errorf("admin listener answered %s: %s", resp.Status, strings.TrimSpace(string(out)))
	}
	return strings.TrimSpace(string(out)), nil
}
