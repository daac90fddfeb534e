package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOpenDefaultTrail: the default trail is a new file per Open under
// <DataDir>/audit, and the start-up line names the file really written.
func TestOpenDefaultTrail(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var logs bytes.Buffer
	w, err := Open(context.Background(), Config{DataDir: dir, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	var line struct {
		Msg, Sink, Path string
	}
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if json.Unmarshal([]byte(l), &line) == nil && line.Msg == "audit trail open" {
			break
		}
	}
	if line.Sink != SinkFile || !strings.HasPrefix(line.Path, filepath.Join(dir, "audit")+string(filepath.Separator)) || !strings.HasSuffix(line.Path, TrailExt) {
		t.Fatalf("audit trail open %+v, want sink file and a trail under %s\n%s", line, dir, logs.String())
	}
	if _, err := os.Stat(line.Path); err != nil {
		t.Fatalf("the logged trail: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "audit", "audit.key")); err != nil {
		t.Fatalf("the default key: %v", err)
	}
}

// TestOpenKeyOption: `audit file <path> { key <file>.key }` signs the
// trail with a key outside the trail's directory, placeholders resolved;
// none is put beside the trail.
func TestOpenKeyOption(t *testing.T) {
	t.Parallel()
	trailDir, keyDir := t.TempDir(), t.TempDir()
	trail, keyFile := filepath.Join(trailDir, "audit.jsonl"), filepath.Join(keyDir, "gw.key")
	c := Config{Sink: SinkFile, Path: "{trail}", Key: "{keydir}/gw.key", Resolve: func(s string) string {
		return strings.NewReplacer("{trail}", trail, "{keydir}", keyDir).Replace(s)
	}, Logger: slog.New(slog.DiscardHandler)}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	w, err := Open(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	rec := Record{Kind: KindDecision, Decision: Allow, RequestID: "r1", Sub: "usr_alice", Method: "GET", Host: "api.internal", Path: "/x"}
	if err := w.WriteDurable(context.Background(), &rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the key file: %v %v", fi, err)
	}
	for _, beside := range []string{trail + ".key", trail + ".pub"} {
		if _, err := os.Stat(beside); err == nil {
			t.Errorf("%s was written beside the trail", beside)
		}
	}
	pub, err := LoadPublicKey(filepath.Join(keyDir, "gw.pub"))
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := VerifyTrail(context.Background(), trail, pub, VerifyOptions{}); err != nil || !rep.Complete() {
		t.Fatalf("verify with the key's .pub: %v %+v", err, rep)
	}
}

// TestResolvedErrors: a placeholder resolving to nothing, a key not
// named .key and a database URL that is not postgres fail, never showing
// the password.
func TestResolvedErrors(t *testing.T) {
	t.Parallel()
	empty := func(string) string { return "" }
	for _, c := range []Config{
		{Sink: SinkFile, Path: "{env.NOPE}", Resolve: empty},
		{Sink: SinkFile, Path: "a.jsonl", Key: "{env.K}", Resolve: func(string) string { return "/x/key.pem" }},
		{Sink: SinkPostgres, URL: "{env.DB}", Resolve: func(string) string { return "mysql://u:hunter2@h/db" }},
		{Sink: SinkOff},
	} {
		if _, err := Open(context.Background(), c); err == nil || strings.Contains(err.Error(), "hunter2") || !strings.HasPrefix(err.Error(), "audit") {
			t.Errorf("%+v: %v", c, err)
		}
	}
}
