package node

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/kavachgate/kavach/token"
)

// loadKeys reads the trusted key files and makes the remote key sets of
// the issuers trusted by URL and of the external issuers (not fetched
// yet).
func (rt *Runtime) loadKeys() error {
	for _, tk := range rt.cfg.TrustedKeys {
		data, err := os.ReadFile(rt.opts.Resolve(tk.File))
		if err != nil {
			return fmt.Errorf("trusted_keys %s: %w", tk.Issuer, err)
		}
		set, err := jwk.Parse(data)
		if err != nil {
			return fmt.Errorf("trusted_keys %s: %s: %w", tk.Issuer, tk.File, err)
		}
		rt.files = append(rt.files, token.Issuer{ID: tk.Issuer, Keys: set})
	}
	remote := func(what, iss, jwks string) error {
		rk, err := token.NewRemoteKeys(token.RemoteOptions{
			Issuer:   iss,
			JWKSURL:  jwks,
			Refresh:  time.Duration(rt.cfg.KeyRefresh),
			OnUpdate: func(jwk.Set) { rt.rebuildKeys() },
			Logger:   rt.log,
		})
		if err != nil {
			return fmt.Errorf("%s %s: %w", what, iss, err)
		}
		rt.remotes = append(rt.remotes, rk)
		return nil
	}
	for _, iss := range rt.cfg.Issuers {
		if err := remote("issuer", iss, ""); err != nil {
			return err
		}
	}
	for _, ext := range rt.cfg.ExternalIssuers {
		if err := remote("external_issuer", ext.Issuer, ext.JWKS); err != nil {
			return err
		}
	}
	return nil
}

// keyRing assembles every issuer's current keys. Issuers trusted by URL
// have no keys until their first fetch; those running in this process
// give theirs directly.
func (rt *Runtime) keyRing() (*token.KeyRing, error) {
	issuers := append([]token.Issuer(nil), rt.files...)
	for i, iss := range rt.cfg.Issuers {
		keys := rt.remotes[i].Keys()
		if l := rt.local[iss]; l != nil {
			keys = l.set
		}
		issuers = append(issuers, token.Issuer{ID: iss, Keys: keys})
	}
	for i, ext := range rt.cfg.ExternalIssuers {
		algs := ext.Algorithms
		if len(algs) == 0 {
			algs = []string{"RS256"}
		}
		var sa []jwa.SignatureAlgorithm
		for _, s := range algs {
			sa = append(sa, jwa.SignatureAlgorithm(s))
		}
		types := ext.Types
		if len(types) == 0 {
			types = []string{token.TypeAccessToken, "JWT"}
		}
		issuers = append(issuers, token.Issuer{ID: ext.Issuer, External: true, Algorithms: sa, Types: types,
			Keys: rt.remotes[len(rt.cfg.Issuers)+i].Keys()})
	}
	return token.NewKeyRing(issuers...)
}

// rebuildKeys swaps in the keys after a set changed, then purges the
// verify cache so nothing verified with a withdrawn key is served.
func (rt *Runtime) rebuildKeys() {
	rt.ringMu.Lock()
	defer rt.ringMu.Unlock()
	ring, err := rt.keyRing()
	if err != nil {
		rt.log.Error("trusted keys rejected; keeping the previous set", "error", err)
		return
	}
	rt.gw.Verifier.SetKeyRing(ring)
	rt.gw.Cache.Purge()
}

// unknownKey is the gateway's nudge for a token signed with a key it does
// not know: refetch remote sets soon, and look at the local issuers' sets
// again, at most once per localKeysNudge (unknown kids are attacker
// input).
func (rt *Runtime) unknownKey() {
	for _, r := range rt.remotes {
		r.RefreshSoon()
	}
	if len(rt.local) > 0 {
		if t := time.Now().UnixNano(); t-rt.localCheck.Load() > int64(localKeysNudge) {
			rt.localCheck.Store(t)
			rt.refreshLocalKeys()
		}
	}
}

// startKeys fetches the remote key sets in the background, gives them
// FirstLoadWait to arrive, and watches the local issuers' rotations.
func (rt *Runtime) startKeys(ctx context.Context) {
	var fetching []*token.RemoteKeys
	for i, r := range rt.remotes {
		if i < len(rt.cfg.Issuers) && rt.local[rt.cfg.Issuers[i]] != nil {
			continue // keys come from the issuer in this process
		}
		go r.Run(ctx)
		fetching = append(fetching, r)
	}
	waitFirstKeys(fetching, FirstLoadWait)
	rt.keysOnce.Do(func() { close(rt.keysReady) })
	if len(rt.local) > 0 {
		go rt.watchLocalKeys(ctx)
	}
}

// waitFirstKeys gives remote key sets a moment to arrive, so a gateway
// that has just started does not answer 401 to every token (an issuer that
// is down costs at most wait; its keys then come with a later refresh).
func waitFirstKeys(remotes []*token.RemoteKeys, wait time.Duration) {
	deadline := time.Now().Add(wait)
	for _, r := range remotes {
		for r.LastSuccess().IsZero() && time.Now().Before(deadline) {
			time.Sleep(firstKeysPoll)
		}
	}
}

// refreshLocalKeys re-reads the key sets of the issuers in this process
// and rebuilds the ring when one changed (a rotation).
func (rt *Runtime) refreshLocalKeys() {
	changed := false
	for _, l := range rt.local {
		srv := l.srv.Load()
		if srv == nil {
			continue
		}
		doc := srv.JWKS()
		rt.ringMu.Lock()
		same := string(doc) == string(l.last)
		rt.ringMu.Unlock()
		if same {
			continue
		}
		set, err := jwk.Parse(doc)
		if err != nil {
			rt.log.Error("issuer key set unreadable", "issuer", l.cfg.Issuer, "error", err)
			continue
		}
		rt.ringMu.Lock()
		l.last, l.set = doc, set
		rt.ringMu.Unlock()
		changed = true
	}
	if changed {
		rt.rebuildKeys()
	}
}

// watchLocalKeys follows key rotations of the issuers in this process.
func (rt *Runtime) watchLocalKeys(ctx context.Context) {
	t := time.NewTicker(LocalKeysWatch)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			rt.refreshLocalKeys()
		}
	}
}
