package idp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

// remoteKeys is a trusted IdP's JWK set fetched by URL: fetched at first
// use, again after JWKSMaxAge, and again when an assertion names a kid
// the set lacks, at most once per minRefetch (a rotated key is found at
// once, garbage kids cost one fetch per interval). One fetch at a time;
// a failed fetch keeps the previous set.
type remoteKeys struct {
	url        string
	client     *http.Client
	minRefetch time.Duration

	mu      sync.Mutex
	set     jwk.Set
	fetched time.Time // last successful fetch
	tried   time.Time // last attempt
	lastErr error     // of the last attempt
}

// lookup returns the keys that may have signed with kid ("" : all keys),
// refetching as described above.
func (k *remoteKeys) lookup(ctx context.Context, kid string) ([]jwk.Key, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	at := now()
	mayFetch := k.tried.IsZero() || at.Sub(k.tried) >= k.minRefetch
	if (k.set == nil || at.Sub(k.fetched) >= JWKSMaxAge) && mayFetch {
		k.lastErr = k.fetch(ctx, at)
		mayFetch = false
	}
	keys := k.match(kid)
	if len(keys) == 0 && kid != "" && k.set != nil && mayFetch {
		k.lastErr = k.fetch(ctx, at)
		keys = k.match(kid)
	}
	if k.set == nil {
		if k.lastErr == nil {
			return nil, errors.New("JWKS not fetched")
		}
		return nil, k.lastErr
	}
	return keys, nil
}

func (k *remoteKeys) match(kid string) []jwk.Key {
	if k.set == nil {
		return nil
	}
	var out []jwk.Key
	for i := 0; i < k.set.Len(); i++ {
		key, _ := k.set.Key(i)
		if kid == "" || key.KeyID() == kid {
			out = append(out, key)
		}
	}
	return out
}

func (k *remoteKeys) fetch(ctx context.Context, at time.Time) error {
	k.tried = at
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), HTTPTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := k.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("JWKS %s: HTTP %d", k.url, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxJWKSBytes+1))
	if err != nil {
		return err
	}
	if len(body) > MaxJWKSBytes {
		return fmt.Errorf("JWKS %s: larger than %d bytes", k.url, MaxJWKSBytes)
	}
	set, err := jwk.Parse(body)
	if err != nil {
		return fmt.Errorf("JWKS %s: %w", k.url, err)
	}
	// Only public keys meant for signatures: a private member or another
	// use is dropped, never trusted.
	pub := jwk.NewSet()
	for i := 0; i < set.Len(); i++ {
		key, _ := set.Key(i)
		if u := key.KeyUsage(); u != "" && u != string(jwk.ForSignature) {
			continue
		}
		if priv, err := jwk.IsPrivateKey(key); err != nil || priv {
			continue
		}
		_ = pub.AddKey(key)
	}
	if pub.Len() == 0 {
		return errors.New("JWKS " + k.url + ": no public signing keys")
	}
	k.set, k.fetched = pub, at
	return nil
}
