package integration

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestIssuerClusterReseed: the issuer in one process, a gateway in another
// trusting it by URL, both on one real redis-server (DESIGN.md §5):
// revoking an agent at the issuer stops its token at the remote gateway;
// when Redis loses its data, the issuer re-seeds it from its store, so a
// gateway started afterwards rejects the token too.
func TestIssuerClusterReseed(t *testing.T) {
	rd := startRevRedis(t)
	// The issuer's process also protects a route (so the test can use
	// its CLI fixture); the second gateway is the one under test.
	f := startIssuerRedis(t, rd.url())
	ctx := context.Background()
	f.cli(t, nil, "user", "create", "--id", "usr_carol", "--name", "carol", "--entitle", f.resource+"=repo:read")
	var a, b agentOut
	f.cli(t, &a, "agent", "create", "--name", "a", "--owner", "usr_carol", "--scope", "repo:read", "--ttl", "1h")
	f.cli(t, &b, "agent", "create", "--name", "b", "--owner", "usr_carol", "--scope", "repo:read", "--ttl", "1h")
	ta, err := f.clientToken(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := f.clientToken(ctx, b)
	if err != nil {
		t.Fatal(err)
	}

	remote := startRemoteGateway(t, f, rd.url())
	get := func(gw, tok string) int {
		return do(t, newReq(t, http.MethodGet, gw+"/api/repos/x", tok, nil)).Status
	}
	if r := do(t, newReq(t, http.MethodGet, remote+"/api/repos/x", ta, nil)); r.Status != http.StatusOK {
		t.Fatalf("remote gateway, live token: %d %s %v", r.Status, r.Body, r.Header)
	}
	f.cli(t, nil, "agent", "revoke", a.ID)
	waitStatus(t, func() int { return get(remote, ta) }, http.StatusUnauthorized, "remote gateway after the revoke")
	if s := get(remote, tb); s != http.StatusOK {
		t.Errorf("remote gateway, other agent: %d", s)
	}

	// Redis loses everything; the issuer notices the missing epoch and
	// re-seeds from its store.
	c := redis.NewClient(&redis.Options{Addr: rd.addr(), Protocol: 2})
	defer c.Close()
	if err := c.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		n, err := c.Exists(ctx, "kavach:rev:epoch").Result()
		if err == nil && n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the issuer did not re-seed Redis within 15 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	late := startRemoteGateway(t, f, rd.url())
	if s := get(late, ta); s != http.StatusUnauthorized {
		t.Errorf("gateway started after the re-seed accepted a revoked agent's token: %d", s)
	}
	if s := get(late, tb); s != http.StatusOK {
		t.Errorf("gateway started after the re-seed, other agent: %d", s)
	}
	// The running remote gateway never forgot.
	if s := get(remote, ta); s != http.StatusUnauthorized {
		t.Errorf("running gateway after Redis lost its data: %d", s)
	}
}

// startIssuerRedis is startIssuer in cluster mode.
func startIssuerRedis(t *testing.T, redisURL string) *issuerFixture {
	t.Helper()
	return startIssuerWith(t, "sqlite ./data/kavach.db", "redis "+redisURL+"\n\t\tmax_staleness 5s")
}

// startRemoteGateway runs a second bin/kavach that trusts f's issuer by
// URL and shares Redis; it protects the same resource path and returns
// its base URL.
func startRemoteGateway(t *testing.T, f *issuerFixture, redisURL string) string {
	t.Helper()
	dir := t.TempDir()
	p := freePort(t)
	gw := fmt.Sprintf("http://127.0.0.1:%d", p)
	caddyfile := fmt.Sprintf(`{
	admin off
	persist_config off
	kavach {
		issuer %s
		redis %s
		max_staleness 5s
	}
}
%s {
	kavach /api/* {
		resource %s
		scope GET /api/repos/* repo:read
	}
	reverse_proxy /api/* %s
}
`, f.issuer, redisURL, gw, f.resource, f.up.addr())
	if err := os.WriteFile(filepath.Join(dir, "Caddyfile"), []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	startGateway(t, dir, nil, p)
	return gw
}

// waitStatus polls until get returns want (revocation travels through
// Redis: milliseconds, but not zero).
func waitStatus(t *testing.T, get func() int, want int, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s := get()
		if s == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d, want %d", what, s, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
