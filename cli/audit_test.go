package cli

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kavachgate/kavach/audit"
)

// cliTrail writes a trail as the gateway does: the reviewer's read_file
// (decision, then outcome), its write_file denied for a missing scope, a
// call of usr_bob's own agent, and junk.
func cliTrail(t *testing.T, orch, rev string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	key, err := audit.LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	sink, err := audit.OpenFile(path, audit.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := audit.NewWriter(context.Background(), sink, key, audit.Options{Stream: "gw-cli"})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	chain := func(r *audit.Record) *audit.Record {
		r.Sub, r.Actor, r.Agents, r.Chain = "usr_alice", rev, []string{orch, rev}, []string{"dlg_o", "dlg_r"}
		r.Method, r.Host, r.Path, r.MCPMethod = "POST", "mcp.example", "/mcp", "tools/call"
		return r
	}
	for _, r := range []*audit.Record{
		chain(&audit.Record{Time: t0, Kind: audit.KindDecision, Decision: audit.Allow, Reason: "allowed", RequestID: "req_1", Tool: "read_file",
			ArgsSHA256: strings.Repeat("ab", 32)}),
		{Time: t0.Add(time.Second), Kind: audit.KindOutcome, RequestID: "req_1", Sub: "usr_alice", Actor: rev, Agents: []string{orch, rev},
			Status: 200, Bytes: 512, Duration: 3100 * time.Microsecond},
		chain(&audit.Record{Time: t0.Add(time.Minute), Kind: audit.KindDecision, Decision: audit.Deny, RequestID: "req_2", Tool: "write_file",
			Reason: "insufficient_scope: repository:write", Status: 403}),
		{Time: t0.Add(time.Hour), Kind: audit.KindDecision, Decision: audit.Allow, Reason: "allowed", RequestID: "req_3",
			Sub: "usr_bob", Actor: "agt_bobs", Agents: []string{"agt_bobs"}, Method: "GET", Host: "api.example", Path: "/repos"},
	} {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	w.CountJunk("missing_token: no bearer token")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// runQuery runs `kavach audit query` and returns stdout and stderr apart;
// it fails the test when the query fails.
func runQuery(t *testing.T, args ...string) (stdout, stderr string) {
	t.Helper()
	out, errOut, code := run(t, nil, "", append([]string{"audit", "query"}, args...)...)
	if code != 0 {
		t.Fatalf("query %q: exit %d: %s", args, code, errOut)
	}
	return out, errOut
}

// TestAuditQueryTable: the table people read names agents and users by
// name (from the admin listener), says why a call was denied, and keeps
// "acting for" on outcome rows; the filters take names too.
func TestAuditQueryTable(t *testing.T) {
	t.Setenv("KAVACH_ADMIN_TOKEN", "s3cret")
	addr, orch, rev := adminWithAgents(t, "s3cret")
	trail := cliTrail(t, orch, rev)

	out, errOut := runQuery(t, "--admin", addr, trail)
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if errOut != "" || len(lines) < 5 {
		t.Fatalf("query: %q\n%s", errOut, out)
	}
	if got := strings.Fields(lines[0]); strings.Join(got, " ") != "TIME DECISION WHO WHAT STATUS REASON" {
		t.Errorf("header %q", lines[0])
	}
	who := "reviewer, child of orchestrator, acting for alice"
	for i, want := range [][]string{
		{"2026-03-01T12:00:00Z", "allow", who, "tools/call read_file"},
		{"2026-03-01T12:00:01Z", "outcome", who, "tools/call read_file", "200", "512 B, 3.1 ms"},
		{"2026-03-01T12:01:00Z", "deny", who, "tools/call write_file", "403", "insufficient_scope: repository:write"},
		{"2026-03-01T13:00:00Z", "allow", "agt_bobs, acting for usr_bob", "GET /repos"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i+1], w) {
				t.Errorf("row %d lacks %q: %s", i+1, w, lines[i+1])
			}
		}
	}
	for _, l := range lines {
		if strings.Contains(l, orch) || strings.Contains(l, rev) {
			t.Errorf("an id the admin listener names: %s", l)
		}
		if len(l) > 170 {
			t.Errorf("a %d-character row: %s", len(l), l)
		}
	}

	for _, tc := range []struct {
		name string
		args []string
		want []string // request ids of the rows, in order ("" for a row without)
	}{
		{"agent by name", []string{"--agent", "reviewer"}, []string{"req_1", "req_1", "req_2"}},
		{"parent by name", []string{"--agent", "orchestrator"}, []string{"req_1", "req_1", "req_2"}},
		{"agent by id", []string{"--agent", rev}, []string{"req_1", "req_1", "req_2"}},
		{"user by name", []string{"--sub", "alice"}, []string{"req_1", "req_1", "req_2"}},
		{"user by id", []string{"--sub", "usr_bob"}, []string{"req_3"}},
		{"tool", []string{"--tool", "write_file"}, []string{"req_2"}},
		{"deny", []string{"--decision", "deny"}, []string{"req_2", ""}},
		{"allow", []string{"--decision", "allow"}, []string{"req_1", "req_1", "req_3"}},
		{"since", []string{"--since", "2026-03-01T12:00:30Z"}, []string{"req_2", "req_3", "", ""}},
		{"until", []string{"--until", "2026-03-01T12:00:30Z"}, []string{"req_1", "req_1"}},
		{"request", []string{"--request", "req_1"}, []string{"req_1", "req_1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, _ := runQuery(t, append(append([]string{"--json", "--admin", addr}, tc.args...), trail)...)
			var got []string
			for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
				r, err := audit.ParseLine([]byte(l))
				if err != nil {
					t.Fatalf("not a line of the trail: %q", l)
				}
				got = append(got, r.RequestID)
			}
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("rows %q, want %q", got, tc.want)
			}
		})
	}
}

// TestAuditQueryNamesFallback: without an admin listener the table shows
// ids and says nothing; a listener that refuses is noted once; a name
// filter that cannot be resolved says so instead of silently matching
// nothing.
func TestAuditQueryNamesFallback(t *testing.T) {
	t.Setenv("KAVACH_ADMIN_TOKEN", "s3cret")
	addr, orch, rev := adminWithAgents(t, "s3cret")
	trail := cliTrail(t, orch, rev)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()

	ids := rev + ", child of " + orch + ", acting for usr_alice"
	out, errOut := runQuery(t, "--admin", closed, trail)
	if errOut != "" || !strings.Contains(out, ids) || !strings.Contains(out, "insufficient_scope: repository:write") {
		t.Errorf("admin listener down: stderr %q\n%s", errOut, out)
	}
	out, errOut = runQuery(t, "--ids", "--admin", addr, trail)
	if errOut != "" || !strings.Contains(out, ids) {
		t.Errorf("--ids: stderr %q\n%s", errOut, out)
	}

	t.Setenv("KAVACH_ADMIN_TOKEN", "wrong")
	out, errOut = runQuery(t, "--admin", addr, trail)
	if !strings.Contains(errOut, "names not resolved") || !strings.Contains(errOut, "401") || !strings.Contains(out, ids) || strings.Contains(errOut, "wrong") {
		t.Errorf("token refused: stderr %q\n%s", errOut, out)
	}

	out, errOut = runQuery(t, "--agent", "reviewer", "--admin", closed, trail)
	if !strings.Contains(errOut, "--agent and --sub match ids only") || strings.Count(out, "\n") != 1 {
		t.Errorf("--agent by name, listener down: stderr %q\n%s", errOut, out)
	}
	// An id needs no names: the filter works without the listener.
	out, _ = runQuery(t, "--agent", rev, "--json", "--admin", closed, trail)
	if strings.Count(out, "\n") != 3 {
		t.Errorf("--agent by id, listener down:\n%s", out)
	}
}

// TestAuditQueryArguments: several trails in one query, in order; a
// database URL goes alone; bad flag values are refused.
func TestAuditQueryArguments(t *testing.T) {
	t.Parallel()
	a := cliTrail(t, "agt_o", "agt_r")
	b := cliTrail(t, "agt_o2", "agt_r2")
	out, _ := runQuery(t, "--json", "--ids", "--tool", "read_file", a, b)
	if n := strings.Count(out, "\n"); n != 4 || strings.Index(out, "agt_r\"") > strings.Index(out, "agt_r2") {
		t.Errorf("two trails: %d lines\n%s", n, out)
	}
	for _, args := range [][]string{
		{"--decision", "maybe", a},
		{"--since", "yesterday", a},
		{"--until", "-1h", a},
		{a, "postgres://u@127.0.0.1/db"},
		{},
	} {
		if _, errOut, code := run(t, nil, "", append([]string{"audit", "query", "--ids"}, args...)...); code != 1 || errOut == "" {
			t.Errorf("query %q: exit %d %q", args, code, errOut)
		}
	}
}

// processStart writes n decision records as one gateway process start
// writes the default trail: a file named after its stream in dir, linked
// to the file before it, signed with dir/audit.key.
func processStart(t *testing.T, dir, node string, n int) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	key, err := audit.LoadOrCreateKey(filepath.Join(dir, "audit"))
	if err != nil {
		t.Fatal(err)
	}
	stream := audit.StreamID(node, time.Now())
	sink, err := audit.OpenFile(filepath.Join(dir, stream+".jsonl"), audit.FileOptions{LinkDir: true})
	if err != nil {
		t.Fatal(err)
	}
	w, err := audit.NewWriter(context.Background(), sink, key, audit.Options{Stream: stream})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		rec := audit.Record{Kind: audit.KindDecision, Decision: audit.Allow, RequestID: fmt.Sprintf("r%d", i), Sub: "usr_alice", Method: "GET", Host: "api.internal", Path: "/x"}
		if err := w.WriteDurable(context.Background(), &rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return stream
}

// TestAuditVerifyDefaultTrail: the default trail is one file per process
// start in the data directory, each linked to the one before; `kavach
// audit verify` with no argument verifies that directory, warns that the
// key sits beside it, a deleted file fails it (exit 1), and verifying
// from a checkpoint on exits 3.
func TestAuditVerifyDefaultTrail(t *testing.T) {
	t.Parallel()
	env := &Env{DataDir: t.TempDir()}
	dir := env.DefaultTrailDir()
	first := processStart(t, dir, "gw-a", 3)
	second := processStart(t, dir, "gw-b", 2)
	verify := func(args ...string) (string, string, int) {
		return run(t, env, "", append([]string{"audit", "verify"}, args...)...)
	}

	out, errOut, code := verify()
	if code != 0 || !strings.HasPrefix(out, "ok: 7 records, 2 checkpoints, 2 streams") || !strings.Contains(out, "stream "+second+": seq 1–3, 1 checkpoints, after stream "+first) {
		t.Fatalf("verify with no argument: %d\n%s%s", code, out, errOut)
	}
	if !strings.Contains(errOut, "WARNING: verified with the key beside the trail ("+filepath.Join(dir, "audit.pub")+")") || strings.Contains(out, "WARNING") {
		t.Fatalf("no warning on stderr about the adjacent key:\nstdout: %s\nstderr: %s", out, errOut)
	}
	pinned := filepath.Join(t.TempDir(), "pinned.pub")
	data, _ := os.ReadFile(filepath.Join(dir, "audit.pub"))
	os.WriteFile(pinned, data, 0o644)
	if out, errOut, code := verify("--key", pinned, dir); code != 0 || !strings.HasPrefix(out, "ok: 7 records") || errOut != "" {
		t.Fatalf("verify --key <pinned> <dir>: %d\n%s%s", code, out, errOut)
	}

	// The first process's file deleted: the second's stream links to
	// nothing the directory holds.
	os.Rename(filepath.Join(dir, first+".jsonl"), filepath.Join(t.TempDir(), "aside"))
	out, errOut, code = verify("--key", pinned, dir)
	if code != 1 || !strings.HasPrefix(out, "FAIL") || !strings.Contains(out, "stream "+second+" seq 1 start:") || !strings.Contains(out, "--from "+second+":<seq>") ||
		!strings.Contains(errOut, "the audit trail does not verify") {
		t.Fatalf("a deleted file: %d\n%s%s", code, out, errOut)
	}
	// Verified from the second stream's checkpoint: exit status 3, and
	// nothing on stderr.
	out, errOut, code = verify("--key", pinned, "--from", second+":3", dir)
	if code != exitVerifiedFromCheckpoint || !strings.HasPrefix(out, "ok from a checkpoint: 3 records") || errOut != "" {
		t.Fatalf("--from %s:3: %d\n%s%s", second, code, out, errOut)
	}
	for _, bad := range []string{second + ":2", second + ":4", second, "gw:9"} {
		if out, _, code := verify("--key", pinned, "--from", bad, dir); code != 1 {
			t.Errorf("--from %s: %d\n%s", bad, code, out)
		}
	}
	// A program that cannot read configs refuses --config.
	if _, errOut, code := verify("--config", "Caddyfile"); code != 1 || !strings.Contains(errOut, "--config") {
		t.Errorf("--config (a Caddyfile) without Adapt: %d %q", code, errOut)
	}
}
