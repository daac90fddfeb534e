package audit

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// Budgets (DESIGN.md §9): the file sink with fsync batching ≥ 50k
// records/s; verify ≥ 500k records/s. Reported as records/s.

// benchTrail is a trail of n gateway-sized decision records with default
// checkpoints, in memory.
func benchTrail(b *testing.B, n int) []byte {
	b.Helper()
	sink := &memSink{}
	w, err := NewWriter(context.Background(), sink, testKey(), Options{Stream: "bench-1", QueueSize: n + 1, MaxBatch: 1 << 16})
	if err != nil {
		b.Fatal(err)
	}
	for i := range n {
		if err := w.Write(decision(i)); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	return sink.bytes()
}

func BenchmarkVerify(b *testing.B) {
	const n = 200_000
	trail := benchTrail(b, n)
	pub := testPub()
	b.SetBytes(int64(len(trail)))
	b.ReportAllocs()
	b.ResetTimer()
	var records uint64
	for b.Loop() {
		rep, err := Verify(context.Background(), bytes.NewReader(trail), "bench", pub, VerifyOptions{})
		if err != nil || !rep.OK() {
			b.Fatalf("%v %v", err, rep.Problem)
		}
		records += rep.Records
	}
	b.ReportMetric(float64(records)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkWriterFile measures records/s through the Writer into the file
// sink, every batch written and fsynced before it counts (group commit:
// one fsync per batch, not per record), with the writer's default batching
// (BatchDelay, MaxBatch):
//
//   - "durable": many concurrent WriteDurable callers, as requests of a
//     route with `audit: required` wait for their decision record;
//   - "async": Write, as the gateway records every other request, retried
//     on back-pressure, and closed (the last batch written and fsynced)
//     inside the timer.
//
// Besides records/s it reports records/fsync, the mean group-commit batch.
// `make bench` runs both (budget, DESIGN.md §9: ≥ 50k records/s).
func BenchmarkWriterFile(b *testing.B) {
	open := func(b *testing.B) (*Writer, *syncCounter) {
		sink, err := OpenFile(filepath.Join(b.TempDir(), "audit.jsonl"), FileOptions{MaxSize: -1})
		if err != nil {
			b.Fatal(err)
		}
		sc := &syncCounter{FileSink: sink}
		w, err := NewWriter(context.Background(), sc, testKey(), Options{Stream: "bench-1", Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		return w, sc
	}
	// report checks that all b.N records reached the file and reports the
	// rates; elapsed is the time the records took to become durable.
	report := func(b *testing.B, w *Writer, sc *syncCounter, elapsed time.Duration) {
		st := w.Stats()
		if st.LastSeq-st.Checkpoints < uint64(b.N) {
			b.Fatalf("%d records written for %d calls", st.LastSeq-st.Checkpoints, b.N)
		}
		b.ReportMetric(float64(b.N)/elapsed.Seconds(), "records/s")
		if n := sc.appends.Load(); n > 0 {
			b.ReportMetric(float64(st.LastSeq)/float64(n), "records/fsync")
		}
	}
	b.Run("durable", func(b *testing.B) {
		w, sc := open(b)
		b.SetParallelism(256 / runtime.GOMAXPROCS(0))
		b.ReportAllocs()
		start := time.Now()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				if err := w.WriteDurable(context.Background(), decision(i)); err != nil {
					b.Error(err)
					return
				}
				i++
			}
		})
		elapsed := time.Since(start)
		b.StopTimer()
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
		report(b, w, sc, elapsed)
	})
	b.Run("async", func(b *testing.B) {
		w, sc := open(b)
		b.ReportAllocs()
		start := time.Now()
		for i := 0; b.Loop(); i++ {
			for err := w.Write(decision(i)); err != nil; err = w.Write(decision(i)) {
				if !errors.Is(err, ErrQueueFull) {
					b.Fatal(err)
				}
				time.Sleep(50 * time.Microsecond)
			}
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
		report(b, w, sc, time.Since(start))
	})
}

// syncCounter is the file sink, counting its appends: one write and one
// fsync each.
type syncCounter struct {
	*FileSink
	appends atomic.Int64
}

func (s *syncCounter) Append(ctx context.Context, b *Batch) error {
	s.appends.Add(1)
	return s.FileSink.Append(ctx, b)
}

// BenchmarkWrite is the writer's throughput without a disk: Write from
// every core, the writer goroutine assigning seq, hashing and handing
// batches to a sink that drops them.
func BenchmarkWrite(b *testing.B) {
	w, err := NewWriter(context.Background(), nullSink{}, testKey(), Options{Stream: "bench-1", QueueSize: 1 << 16})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	rec := decision(1)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			for err := w.Write(rec); err != nil; err = w.Write(rec) {
				runtime.Gosched()
			}
		}
	})
}

// nullSink drops what it is given.
type nullSink struct{}

func (nullSink) Tail(context.Context) (Tail, error)   { return Tail{}, nil }
func (nullSink) Append(context.Context, *Batch) error { return nil }
func (nullSink) Close() error                         { return nil }

// BenchmarkEncodeItem is what Write costs the request goroutine before it
// enqueues: checking and encoding a gateway decision record.
func BenchmarkEncodeItem(b *testing.B) {
	rec := decision(1)
	b.ReportAllocs()
	for b.Loop() {
		it, err := encodeItem(rec)
		if err != nil {
			b.Fatal(err)
		}
		putItem(it)
	}
}
