package integration

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// demoStackOptions changes what startDemoStack runs; the zero value is
// exactly `make demo` (Caddyfile.example, SQLite store, no Redis, the demo
// upstream answering MCP POSTs with JSON bodies), on free ports.
type demoStackOptions struct {
	// Postgres swaps Caddyfile.example's `store sqlite …` line for
	// `store postgres <url>` on a new database of the shared test server.
	Postgres bool
	// Redis, when set, adds `redis <Redis>` (and max_staleness 5s) to the
	// global kavach block: cluster mode, so other gateways started with
	// addGateway hear this issuer's revocations.
	Redis string
	// SSE makes the demo upstream answer MCP POSTs with an SSE stream
	// (demo/server -sse); Stateless runs its stateless transport.
	SSE, Stateless bool
	// IssuerLines are added to the kavach_issuer block, one directive a
	// line (e.g. "dev_loopback_client_metadata").
	IssuerLines []string
	// Env is added to bin/kavach's environment (e.g. SSL_CERT_FILE=…).
	Env []string
}

// demoStack is what `make demo` runs (scripts/demo.sh), started by a test:
// the demo upstream (demo/server, the code-review MCP server and REST API)
// and one bin/kavach running Caddyfile.example with its ports rewritten to
// free ones and its data under a temp dir.
//
// The embedded *issuerFixture makes the issuerFixture helpers work on it
// unchanged: s.cli(t, &out, "agent", "create", …) (adds --admin),
// s.clientToken(ctx, agent, scopes…) (client credentials for s.resource),
// s.createUser(t, id, name, password, entitlements), s.adminToken(),
// s.introspect, s.exchange, s.get. Its fields:
//
//	s.issuer   http://127.0.0.1:<port>       the issuer (its identifier)
//	s.gateway  http://127.0.0.1:<port>       the gateway
//	s.resource http://127.0.0.1:<port>/mcp   the MCP endpoint = resource
//	s.admin    127.0.0.1:<port>              the admin listener
//	s.dir      the directory bin/kavach runs in (Caddyfile, demo-data/)
//	s.env      KAVACH_ADMIN_TOKEN=…          the admin token's environment
//	s.proc     the `kavach run` process
//
// s.up is nil: the upstream is the demo server, not a recording one.
type demoStack struct {
	*issuerFixture

	upstream    string // http://127.0.0.1:<port>: the demo server, direct
	apiResource string // http://127.0.0.1:<port>/api: the REST resource
	caddyfile   string // the generated Caddyfile's path
	auditPath   string // the trail: <dir>/demo-data/audit.jsonl
	auditPub    string // its public key: auditPath + ".pub"
	redis       string // opts.Redis
	upProc      *exec.Cmd
}

// demoPassword is the password startDemoStack gives usr_alice when asked
// to seed her (seedAlice).
const demoPassword = "alice demo password"

// demoScopes are the demo's MCP scopes (DESIGN.md §10): usr_alice is
// entitled to all of them on the MCP resource; every MCP request needs
// mcp:review, each tool one of the others (read_diff pullrequest:read,
// read_file repository:read, write_file repository:write, post_comment
// comment:write).
var demoScopes = []string{"mcp:review", "pullrequest:read", "repository:read", "repository:write", "comment:write"}

// startDemoStack builds demo/server (once per test binary), rewrites
// Caddyfile.example onto free loopback ports with its ./demo-data/ paths
// under a temp dir (optionally PostgreSQL and Redis, see
// demoStackOptions), starts the demo upstream and `bin/kavach run`, and
// returns once the upstream answers, the issuer serves its metadata, the
// gateway answers the MCP endpoint with 401 and the admin API accepts the
// admin token, as scripts/demo.sh waits. Both processes are killed when
// the test ends (stop ends bin/kavach gracefully first, which completes
// the audit trail). No user or agent exists yet: see seedAlice.
func startDemoStack(t *testing.T, o demoStackOptions) *demoStack {
	t.Helper()
	example, err := os.ReadFile(filepath.Join("..", "Caddyfile.example"))
	if err != nil {
		t.Fatal(err)
	}
	bin := demoUpstreamBin(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "demo-data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	pg, pi, pa, pu := freePort(t), freePort(t), freePort(t), freePort(t)
	s := &demoStack{
		issuerFixture: &issuerFixture{
			dir:     dir,
			env:     []string{fmt.Sprintf("KAVACH_ADMIN_TOKEN=it-demo-admin-%d", time.Now().UnixNano())},
			issuer:  fmt.Sprintf("http://127.0.0.1:%d", pi),
			gateway: fmt.Sprintf("http://127.0.0.1:%d", pg),
			admin:   fmt.Sprintf("127.0.0.1:%d", pa),
		},
		upstream:  fmt.Sprintf("http://127.0.0.1:%d", pu),
		caddyfile: filepath.Join(dir, "Caddyfile"),
		auditPath: filepath.Join(data, "audit.jsonl"),
		redis:     o.Redis,
	}
	s.resource = s.gateway + "/mcp"
	s.apiResource = s.gateway + "/api"
	s.auditPub = s.auditPath + ".pub"

	cf := rewriteDemoPorts(string(example), pg, pi, pa, pu)
	// The data paths, as demo.sh's KAVACH_DEMO_WORKDIR would make them,
	// but absolute so the trail's path means the same from anywhere.
	cf = strings.ReplaceAll(cf, "./demo-data/", data+"/")
	if o.Postgres {
		cf = replaceLine(t, cf, "store sqlite ", "\t\tstore postgres "+postgresURL(t))
	}
	if o.Redis != "" {
		cf = insertAfterLine(t, cf, "issuer "+s.issuer, "\t\tredis "+o.Redis+"\n\t\tmax_staleness 5s")
	}
	for _, l := range o.IssuerLines {
		cf = insertAfterLine(t, cf, "kavach_issuer {", "\t\t"+l)
	}
	if err := os.WriteFile(s.caddyfile, []byte(cf), 0o600); err != nil {
		t.Fatal(err)
	}

	// The demo upstream, as demo.sh starts it.
	args := []string{"-addr", fmt.Sprintf("127.0.0.1:%d", pu)}
	if o.SSE {
		args = append(args, "-sse")
	}
	if o.Stateless {
		args = append(args, "-stateless")
	}
	s.upProc = startChild(t, "demo upstream", dir, bin, args...)

	s.proc = startGateway(t, dir, append(append([]string(nil), s.env...), o.Env...), pg, pi, pa)
	waitHTTP(t, s, "upstream", s.upstream+"/", "", http.StatusOK)
	waitHTTP(t, s, "issuer", s.issuer+"/.well-known/oauth-authorization-server", "", http.StatusOK)
	waitHTTP(t, s, "gateway", s.resource, "", http.StatusUnauthorized)
	waitHTTP(t, s, "admin listener", "http://"+s.admin+"/v1/users", s.adminToken(), http.StatusOK)
	return s
}

// seedAlice creates usr_alice as demo.sh does (entitled to demoScopes on
// the MCP resource, and to the REST scopes on the API resource), with the
// password demoPassword so she can sign in on the login page.
func (s *demoStack) seedAlice(t *testing.T) {
	t.Helper()
	s.createUser(t, "usr_alice", "alice", demoPassword, map[string][]string{
		s.resource:    demoScopes,
		s.apiResource: demoScopes[1:],
	})
}

// stop ends bin/kavach with SIGTERM and waits for it to exit: a graceful
// stop flushes the audit trail and writes its final checkpoint, after
// which `kavach audit verify` sees a complete trail.
func (s *demoStack) stop(t *testing.T) {
	t.Helper()
	if err := s.proc.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.proc.exited:
	case <-time.After(20 * time.Second):
		// A goroutine dump says what holds the stop (SIGABRT: Caddy traps
		// SIGQUIT); the process's output is printed at cleanup.
		_ = s.proc.cmd.Process.Signal(syscall.SIGABRT)
		<-s.proc.exited
		t.Fatal("kavach did not exit after SIGTERM (goroutines in its output)")
	}
}

// addGateway starts another bin/kavach serving Caddyfile.example's gateway
// site (the same /mcp and /api/ rules and resources, the same demo
// upstream) on a new port, trusting s's issuer by URL and sharing s's
// Redis (the stack must have been started with Redis). It returns the new
// gateway's base URL; tokens for s.resource are valid on it.
func (s *demoStack) addGateway(t *testing.T) string {
	t.Helper()
	if s.redis == "" {
		t.Fatal("addGateway: the demo stack runs without Redis")
	}
	example, err := os.ReadFile(filepath.Join("..", "Caddyfile.example"))
	if err != nil {
		t.Fatal(err)
	}
	const siteStart = "\nhttp://127.0.0.1:8080 {\n"
	i := strings.Index(string(example), siteStart)
	if i < 0 {
		t.Fatalf("Caddyfile.example has no %q site", strings.TrimSpace(siteStart))
	}
	rest := string(example[i+len(siteStart):])
	end := strings.Index(rest, "\n}\n")
	if end < 0 {
		t.Fatal("Caddyfile.example: the gateway site does not end")
	}
	dir := t.TempDir()
	p := freePort(t)
	gw := fmt.Sprintf("http://127.0.0.1:%d", p)
	site := rewriteDemoPorts(rest[:end], portOf(s.gateway), portOf(s.issuer), portOf("http://"+s.admin), portOf(s.upstream))
	cf := fmt.Sprintf(`{
	default_bind 127.0.0.1
	admin off
	persist_config off
	kavach {
		issuer %s
		redis %s
		max_staleness 5s
		audit file %s
	}
}
%s {
%s
}
`, s.issuer, s.redis, filepath.Join(dir, "audit.jsonl"), gw, site)
	if err := os.WriteFile(filepath.Join(dir, "Caddyfile"), []byte(cf), 0o600); err != nil {
		t.Fatal(err)
	}
	startGateway(t, dir, nil, p)
	waitHTTP(t, s, "second gateway", gw+"/mcp", "", http.StatusUnauthorized)
	return gw
}

// rewriteDemoPorts is demo.sh's sed: Caddyfile.example's ports (gateway
// 8080, issuer 8081, admin 2021, upstream 8082) replaced by these.
func rewriteDemoPorts(cf string, gateway, issuer, admin, upstream int) string {
	return strings.NewReplacer(
		"127.0.0.1:8080", fmt.Sprintf("127.0.0.1:%d", gateway),
		"127.0.0.1:8081", fmt.Sprintf("127.0.0.1:%d", issuer),
		"127.0.0.1:2021", fmt.Sprintf("127.0.0.1:%d", admin),
		"127.0.0.1:8082", fmt.Sprintf("127.0.0.1:%d", upstream),
		"http://:8080", fmt.Sprintf("http://:%d", gateway),
		"http://:8081", fmt.Sprintf("http://:%d", issuer),
	).Replace(cf)
}

// replaceLine replaces the one line whose trimmed text starts with prefix.
func replaceLine(t *testing.T, text, prefix, with string) string {
	t.Helper()
	lines := strings.Split(text, "\n")
	n := 0
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), prefix) {
			lines[i] = with
			n++
		}
	}
	if n != 1 {
		t.Fatalf("Caddyfile.example: %d lines start with %q, want 1", n, prefix)
	}
	return strings.Join(lines, "\n")
}

// insertAfterLine inserts add after the first line whose trimmed text is
// exactly line.
func insertAfterLine(t *testing.T, text, line, add string) string {
	t.Helper()
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		if strings.TrimSpace(l) == line {
			return strings.Join(append(lines[:i+1], append([]string{add}, lines[i+1:]...)...), "\n")
		}
	}
	t.Fatalf("Caddyfile.example: no line %q", line)
	return ""
}

func portOf(u string) int {
	var p int
	if i := strings.LastIndexByte(u, ':'); i >= 0 {
		fmt.Sscan(u[i+1:], &p)
	}
	return p
}

var (
	demoBuild    sync.Once
	demoBinPath  string
	demoBuildErr error
)

// demoUpstreamBin builds demo/server once per test binary, beside
// kavachBin (TestMain removes that directory).
func demoUpstreamBin(t *testing.T) string {
	t.Helper()
	demoBuild.Do(func() {
		demoBinPath = filepath.Join(filepath.Dir(kavachBin), "kavach-demo-upstream")
		cmd := exec.Command("go", "build", "-trimpath", "-o", demoBinPath, "../demo/server")
		out, err := cmd.CombinedOutput()
		if err != nil {
			demoBuildErr = fmt.Errorf("building demo/server: %v\n%s", err, out)
		}
	})
	if demoBuildErr != nil {
		t.Fatal(demoBuildErr)
	}
	return demoBinPath
}

// startChild runs a helper process in dir, killed (by its pid) when the
// test ends, its output shown if the test failed.
func startChild(t *testing.T, name, dir, bin string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	out := new(lockedBuffer)
	cmd.Stdout, cmd.Stderr = out, out
	setChildAttrs(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			t.Errorf("%s (pid %d) did not exit after SIGKILL", name, cmd.Process.Pid)
		}
		if t.Failed() {
			t.Logf("%s output (pid %d):\n%s", name, cmd.Process.Pid, out.String())
		}
	})
	return cmd
}

// waitHTTP polls url until it answers want (30 s), failing early if
// bin/kavach exits.
func waitHTTP(t *testing.T, s *demoStack, what, url, bearer string, want int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	c := &http.Client{Timeout: 2 * time.Second}
	last := "no answer"
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == want {
				cancel()
				return
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		cancel()
		select {
		case <-s.proc.exited:
			t.Fatalf("kavach run exited while waiting for the %s:\n%s", what, s.proc.output.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the %s (%s) did not answer %d within 30 s (last: %s)", what, url, want, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
