package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"github.com/kavachgate/kavach/audit"
)

// The audit command reads a trail the gateway wrote (DESIGN.md §6).
func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "audit",
		Usage: "verify|query",
		Short: "Verifies and queries the tamper-evident audit trail",
		Long: `
Reads the audit trail a gateway writes: a file (the global option
'audit file <path>') with its rotated segments <path>.1, <path>.2, …,
or a PostgreSQL database ('audit postgres <url>'), named by its
postgres:// or postgresql:// URL (its password is never printed).

  audit verify <file|url> [--key <file>.pub] [--redis URL]
      Checks hashes, seq continuity, stream links and checkpoint
      signatures against the pinned public key (default <file>.pub, else
      audit.pub beside the file, as for the default trail in Caddy's data
      directory; required with a database). Exits 0 only when the trail
      verifies; otherwise names the first bad seq and why. Records after
      the last checkpoint are reported as not yet covered. In a database,
      each gateway node's chain of streams is checked in the order it was
      written, and every row's columns must agree with its line. With
      --redis, the checkpoints the gateway left in Redis
      (kavach:audit:ckpt:<stream>) are compared too, so records dropped
      from the end are caught.

  audit query [--agent ID|NAME] [--sub ID|NAME] [--tool NAME]
              [--decision allow|deny] [--since T] [--until T]
              [--request ID] [--chain ID] [--json] [--ids]
              [--admin ADDR] <file|dir|url>…
      Prints matching records as a table: time, decision, who (the
      chain, current actor first, and the user it acts for), what (MCP
      method and tool, or HTTP method and path), status, and why a
      request was denied. Agents and users are shown by name when the
      admin listener (--admin, default 127.0.0.1:2021; token as for
      'kavach agent') answers, else by id; --ids never asks. With --json,
      the matching lines exactly as they are in the trail. T is a
      duration ago (1h) or an RFC 3339 time. A request's outcome record
      is shown with the decision that matched. From a database, rows come
      in the order they were written, all nodes together. Query does not
      verify: run verify.
`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.AddCommand(auditVerifyCommand(), auditQueryCommand())
		},
	})
}

func auditVerifyCommand() *cobra.Command {
	var key, redisURL string
	cmd := &cobra.Command{
		Use:   "verify <file|postgres-url> [--key <file>.pub]",
		Short: "Verifies an audit trail (exit 0 only when it holds)",
		Args:  cobra.ExactArgs(1),
	}
	cmd.Flags().StringVar(&key, "key", "", "the trail's public key, PKIX PEM (default <file>.pub, else audit.pub beside it; required with a database URL)")
	cmd.Flags().StringVar(&redisURL, "redis", "", "compare with the checkpoints witnessed in this Redis")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		path := args[0]
		db := audit.IsPostgresURL(path)
		switch {
		case key == "" && db:
			return errors.New("name the trail's public key with --key (audit-postgres.pub in the gateway's data directory, or the key option's .pub)")
		case key == "":
			key = defaultAuditKey(path)
		}
		pub, err := audit.LoadPublicKey(key)
		if err != nil {
			return fmt.Errorf("public key: %w (name it with --key)", err)
		}
		var opts audit.VerifyOptions
		if redisURL != "" {
			o, err := redis.ParseURL(redisURL)
			if err != nil {
				return errors.New("--redis: not a redis:// or rediss:// URL")
			}
			client := redis.NewClient(o)
			defer client.Close()
			opts.Witness = audit.NewRedisWitness(client, 0)
		}
		var rep *audit.Report
		if db {
			rep, err = audit.VerifyPostgres(cmd.Context(), path, pub, opts)
		} else {
			rep, err = audit.VerifyTrail(cmd.Context(), path, pub, opts)
		}
		if err != nil {
			return err
		}
		if err := rep.WriteText(cmd.OutOrStdout()); err != nil {
			return err
		}
		if !rep.OK() {
			cmd.SilenceUsage = true
			return fmt.Errorf("the audit trail does not verify: %s", rep.Problem.Error())
		}
		return nil
	}
	return cmd
}

// defaultAuditKey is <file>.pub, else audit.pub in the file's directory
// (the key of the default trail, one file per stream).
func defaultAuditKey(path string) string {
	_, pub := audit.KeyPaths(path)
	if _, err := os.Stat(pub); errors.Is(err, fs.ErrNotExist) {
		alt := filepath.Join(filepath.Dir(path), "audit.pub")
		if _, err := os.Stat(alt); err == nil {
			return alt
		}
	}
	return pub
}

func auditQueryCommand() *cobra.Command {
	var (
		f                      audit.Filter
		since, until, decision string
		admin                  string
		asJSON, ids            bool
	)
	cmd := &cobra.Command{
		Use:   "query [filters] [--json] <file|dir|postgres-url>…",
		Short: "Prints the records of an audit trail that match",
		Args:  cobra.MinimumNArgs(1),
	}
	fl := cmd.Flags()
	fl.StringVar(&f.Agent, "agent", "", "records of this agent, by id or name (actor, client_id or any agent of the chain)")
	fl.StringVar(&f.Sub, "sub", "", "records of requests acting for this user, by id or name")
	fl.StringVar(&f.Tool, "tool", "", "records of MCP requests for this tool (or resource URI, or prompt)")
	fl.StringVar(&decision, "decision", "", "decision records (and junk summaries) with this decision: allow or deny")
	fl.StringVar(&since, "since", "", "records at or after this: a duration ago (1h, 30m) or an RFC 3339 time")
	fl.StringVar(&until, "until", "", "records at or before this: a duration ago or an RFC 3339 time")
	fl.StringVar(&f.RequestID, "request", "", "the records of one request (its request_id)")
	fl.StringVar(&f.Chain, "chain", "", "records whose delegation chain holds this grant id")
	fl.BoolVar(&asJSON, "json", false, "print the matching lines as they are in the trail (JSON lines)")
	fl.BoolVar(&ids, "ids", false, "show ids; do not ask the admin listener for names")
	fl.StringVar(&admin, "admin", "127.0.0.1:2021", "the Kavach admin listener that names agents and users")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		now := time.Now()
		for _, tf := range []struct {
			name, val string
			to        *time.Time
		}{{"since", since, &f.Since}, {"until", until, &f.Until}} {
			if tf.val == "" {
				continue
			}
			t, err := parseTimeFlag(tf.name, tf.val, now)
			if err != nil {
				return err
			}
			*tf.to = t
		}
		switch decision {
		case "":
		case string(audit.Allow), string(audit.Deny):
			f.Decision = audit.Decision(decision)
		default:
			return fmt.Errorf("--decision %q: want allow or deny", decision)
		}
		// Names: for people (the table), and for filters given by name.
		byName := !looksLikeID(f.Agent) || !looksLikeID(f.Sub)
		if !ids && (!asJSON || byName) {
			names, err := fetchNames(cmd.Context(), admin)
			switch {
			case err == nil:
				f.Names = names
			case byName:
				fmt.Fprintf(cmd.ErrOrStderr(), "note: names not resolved (%v): --agent and --sub match ids only\n", err)
			case !errors.Is(err, errNoAdmin):
				fmt.Fprintf(cmd.ErrOrStderr(), "note: names not resolved (%v): showing ids\n", err)
			}
		}
		entries, err := queryEntries(cmd.Context(), args, f)
		if err != nil {
			return err
		}
		p := audit.NewTablePrinter(cmd.OutOrStdout(), f.Names)
		if asJSON {
			p = audit.NewJSONPrinter(cmd.OutOrStdout())
		}
		for e, err := range entries {
			if errors.Is(err, audit.ErrPartialLine) {
				// The gateway may be in the middle of a write; what came
				// before stands.
				fmt.Fprintln(cmd.ErrOrStderr(), "warning:", err)
				break
			}
			if err != nil {
				_ = p.Flush()
				return err
			}
			if err := p.Print(e); err != nil {
				return err
			}
		}
		return p.Flush()
	}
	return cmd
}

// queryEntries reads the trails named: one database, or files and
// directories (each through audit.Files), oldest first per argument.
func queryEntries(ctx context.Context, args []string, f audit.Filter) (iter.Seq2[*audit.Entry, error], error) {
	for _, a := range args {
		if audit.IsPostgresURL(a) {
			if len(args) > 1 {
				return nil, errors.New("a database URL is queried on its own, not with other trails")
			}
			return audit.QueryPostgres(ctx, a, f), nil
		}
	}
	var files []string
	for _, a := range args {
		paths, err := audit.Files(a)
		if err != nil {
			return nil, err
		}
		files = append(files, paths...)
	}
	return audit.Query(files, f), nil
}

// looksLikeID reports whether a --agent or --sub value is an id (or
// empty), not a name: Kavach ids have a kind prefix, OAuth clients of a
// metadata document are URLs.
func looksLikeID(s string) bool {
	if s == "" || strings.Contains(s, "://") || strings.HasPrefix(s, "ext:") {
		return true
	}
	for _, p := range []string{"agt_", "usr_", "cli_", "dlg_", "tok_"} {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// errNoAdmin: no admin listener answers (none configured here, or not
// running); names quietly fall back to ids.
var errNoAdmin = errors.New("no admin listener")

// fetchNames reads the names of agents and users from the issuer's admin
// API (GET /v1/agents, GET /v1/users) on the Kavach admin listener, with
// the admin token the other commands use. The names come from the issuer
// at query time, not from the trail: the trail keeps ids, which never
// change, and an agent renamed or deleted since shows by its id.
func fetchNames(ctx context.Context, admin string) (*audit.Names, error) {
	secret, err := adminSecretForCLI()
	if err != nil {
		return nil, errNoAdmin
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	get := func(path string, out any) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+path, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			var op *net.OpError
			if errors.As(err, &op) && op.Op == "dial" {
				return errNoAdmin
			}
			return fmt.Errorf("admin listener %s: %w", admin, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("admin listener %s answered %s to GET %s", admin, resp.Status, path)
		}
		return json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(out)
	}
	var agents struct {
		Agents []struct{ ID, Name string } `json:"agents"`
	}
	var users struct {
		Users []struct{ ID, Name string } `json:"users"`
	}
	if err := get("/v1/agents", &agents); err != nil {
		return nil, err
	}
	if err := get("/v1/users", &users); err != nil {
		return nil, err
	}
	n := &audit.Names{Agents: make(map[string]string, len(agents.Agents)), Users: make(map[string]string, len(users.Users))}
	for _, a := range agents.Agents {
		n.Agents[a.ID] = a.Name
	}
	for _, u := range users.Users {
		n.Users[u.ID] = u.Name
	}
	return n, nil
}

// parseTimeFlag reads --since or --until: a duration before now, or an
// RFC 3339 time.
func parseTimeFlag(name, s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("--%s %q: a duration ago must be positive", name, s)
		}
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--%s %q: want a duration (1h, 30m) or an RFC 3339 time", name, s)
}
