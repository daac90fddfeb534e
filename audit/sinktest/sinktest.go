// Package sinktest is the conformance suite every audit.Sink runs
// (CONVENTIONS.md: one shared suite per storage interface). A sink's test
// calls Run with a function that sets up a fresh, empty location per
// subtest:
//
//	func TestFileSinkConformance(t *testing.T) {
//		sinktest.Run(t, func(t *testing.T) sinktest.Harness {
//			path := filepath.Join(t.TempDir(), "audit.jsonl")
//			return sinktest.Harness{
//				Open:       func() (audit.Sink, error) { return audit.OpenFile(path, audit.FileOptions{}) },
//				ReadBack:   func() ([]byte, error) { return readAll(path) },
//				Persistent: true,
//			}
//		})
//	}
package sinktest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"testing"
	"time"

	"github.com/kavachgate/kavach/audit"
)

// Harness is one empty location of the sink under test.
type Harness struct {
	// Open opens the sink at the harness's location. It is called again
	// after Close to reopen the same location.
	Open func() (audit.Sink, error)
	// ReadBack returns every line stored at the location, oldest first
	// (a file sink: its rotated segments and live file, concatenated).
	ReadBack func() ([]byte, error)
	// Persistent: a reopened sink finds what was written before (file,
	// PostgreSQL). False for write-only sinks (stdout), whose Tail is
	// always empty.
	Persistent bool
}

var seed = bytes.Repeat([]byte{7}, ed25519.SeedSize)

// Run runs the conformance suite.
func Run(t *testing.T, setup func(t *testing.T) Harness) {
	t.Run("EmptyTail", func(t *testing.T) {
		h := setup(t)
		s := open(t, h)
		defer s.Close()
		tail, err := s.Tail(context.Background())
		if err != nil || tail.Found {
			t.Fatalf("Tail of an empty sink = %+v, %v; want not found", tail, err)
		}
	})
	t.Run("AppendInOrder", func(t *testing.T) {
		h := setup(t)
		s := open(t, h)
		var want []byte
		var prev [32]byte
		seq := uint64(0)
		for _, n := range []int{1, 0, 7, 300} {
			b := batch(t, "conf-1", &seq, &prev, n)
			if err := s.Append(context.Background(), b); err != nil {
				t.Fatalf("Append(%d lines): %v", n, err)
			}
			want = append(want, b.Data...)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		got, err := h.ReadBack()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("read back %d bytes, want the %d appended, in order", len(got), len(want))
		}
	})
	t.Run("TailAfterReopen", func(t *testing.T) {
		h := setup(t)
		if !h.Persistent {
			t.Skip("write-only sink")
		}
		s := open(t, h)
		var prev [32]byte
		seq := uint64(0)
		b := batch(t, "conf-1", &seq, &prev, 5)
		if err := s.Append(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = open(t, h)
		defer s.Close()
		tail, err := s.Tail(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !tail.Found || tail.Stream != "conf-1" || tail.Seq != 5 || tail.Hash != prev {
			t.Fatalf("Tail after reopen = %+v; want stream conf-1 seq 5 hash %x", tail, prev)
		}
	})
	t.Run("AppendAfterCloseFails", func(t *testing.T) {
		h := setup(t)
		s := open(t, h)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		var prev [32]byte
		seq := uint64(0)
		if err := s.Append(context.Background(), batch(t, "conf-1", &seq, &prev, 1)); err == nil {
			t.Fatal("Append after Close succeeded")
		}
	})
	t.Run("WriterVerifies", func(t *testing.T) {
		h := setup(t)
		key := ed25519.NewKeyFromSeed(seed)
		pub := key.Public().(ed25519.PublicKey)
		write := func(stream string, n int) {
			w, err := audit.NewWriter(context.Background(), open(t, h), key, audit.Options{Stream: stream, CheckpointEvery: 100})
			if err != nil {
				t.Fatal(err)
			}
			for i := range n {
				rec := audit.Record{Kind: audit.KindDecision, Decision: audit.Allow, RequestID: fmt.Sprintf("req-%d", i),
					Sub: "usr_alice", Actor: "agt_2", Agents: []string{"agt_1", "agt_2"}, Chain: []string{"dlg_1", "dlg_2"},
					Method: "GET", Host: "api.example", Path: fmt.Sprintf("/r/%d", i)}
				if err := w.WriteDurable(context.Background(), &rec); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
		}
		write("conf-a", 250)
		streams := 1
		if h.Persistent {
			write("conf-b", 10)
			streams = 2
		}
		data, err := h.ReadBack()
		if err != nil {
			t.Fatal(err)
		}
		rep, err := audit.Verify(context.Background(), bytes.NewReader(data), "sink", pub, audit.VerifyOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK() || len(rep.Streams) != streams || rep.Uncovered != 0 {
			var b bytes.Buffer
			rep.WriteText(&b)
			t.Fatalf("the writer's trail does not verify as %d fully covered streams:\n%s", streams, b.String())
		}
	})
}

func open(t *testing.T, h Harness) audit.Sink {
	t.Helper()
	s, err := h.Open()
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

// batch encodes n decision records continuing the chain at *seq, *prev.
func batch(t *testing.T, stream string, seq *uint64, prev *[32]byte, n int) *audit.Batch {
	t.Helper()
	b := &audit.Batch{Stream: stream}
	for range n {
		*seq++
		rec := audit.Record{Seq: *seq, Stream: stream, Time: time.Date(2026, 3, 1, 12, 0, 0, int(*seq)*1000, time.UTC),
			Kind: audit.KindDecision, Decision: audit.Deny, Reason: "conformance", RequestID: fmt.Sprintf("r%d", *seq)}
		var h [32]byte
		var err error
		b.Data, h, err = audit.AppendLine(b.Data, *prev, &rec)
		if err != nil {
			t.Fatal(err)
		}
		b.Lines = append(b.Lines, audit.LineInfo{Seq: *seq, Kind: rec.Kind, Hash: h, End: len(b.Data)})
		*prev = h
	}
	return b
}
