package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kavachgate/kavach/revocation"
)

// seedRevocations makes the set hold what was revoked before this process
// started (DESIGN.md §5): what the issuers' stores hold (the source of
// truth), or, without an issuer, the admin listener's journal. In memory
// mode the set starts empty with every process, so it is seeded at start,
// and a source that cannot be read stops the start (a gateway that cannot
// know what was revoked must not open as if nothing had been); in Redis
// mode the set is re-seeded whenever Redis has lost its data (the epoch
// is missing), looked at every ReseedCheck.
func (rt *Runtime) seedRevocations() error {
	if !rt.rev.redis {
		return rt.seed()
	}
	go func() {
		t := time.NewTicker(ReseedCheck)
		defer t.Stop()
		for {
			if st := rt.rev.svc.Status(); st.Fresh && st.EpochMissing {
				_ = rt.seed() // logged; retried at the next tick while the epoch is missing
			}
			select {
			case <-rt.done:
				return
			case <-t.C:
			}
		}
	}()
	return nil
}

// seed writes every source's live revocations into the set.
func (rt *Runtime) seed() error {
	var errs []error
	for _, i := range rt.issuers {
		srv := i.Server()
		if srv == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), SeedTimeout)
		n, err := srv.Reseed(ctx)
		cancel()
		if err != nil {
			rt.log.Error("seeding the revocation set from the issuer's store failed", "issuer", i.cfg.Issuer, "error", err)
			errs = append(errs, fmt.Errorf("seeding revocations from issuer %s: %w", i.cfg.Issuer, err))
			continue
		}
		rt.log.Info("revocation set seeded from the issuer's store", "issuer", i.cfg.Issuer, "entries", n)
	}
	if rt.journal != nil {
		entries, err := rt.journal.Load(time.Now())
		if err == nil && len(entries) > 0 {
			ctx, cancel := context.WithTimeout(context.Background(), SeedTimeout)
			err = rt.rev.svc.Reseed(ctx, entries)
			cancel()
		}
		if err != nil {
			rt.log.Error("seeding the revocation set from the admin journal failed", "file", rt.journal.Path(), "error", err)
			errs = append(errs, fmt.Errorf("seeding revocations from %s: %w", rt.journal.Path(), err))
		} else if len(entries) > 0 {
			rt.log.Info("revocation set seeded from the admin journal", "file", rt.journal.Path(), "entries", len(entries))
		}
	}
	return errors.Join(errs...)
}

// durableSet is the revocation set as the admin listener sees it: an
// entry is kept where a restart finds it before the set applies it, and
// one that cannot be kept is refused (503), never applied only in memory.
type durableSet struct {
	revocation.Set
	persist func(context.Context, revocation.Entry) error
}

func (d durableSet) Revoke(ctx context.Context, e revocation.Entry) error {
	if err := d.persist(ctx, e); err != nil {
		return err
	}
	return d.Set.Revoke(ctx, e)
}

// persistRevocation keeps an admin-listener revocation: in the store of
// every issuer of this process (which seeds the set at start and when
// Redis lost its data), else in the journal in the data directory.
func (rt *Runtime) persistRevocation(ctx context.Context, e revocation.Entry) error {
	if rt.journal != nil {
		return rt.journal.Append(e)
	}
	if len(rt.issuers) == 0 {
		return errors.New("no issuer store and no journal to keep the revocation")
	}
	for _, i := range rt.issuers {
		srv := i.Server()
		if srv == nil {
			return fmt.Errorf("issuer %s is not running", i.cfg.Issuer)
		}
		if err := srv.StoreRevocation(ctx, e); err != nil {
			return fmt.Errorf("issuer %s: %w", i.cfg.Issuer, err)
		}
	}
	return nil
}
