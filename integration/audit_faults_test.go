//go:build linux

// Linux only: the disk-full fault is injected with prlimit(2) on the
// running gateway (RLIMIT_FSIZE), which the other platforms lack.

package integration

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kavachgate/kavach/audit"
)

// Faults of the audit trail through the real gateway process (issue 7,
// "Faults"): a sink that cannot write, kill -9 under load, a long SSE
// stream, and a trail cut short, caught by the Redis witness. The audit
// package's own tests cover the writer and the file sink in process
// (faulty segment files, a killed writer child, verify of cut trails);
// these show what a client of `kavach run` and a user of `kavach audit
// verify` see.

// auditGW is one gateway directory: keys, a Caddyfile with
// `audit file ./audit.jsonl` protecting /api/* in front of an upstream,
// and the gateway process running on it. Restarts reuse the port, so
// tokens (bound to the resource URL) stay valid.
type auditGW struct {
	dir, addr, res string
	port           int
	trail          string
	proc           *gatewayProc
	client         *http.Client
}

// newAuditGW writes the keys and the Caddyfile; redisURL, when set, is the
// kavach `redis` option (which makes Redis the audit witness too).
func newAuditGW(t *testing.T, upstreamAddr, redisURL string, routeLines ...string) *auditGW {
	t.Helper()
	g := &auditGW{dir: t.TempDir(), port: freePort(t)}
	newKeys(t, g.dir)
	g.addr = fmt.Sprintf("127.0.0.1:%d", g.port)
	g.res = "http://" + g.addr + "/api"
	g.trail = filepath.Join(g.dir, "audit.jsonl")
	var redisOpt string
	if redisURL != "" {
		redisOpt = "\n\t\tredis " + redisURL
	}
	caddyfile := fmt.Sprintf(`{
	admin off
	kavach {
		trusted_keys %[1]s ./jwks.json
		audit file ./audit.jsonl%[5]s
	}
}

http://%[2]s {
	bind 127.0.0.1
	kavach /api/* {
		resource %[3]s
		scope GET /api/* repo:read%[6]s
	}
	reverse_proxy /api/* %[4]s
}
`, gwIssuer, g.addr, g.res, upstreamAddr, redisOpt, strings.Join(append([]string{""}, routeLines...), "\n\t\t"))
	if err := os.WriteFile(filepath.Join(g.dir, "Caddyfile"), []byte(caddyfile), 0o644); err != nil {
		t.Fatal(err)
	}
	// Its own connection pool: a killed gateway leaves dead keep-alive
	// connections behind.
	g.client = &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	t.Cleanup(g.client.CloseIdleConnections)
	return g
}

func (g *auditGW) start(t *testing.T) {
	t.Helper()
	g.client.CloseIdleConnections()
	g.proc = startGateway(t, g.dir, nil, g.port)
}

// mint returns a repo:read token of usr_alice's agent for the route, with
// extra `token mint` arguments.
func (g *auditGW) mint(t *testing.T, agent string, extra ...string) string {
	t.Helper()
	args := []string{"token", "mint", "--key", "key.jwk", "--iss", gwIssuer, "--aud", g.res,
		"--sub", "usr_alice", "--agent", agent, "--scope", "repo:read", "--ttl", "30m"}
	return strings.TrimSpace(kavach(t, g.dir, append(args, extra...)...))
}

// get sends GET /api<path> with tok and reads the answer; a transport
// error is status 0. It takes no testing.T: clients run on goroutines.
func (g *auditGW) get(path, tok string) (int, http.Header) {
	req, err := http.NewRequest("GET", g.res+path, nil)
	if err != nil {
		return 0, nil
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := g.client.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return 0, nil
	}
	return resp.StatusCode, resp.Header
}

// stop sends SIGTERM (a graceful stop: flush, final checkpoint) and waits.
func (g *auditGW) stop(t *testing.T) {
	t.Helper()
	if err := g.proc.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	g.wait(t, "SIGTERM")
}

// kill sends SIGKILL (no flush, no final checkpoint) and waits.
func (g *auditGW) kill(t *testing.T) {
	t.Helper()
	if err := g.proc.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	g.wait(t, "SIGKILL")
}

func (g *auditGW) wait(t *testing.T, after string) {
	t.Helper()
	select {
	case <-g.proc.exited:
	case <-time.After(60 * time.Second):
		t.Fatalf("kavach (pid %d) did not exit within 60s of %s:\n%s", g.proc.cmd.Process.Pid, after, g.proc.output.String())
	}
}

// alive fails the test if the gateway has exited.
func (g *auditGW) alive(t *testing.T) {
	t.Helper()
	select {
	case <-g.proc.exited:
		t.Fatalf("kavach (pid %d) exited:\n%s", g.proc.cmd.Process.Pid, g.proc.output.String())
	default:
	}
}

// verify runs `kavach audit verify [args] file` in the gateway's directory
// and returns its output and whether it exited 0.
func (g *auditGW) verify(t *testing.T, file string, args ...string) (string, bool) {
	t.Helper()
	out, errOut, err := kavachRun(g.dir, append(append([]string{"audit", "verify"}, args...), file)...)
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("kavach audit verify: %v", err)
	}
	return out + errOut, err == nil
}

// mustVerify fails the test unless `audit verify [args] audit.jsonl`
// passes; it returns the output.
func (g *auditGW) mustVerify(t *testing.T, args ...string) string {
	t.Helper()
	out, ok := g.verify(t, "audit.jsonl", args...)
	if !ok || !strings.HasPrefix(out, "ok:") {
		t.Fatalf("audit verify %v does not pass:\n%s", args, out)
	}
	return out
}

// trailIndex is a trail's request records: allow decisions by path,
// outcomes by request_id.
type trailIndex struct {
	decision map[string]audit.Record
	outcome  map[string]audit.Record
}

func indexTrail(recs []audit.Record) trailIndex {
	ix := trailIndex{decision: map[string]audit.Record{}, outcome: map[string]audit.Record{}}
	for _, r := range recs {
		switch {
		case r.Kind == audit.KindDecision && r.Decision == audit.Allow:
			ix.decision[r.Path] = r
		case r.Kind == audit.KindOutcome:
			ix.outcome[r.RequestID] = r
		}
	}
	return ix
}

// waitTrail reads the trail until cond holds and fails the test after
// limit (a bound, not a measurement).
func waitTrail(t *testing.T, path string, limit time.Duration, what string, cond func(trailIndex) bool) trailIndex {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		ix := indexTrail(trailRecords(t, path))
		if cond(ix) {
			return ix
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not in the trail within %v", what, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// setFileSizeLimit sets the soft RLIMIT_FSIZE of a running process. Writes
// past soft bytes fail with EFBIG (the SIGXFSZ that comes with them is
// ignored by Go programs that do not ask for it), which is what a full
// disk looks like to the trail; raising it again frees the disk. Unlike a
// full filesystem it needs no mount privilege, works as root, and touches
// no other process.
func setFileSizeLimit(t *testing.T, pid int, soft uint64) {
	t.Helper()
	var lim unix.Rlimit
	if err := unix.Prlimit(pid, unix.RLIMIT_FSIZE, nil, &lim); err != nil {
		t.Fatalf("prlimit: %v", err)
	}
	lim.Cur = min(soft, lim.Max)
	if err := unix.Prlimit(pid, unix.RLIMIT_FSIZE, &lim, nil); err != nil {
		t.Fatalf("prlimit: %v", err)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// sent is one request a client made and what it got.
type sent struct {
	path     string // after /api
	required bool   // the token carried audit: required
	status   int    // 0: transport error
}

// heldUpstream is an upstream that records the request URIs it gets and
// answers "upstream ok"; a request under /api/held/ gets its answer only
// once release is closed.
type heldUpstream struct {
	srv     *httptest.Server
	mu      sync.Mutex
	uris    []string
	release chan struct{}
}

func newHeldUpstream(t *testing.T) *heldUpstream {
	u := &heldUpstream{release: make(chan struct{})}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.uris = append(u.uris, r.RequestURI)
		u.mu.Unlock()
		if strings.HasPrefix(r.URL.Path, "/api/held/") {
			select {
			case <-u.release:
			case <-r.Context().Done():
				return
			}
		}
		_, _ = io.WriteString(w, "upstream ok")
	}))
	t.Cleanup(u.srv.Close)
	return u
}

// forwarded is the set of request URIs the upstream got.
func (u *heldUpstream) forwarded() map[string]bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	m := make(map[string]bool, len(u.uris))
	for _, p := range u.uris {
		m[p] = true
	}
	return m
}

// checkAnswered checks the final trail and the upstream against what the
// clients got: a request answered 200 was forwarded and has its decision
// and outcome records; one answered 503 never reached the upstream and
// has no outcome (nor, unless audit: required queued it, a decision).
func checkAnswered(t *testing.T, g *auditGW, forwarded map[string]bool, log []sent) {
	t.Helper()
	ix := indexTrail(trailRecords(t, g.trail))
	var ok, refused, queuedRefused int
	for _, s := range log {
		p := "/api" + s.path
		d, hasDecision := ix.decision[p]
		switch s.status {
		case http.StatusOK:
			ok++
			if !forwarded[p] {
				t.Errorf("GET %s was answered 200 but the upstream never saw it", p)
			}
			if !hasDecision {
				t.Errorf("GET %s was answered 200 but has no decision record", p)
				continue
			}
			if o, has := ix.outcome[d.RequestID]; !has || o.Status != http.StatusOK {
				t.Errorf("GET %s was answered 200 but its outcome record is %+v (found: %v)", p, o, has)
			}
		case http.StatusServiceUnavailable:
			refused++
			if forwarded[p] {
				t.Errorf("GET %s was answered 503 but reached the upstream", p)
			}
			if !hasDecision {
				continue
			}
			if !s.required {
				t.Errorf("GET %s was refused (Write refused its record) but the trail has a decision for it: %+v", p, d)
			}
			// WriteDurable's record stays queued when the disk fails and
			// is written once it recovers; the gateway then also writes
			// an outcome saying the request was refused, never forwarded.
			if o, has := ix.outcome[d.RequestID]; !has || o.Status != http.StatusServiceUnavailable {
				t.Errorf("GET %s was answered 503 after its decision was queued, but its outcome record is %+v (found: %v), want status 503", p, o, has)
			}
			queuedRefused++
		default:
			t.Errorf("GET %s (required=%v): status %d", p, s.required, s.status)
		}
	}
	t.Logf("%d answered 200, %d refused with 503 (%d audit: required with an allow decision and a 503 outcome in the trail)", ok, refused, queuedRefused)
}

// TestAuditFaultSinkFull fills the "disk" under a running gateway: its
// RLIMIT_FSIZE drops to the trail's size plus one byte, so every append is
// cut short, fails with EFBIG and is undone. It checks what clients and
// the auditor see:
//
//   - while the trail cannot write, allowed requests get 503 with
//     Retry-After (audit: required at once, then every one), the upstream
//     never sees a request that got 503, the gateway keeps running and the
//     file on disk still verifies;
//   - a request forwarded before the disk filled and answered while it is
//     full keeps its outcome record (written once the disk frees);
//   - once the disk is freed the gateway answers 200 again by itself;
//   - stopped (SIGTERM) while the disk is full, it still exits, and a
//     restart continues the trail with a linked stream;
//   - at the end `audit verify` passes and every request answered 200 has
//     its decision and outcome records.
func TestAuditFaultSinkFull(t *testing.T) {
	t.Parallel()
	up := newHeldUpstream(t)
	g := newAuditGW(t, up.srv.Listener.Addr().String(), "")
	g.start(t)
	plain := g.mint(t, "agt_plain")
	required := g.mint(t, "agt_required", "--constraint", "audit=required")

	var log []sent
	send := func(req bool) sent {
		s := sent{path: fmt.Sprintf("/n/%d", len(log)), required: req}
		tok := plain
		if req {
			tok = required
		}
		var h http.Header
		s.status, h = g.get(s.path, tok)
		if s.status == http.StatusServiceUnavailable && h.Get("Retry-After") == "" {
			t.Errorf("503 for %s without Retry-After", s.path)
		}
		log = append(log, s)
		return s
	}
	expect := func(what string, s sent, want int) {
		t.Helper()
		if s.status != want {
			t.Fatalf("%s: GET /api%s (audit required: %v): status %d, want %d\n%s", what, s.path, s.required, s.status, want, g.proc.output.String())
		}
	}
	// durable waits until every 200 so far has its records on disk: the
	// faults below are about what comes after.
	durable := func() {
		t.Helper()
		waitTrail(t, g.trail, 20*time.Second, "the records of the requests answered so far", func(ix trailIndex) bool {
			for _, s := range log {
				if s.status != http.StatusOK {
					continue
				}
				d, ok := ix.decision["/api"+s.path]
				if !ok {
					return false
				}
				if _, ok := ix.outcome[d.RequestID]; !ok {
					return false
				}
			}
			return true
		})
	}
	pid := g.proc.cmd.Process.Pid

	for i := range 10 {
		expect("before the fault", send(i%2 == 0), http.StatusOK)
	}
	// A request in flight across the fault: forwarded (its decision on
	// disk) before the disk fills, answered while it is full.
	held := sent{path: "/held/0"}
	heldDone := make(chan int, 1)
	go func() {
		st, _ := g.get(held.path, plain)
		heldDone <- st
	}()
	waitTrail(t, g.trail, 20*time.Second, "the held request's decision record", func(ix trailIndex) bool {
		_, ok := ix.decision["/api"+held.path]
		return ok && up.forwarded()["/api"+held.path]
	})
	durable()

	setFileSizeLimit(t, pid, uint64(fileSize(t, g.trail))+1) // the disk is full
	// Records taken before the writer notices stay queued and are written
	// once the disk frees, so these may still be answered.
	for range 3 {
		if s := send(false); s.status != http.StatusOK && s.status != http.StatusServiceUnavailable {
			t.Fatalf("GET /api%s as the disk fills: %d", s.path, s.status)
		}
	}
	expect("audit: required on a full disk", send(true), http.StatusServiceUnavailable)
	for i := range 10 {
		expect("full disk", send(i%2 == 0), http.StatusServiceUnavailable)
	}
	// The held request is answered now: its outcome has to wait for the
	// disk, like the records queued before the writer noticed.
	close(up.release)
	select {
	case held.status = <-heldDone:
	case <-time.After(20 * time.Second):
		t.Fatal("the held request was not answered")
	}
	log = append(log, held)
	expect("the request in flight across the fault", held, http.StatusOK)
	g.alive(t)
	g.mustVerify(t) // the cut-short appends were undone

	setFileSizeLimit(t, pid, unix.RLIM_INFINITY) // the disk is freed
	limit := audit.RetryMax + 20*time.Second     // the writer's retry backoff is at most RetryMax
	deadline := time.Now().Add(limit)
	for send(false).status != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatalf("still refused %v after the disk was freed:\n%s", limit, g.proc.output.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	for i := range 10 {
		expect("after the disk was freed", send(i%2 == 0), http.StatusOK)
	}
	durable()

	// Full again, and the gateway is stopped before the disk frees: it
	// gives up on what it could not write (nothing that was answered, see
	// durable) and exits; a restart continues the trail.
	setFileSizeLimit(t, pid, uint64(fileSize(t, g.trail))+1)
	expect("audit: required on a full disk again", send(true), http.StatusServiceUnavailable)
	for i := range 4 {
		expect("full disk again", send(i%2 == 0), http.StatusServiceUnavailable)
	}
	g.stop(t)
	g.start(t)
	for i := range 10 {
		expect("after the restart", send(i%2 == 0), http.StatusOK)
	}
	g.stop(t)

	out := g.mustVerify(t)
	if !strings.Contains(out, "2 streams") {
		t.Errorf("want two linked streams (before and after the restart):\n%s", out)
	}
	checkAnswered(t, g, up.forwarded(), log)
}

// TestAuditFaultKill9 kills the gateway with SIGKILL while four clients
// send authorized requests (half with audit: required tokens), then:
//
//   - `audit verify` passes up to the last complete record and reports a
//     partial last line when the kill cut one (when it did not, a torn
//     copy of the last line is appended, so that case is always covered);
//   - every request answered 2xx before the kill whose token carried
//     audit: required has its decision record (DESIGN.md §4 step 8: only
//     those are durable before forwarding; for the others the count
//     without a record is logged);
//   - a restarted gateway moves the partial line aside, continues with a
//     new stream linked to the last good hash, and verify passes over the
//     whole trail.
func TestAuditFaultKill9(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	g := newAuditGW(t, up.addr(), "")
	g.start(t)
	plain := g.mint(t, "agt_plain")
	required := g.mint(t, "agt_required", "--constraint", "audit=required")

	var (
		mu   sync.Mutex
		log  []sent
		oks  atomic.Int64
		stop = make(chan struct{})
		wg   sync.WaitGroup
	)
	for c := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				s := sent{path: fmt.Sprintf("/k/%d-%d", c, i), required: i%2 == 0}
				tok := plain
				if s.required {
					tok = required
				}
				s.status, _ = g.get(s.path, tok)
				if s.status/100 == 2 {
					oks.Add(1)
				}
				mu.Lock()
				log = append(log, s)
				mu.Unlock()
			}
		})
	}
	deadline := time.Now().Add(60 * time.Second)
	for oks.Load() < 400 {
		if time.Now().After(deadline) {
			close(stop)
			wg.Wait()
			t.Fatalf("only %d requests answered 2xx within 60s:\n%s", oks.Load(), g.proc.output.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	g.kill(t) // under load: the clients are still sending
	close(stop)
	wg.Wait()

	out, ok := g.verify(t, "audit.jsonl")
	if !ok || !strings.HasPrefix(out, "ok:") {
		t.Fatalf("verify after kill -9:\n%s", out)
	}
	data, err := os.ReadFile(g.trail)
	if err != nil {
		t.Fatal(err)
	}
	complete := bytes.Count(data, []byte("\n"))
	if !strings.Contains(out, fmt.Sprintf("ok: %d records", complete)) {
		t.Errorf("verify does not pass over all %d complete lines:\n%s", complete, out)
	}
	torn := data[bytes.LastIndexByte(data, '\n')+1:]
	if len(torn) == 0 {
		// The kill fell between two writes: tear the last line ourselves,
		// as a kill in the middle of a write would.
		last := data[bytes.LastIndexByte(data[:len(data)-1], '\n')+1:]
		torn = bytes.Clone(last[:len(last)/2])
		f, err := os.OpenFile(g.trail, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(torn); err != nil {
			t.Fatal(err)
		}
		f.Close()
		out, ok = g.verify(t, "audit.jsonl")
		if !ok || !strings.HasPrefix(out, fmt.Sprintf("ok: %d records", complete)) {
			t.Fatalf("verify with a partial last line:\n%s", out)
		}
	} else {
		t.Logf("the kill cut a line (%d bytes)", len(torn))
	}
	if !strings.Contains(out, fmt.Sprintf("partial last line (%d bytes)", len(torn))) {
		t.Errorf("verify does not report the partial last line of %d bytes:\n%s", len(torn), out)
	}

	before := trailRecords(t, g.trail)
	ix := indexTrail(before)
	var answered, lostPlain int
	for _, s := range log {
		if s.status/100 != 2 {
			continue
		}
		answered++
		if _, has := ix.decision["/api"+s.path]; !has {
			if s.required {
				t.Errorf("GET /api%s (audit: required) was answered %d before the kill but has no decision record", s.path, s.status)
			} else {
				lostPlain++
			}
		}
	}
	t.Logf("%d requests answered 2xx before the kill; %d without audit: required have no decision record (queued, not yet written)", answered, lostPlain)

	// The restart moves the partial line aside and links a new stream.
	g.start(t)
	for i := range 10 {
		if st, _ := g.get(fmt.Sprintf("/after/%d", i), plain); st != http.StatusOK {
			t.Fatalf("after the restart: status %d", st)
		}
	}
	g.stop(t)
	aside, _ := filepath.Glob(g.trail + ".partial-*")
	if len(aside) != 1 {
		t.Fatalf("want one %s.partial-* file, have %v", g.trail, aside)
	}
	if !strings.Contains(g.proc.output.String(), aside[0]) {
		t.Errorf("the restarted gateway does not log where it moved the partial line (%s):\n%s", aside[0], g.proc.output.String())
	}
	if b, _ := os.ReadFile(aside[0]); !bytes.Equal(b, torn) {
		t.Errorf("%s holds %q, want the torn line %q", aside[0], b, torn)
	}
	out = g.mustVerify(t)
	if !strings.Contains(out, "2 streams") || strings.Contains(out, "partial") {
		t.Errorf("after the restart, want two streams and no partial line:\n%s", out)
	}
	after := trailRecords(t, g.trail)
	first := after[len(before)]
	if first.Stream == before[len(before)-1].Stream || first.Seq != 1 || first.Prev != before[len(before)-1].Hash {
		t.Errorf("the restarted stream's first record %+v does not link to the last good record %+v", first, before[len(before)-1])
	}
	ix = indexTrail(after)
	for i := range 10 {
		if _, has := ix.decision[fmt.Sprintf("/api/after/%d", i)]; !has {
			t.Errorf("request %d after the restart has no decision record", i)
		}
	}
}

// TestAuditFaultLongSSE holds one SSE stream open through the gateway for
// KAVACH_TEST_SSE_SECONDS (default 30; one event a second) while other
// requests are made, and reads the trail while the stream is open:
//
//   - the upstream sends each event only after the client has received the
//     one before (lockstep), so every event reached the client while the
//     upstream was still streaming: the gateway does not buffer the stream;
//   - the stream's decision record is in the trail from its start, and no
//     outcome for it until it ends; then its outcome (200, the bytes the
//     client got);
//   - the other requests' decision and outcome records appear in the trail
//     while the stream is still open: a long stream does not hold the log.
func TestAuditFaultLongSSE(t *testing.T) {
	t.Parallel()
	seconds := 30
	if v := os.Getenv("KAVACH_TEST_SSE_SECONDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("KAVACH_TEST_SSE_SECONDS=%q: want a positive number of seconds", v)
		}
		seconds = n
	}
	next := make(chan struct{}) // the test lets the upstream send the next event
	upDone := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/sse" {
			_, _ = io.WriteString(w, "upstream ok")
			return
		}
		defer close(upDone)
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		rc := http.NewResponseController(w)
		// A comment, so the headers get through before the first event.
		_, _ = io.WriteString(w, ": stream open\n\n")
		if err := rc.Flush(); err != nil {
			return
		}
		for k := range seconds {
			select {
			case <-next:
			case <-r.Context().Done():
				return
			}
			fmt.Fprintf(w, "id: %d\nevent: tick\ndata: event %d of %d\n\n", k, k, seconds)
			if err := rc.Flush(); err != nil {
				return
			}
		}
	}))
	t.Cleanup(up.Close)
	g := newAuditGW(t, up.Listener.Addr().String(), "")
	g.start(t)
	tok := g.mint(t, "agt_streamer")

	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(seconds)*time.Second+2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", g.res+"/sse", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := (&http.Client{}).Do(req) // no client timeout: the stream is long
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("SSE: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	events := make(chan string)
	var received atomic.Int64
	readErr := make(chan error, 1)
	go func() {
		br := bufio.NewReader(resp.Body)
		var data string
		for {
			line, err := br.ReadString('\n')
			received.Add(int64(len(line)))
			if err != nil {
				readErr <- err
				close(events)
				return
			}
			switch line = strings.TrimRight(line, "\n"); {
			case strings.HasPrefix(line, "data: "):
				data = strings.TrimPrefix(line, "data: ")
			case line == "" && data != "":
				events <- data
				data = ""
			}
		}
	}()

	// The stream's decision is in the trail once it is forwarded.
	ix := waitTrail(t, g.trail, 10*time.Second, "the SSE stream's decision record", func(ix trailIndex) bool {
		_, ok := ix.decision["/api/sse"]
		return ok
	})
	sse := ix.decision["/api/sse"]
	other := 0
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for k := range seconds {
		select {
		case next <- struct{}{}:
		case <-ctx.Done():
			t.Fatal("the upstream stopped waiting for the next event")
		}
		select {
		case ev, ok := <-events:
			if want := fmt.Sprintf("event %d of %d", k, seconds); !ok || ev != want {
				t.Fatalf("event %d: got %q (stream open: %v), want %q", k, ev, ok, want)
			}
		case <-time.After(10 * time.Second):
			// The upstream is blocked until we ask for the next event: an
			// event that does not arrive is held by the gateway.
			t.Fatalf("event %d, flushed by the upstream, did not reach the client: the gateway buffers the stream", k)
		}
		if k == seconds-1 {
			break // the upstream has ended the stream
		}
		// The upstream now waits for the next event: the stream is open.
		// Other requests meanwhile, and their records.
		for range 2 {
			p := fmt.Sprintf("/side/%d", other)
			other++
			if st, _ := g.get(p, tok); st != http.StatusOK {
				t.Fatalf("GET /api%s during the stream: %d", p, st)
			}
			waitTrail(t, g.trail, 10*time.Second, "the records of GET /api"+p+" during the stream", func(ix trailIndex) bool {
				d, ok := ix.decision["/api"+p]
				if ok {
					_, ok = ix.outcome[d.RequestID]
				}
				return ok
			})
		}
		if o, ok := indexTrail(trailRecords(t, g.trail)).outcome[sse.RequestID]; ok {
			t.Fatalf("an outcome record for the SSE stream while it is open: %+v", o)
		}
		select {
		case <-tick.C: // the upstream streams slowly: one event a second
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
	}
	<-upDone
	if _, ok := <-events; ok {
		t.Fatal("an event after the last one")
	}
	if err := <-readErr; err != io.EOF {
		t.Fatalf("the stream ended with %v", err)
	}
	ix = waitTrail(t, g.trail, 10*time.Second, "the SSE stream's outcome record", func(ix trailIndex) bool {
		_, ok := ix.outcome[sse.RequestID]
		return ok
	})
	if o := ix.outcome[sse.RequestID]; o.Status != http.StatusOK || o.Bytes != received.Load() {
		t.Errorf("the SSE outcome record: status %d, %d bytes; the client got 200 and %d bytes", o.Status, o.Bytes, received.Load())
	}
	g.stop(t)
	g.mustVerify(t)
}

// TestAuditFaultWitness runs a gateway whose checkpoints go to a real
// redis-server too, and cuts records off the end of its trail, the final
// checkpoint with them:
//
//   - `audit verify` alone cannot tell (the rest holds together; it
//     reports records not covered by a checkpoint), `audit verify --redis`
//     fails, naming the first dropped seq;
//   - the same cut made while the gateway is down, followed by a restart
//     (a new stream linked to the cut end, so the file looks whole), is
//     still caught by `--redis`.
func TestAuditFaultWitness(t *testing.T) {
	t.Parallel()
	rds := startRevRedis(t)
	up := newUpstream(t)
	g := newAuditGW(t, up.addr(), rds.url())
	g.start(t)
	tok := g.mint(t, "agt_witnessed")
	get := func(p string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			st, _ := g.get(p, tok)
			if st == http.StatusOK {
				return
			}
			// 503 until the revocation set from Redis is fresh.
			if st != http.StatusServiceUnavailable || time.Now().After(deadline) {
				t.Fatalf("GET /api%s: %d\n%s", p, st, g.proc.output.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for i := range 20 {
		get(fmt.Sprintf("/w/%d", i))
	}
	g.stop(t) // the final checkpoint, witnessed

	recs := trailRecords(t, g.trail)
	last := recs[len(recs)-1]
	if last.Kind != audit.KindCheckpoint {
		t.Fatalf("the trail does not end with the final checkpoint: %+v", last)
	}
	n, err := rds.client(t).LLen(context.Background(), audit.RedisWitnessPrefix+last.Stream).Result()
	if err != nil || n == 0 {
		t.Fatalf("no checkpoints of stream %s in Redis: %d, %v", last.Stream, n, err)
	}
	out := g.mustVerify(t, "--redis", rds.url())
	// A checkpoint signs the head before it: the final one covers the
	// seq before its own.
	if want := fmt.Sprintf("witness confirms seq %d", last.Seq-1); !strings.Contains(out, want) {
		t.Errorf("verify --redis of the whole trail does not say %q:\n%s", want, out)
	}

	// Cut the final checkpoint and the three records before it.
	data, err := os.ReadFile(g.trail)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	lines = lines[:len(lines)-1] // the empty string after the last '\n'
	cut := bytes.Join(lines[:len(lines)-4], nil)
	firstDropped := recs[len(recs)-4].Seq
	if err := os.WriteFile(filepath.Join(g.dir, "cut.jsonl"), cut, 0o600); err != nil {
		t.Fatal(err)
	}
	out, ok := g.verify(t, "cut.jsonl", "--key", "audit.jsonl.pub")
	if !ok || !strings.Contains(out, "not yet covered") {
		t.Errorf("verify without the witness: want a pass that reports uncovered records:\n%s", out)
	}
	wantFail := fmt.Sprintf("stream %s seq %d truncated", last.Stream, firstDropped)
	out, ok = g.verify(t, "cut.jsonl", "--key", "audit.jsonl.pub", "--redis", rds.url())
	if ok || !strings.Contains(out, wantFail) {
		t.Errorf("verify --redis of the cut trail: want a failure naming %q:\n%s", wantFail, out)
	}

	// The same cut on the live trail, then a restart: the new stream links
	// to the cut end.
	if err := os.WriteFile(g.trail, cut, 0o600); err != nil {
		t.Fatal(err)
	}
	g.start(t)
	for i := range 5 {
		get(fmt.Sprintf("/after/%d", i))
	}
	g.stop(t)
	if out := g.mustVerify(t); !strings.Contains(out, "2 streams") {
		t.Errorf("without the witness the restarted trail verifies as two streams:\n%s", out)
	}
	out, ok = g.verify(t, "audit.jsonl", "--redis", rds.url())
	if ok || !strings.Contains(out, wantFail) {
		t.Errorf("verify --redis after the cut and a restart: want a failure naming %q:\n%s", wantFail, out)
	}
}

// TestAuditFaultRouteRequired: a route with `audit required` makes every
// request wait for its decision record on disk, whatever its token says:
// on a full disk the first request is already 503 (a plain route would
// still queue and forward it), never reaches the upstream, and once the
// disk frees the trail says it was allowed, then refused with 503.
func TestAuditFaultRouteRequired(t *testing.T) {
	t.Parallel()
	up := newHeldUpstream(t)
	close(up.release)
	g := newAuditGW(t, up.srv.Listener.Addr().String(), "", "audit required")
	g.start(t)
	plain := g.mint(t, "agt_plain")
	var log []sent
	send := func() sent {
		s := sent{path: fmt.Sprintf("/r/%d", len(log)), required: true}
		s.status, _ = g.get(s.path, plain)
		log = append(log, s)
		return s
	}
	for range 3 {
		if s := send(); s.status != http.StatusOK {
			t.Fatalf("GET /api%s before the fault: %d", s.path, s.status)
		}
	}
	setFileSizeLimit(t, g.proc.cmd.Process.Pid, uint64(fileSize(t, g.trail))+1)
	if s := send(); s.status != http.StatusServiceUnavailable {
		t.Fatalf("GET /api%s on a full disk under `audit required`: %d, want 503 at once", s.path, s.status)
	}
	setFileSizeLimit(t, g.proc.cmd.Process.Pid, unix.RLIM_INFINITY)
	deadline := time.Now().Add(audit.RetryMax + 20*time.Second)
	for send().status != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatalf("still refused after the disk was freed:\n%s", g.proc.output.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	g.stop(t)
	g.mustVerify(t)
	checkAnswered(t, g, up.forwarded(), log)
}
