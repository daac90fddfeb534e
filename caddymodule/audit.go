package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/kavachgate/kavach/audit"
	"github.com/kavachgate/kavach/issuer"
)

// Audit sinks of the global option (DESIGN.md §6).
const (
	auditSinkFile     = "file"
	auditSinkStdout   = "stdout"
	auditSinkPostgres = "postgres"
	auditSinkOff      = "off"
)

// AuditConfig is the `audit` part of the kavach app: where the
// tamper-evident audit trail goes.
//
// With the postgres sink, many gateways write one central trail into the
// table kavach_audit (see audit.PostgresSink), each process as its own
// node. The connection opens when the app starts, and the app does not
// start without it, as with a trail file it cannot open: a database that
// cannot be reached within 30 s fails the config load (a reload keeps the
// running config). Once running, a database that goes away makes the
// writer refuse records, so requests get 503 (none is forwarded without
// its record) until it is back; what was acknowledged is kept.
type AuditConfig struct {
	// Sink is "file" (JSONL, the default), "stdout" (for a log shipper),
	// "postgres" (a central trail for many gateways) or "off" (no trail:
	// nothing is recorded and no request gets 503 for want of a record).
	Sink string `json:"sink"`

	// Path is the trail of the file sink; placeholders are resolved when
	// the app starts, relative paths against the working directory. Its
	// signing key sits beside it (<path>.key, 0600; <path>.pub) unless Key
	// names another. Default: <Caddy data dir>/kavach/audit/<stream>.jsonl,
	// one file per process start (so processes on one machine never share
	// one; each new file's stream links to the newest one before it),
	// signed with <Caddy data dir>/kavach/audit/audit.key.
	Path string `json:"path,omitempty"`

	// URL is the database of the postgres sink: postgres://… or
	// postgresql://… (libpq URL parameters such as sslmode, and
	// search_path for another schema than public). Give the password
	// through a placeholder, {env.KAVACH_AUDIT_DB}; placeholders are
	// resolved when the app starts. Messages and logs never show the
	// password. Required with postgres.
	URL string `json:"url,omitempty"`

	// Node names this gateway process in the postgres sink's table: its
	// streams form one chain, each new one linked to the node's last
	// record. One process per node at a time (a second one fails to
	// start), so every process sharing a database needs its own: a
	// placeholder such as {env.HOSTNAME} works. [A-Za-z0-9._-]{1,128}.
	// Default: the hostname.
	Node string `json:"node,omitempty"`

	// Key is the signing key file of the file or postgres sink, whose name
	// ends in .key (PKCS#8 PEM, mode 0600), with its public half beside it
	// in <name>.pub; both are generated when absent. Placeholders are
	// resolved when the app starts. Keep it out of the trail's directory
	// (readable by the gateway's user only) and copy the .pub to where the
	// trail is verified: whoever can rewrite the trail then cannot also
	// replace the key it is verified with. Gateways writing to one
	// database should share one key, so that one .pub verifies the whole
	// trail. Default: beside the trail (<path>.key); for postgres
	// <Caddy data dir>/kavach/audit-postgres.key.
	Key string `json:"key,omitempty"`
}

// validate checks the sink name and that each setting goes with its sink.
// Placeholders are left for startAudit.
func (c *AuditConfig) validate() error {
	switch {
	case c.Sink != auditSinkPostgres && (c.URL != "" || c.Node != ""):
		return fmt.Errorf("audit %s takes no url or node", c.Sink)
	case c.Sink != auditSinkPostgres && c.Sink != auditSinkFile && c.Key != "":
		return fmt.Errorf("audit %s takes no key", c.Sink)
	case c.Key != "" && !strings.HasSuffix(c.Key, ".key"):
		return fmt.Errorf("audit %s: key %s: the file name must end in .key (its public half goes beside it in .pub)", c.Sink, c.Key)
	}
	switch c.Sink {
	case auditSinkFile:
	case auditSinkStdout, auditSinkOff, auditSinkPostgres:
		if c.Path != "" {
			return fmt.Errorf("audit %s takes no path", c.Sink)
		}
	default:
		return fmt.Errorf("unknown audit sink %q (want file <path>, stdout, postgres <url> or off)", c.Sink)
	}
	if c.Sink != auditSinkPostgres {
		return nil
	}
	switch {
	case c.URL == "":
		return errors.New("audit postgres: the URL is missing")
	case !strings.Contains(c.URL, "{"):
		if err := audit.CheckPostgresURL(c.URL); err != nil {
			return err
		}
	case !strings.HasPrefix(c.URL, "{") && !audit.IsPostgresURL(c.URL):
		return fmt.Errorf("audit postgres: %s: want a postgres:// or postgresql:// URL", audit.RedactURL(c.URL))
	}
	if c.Node != "" && !strings.Contains(c.Node, "{") {
		if err := audit.CheckPostgresNode(c.Node); err != nil {
			return err
		}
	}
	return nil
}

// auditStartTimeout bounds opening the trail in Start (a database that
// cannot be reached fails the start once it passes).
const auditStartTimeout = 30 * time.Second

// postgresTarget is a resolved postgres sink.
type postgresTarget struct {
	url, node string
}

// resolvePostgres resolves the placeholders of the postgres settings and
// checks the results; the key path comes back without its .key.
func (c *AuditConfig) resolvePostgres() (postgresTarget, string, error) {
	repl := caddy.NewReplacer()
	pg := postgresTarget{url: repl.ReplaceAll(c.URL, ""), node: repl.ReplaceAll(c.Node, "")}
	if err := audit.CheckPostgresURL(pg.url); err != nil {
		return pg, "", err
	}
	if c.Node != "" {
		if err := audit.CheckPostgresNode(pg.node); err != nil {
			return pg, "", err
		}
	}
	keyTrail, err := c.resolveKey()
	return pg, keyTrail, err
}

// resolveKey resolves the key option: the key file's absolute path without
// its .key (what audit.LoadOrCreateKey takes); "" when not set.
func (c *AuditConfig) resolveKey() (string, error) {
	if c.Key == "" {
		return "", nil
	}
	key := caddy.NewReplacer().ReplaceAll(c.Key, "")
	trail, ok := strings.CutSuffix(key, ".key")
	if !ok || filepath.Base(trail) == "" {
		return "", fmt.Errorf("audit %s: key %s: the file name must end in .key", c.Sink, key)
	}
	abs, err := filepath.Abs(trail)
	if err != nil {
		return "", fmt.Errorf("audit %s: key %s: %w", c.Sink, key, err)
	}
	return abs, nil
}

// auditPool keeps each audit writer across config reloads: one per sink
// and file per process, so a reload neither reopens nor re-locks the trail.
var auditPool = caddy.NewUsagePool()

// sharedAudit is a pooled writer and the Redis client of its witness.
type sharedAudit struct {
	w      *audit.Writer
	redis  *redis.Client
	logger *zap.Logger
	path   string // the file sink's trail, once its name is chosen
}

// Destruct flushes the trail and writes the final checkpoint.
func (s *sharedAudit) Destruct() error {
	err := s.w.Close()
	if err != nil {
		s.logger.Error("audit trail closed with records lost", zap.Error(err))
	}
	if s.redis != nil {
		_ = s.redis.Close()
	}
	return err
}

// auditOff reports whether the trail is switched off.
func (a *App) auditOff() bool { return a.Audit != nil && a.Audit.Sink == auditSinkOff }

// startAudit opens (or, after a reload, shares) the audit writer. It runs
// in Start: Provision also runs under `kavach validate`.
func (a *App) startAudit() error {
	if a.auditOff() {
		return nil
	}
	sink, path := auditSinkFile, ""
	var pg postgresTarget
	var pgKey, fileKey string
	if a.Audit != nil {
		sink = a.Audit.Sink
		var err error
		switch sink {
		case auditSinkPostgres:
			if pg, pgKey, err = a.Audit.resolvePostgres(); err != nil {
				return err
			}
		case auditSinkFile:
			if fileKey, err = a.Audit.resolveKey(); err != nil {
				return err
			}
		}
		if a.Audit.Path != "" {
			path = caddy.NewReplacer().ReplaceAll(a.Audit.Path, "")
			if path == "" {
				return fmt.Errorf("audit file %s is empty", a.Audit.Path)
			}
			abs, err := filepath.Abs(path)
			if err != nil {
				return fmt.Errorf("audit file %s: %w", path, err)
			}
			path = abs
		}
	}
	dataDir := filepath.Join(caddy.AppDataDir(), "kavach")
	var trail, keyTrail string
	switch {
	case sink == auditSinkStdout:
		keyTrail = filepath.Join(dataDir, "audit-stdout")
	case sink == auditSinkPostgres:
		keyTrail = pgKey
		if keyTrail == "" {
			keyTrail = filepath.Join(dataDir, "audit-postgres")
		}
		// Not logged: the URL may hold the password.
		trail = pg.url + "\x00" + pg.node + "\x00" + keyTrail
	case path != "":
		trail, keyTrail = path, path
		if fileKey != "" {
			keyTrail = fileKey
		}
	default:
		// Named after the stream, chosen when the writer is created.
		keyTrail = filepath.Join(dataDir, "audit", "audit")
	}
	poolKey := "kavach.audit:" + sink + ":" + trail
	if sink == auditSinkFile {
		poolKey += "\x00" + keyTrail
	}
	val, loaded, err := auditPool.LoadOrNew(poolKey, func() (caddy.Destructor, error) {
		return a.openAudit(sink, trail, keyTrail, pg)
	})
	if err != nil {
		// The audit package's own errors already begin with "audit".
		if !strings.HasPrefix(err.Error(), "audit") {
			err = fmt.Errorf("audit: %w", err)
		}
		return err
	}
	a.auditKey = poolKey
	s := val.(*sharedAudit)
	a.auditW.Store(s.w)
	if !loaded {
		fields := []zap.Field{zap.String("sink", sink)}
		switch sink {
		case auditSinkPostgres:
			fields = append(fields, zap.String("database", audit.RedactURL(pg.url)))
		case auditSinkFile:
			fields = append(fields, zap.String("path", s.path))
		}
		fields = append(fields, zap.String("stream", s.w.Stream()), zap.Bool("witness", s.redis != nil))
		a.logger.Info("audit trail open", fields...)
	}
	return nil
}

// openAudit creates the writer of a pool entry.
func (a *App) openAudit(sink, trail, keyTrail string, pg postgresTarget) (*sharedAudit, error) {
	if err := os.MkdirAll(filepath.Dir(keyTrail), 0o700); err != nil {
		return nil, err
	}
	key, err := audit.LoadOrCreateKey(keyTrail)
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	opts := audit.Options{Stream: audit.StreamID(host, time.Now()), Logger: slogFrom(a.logger.Named("audit"))}
	s := &sharedAudit{logger: a.logger.Named("audit")}
	if a.Redis != "" {
		url := caddy.NewReplacer().ReplaceAll(a.Redis, "")
		o, err := redis.ParseURL(url)
		if err != nil {
			return nil, errors.New("redis: invalid URL for the audit witness")
		}
		s.redis = redis.NewClient(o)
		opts.Witness = audit.NewRedisWitness(s.redis, 0)
	}
	ctx, cancel := context.WithTimeout(context.Background(), auditStartTimeout)
	defer cancel()
	var snk audit.Sink
	switch {
	case sink == auditSinkStdout:
		snk = audit.NewStdoutSink(nil)
	case sink == auditSinkPostgres:
		ps, err := audit.OpenPostgres(ctx, pg.url, audit.PostgresOptions{Node: pg.node, Logger: opts.Logger})
		if err != nil {
			s.closeRedis()
			return nil, err
		}
		opts.Stream = audit.StreamID(ps.Node(), time.Now())
		snk = ps
	default:
		// The default trail: one file per process start, each new stream
		// linked to the newest file before it, so deleting a file breaks
		// a link that `kavach audit verify <dir>` follows.
		linkDir := trail == ""
		if linkDir {
			trail = filepath.Join(filepath.Dir(keyTrail), opts.Stream+".jsonl")
		}
		if err := os.MkdirAll(filepath.Dir(trail), 0o700); err != nil {
			s.closeRedis()
			return nil, err
		}
		s.path = trail
		fs, err := audit.OpenFile(trail, audit.FileOptions{LinkDir: linkDir})
		if err != nil {
			s.closeRedis()
			return nil, err
		}
		if t, _ := fs.Tail(context.Background()); t.PartialBytes > 0 {
			s.logger.Warn("audit trail ended in an incomplete line (an interrupted write); moved aside",
				zap.String("path", trail), zap.Int64("bytes", t.PartialBytes), zap.String("moved_to", t.PartialPath))
		}
		snk = fs
	}
	w, err := audit.NewWriter(ctx, snk, key, opts)
	if err != nil {
		_ = snk.Close()
		s.closeRedis()
		return nil, err
	}
	s.w = w
	return s, nil
}

func (s *sharedAudit) closeRedis() {
	if s.redis != nil {
		_ = s.redis.Close()
	}
}

// stopAudit releases this config's hold on the writer (the last one
// closes it).
func (a *App) stopAudit() error {
	if a.auditKey == "" {
		return nil
	}
	_, err := auditPool.Delete(a.auditKey)
	a.auditKey = ""
	return err
}

// auditWriter is the writer requests record into; nil when the trail is
// off or not open yet.
func (a *App) auditWriter() *audit.Writer {
	if a.auditW == nil {
		return nil
	}
	return a.auditW.Load()
}

// auditEvent records an issuer event. An event refused for back-pressure
// is logged loudly: the token was already issued or revoked.
func (a *App) auditEvent(e issuer.Event) {
	w := a.auditWriter()
	if w == nil {
		if !a.auditOff() {
			a.logger.Error("AUDIT RECORD LOST: issuer event before the audit trail opened", zap.String("kind", e.Kind), zap.String("sub", e.Subject), zap.String("client_id", e.ClientID), zap.String("jti", e.TokenID))
		}
		return
	}
	rec := audit.Record{
		Time: e.Time, Kind: audit.Kind(e.Kind), Reason: e.Reason,
		Sub: e.Subject, ClientID: e.ClientID, Agents: e.Agents, Chain: e.Chain, JTI: e.TokenID,
	}
	if n := len(e.Agents); n > 0 {
		rec.Actor = e.Agents[n-1]
	}
	ids := e.IDs
	for {
		rec.IDs = ids[:min(len(ids), audit.MaxListLen)]
		ids = ids[len(rec.IDs):]
		if err := w.Write(&rec); err != nil {
			a.logger.Error("AUDIT RECORD LOST: issuer event not recorded", zap.Error(err),
				zap.String("kind", e.Kind), zap.String("sub", e.Subject), zap.String("client_id", e.ClientID),
				zap.String("jti", e.TokenID), zap.Strings("ids", rec.IDs), zap.String("reason", e.Reason))
		}
		if len(ids) == 0 {
			return
		}
	}
}

// appTrail is the gateway's view of the app's audit writer, which opens in
// Start (after Provision built the gateway) and may be shared across
// reloads: every call looks at the current writer. A trail that should be
// open and is not refuses records, so requests get 503.
type appTrail struct{ a *App }

var errTrailNotOpen = errors.New("audit trail not open")

func (t appTrail) Write(rec *audit.Record) error {
	if w := t.a.auditWriter(); w != nil {
		return w.Write(rec)
	}
	return errTrailNotOpen
}

func (t appTrail) WriteDurable(ctx context.Context, rec *audit.Record) error {
	if w := t.a.auditWriter(); w != nil {
		return w.WriteDurable(ctx, rec)
	}
	return errTrailNotOpen
}

func (t appTrail) CountJunk(reason string) {
	if w := t.a.auditWriter(); w != nil {
		w.CountJunk(reason)
	}
}
