package issuer

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// docServer serves a client metadata document at /client.json and counts
// every request it receives.
type docServer struct {
	*httptest.Server
	hits atomic.Int64
	mu   sync.Mutex
	doc  func(id string) any // the document for the URL it is served at
}

func (d *docServer) setDoc(f func(id string) any) (prev func(id string) any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	prev, d.doc = d.doc, f
	return prev
}

func (d *docServer) document(id string) any {
	d.mu.Lock()
	f := d.doc
	d.mu.Unlock()
	return f(id)
}

func newDocServer(t *testing.T, tlsServer bool) *docServer {
	d := &docServer{}
	d.doc = func(id string) any {
		return map[string]any{
			"client_id": id, "client_name": "Doc Client", "redirect_uris": []string{testRedirect},
			"token_endpoint_auth_method": "none", "logo_uri": "https://ignored.example/logo.png",
		}
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.hits.Add(1)
		switch r.URL.Path {
		case "/client.json":
			w.Header().Set("Content-Type", "application/json")
			scheme := "http"
			if r.TLS != nil {
				scheme = "https"
			}
			// The query is part of the URL, so of the client_id (one host
			// can serve several clients this way).
			_ = json.NewEncoder(w).Encode(d.document(scheme + "://" + r.Host + r.URL.RequestURI()))
		case "/redirect.json":
			http.Redirect(w, r, "/client.json", http.StatusFound)
		case "/big.json":
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"client_name":"` + strings.Repeat("x", cimdMaxBody) + `"}`))
		case "/text.json":
			w.Header().Set("Content-Type", "text/html")
			_ = json.NewEncoder(w).Encode(d.document("http://" + r.Host + r.URL.Path))
		default:
			http.NotFound(w, r)
		}
	})
	if tlsServer {
		d.Server = httptest.NewTLSServer(h)
	} else {
		d.Server = httptest.NewServer(h)
	}
	t.Cleanup(d.Close)
	return d
}

// trust makes a cache's fetches trust the test server's certificate.
func trust(c *metadataCache, d *docServer) {
	// httptest certificates name example.com (and the loopback IPs).
	c.client.Transport.(*http.Transport).TLSClientConfig = &tls.Config{RootCAs: d.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs, ServerName: "example.com"}
}

// The code flow with a client identified by its metadata document URL:
// the URL is the client_id claim and agents[0].
func TestClientMetadataDocumentFlow(t *testing.T) {
	env := newEnv(t, func(c *Config) { c.AllowLoopbackMetadata = true })
	docs := newDocServer(t, false)
	clientID := docs.URL + "/client.json"
	v := newVerifier()
	params := env.authParams(v)
	params.Set("client_id", clientID)
	b := newBrowser(t)
	q := env.loginAndConsent(b, params)
	status, out := env.tokenRequest(url.Values{
		"grant_type": {"authorization_code"}, "client_id": {clientID}, "code": {q.Get("code")},
		"redirect_uri": {"http://127.0.0.1:5555/callback"}, "code_verifier": {v},
	})
	if status != http.StatusOK {
		t.Fatalf("exchange: %d %v", status, out)
	}
	claims, err := env.s.Verifier().Verify(out["access_token"].(string))
	if err != nil {
		t.Fatalf("a URL client id does not make a valid token: %v", err)
	}
	if claims.ClientID != clientID || !slices.Equal(claims.Kavach.Agents, []string{clientID}) {
		t.Fatalf("client_id %s agents %v", claims.ClientID, claims.Kavach.Agents)
	}
	status, out = env.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "client_id": {clientID}, "refresh_token": {out["refresh_token"].(string)}})
	if status != http.StatusOK {
		t.Fatalf("refresh: %d %v", status, out)
	}
	if n := docs.hits.Load(); n != 1 {
		t.Fatalf("the document was fetched %d times, want once (cached)", n)
	}
}

// SSRF: a client_id URL that points (or resolves) at a loopback or
// private address is refused unless loopback is allowed, and nothing is
// fetched.
func TestClientMetadataSSRF(t *testing.T) {
	env := newEnv(t)
	docs := newDocServer(t, true)
	u, err := url.Parse(docs.URL)
	if err != nil {
		t.Fatal(err)
	}
	port := u.Port()
	b := newBrowser(t)
	for _, id := range []string{
		"https://localhost:" + port + "/client.json", // a name resolving to 127.0.0.1: refused at dial time
		"https://127.0.0.1:" + port + "/client.json",
		"https://[::ffff:127.0.0.1]:" + port + "/client.json",
		"http://127.0.0.1:" + port + "/client.json",
		"https://10.0.0.1/client.json",
		"https://169.254.169.254/latest/meta-data",
		"https://100.64.0.1/client.json",
		"https://[fd00::1]/client.json",
	} {
		params := env.authParams(newVerifier())
		params.Set("client_id", id)
		p := b.get(env.url(pathAuthorize) + "?" + params.Encode())
		if p.status != http.StatusBadRequest || p.location != nil {
			t.Errorf("%s: got %d %v, want a 400 page", id, p.status, p.location)
		}
		// The token endpoint refuses it as well.
		status, out := env.tokenRequest(url.Values{"grant_type": {"authorization_code"}, "client_id": {id}, "code": {"x"}})
		if status != http.StatusUnauthorized || out["error"] != "invalid_client" {
			t.Errorf("%s at the token endpoint: %d %v", id, status, out)
		}
	}
	if n := docs.hits.Load(); n != 0 {
		t.Fatalf("the internal server received %d requests", n)
	}

	// The same name with loopback allowed is fetched: what refused it
	// above was the resolved address.
	ctx := context.Background()
	strict, dev := newMetadataCache(false), newMetadataCache(true)
	trust(strict, docs)
	trust(dev, docs)
	id := "https://localhost:" + port + "/client.json"
	if _, err := strict.lookup(ctx, id); err == nil || !strings.Contains(err.Error(), "not public") {
		t.Fatalf("strict lookup: %v", err)
	}
	c, err := dev.lookup(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if c.ID != id || c.Name != "Doc Client" || !slices.Equal(c.RedirectURIs, []string{testRedirect}) {
		t.Fatalf("client %+v", c)
	}
	// Private addresses stay refused in development too.
	if _, err := dev.lookup(ctx, "https://10.0.0.1/client.json"); err == nil {
		t.Fatal("a private address was allowed with loopback allowed")
	}
	if err := checkDialAddr("tcp4", "10.1.2.3:443", true); err == nil {
		t.Fatal("the dial check let 10.1.2.3 through")
	}
}

func TestClientMetadataDocumentRules(t *testing.T) {
	docs := newDocServer(t, false)
	ctx := context.Background()
	for name, tc := range map[string]struct {
		path string
		doc  func(id string) any
	}{
		"redirect":  {path: "/redirect.json"},
		"oversized": {path: "/big.json"},
		"not json":  {path: "/text.json"},
		"missing":   {path: "/nothing.json"},
		"other client_id": {doc: func(string) any {
			return map[string]any{"client_id": "https://elsewhere.example/c.json", "redirect_uris": []string{testRedirect}}
		}},
		"no redirect_uris": {doc: func(id string) any { return map[string]any{"client_id": id} }},
		"bad redirect_uri": {doc: func(id string) any {
			return map[string]any{"client_id": id, "redirect_uris": []string{"http://evil.example/cb"}}
		}},
		"client_secret": {doc: func(id string) any {
			return map[string]any{"client_id": id, "redirect_uris": []string{testRedirect}, "client_secret": "s"}
		}},
		"confidential auth": {doc: func(id string) any {
			return map[string]any{"client_id": id, "redirect_uris": []string{testRedirect}, "token_endpoint_auth_method": "client_secret_basic"}
		}},
	} {
		t.Run(name, func(t *testing.T) {
			cache := newMetadataCache(true)
			path := tc.path
			if path == "" {
				path = "/client.json"
				prev := docs.setDoc(tc.doc)
				defer func() { docs.setDoc(prev) }()
			}
			before := docs.hits.Load()
			if c, err := cache.lookup(ctx, docs.URL+path); err == nil {
				t.Fatalf("accepted: %+v", c)
			}
			if name == "redirect" && docs.hits.Load() != before+1 {
				t.Fatal("the redirect was followed")
			}
		})
	}
	cache := newMetadataCache(true)
	for _, id := range []string{
		docs.URL,                        // no path
		docs.URL + "/",                  // no path
		docs.URL + "/a/../client.json",  // dot segment
		docs.URL + "/client.json#frag",  // fragment
		docs.URL + "/client,json",       // not a token id
		"ftp://example.com/client.json", // scheme
		"https://user@example.com/c.json",
	} {
		if _, err := cache.lookup(ctx, id); err == nil {
			t.Errorf("%s accepted", id)
		}
	}
}

func TestPublicAddr(t *testing.T) {
	for addr, want := range map[string]bool{
		"93.184.216.34": true, "2606:4700::1111": true, "8.8.8.8": true,
		"127.0.0.1": false, "::1": false, "10.1.2.3": false, "172.16.0.1": false, "192.168.1.1": false,
		"169.254.169.254": false, "0.0.0.0": false, "::": false, "100.64.0.1": false, "100.127.255.254": false,
		"224.0.0.1": false, "255.255.255.255": false, "fd12::1": false, "fe80::1": false, "ff02::1": false,
		"::ffff:10.0.0.1": false, "::ffff:127.0.0.1": false, "64:ff9b::a00:1": false, "2002:a00:1::": false,
		"64:ff9b::808:808": true, "198.18.0.1": false, "192.0.0.8": false,
	} {
		if got := publicAddr(netip.MustParseAddr(addr), false); got != want {
			t.Errorf("publicAddr(%s) = %v, want %v", addr, got, want)
		}
	}
	if !publicAddr(netip.MustParseAddr("127.0.0.1"), true) || publicAddr(netip.MustParseAddr("10.0.0.1"), true) {
		t.Error("allowLoopback must allow loopback only")
	}
}
