package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/kavachgate/kavach/audit"
	"github.com/kavachgate/kavach/issuer"
	"github.com/kavachgate/kavach/issuer/store"
	"github.com/kavachgate/kavach/revocation"
)

// Issuer is a Kavach issuer the node runs (AddIssuer): its server exists
// between the node's Start and Stop.
type Issuer struct {
	cfg      IssuerConfig
	clientIP func(*http.Request) string
	srv      atomic.Pointer[issuer.Server]
	trail    atomic.Pointer[audit.Browser]

	// Its current key set as the key ring holds it (under the ring lock).
	last []byte
	set  jwk.Set
}

// Server is the issuer's server; nil before Start (after Stop, the
// closed server).
func (i *Issuer) Server() *issuer.Server { return i.srv.Load() }

// Trail is the trail the issuer's console shows (issuer.Config.Trail):
// the node's audit trail; nil when it cannot be read back (off, stdout)
// or before Start.
func (i *Issuer) Trail() audit.Browser {
	if p := i.trail.Load(); p != nil {
		return *p
	}
	return nil
}

// AddIssuer registers an issuer to run in this node; it starts with
// Start. clientIP gives a request's trusted client address (Caddy's
// client_ip); nil: its RemoteAddr.
func (rt *Runtime) AddIssuer(cfg IssuerConfig, clientIP func(*http.Request) string) (*Issuer, error) {
	if rt.local[cfg.Issuer] != nil {
		return nil, fmt.Errorf("kavach_issuer %s is configured twice", cfg.Issuer)
	}
	if cfg.Store == "" {
		cfg.Store = StoreSQLite
	}
	i := &Issuer{cfg: cfg, clientIP: clientIP}
	rt.issuers = append(rt.issuers, i)
	rt.local[cfg.Issuer] = i
	return i, nil
}

// startIssuers starts every issuer of the node, checks the rule of
// DESIGN.md §5 (a gateway trusting a Kavach issuer by URL must hear its
// revocations, so that issuer runs in this process, sharing the
// revocation set, or the gateways share Redis), and seeds the revocation
// set.
func (rt *Runtime) startIssuers() error {
	if len(rt.issuers) > 0 {
		rt.openBrowser()
	}
	for _, i := range rt.issuers {
		if err := rt.startIssuer(i); err != nil {
			rt.stopIssuers()
			return err
		}
	}
	for _, iss := range rt.cfg.Issuers {
		if rt.local[iss] == nil && rt.redisURL == "" {
			rt.stopIssuers()
			return fmt.Errorf("issuer %s: trusting a Kavach issuer of another process needs shared revocation: add redis <url>, run the issuer in this config (kavach_issuer), or use trusted_keys for offline keys", iss)
		}
	}
	if len(rt.issuers) > 0 {
		rt.refreshLocalKeys()
	} else {
		rt.journal = revocation.NewJournal(filepath.Join(rt.opts.DataDir, "revocations.jsonl"))
	}
	if err := rt.seedRevocations(); err != nil {
		rt.stopIssuers()
		return err
	}
	return nil
}

// startIssuer opens the issuer's store (shared across reloads) and starts
// it.
func (rt *Runtime) startIssuer(i *Issuer) error {
	dsn := filepath.Join(rt.opts.DataDir, "issuer.db")
	if i.cfg.DSN != "" {
		if dsn = rt.opts.Resolve(i.cfg.DSN); dsn == "" {
			return fmt.Errorf("kavach_issuer: store %s is empty", i.cfg.DSN)
		}
	}
	v, err := rt.hold("kavach.store:"+i.cfg.Store+":"+dsn, func() (any, func() error, error) {
		if i.cfg.Store == StoreSQLite {
			// A fresh machine has no data directory yet.
			if err := os.MkdirAll(filepath.Dir(dsn), 0o700); err != nil {
				return nil, nil, err
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), OpenTimeout)
		defer cancel()
		st, err := store.Open(ctx, i.cfg.Store, dsn)
		if err != nil {
			return nil, nil, err
		}
		return st, st.Close, nil
	})
	if err != nil {
		return fmt.Errorf("kavach_issuer: %w", err)
	}
	var replay issuer.ReplayStore
	if rt.redis != nil {
		// Several issuers behind one Redis refuse an assertion replayed
		// at any of them.
		replay = issuer.RedisReplay{Client: rt.redis}
	}
	cfg, err := i.cfg.signIn(rt.opts.Resolve)
	if err != nil {
		return fmt.Errorf("kavach_issuer %s: %w", i.cfg.Issuer, err)
	}
	srv, err := issuer.New(issuer.Config{
		Login:                 cfg.Login,
		Entitle:               cfg.Entitle,
		LocalUsers:            cfg.LocalUsers,
		TrustIDJAG:            cfg.TrustIDJAG,
		SessionTTL:            cfg.SessionTTL,
		LoginKey:              cfg.LoginKey,
		Console:               i.cfg.Console,
		Replay:                replay,
		Issuer:                i.cfg.Issuer,
		Store:                 v.(store.Store),
		Revoked:               rt.rev.svc,
		AccessTTL:             time.Duration(i.cfg.AccessTokenTTL),
		RefreshTTL:            time.Duration(i.cfg.RefreshTokenTTL),
		MaxTokenLifetime:      rt.cfg.MaxLifetime(),
		MaxDepth:              i.cfg.MaxDepth,
		DisableRegistration:   i.cfg.DisableRegistration,
		AllowLoopbackMetadata: i.cfg.DevLoopbackClientMetadata,
		AdminAuth:             rt.isAdmin,
		OnEvent:               rt.auditEvent,
		Trail:                 rt.browser,
		ClientIP:              i.clientIP,
		Logger:                rt.log.With("issuer", i.cfg.Issuer),
	})
	if err != nil {
		return err
	}
	if err := srv.Start(context.Background()); err != nil {
		return err
	}
	i.srv.Store(srv)
	if rt.browser != nil {
		i.trail.Store(&rt.browser)
	}
	rt.log.Info("kavach issuer started", "issuer", i.cfg.Issuer, "store", i.cfg.Store)
	return nil
}

func (rt *Runtime) stopIssuers() {
	for _, i := range rt.issuers {
		// Kept in place: a request still in flight on a handler of this
		// configuration is answered by the closed server, as before.
		if srv := i.srv.Load(); srv != nil {
			_ = srv.Close()
		}
	}
	rt.closeBrowser()
}

// issuerByID is the issuer of this node an admin request names with
// ?issuer= (none: the first).
func (rt *Runtime) issuerByID(id string) (*Issuer, error) {
	if id == "" {
		return rt.issuers[0], nil
	}
	if i := rt.local[id]; i != nil {
		return i, nil
	}
	return nil, errors.New("unknown issuer")
}
