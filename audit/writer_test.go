package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// memSink is a Sink in memory whose appends can be made to fail or block.
type memSink struct {
	mu      sync.Mutex
	data    []byte
	appends int
	fail    atomic.Bool   // Append fails (nothing stored)
	block   chan struct{} // when not nil, Append waits for it to close
	closed  bool
}

func (s *memSink) Tail(context.Context) (Tail, error) { return Tail{}, nil }

func (s *memSink) Append(_ context.Context, b *Batch) error {
	if s.block != nil {
		<-s.block
	}
	if s.fail.Load() {
		return fmt.Errorf("write: %w", syscall.ENOSPC)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("closed")
	}
	s.data = append(s.data, b.Data...)
	s.appends++
	return nil
}

func (s *memSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

func (s *memSink) bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.data)
}

func (s *memSink) verify(t *testing.T) *Report {
	t.Helper()
	rep, err := Verify(context.Background(), bytes.NewReader(s.bytes()), "mem", testPub(), VerifyOptions{RequireGenesis: true})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("trail does not verify:\n%s", reportText(rep))
	}
	return rep
}

// records decodes a trail's lines.
func records(t *testing.T, data []byte) []Record {
	t.Helper()
	var out []Record
	for _, l := range bytes.SplitAfter(data, []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		r, err := ParseLine(l)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func countKind(rs []Record, k Kind) int {
	n := 0
	for _, r := range rs {
		if r.Kind == k {
			n++
		}
	}
	return n
}

func newTestWriter(t *testing.T, sink Sink, opts Options) *Writer {
	t.Helper()
	if opts.Stream == "" {
		opts.Stream = "test-1"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	w, err := NewWriter(context.Background(), sink, testKey(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// eventually polls cond for up to 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestWriterBackPressure: with the sink stuck, Write fails at once once the
// queue is full; nothing accepted is lost when the sink comes back.
func TestWriterBackPressure(t *testing.T) {
	t.Parallel()
	sink := &memSink{block: make(chan struct{})}
	w := newTestWriter(t, sink, Options{QueueSize: 4, MaxBatch: 1})
	accepted := 0
	for i := range 100 {
		err := w.Write(decision(i))
		if errors.Is(err, ErrQueueFull) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		accepted++
	}
	// One record may be in the stuck Append, QueueSize more in the queue.
	if accepted < 4 || accepted > 5 {
		t.Fatalf("accepted %d records with a stuck sink and a queue of 4", accepted)
	}
	if s := w.Stats(); s.Rejected != uint64(100-accepted) {
		t.Errorf("Stats.Rejected = %d, want %d", s.Rejected, 100-accepted)
	}
	close(sink.block)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	rs := records(t, sink.bytes())
	if got := countKind(rs, KindDecision); got != accepted {
		t.Fatalf("%d of %d accepted records written", got, accepted)
	}
	sink.verify(t)
}

// TestWriterSinkFailing: disk full. Write fails with ErrSinkFailing while
// the sink fails, a WriteDurable caller is told, and once the sink recovers
// every record that was accepted is written, exactly once.
func TestWriterSinkFailing(t *testing.T) {
	t.Parallel()
	sink := &memSink{}
	w := newTestWriter(t, sink, Options{})
	for i := range 10 {
		if err := w.WriteDurable(context.Background(), decision(i)); err != nil {
			t.Fatal(err)
		}
	}
	sink.fail.Store(true)
	err := w.WriteDurable(context.Background(), decision(10))
	if !errors.Is(err, ErrNotDurable) || !errors.Is(err, ErrSinkFailing) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("WriteDurable on a full disk = %v, want ErrNotDurable (ErrSinkFailing, ENOSPC): queued, not durable", err)
	}
	if err := w.Write(decision(11)); !errors.Is(err, ErrSinkFailing) {
		t.Fatalf("Write while the sink fails = %v, want ErrSinkFailing", err)
	}
	// Refused at once, taking nothing: not ErrNotDurable.
	if err := w.WriteDurable(context.Background(), decision(11)); !errors.Is(err, ErrSinkFailing) || errors.Is(err, ErrNotDurable) {
		t.Fatalf("WriteDurable while the sink fails = %v, want ErrSinkFailing alone (nothing queued)", err)
	}
	// The outcome of a request forwarded before the failure is kept.
	if err := w.Write(outcome(9)); err != nil {
		t.Fatalf("Write of an outcome while the sink fails = %v, want it queued", err)
	}
	if s := w.Stats(); !s.Failing || !errors.Is(s.Err, syscall.ENOSPC) {
		t.Fatalf("Stats while failing = %+v", s)
	}
	sink.fail.Store(false)
	eventually(t, "the sink to recover", func() bool { return !w.Stats().Failing })
	if err := w.WriteDurable(context.Background(), decision(12)); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	rs := records(t, sink.bytes())
	var ids []string
	for _, r := range rs {
		if r.Kind == KindDecision {
			ids = append(ids, r.RequestID)
		}
	}
	want := "req_0 req_1 req_2 req_3 req_4 req_5 req_6 req_7 req_8 req_9 req_10 req_12"
	if got := strings.Join(ids, " "); got != want {
		t.Fatalf("written: %s\nwant:    %s", got, want)
	}
	if !strings.Contains(string(sink.bytes()), `"kind":"outcome","request_id":"req_9"`) {
		t.Fatal("the outcome taken while the sink failed was not written")
	}
	sink.verify(t)
}

// TestWriterCloseGivesUp: a sink that never recovers; Close says how many
// records were lost instead of hanging.
func TestWriterCloseGivesUp(t *testing.T) {
	t.Parallel()
	sink := &memSink{}
	sink.fail.Store(true)
	w := newTestWriter(t, sink, Options{CloseTimeout: 100 * time.Millisecond})
	if err := w.Write(decision(1)); err != nil {
		t.Fatal(err)
	}
	err := w.Close()
	if err == nil || !strings.Contains(err.Error(), "1 records not written") {
		t.Fatalf("Close = %v, want it to report the lost record", err)
	}
	if err2 := w.Close(); err2 == nil || err2.Error() != err.Error() {
		t.Fatalf("second Close = %v, want the same error", err2)
	}
	if err := w.Write(decision(2)); !errors.Is(err, ErrSinkFailing) && !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after Close = %v", err)
	}
}

func TestWriterClosed(t *testing.T) {
	t.Parallel()
	w := newTestWriter(t, &memSink{}, Options{})
	w.Close()
	if err := w.Write(decision(1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after Close = %v, want ErrClosed", err)
	}
	if err := w.WriteDurable(context.Background(), decision(1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("WriteDurable after Close = %v, want ErrClosed", err)
	}
}

func TestWriterRefuses(t *testing.T) {
	t.Parallel()
	w := newTestWriter(t, &memSink{}, Options{})
	many := make([]string, MaxListLen+1)
	for i := range many {
		many[i] = "agt_x"
	}
	huge := make([]string, MaxListLen)
	for i := range huge {
		huge[i] = strings.Repeat("\x01", MaxStringBytes) // 6 bytes each once escaped
	}
	for name, tc := range map[string]struct {
		rec  Record
		want error
	}{
		"seq set":         {Record{Kind: KindOutcome, Seq: 3}, ErrInvalidRecord},
		"stream set":      {Record{Kind: KindOutcome, Stream: "x"}, ErrInvalidRecord},
		"hash set":        {Record{Kind: KindOutcome, Hash: "x"}, ErrInvalidRecord},
		"checkpoint":      {Record{Kind: KindCheckpoint}, ErrInvalidRecord},
		"summary":         {Record{Kind: KindSummary, Count: 1}, ErrInvalidRecord},
		"no kind":         {Record{}, ErrInvalidRecord},
		"decision empty":  {Record{Kind: KindDecision}, ErrInvalidRecord},
		"list too long":   {Record{Kind: KindRevoked, IDs: many}, ErrRecordTooLarge},
		"line too long":   {Record{Kind: KindRevoked, IDs: huge}, ErrRecordTooLarge},
		"negative status": {Record{Kind: KindOutcome, Status: -1}, ErrInvalidRecord},
	} {
		if err := w.Write(&tc.rec); !errors.Is(err, tc.want) {
			t.Errorf("%s: Write = %v, want %v", name, err, tc.want)
		}
	}
}

// TestWriterCheckpoints: one after every N records, one per interval while
// records are uncovered, and a final one on Close.
func TestWriterCheckpoints(t *testing.T) {
	t.Parallel()
	sink := &memSink{}
	w := newTestWriter(t, sink, Options{CheckpointEvery: 10, CheckpointInterval: time.Hour})
	writeN(t, w, 25)
	w.Close()
	rs := records(t, sink.bytes())
	var at []uint64
	for _, r := range rs {
		if r.Kind == KindCheckpoint {
			at = append(at, r.Seq)
		}
	}
	if fmt.Sprint(at) != "[11 22 28]" {
		t.Fatalf("checkpoints at seq %v, want [11 22 28]", at)
	}
	if rep := sink.verify(t); rep.Uncovered != 0 {
		t.Fatalf("uncovered after Close:\n%s", reportText(rep))
	}

	// By time: a checkpoint shows up without Close and without N records.
	sink2 := &memSink{}
	w2 := newTestWriter(t, sink2, Options{CheckpointInterval: 20 * time.Millisecond})
	writeN(t, w2, 3)
	eventually(t, "a timed checkpoint covering everything", func() bool {
		rep, err := Verify(context.Background(), bytes.NewReader(sink2.bytes()), "mem", testPub(), VerifyOptions{})
		return err == nil && rep.OK() && rep.Checkpoints >= 1 && rep.Uncovered == 0
	})
	// Idle: no more checkpoints when nothing is uncovered.
	n := w2.Stats().Checkpoints
	time.Sleep(100 * time.Millisecond)
	if m := w2.Stats().Checkpoints; m != n {
		t.Fatalf("%d checkpoints while idle", m-n)
	}
}

// TestWriterJunk: a flood of unauthenticated requests becomes one summary
// record per reason per interval, with the exact counts.
func TestWriterJunk(t *testing.T) {
	t.Parallel()
	sink := &memSink{}
	// One interval (until Close): one summary per reason.
	w := newTestWriter(t, sink, Options{SummaryInterval: time.Hour})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 5000 {
				w.CountJunk([]string{"missing_token", "bad_signature"}[(g+i)%2])
			}
		}()
	}
	wg.Wait()
	for i := range MaxJunkReasons - 2 + 5 { // 30 fill the map, 5 overflow
		w.CountJunk(fmt.Sprintf("reason_%02d", i))
	}
	w.Close()
	rs := records(t, sink.bytes())
	counts := map[string]uint64{}
	summaries := 0
	for _, r := range rs {
		if r.Kind == KindSummary {
			summaries++
			if r.Decision != Deny || r.Count == 0 {
				t.Fatalf("bad summary %+v", r)
			}
			counts[r.Reason] += r.Count
		}
	}
	if counts["missing_token"] != 10000 || counts["bad_signature"] != 10000 {
		t.Fatalf("counts %v", counts)
	}
	if counts[JunkOther] != 5 || len(counts) != MaxJunkReasons+1 {
		t.Fatalf("%d reasons, other = %d", len(counts), counts[JunkOther])
	}
	if summaries != len(counts) {
		t.Fatalf("%d summary records for %d reasons in one interval", summaries, len(counts))
	}
	sink.verify(t)

	// Written by the interval, without Close.
	sink2 := &memSink{}
	w2 := newTestWriter(t, sink2, Options{SummaryInterval: 20 * time.Millisecond})
	w2.CountJunk("bad_signature")
	eventually(t, "a summary", func() bool { return w2.Stats().Written > 0 })
	if rs := records(t, sink2.bytes()); rs[0].Kind != KindSummary || rs[0].Count != 1 {
		t.Fatalf("records %+v", rs)
	}
}

// TestWriterConcurrent runs writers, durable writers, junk and checkpoints
// at once (run with -race): every accepted record is written once, and the
// trail verifies.
func TestWriterConcurrent(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	sink, err := OpenFile(path, FileOptions{MaxSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	witness := &MemoryWitness{}
	w := newTestWriter(t, sink, Options{CheckpointEvery: 50, CheckpointInterval: 5 * time.Millisecond,
		SummaryInterval: 7 * time.Millisecond, QueueSize: 64, Witness: witness})
	var accepted atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				rec := decision(g*1000 + i)
				var err error
				if i%3 == 0 {
					err = w.WriteDurable(context.Background(), rec)
				} else {
					for err = w.Write(rec); errors.Is(err, ErrQueueFull); err = w.Write(rec) {
						time.Sleep(100 * time.Microsecond)
					}
				}
				if err != nil {
					t.Error(err)
					return
				}
				accepted.Add(1)
				w.CountJunk("missing_token")
				_ = w.Stats()
			}
		}()
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := VerifyTrail(context.Background(), path, testPub(), VerifyOptions{RequireGenesis: true, Witness: witness})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Uncovered != 0 || len(rep.Sources) < 2 {
		t.Fatalf("concurrent trail (rotated):\n%s", reportText(rep))
	}
	files, _ := Files(path)
	n, junk := 0, uint64(0)
	for e, err := range Query(files, Filter{}) {
		if err != nil {
			t.Fatal(err)
		}
		switch e.Record.Kind {
		case KindDecision:
			n++
		case KindSummary:
			junk += e.Record.Count
		}
	}
	if int64(n) != accepted.Load() || junk != uint64(accepted.Load()) {
		t.Fatalf("%d decisions and %d junk written, %d accepted", n, junk, accepted.Load())
	}
}

// TestWriterWitness: every checkpoint reaches the witness, the last one
// covering the last record; a witness that hangs slows nothing down.
func TestWriterWitness(t *testing.T) {
	t.Parallel()
	sink := &memSink{}
	witness := &MemoryWitness{}
	w := newTestWriter(t, sink, Options{CheckpointEvery: 10, CheckpointInterval: time.Hour, Witness: witness})
	writeN(t, w, 35)
	w.Close()
	cps, _ := witness.Checkpoints(context.Background(), "test-1")
	if len(cps) != 4 || cps[3].Seq != 38 {
		t.Fatalf("witness has %d checkpoints, last %+v", len(cps), cps[len(cps)-1])
	}
	for _, c := range cps {
		if err := c.Verify(testPub()); err != nil {
			t.Fatal(err)
		}
	}

	hang := hangingWitness{}
	sink2 := &memSink{}
	w2 := newTestWriter(t, sink2, Options{CheckpointEvery: 2, Witness: hang, WitnessTimeout: 20 * time.Millisecond})
	writeN(t, w2, 200)
	if err := w2.Close(); err != nil {
		t.Fatal(err)
	}
	if s := w2.Stats(); s.WitnessErrs == 0 {
		t.Fatal("witness timeouts not counted")
	}
	sink2.verify(t)
}

type hangingWitness struct{}

func (hangingWitness) Put(ctx context.Context, _ Checkpoint) error { <-ctx.Done(); return ctx.Err() }
func (hangingWitness) Checkpoints(context.Context, string) ([]Checkpoint, error) {
	return nil, nil
}

// TestWriterOrder: records are written in the order they were accepted,
// with their own times; a decision precedes its outcome.
func TestWriterOrder(t *testing.T) {
	t.Parallel()
	sink := &memSink{}
	w := newTestWriter(t, sink, Options{})
	d := decision(1)
	d.Time = t0
	if err := w.Write(d); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteDurable(context.Background(), outcome(1)); err != nil {
		t.Fatal(err)
	}
	w.Close()
	rs := records(t, sink.bytes())
	if len(rs) != 3 || rs[0].Kind != KindDecision || !rs[0].Time.Equal(t0) || rs[1].Kind != KindOutcome ||
		rs[1].RequestID != rs[0].RequestID || rs[2].Kind != KindCheckpoint || rs[1].Time.IsZero() {
		t.Fatalf("records: %+v", rs)
	}
}

func TestWriterStreamCollision(t *testing.T) {
	t.Parallel()
	path := writeTrail(t, t.TempDir(), "gw-1", 3, Options{})
	sink, err := OpenFile(path, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	if _, err := NewWriter(context.Background(), sink, testKey(), Options{Stream: "gw-1"}); err == nil {
		t.Fatal("a second stream with the id of the last one was accepted")
	}
	if _, err := NewWriter(context.Background(), sink, testKey(), Options{Stream: "a b"}); err == nil {
		t.Fatal("bad stream id accepted")
	}
	if _, err := NewWriter(context.Background(), sink, nil, Options{}); err == nil {
		t.Fatal("no key accepted")
	}
}

// The gathering window never holds what must not wait: a durable record
// ends it (audit: required answers at once even with a long window), a full
// batch ends it, and Close ends it, while ordinary records wait for it
// (one fsync serves many requests).
func TestWriterGatherWindow(t *testing.T) {
	t.Parallel()
	appends := func(s *memSink) int {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.appends
	}
	t.Run("durable ends the window", func(t *testing.T) {
		t.Parallel()
		sink := &memSink{}
		w := newTestWriter(t, sink, Options{BatchDelay: time.Hour})
		for i := range 3 {
			if err := w.Write(decision(i)); err != nil {
				t.Fatal(err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := w.WriteDurable(ctx, decision(3)); err != nil {
			t.Fatalf("durable write inside an hour-long window: %v", err)
		}
		if got := countKind(records(t, sink.bytes()), KindDecision); got != 4 {
			t.Errorf("after the durable write the sink holds %d decisions, want all 4", got)
		}
	})
	t.Run("records wait for the window", func(t *testing.T) {
		t.Parallel()
		sink := &memSink{}
		w := newTestWriter(t, sink, Options{BatchDelay: time.Hour})
		if err := w.Write(decision(0)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
		if n := appends(sink); n != 0 {
			t.Errorf("a lone record was appended inside the window (%d appends)", n)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if got := countKind(records(t, sink.bytes()), KindDecision); got != 1 {
			t.Errorf("Close left %d decisions in the sink, want 1", got)
		}
	})
	t.Run("a full batch ends the window", func(t *testing.T) {
		t.Parallel()
		sink := &memSink{}
		w := newTestWriter(t, sink, Options{BatchDelay: time.Hour, MaxBatch: 8, CheckpointEvery: 1000})
		if err := w.Write(decision(0)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond) // the writer holds it, gathering
		for i := 1; i < 8; i++ {
			if err := w.Write(decision(i)); err != nil {
				t.Fatal(err)
			}
		}
		eventually(t, "a full batch appended inside the window", func() bool {
			return countKind(records(t, sink.bytes()), KindDecision) == 8
		})
	})
}
