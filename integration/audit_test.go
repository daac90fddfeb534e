package integration

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kavachgate/kavach/audit"
)

// TestAuditTrail runs a real gateway with `audit file ./audit.jsonl`,
// sends allowed and denied requests (one under audit: required), stops it
// gracefully, and checks the trail with the CLI: verify passes, query by
// agent shows the chain, and one edited byte in a middle record makes
// verify fail naming the seq.
func TestAuditTrail(t *testing.T) {
	dir := t.TempDir()
	up := newUpstream(t)
	newKeys(t, dir)
	port := freePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	res := "http://" + addr + "/api"
	caddyfile := fmt.Sprintf(`{
	admin off
	kavach {
		trusted_keys %[1]s ./jwks.json
		audit file ./audit.jsonl
	}
}

http://%[2]s {
	bind 127.0.0.1
	kavach /api/* {
		resource %[3]s
		scope GET /api/* repo:read
		scope POST /api/write repo:write
	}
	reverse_proxy /api/* %[4]s {
		header_up Kavach-Request-Id {kavach.request_id}
	}
}
`, gwIssuer, addr, res, up.addr())
	if err := os.WriteFile(filepath.Join(dir, "Caddyfile"), []byte(caddyfile), 0o644); err != nil {
		t.Fatal(err)
	}
	gw := startGateway(t, dir, nil, port)

	mint := func(args ...string) string {
		base := []string{"token", "mint", "--key", "key.jwk", "--iss", gwIssuer, "--aud", res, "--sub", "usr_alice", "--ttl", "5m"}
		return strings.TrimSpace(kavach(t, dir, append(base, args...)...))
	}
	// A two-agent chain: the orchestrator delegated to the reviewer.
	tok := mint("--agent", "agt_orch", "--agent", "agt_rev", "--chain", "dlg_root", "--chain", "dlg_rev", "--scope", "repo:read")
	required := mint("--agent", "agt_durable", "--scope", "repo:read", "--constraint", "audit=required")
	rogue := strings.TrimSpace(kavach(t, dir, "token", "mint", "--key", "rogue.jwk", "--iss", gwIssuer, "--aud", res, "--sub", "usr_eve", "--agent", "agt_rogue", "--scope", "repo:read"))

	const allowed = 20
	for i := range allowed {
		if r := do(t, newReq(t, "GET", fmt.Sprintf("%s/item/%d", res, i), tok, nil)); r.Status != http.StatusOK {
			t.Fatalf("allowed request %d: %d %s", i, r.Status, r.Body)
		}
	}
	if r := do(t, newReq(t, "GET", res+"/durable", required, nil)); r.Status != http.StatusOK {
		t.Fatalf("audit: required request: %d %s", r.Status, r.Body)
	}
	// Denied with a verified token: a decision record each.
	if r := do(t, newReq(t, "POST", res+"/write", tok, strings.NewReader("x"))); r.Status != http.StatusForbidden {
		t.Fatalf("insufficient scope: %d", r.Status)
	}
	// No token, a bad signature: counted only.
	for range 5 {
		do(t, newReq(t, "GET", res+"/junk", "", nil))
		do(t, newReq(t, "GET", res+"/junk", rogue, nil))
	}
	seenIDs := map[string]bool{}
	got := up.take()
	if len(got) != allowed+1 {
		t.Fatalf("upstream saw %d requests, want %d", len(got), allowed+1)
	}
	for _, s := range got {
		seenIDs[s.Header.Get("Kavach-Request-Id")] = true
	}

	// A graceful stop flushes the trail and writes the final checkpoint.
	if err := gw.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-gw.exited:
	case <-time.After(20 * time.Second):
		t.Fatal("kavach did not exit after SIGTERM")
	}

	trail := filepath.Join(dir, "audit.jsonl")
	for _, p := range []string{trail + ".key", trail + ".pub"} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("audit key file: %v", err)
		}
	}
	recs := readTrail(t, trail)
	var decisions, outcomes, denies, durable int
	var junk uint64
	// Each allowed request's decision and outcome share a request_id no
	// other request has, and it is the one {kavach.request_id} gave the
	// upstream.
	linked := map[string]string{}
	for _, r := range recs {
		switch {
		case r.Kind == audit.KindDecision && r.Decision == audit.Allow:
			decisions++
			if linked[r.RequestID] != "" || !seenIDs[r.RequestID] {
				t.Errorf("decision request_id %q: reused, or not the one the upstream got", r.RequestID)
			}
			linked[r.RequestID] = "decision"
			if r.RequestID == "" || r.Method != "GET" || r.Host != addr || !strings.HasPrefix(r.Path, "/api/") {
				t.Errorf("decision record lacks request fields: %+v", r)
			}
			if r.JTI == "" || r.Sub == "" {
				t.Errorf("decision record lacks token fields: %+v", r)
			}
			if r.Actor == "agt_durable" {
				durable++
			}
		case r.Kind == audit.KindDecision && r.Decision == audit.Deny:
			denies++
			if r.Reason != "insufficient_scope: repo:write" || r.Status != http.StatusForbidden || r.Actor != "agt_rev" {
				t.Errorf("deny record: %+v", r)
			}
		case r.Kind == audit.KindOutcome:
			outcomes++
			if linked[r.RequestID] != "decision" {
				t.Errorf("outcome request_id %q follows no decision record of its own", r.RequestID)
			}
			linked[r.RequestID] = "outcome"
			if r.Status != http.StatusOK || r.Bytes == 0 || r.RequestID == "" {
				t.Errorf("outcome record: %+v", r)
			}
		case r.Kind == audit.KindSummary:
			junk += r.Count
		}
		if r.Actor == "agt_rogue" || r.Sub == "usr_eve" {
			t.Errorf("a request with a bad signature left a record naming its claims: %+v", r)
		}
	}
	if decisions != allowed+1 || outcomes != allowed+1 || denies != 1 || durable != 1 || junk != 10 {
		t.Errorf("trail: %d allow decisions, %d outcomes, %d denies, %d durable, %d junk; want %d, %d, 1, 1, 10",
			decisions, outcomes, denies, durable, junk, allowed+1, allowed+1)
	}
	if last := recs[len(recs)-1]; last.Kind != audit.KindCheckpoint {
		t.Errorf("the trail does not end with the final checkpoint: %+v", last)
	}

	out := kavach(t, dir, "audit", "verify", "audit.jsonl")
	if !strings.HasPrefix(out, "ok:") {
		t.Errorf("verify: %s", out)
	}
	out = kavach(t, dir, "audit", "query", "--agent", "agt_rev", "audit.jsonl")
	if !strings.Contains(out, "agt_rev") || !strings.Contains(out, "agt_orch") {
		t.Errorf("query --agent agt_rev does not show the agent and its chain:\n%s", out)
	}
	// The table says why the write was denied, and why junk was counted.
	out = kavach(t, dir, "audit", "query", "--ids", "--decision", "deny", "audit.jsonl")
	for _, want := range []string{"insufficient_scope: repo:write", "missing_token: no bearer token", "invalid_token: "} {
		if !strings.Contains(out, want) {
			t.Errorf("query --decision deny lacks %q:\n%s", want, out)
		}
	}
	out = kavach(t, dir, "audit", "query", "--decision", "deny", "--json", "audit.jsonl")
	if n := strings.Count(out, "\n"); n != 3 { // the insufficient_scope denial, two junk summaries
		t.Errorf("query --decision deny --json: %d lines, want 3:\n%s", n, out)
	}

	// One byte of a middle record changed: verify fails and names it.
	data, err := os.ReadFile(trail)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	mid := len(lines) / 2
	i := bytes.Index(lines[mid], []byte(`"kind":"`))
	if i < 0 {
		t.Fatalf("middle line without a kind: %s", lines[mid])
	}
	lines[mid][i+len(`"kind":"`)+1] ^= 0x20 // decision → dEcision, outcome → oUtcome
	if err := os.WriteFile(filepath.Join(dir, "edited.jsonl"), bytes.Join(lines, nil), 0o600); err != nil {
		t.Fatal(err)
	}
	stdout, _, err := kavachRun(dir, "audit", "verify", "--key", "audit.jsonl.pub", "edited.jsonl")
	if err == nil {
		t.Fatalf("verify passed an edited trail:\n%s", stdout)
	}
	wantSeq := fmt.Sprintf("seq %d", recs[mid].Seq)
	if !strings.Contains(stdout, "FAIL") || !strings.Contains(stdout, wantSeq) {
		t.Errorf("verify of the edited trail does not name %s:\n%s", wantSeq, stdout)
	}
}

// readTrail parses the complete lines of a trail file, which must not be
// empty.
func readTrail(t *testing.T, path string) []audit.Record {
	t.Helper()
	out := trailRecords(t, path)
	if len(out) == 0 {
		t.Fatalf("%s is empty", path)
	}
	return out
}

// trailRecords parses the complete lines of a trail the gateway may be
// writing (a partial last line is left out).
func trailRecords(t *testing.T, path string) []audit.Record {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []audit.Record
	for line := range bytes.Lines(data) {
		if !bytes.HasSuffix(line, []byte("\n")) {
			break
		}
		r, err := audit.ParseLine(line[:len(line)-1])
		if err != nil {
			t.Fatalf("%s: %v: %s", path, err, line)
		}
		out = append(out, r)
	}
	return out
}
