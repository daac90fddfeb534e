package caddymodule

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	"github.com/kavachgate/kavach/audit"
	"github.com/kavachgate/kavach/cli"
)

// writeTrail writes n records to the trail file path, signed with the key
// of keyTrail (audit.KeyPaths), as one gateway process start.
func writeTrail(t *testing.T, path, keyTrail, node string, n int) {
	t.Helper()
	key, err := audit.LoadOrCreateKey(keyTrail)
	if err != nil {
		t.Fatal(err)
	}
	sink, err := audit.OpenFile(path, audit.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := audit.NewWriter(context.Background(), sink, key, audit.Options{Stream: node})
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
}

// TestAuditVerifyConfig: `audit verify --config` takes the trail and the
// pinned key from a Caddyfile, adapted as the gateway would; a key kept
// outside the trail's directory draws no warning, and a config whose trail
// goes to stdout has nothing to verify.
func TestAuditVerifyConfig(t *testing.T) {
	t.Parallel()
	trailDir, keyDir := t.TempDir(), t.TempDir()
	trail, keyFile := filepath.Join(trailDir, "audit.jsonl"), filepath.Join(keyDir, "gw.key")
	writeTrail(t, trail, strings.TrimSuffix(keyFile, ".key"), "gw-a", 2)
	writeTrail(t, trail, strings.TrimSuffix(keyFile, ".key"), "gw-b", 2)
	caddyfile := filepath.Join(t.TempDir(), "Caddyfile")
	os.WriteFile(caddyfile, []byte(fmt.Sprintf("{\n\tkavach {\n\t\ttrusted_keys https://issuer.example ./jwks.json\n\t\taudit file %s {\n\t\t\tkey %s\n\t\t}\n\t}\n}\n", trail, keyFile)), 0o600)
	env := &cli.Env{DataDir: t.TempDir(), Resolve: resolve, Adapt: adaptCaddyfile}
	verify := func(args ...string) (string, string, int) {
		var out, errOut bytes.Buffer
		code := cli.Run(context.Background(), env, append([]string{"audit", "verify"}, args...), nil, &out, &errOut)
		return out.String(), errOut.String(), code
	}
	out, errOut, code := verify("--config", caddyfile)
	if code != 0 || !strings.HasPrefix(out, "ok: 6 records, 2 checkpoints, 2 streams in "+trail) || errOut != "" {
		t.Fatalf("verify --config: %d\n%s%s", code, out, errOut)
	}
	// The key beside the trail is another key: the config's wins.
	if _, err := audit.LoadOrCreateKey(trail); err != nil {
		t.Fatal(err)
	}
	if out, _, code := verify(trail); code == 0 {
		t.Fatalf("verified with the wrong (adjacent) key:\n%s", out)
	}
	if out, errOut, code := verify("--config", caddyfile, trail); code != 0 {
		t.Fatalf("a path and --config: %d\n%s%s", code, out, errOut)
	}
	os.WriteFile(caddyfile, []byte("{\n\tkavach {\n\t\ttrusted_keys https://issuer.example ./jwks.json\n\t\taudit stdout\n\t}\n}\n"), 0o600)
	if _, errOut, code := verify("--config", caddyfile); code != 1 || !strings.Contains(errOut, "stdout") {
		t.Fatalf("a config whose trail goes to stdout: %d %s", code, errOut)
	}
	if _, errOut, code := verify("--config", filepath.Join(t.TempDir(), "missing")); code != 1 || !strings.Contains(errOut, "--config") {
		t.Fatalf("a missing config: %d %s", code, errOut)
	}
}

// TestCommandsRegistered: every kavach command is registered with Caddy's
// command line, each with a one-line summary for 'kavach help'.
func TestCommandsRegistered(t *testing.T) {
	t.Parallel()
	registered := caddycmd.Commands()
	for _, c := range cli.Commands(&cli.Env{}) {
		r, ok := registered[c.Name]
		if !ok || r.CobraFunc == nil {
			t.Errorf("kavach %s is not registered", c.Name)
		}
		if c.Short == "" || strings.Contains(c.Short, "\n") || r.Short != c.Short {
			t.Errorf("%s: summary %q (registered %q) is not one line", c.Name, c.Short, r.Short)
		}
	}
}
