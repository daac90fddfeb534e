package token

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

// Well-known URI suffixes of the discovery documents.
const (
	wellKnownOAuth = "/.well-known/oauth-authorization-server" // RFC 8414 §3
	wellKnownOIDC  = "/.well-known/openid-configuration"       // OIDC Discovery 1.0 §4
)

// RemoteOptions configure a RemoteKeys. Zero values mean the defaults.
type RemoteOptions struct {
	// Issuer is the issuer identifier, compared exactly. When JWKSURL is
	// empty the JWKS location is discovered from the issuer's RFC 8414
	// metadata: for an issuer with a path component the well-known suffix is
	// inserted between host and path (RFC 8414 §3.1:
	// https://a.example/t1 → https://a.example/.well-known/oauth-authorization-server/t1).
	// If that answers 404, OIDC Discovery's
	// "<issuer>/.well-known/openid-configuration" is tried. The document's
	// "issuer" must equal Issuer exactly (RFC 8414 §3.3) and its "jwks_uri"
	// must be present. Required; https, or http on a loopback host.
	Issuer string
	// JWKSURL, when set, is fetched directly and no discovery happens
	// (external issuers configured with `jwks <url>`). https, or http on a
	// loopback host. Default: discovered from Issuer.
	JWKSURL string
	// Client makes the requests. Redirects are never followed, whatever the
	// client says: a redirect could lead off https. Default: an http.Client
	// with a 10 s timeout.
	Client *http.Client
	// Refresh is the interval between background fetches once a fetch has
	// succeeded, and the cap of the retry backoff. Default: 5 minutes.
	Refresh time.Duration
	// MinInterval is the least time between the start of the last fetch
	// (scheduled, forced or failed) and a fetch triggered by RefreshSoon.
	// Default: 30 s.
	MinInterval time.Duration
	// OnUpdate is called with every newly fetched set that differs from the
	// last good one, from the goroutine that fetched it, one call at a time.
	// The gateway rebuilds its KeyRing there. The set must not be modified.
	// Default: none.
	OnUpdate func(jwk.Set)
	// Logger receives operational messages: a failed fetch or a refused
	// set at Warn, a new or changed set at Info, an unchanged one at Debug.
	// Messages name URLs and key ids, never key material. Default: discard.
	Logger *slog.Logger
}

// RemoteKeys keeps one issuer's public JWK set fresh over HTTP.
//
// Run does the background work; Keys serves the last good set, which is kept
// for as long as the issuer is unreachable or publishes something refused. A
// fetched set is refused when the response is not 200, is over 1 MiB, does not
// parse as a JWK set, has no keys, or has a key that is not an asymmetric
// public key (a private or symmetric key in a JWKS means the issuer is
// leaking secrets; trusting it would be worse).
type RemoteKeys struct {
	issuer      string
	metadataURL string // RFC 8414 well-known URI, when discovering
	oidcURL     string // OIDC Discovery fallback, when discovering
	jwksURL     string // configured JWKS URL, or "" to discover
	client      *http.Client
	refresh     time.Duration
	minInterval time.Duration
	backoff     time.Duration // first retry delay
	onUpdate    func(jwk.Set)
	logger      *slog.Logger
	clock       func() time.Time

	// soon carries RefreshSoon's requests to Run; one buffered request is
	// enough, more would only be coalesced.
	soon chan struct{}

	// fetchMu serialises fetches, so Fetch, Run and OnUpdate never overlap
	// and OnUpdate sees sets in the order they were fetched.
	fetchMu sync.Mutex

	mu          sync.Mutex // guards the fields below; never held over I/O
	set         jwk.Set
	setJSON     []byte // set as encoded by jwx, to tell a change
	lastSuccess time.Time
	lastAttempt time.Time
}

// NewRemoteKeys checks opts and returns a RemoteKeys that has fetched
// nothing yet. The issuer, the JWKS URL when given and (at fetch time) a
// discovered jwks_uri must be absolute https URLs, except that http is
// allowed when the host is "localhost" or a loopback IP; none may have
// userinfo or a fragment, and an issuer that is discovered from may have no
// query (RFC 8414 §2). Errors name the bad URL.
func NewRemoteKeys(opts RemoteOptions) (*RemoteKeys, error) {
	if opts.Issuer == "" {
		return nil, errors.New("remote keys: issuer is required")
	}
	iss, err := checkRemoteURL("issuer", opts.Issuer)
	if err != nil {
		return nil, err
	}
	r := &RemoteKeys{
		issuer:      opts.Issuer,
		jwksURL:     opts.JWKSURL,
		refresh:     opts.Refresh,
		minInterval: opts.MinInterval,
		backoff:     remoteBackoffStart,
		onUpdate:    opts.OnUpdate,
		logger:      opts.Logger,
		clock:       func() time.Time { return now() },
		soon:        make(chan struct{}, 1),
	}
	if r.jwksURL != "" {
		if _, err := checkRemoteURL("JWKS URL", r.jwksURL); err != nil {
			return nil, err
		}
	} else {
		// RFC 8414 §2: the issuer identifier has no query or fragment, so
		// the well-known URI built from it is well defined.
		if iss.RawQuery != "" || iss.ForceQuery {
			return nil, &remoteURLError{what: "issuer", url: iss.Redacted(), reason: "has a query (RFC 8414 §2)"}
		}
		r.metadataURL, r.oidcURL = wellKnownURLs(iss)
	}
	switch {
	case r.refresh < 0:
		return nil, fmt.Errorf("remote keys for %q: negative refresh interval", opts.Issuer)
	case r.refresh == 0:
		r.refresh = DefaultRemoteRefresh
	}
	switch {
	case r.minInterval < 0:
		return nil, fmt.Errorf("remote keys for %q: negative minimum interval", opts.Issuer)
	case r.minInterval == 0:
		r.minInterval = DefaultRemoteMinInterval
	}
	client := http.Client{Timeout: defaultRemoteTimeout}
	if opts.Client != nil {
		client = *opts.Client
	}
	// A followed redirect would be fetched without the checks above (it
	// could lead to plain http); the 3xx is returned and refused instead.
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	r.client = &client
	if r.logger == nil {
		r.logger = slog.New(slog.DiscardHandler)
	}
	return r, nil
}

// remoteURLError is a URL RemoteKeys refuses to fetch.
type remoteURLError struct {
	what   string // which option or document field
	url    string // the URL, password redacted
	reason string
}

func (e *remoteURLError) Error() string {
	return fmt.Sprintf("remote keys: %s %s: %s", e.what, quoteURL(e.url), e.reason)
}

// checkRemoteURL applies the transport rules to a URL taken from config or
// from an issuer's metadata.
func checkRemoteURL(what, raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		shown := raw
		if strings.Contains(raw, "@") {
			shown = "(withheld: it may contain a password)"
		}
		return nil, &remoteURLError{what: what, url: shown, reason: "not a URL"}
	}
	bad := func(reason string) (*url.URL, error) {
		return nil, &remoteURLError{what: what, url: u.Redacted(), reason: reason}
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http":
		if !isLoopbackHost(u.Hostname()) {
			return bad("must be https (http only for localhost or a loopback address)")
		}
	default:
		return bad("must be an absolute https URL")
	}
	if u.Opaque != "" || u.Hostname() == "" {
		return bad("has no host")
	}
	if u.User != nil {
		return bad("must not contain userinfo")
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return bad("must not have a fragment")
	}
	return u, nil
}

// quoteURL quotes a URL or a value from a fetched document for a message:
// escaped, and bounded since documents come from the network.
func quoteURL(s string) string {
	const max = 512
	if len(s) > max {
		s = s[:max] + "…"
	}
	return strconv.Quote(s)
}

// isLoopbackHost reports whether host (no port, no brackets) is "localhost"
// or a loopback IP literal. Other names are not resolved: what a name
// resolves to can change after the check.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// wellKnownURLs returns the metadata locations for an issuer.
func wellKnownURLs(iss *url.URL) (oauth, oidc string) {
	origin := iss.Scheme + "://" + iss.Host
	// RFC 8414 §3.1 and OIDC Discovery §4: a terminating "/" of the path is
	// removed first.
	path := strings.TrimSuffix(iss.EscapedPath(), "/")
	// RFC 8414 §3.1: the well-known suffix goes between host and path.
	oauth = origin + wellKnownOAuth + path
	// OIDC Discovery §4: the suffix is appended to the issuer.
	oidc = origin + path + wellKnownOIDC
	return oauth, oidc
}

// Keys returns the last good set, or nil before the first successful fetch.
// The set is shared: do not modify it.
func (r *RemoteKeys) Keys() jwk.Set {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.set
}

// LastSuccess returns when the last fetch succeeded (whether or not the set
// changed), or the zero time before the first success.
func (r *RemoteKeys) LastSuccess() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastSuccess
}

// RefreshSoon asks Run to fetch now, typically because a token names a kid
// the current set lacks. It never blocks. It does nothing when a fetch
// started less than MinInterval ago, so a flood of tokens with made-up kids
// costs the issuer at most one request per MinInterval.
func (r *RemoteKeys) RefreshSoon() {
	if !r.mayFetchSoon() {
		return
	}
	select {
	case r.soon <- struct{}{}:
	default: // a request is already pending
	}
}

// mayFetchSoon reports whether MinInterval has passed since the last fetch
// started.
func (r *RemoteKeys) mayFetchSoon() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastAttempt.IsZero() || r.clock().Sub(r.lastAttempt) >= r.minInterval
}

// Run fetches at once, retries failures with exponential backoff (1 s,
// doubling, capped at Refresh), then fetches every Refresh, and serves
// RefreshSoon requests in between. It returns when ctx is done, also in the
// middle of a fetch. The last good set is kept while the issuer is down.
// Call Run once per RemoteKeys.
func (r *RemoteKeys) Run(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	var delay time.Duration // current backoff; 0 after a success
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-r.soon:
			// Checked again here: requests queued while a fetch was running
			// must not cause a second one right after it.
			if !r.mayFetchSoon() {
				continue
			}
			timer.Stop()
		}
		err := r.fetch(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			delay = 0
			timer.Reset(r.refresh)
			continue
		}
		delay = nextBackoff(delay, r.backoff, r.refresh)
		r.logFailure(err, delay)
		timer.Reset(delay)
	}
}

// nextBackoff is the wait after a failed fetch when the previous wait was
// prev (0 after a success): start, then doubling, never more than limit.
func nextBackoff(prev, start, limit time.Duration) time.Duration {
	switch {
	case prev <= 0:
		return min(start, limit)
	case prev > limit/2: // also keeps 2*prev from overflowing
		return limit
	}
	return 2 * prev
}

// Fetch fetches now (discovering the JWKS location first when it was not
// configured), and on success stores the set and, when it changed, passes it
// to OnUpdate. On failure the last good set stays and the error is logged
// and returned. It waits for a fetch already running to finish first.
func (r *RemoteKeys) Fetch(ctx context.Context) error {
	err := r.fetch(ctx)
	if err != nil {
		r.logFailure(err, 0)
	}
	return err
}

func (r *RemoteKeys) logFailure(err error, retry time.Duration) {
	keeping := "no keys yet"
	if t := r.LastSuccess(); !t.IsZero() {
		keeping = "the set fetched at " + t.UTC().Format(time.RFC3339)
	}
	attrs := []any{"issuer", r.issuer, "error", err.Error(), "keeping", keeping}
	if retry > 0 {
		attrs = append(attrs, "retry_in", retry)
	}
	r.logger.Warn("fetching issuer keys failed", attrs...)
}

func (r *RemoteKeys) fetch(ctx context.Context) error {
	r.fetchMu.Lock()
	defer r.fetchMu.Unlock()
	r.mu.Lock()
	r.lastAttempt = r.clock()
	r.mu.Unlock()

	jwksURL := r.jwksURL
	if jwksURL == "" {
		var err error
		if jwksURL, err = r.discover(ctx); err != nil {
			return err
		}
	}
	body, _, err := r.get(ctx, jwksURL, "application/jwk-set+json, application/json")
	if err != nil {
		return err
	}
	set, err := parseRemoteSet(body)
	if err != nil {
		return fmt.Errorf("JWK set from %s: %w", quoteURL(jwksURL), err)
	}
	encoded, err := json.Marshal(set)
	if err != nil {
		return fmt.Errorf("JWK set from %s: %w", quoteURL(jwksURL), err)
	}

	r.mu.Lock()
	changed := r.set == nil || !bytes.Equal(encoded, r.setJSON)
	if changed {
		r.set, r.setJSON = set, encoded
	}
	r.lastSuccess = r.clock()
	r.mu.Unlock()
	if !changed {
		r.logger.Debug("issuer keys unchanged", "issuer", r.issuer)
		return nil
	}
	r.logger.Info("issuer keys updated", "issuer", r.issuer, "jwks_uri", jwksURL, "kids", setKIDs(set))
	if r.onUpdate != nil {
		r.onUpdate(set)
	}
	return nil
}

// setKIDs lists the key ids of set, for the log (never key material).
func setKIDs(set jwk.Set) []string {
	kids := make([]string, 0, set.Len())
	for i := range set.Len() {
		if k, ok := set.Key(i); ok {
			kids = append(kids, k.KeyID())
		}
	}
	return kids
}

// discover reads the issuer's metadata and returns its checked jwks_uri.
func (r *RemoteKeys) discover(ctx context.Context) (string, error) {
	metaURL := r.metadataURL
	body, status, err := r.get(ctx, metaURL, "application/json")
	if status == http.StatusNotFound {
		// Not an RFC 8414 server: try OIDC Discovery (RFC 8414 §5 notes the
		// two live side by side). Only a 404 falls back; any other failure
		// is an error, so a broken server is reported rather than masked.
		metaURL = r.oidcURL
		body, _, err = r.get(ctx, metaURL, "application/json")
	}
	if err != nil {
		return "", err
	}
	// Exact member names: encoding/json's struct decoding would also accept
	// "Issuer" or "JWKS_URI".
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(body, &doc); err != nil {
		return "", fmt.Errorf("metadata at %s is not a JSON object", quoteURL(metaURL))
	}
	var iss, jwksURI string
	if raw, ok := doc["issuer"]; !ok || json.Unmarshal(raw, &iss) != nil {
		return "", fmt.Errorf("metadata at %s: no issuer string", quoteURL(metaURL))
	}
	// RFC 8414 §3.3 (and OIDC Discovery §4.3): the issuer in the document
	// must be identical to the one the document was looked up for, or one
	// issuer could publish keys in another's name.
	if iss != r.issuer {
		return "", fmt.Errorf("metadata at %s names issuer %s, want exactly %s", quoteURL(metaURL), quoteURL(iss), quoteURL(r.issuer))
	}
	if raw, ok := doc["jwks_uri"]; !ok || json.Unmarshal(raw, &jwksURI) != nil || jwksURI == "" {
		return "", fmt.Errorf("metadata at %s: no jwks_uri", quoteURL(metaURL))
	}
	if _, err := checkRemoteURL("jwks_uri", jwksURI); err != nil {
		return "", fmt.Errorf("metadata at %s: %w", quoteURL(metaURL), err)
	}
	return jwksURI, nil
}

// get fetches u and returns the body of a 200 response, at most
// maxRemoteDocument bytes. The status is returned also with an error, so the
// caller can tell a 404.
func (r *RemoteKeys) get(ctx context.Context, u, accept string) ([]byte, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("GET %s: %w", quoteURL(u), err)
	}
	req.Header.Set("Accept", accept)
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, 0, err // a *url.Error, naming the URL
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		// Drain a little so the connection can be reused; never echo it.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		if resp.StatusCode >= 300 && resp.StatusCode < 400 {
			return nil, resp.StatusCode, fmt.Errorf("GET %s: status %d (redirects are not followed)", quoteURL(u), resp.StatusCode)
		}
		return nil, resp.StatusCode, fmt.Errorf("GET %s: status %d", quoteURL(u), resp.StatusCode)
	}
	if resp.ContentLength > maxRemoteDocument {
		return nil, resp.StatusCode, fmt.Errorf("GET %s: body of %d bytes exceeds %d", quoteURL(u), resp.ContentLength, maxRemoteDocument)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxRemoteDocument+1))
	if err != nil {
		return nil, resp.StatusCode, fmt.Errorf("GET %s: %w", quoteURL(u), err)
	}
	if len(body) > maxRemoteDocument {
		return nil, resp.StatusCode, fmt.Errorf("GET %s: body exceeds %d bytes", quoteURL(u), maxRemoteDocument)
	}
	return body, resp.StatusCode, nil
}

// parseRemoteSet parses a fetched JWKS and refuses sets that must never be
// trusted: empty ones, and any with a key that is not an asymmetric public
// key. Further checks (kid, use, alg, key size) are NewKeyRing's.
func parseRemoteSet(body []byte) (jwk.Set, error) {
	set, err := jwk.Parse(body)
	if err != nil {
		return nil, err
	}
	if set.Len() == 0 {
		return nil, errors.New("the set has no keys")
	}
	for i := 0; i < set.Len(); i++ {
		key, _ := set.Key(i)
		private, err := jwk.IsPrivateKey(key)
		switch {
		case err != nil:
			return nil, fmt.Errorf("key %d (kid %s) is not an asymmetric key", i, quoteURL(key.KeyID()))
		case private:
			return nil, fmt.Errorf("key %d (kid %s) is a private key", i, quoteURL(key.KeyID()))
		}
	}
	return set, nil
}
