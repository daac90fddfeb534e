package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/kavachgate/kavach/audit"
	"github.com/kavachgate/kavach/issuer"
)

// Audit sinks of the global option (DESIGN.md §6).
const (
	auditSinkFile   = "file"
	auditSinkStdout = "stdout"
	auditSinkOff    = "off"
)

// AuditConfig is the `audit` part of the kavach app: where the
// tamper-evident audit trail goes.
type AuditConfig struct {
	// Sink is "file" (JSONL, the default), "stdout" (for a log shipper) or
	// "off" (no trail: nothing is recorded and no request gets 503 for
	// want of a record).
	Sink string `json:"sink"`

	// Path is the trail of the file sink; placeholders are resolved when
	// the app starts, relative paths against the working directory. Its
	// signing key sits beside it (<path>.key, 0600; <path>.pub). Default:
	// <Caddy data dir>/kavach/audit/<stream>.jsonl, one file per process
	// start (so processes on one machine never share one), signed with
	// <Caddy data dir>/kavach/audit/audit.key.
	Path string `json:"path,omitempty"`
}

// validate checks the sink name and that a path goes with file only.
func (c *AuditConfig) validate() error {
	switch c.Sink {
	case auditSinkFile:
	case auditSinkStdout, auditSinkOff:
		if c.Path != "" {
			return fmt.Errorf("audit %s takes no path", c.Sink)
		}
	default:
		return fmt.Errorf("audit: unknown sink %q (want file <path>, stdout or off)", c.Sink)
	}
	return nil
}

// auditPool keeps each audit writer across config reloads: one per sink
// and file per process, so a reload neither reopens nor re-locks the trail.
var auditPool = caddy.NewUsagePool()

// sharedAudit is a pooled writer and the Redis client of its witness.
type sharedAudit struct {
	w      *audit.Writer
	redis  *redis.Client
	logger *zap.Logger
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
	if a.Audit != nil {
		sink = a.Audit.Sink
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
	case path != "":
		trail, keyTrail = path, path
	default:
		// Named after the stream, chosen when the writer is created.
		keyTrail = filepath.Join(dataDir, "audit", "audit")
	}
	poolKey := "kavach.audit:" + sink + ":" + trail
	val, loaded, err := auditPool.LoadOrNew(poolKey, func() (caddy.Destructor, error) {
		return a.openAudit(sink, trail, keyTrail)
	})
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	a.auditKey = poolKey
	s := val.(*sharedAudit)
	a.auditW.Store(s.w)
	if !loaded {
		a.logger.Info("audit trail open", zap.String("sink", sink), zap.String("path", auditPathOf(trail)), zap.String("stream", s.w.Stream()), zap.Bool("witness", s.redis != nil))
	}
	return nil
}

func auditPathOf(trail string) string {
	if trail == "" {
		return "stdout"
	}
	return trail
}

// openAudit creates the writer of a pool entry.
func (a *App) openAudit(sink, trail, keyTrail string) (*sharedAudit, error) {
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
	var snk audit.Sink
	switch {
	case sink == auditSinkStdout:
		snk = audit.NewStdoutSink(nil)
	default:
		if trail == "" {
			trail = filepath.Join(filepath.Dir(keyTrail), opts.Stream+".jsonl")
		}
		if err := os.MkdirAll(filepath.Dir(trail), 0o700); err != nil {
			s.closeRedis()
			return nil, err
		}
		fs, err := audit.OpenFile(trail, audit.FileOptions{})
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
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
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
