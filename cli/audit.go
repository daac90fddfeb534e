package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"github.com/kavachgate/kavach/admin"
	"github.com/kavachgate/kavach/audit"
)

// namesTimeout bounds audit query's look-up of names.
const namesTimeout = 3 * time.Second

// The audit command reads a trail the gateway wrote (DESIGN.md §6).
func auditCommand(env *Env) Command {
	return Command{
		Name:  "audit",
		Usage: "verify|query",
		Short: "Verifies and queries the tamper-evident audit trail",
		Long: `
Reads the audit trail a gateway writes: a file (the global option
'audit file <path>') with its rotated segments <path>.1, <path>.2, …,
or a PostgreSQL database ('audit postgres <url>'), named by its
postgres:// or postgresql:// URL (its password is never printed).

  audit verify [<dir|file>...] [--key <file>.pub] [--from <stream>:<seq>]...
               [--redis URL] [--config <Caddyfile>]
  audit verify <url> --key <file>.pub [--redis URL]
      Checks hashes, seq continuity, the links between streams and files,
      and checkpoint signatures against the pinned public key. Takes trail
      files (with their rotated segments), directories (every *.jsonl in
      them: the default trail keeps one file per process start), or
      nothing: the trail --config names, else this machine's default trail
      in Caddy's data directory. Files are read in the order of their
      links, whatever their names. A stream that links to records no file
      holds is a cut head (a rotated segment, an earlier stream or file
      deleted) and fails; if those records were archived on purpose,
      --from <stream>:<seq> names a checkpoint record of the stream (a line
      whose kind is checkpoint) to verify from. Exit status: 0 when the
      whole trail verifies from its first record; 3 when it verifies from
      a checkpoint on (--from, or one the witness holds), the earlier
      records not checked; 1 otherwise, naming the first bad seq and why.
      Records after the last checkpoint are reported as not yet covered.
      The key: --key, else the .pub of the config's key option (audit file
      <path> { key <file>.key }), else the .pub beside the trail, which
      whoever can rewrite the trail can replace: verify then warns on
      stderr. With --redis, what the gateway left in Redis is compared too:
      its checkpoints (kavach:audit:ckpt:<stream>), so records dropped from
      the end are caught; the key each stream began with; and the streams
      it knows that the trail lacks. In a database, each gateway node's
      chain of streams is checked in the order it was written, and every
      row's columns must agree with its line.

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
		Setup: func(cmd *cobra.Command) {
			cmd.AddCommand(auditVerifyCommand(env), auditQueryCommand(env))
		},
	}
}

// exitVerifiedFromCheckpoint is the exit status of `kavach audit verify`
// when the trail verifies from a checkpoint on (--from, or the witness's),
// its earlier records not checked: a script that wants the whole trail
// checks for 0.
const exitVerifiedFromCheckpoint = 3

func auditVerifyCommand(env *Env) *cobra.Command {
	var (
		key, redisURL, config string
		from                  []string
	)
	cmd := &cobra.Command{
		Use:   "verify [<dir|file>... | <postgres-url>] [--key <file>.pub] [--from <stream>:<seq>]... [--redis URL] [--config <Caddyfile>]",
		Short: "Verifies an audit trail (exit 0 only when it holds from its first record)",
		Args:  cobra.ArbitraryArgs,
	}
	cmd.Flags().StringVar(&key, "key", "", "the trail's public key, PKIX PEM, kept where the gateway cannot change it (default: the config's key, else the .pub beside the trail, with a warning; required with a database URL)")
	cmd.Flags().StringVar(&redisURL, "redis", "", "compare with what the gateway left in this Redis: checkpoints, each stream's key, the streams it knows")
	cmd.Flags().StringArrayVar(&from, "from", nil, "verify from this checkpoint record on, <stream>:<seq>, when the records before it were archived (repeatable, one per stream); exit status 3")
	cmd.Flags().StringVar(&config, "config", "", "take the trail and its key from this config (Caddyfile, or JSON when it ends in .json)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		code, err := runAuditVerify(cmd, env, args, key, redisURL, config, from)
		if code == exitVerifiedFromCheckpoint {
			return &ExitError{Code: code}
		}
		return err
	}
	return cmd
}

// runAuditVerify verifies the trail args (or config) name and prints the
// report; it returns the exit status (0, 1 or exitVerifiedFromCheckpoint).
func runAuditVerify(cmd *cobra.Command, env *Env, args []string, key, redisURL, config string, from []string) (int, error) {
	var opts audit.VerifyOptions
	for _, f := range from {
		ref, err := audit.ParseCheckpointRef(f)
		if err != nil {
			return 1, fmt.Errorf("--from: %w", err)
		}
		opts.From = append(opts.From, ref)
	}
	t, err := env.verifyTarget(args, config)
	if err != nil {
		return 1, err
	}
	db := len(t.paths) == 1 && audit.IsPostgresURL(t.paths[0])
	for _, p := range t.paths {
		if audit.IsPostgresURL(p) && !db {
			return 1, errors.New("a database URL is verified alone")
		}
	}
	pinned := true
	switch {
	case key != "":
	case t.pub != "":
		key = t.pub
		pinned = !t.besideTrail(key)
	case db:
		return 1, errors.New("name the trail's public key with --key (audit-postgres.pub in the gateway's data directory, or the key option's .pub)")
	default:
		key, pinned = defaultAuditKey(t.paths[0]), false
		for _, p := range t.paths {
			if k := defaultAuditKey(p); fileExists(k) {
				key = k
				break
			}
		}
	}
	pub, err := audit.LoadPublicKey(key)
	if err != nil {
		return 1, fmt.Errorf("public key: %w (name it with --key)", err)
	}
	if redisURL != "" {
		o, err := redis.ParseURL(redisURL)
		if err != nil {
			return 1, errors.New("--redis: not a redis:// or rediss:// URL")
		}
		client := redis.NewClient(o)
		defer client.Close()
		opts.Witness = audit.NewRedisWitness(client, 0)
	}
	var rep *audit.Report
	if db {
		rep, err = audit.VerifyPostgres(cmd.Context(), t.paths[0], pub, opts)
	} else {
		rep, err = audit.VerifyFiles(cmd.Context(), t.paths, pub, opts)
	}
	if err != nil {
		return 1, err
	}
	if err := rep.WriteText(cmd.OutOrStdout()); err != nil {
		return 1, err
	}
	if !pinned {
		warnAdjacentKey(cmd, key, rep, opts.Witness != nil)
	}
	cmd.SilenceUsage = true
	switch {
	case !rep.OK():
		return 1, fmt.Errorf("the audit trail does not verify: %s", rep.Problem.Error())
	case !rep.Complete():
		return exitVerifiedFromCheckpoint, nil
	}
	return 0, nil
}

// warnAdjacentKey says, on stderr, that the key verify used sits beside
// the trail, unless the witness recorded every stream's key as this one.
func warnAdjacentKey(cmd *cobra.Command, key string, rep *audit.Report, witness bool) {
	unconfirmed := 0
	for _, s := range rep.Streams {
		if !s.KeyWitnessed {
			unconfirmed++
		}
	}
	if witness && unconfirmed == 0 && rep.OK() {
		return
	}
	w := cmd.ErrOrStderr()
	fmt.Fprintf(w, "WARNING: verified with the key beside the trail (%s).\n", key)
	fmt.Fprintln(w, "WARNING: whoever can rewrite the trail can replace that key too, and a rewritten trail would verify.")
	if witness {
		fmt.Fprintf(w, "WARNING: the witness has no record of the key of %d of its streams.\n", unconfirmed)
	}
	fmt.Fprintln(w, "WARNING: pin the key: copy the .pub where the gateway cannot write and name it with --key, keep the")
	fmt.Fprintln(w, "WARNING: signing key outside the trail's directory (audit file <path> { key <file>.key }) and verify")
	fmt.Fprintln(w, "WARNING: with --config, or verify with --redis against the witness.")
}

// trailTarget is the trail verify reads and the key a config pins.
type trailTarget struct {
	paths []string // files and directories, or one database URL
	pub   string   // the config's key, "" when it names none
}

// besideTrail reports whether the key file sits in a directory of the
// trail (where whoever rewrites the trail can replace it).
func (t trailTarget) besideTrail(key string) bool {
	kd, _ := filepath.Abs(filepath.Dir(key))
	for _, p := range t.paths {
		d := p
		if fi, err := os.Stat(p); err != nil || !fi.IsDir() {
			d = filepath.Dir(p)
		}
		if abs, _ := filepath.Abs(d); abs == kd {
			return true
		}
	}
	return false
}

// verifyTarget is what verify reads: the paths given, else the trail the
// config names, else this machine's default trail (one file per process
// start in the data directory). A config also names the key.
func (e *Env) verifyTarget(args []string, config string) (trailTarget, error) {
	t := trailTarget{paths: args}
	if config != "" {
		c, err := e.configTrail(config)
		if err != nil {
			return t, err
		}
		t.pub = c.pub
		if len(t.paths) == 0 {
			t.paths = c.paths
		}
	}
	if len(t.paths) == 0 {
		t.paths = []string{e.DefaultTrailDir()}
	}
	return t, nil
}

// DefaultTrailDir is where a gateway writes its trail when the config
// names none: one file per process start, signed with audit.key beside
// them.
func (e *Env) DefaultTrailDir() string { return filepath.Join(e.DataDir, "kavach", "audit") }

func fileExists(name string) bool {
	_, err := os.Stat(name)
	return err == nil
}

// defaultAuditKey is the key beside the trail at path: audit.pub in a
// directory (the default trail's), else <file>.pub, else audit.pub in the
// file's directory.
func defaultAuditKey(path string) string {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return filepath.Join(path, "audit.pub")
	}
	_, pub := audit.KeyPaths(path)
	if _, err := os.Stat(pub); errors.Is(err, fs.ErrNotExist) {
		alt := filepath.Join(filepath.Dir(path), "audit.pub")
		if _, err := os.Stat(alt); err == nil {
			return alt
		}
	}
	return pub
}

func auditQueryCommand(env *Env) *cobra.Command {
	var (
		f                      audit.Filter
		since, until, decision string
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
	af := &adminFlags{env: env}
	fl.StringVar(&af.addr, "admin", defaultAdmin, "the Kavach admin listener that names agents and users")
	fl.StringVar(&af.issuer, "issuer", "", "the issuer (its identifier) that names them, of a gateway that runs several (default: the first of its config)")
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
			names, err := fetchNames(cmd.Context(), af)
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
				// A gateway in the middle of a write, or one that died in
				// it; what came before stands, the next file follows.
				fmt.Fprintln(cmd.ErrOrStderr(), "warning:", err)
				continue
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
func fetchNames(ctx context.Context, f *adminFlags) (*audit.Names, error) {
	c, err := f.client()
	if err != nil {
		return nil, errNoAdmin
	}
	ctx, cancel := context.WithTimeout(ctx, namesTimeout)
	defer cancel()
	explain := func(path string, err error) error {
		var op *net.OpError
		var ae *admin.Error
		switch {
		case errors.As(err, &op) && op.Op == "dial":
			return errNoAdmin
		case errors.As(err, &ae):
			return fmt.Errorf("admin listener %s answered %d %s to GET %s", f.addr, ae.Status, http.StatusText(ae.Status), path)
		}
		return fmt.Errorf("admin listener %s: %w", f.addr, err)
	}
	agents, err := c.Agents(ctx, "")
	if err != nil {
		return nil, explain("/v1/agents", err)
	}
	users, err := c.Users(ctx)
	if err != nil {
		return nil, explain("/v1/users", err)
	}
	n := &audit.Names{Agents: make(map[string]string, len(agents)), Users: make(map[string]string, len(users))}
	for _, a := range agents {
		n.Agents[a.ID] = a.Name
	}
	for _, u := range users {
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
