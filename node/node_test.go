package node

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"

	"github.com/kavachgate/kavach/audit"
	"github.com/kavachgate/kavach/gateway"
	"github.com/kavachgate/kavach/internal/redistest"
	"github.com/kavachgate/kavach/revocation"
	"github.com/kavachgate/kavach/token"
)

const (
	testIssuer   = "https://issuer.example"
	testResource = "https://api.example/v1"
	adminSecret  = "s3cret"
)

// testNode is a runtime with its admin listener on a free loopback port.
type testNode struct {
	*Runtime
	admin string // host:port of the admin listener; "" without one
}

// start builds and starts a runtime over cfg, registering issuers, and
// stops and releases it when the test ends.
func start(t *testing.T, cfg Config, shared *Shared, issuers ...IssuerConfig) *testNode {
	t.Helper()
	n := &testNode{}
	if cfg.Admin == "" {
		cfg.Admin = "127.0.0.1:0"
	}
	if cfg.AdminToken == "" {
		cfg.AdminToken = adminSecret
	}
	rt, err := New(cfg, Options{
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		DataDir: t.TempDir(),
		Shared:  shared,
		Listen: func(addr string) (net.Listener, error) {
			ln, err := net.Listen("tcp", addr)
			if err == nil {
				n.admin = ln.Addr().String()
			}
			return ln, err
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	n.Runtime = rt
	for _, ic := range issuers {
		if _, err := rt.AddIssuer(ic, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := rt.Start(); err != nil {
		_ = rt.Release()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := rt.Stop(); err != nil {
			t.Error(err)
		}
		if err := rt.Release(); err != nil {
			t.Error(err)
		}
	})
	return n
}

// call makes an admin request and decodes the JSON answer into out.
func (n *testNode) call(t *testing.T, method, path, secret string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		data, _ := json.Marshal(body)
		rd = bytes.NewReader(data)
	}
	req, _ := http.NewRequest(method, "http://"+n.admin+path, rd)
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("%s %s: %d, body: %v", method, path, resp.StatusCode, err)
		}
	}
	return resp.StatusCode
}

// adminError is the admin listener's one error shape.
type adminError struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

// keyFile writes a fresh signing key's public JWK set into a file.
func keyFile(t *testing.T) (*token.SigningKey, string) {
	t.Helper()
	key, err := token.GenerateSigningKey(jwa.EdDSA)
	if err != nil {
		t.Fatal(err)
	}
	set, err := token.PublicSet(key)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(set)
	file := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return key, file
}

func mint(t *testing.T, key *token.SigningKey) (string, string) {
	t.Helper()
	now := time.Now()
	jti := token.NewID(token.PrefixToken)
	agents := []string{"agt_1"}
	signed, err := token.Mint(key, &token.Claims{
		Issuer: testIssuer, Subject: "usr_alice", Actor: token.ActorFor(agents), ClientID: "agt_1",
		Audience: token.Audience{testResource}, Scope: "repository:read", ID: jti,
		IssuedAt: now.Unix(), Expiry: now.Add(token.DefaultTTL).Unix(),
		Kavach: &token.Kavach{Version: 1, Chain: []string{"dlg_1"}, Agents: agents},
	})
	if err != nil {
		t.Fatal(err)
	}
	return signed, jti
}

// decide sends one request with tok through the node's gateway and
// returns its status.
func decide(t *testing.T, rt *Runtime, tok string) int {
	t.Helper()
	route := gateway.Route{Resource: testResource, Scopes: []string{"repository:read"}}
	if err := route.Compile(); err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, testResource+"/repos", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	rt.Ready(r.Context())
	var a gateway.Admission
	rt.Gateway().Admit(&route, gateway.Request{HTTP: r}, &a)
	if !a.Allowed() {
		return a.Status
	}
	w := httptest.NewRecorder()
	err := rt.Gateway().Forward(w, r, &a, func(w http.ResponseWriter, _ *http.Request) error {
		w.WriteHeader(http.StatusOK)
		return nil
	}, func(error) int { return 0 })
	if err != nil {
		t.Fatal(err)
	}
	return w.Code
}

// TestMemoryNode: a single node with a trusted key file lets a token
// through, records it in its audit file, stops it once it is revoked on
// the admin listener, and keeps that revocation in its journal; the trail
// verifies with the key written beside it.
func TestMemoryNode(t *testing.T) {
	t.Parallel()
	key, file := keyFile(t)
	trail := filepath.Join(t.TempDir(), "audit.jsonl")
	shared := NewShared()
	n := start(t, Config{
		TrustedKeys: []TrustedKeys{{Issuer: testIssuer, File: file}},
		Audit:       &audit.Config{Sink: audit.SinkFile, Path: trail},
	}, shared)
	tok, jti := mint(t, key)
	if got := decide(t, n.Runtime, tok); got != http.StatusOK {
		t.Fatalf("a good token: %d", got)
	}
	if st := n.call(t, http.MethodPost, revocation.RevocationsPath, adminSecret, map[string]string{"id": jti}, nil); st != http.StatusOK && st != http.StatusCreated && st != http.StatusNoContent {
		t.Fatalf("POST /v1/revocations: %d", st)
	}
	if got := decide(t, n.Runtime, tok); got != http.StatusUnauthorized {
		t.Fatalf("a revoked token: %d, want 401", got)
	}
	entries, err := n.journal.Load(time.Now())
	if err != nil || len(entries) != 1 || entries[0].ID != jti {
		t.Fatalf("journal: %v %+v", err, entries)
	}
	var ready readiness
	if st := n.call(t, http.MethodGet, "/readyz", "", nil, &ready); st != http.StatusOK || ready.Mode != revocation.ModeMemory || ready.Entries != 1 {
		t.Fatalf("/readyz: %d %+v", st, ready)
	}
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := n.Release(); err != nil {
		t.Fatal(err)
	}
	if shared.len() != 0 {
		t.Fatalf("%d shared parts left after the last release", shared.len())
	}
	pub, err := audit.LoadPublicKey(trail + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := audit.VerifyTrail(context.Background(), trail, pub, audit.VerifyOptions{})
	if err != nil || !rep.Complete() || rep.Records < 3 {
		t.Fatalf("trail: %v %+v", err, rep)
	}
}

// TestReloadSharesParts: a second runtime of the same settings (a
// reload) takes the first one's revocation set, session store and audit
// writer; the parts outlive the first and close with the last.
func TestReloadSharesParts(t *testing.T) {
	t.Parallel()
	key, file := keyFile(t)
	shared := NewShared()
	cfg := Config{
		TrustedKeys: []TrustedKeys{{Issuer: testIssuer, File: file}},
		Audit:       &audit.Config{Sink: audit.SinkFile, Path: filepath.Join(t.TempDir(), "audit.jsonl")},
	}
	old := start(t, cfg, shared)
	tok, jti := mint(t, key)
	until := revocation.DefaultUntil(time.Now(), time.Hour, token.Leeway)
	if err := old.Gateway().Revoked.Revoke(context.Background(), revocation.Entry{ID: jti, Until: until}); err != nil {
		t.Fatal(err)
	}
	cur := start(t, cfg, shared)
	if cur.rev != old.rev || cur.Sessions() != old.Sessions() || cur.AuditWriter() != old.AuditWriter() {
		t.Fatal("the reloaded runtime has parts of its own")
	}
	if err := old.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := old.Release(); err != nil {
		t.Fatal(err)
	}
	if got := decide(t, cur.Runtime, tok); got != http.StatusUnauthorized {
		t.Fatalf("a token revoked before the reload: %d, want 401", got)
	}
	if cur.AuditWriter().Err() != nil {
		t.Fatalf("the shared writer closed with the old runtime: %v", cur.AuditWriter().Err())
	}
}

// TestAdminListener: the admin listener's one error shape and bearer
// check, readiness without a token, and ?issuer= picking each issuer of
// the node (unknown: 404 unknown_issuer).
func TestAdminListener(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first, second := "http://127.0.0.1:9001", "http://127.0.0.1:9002"
	n := start(t, Config{}, nil,
		IssuerConfig{Issuer: first, DSN: filepath.Join(dir, "a.db")},
		IssuerConfig{Issuer: second, DSN: filepath.Join(dir, "b.db")})

	for _, tt := range []struct {
		secret, desc string
	}{{"", "admin token required"}, {"wrong", "admin token rejected"}} {
		var e adminError
		if st := n.call(t, http.MethodGet, "/v1/users", tt.secret, nil, &e); st != http.StatusUnauthorized || e.Error != "unauthorized" || e.Description != tt.desc {
			t.Errorf("token %q: %d %+v", tt.secret, st, e)
		}
	}
	for _, tt := range []struct {
		method, path string
		status       int
		code         string
	}{
		{http.MethodGet, "/v1/nothing", http.StatusNotFound, "not_found"},
		{http.MethodDelete, "/v1/users", http.StatusMethodNotAllowed, "method_not_allowed"},
		{http.MethodGet, "/v1/users?issuer=https://other.example", http.StatusNotFound, "unknown_issuer"},
	} {
		var e adminError
		if st := n.call(t, tt.method, tt.path, adminSecret, nil, &e); st != tt.status || e.Error != tt.code || e.Description == "" {
			t.Errorf("%s %s: %d %+v, want %d %s", tt.method, tt.path, st, e, tt.status, tt.code)
		}
	}
	if st := n.call(t, http.MethodGet, "/readyz", "", nil, &readiness{}); st != http.StatusOK {
		t.Errorf("/readyz: %d", st)
	}

	// A user made at the second issuer is the second's only.
	user := map[string]any{"id": "usr_bob", "name": "bob", "entitlements": map[string][]string{testResource: {"repository:read"}}}
	if st := n.call(t, http.MethodPost, "/v1/users?issuer="+second, adminSecret, user, nil); st != http.StatusCreated {
		t.Fatalf("POST /v1/users at the second issuer: %d", st)
	}
	count := func(query string) int {
		var out json.RawMessage
		if st := n.call(t, http.MethodGet, "/v1/users"+query, adminSecret, nil, &out); st != http.StatusOK {
			t.Fatalf("GET /v1/users%s: %d", query, st)
		}
		return strings.Count(string(out), `"usr_bob"`)
	}
	if a, b, dflt := count("?issuer="+first), count("?issuer="+second), count(""); a != 0 || b != 1 || dflt != 0 {
		t.Fatalf("usr_bob listed %d times at the first issuer, %d at the second, %d without ?issuer= (want 0, 1, 0: the first)", a, b, dflt)
	}
}

// TestIssuerNode: an issuer in the node signs tokens its gateway accepts
// (its keys come in process), and an admin revocation is kept in its
// store, so a node restarted on that store refuses the token again.
func TestIssuerNode(t *testing.T) {
	t.Parallel()
	dsn := filepath.Join(t.TempDir(), "issuer.db")
	iss := IssuerConfig{Issuer: "http://127.0.0.1:9003", DSN: dsn}
	n := start(t, Config{Issuers: []string{iss.Issuer}}, nil, iss)
	if n.local[iss.Issuer].set == nil || n.local[iss.Issuer].set.Len() == 0 {
		t.Fatal("no keys of the issuer in the ring")
	}
	if st := n.call(t, http.MethodPost, revocation.RevocationsPath, adminSecret, map[string]string{"id": "agt_gone"}, nil); st >= 300 {
		t.Fatalf("POST /v1/revocations: %d", st)
	}
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := n.Release(); err != nil {
		t.Fatal(err)
	}
	again := start(t, Config{Issuers: []string{iss.Issuer}}, nil, iss)
	if !again.Gateway().Revoked.IsRevoked("agt_gone") {
		t.Fatal("the revocation did not survive the restart")
	}
}

// TestRemoteIssuerNeedsRedis: trusting a Kavach issuer of another process
// without Redis does not start (it would not hear the revocations).
func TestRemoteIssuerNeedsRedis(t *testing.T) {
	t.Parallel()
	rt, err := New(Config{Issuers: []string{"http://127.0.0.1:1"}}, Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Release()
	err = rt.Start()
	defer rt.Stop()
	if err == nil || !strings.Contains(err.Error(), "needs shared revocation") {
		t.Fatalf("Start = %v", err)
	}
}

// TestRedisNodes: two nodes (two processes: two Shareds) on one Redis
// share revocations; each process has one Redis client, held by every
// part that uses Redis; when Redis loses its data the node with the
// issuer writes its store's revocations back.
func TestRedisNodes(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	key, file := keyFile(t)
	iss := IssuerConfig{Issuer: "http://127.0.0.1:9004", DSN: filepath.Join(t.TempDir(), "issuer.db")}
	cfg := Config{Redis: srv.URL(), TrustedKeys: []TrustedKeys{{Issuer: testIssuer, File: file}}}
	sharedA := NewShared()
	a := start(t, cfg, sharedA, iss)
	b := start(t, cfg, NewShared())
	if st := a.RevocationStatus(); st.Mode != revocation.ModeRedis || !st.Fresh {
		t.Fatalf("a fresh Redis node: %+v", st)
	}

	tok, jti := mint(t, key)
	if got := decide(t, b.Runtime, tok); got != http.StatusOK {
		t.Fatalf("a good token: %d", got)
	}
	if st := a.call(t, http.MethodPost, revocation.RevocationsPath, adminSecret, map[string]string{"id": jti}, nil); st >= 300 {
		t.Fatalf("POST /v1/revocations: %d", st)
	}
	waitFor(t, "the other node hears the revocation", func() bool { return b.Gateway().Revoked.IsRevoked(jti) })
	if got := decide(t, b.Runtime, tok); got != http.StatusUnauthorized {
		t.Fatalf("a token revoked at the other node: %d, want 401", got)
	}

	clients := 0
	sharedA.mu.Lock()
	for k, p := range sharedA.parts {
		if strings.HasPrefix(k, "kavach.redis:") {
			clients++
			// The runtime, its revocation set, its session store.
			if p.refs < 3 {
				t.Errorf("the Redis client is held %d times, want it shared by the runtime, revocation and sessions", p.refs)
			}
		}
	}
	sharedA.mu.Unlock()
	if clients != 1 {
		t.Fatalf("%d Redis clients for one URL", clients)
	}

	ctx := context.Background()
	rc := srv.Client()
	if err := rc.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the revocation back in Redis after FLUSHALL", func() bool {
		n, err := rc.Exists(ctx, revocation.RedisEpochKey, revocation.RedisKeyPrefix+"id:"+jti).Result()
		return err == nil && n == 2
	})
}

// TestReadyBounded: a node whose Redis is not there starts and answers
// (503 from the gateway, not a hung request) within about FirstLoadWait,
// and once Ready has nothing left to wait for it costs nothing.
func TestReadyBounded(t *testing.T) { // not parallel: AllocsPerRun
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "redis://" + ln.Addr().String() + "/0"
	ln.Close()
	key, file := keyFile(t)
	rt, err := New(Config{Redis: dead, TrustedKeys: []TrustedKeys{{Issuer: testIssuer, File: file}}}, Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Stop(); rt.Release() })
	// A request before Start (Caddy may serve first) is held, not refused.
	done := make(chan int)
	tok, _ := mint(t, key)
	go func() { done <- decide(t, rt, tok) }()
	if err := rt.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case st := <-done:
		if st != http.StatusServiceUnavailable {
			t.Fatalf("a request while Redis is down: %d, want 503", st)
		}
	case <-time.After(10 * FirstLoadWait):
		t.Fatal("Ready held a request far past FirstLoadWait")
	}
	rt.Ready(context.Background())
	if !rt.ready.Load() {
		t.Fatal("Ready still waits after FirstLoadWait")
	}
	if allocs := testing.AllocsPerRun(100, func() { rt.Ready(context.Background()) }); allocs != 0 {
		t.Fatalf("Ready once ready: %v allocations", allocs)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 15 s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestIssuerTrail: the issuer of a node gets the node's audit trail for
// its console (issuer.Config.Trail): it shows what the gateway recorded,
// newest first with outcomes, and verifies it with the node's audit key.
func TestIssuerTrail(t *testing.T) {
	t.Parallel()
	key, file := keyFile(t)
	iss := IssuerConfig{Issuer: "http://127.0.0.1:9004", DSN: filepath.Join(t.TempDir(), "issuer.db")}
	n := start(t, Config{TrustedKeys: []TrustedKeys{{Issuer: testIssuer, File: file}}}, nil, iss) // the default trail
	tb := n.local[iss.Issuer].Trail()
	if tb == nil {
		t.Fatal("the issuer got no trail")
	}
	tok, _ := mint(t, key)
	if got := decide(t, n.Runtime, tok); got != http.StatusOK {
		t.Fatalf("a good token: %d", got)
	}
	other, _ := mint(t, key)
	if st := n.call(t, http.MethodPost, revocation.RevocationsPath, adminSecret, map[string]string{"id": "agt_1"}, nil); st >= 300 {
		t.Fatalf("POST /v1/revocations: %d", st)
	}
	if got := decide(t, n.Runtime, other); got != http.StatusUnauthorized {
		t.Fatalf("a revoked agent: %d", got)
	}
	var got []audit.BrowseEntry
	waitFor(t, "two requests in the trail", func() bool {
		var err error
		got, err = tb.Browse(context.Background(), audit.Filter{Sub: "usr_alice", Kinds: []audit.Kind{audit.KindDecision}}, 10)
		return err == nil && len(got) == 2
	})
	if got[0].Decision.Decision != audit.Deny || got[0].Status() != http.StatusUnauthorized || got[1].Decision.Decision != audit.Allow {
		t.Fatalf("newest first: %+v", got)
	}
	waitFor(t, "the allowed request's outcome", func() bool {
		got, _ = tb.Browse(context.Background(), audit.Filter{Decision: audit.Allow}, 10)
		return len(got) == 1 && got[0].Outcome != nil && got[0].Outcome.Status == http.StatusOK
	})
	pub, err := audit.LoadPublicKey(filepath.Join(n.opts.DataDir, "audit", "audit.pub"))
	if err != nil {
		t.Fatal(err)
	}
	var st audit.TrailStatus
	waitFor(t, "a verification pass", func() bool {
		st, err = tb.Status(context.Background())
		return err == nil && !st.Pending && st.Records > 0
	})
	if !st.Verified || st.Problem != "" || st.KeyFingerprint != "sha256 "+audit.KeyFingerprint(pub) {
		t.Fatalf("status %+v", st)
	}
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := tb.Status(context.Background()); err == nil {
		t.Error("the trail is still open after Stop")
	}
}
