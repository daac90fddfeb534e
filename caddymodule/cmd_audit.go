package caddymodule

import (
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"os"
	"path/filepath"
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

  audit query [--agent ID] [--chain ID] [--since 1h|RFC3339]
              [--decision allow|deny] [--json] <file|url>
      Prints matching records as a table (or, with --json, the lines as
      they are in the trail). A request's outcome record is shown with
      the decision that matched. From a database, rows come in the order
      they were written, all nodes together. Query does not verify: run
      verify.
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
		f               audit.Filter
		since, decision string
		asJSON          bool
	)
	cmd := &cobra.Command{
		Use:   "query [--agent ID] [--chain ID] [--since 1h] [--decision allow|deny] [--json] <file|postgres-url>",
		Short: "Prints the records of an audit trail that match",
		Args:  cobra.ExactArgs(1),
	}
	cmd.Flags().StringVar(&f.Agent, "agent", "", "records of this agent (actor, client_id or any agent of the chain)")
	cmd.Flags().StringVar(&f.Chain, "chain", "", "records whose delegation chain holds this grant id")
	cmd.Flags().StringVar(&since, "since", "", "records at or after this: a duration ago (1h, 30m) or an RFC 3339 time")
	cmd.Flags().StringVar(&decision, "decision", "", "decision records (and junk summaries) with this decision: allow or deny")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the matching lines as they are in the trail (JSON lines)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if since != "" {
			t, err := parseSince(since, time.Now())
			if err != nil {
				return err
			}
			f.Since = t
		}
		switch decision {
		case "":
		case string(audit.Allow), string(audit.Deny):
			f.Decision = audit.Decision(decision)
		default:
			return fmt.Errorf("--decision %q: want allow or deny", decision)
		}
		var entries iter.Seq2[*audit.Entry, error]
		if audit.IsPostgresURL(args[0]) {
			entries = audit.QueryPostgres(cmd.Context(), args[0], f)
		} else {
			files, err := audit.Files(args[0])
			if err != nil {
				return err
			}
			entries = audit.Query(files, f)
		}
		p := audit.NewTablePrinter(cmd.OutOrStdout())
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

// parseSince reads --since: a duration before now, or an RFC 3339 time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("--since %q: a duration ago must be positive", s)
		}
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--since %q: want a duration (1h, 30m) or an RFC 3339 time", s)
}
