package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kavachgate/kavach/internal/redistest"
)

// rlGateway starts `kavach run` with a route of the cluster's resource
// carrying extra lines, over Redis when redisURL is set, auditing to
// ./trail.jsonl. It returns the gateway's base URL and directory.
func rlGateway(t *testing.T, keyDir, redisURL, lines string) (string, string, *upstream) {
	t.Helper()
	dir := t.TempDir()
	jwks, err := os.ReadFile(filepath.Join(keyDir, "jwks.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "jwks.json"), jwks, 0o644); err != nil {
		t.Fatal(err)
	}
	redis := ""
	if redisURL != "" {
		redis = "redis " + redisURL + "\n\t\tmax_staleness 2s"
	}
	p := freePort(t)
	up := newUpstream(t)
	caddyfile := fmt.Sprintf(`{
	admin off
	kavach {
		trusted_keys %s ./jwks.json
		%s
		audit file ./trail.jsonl
	}
}

http://127.0.0.1:%d {
	bind 127.0.0.1
	kavach /api/* {
		resource %s
		scope GET /api/* repo:read
		%s
	}
	reverse_proxy /api/* %s
}
`, revIssuer, redis, p, revResource, lines, up.addr())
	if err := os.WriteFile(filepath.Join(dir, "Caddyfile"), []byte(caddyfile), 0o644); err != nil {
		t.Fatal(err)
	}
	startGateway(t, dir, nil, p)
	return fmt.Sprintf("http://127.0.0.1:%d", p), dir, up
}

func rlKeys(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	kavach(t, dir, "keys", "generate", "--out", "key.jwk")
	jwks := kavach(t, dir, "keys", "jwks", "--in", "key.jwk")
	if err := os.WriteFile(filepath.Join(dir, "jwks.json"), []byte(jwks), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func rlMint(t *testing.T, keyDir, agent, scope string) string {
	t.Helper()
	return strings.TrimSpace(kavach(t, keyDir, "token", "mint", "--key", "key.jwk", "--iss", revIssuer, "--aud", revResource,
		"--scope", scope, "--sub", "usr_alice", "--agent", agent, "--ttl", "10m"))
}

// TestRateLimitSharedAcrossGateways: two gateways over one Redis share an
// agent's bucket: however the agent spreads its calls, the two together
// allow the limit and no more, and each refusal is a 429 with a
// Retry-After. A stalled Redis then costs a request a bounded wait and a
// 503 (rate_limit_fail closed, the default), never a forwarded request.
func TestRateLimitSharedAcrossGateways(t *testing.T) {
	t.Parallel()
	keys := rlKeys(t)
	srv := redistest.Start(t)
	g1, _, _ := rlGateway(t, keys, srv.URL(), "rate 10/h per agent")
	g2, _, _ := rlGateway(t, keys, srv.URL(), "rate 10/h per agent")
	warm := rlMint(t, keys, "agt_warm", "repo:read")
	for _, g := range []string{g1, g2} {
		waitUntil(t, 15*time.Second, g+" ready", func() bool {
			r, err := probe(g+"/api/x", warm)
			return err == nil && r.Status == 200
		})
	}
	tok := rlMint(t, keys, "agt_busy", "repo:read")
	var allowed, limited atomic.Int64
	var wg sync.WaitGroup
	for i := range 4 {
		g := []string{g1, g2}[i%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 8 {
				r, err := probe(g+"/api/x", tok)
				switch {
				case err != nil:
					t.Error(err)
					return
				case r.Status == 200:
					allowed.Add(1)
				case r.Status == 429 && r.Header.Get("Retry-After") != "" && strings.Contains(r.Header.Get("RateLimit-Policy"), `"agent";q=10;w=3600`):
					limited.Add(1)
				default:
					t.Errorf("%s: %d %v", g, r.Status, r.Header)
				}
			}
		}()
	}
	wg.Wait()
	if allowed.Load() != 10 || limited.Load() != 22 {
		t.Fatalf("across two gateways: %d allowed, %d limited; want 10 and 22", allowed.Load(), limited.Load())
	}

	// Redis stalls: fail closed within a bounded wait.
	other := rlMint(t, keys, "agt_other", "repo:read")
	if err := srv.Client().Do(context.Background(), "CLIENT", "PAUSE", "1500", "WRITE").Err(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r, err := probe(g1+"/api/x", other)
	if took := time.Since(start); err != nil || r.Status != 503 || r.Header.Get("Retry-After") == "" || took > time.Second {
		t.Fatalf("Redis paused: %v %+v after %v; want 503 with Retry-After within a second", err, r.Status, took)
	}
}

// TestReportOnlyThroughBinary: a report_only route forwards a request its
// rules deny, the trail's decision record says deny, enforced false, and
// `kavach audit query --decision deny --json` shows it; a request without
// a token is still 401.
func TestReportOnlyThroughBinary(t *testing.T) {
	t.Parallel()
	keys := rlKeys(t)
	g, dir, up := rlGateway(t, keys, "", "scope POST /api/* repo:write\n\t\treport_only")
	tok := rlMint(t, keys, "agt_r", "repo:read")
	waitUntil(t, 15*time.Second, "gateway ready", func() bool {
		r, err := probe(g+"/api/x", tok)
		return err == nil && r.Status == 200
	})
	if r := do(t, newReq(t, "POST", g+"/api/write", tok, strings.NewReader("x"))); r.Status != 200 {
		t.Fatalf("report-only would-be denial: %d %s", r.Status, r.Body)
	}
	if r := do(t, newReq(t, "POST", g+"/api/write", "", strings.NewReader("x"))); r.Status != 401 {
		t.Fatalf("no token on a report-only route: %d", r.Status)
	}
	// A relaxed policy denial (the token's methods) must not skip the
	// body limit: a Content-Length over the token's max_body stays 413.
	small := strings.TrimSpace(kavach(t, keys, "token", "mint", "--key", "key.jwk", "--iss", revIssuer, "--aud", revResource,
		"--scope", "repo:read", "--sub", "usr_alice", "--agent", "agt_small", "--ttl", "10m",
		"--constraint", "methods=GET", "--constraint", "max_body=16"))
	up.take()
	if r := do(t, newReq(t, "POST", g+"/api/big", small, strings.NewReader(strings.Repeat("x", 4096)))); r.Status != 413 {
		t.Fatalf("a body over max_body with a relaxed methods denial on a report-only route: %d, want 413", r.Status)
	}
	for _, s := range up.waitTake(300 * time.Millisecond) {
		if s.RequestURI == "/api/big" {
			t.Fatal("a Content-Length over the token's max_body reached the upstream on a report-only route")
		}
	}
	var found bool
	waitUntil(t, 10*time.Second, "the unenforced denial in the trail", func() bool {
		out, _, err := kavachRun(dir, "audit", "query", "--decision", "deny", "--json", "./trail.jsonl")
		if err != nil {
			return false
		}
		for _, line := range strings.Split(out, "\n") {
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) != nil {
				continue
			}
			if rec["enforced"] == false && rec["actor"] == "agt_r" && rec["method"] == "POST" &&
				strings.HasPrefix(fmt.Sprint(rec["reason"]), "insufficient_scope") {
				found = true
			}
		}
		return found
	})
}

// TestTokenRateThroughBinary: a token minted with a rate constraint
// (kvc.cnst.rate) is limited on a route that has no rate line.
func TestTokenRateThroughBinary(t *testing.T) {
	t.Parallel()
	keys := rlKeys(t)
	g, _, _ := rlGateway(t, keys, "", "")
	tok := strings.TrimSpace(kavach(t, keys, "token", "mint", "--key", "key.jwk", "--iss", revIssuer, "--aud", revResource,
		"--scope", "repo:read", "--sub", "usr_alice", "--agent", "agt_t", "--ttl", "10m", "--constraint", "rate=2/h"))
	warm := rlMint(t, keys, "agt_warm", "repo:read")
	waitUntil(t, 15*time.Second, "gateway ready", func() bool {
		r, err := probe(g+"/api/x", warm)
		return err == nil && r.Status == 200
	})
	var codes []int
	for range 3 {
		codes = append(codes, do(t, newReq(t, "GET", g+"/api/x", tok, nil)).Status)
	}
	if codes[0] != 200 || codes[1] != 200 || codes[2] != 429 {
		t.Fatalf("a token with rate=2/h: %v, want 200 200 429", codes)
	}
}
