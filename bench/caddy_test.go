package bench

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	"github.com/lestrrat-go/jwx/v2/jwa"

	_ "github.com/kavachgate/kavach/caddymodule"
	"github.com/kavachgate/kavach/token"
)

// The benchmarks below serve requests through the Caddy server of a loaded
// config, calling its ServeHTTP directly: the same handler chain as
// bin/kavach, without sockets, and with `respond "ok"` where make bench
// has reverse_proxy (the proxy does the same work with and without kavach).
// Their difference is what the kavach handler costs per request in Caddy
// (route matching, decision, header rewriting, placeholders, log fields,
// metrics), a figure that does not move with the machine's load.
//
//	go test -run '^$' -bench Caddy -benchmem ./bench/
//
// With KAVACH_BENCH_FILL=N the fixture first sends N fresh tokens through
// the kavach server (65536 fills the default verify cache), so the
// benchmarks run with the heap a busy gateway has.

const benchIssuer = "https://issuer.bench.test"

type caddyFixture struct {
	bare, kavach http.Handler
	resource     string
	key          *token.SigningKey
	err          error
}

var (
	fixtureOnce sync.Once
	fixture     caddyFixture
)

func loadCaddy(b *testing.B) *caddyFixture {
	b.Helper()
	fixtureOnce.Do(func() { fixture.err = fixture.load() })
	if fixture.err != nil {
		b.Fatal(fixture.err)
	}
	return &fixture
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// load starts Caddy (loopback listeners, admin off) once for the process;
// it runs until the benchmark binary exits.
func (f *caddyFixture) load() error {
	dir, err := os.MkdirTemp("", "kavach-bench-")
	if err != nil {
		return err
	}
	key, err := token.GenerateSigningKey(jwa.EdDSA)
	if err != nil {
		return err
	}
	set, err := token.PublicSet(key)
	if err != nil {
		return err
	}
	jwks, err := json.Marshal(set)
	if err != nil {
		return err
	}
	jwksFile := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(jwksFile, jwks, 0o600); err != nil {
		return err
	}
	pa, err := freePort()
	if err != nil {
		return err
	}
	pb, err := freePort()
	if err != nil {
		return err
	}
	f.key = key
	f.resource = fmt.Sprintf("http://127.0.0.1:%d/api", pb)
	caddyfile := fmt.Sprintf(`{
	admin off
	persist_config off
	auto_https off
	storage file_system %s
	log {
		output discard
	}
	kavach {
		trusted_keys %s %s
		audit off
	}
}
http://127.0.0.1:%d {
	respond "ok"
}
http://127.0.0.1:%d {
	kavach /api/* {
		resource %s
		scope GET /api/* bench:read
	}
	respond "ok"
}
`, filepath.Join(dir, "storage"), benchIssuer, jwksFile, pa, pb, f.resource)
	cfg, warn, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		return err
	}
	if len(warn) > 0 {
		return fmt.Errorf("caddyfile: %v", warn)
	}
	if err := caddy.Load(cfg, true); err != nil {
		return err
	}
	app, err := caddy.ActiveContext().App("http")
	if err != nil {
		return err
	}
	for _, srv := range app.(*caddyhttp.App).Servers {
		for _, l := range srv.Listen {
			switch {
			case strings.HasSuffix(l, fmt.Sprintf(":%d", pa)):
				f.bare = srv
			case strings.HasSuffix(l, fmt.Sprintf(":%d", pb)):
				f.kavach = srv
			}
		}
	}
	if f.bare == nil || f.kavach == nil {
		return fmt.Errorf("servers for ports %d and %d not found", pa, pb)
	}
	if n, _ := strconv.Atoi(os.Getenv("KAVACH_BENCH_FILL")); n > 0 {
		return f.fill(n)
	}
	return nil
}

// fill sends n fresh tokens through the kavach server, minting on every
// core.
func (f *caddyFixture) fill(n int) error {
	toks := make(chan string, 1024)
	errs := make(chan error, 1)
	go func() {
		defer close(toks)
		for i := 0; i < n; i++ {
			t, err := f.mint()
			if err != nil {
				errs <- err
				return
			}
			toks <- "Bearer " + t
		}
	}()
	r, w := newRequest(f), &discard{}
	for t := range toks {
		r.Header = http.Header{"Authorization": {t}}
		w.h, w.status = http.Header{}, 0
		f.kavach.ServeHTTP(w, r)
		if w.status != 0 && w.status != http.StatusOK {
			return fmt.Errorf("fill: status %d", w.status)
		}
	}
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

func (f *caddyFixture) mint() (string, error) {
	agents := []string{"agt_bench_root", "agt_bench"}
	at := time.Now()
	return token.Mint(f.key, &token.Claims{
		Issuer: benchIssuer, Subject: "usr_bench", Actor: token.ActorFor(agents), ClientID: "agt_bench",
		Audience: token.Audience{f.resource}, Scope: "bench:read", ID: token.NewID(token.PrefixToken),
		IssuedAt: at.Unix(), Expiry: at.Add(30 * time.Minute).Unix(),
		Kavach: &token.Kavach{Version: token.KavachVersion, Chain: []string{token.NewID(token.PrefixGrant), token.NewID(token.PrefixGrant)}, Agents: agents},
	})
}

// discard is a ResponseWriter that keeps only the status.
type discard struct {
	h      http.Header
	status int
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(p []byte) (int, error) { return len(p), nil }
func (d *discard) WriteHeader(s int)           { d.status = s }

// serve runs one request, as the server would get it from a connection,
// with authz as its Authorization header. Every benchmark pays the same
// request setup: bare gets a header too (and ignores it).
func serve(b *testing.B, h http.Handler, r *http.Request, w *discard, authz []string) {
	r.Header = http.Header{"Authorization": authz}
	w.h = http.Header{}
	w.status = 0
	h.ServeHTTP(w, r)
	if w.status != 0 && w.status != http.StatusOK {
		b.Fatalf("status %d", w.status)
	}
}

func newRequest(f *caddyFixture) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "http://"+strings.TrimPrefix(strings.TrimSuffix(f.resource, "/api"), "http://")+"/api/x", nil)
	r.RemoteAddr = "127.0.0.1:40000"
	return r
}

// BenchmarkCaddyBare is configuration A's handler chain: respond only.
func BenchmarkCaddyBare(b *testing.B) {
	f := loadCaddy(b)
	tok, err := f.mint()
	if err != nil {
		b.Fatal(err)
	}
	authz := []string{"Bearer " + tok}
	r, w := newRequest(f), &discard{}
	b.ReportAllocs()
	for b.Loop() {
		serve(b, f.bare, r, w, authz)
	}
}

// BenchmarkCaddyKavachCached is configuration B's: kavach with a token
// already in the verify cache, then respond.
func BenchmarkCaddyKavachCached(b *testing.B) {
	f := loadCaddy(b)
	tok, err := f.mint()
	if err != nil {
		b.Fatal(err)
	}
	authz := []string{"Bearer " + tok}
	r, w := newRequest(f), &discard{}
	serve(b, f.kavach, r, w, authz)
	b.ReportAllocs()
	for b.Loop() {
		serve(b, f.kavach, r, w, authz)
	}
}

// BenchmarkCaddyKavachFresh is configuration C's: a token never seen
// before on every request (minted before the timer starts).
func BenchmarkCaddyKavachFresh(b *testing.B) {
	f := loadCaddy(b)
	toks := make([][]string, b.N)
	for i := range toks {
		t, err := f.mint()
		if err != nil {
			b.Fatal(err)
		}
		toks[i] = []string{"Bearer " + t}
	}
	r, w := newRequest(f), &discard{}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		serve(b, f.kavach, r, w, toks[i])
	}
}
