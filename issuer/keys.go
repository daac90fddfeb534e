package issuer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"

	"github.com/kavachgate/kavach/issuer/store"
	"github.com/kavachgate/kavach/token"
)

// keyManager holds the issuer's signing keys as the store has them. A key
// is published (JWKS) from its creation until its tokens have expired, and
// signs from ActiveAt until a newer key becomes active (DESIGN.md §7: on
// rotation a new key is published one JWKS refresh interval before it
// signs, so no gateway sees a token signed by a key it does not know).
type keyManager struct {
	st      store.Store
	iss     string
	maxLife time.Duration

	mu       sync.RWMutex
	keys     []loadedKey // oldest first
	set      []byte      // the JWKS document
	verify   *token.Verifier
	loadedAt time.Time
}

type loadedKey struct {
	rec *store.SigningKey
	key *token.SigningKey
}

func newKeyManager(st store.Store, iss string, maxLife time.Duration) *keyManager {
	return &keyManager{st: st, iss: iss, maxLife: maxLife, verify: token.NewVerifier(nil, token.VerifierOptions{MaxLifetime: maxLife})}
}

// load reads the keys from the store, creating the first key when there
// is none (active at once: nobody can have cached an older key set).
func (km *keyManager) load(ctx context.Context, at time.Time) error {
	recs, err := km.st.ListSigningKeys(ctx)
	if err != nil {
		return err
	}
	if len(recs) == 0 {
		k, err := newStoredKey(at, at)
		if err != nil {
			return err
		}
		if err := km.st.AddSigningKey(ctx, k); err != nil && !errors.Is(err, store.ErrExists) {
			return err
		}
		if recs, err = km.st.ListSigningKeys(ctx); err != nil {
			return err
		}
	}
	return km.install(recs, at)
}

func newStoredKey(created, active time.Time) (*store.SigningKey, error) {
	k, err := token.GenerateSigningKey(jwa.EdDSA)
	if err != nil {
		return nil, err
	}
	priv, err := json.Marshal(k)
	if err != nil {
		return nil, err
	}
	return &store.SigningKey{KID: k.KID, Private: priv, CreatedAt: created, ActiveAt: active}, nil
}

func (km *keyManager) install(recs []*store.SigningKey, at time.Time) error {
	keys := make([]loadedKey, 0, len(recs))
	for _, r := range recs {
		k, err := token.ParseSigningKey(r.Private)
		if err != nil {
			return fmt.Errorf("key %s: %w", r.KID, err)
		}
		keys = append(keys, loadedKey{rec: r, key: k})
	}
	km.mu.Lock()
	defer km.mu.Unlock()
	km.keys = keys
	km.loadedAt = at
	return km.rebuild(at)
}

// published reports whether k belongs in the JWKS at time at.
func (km *keyManager) published(k *store.SigningKey, at time.Time) bool {
	if at.Before(k.CreatedAt) {
		return false
	}
	if !k.ExpiresAt.IsZero() {
		return at.Before(k.ExpiresAt)
	}
	return k.RetiredAt.IsZero() || at.Before(k.RetiredAt.Add(km.maxLife+2*token.Leeway))
}

// rebuild renders the JWKS and the verifier's key ring; km.mu is held.
func (km *keyManager) rebuild(at time.Time) error {
	var pub []*token.SigningKey
	for _, k := range km.keys {
		if km.published(k.rec, at) {
			pub = append(pub, k.key)
		}
	}
	set, err := token.PublicSet(pub...)
	if err != nil {
		return err
	}
	doc, err := json.Marshal(set)
	if err != nil {
		return err
	}
	ring, err := token.NewKeyRing(token.Issuer{ID: km.iss, Keys: set})
	if err != nil {
		return err
	}
	km.set = doc
	km.verify.SetKeyRing(ring)
	return nil
}

// signer returns the key that signs at time at: the newest active one.
func (km *keyManager) signer(at time.Time) (*token.SigningKey, error) {
	km.mu.RLock()
	defer km.mu.RUnlock()
	for i := len(km.keys) - 1; i >= 0; i-- {
		r := km.keys[i].rec
		if !at.Before(r.ActiveAt) && (r.RetiredAt.IsZero() || at.Before(r.RetiredAt)) {
			return km.keys[i].key, nil
		}
	}
	// Every key is retired or not yet active: keep signing with the newest
	// key that has ever been active rather than fail.
	for i := len(km.keys) - 1; i >= 0; i-- {
		if !at.Before(km.keys[i].rec.ActiveAt) {
			return km.keys[i].key, nil
		}
	}
	return nil, errors.New("no signing key is active")
}

func (km *keyManager) jwks(at time.Time) []byte {
	km.mu.Lock()
	defer km.mu.Unlock()
	// Keys enter and leave the set with time, not only with loads.
	if err := km.rebuild(at); err != nil {
		return km.set
	}
	return km.set
}

func (km *keyManager) verifier() *token.Verifier { return km.verify }

// records lists the keys as loaded.
func (km *keyManager) records() []*store.SigningKey {
	km.mu.RLock()
	defer km.mu.RUnlock()
	out := make([]*store.SigningKey, len(km.keys))
	for i, k := range km.keys {
		out[i] = k.rec
	}
	return out
}

// rotate adds a key that is published now and signs from at+ahead; the
// keys signing until then are retired at that moment (and stay published
// until their tokens have expired).
func (km *keyManager) rotate(ctx context.Context, at time.Time, ahead time.Duration) (*store.SigningKey, error) {
	k, err := newStoredKey(at, at.Add(ahead))
	if err != nil {
		return nil, err
	}
	if err := km.st.AddSigningKey(ctx, k); err != nil {
		return nil, err
	}
	km.mu.RLock()
	var retire []string
	for _, old := range km.keys {
		if old.rec.RetiredAt.IsZero() {
			retire = append(retire, old.rec.KID)
		}
	}
	km.mu.RUnlock()
	for _, kid := range retire {
		if err := km.st.RetireSigningKey(ctx, kid, k.ActiveAt); err != nil {
			return nil, err
		}
	}
	return k, km.load(ctx, at)
}

// isLoopbackHost reports whether host is "localhost" or a loopback IP
// literal (names are not resolved).
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
