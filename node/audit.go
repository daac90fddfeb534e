package node

import (
	"context"
	"errors"

	"github.com/kavachgate/kavach/audit"
	"github.com/kavachgate/kavach/issuer"
)

// startAudit opens the audit writer, or takes the one a running runtime
// with the same trail holds (a reload neither reopens nor re-locks it).
func (rt *Runtime) startAudit() error {
	if rt.cfg.AuditOff() {
		return nil
	}
	c := audit.Config{Sink: audit.SinkFile}
	if rt.cfg.Audit != nil {
		c = *rt.cfg.Audit
	}
	c.Resolve, c.DataDir, c.Logger = rt.opts.Resolve, rt.opts.DataDir, rt.log.With("part", "audit")
	rc, err := c.Resolved()
	if err != nil {
		return err
	}
	v, err := rt.hold(rc.ID(), func() (any, func() error, error) {
		var release func() error
		if rt.redisURL != "" {
			client, rel, err := rt.borrowRedis()
			if err != nil {
				return nil, nil, err
			}
			rc.Witness, release = audit.NewRedisWitness(client, 0), rel
		}
		ctx, cancel := context.WithTimeout(context.Background(), OpenTimeout)
		defer cancel()
		w, err := audit.Open(ctx, rc)
		if err != nil {
			if release != nil {
				_ = release()
			}
			return nil, nil, err
		}
		return w, func() error {
			err := w.Close()
			if err != nil {
				rt.log.Error("audit trail closed with records lost", "error", err)
			}
			if release != nil {
				_ = release()
			}
			return err
		}, nil
	})
	if err != nil {
		return err
	}
	rt.auditW.Store(v.(*audit.Writer))
	return nil
}

// openBrowser opens the node's trail for its issuers' console (one per
// runtime, closed by closeBrowser). A trail that cannot be read back (off,
// stdout) leaves the console without one.
func (rt *Runtime) openBrowser() {
	if rt.browser != nil || rt.cfg.AuditOff() {
		return
	}
	c := audit.Config{Sink: audit.SinkFile}
	if rt.cfg.Audit != nil {
		c = *rt.cfg.Audit
	}
	c.Resolve, c.DataDir = rt.opts.Resolve, rt.opts.DataDir
	b, err := audit.OpenBrowser(context.Background(), c)
	if err != nil {
		rt.log.Warn("the console cannot show the audit trail", "error", err)
		return
	}
	rt.browser = b
}

func (rt *Runtime) closeBrowser() {
	if rt.browser != nil {
		_ = rt.browser.Close()
		rt.browser = nil
	}
}

// AuditWriter is the writer requests record into; nil when the trail is
// off or not open yet.
func (rt *Runtime) AuditWriter() *audit.Writer { return rt.auditW.Load() }

// auditEvent records an issuer event. An event refused for back-pressure
// is logged loudly: the token was already issued or revoked.
func (rt *Runtime) auditEvent(e issuer.Event) {
	w := rt.AuditWriter()
	if w == nil {
		if !rt.cfg.AuditOff() {
			rt.log.Error("AUDIT RECORD LOST: issuer event before the audit trail opened", "kind", e.Kind, "sub", e.Subject, "client_id", e.ClientID, "jti", e.TokenID)
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
			rt.log.Error("AUDIT RECORD LOST: issuer event not recorded", "error", err,
				"kind", e.Kind, "sub", e.Subject, "client_id", e.ClientID,
				"jti", e.TokenID, "ids", rec.IDs, "reason", e.Reason)
		}
		if len(ids) == 0 {
			return
		}
	}
}

// trail is the gateway's view of the node's audit writer, which opens in
// Start (after New built the gateway) and may be shared across reloads:
// every call looks at the current writer. A trail that should be open
// and is not refuses records, so requests get 503.
type trail struct{ rt *Runtime }

var errTrailNotOpen = errors.New("audit trail not open")

func (t trail) Write(rec *audit.Record) error {
	if w := t.rt.AuditWriter(); w != nil {
		return w.Write(rec)
	}
	return errTrailNotOpen
}

func (t trail) WriteDurable(ctx context.Context, rec *audit.Record) error {
	if w := t.rt.AuditWriter(); w != nil {
		return w.WriteDurable(ctx, rec)
	}
	return errTrailNotOpen
}

func (t trail) CountJunk(reason string) {
	if w := t.rt.AuditWriter(); w != nil {
		w.CountJunk(reason)
	}
}
