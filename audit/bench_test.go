package audit

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"runtime"
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

// BenchmarkWriterFile measures durable records/s into the file sink:
// "durable" with many concurrent WriteDurable callers (one fsync per group
// commit), "async" with Write retried on back-pressure, closed (flushed
// and fsynced) inside the timer.
func BenchmarkWriterFile(b *testing.B) {
	open := func(b *testing.B) *Writer {
		sink, err := OpenFile(filepath.Join(b.TempDir(), "audit.jsonl"), FileOptions{MaxSize: -1})
		if err != nil {
			b.Fatal(err)
		}
		w, err := NewWriter(context.Background(), sink, testKey(), Options{Stream: "bench-1", Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		return w
	}
	b.Run("durable", func(b *testing.B) {
		w := open(b)
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
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
		b.StopTimer()
		w.Close()
	})
	b.Run("async", func(b *testing.B) {
		w := open(b)
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
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
	})
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
