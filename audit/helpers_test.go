package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testKey is a fixed audit key, so goldens are stable.
func testKey() ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{42}, ed25519.SeedSize))
}

func testPub() ed25519.PublicKey { return testKey().Public().(ed25519.PublicKey) }

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// decision returns the decision record of request i of agent agt_child.
func decision(i int) *Record {
	return &Record{
		Kind: KindDecision, Decision: Allow, RequestID: fmt.Sprintf("req_%d", i),
		Sub: "usr_alice", Actor: "agt_child", Agents: []string{"agt_parent", "agt_child"},
		Chain: []string{"dlg_root", "dlg_child"}, ClientID: "agt_parent", JTI: fmt.Sprintf("tok_%d", i),
		Method: "POST", Host: "mcp.internal", Path: "/mcp", MCPMethod: "tools/call", Tool: "read_file",
	}
}

func outcome(i int) *Record {
	return &Record{Kind: KindOutcome, RequestID: fmt.Sprintf("req_%d", i), Status: 200, Bytes: 1234, Duration: 1500 * time.Microsecond}
}

// writeTrail writes n decision records through a Writer into a new trail
// at dir/audit.jsonl and returns its path.
func writeTrail(t testing.TB, dir string, stream string, n int, opts Options) string {
	t.Helper()
	path := filepath.Join(dir, "audit.jsonl")
	appendTrail(t, path, stream, n, opts)
	return path
}

func appendTrail(t testing.TB, path, stream string, n int, opts Options) {
	t.Helper()
	sink, err := OpenFile(path, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	opts.Stream = stream
	if opts.CheckpointInterval == 0 {
		opts.CheckpointInterval = time.Hour // only count-based checkpoints: fixed layouts
	}
	w, err := NewWriter(context.Background(), sink, testKey(), opts)
	if err != nil {
		t.Fatal(err)
	}
	writeN(t, w, n)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// lines reads a trail file as lines without their '\n'.
func lines(t testing.TB, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
}

func writeLines(t testing.TB, path string, ls []string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(strings.Join(ls, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// verifyPath verifies one file.
func verifyPath(t testing.TB, path string, opts VerifyOptions) *Report {
	t.Helper()
	rep, err := VerifyFiles(context.Background(), []string{path}, testPub(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func reportText(r *Report) string {
	var b strings.Builder
	r.WriteText(&b)
	return b.String()
}

// writeN writes decision(0…n-1) and waits until all are durable (the queue
// is FIFO, so the last being durable means all are).
func writeN(t testing.TB, w *Writer, n int) {
	t.Helper()
	for i := range n {
		var err error
		if i == n-1 {
			err = w.WriteDurable(context.Background(), decision(i))
		} else {
			err = w.Write(decision(i))
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}
