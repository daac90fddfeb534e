package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestAuditPostgres runs two real gateways, nodes gw1 and gw2, writing one
// central trail into a real PostgreSQL (`audit postgres <url> { node …;
// key <shared file> }`, the URL from {env.KAVACH_AUDIT_DB} and holding a
// password), and checks what an operator sees:
//
//   - both start together on an empty database (one table, one key), and
//     serve allowed and denied requests of a two-agent chain;
//   - after a graceful stop, `kavach audit verify --key <pub> <url>`
//     passes, naming both nodes and their streams, every record covered by
//     a checkpoint; `kavach audit query --agent <child> <url>` shows the
//     child with its parent for the requests of both gateways, and the
//     rows can be read with SQL;
//   - one byte of a row in the middle of the trail changed with UPDATE:
//     verify fails, naming the row's stream and seq;
//   - a gateway whose database cannot be reached does not run: `kavach run`
//     exits non-zero, its message names the database without the
//     password, and no request reaches its upstream meanwhile.
//
// Nothing the gateways or the CLI print holds the password.
func TestAuditPostgres(t *testing.T) {
	t.Parallel()
	const secret = "pw-Kv8-audit-hunter2"
	// Trust authentication ignores the password: it is there to be hidden.
	dbURL := strings.Replace(postgresURL(t), "postgres@", "postgres:"+secret+"@", 1)
	if !strings.Contains(dbURL, secret) {
		t.Fatalf("no password in the test database URL %s", dbURL)
	}
	root := t.TempDir()
	newKeys(t, root)
	keyFile := filepath.Join(root, "audit", "audit.key") // shared by both nodes
	pubFile := filepath.Join(root, "audit", "audit.pub")

	// The gateway without its database starts first: it gives up only
	// after its start timeout, so it runs while the rest is checked.
	downUp := newUpstream(t)
	down := newAuditPGGateway(t, root, downUp.addr(), "gw3", keyFile,
		fmt.Sprintf("postgres://kavach:%s@127.0.0.1:%d/audit?sslmode=disable", secret, freePort(t)))
	downProc := startGateway(t, down.dir, nil) // no port: it may never listen

	up := newUpstream(t)
	gws := []*auditPGGateway{
		newAuditPGGateway(t, root, up.addr(), "gw1", keyFile, "{env.KAVACH_AUDIT_DB}"),
		newAuditPGGateway(t, root, up.addr(), "gw2", keyFile, "{env.KAVACH_AUDIT_DB}"),
	}
	// Both start at once on the empty database: each creates the table
	// and the shared key unless the other did first.
	for _, g := range gws {
		g.proc = startGateway(t, g.dir, []string{"KAVACH_AUDIT_DB=" + dbURL})
	}
	for _, g := range gws {
		auditPGWaitListening(t, g.proc, g.addr)
	}

	mint := func(res string, args ...string) string {
		base := []string{"token", "mint", "--key", "key.jwk", "--iss", gwIssuer, "--aud", res, "--sub", "usr_alice", "--ttl", "5m"}
		return strings.TrimSpace(kavach(t, root, append(base, args...)...))
	}
	// The orchestrator delegated to the reviewer on each gateway; agt_solo
	// acts alone.
	for _, g := range gws {
		g.chain = mint(g.res, "--agent", "agt_orch", "--agent", "agt_rev", "--chain", "dlg_root", "--chain", "dlg_rev", "--scope", "repo:read")
		g.solo = mint(g.res, "--agent", "agt_solo", "--scope", "repo:read")
	}
	const allowed = 6
	for i := range allowed { // interleaved: both nodes write at once
		for _, g := range gws {
			if r := do(t, newReq(t, "GET", fmt.Sprintf("%s/%s/item/%d", g.res, g.node, i), g.chain, nil)); r.Status != http.StatusOK {
				t.Fatalf("%s: allowed request %d: %d %s", g.node, i, r.Status, r.Body)
			}
		}
	}
	for _, g := range gws {
		if r := do(t, newReq(t, "GET", g.res+"/solo", g.solo, nil)); r.Status != http.StatusOK {
			t.Fatalf("%s: agt_solo: %d %s", g.node, r.Status, r.Body)
		}
		if r := do(t, newReq(t, "POST", g.res+"/write", g.chain, strings.NewReader("x"))); r.Status != http.StatusForbidden {
			t.Fatalf("%s: POST without repo:write: %d, want 403", g.node, r.Status)
		}
		if r := do(t, newReq(t, "GET", g.res+"/junk", "", nil)); r.Status != http.StatusUnauthorized {
			t.Fatalf("%s: no token: %d, want 401", g.node, r.Status)
		}
	}
	if n := len(up.take()); n != 2*(allowed+1) {
		t.Fatalf("the upstream saw %d requests, want %d", n, 2*(allowed+1))
	}

	// A graceful stop flushes each trail and writes its final checkpoint.
	for _, g := range gws {
		if err := g.proc.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
	}
	for _, g := range gws {
		select {
		case <-g.proc.exited:
		case <-time.After(30 * time.Second):
			t.Fatalf("%s did not exit after SIGTERM:\n%s", g.node, g.proc.output.String())
		}
		out := g.proc.output.String()
		if code := g.proc.cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("%s exited with %d after SIGTERM:\n%s", g.node, code, out)
		}
		if strings.Contains(out, secret) {
			t.Errorf("%s printed the database password:\n%s", g.node, out)
		}
	}

	// verify: both nodes, each one stream, all covered by checkpoints.
	out, errOut, err := kavachRun(root, "audit", "verify", "--key", pubFile, dbURL)
	if err != nil || !strings.HasPrefix(out, "ok:") {
		t.Fatalf("audit verify: %v\n%s%s", err, out, errOut)
	}
	for _, want := range []string{"2 streams", "(node gw1)", "(node gw2)", "stream gw1-", "stream gw2-"} {
		if !strings.Contains(out, want) {
			t.Errorf("audit verify does not say %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "not yet covered") || strings.Contains(out+errOut, secret) {
		t.Errorf("audit verify after a graceful stop: uncovered records, or the password shown:\n%s%s", out, errOut)
	}

	// query: the child with its parent, from both gateways, and nothing of
	// agt_solo.
	out = kavach(t, root, "audit", "query", "--agent", "agt_rev", dbURL)
	for _, want := range []string{"agt_rev, child of agt_orch, acting for usr_alice", "GET /api/gw1/item/", "GET /api/gw2/item/", "deny"} {
		if !strings.Contains(out, want) {
			t.Errorf("audit query --agent agt_rev does not show %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "agt_solo") || strings.Contains(out, secret) {
		t.Errorf("audit query --agent agt_rev shows agt_solo or the password:\n%s", out)
	}
	type decisionKey struct{ node, decision string }
	decisions := map[decisionKey]int{}
	out = kavach(t, root, "audit", "query", "--agent", "agt_rev", "--json", dbURL)
	for line := range strings.Lines(out) {
		var r struct {
			Stream, Kind, Decision, Host string
			Agents                       []string
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("audit query --json printed %q: %v", line, err)
		}
		if r.Kind != "decision" {
			continue
		}
		node, _, _ := strings.Cut(r.Stream, "-")
		i := slices.IndexFunc(gws, func(g *auditPGGateway) bool { return g.node == node })
		if i < 0 {
			t.Errorf("a record of stream %s, of neither node: %s", r.Stream, line)
			continue
		}
		if !slices.Equal(r.Agents, []string{"agt_orch", "agt_rev"}) {
			t.Errorf("decision record of %s without the chain: %s", node, line)
		}
		if g := gws[i]; r.Host != g.addr {
			t.Errorf("a record of stream %s names host %s, not gateway %s's", r.Stream, r.Host, g.addr)
		}
		decisions[decisionKey{node, r.Decision}]++
	}
	for _, g := range gws {
		if a, d := decisions[decisionKey{g.node, "allow"}], decisions[decisionKey{g.node, "deny"}]; a != allowed || d != 1 {
			t.Errorf("audit query --agent agt_rev --json: %s has %d allow and %d deny decisions, want %d and 1:\n%s", g.node, a, d, allowed, out)
		}
	}

	// The table as SQL reads it: each node's rows in its own stream,
	// ending with the final checkpoint, one line = one JSON record.
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, g := range gws {
		var streams, allows int
		var lastKind string
		err := conn.QueryRow(ctx, `SELECT count(DISTINCT stream),
			count(*) FILTER (WHERE convert_from(line, 'UTF8')::jsonb->>'decision' = 'allow'),
			(SELECT kind FROM kavach_audit WHERE node = $1 ORDER BY id DESC LIMIT 1)
			FROM kavach_audit WHERE node = $1 AND stream LIKE $1 || '-%'`, g.node).Scan(&streams, &allows, &lastKind)
		if err != nil {
			t.Fatal(err)
		}
		if streams != 1 || allows != allowed+1 || lastKind != "checkpoint" {
			t.Errorf("node %s in SQL: %d streams, %d allow decisions, last row a %s; want 1, %d, checkpoint", g.node, streams, allows, lastKind, allowed+1)
		}
	}

	// One byte of a row in the middle of the trail: an item number in a
	// path changed to another digit, still a well-formed record.
	var ids []int64
	rows, err := conn.Query(ctx, `SELECT id FROM kavach_audit WHERE kind = 'decision' AND position('/item/'::bytea IN line) > 0 ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	ids, err = pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil || len(ids) != 2*allowed {
		t.Fatalf("decision rows of /item/ requests: %d, %v", len(ids), err)
	}
	var stream string
	var seq int64
	var line []byte
	if err := conn.QueryRow(ctx, `SELECT stream, seq, line FROM kavach_audit WHERE id = $1`, ids[len(ids)/2]).Scan(&stream, &seq, &line); err != nil {
		t.Fatal(err)
	}
	at := strings.Index(string(line), "/item/") + len("/item/")
	digit := line[at]
	if digit < '0' || digit > '9' {
		t.Fatalf("no item number at byte %d of %s", at, line)
	}
	tag, err := conn.Exec(ctx, `UPDATE kavach_audit SET line = set_byte(line, $2, $3) WHERE id = $1`, ids[len(ids)/2], at, int('0'+(digit-'0'+1)%10))
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("UPDATE: %v, %v", tag, err)
	}
	out, errOut, err = kavachRun(root, "audit", "verify", "--key", pubFile, dbURL)
	want := fmt.Sprintf("stream %s seq %d", stream, seq)
	if err == nil || !strings.Contains(out, "FAIL") || !strings.Contains(out, want) {
		t.Errorf("audit verify of the edited trail: %v; want a failure naming %s:\n%s%s", err, want, out, errOut)
	}
	if strings.Contains(out+errOut, secret) {
		t.Errorf("audit verify of the edited trail shows the password:\n%s%s", out, errOut)
	}

	// Meanwhile the gateway without its database: requests while it tries
	// (if its listener is up at all) are never forwarded, and it exits.
	tok := mint(down.res, "--agent", "agt_orch", "--scope", "repo:read")
	giveUp := time.After(90 * time.Second) // a bound for a hang, not a measurement
	for probing := true; probing; {
		select {
		case <-downProc.exited:
			probing = false
		case <-giveUp:
			t.Fatalf("kavach run without its database did not exit:\n%s", downProc.output.String())
		case <-time.After(200 * time.Millisecond):
			if st := auditPGProbe(down.res+"/probe", tok); st >= 200 && st < 300 {
				t.Errorf("the gateway without its database answered %d", st)
			}
		}
	}
	out = downProc.output.String()
	if downProc.cmd.ProcessState.ExitCode() == 0 {
		t.Errorf("kavach run without its database exited 0:\n%s", out)
	}
	if strings.Contains(out, secret) {
		t.Errorf("kavach run without its database printed the password:\n%s", out)
	}
	if !strings.Contains(out, "audit: postgres") || !strings.Contains(out, down.dbHostPort) || strings.Contains(out, "audit: audit:") {
		t.Errorf("kavach run without its database does not say the audit database at %s failed:\n%s", down.dbHostPort, out)
	}
	if !strings.Contains(out, "waiting for the PostgreSQL trail") {
		t.Errorf("kavach run said nothing while it waited for its database:\n%s", out)
	}
	if n := len(downUp.take()); n != 0 {
		t.Errorf("the gateway without its database forwarded %d requests", n)
	}
}

// auditPGGateway is one gateway directory writing its trail to PostgreSQL
// as node.
type auditPGGateway struct {
	node, dir, addr, res string
	dbHostPort           string // host:port of a literal URL
	proc                 *gatewayProc
	chain, solo          string // tokens
}

// newAuditPGGateway writes the Caddyfile of node in a directory of its own
// under root, trusting root's jwks.json and signing with keyFile; dbURL is
// the literal URL or a placeholder.
func newAuditPGGateway(t *testing.T, root, upstreamAddr, node, keyFile, dbURL string) *auditPGGateway {
	t.Helper()
	g := &auditPGGateway{node: node, dir: filepath.Join(root, node)}
	if err := os.Mkdir(g.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(dbURL, "{") {
		at := strings.LastIndex(dbURL, "@")
		g.dbHostPort = dbURL[at+1 : at+1+strings.Index(dbURL[at+1:], "/")]
	}
	g.addr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	g.res = "http://" + g.addr + "/api"
	caddyfile := fmt.Sprintf(`{
	admin off
	kavach {
		trusted_keys %[1]s %[2]s
		audit postgres %[3]s {
			node %[4]s
			key %[5]s
		}
	}
}

http://%[6]s {
	bind 127.0.0.1
	kavach /api/* {
		resource %[7]s
		scope GET /api/* repo:read
		scope POST /api/write repo:write
	}
	reverse_proxy /api/* %[8]s
}
`, gwIssuer, filepath.Join(root, "jwks.json"), dbURL, node, keyFile, g.addr, g.res, upstreamAddr)
	if err := os.WriteFile(filepath.Join(g.dir, "Caddyfile"), []byte(caddyfile), 0o644); err != nil {
		t.Fatal(err)
	}
	return g
}

// auditPGWaitListening waits until p accepts connections on addr, failing the
// test if it exits first.
func auditPGWaitListening(t *testing.T, p *gatewayProc, addr string) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-p.exited:
			t.Fatalf("kavach run exited before listening on %s:\n%s", addr, p.output.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("kavach run did not listen on %s within 45s:\n%s", addr, p.output.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// auditPGProbe sends GET url with tok; 0 when nothing answers.
func auditPGProbe(url, tok string) int {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return 0
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}
