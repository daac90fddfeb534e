package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kavachgate/kavach/admin"
)

// Command is one kavach subcommand. The host makes a cobra command with
// Name, Usage, Short and Long, then hands it to Setup, which adds the
// command's flags, verbs and run functions.
type Command struct {
	Name  string
	Usage string
	Short string // one line, for 'kavach help'
	Long  string
	Setup func(cmd *cobra.Command)
}

// Env is what the commands take from their host program.
type Env struct {
	// DataDir is the host's data directory (Caddy's AppDataDir): the
	// admin token a gateway generated is in DataDir/kavach/admin_token,
	// the default audit trail in DataDir/kavach/audit.
	DataDir string
	// Resolve replaces a config's placeholders ({env.X}) as the gateway
	// does. Nil: values are taken as written.
	Resolve func(string) string
	// Adapt turns a config file that is not JSON (a Caddyfile) into the
	// JSON config (audit verify --config). Nil: only JSON configs are read.
	Adapt func(body []byte, filename string) ([]byte, error)
}

// ExitError ends a command with exit status Code; it is not printed.
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("exiting with status %d", e.Code) }

// The default address of the Kavach admin listener (the global option
// 'admin').
const defaultAdmin = "127.0.0.1:2021"

// Commands are the kavach subcommands, in the order 'kavach help' lists
// them.
func Commands(env *Env) []Command {
	return []Command{
		userCommand(env),
		agentCommand(env),
		clientCommand(env),
		revokeCommand(env),
		auditCommand(env),
		keysCommand(env),
		tokenCommand(),
	}
}

// Summary is one line per command, "  kavach <name>  <short>", for a
// host's help text.
func Summary() string {
	var b strings.Builder
	for _, c := range Commands(&Env{}) {
		fmt.Fprintf(&b, "  kavach %-7s %s\n", c.Name, c.Short)
	}
	return b.String()
}

// Run executes args (without the program name) against a root command of
// its own holding Commands, and returns the exit status: 0, 1 for an
// error (printed to stderr), or an ExitError's code.
func Run(ctx context.Context, env *Env, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := &cobra.Command{Use: "kavach", SilenceUsage: true, SilenceErrors: true}
	for _, c := range Commands(env) {
		cmd := &cobra.Command{Use: c.Name + " " + c.Usage, Short: c.Short, Long: c.Long}
		c.Setup(cmd)
		root.AddCommand(cmd)
	}
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if ee, ok := errors.AsType[*ExitError](err); ok {
		return ee.Code
	}
	if err != nil {
		fmt.Fprintln(stderr, "Error:", err)
		return 1
	}
	return 0
}

// adminFlags are the flags of a command that talks to the admin listener.
type adminFlags struct {
	env    *Env
	addr   string // --admin
	issuer string // --issuer; "" for the first issuer of the config
}

// addAdminFlags adds --admin and, for the issuer API, --issuer.
func addAdminFlags(env *Env, fs interface {
	StringVar(p *string, name, value, usage string)
}, withIssuer bool) *adminFlags {
	f := &adminFlags{env: env}
	fs.StringVar(&f.addr, "admin", defaultAdmin, "address of the Kavach admin listener")
	if withIssuer {
		fs.StringVar(&f.issuer, "issuer", "", "the issuer (its identifier) of a gateway that runs several (default: the first of its config)")
	}
	return f
}

// tokenFile is where a gateway generated the admin token.
func (e *Env) tokenFile() string { return filepath.Join(e.DataDir, "kavach", "admin_token") }

// adminToken finds the admin token: KAVACH_ADMIN_TOKEN, else the file a
// gateway generated into the data directory.
func (e *Env) adminToken() (string, error) {
	if s := os.Getenv("KAVACH_ADMIN_TOKEN"); s != "" {
		return s, nil
	}
	data, err := os.ReadFile(e.tokenFile())
	if err != nil {
		return "", errors.New("no admin token: set KAVACH_ADMIN_TOKEN")
	}
	return strings.TrimSpace(string(data)), nil
}

// client is an admin.Client for the flags.
func (f *adminFlags) client() (*admin.Client, error) {
	tok, err := f.env.adminToken()
	if err != nil {
		return nil, err
	}
	return &admin.Client{BaseURL: "http://" + f.addr, Token: tok, Issuer: f.issuer}, nil
}

// explain turns an admin call's error into what the operator reads: the
// listener's answer, with a hint where the token came from when it was
// refused. The *admin.Error stays reachable with errors.As.
func (f *adminFlags) explain(err error) error {
	var ae *admin.Error
	switch {
	case err == nil:
		return nil
	case !errors.As(err, &ae):
		return fmt.Errorf("admin listener %s: %w", f.addr, err)
	case ae.Status == http.StatusUnauthorized:
		desc := ae.Description
		if desc == "" {
			desc = "admin token rejected"
		}
		return &refused{fmt.Sprintf("admin listener %s: %s (the CLI sends KAVACH_ADMIN_TOKEN if set, else the token in %s)",
			f.addr, desc, f.env.tokenFile()), ae}
	}
	return fmt.Errorf("admin listener %s answered %w", f.addr, ae)
}

// refused is a 401 of the admin listener, said with a hint.
type refused struct {
	msg string
	err *admin.Error
}

func (e *refused) Error() string { return e.msg }
func (e *refused) Unwrap() error { return e.err }

// call runs one admin call with the flags' client and prints its answer
// as indented JSON (what scripts read: ids and secrets of what was made).
func call[T any](cmd *cobra.Command, f *adminFlags, do func(context.Context, *admin.Client) (T, error)) error {
	c, err := f.client()
	if err != nil {
		return err
	}
	out, err := do(cmd.Context(), c)
	if err != nil {
		return f.explain(err)
	}
	return printJSON(cmd.OutOrStdout(), out)
}

// printJSON writes v as indented JSON, the form the admin listener
// answers in.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
