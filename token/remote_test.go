package token

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// issuerServer is a fake issuer on loopback whose routes a test can change
// while RemoteKeys polls it. Unknown paths answer 404.
type issuerServer struct {
	*httptest.Server
	mu     sync.Mutex
	routes map[string]http.HandlerFunc
	hits   map[string]int
}

func newIssuerServer(t *testing.T) *issuerServer {
	t.Helper()
	s := &issuerServer{routes: map[string]http.HandlerFunc{}, hits: map[string]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		p := req.URL.EscapedPath()
		s.mu.Lock()
		s.hits[p]++
		h := s.routes[p]
		s.mu.Unlock()
		if h == nil {
			http.NotFound(w, req)
			return
		}
		h(w, req)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *issuerServer) handle(path string, h http.HandlerFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.routes[path] = h
}

func (s *issuerServer) count(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[path]
}

func (s *issuerServer) total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.hits {
		n += c
	}
	return n
}

// metadata publishes RFC 8414 metadata for issuer pointing at jwksURI.
func (s *issuerServer) metadata(path, issuer, jwksURI string) {
	s.handle(path, jsonHandler(map[string]any{"issuer": issuer, "jwks_uri": jwksURI, "token_endpoint": issuer + "/oauth/token"}))
}

func jsonHandler(v any) http.HandlerFunc {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return bytesHandler(b)
}

// bytesHandler serves body without a Content-Length when it is large (the
// server then streams it chunked), as a misbehaving issuer would.
func bytesHandler(body []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}
}

func statusHandler(code int) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }
}

func publicJWKS(t testing.TB, keys ...*SigningKey) []byte {
	t.Helper()
	return mustJSON(t, publicSet(t, keys...))
}

// padded is body preceded by whitespace up to size bytes: still a valid
// document, so only the size limit can refuse it.
func padded(body []byte, size int) []byte {
	return append([]byte(strings.Repeat(" ", size-len(body))), body...)
}

func kids(set jwk.Set) []string {
	if set == nil {
		return nil
	}
	var out []string
	for i := 0; i < set.Len(); i++ {
		k, _ := set.Key(i)
		out = append(out, k.KeyID())
	}
	slices.Sort(out)
	return out
}

func sortedKIDs(keys ...*SigningKey) []string {
	var out []string
	for _, k := range keys {
		out = append(out, k.KID)
	}
	slices.Sort(out)
	return out
}

func newRemote(t *testing.T, opts RemoteOptions) *RemoteKeys {
	t.Helper()
	r, err := NewRemoteKeys(opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// waitFor polls cond until it holds; it fails the test after a generous
// deadline so a broken implementation cannot hang the suite.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// startRun runs r.Run in the background and returns its cancel function and
// a channel closed when Run has returned. Cleanup cancels and waits, so no
// test leaves a Run behind.
func startRun(t *testing.T, r *RemoteKeys) (context.CancelFunc, <-chan struct{}) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Run still running 10 s after its context was cancelled")
		}
	})
	return cancel, done
}

func waitReturned(t *testing.T, done <-chan struct{}) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context was cancelled")
	}
}

// fakeClock is RemoteKeys' clock in tests that check the RefreshSoon rate
// limit, so no assertion depends on real time passing.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: testNow} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// logRecorder is a slog.Handler that keeps every record as one line:
// "LEVEL message key=value …".
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logRecorder) logger() *slog.Logger { return slog.New(l) }

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Level.String() + " " + r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = append(l.msgs, b.String())
	return nil
}

func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }

// count is the number of records at level whose line contains s.
func (l *logRecorder) count(level slog.Level, s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.msgs {
		if strings.HasPrefix(m, level.String()+" ") && strings.Contains(m, s) {
			n++
		}
	}
	return n
}

func (l *logRecorder) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.msgs, "\n")
}

func (l *logRecorder) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.msgs)
}

func TestRemoteDiscovery(t *testing.T) {
	t.Parallel()
	key := testKey(t)
	cases := []struct {
		name       string
		issuerPath string   // appended to the server's URL
		metaPath   string   // the only place the server publishes metadata
		first      []string // paths that must have been tried first (404)
	}{
		{"no path", "", "/.well-known/oauth-authorization-server", nil},
		{"root path", "/", "/.well-known/oauth-authorization-server", nil},
		{"path inserted", "/tenant/a", "/.well-known/oauth-authorization-server/tenant/a", nil},
		{"terminating slash removed", "/tenant/", "/.well-known/oauth-authorization-server/tenant", nil},
		{"openid fallback", "", "/.well-known/openid-configuration",
			[]string{"/.well-known/oauth-authorization-server"}},
		{"openid fallback with path", "/tenant/a", "/tenant/a/.well-known/openid-configuration",
			[]string{"/.well-known/oauth-authorization-server/tenant/a"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newIssuerServer(t)
			issuer := s.URL + tc.issuerPath
			s.metadata(tc.metaPath, issuer, s.URL+"/keys/jwks.json")
			s.handle("/keys/jwks.json", bytesHandler(publicJWKS(t, key)))
			r := newRemote(t, RemoteOptions{Issuer: issuer})
			if r.Keys() != nil || !r.LastSuccess().IsZero() {
				t.Fatal("keys before the first fetch")
			}
			if err := r.Fetch(context.Background()); err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			if got := kids(r.Keys()); !slices.Equal(got, []string{key.KID}) {
				t.Errorf("Keys() kids = %v, want [%s]", got, key.KID)
			}
			if r.LastSuccess().IsZero() {
				t.Error("LastSuccess is zero after a successful fetch")
			}
			for _, p := range tc.first {
				if n := s.count(p); n != 1 {
					t.Errorf("%s asked %d times, want 1 (RFC 8414 location first)", p, n)
				}
			}
			if n := s.count(tc.metaPath); n != 1 {
				t.Errorf("metadata at %s asked %d times, want 1", tc.metaPath, n)
			}
		})
	}
}

// An external issuer configured with its JWKS URL: the URL is fetched
// directly and the issuer itself is never contacted.
func TestRemoteJWKSURLSkipsDiscovery(t *testing.T) {
	t.Parallel()
	key := testKey(t)
	s := newIssuerServer(t)
	s.handle("/oauth2/v1/keys", bytesHandler(publicJWKS(t, key)))
	r := newRemote(t, RemoteOptions{Issuer: "https://login.example.com/tenant/v2.0", JWKSURL: s.URL + "/oauth2/v1/keys"})
	if err := r.Fetch(context.Background()); err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if got := kids(r.Keys()); !slices.Equal(got, []string{key.KID}) {
		t.Errorf("Keys() kids = %v, want [%s]", got, key.KID)
	}
	if n := s.total(); n != 1 {
		t.Errorf("%d requests, want only the JWKS one", n)
	}
}

func TestRemoteDiscoveryRejects(t *testing.T) {
	t.Parallel()
	const oauthPath, oidcPath = "/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"
	cases := []struct {
		name  string
		setup func(t *testing.T, s *issuerServer, issuer string)
		want  string // in the error
		check func(t *testing.T, s *issuerServer, err error)
	}{
		{name: "issuer with an extra slash", want: "want exactly", setup: func(t *testing.T, s *issuerServer, iss string) {
			s.metadata(oauthPath, iss+"/", s.URL+"/jwks")
		}},
		{name: "another issuer", want: "want exactly", setup: func(t *testing.T, s *issuerServer, iss string) {
			s.metadata(oauthPath, "https://evil.example", s.URL+"/jwks")
		}},
		{name: "issuer mismatch in openid fallback", want: "want exactly", setup: func(t *testing.T, s *issuerServer, iss string) {
			s.metadata(oidcPath, "https://evil.example", s.URL+"/jwks")
		}},
		{name: "issuer member in another case", want: "no issuer", setup: func(t *testing.T, s *issuerServer, iss string) {
			s.handle(oauthPath, jsonHandler(map[string]any{"Issuer": iss, "jwks_uri": s.URL + "/jwks"}))
		}},
		{name: "issuer not a string", want: "no issuer", setup: func(t *testing.T, s *issuerServer, iss string) {
			s.handle(oauthPath, jsonHandler(map[string]any{"issuer": []string{iss}, "jwks_uri": s.URL + "/jwks"}))
		}},
		{name: "missing jwks_uri", want: "no jwks_uri", setup: func(t *testing.T, s *issuerServer, iss string) {
			s.handle(oauthPath, jsonHandler(map[string]any{"issuer": iss, "token_endpoint": iss + "/oauth/token"}))
		}},
		{name: "empty jwks_uri", want: "no jwks_uri", setup: func(t *testing.T, s *issuerServer, iss string) {
			s.metadata(oauthPath, iss, "")
		}},
		{name: "jwks_uri not a string", want: "no jwks_uri", setup: func(t *testing.T, s *issuerServer, iss string) {
			s.handle(oauthPath, jsonHandler(map[string]any{"issuer": iss, "jwks_uri": 42}))
		}},
		{name: "http jwks_uri off loopback", want: "must be https", setup: func(t *testing.T, s *issuerServer, iss string) {
			s.metadata(oauthPath, iss, "http://192.0.2.10/jwks")
		}, check: func(t *testing.T, _ *issuerServer, err error) {
			var ue *remoteURLError
			if !errors.As(err, &ue) || ue.url != "http://192.0.2.10/jwks" {
				t.Errorf("err = %v, want a URL error naming the jwks_uri", err)
			}
		}},
		{name: "http jwks_uri on a lookalike host", want: "must be https", setup: func(t *testing.T, s *issuerServer, iss string) {
			s.metadata(oauthPath, iss, "http://localhost.example.com/jwks")
		}},
		{name: "jwks_uri with userinfo", want: "userinfo", setup: func(t *testing.T, s *issuerServer, iss string) {
			s.metadata(oauthPath, iss, "https://user:hunter2@keys.example/jwks")
		}, check: func(t *testing.T, _ *issuerServer, err error) {
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error shows the password: %v", err)
			}
		}},
		{name: "not JSON", want: "not a JSON object", setup: func(t *testing.T, s *issuerServer, iss string) {
			s.handle(oauthPath, bytesHandler([]byte("<html>hello</html>")))
		}},
		{name: "JSON array", want: "not a JSON object", setup: func(t *testing.T, s *issuerServer, iss string) {
			s.handle(oauthPath, bytesHandler([]byte(`[{"issuer":"x"}]`)))
		}},
		{name: "trailing data", want: "not a JSON object", setup: func(t *testing.T, s *issuerServer, iss string) {
			b := mustJSON(t, map[string]string{"issuer": iss, "jwks_uri": s.URL + "/jwks"})
			s.handle(oauthPath, bytesHandler(append(b, "{}"...)))
		}},
		{name: "oversized metadata", want: "exceeds", setup: func(t *testing.T, s *issuerServer, iss string) {
			b := mustJSON(t, map[string]string{"issuer": iss, "jwks_uri": s.URL + "/jwks"})
			s.handle(oauthPath, bytesHandler(padded(b, maxRemoteDocument+1)))
		}},
		{name: "server error does not fall back", want: "status 500", setup: func(t *testing.T, s *issuerServer, iss string) {
			s.handle(oauthPath, statusHandler(http.StatusInternalServerError))
			s.metadata(oidcPath, iss, s.URL+"/jwks")
		}, check: func(t *testing.T, s *issuerServer, _ error) {
			if n := s.count(oidcPath); n != 0 {
				t.Errorf("openid-configuration asked %d times after a 500, want 0", n)
			}
		}},
		{name: "neither document", want: "status 404", setup: func(t *testing.T, s *issuerServer, iss string) {}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newIssuerServer(t)
			// A valid JWKS is always there: only the metadata checks can
			// keep it from being trusted.
			s.handle("/jwks", bytesHandler(publicJWKS(t, testKey(t))))
			tc.setup(t, s, s.URL)
			var log logRecorder
			r := newRemote(t, RemoteOptions{Issuer: s.URL, Logger: log.logger()})
			err := r.Fetch(context.Background())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Fetch: err = %v, want one containing %q", err, tc.want)
			}
			if r.Keys() != nil {
				t.Error("keys stored from a refused discovery")
			}
			if n := s.count("/jwks"); n != 0 {
				t.Errorf("JWKS fetched %d times after a refused discovery", n)
			}
			if log.count(slog.LevelWarn, tc.want) != 1 {
				t.Errorf("log %q does not report the failure once at Warn", log.String())
			}
			if tc.check != nil {
				tc.check(t, s, err)
			}
		})
	}
}

func TestNewRemoteKeysChecksURLs(t *testing.T) {
	t.Parallel()
	bad := []struct {
		opts RemoteOptions
		want string // in the error: the bad URL (password redacted)
	}{
		{RemoteOptions{}, "issuer is required"},
		{RemoteOptions{Issuer: "http://issuer.example"}, `"http://issuer.example"`},
		{RemoteOptions{Issuer: "http://10.0.0.1:8081"}, `"http://10.0.0.1:8081"`},
		{RemoteOptions{Issuer: "http://localhost.example.com"}, `"http://localhost.example.com"`},
		{RemoteOptions{Issuer: "http://127.0.0.1.example.com"}, `"http://127.0.0.1.example.com"`},
		{RemoteOptions{Issuer: "ftp://issuer.example"}, `"ftp://issuer.example"`},
		{RemoteOptions{Issuer: "ftp://127.0.0.1/issuer"}, `"ftp://127.0.0.1/issuer"`},
		{RemoteOptions{Issuer: "ws://localhost/issuer"}, `"ws://localhost/issuer"`},
		{RemoteOptions{Issuer: "//localhost/issuer"}, `"//localhost/issuer"`},
		{RemoteOptions{Issuer: "issuer.example"}, `"issuer.example"`},
		{RemoteOptions{Issuer: "https:///tenant"}, `"https:///tenant"`},
		{RemoteOptions{Issuer: "https:issuer.example"}, `"https:issuer.example"`},
		{RemoteOptions{Issuer: "https://admin:s3cret@issuer.example"}, `"https://admin:xxxxx@issuer.example"`},
		{RemoteOptions{Issuer: "https://issuer.example#main"}, `"https://issuer.example#main"`},
		{RemoteOptions{Issuer: "https://issuer.example#"}, `"https://issuer.example"`},
		{RemoteOptions{Issuer: "https://issuer.example?tenant=1"}, `"https://issuer.example?tenant=1"`},
		{RemoteOptions{Issuer: "https://issuer.example", JWKSURL: "http://keys.example/jwks"}, `"http://keys.example/jwks"`},
		{RemoteOptions{Issuer: "https://issuer.example", JWKSURL: "https://u:s3cret@keys.example/jwks"}, `"https://u:xxxxx@keys.example/jwks"`},
		{RemoteOptions{Issuer: "https://issuer.example", JWKSURL: "/jwks"}, `"/jwks"`},
		{RemoteOptions{Issuer: "https://issuer.example", Refresh: -time.Second}, "negative refresh"},
		{RemoteOptions{Issuer: "https://issuer.example", MinInterval: -time.Second}, "negative minimum"},
	}
	for _, tc := range bad {
		_, err := NewRemoteKeys(tc.opts)
		if err == nil {
			t.Errorf("NewRemoteKeys(%+v) accepted", tc.opts)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewRemoteKeys(%+v): err = %v, want it to contain %s", tc.opts, err, tc.want)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("NewRemoteKeys(%+v): error shows the password: %v", tc.opts, err)
		}
	}
	good := []RemoteOptions{
		{Issuer: "https://issuer.example"},
		{Issuer: "https://issuer.example/tenant/a"},
		{Issuer: "http://localhost:8081"},
		{Issuer: "http://LocalHost:8081/t"},
		{Issuer: "http://127.0.0.1:8081"},
		{Issuer: "http://127.0.0.2"},
		{Issuer: "http://[::1]:8081/tenant"},
		{Issuer: "https://issuer.example", JWKSURL: "https://keys.example/jwks?v=2"},
		{Issuer: "https://issuer.example?tenant=1", JWKSURL: "https://keys.example/jwks"},
		{Issuer: "https://issuer.example", JWKSURL: "http://127.0.0.1:9/jwks"},
	}
	for _, opts := range good {
		if _, err := NewRemoteKeys(opts); err != nil {
			t.Errorf("NewRemoteKeys(%+v): %v", opts, err)
		}
	}

	// Defaults, and the caller's client is left alone.
	mine := &http.Client{Timeout: time.Minute}
	r := newRemote(t, RemoteOptions{Issuer: "https://issuer.example", Client: mine})
	if r.refresh != DefaultRemoteRefresh || r.minInterval != DefaultRemoteMinInterval {
		t.Errorf("defaults: refresh %v, min interval %v", r.refresh, r.minInterval)
	}
	if mine.CheckRedirect != nil || r.client == mine || r.client.Timeout != time.Minute {
		t.Error("the caller's client was modified or its timeout not kept")
	}
	if r := newRemote(t, RemoteOptions{Issuer: "https://issuer.example"}); r.client.Timeout != 10*time.Second {
		t.Errorf("default client timeout %v, want 10s", r.client.Timeout)
	}
}

func TestRemoteRedirectNotFollowed(t *testing.T) {
	t.Parallel()
	const oauthPath = "/.well-known/oauth-authorization-server"
	for _, redirected := range []string{"metadata", "jwks"} {
		for _, client := range []string{"default client", "following client"} {
			t.Run(redirected+"/"+client, func(t *testing.T) {
				t.Parallel()
				s := newIssuerServer(t)
				jwks := publicJWKS(t, testKey(t))
				s.metadata("/moved/metadata", s.URL, s.URL+"/jwks")
				s.handle("/moved/jwks", bytesHandler(jwks))
				if redirected == "metadata" {
					s.handle(oauthPath, func(w http.ResponseWriter, req *http.Request) {
						http.Redirect(w, req, "/moved/metadata", http.StatusFound)
					})
				} else {
					s.metadata(oauthPath, s.URL, s.URL+"/jwks")
					s.handle("/jwks", func(w http.ResponseWriter, req *http.Request) {
						http.Redirect(w, req, "/moved/jwks", http.StatusTemporaryRedirect)
					})
				}
				opts := RemoteOptions{Issuer: s.URL}
				if client == "following client" {
					opts.Client = &http.Client{} // follows redirects by default
				}
				r := newRemote(t, opts)
				err := r.Fetch(context.Background())
				if err == nil || !strings.Contains(err.Error(), "redirects are not followed") {
					t.Fatalf("Fetch: err = %v, want a refused redirect", err)
				}
				if n := s.count("/moved/metadata") + s.count("/moved/jwks"); n != 0 {
					t.Errorf("redirect target asked %d times", n)
				}
				if r.Keys() != nil {
					t.Error("keys stored through a redirect")
				}
			})
		}
	}
}

func TestRemoteRefusedSetKeepsLastGood(t *testing.T) {
	t.Parallel()
	good, other := testKey(t), otherKey(t)
	privJWK := mustJSON(t, other) // SigningKey.MarshalJSON: the private JWK
	var priv struct{ D string }
	if err := json.Unmarshal(privJWK, &priv); err != nil || priv.D == "" {
		t.Fatalf("private JWK without d: %v", err)
	}
	goodJWKS := publicJWKS(t, good)
	cases := []struct {
		name    string
		handler http.HandlerFunc
		want    string
	}{
		{"private key", bytesHandler([]byte(`{"keys":[` + string(mustJSON(t, mustPublic(t, good))) + `,` + string(privJWK) + `]}`)), "private key"},
		{"symmetric key", bytesHandler([]byte(`{"keys":[{"kty":"oct","kid":"hs","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"}]}`)), "not an asymmetric key"},
		{"empty set", bytesHandler([]byte(`{"keys":[]}`)), "no keys"},
		{"oversized body", bytesHandler(padded(goodJWKS, maxRemoteDocument+1)), "exceeds"},
		{"oversized Content-Length", func(w http.ResponseWriter, _ *http.Request) {
			body := padded(goodJWKS, maxRemoteDocument+1)
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			_, _ = w.Write(body)
		}, "exceeds"},
		{"not a JWK set", bytesHandler([]byte(`not json`)), "JWK set from"},
		{"status 503", statusHandler(http.StatusServiceUnavailable), "status 503"},
		{"status 204", statusHandler(http.StatusNoContent), "status 204"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newIssuerServer(t)
			s.handle("/jwks", bytesHandler(goodJWKS))
			var log logRecorder
			var updates atomic.Int32
			r := newRemote(t, RemoteOptions{Issuer: "https://issuer.test", JWKSURL: s.URL + "/jwks", Logger: log.logger(),
				OnUpdate: func(jwk.Set) { updates.Add(1) }})
			if err := r.Fetch(context.Background()); err != nil {
				t.Fatalf("first fetch: %v", err)
			}
			lastGood := r.LastSuccess()

			s.handle("/jwks", tc.handler)
			err := r.Fetch(context.Background())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Fetch: err = %v, want one containing %q", err, tc.want)
			}
			if got := kids(r.Keys()); !slices.Equal(got, []string{good.KID}) {
				t.Errorf("after a refused set Keys() kids = %v, want the last good [%s]", got, good.KID)
			}
			if !r.LastSuccess().Equal(lastGood) {
				t.Errorf("LastSuccess moved from %v to %v on a failure", lastGood, r.LastSuccess())
			}
			if n := updates.Load(); n != 1 {
				t.Errorf("OnUpdate called %d times, want 1 (never for a refused set)", n)
			}
			logs := log.String()
			if log.count(slog.LevelWarn, tc.want) != 1 {
				t.Errorf("log %q does not report the refusal once at Warn", logs)
			}
			if log.count(slog.LevelInfo, "issuer keys updated") != 1 || log.count(slog.LevelInfo, good.KID) != 1 {
				t.Errorf("log %q does not report the first set, with its key id, once at Info", logs)
			}
			if strings.Contains(logs, priv.D) {
				t.Error("log contains private key material")
			}

			// Refused on the very first fetch: still no keys at all.
			fresh := newRemote(t, RemoteOptions{Issuer: "https://issuer.test", JWKSURL: s.URL + "/jwks"})
			if err := fresh.Fetch(context.Background()); err == nil {
				t.Fatal("first fetch of a refused set succeeded")
			}
			if fresh.Keys() != nil || !fresh.LastSuccess().IsZero() {
				t.Error("a refused first set was published")
			}
		})
	}
}

func mustPublic(t testing.TB, k *SigningKey) jwk.Key {
	t.Helper()
	pub, err := k.Public()
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// The size limit is "more than 1 MiB", not "1 MiB or more".
func TestRemoteBodyAtLimitAccepted(t *testing.T) {
	t.Parallel()
	s := newIssuerServer(t)
	s.handle("/jwks", bytesHandler(padded(publicJWKS(t, testKey(t)), maxRemoteDocument)))
	r := newRemote(t, RemoteOptions{Issuer: "https://issuer.test", JWKSURL: s.URL + "/jwks"})
	if err := r.Fetch(context.Background()); err != nil {
		t.Fatalf("Fetch of a body of exactly %d bytes: %v", maxRemoteDocument, err)
	}
}

func TestRemoteIssuerDownKeepsKeys(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"503", "unreachable"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			a, b := testKey(t), otherKey(t)
			s := newIssuerServer(t)
			s.handle("/jwks", bytesHandler(publicJWKS(t, a)))
			var updates atomic.Int32
			var log logRecorder
			failures := func() int { return log.count(slog.LevelWarn, "failed") }
			r := newRemote(t, RemoteOptions{
				Issuer: "https://issuer.test", JWKSURL: s.URL + "/jwks", Refresh: 5 * time.Millisecond,
				OnUpdate: func(jwk.Set) { updates.Add(1) },
				Logger:   log.logger(),
			})
			r.backoff = time.Millisecond
			startRun(t, r)
			waitFor(t, "the first fetch", func() bool { return r.Keys() != nil })

			if how == "503" {
				s.handle("/jwks", statusHandler(http.StatusServiceUnavailable))
			} else {
				s.Close()
			}
			waitFor(t, "failed fetches", func() bool { return failures() >= 2 })
			since := r.LastSuccess()
			f := failures()
			waitFor(t, "more failed fetches (Run retries)", func() bool { return failures() >= f+3 })
			if got := kids(r.Keys()); !slices.Equal(got, []string{a.KID}) {
				t.Errorf("issuer down: Keys() kids = %v, want the last good [%s]", got, a.KID)
			}
			if !r.LastSuccess().Equal(since) {
				t.Error("LastSuccess moved while the issuer was down")
			}
			if n := updates.Load(); n != 1 {
				t.Errorf("OnUpdate called %d times, want 1", n)
			}
			if how == "unreachable" {
				return
			}
			// Back up with a rotated set: Run recovers from its backoff.
			s.handle("/jwks", bytesHandler(publicJWKS(t, a, b)))
			waitFor(t, "the recovery", func() bool { return updates.Load() == 2 })
			if got, want := kids(r.Keys()), sortedKIDs(a, b); !slices.Equal(got, want) {
				t.Errorf("after recovery Keys() kids = %v, want %v", got, want)
			}
			if !r.LastSuccess().After(since) {
				t.Error("LastSuccess did not move on recovery")
			}
		})
	}
}

func TestRemoteBackoff(t *testing.T) {
	t.Parallel()
	const start, limit = time.Second, 5 * time.Minute
	var got []time.Duration
	for d := time.Duration(0); len(got) < 12; {
		d = nextBackoff(d, start, limit)
		got = append(got, d)
	}
	want := []time.Duration{1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300}
	for i := range want {
		want[i] *= time.Second
	}
	if !slices.Equal(got, want) {
		t.Errorf("backoff sequence %v, want %v", got, want)
	}
	if d := nextBackoff(0, start, 200*time.Millisecond); d != 200*time.Millisecond {
		t.Errorf("first retry with Refresh 200ms: %v, want the cap", d)
	}
	if d := nextBackoff(1<<62, start, 1<<63-1); d != 1<<63-1 {
		t.Errorf("huge interval: %v, want the cap (no overflow)", d)
	}
}

// A failed first fetch is retried on the backoff schedule, not after Refresh.
func TestRemoteRunRetriesBeforeRefresh(t *testing.T) {
	t.Parallel()
	s := newIssuerServer(t)
	s.handle("/jwks", statusHandler(http.StatusBadGateway))
	r := newRemote(t, RemoteOptions{Issuer: "https://issuer.test", JWKSURL: s.URL + "/jwks", Refresh: time.Hour})
	r.backoff = time.Millisecond
	startRun(t, r)
	waitFor(t, "retries", func() bool { return s.count("/jwks") >= 3 })
	s.handle("/jwks", bytesHandler(publicJWKS(t, testKey(t))))
	waitFor(t, "the keys once the issuer answers", func() bool { return r.Keys() != nil })
}

// The gateway's flow: a token with an unknown kid → RefreshSoon → OnUpdate
// rebuilds the KeyRing → the token verifies.
func TestRemoteRotationUpdatesVerifier(t *testing.T) {
	t.Parallel()
	a, err := GenerateSigningKey(jwa.EdDSA)
	if err != nil {
		t.Fatal(err)
	}
	b, err := GenerateSigningKey(jwa.EdDSA)
	if err != nil {
		t.Fatal(err)
	}
	s := newIssuerServer(t)
	issuer := s.URL + "/kavach"
	s.metadata("/.well-known/oauth-authorization-server/kavach", issuer, s.URL+"/kavach/jwks")
	s.handle("/kavach/jwks", bytesHandler(publicJWKS(t, a)))

	v := NewVerifier(nil, VerifierOptions{Now: func() time.Time { return testNow }})
	var mu sync.Mutex
	var updates []jwk.Set
	clock := newFakeClock()
	var r *RemoteKeys
	r = newRemote(t, RemoteOptions{Issuer: issuer, Refresh: time.Hour, OnUpdate: func(set jwk.Set) {
		// The gateway rebuilds its ring from Keys() of every issuer here:
		// that must not deadlock and must already give the new set.
		if got, want := kids(r.Keys()), kids(set); !slices.Equal(got, want) {
			t.Errorf("Keys() in OnUpdate = %v, want the new set %v", got, want)
		}
		ring, err := NewKeyRing(Issuer{ID: issuer, Keys: set})
		if err != nil {
			t.Errorf("OnUpdate: NewKeyRing: %v", err)
			return
		}
		v.SetKeyRing(ring)
		mu.Lock()
		updates = append(updates, set)
		mu.Unlock()
	}})
	r.clock = clock.Now
	nUpdates := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(updates)
	}
	c := testClaims()
	c.Issuer = issuer
	ta, tb := mint(t, a, c), mint(t, b, c)

	startRun(t, r)
	waitFor(t, "the first set", func() bool { return nUpdates() == 1 })
	if _, err := v.Verify(ta); err != nil {
		t.Fatalf("token of the published key: %v", err)
	}
	if _, err := v.Verify(tb); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("token of the unpublished key: err = %v, want ErrUnknownKey", err)
	}

	// The issuer publishes b; a token signed with it arrives.
	s.handle("/kavach/jwks", bytesHandler(publicJWKS(t, a, b)))
	clock.Advance(DefaultRemoteMinInterval)
	r.RefreshSoon()
	waitFor(t, "OnUpdate with the rotated set", func() bool { return nUpdates() == 2 })
	mu.Lock()
	got := kids(updates[1])
	mu.Unlock()
	if want := sortedKIDs(a, b); !slices.Equal(got, want) {
		t.Errorf("OnUpdate set kids = %v, want %v", got, want)
	}
	if _, err := v.Verify(tb); err != nil {
		t.Fatalf("token of the new key after rotation: %v", err)
	}
	if _, err := v.Verify(ta); err != nil {
		t.Fatalf("token of the old key while still published: %v", err)
	}

	// The same set again is not an update.
	if err := r.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := nUpdates(); n != 2 {
		t.Errorf("OnUpdate called for an unchanged set (%d calls)", n)
	}

	// a is retired.
	s.handle("/kavach/jwks", bytesHandler(publicJWKS(t, b)))
	if err := r.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := nUpdates(); n != 3 {
		t.Fatalf("OnUpdate calls = %d, want 3", n)
	}
	if _, err := v.Verify(ta); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("token of the retired key: err = %v, want ErrUnknownKey", err)
	}
	if _, err := v.Verify(tb); err != nil {
		t.Errorf("token of the current key: %v", err)
	}
}

func TestRemoteRefreshSoonRateLimit(t *testing.T) {
	t.Parallel()
	s := newIssuerServer(t)
	s.handle("/jwks", bytesHandler(publicJWKS(t, testKey(t))))
	clock := newFakeClock()
	r := newRemote(t, RemoteOptions{Issuer: "https://issuer.test", JWKSURL: s.URL + "/jwks", Refresh: time.Hour, MinInterval: time.Minute})
	r.clock = clock.Now
	fetches := func() int { return s.count("/jwks") }
	// flood is 1000 tokens with random kids arriving at once.
	flood := func() {
		var wg sync.WaitGroup
		for range 10 {
			wg.Go(func() {
				for range 100 {
					r.RefreshSoon()
				}
			})
		}
		wg.Wait()
	}

	startRun(t, r)
	waitFor(t, "the first fetch", func() bool { return fetches() == 1 && r.Keys() != nil })

	flood() // within MinInterval of Run's first fetch
	if len(r.soon) != 0 {
		t.Fatal("RefreshSoon queued a fetch within MinInterval of the last one")
	}

	clock.Advance(time.Minute)
	flood()
	waitFor(t, "the fetch RefreshSoon asked for", func() bool { return fetches() >= 2 })
	waitFor(t, "Run to take every request", func() bool { return len(r.soon) == 0 })
	time.Sleep(20 * time.Millisecond) // room for a wrong extra fetch to show
	if n := fetches(); n != 2 {
		t.Fatalf("1000 RefreshSoon calls after MinInterval caused %d fetches, want 1", n-1)
	}

	flood() // within MinInterval of the fetch RefreshSoon caused
	if len(r.soon) != 0 {
		t.Fatal("RefreshSoon queued a fetch within MinInterval of the forced one")
	}
}

func TestRemoteRefreshSoonNeverBlocks(t *testing.T) {
	t.Parallel()
	r := newRemote(t, RemoteOptions{Issuer: "https://issuer.test"})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 1000 {
			r.RefreshSoon() // no Run is taking the requests
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("RefreshSoon blocked without a Run")
	}
}

func TestRemoteRunStops(t *testing.T) {
	t.Parallel()
	t.Run("idle", func(t *testing.T) {
		t.Parallel()
		s := newIssuerServer(t)
		s.handle("/jwks", bytesHandler(publicJWKS(t, testKey(t))))
		r := newRemote(t, RemoteOptions{Issuer: "https://issuer.test", JWKSURL: s.URL + "/jwks", Refresh: time.Hour})
		cancel, done := startRun(t, r)
		waitFor(t, "the first fetch", func() bool { return r.Keys() != nil })
		cancel()
		waitReturned(t, done)
	})
	t.Run("in a fetch", func(t *testing.T) {
		t.Parallel()
		s := newIssuerServer(t)
		entered := make(chan struct{}, 1)
		release := make(chan struct{})
		t.Cleanup(func() { close(release) })
		s.handle("/jwks", func(w http.ResponseWriter, req *http.Request) {
			select {
			case entered <- struct{}{}:
			default:
			}
			select { // hang until the client gives up
			case <-req.Context().Done():
			case <-release:
			}
		})
		r := newRemote(t, RemoteOptions{Issuer: "https://issuer.test", JWKSURL: s.URL + "/jwks",
			Client: &http.Client{Timeout: time.Hour}})
		cancel, done := startRun(t, r)
		<-entered
		cancel()
		waitReturned(t, done)
	})
	t.Run("backing off", func(t *testing.T) {
		t.Parallel()
		s := newIssuerServer(t)
		s.handle("/jwks", statusHandler(http.StatusServiceUnavailable))
		r := newRemote(t, RemoteOptions{Issuer: "https://issuer.test", JWKSURL: s.URL + "/jwks", Refresh: time.Hour})
		cancel, done := startRun(t, r)
		waitFor(t, "the first failure", func() bool { return s.count("/jwks") == 1 })
		cancel()
		waitReturned(t, done)
	})
	t.Run("cancelled before start", func(t *testing.T) {
		t.Parallel()
		r := newRemote(t, RemoteOptions{Issuer: "https://issuer.test", JWKSURL: "http://127.0.0.1:9/jwks"})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		done := make(chan struct{})
		go func() {
			defer close(done)
			r.Run(ctx)
		}()
		waitReturned(t, done)
	})
}

// Fetch, Run and RefreshSoon together never have two requests to the issuer
// in flight, and OnUpdate calls never overlap.
func TestRemoteFetchesNeverOverlap(t *testing.T) {
	t.Parallel()
	a, b := testKey(t), otherKey(t)
	sets := [][]byte{publicJWKS(t, a), publicJWKS(t, a, b)}
	s := newIssuerServer(t)
	var inflight, maxInflight, served atomic.Int32
	track := func(h func(w http.ResponseWriter, req *http.Request)) http.HandlerFunc {
		return func(w http.ResponseWriter, req *http.Request) {
			n := inflight.Add(1)
			defer inflight.Add(-1)
			for {
				m := maxInflight.Load()
				if n <= m || maxInflight.CompareAndSwap(m, n) {
					break
				}
			}
			time.Sleep(100 * time.Microsecond)
			h(w, req)
		}
	}
	s.handle("/.well-known/oauth-authorization-server", track(jsonHandler(map[string]string{"issuer": s.URL, "jwks_uri": s.URL + "/jwks"})))
	s.handle("/jwks", track(func(w http.ResponseWriter, req *http.Request) {
		// Alternate sets so OnUpdate runs often.
		_, _ = w.Write(sets[served.Add(1)%2])
	}))
	var inUpdate, overlaps atomic.Int32
	r := newRemote(t, RemoteOptions{Issuer: s.URL, Refresh: time.Millisecond, MinInterval: time.Nanosecond,
		OnUpdate: func(jwk.Set) {
			if inUpdate.Add(1) != 1 {
				overlaps.Add(1)
			}
			time.Sleep(50 * time.Microsecond)
			inUpdate.Add(-1)
		}})
	startRun(t, r)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 10 {
				if err := r.Fetch(context.Background()); err != nil {
					t.Errorf("Fetch: %v", err)
				}
				r.RefreshSoon()
			}
		})
	}
	wg.Wait()
	if n := maxInflight.Load(); n != 1 {
		t.Errorf("%d requests in flight at once, want 1", n)
	}
	if n := overlaps.Load(); n != 0 {
		t.Errorf("OnUpdate overlapped itself %d times", n)
	}
}
