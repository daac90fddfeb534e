package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Sinks of Config (DESIGN.md §6).
const (
	SinkFile     = "file"
	SinkStdout   = "stdout"
	SinkPostgres = "postgres"
	SinkOff      = "off"
)

// Config is where a gateway's tamper-evident audit trail goes: the `audit`
// part of the kavach app's configuration (JSON), plus what the program
// running it fills in (the fields without a JSON name). Open opens the
// writer it describes.
//
// With the postgres sink, many gateways write one central trail into the
// table kavach_audit (see PostgresSink), each process as its own node. The
// connection opens when the app starts, and the app does not start
// without it, as with a trail file it cannot open: a database that cannot
// be reached within 30 s fails the config load (a reload keeps the running
// config). Once running, a database that goes away makes the writer
// refuse records, so requests get 503 (none is forwarded without its
// record) until it is back; what was acknowledged is kept.
type Config struct {
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

	// Resolve replaces the placeholders of Path, URL, Node and Key (Caddy's
	// {env.X}). Default: none are replaced.
	Resolve func(string) string `json:"-"`

	// DataDir is the directory of the defaults: the default trail goes to
	// <DataDir>/audit/, the keys of stdout and postgres beside it. Caddy's
	// <data dir>/kavach. Required unless Path and Key say where.
	DataDir string `json:"-"`

	// Witness, when set, receives every checkpoint (Options.Witness).
	Witness Witness `json:"-"`

	// Logger gets the writer's and the sink's messages. Default:
	// slog.Default().
	Logger *slog.Logger `json:"-"`
}

// Validate checks the sink name and that each setting goes with its sink.
// Placeholders are left for Resolved; it does no I/O.
func (c *Config) Validate() error {
	switch {
	case c.Sink != SinkPostgres && (c.URL != "" || c.Node != ""):
		return fmt.Errorf("audit %s takes no url or node", c.Sink)
	case c.Sink != SinkPostgres && c.Sink != SinkFile && c.Key != "":
		return fmt.Errorf("audit %s takes no key", c.Sink)
	case c.Key != "" && !strings.HasSuffix(c.Key, ".key"):
		return fmt.Errorf("audit %s: key %s: the file name must end in .key (its public half goes beside it in .pub)", c.Sink, c.Key)
	}
	switch c.Sink {
	case SinkFile:
	case SinkStdout, SinkOff, SinkPostgres:
		if c.Path != "" {
			return fmt.Errorf("audit %s takes no path", c.Sink)
		}
	default:
		return fmt.Errorf("unknown audit sink %q (want file <path>, stdout, postgres <url> or off)", c.Sink)
	}
	if c.Sink != SinkPostgres {
		return nil
	}
	switch {
	case c.URL == "":
		return errors.New("audit postgres: the URL is missing")
	case !strings.Contains(c.URL, "{"):
		if err := CheckPostgresURL(c.URL); err != nil {
			return err
		}
	case !strings.HasPrefix(c.URL, "{") && !IsPostgresURL(c.URL):
		return fmt.Errorf("audit postgres: %s: want a postgres:// or postgresql:// URL", RedactURL(c.URL))
	}
	if c.Node != "" && !strings.Contains(c.Node, "{") {
		if err := CheckPostgresNode(c.Node); err != nil {
			return err
		}
	}
	return nil
}

// Resolved returns c with its placeholders replaced and checked, Path and
// Key made absolute, and an empty Sink as SinkFile. Its errors never show
// the database password.
func (c Config) Resolved() (Config, error) {
	r := c.Resolve
	if r == nil {
		r = func(s string) string { return s }
	}
	out := c
	out.Resolve = nil
	if out.Sink == "" {
		out.Sink = SinkFile
	}
	if out.Sink == SinkPostgres {
		out.URL, out.Node = r(c.URL), r(c.Node)
		if err := CheckPostgresURL(out.URL); err != nil {
			return out, err
		}
		if c.Node != "" {
			if err := CheckPostgresNode(out.Node); err != nil {
				return out, err
			}
		}
	}
	if c.Key != "" {
		key := r(c.Key)
		trail, ok := strings.CutSuffix(key, ".key")
		if !ok || filepath.Base(trail) == "" {
			return out, fmt.Errorf("audit %s: key %s: the file name must end in .key", out.Sink, key)
		}
		abs, err := filepath.Abs(trail)
		if err != nil {
			return out, fmt.Errorf("audit %s: key %s: %w", out.Sink, key, err)
		}
		out.Key = abs + ".key"
	}
	if out.Sink == SinkFile && c.Path != "" {
		path := r(c.Path)
		if path == "" {
			return out, fmt.Errorf("audit file %s is empty", c.Path)
		}
		abs, err := filepath.Abs(path)
		if err != nil {
			return out, fmt.Errorf("audit file %s: %w", path, err)
		}
		out.Path = abs
	}
	return out, nil
}

// KeyTrail is the signing key's path without its .key (what
// LoadOrCreateKey and KeyPaths take) for a resolved config: Key, else the
// default of the sink.
func (c Config) KeyTrail() string {
	if k, ok := strings.CutSuffix(c.Key, ".key"); ok {
		return k
	}
	switch {
	case c.Sink == SinkStdout:
		return filepath.Join(c.DataDir, "audit-stdout")
	case c.Sink == SinkPostgres:
		return filepath.Join(c.DataDir, "audit-postgres")
	case c.Path != "":
		return c.Path
	default:
		// The default trail is named after its stream, chosen in Open.
		return filepath.Join(c.DataDir, "audit", "audit")
	}
}

// ID names the trail a resolved config writes, for sharing one writer
// between configurations: two configs with one ID write one trail. It
// holds the database URL: never log it.
func (c Config) ID() string {
	id := "kavach.audit:" + c.Sink + ":"
	switch c.Sink {
	case SinkPostgres:
		return id + c.URL + "\x00" + c.Node + "\x00" + c.KeyTrail()
	case SinkFile:
		return id + c.Path + "\x00" + c.KeyTrail()
	}
	return id
}

// Open opens the writer c describes (resolving c first): its signing key
// (created when absent), its sink (the file sink moves an incomplete last
// line aside; the default trail is a new file per call, linked to the
// newest one before it), and its writer. ctx bounds the opening (a
// database that cannot be reached). It logs "audit trail open" naming the
// sink and where it writes, never a password.
func Open(ctx context.Context, c Config) (*Writer, error) {
	w, err := open(ctx, c)
	// The errors of this package already begin with "audit".
	if err != nil && !strings.HasPrefix(err.Error(), "audit") {
		err = fmt.Errorf("audit: %w", err)
	}
	return w, err
}

func open(ctx context.Context, c Config) (*Writer, error) {
	if c.Sink == SinkOff {
		return nil, errors.New("the trail is off")
	}
	c, err := c.Resolved()
	if err != nil {
		return nil, err
	}
	log := c.Logger
	if log == nil {
		log = slog.Default()
	}
	keyTrail := c.KeyTrail()
	if err := os.MkdirAll(filepath.Dir(keyTrail), 0o700); err != nil {
		return nil, err
	}
	key, err := LoadOrCreateKey(keyTrail)
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	opts := Options{Stream: StreamID(host, time.Now()), Logger: log, Witness: c.Witness}
	attrs := []any{"sink", c.Sink}
	var snk Sink
	switch c.Sink {
	case SinkStdout:
		snk = NewStdoutSink(nil)
	case SinkPostgres:
		ps, err := OpenPostgres(ctx, c.URL, PostgresOptions{Node: c.Node, Logger: log})
		if err != nil {
			return nil, err
		}
		opts.Stream = StreamID(ps.Node(), time.Now())
		snk = ps
		attrs = append(attrs, "database", RedactURL(c.URL))
	default:
		// The default trail: one file per process start, each new stream
		// linked to the newest file before it, so deleting a file breaks
		// a link that `kavach audit verify <dir>` follows.
		trail, linkDir := c.Path, c.Path == ""
		if linkDir {
			trail = filepath.Join(filepath.Dir(keyTrail), opts.Stream+TrailExt)
		}
		if err := os.MkdirAll(filepath.Dir(trail), 0o700); err != nil {
			return nil, err
		}
		fs, err := OpenFile(trail, FileOptions{LinkDir: linkDir})
		if err != nil {
			return nil, err
		}
		if t, _ := fs.Tail(ctx); t.PartialBytes > 0 {
			log.Warn("audit trail ended in an incomplete line (an interrupted write); moved aside",
				"path", trail, "bytes", t.PartialBytes, "moved_to", t.PartialPath)
		}
		snk = fs
		attrs = append(attrs, "path", trail)
	}
	w, err := NewWriter(ctx, snk, key, opts)
	if err != nil {
		_ = snk.Close()
		return nil, err
	}
	log.Info("audit trail open", append(attrs, "stream", w.Stream(), "witness", c.Witness != nil)...)
	return w, nil
}
