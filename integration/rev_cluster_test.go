package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kavachgate/kavach/internal/redistest"
	"github.com/kavachgate/kavach/revocation"
)

// Helpers of revocation_test.go: a real redis-server and `kavach run`
// gateways sharing it (DESIGN.md §5, cluster mode).

// revIssuer is the Kavach issuer the cluster gateways trust through
// trusted_keys; revResource is the audience of their one protected route,
// fixed in config (the requests go to 127.0.0.1, never to api.test).
const (
	revIssuer   = "https://issuer.cluster.test"
	revResource = "https://api.test/api"
	revPRM      = "https://api.test/.well-known/oauth-protected-resource/api"
)

// revRedis is a redis-server of one test (internal/redistest), with the
// names the cluster tests use.
type revRedis struct{ *redistest.Server }

// startRevRedis starts redis-server on a free loopback port and kills it
// (by its pid) when the test ends. Without redis-server the test fails
// under CI=true and is skipped otherwise.
func startRevRedis(t *testing.T) *revRedis { return &revRedis{redistest.Start(t)} }

func (r *revRedis) addr() string { return r.Addr() }
func (r *revRedis) url() string  { return r.URL() }

// restart starts redis-server again on the same port. Without
// persistence it comes back empty.
func (r *revRedis) restart() { r.Restart() }

// kill sends SIGKILL to the server's own pid and waits for it to exit.
func (r *revRedis) kill() { r.Stop() }

// client is a plain client for the test's own commands, closed at the end
// of the test.
func (r *revRedis) client(t *testing.T) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: r.addr(), Protocol: 2, MaxRetries: -1})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// revCluster is a redis-server, a recording upstream and the gateways in
// front of it that share the Redis.
type revCluster struct {
	keyDir     string // key.jwk and jwks.json
	redis      *revRedis
	up         *upstream
	adminToken string
	gws        []*revGateway
}

// revGateway is one `kavach run` of the cluster.
type revGateway struct {
	name  string
	base  string // http://127.0.0.1:port
	admin string // the Kavach admin listener (readyz)
	proc  *gatewayProc
}

// newRevCluster starts a redis-server and n gateways sharing it, each
// with max_staleness 2s, and waits until every gateway reports a fresh
// revocation set.
func newRevCluster(t *testing.T, n int) *revCluster {
	t.Helper()
	c := &revCluster{keyDir: t.TempDir(), up: newUpstream(t), adminToken: "adm_cluster_test"}
	kavach(t, c.keyDir, "keys", "generate", "--out", "key.jwk")
	jwks := kavach(t, c.keyDir, "keys", "jwks", "--in", "key.jwk")
	if err := os.WriteFile(filepath.Join(c.keyDir, "jwks.json"), []byte(jwks), 0o644); err != nil {
		t.Fatal(err)
	}
	c.redis = startRevRedis(t)
	for i := range n {
		c.gws = append(c.gws, c.startGateway(t, fmt.Sprintf("gw%d", i+1)))
	}
	return c
}

// startGateway starts one more gateway sharing the cluster's Redis; it is
// killed when t ends. It returns once the gateway listens; it does not
// wait for readiness, so that a caller can see what the first request
// gets.
func (c *revCluster) startGateway(t *testing.T, name string) *revGateway {
	t.Helper()
	dir := t.TempDir()
	jwks, err := os.ReadFile(filepath.Join(c.keyDir, "jwks.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "jwks.json"), jwks, 0o644); err != nil {
		t.Fatal(err)
	}
	p, pK := freePort(t), freePort(t)
	g := &revGateway{name: name, base: fmt.Sprintf("http://127.0.0.1:%d", p), admin: fmt.Sprintf("127.0.0.1:%d", pK)}
	caddyfile := fmt.Sprintf(`{
	admin off
	kavach {
		trusted_keys %s ./jwks.json
		redis %s
		max_staleness 2s
		admin %s
	}
}

http://127.0.0.1:%d {
	bind 127.0.0.1
	kavach /api/* {
		resource %s
		scope GET /api/* repo:read
	}
	reverse_proxy /api/* %s
}
`, revIssuer, c.redis.url(), g.admin, p, revResource, c.up.addr())
	if err := os.WriteFile(filepath.Join(dir, "Caddyfile"), []byte(caddyfile), 0o644); err != nil {
		t.Fatal(err)
	}
	g.proc = startGateway(t, dir, []string{"KAVACH_ADMIN_TOKEN=" + c.adminToken}, p, pK)
	return g
}

// waitReady waits until every gateway's /readyz answers 200.
func (c *revCluster) waitReady(t *testing.T, gws ...*revGateway) {
	t.Helper()
	if len(gws) == 0 {
		gws = c.gws
	}
	for _, g := range gws {
		waitUntil(t, 10*time.Second, g.name+" /readyz 200", func() bool { return g.ready(t).Status == 200 })
	}
}

// readyz is a gateway's readiness answer.
type readyz struct {
	Status       int      `json:"-"`
	Mode         string   `json:"mode"`
	Fresh        bool     `json:"fresh"`
	Entries      int      `json:"entries"`
	LastSyncAge  *float64 `json:"last_sync_age_seconds"`
	EpochMissing bool     `json:"epoch_missing"`
}

// ready asks GET /readyz on the admin listener, without a token, and
// checks that its status and its fresh member agree.
func (g *revGateway) ready(t *testing.T) readyz {
	t.Helper()
	r := do(t, newReq(t, "GET", "http://"+g.admin+"/readyz", "", nil))
	var z readyz
	if err := json.Unmarshal([]byte(r.Body), &z); err != nil {
		t.Fatalf("%s /readyz: status %d, body %q is not JSON: %v", g.name, r.Status, r.Body, err)
	}
	z.Status = r.Status
	if z.Mode != "redis" {
		t.Errorf("%s /readyz mode %q, want redis: %s", g.name, z.Mode, r.Body)
	}
	if want := map[bool]int{true: 200, false: 503}[z.Fresh]; r.Status != want {
		t.Errorf("%s /readyz: status %d with fresh=%v, want %d: %s", g.name, r.Status, z.Fresh, want, r.Body)
	}
	return z
}

// get sends GET /api/x with tok to g.
func (g *revGateway) get(t *testing.T, tok string) response {
	t.Helper()
	return do(t, newReq(t, "GET", g.base+"/api/x", tok, nil))
}

// mint runs `kavach token mint` for revResource with scope repo:read and
// the given flags (--sub and --agent at least).
func (c *revCluster) mint(t *testing.T, args ...string) string {
	t.Helper()
	base := []string{"token", "mint", "--key", "key.jwk", "--iss", revIssuer, "--aud", revResource, "--scope", "repo:read"}
	if !slices.Contains(args, "--ttl") {
		base = append(base, "--ttl", "10m")
	}
	return strings.TrimSpace(kavach(t, c.keyDir, append(base, args...)...))
}

// revoke runs `kavach revoke … --redis <url>` and returns the entry it
// stored, as it printed it.
func (c *revCluster) revoke(t *testing.T, args ...string) revocation.Entry {
	t.Helper()
	args = append(append([]string{"revoke"}, args...), "--redis", c.redis.url())
	out, errOut, err := kavachEnv(c.keyDir, nil, args...)
	if err != nil {
		t.Fatalf("kavach %v: %v\nstdout: %s\nstderr: %s", args, err, out, errOut)
	}
	var res struct {
		Revoked *revocation.Entry `json:"revoked"`
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &res); err != nil || res.Revoked == nil {
		t.Fatalf("kavach %v printed %q, want {\"revoked\": <entry>} (%v)", args, out, err)
	}
	return *res.Revoked
}

// expectAllowed checks that g lets tok through to the upstream.
func (c *revCluster) expectAllowed(t *testing.T, g *revGateway, tok, what string) {
	t.Helper()
	c.up.take()
	r := g.get(t, tok)
	if r.Status != 200 || r.Body != "upstream ok" {
		t.Errorf("%s on %s: status %d body %q (WWW-Authenticate %q), want 200 from the upstream", what, g.name, r.Status, r.Body, r.Header.Get("WWW-Authenticate"))
	}
	if got := c.up.take(); r.Status == 200 && len(got) != 1 {
		t.Errorf("%s on %s: the upstream received %d requests, want 1", what, g.name, len(got))
	}
}

// expectRevoked checks that g answers 401 invalid_token "token revoked"
// to tok and forwards nothing.
func (c *revCluster) expectRevoked(t *testing.T, g *revGateway, tok, what string) {
	t.Helper()
	c.up.take()
	r := g.get(t, tok)
	if r.Status != 401 {
		t.Errorf("%s on %s: status %d body %q (WWW-Authenticate %q), want 401", what, g.name, r.Status, r.Body, r.Header.Get("WWW-Authenticate"))
		c.up.take()
		return
	}
	expectChallenge(t, r, 401, "invalid_token", "", "token revoked", revPRM)
	expectNoUpstream(t, c.up)
}

// expectUnavailable checks a 503 for a not-fresh revocation set: a
// Retry-After in whole seconds, and nothing forwarded.
func (c *revCluster) expectUnavailable(t *testing.T, r response, g *revGateway, what string) {
	t.Helper()
	if r.Status != 503 {
		t.Errorf("%s on %s: status %d body %q, want 503", what, g.name, r.Status, r.Body)
		return
	}
	ra := r.Header.Get("Retry-After")
	if n, err := strconv.Atoi(ra); err != nil || n <= 0 {
		t.Errorf("%s on %s: 503 with Retry-After %q, want a positive number of seconds", what, g.name, ra)
	}
	// DESIGN.md §4: every denial carries resource_metadata.
	if vals := r.Header.Values("WWW-Authenticate"); len(vals) != 1 {
		t.Errorf("%s on %s: 503 with WWW-Authenticate %q, want one Bearer challenge", what, g.name, vals)
	} else if ch, err := parseChallenge(vals[0]); err != nil || ch.Scheme != "Bearer" || ch.Params["resource_metadata"] != revPRM {
		t.Errorf("%s on %s: 503 challenge %q (%v), want Bearer with resource_metadata=%q", what, g.name, vals[0], err, revPRM)
	}
	expectNoUpstream(t, c.up)
}

// propagation polls every gateway with tok, concurrently, until each
// rejects it (401 "token revoked"), allowing only 200 before, and returns
// how long after start each gateway first rejected it. It fails the test
// when one still accepts the token 3 s after start.
func (c *revCluster) propagation(t *testing.T, start time.Time, tok string, gws ...*revGateway) []time.Duration {
	t.Helper()
	if len(gws) == 0 {
		gws = c.gws
	}
	type result struct {
		lat time.Duration
		r   response
		err error
	}
	results := make([]result, len(gws))
	var wg sync.WaitGroup
	for i, g := range gws {
		wg.Go(func() {
			for {
				r, err := probe(g.base+"/api/x", tok)
				if err != nil || r.Status != 200 {
					results[i] = result{lat: time.Since(start), r: r, err: err}
					return
				}
				if time.Since(start) > 3*time.Second {
					results[i] = result{r: r}
					return
				}
				time.Sleep(500 * time.Microsecond)
			}
		})
	}
	wg.Wait()
	c.up.take()
	lat := make([]time.Duration, len(gws))
	for i, res := range results {
		switch {
		case res.err != nil:
			t.Fatalf("waiting for the revocation on %s: %v", gws[i].name, res.err)
		case res.r.Status == 200:
			t.Fatalf("%s still accepts the token 3s after the revoke returned", gws[i].name)
		}
		expectChallenge(t, res.r, 401, "invalid_token", "", "token revoked", revPRM)
		lat[i] = res.lat
	}
	return lat
}

// probe is GET url with tok as a bearer token, without a testing.T (it
// runs on other goroutines).
func probe(url, tok string) (response, error) {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return response{}, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := httpClient.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return response{Status: resp.StatusCode, Header: resp.Header, Body: string(body)}, err
}

// waitUntil polls cond every 20 ms and fails the test after limit.
func waitUntil(t *testing.T, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %v", what, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// alive fails the test if the gateway process has exited: recovery must
// happen without a restart.
func (g *revGateway) alive(t *testing.T) {
	t.Helper()
	select {
	case <-g.proc.exited:
		t.Fatalf("%s (pid %d) exited:\n%s", g.name, g.proc.cmd.Process.Pid, g.proc.output.String())
	default:
	}
}

// statusOf is the status g answers to tok, 0 on a transport error (used
// while processes come and go).
func statusOf(url, tok string) int {
	r, err := probe(url, tok)
	if err != nil {
		return 0
	}
	return r.Status
}
