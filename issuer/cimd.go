package issuer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kavachgate/kavach/issuer/store"
	"github.com/kavachgate/kavach/token"
)

// metadataCache fetches and caches client ID metadata documents: the
// client_id is an https URL whose document describes the client.
type metadataCache struct {
	allowLoopback bool
	client        *http.Client
	sem           chan struct{} // bounds concurrent fetches

	mu      sync.Mutex
	entries map[string]*cimdEntry
}

type cimdEntry struct {
	ready   chan struct{} // closed when client/err are set
	client  *store.Client
	err     error
	expires time.Time
}

// newMetadataCache returns a cache whose fetches refuse every address that
// is not public. allowLoopback (development and tests only) also permits
// http URLs on loopback hosts and dialing loopback addresses; private and
// other special addresses stay refused.
func newMetadataCache(allowLoopback bool) *metadataCache {
	c := &metadataCache{
		allowLoopback: allowLoopback,
		sem:           make(chan struct{}, cimdMaxInFlight),
		entries:       map[string]*cimdEntry{},
	}
	dialer := &net.Dialer{
		Timeout: cimdTimeout,
		// The check runs on the address actually dialed, after name
		// resolution, so a name that resolves (or rebinds) to an internal
		// address is refused (SSRF).
		Control: func(network, address string, _ syscall.RawConn) error {
			return checkDialAddr(network, address, allowLoopback)
		},
	}
	c.client = &http.Client{
		Timeout: cimdTimeout,
		Transport: &http.Transport{
			// No proxy: a proxy would dial on our behalf, past the check.
			Proxy:                  nil,
			DialContext:            dialer.DialContext,
			TLSHandshakeTimeout:    cimdTimeout,
			ResponseHeaderTimeout:  cimdTimeout,
			MaxResponseHeaderBytes: cimdMaxHeader,
			DisableKeepAlives:      true,
			ForceAttemptHTTP2:      true,
		},
		// The document must be at the client_id URL itself.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return c
}

// cimdError is a failure whose text is safe to show the client.
type cimdError string

func (e cimdError) Error() string { return string(e) }

const errCIMDBusy = cimdError("too many client metadata fetches in flight, try again")

// errClientRevoked: the operator revoked the client, by its URL or its
// host (POST /v1/clients/…/revoke).
const errClientRevoked = cimdError("this client has been revoked by the server's operator")

// metadataClient returns the client a client ID metadata document URL
// describes, unless the operator revoked it: checked in the store before
// any fetch or cache, on every use, so a revocation holds at once, on
// every issuer sharing the store and across restarts. An error that is not
// a cimdError is the server's (the store's), never a verdict on the
// client.
func (s *Server) metadataClient(ctx context.Context, clientID string) (*store.Client, error) {
	if err := s.cimd.checkClientIDURL(clientID); err != nil {
		return nil, err
	}
	revoked, err := s.store.MetadataClientRevoked(ctx, clientID)
	if err != nil {
		return nil, fmt.Errorf("issuer: checking the revocation of a metadata document client: %w", err)
	}
	if revoked {
		return nil, errClientRevoked
	}
	return s.cimd.lookup(ctx, clientID)
}

// lookup returns the client the document at clientID describes, from the
// cache or fetched.
func (c *metadataCache) lookup(ctx context.Context, clientID string) (*store.Client, error) {
	if err := c.checkClientIDURL(clientID); err != nil {
		return nil, err
	}
	at := now()
	c.mu.Lock()
	e, ok := c.entries[clientID]
	if ok {
		select {
		case <-e.ready:
			if !at.Before(e.expires) {
				delete(c.entries, clientID)
				ok = false
			}
		default: // a fetch is in flight: wait for it
		}
	}
	if !ok {
		if len(c.entries) >= cimdMaxEntries {
			c.evictLocked(at)
		}
		e = &cimdEntry{ready: make(chan struct{})}
		c.entries[clientID] = e
		c.mu.Unlock()
		// Waiters share this fetch, so one caller going away does not
		// cancel it; it has its own time limit.
		e.client, e.err = c.fetch(context.WithoutCancel(ctx), clientID)
		ttl := cimdCacheTTL
		switch {
		case errors.Is(e.err, errCIMDBusy):
			ttl = 0 // says nothing about the document
		case e.err != nil:
			ttl = cimdFailTTL
		}
		e.expires = now().Add(ttl)
		close(e.ready)
		return cloneClient(e.client), e.err
	}
	c.mu.Unlock()
	select {
	case <-e.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return cloneClient(e.client), e.err
}

// evictLocked makes room: expired entries first, else any finished one (a
// cache entry is only an optimisation).
func (c *metadataCache) evictLocked(at time.Time) {
	var victim string
	for id, e := range c.entries {
		select {
		case <-e.ready:
		default:
			continue
		}
		if !at.Before(e.expires) {
			delete(c.entries, id)
		} else if victim == "" {
			victim = id
		}
	}
	if len(c.entries) >= cimdMaxEntries && victim != "" {
		delete(c.entries, victim)
	}
}

func cloneClient(c *store.Client) *store.Client {
	if c == nil {
		return nil
	}
	out := *c
	out.RedirectURIs = append([]string(nil), c.RedirectURIs...)
	return &out
}

// checkClientIDURL applies the draft's rules for a client identifier URL
// (§3: https, a path, no dot segments, no fragment, no userinfo; a query
// is allowed), and ours: it is also the client_id claim and, in the code
// flow, agents[0] of the token, so it must be a valid token id
// (printable ASCII without space, quote, backslash or comma, at most
// token.MaxIDLen bytes).
func (c *metadataCache) checkClientIDURL(raw string) error {
	if len(raw) > token.MaxIDLen {
		return cimdError("client_id URL too long")
	}
	for i := 0; i < len(raw); i++ {
		if b := raw[i]; b <= ' ' || b >= 0x7f || b == '"' || b == '\\' || b == ',' {
			return cimdError("client_id URL has a character that is not allowed")
		}
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return cimdError("client_id is not an absolute URL")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !c.allowLoopback || !isLoopbackHost(u.Hostname()) {
			return cimdError("client_id URL must be https")
		}
	default:
		return cimdError("client_id URL must be https")
	}
	if u.User != nil || u.Fragment != "" || strings.Contains(raw, "#") {
		return cimdError("client_id URL must have no userinfo or fragment")
	}
	if u.Path == "" || u.Path == "/" {
		return cimdError("client_id URL must have a path")
	}
	for seg := range strings.SplitSeq(u.EscapedPath(), "/") {
		switch strings.ToLower(seg) {
		case ".", "..", "%2e", "%2e%2e", ".%2e", "%2e.":
			return cimdError("client_id URL must have no dot segments")
		}
	}
	// An IP literal is judged before any socket exists; names are judged
	// at dial time, on the address they resolve to.
	if ip, err := netip.ParseAddr(strings.Trim(u.Hostname(), "[]")); err == nil && !publicAddr(ip, c.allowLoopback) {
		return cimdError("client_id URL host is not a public address")
	}
	return nil
}

// cimdDocument is the part of a client metadata document (RFC 7591 §2
// names) we read; everything else is ignored.
type cimdDocument struct {
	ClientID                string   `json:"client_id"`
	ClientName              string   `json:"client_name"`
	RedirectURIs            []string `json:"redirect_uris"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	GrantTypes              []string `json:"grant_types"`
	ResponseTypes           []string `json:"response_types"`
	ClientSecret            string   `json:"client_secret"`
}

func (c *metadataCache) fetch(ctx context.Context, clientID string) (*store.Client, error) {
	select {
	case c.sem <- struct{}{}:
		defer func() { <-c.sem }()
	default:
		return nil, errCIMDBusy
	}
	ctx, cancel := context.WithTimeout(ctx, cimdTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, clientID, nil)
	if err != nil {
		return nil, cimdError("client_id is not a valid URL")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		var ae *addrError
		if errors.As(err, &ae) {
			return nil, cimdError("client_id URL resolves to an address that is not public")
		}
		return nil, cimdError("could not fetch the client metadata document")
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		if resp.StatusCode >= 300 && resp.StatusCode < 400 {
			return nil, cimdError("the client metadata document URL redirects (redirects are not followed)")
		}
		return nil, cimdError(fmt.Sprintf("the client metadata document URL answered %d", resp.StatusCode))
	}
	mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
		return nil, cimdError("the client metadata document is not application/json")
	}
	if resp.ContentLength > cimdMaxBody {
		return nil, cimdError(fmt.Sprintf("the client metadata document is larger than %d bytes", cimdMaxBody))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, cimdMaxBody+1))
	if err != nil {
		return nil, cimdError("could not read the client metadata document")
	}
	if len(body) > cimdMaxBody {
		return nil, cimdError(fmt.Sprintf("the client metadata document is larger than %d bytes", cimdMaxBody))
	}
	var doc cimdDocument
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, cimdError("the client metadata document is not a JSON object")
	}
	return doc.client(clientID)
}

// client checks a document against its URL and returns the client it
// describes.
func (d *cimdDocument) client(clientID string) (*store.Client, error) {
	// draft §4.1: the document's client_id must equal the URL it was
	// fetched from, compared as strings.
	if d.ClientID != clientID {
		return nil, cimdError("the client metadata document's client_id is not its URL")
	}
	// draft §4.1: no shared secret can be established by a document.
	if d.ClientSecret != "" {
		return nil, cimdError("a client metadata document must not contain client_secret")
	}
	if m := d.TokenEndpointAuthMethod; m != "" && m != "none" {
		return nil, cimdError("only public clients (token_endpoint_auth_method none) are supported")
	}
	if err := checkGrantAndResponseTypes(d.GrantTypes, d.ResponseTypes, false); err != nil {
		return nil, cimdError(err.Error())
	}
	if len(d.RedirectURIs) == 0 {
		return nil, cimdError("the client metadata document has no redirect_uris")
	}
	if len(d.RedirectURIs) > maxRedirectURIs {
		return nil, cimdError("the client metadata document has too many redirect_uris")
	}
	for _, ru := range d.RedirectURIs {
		if len(ru) > maxRedirectURILen {
			return nil, cimdError("a redirect_uri is too long")
		}
		if err := checkRedirectURI(ru); err != nil {
			return nil, cimdError("redirect_uris: " + err.Error())
		}
	}
	name, err := checkClientName(d.ClientName)
	if err != nil {
		return nil, cimdError(err.Error())
	}
	return &store.Client{
		ID:           clientID,
		Name:         name,
		Kind:         store.ClientPublic,
		RedirectURIs: append([]string(nil), d.RedirectURIs...),
	}, nil
}

// addrError is a dial refused by the address check.
type addrError struct{ addr string }

func (e *addrError) Error() string { return "refusing to connect to non-public address " + e.addr }

// checkDialAddr is the dialer's Control hook: address is the resolved
// IP:port about to be connected.
func checkDialAddr(network, address string, allowLoopback bool) error {
	if network != "tcp4" && network != "tcp6" {
		return &addrError{address}
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil || !publicAddr(ap.Addr(), allowLoopback) {
		return &addrError{address}
	}
	return nil
}

// Special-purpose ranges a metadata fetch must never reach, beyond what
// netip.Addr's predicates cover (RFC 6890 and the IANA registries).
var nonPublicPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),   // CGNAT shared space (RFC 6598)
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // TEST-NET-1
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"), // TEST-NET-2
	netip.MustParsePrefix("203.0.113.0/24"),  // TEST-NET-3
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, and broadcast
	netip.MustParsePrefix("::/96"),           // IPv4-compatible (deprecated)
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use NAT64
	netip.MustParsePrefix("100::/64"),        // discard-only
	netip.MustParsePrefix("2001::/23"),       // IETF protocol assignments (Teredo, ORCHID, …)
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("fec0::/10"),       // site-local (deprecated)
}

// nat64 embeds an IPv4 address in its last 32 bits (RFC 6052).
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// sixToFour embeds an IPv4 address in bits 16–48 (RFC 3056).
var sixToFour = netip.MustParsePrefix("2002::/16")

// publicAddr reports whether ip is a public unicast address: not
// loopback (unless allowLoopback), private (RFC 1918, IPv6 ULA),
// link-local, unspecified, multicast, CGNAT or another special range, and
// not an IPv6 form embedding such an IPv4 address.
func publicAddr(ip netip.Addr, allowLoopback bool) bool {
	ip = ip.Unmap()
	if !ip.IsValid() || ip.Zone() != "" {
		return false
	}
	if ip.IsLoopback() {
		return allowLoopback
	}
	if ip.IsPrivate() || ip.IsUnspecified() || ip.IsMulticast() ||
		ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast() {
		return false
	}
	for _, p := range nonPublicPrefixes {
		if p.Contains(ip) {
			return false
		}
	}
	if ip.Is6() {
		b := ip.As16()
		switch {
		case nat64.Contains(ip):
			return publicAddr(netip.AddrFrom4([4]byte(b[12:16])), false)
		case sixToFour.Contains(ip):
			return publicAddr(netip.AddrFrom4([4]byte(b[2:6])), false)
		}
	}
	return true
}
