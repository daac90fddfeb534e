package caddymodule

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/kavachgate/kavach/audit"
)

// runVerify runs `kavach audit verify <args>` and returns its stdout and
// stderr apart.
func runVerify(args ...string) (stdout, stderr string, err error) {
	root := &cobra.Command{Use: "kavach", SilenceErrors: true}
	cmd := &cobra.Command{Use: "audit"}
	cmd.AddCommand(auditVerifyCommand())
	root.AddCommand(cmd)
	var o, e bytes.Buffer
	root.SetOut(&o)
	root.SetErr(&e)
	root.SetArgs(append([]string{"audit", "verify"}, args...))
	err = root.Execute()
	return o.String(), e.String(), err
}

// startStop runs a gateway's audit writer once (one process start): it
// writes n decision records and stops.
func startStop(t *testing.T, cfg *audit.Config, n int) string {
	t.Helper()
	w := mustOpenTrail(t, cfg)
	for i := range n {
		rec := audit.Record{Kind: audit.KindDecision, Decision: audit.Allow, RequestID: fmt.Sprintf("r%d", i), Sub: "usr_alice", Method: "GET", Host: "api.internal", Path: "/x"}
		if err := w.WriteDurable(context.Background(), &rec); err != nil {
			t.Fatal(err)
		}
	}
	stream := w.Stream()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return stream
}

// TestAuditVerifyDefaultTrail: the default trail is one file per process
// start, each linked to the one before; `kavach audit verify` with no
// argument verifies that directory, warns that the key sits beside it,
// and a deleted file fails it.
func TestAuditVerifyDefaultTrail(t *testing.T) {
	data := t.TempDir()
	t.Setenv("XDG_DATA_HOME", data)
	dir := filepath.Join(data, "caddy", "kavach", "audit")
	first, second := startStop(t, nil, 3), startStop(t, nil, 2)

	out, errOut, err := runVerify()
	if err != nil || !strings.HasPrefix(out, "ok: 7 records, 2 checkpoints, 2 streams") || !strings.Contains(out, "stream "+second+": seq 1–3, 1 checkpoints, after stream "+first) {
		t.Fatalf("verify with no argument: %v\n%s%s", err, out, errOut)
	}
	if !strings.Contains(errOut, "WARNING: verified with the key beside the trail ("+filepath.Join(dir, "audit.pub")+")") || strings.Contains(out, "WARNING") {
		t.Fatalf("no warning on stderr about the adjacent key:\nstdout: %s\nstderr: %s", out, errOut)
	}
	pinned := filepath.Join(t.TempDir(), "pinned.pub")
	data2, _ := os.ReadFile(filepath.Join(dir, "audit.pub"))
	os.WriteFile(pinned, data2, 0o644)
	if out, errOut, err := runVerify("--key", pinned, dir); err != nil || !strings.HasPrefix(out, "ok: 7 records") || errOut != "" {
		t.Fatalf("verify --key <pinned> <dir>: %v\n%s%s", err, out, errOut)
	}

	// The first process's file deleted: the second's stream links to
	// nothing the directory holds.
	os.Rename(filepath.Join(dir, first+".jsonl"), filepath.Join(data, "aside"))
	out, _, err = runVerify("--key", pinned, dir)
	if err == nil || !strings.HasPrefix(out, "FAIL") || !strings.Contains(out, "stream "+second+" seq 1 start:") || !strings.Contains(out, "--from "+second+":<seq>") {
		t.Fatalf("a deleted file: %v\n%s", err, out)
	}
	// Verified from the second stream's checkpoint: exit status 3.
	out, _, err = runVerify("--key", pinned, "--from", second+":3", dir)
	if err == nil || err.Error() != "exiting with status 3" || !strings.HasPrefix(out, "ok from a checkpoint: 3 records") {
		t.Fatalf("--from %s:3: %v\n%s", second, err, out)
	}
	for _, bad := range []string{second + ":2", second + ":4", second, "gw:9"} {
		if out, _, err := runVerify("--key", pinned, "--from", bad, dir); err == nil || strings.Contains(err.Error(), "status 3") {
			t.Errorf("--from %s: %v\n%s", bad, err, out)
		}
	}
}

// TestAuditVerifyConfig: --config takes the trail and the pinned key from
// the config; a key kept outside the trail's directory draws no warning.
func TestAuditVerifyConfig(t *testing.T) {
	t.Parallel()
	trailDir, keyDir := t.TempDir(), t.TempDir()
	trail, keyFile := filepath.Join(trailDir, "audit.jsonl"), filepath.Join(keyDir, "gw.key")
	startStop(t, &audit.Config{Sink: audit.SinkFile, Path: trail, Key: keyFile}, 2)
	startStop(t, &audit.Config{Sink: audit.SinkFile, Path: trail, Key: keyFile}, 2)
	caddyfile := filepath.Join(t.TempDir(), "Caddyfile")
	os.WriteFile(caddyfile, []byte(fmt.Sprintf("{\n\tkavach {\n\t\ttrusted_keys https://issuer.example ./jwks.json\n\t\taudit file %s {\n\t\t\tkey %s\n\t\t}\n\t}\n}\n", trail, keyFile)), 0o600)
	out, errOut, err := runVerify("--config", caddyfile)
	if err != nil || !strings.HasPrefix(out, "ok: 6 records, 2 checkpoints, 2 streams in "+trail) || errOut != "" {
		t.Fatalf("verify --config: %v\n%s%s", err, out, errOut)
	}
	// The key beside the trail is another key: the config's wins.
	other := filepath.Join(trailDir, "audit.jsonl")
	if _, err := audit.LoadOrCreateKey(other); err != nil {
		t.Fatal(err)
	}
	if out, _, err := runVerify(trail); err == nil {
		t.Fatalf("verified with the wrong (adjacent) key:\n%s", out)
	}
	if out, _, err := runVerify("--config", caddyfile, trail); err != nil {
		t.Fatalf("a path and --config: %v\n%s", err, out)
	}
	os.WriteFile(caddyfile, []byte("{\n\tkavach {\n\t\ttrusted_keys https://issuer.example ./jwks.json\n\t\taudit stdout\n\t}\n}\n"), 0o600)
	if _, _, err := runVerify("--config", caddyfile); err == nil || !strings.Contains(err.Error(), "stdout") {
		t.Fatalf("a config whose trail goes to stdout: %v", err)
	}
}
