package audit

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// trailWriter writes requests the way the gateway does (a decision, then
// the outcome of an allowed one) through the real Writer and file sink.
type trailWriter struct {
	t    testing.TB
	path string
	w    *Writer
	n    int // requests written
}

// openTrailWriter opens path with the signing key beside it (so
// OpenBrowser finds its .pub); maxSize > 0 rotates the file.
func openTrailWriter(t testing.TB, path, stream string, maxSize int64, every int) *trailWriter {
	t.Helper()
	key, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	sink, err := OpenFile(path, FileOptions{MaxSize: maxSize})
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWriter(context.Background(), sink, key, Options{Stream: stream, CheckpointEvery: every, CheckpointInterval: time.Hour, BatchDelay: -1})
	if err != nil {
		t.Fatal(err)
	}
	tw := &trailWriter{t: t, path: path, w: w}
	t.Cleanup(func() { tw.close() })
	return tw
}

func (tw *trailWriter) close() {
	if tw.w != nil {
		if err := tw.w.Close(); err != nil {
			tw.t.Fatal(err)
		}
		tw.w = nil
	}
}

// gwRequest i: agents, users and tools vary with i; every third is denied
// (403, no outcome), the others allowed with an outcome (200, or 500 for
// every fifth).
func gwRequest(i int) (dec, out *Record) {
	users := []string{"usr_alice", "usr_bob"}
	agents := []string{"agt_reviewer", "agt_writer", "agt_bot"}
	tools := []string{"read_diff", "write_file", "search"}
	dec = &Record{
		Kind: KindDecision, Decision: Allow, Reason: "allowed", RequestID: fmt.Sprintf("req_%d", i),
		Sub: users[i%2], Actor: agents[i%3], Agents: []string{"agt_orch", agents[i%3]},
		Chain: []string{fmt.Sprintf("dlg_root_%d", i%2), "dlg_child"}, ClientID: "agt_orch", JTI: fmt.Sprintf("tok_%d", i),
		Method: "POST", Host: "mcp.internal", Path: "/mcp", MCPMethod: "tools/call", Tool: tools[i%3],
	}
	if i%3 == 2 {
		dec.Decision, dec.Reason, dec.Status = Deny, "insufficient_scope: repository:write", 403
		return dec, nil
	}
	status := 200
	if i%5 == 4 {
		status = 500
	}
	return dec, &Record{Kind: KindOutcome, RequestID: dec.RequestID, Sub: dec.Sub, Actor: dec.Actor, Agents: dec.Agents, Status: status, Bytes: 10, Duration: time.Millisecond}
}

// write writes n more requests and waits until they are durable.
func (tw *trailWriter) write(n int) {
	tw.t.Helper()
	for range n {
		dec, out := gwRequest(tw.n)
		tw.n++
		if err := tw.w.Write(dec); err != nil {
			tw.t.Fatal(err)
		}
		if out != nil {
			if err := tw.w.Write(out); err != nil {
				tw.t.Fatal(err)
			}
		}
	}
	if err := tw.w.WriteDurable(context.Background(), &Record{Kind: KindIssued, Sub: "usr_alice", ClientID: "agt_orch", JTI: fmt.Sprintf("tok_issued_%d", tw.n)}); err != nil {
		tw.t.Fatal(err)
	}
}

func openFileBrowser(t testing.TB, path string, o BrowseOptions) Pager {
	t.Helper()
	b, err := OpenBrowser(context.Background(), Config{Sink: SinkFile, Path: path}, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b.(Pager)
}

// all pages through the trail and returns every entry, checking that
// each stream's entries come in seq order, newest first, and with
// ordered that the times do too.
func all(t testing.TB, b Pager, f Filter, limit int) []BrowseEntry {
	return allOrdered(t, b, f, limit, true)
}

func allOrdered(t testing.TB, b Pager, f Filter, limit int, ordered bool) []BrowseEntry {
	t.Helper()
	var out []BrowseEntry
	cursor := ""
	for pages := 0; ; pages++ {
		p, err := b.BrowsePage(context.Background(), f, limit, cursor)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p.Entries...)
		if p.Next == "" {
			break
		}
		if pages > 100000 {
			t.Fatal("paging does not end")
		}
		cursor = p.Next
	}
	last := map[string]uint64{} // stream → the seq of its last entry
	for i, e := range out {
		if s, ok := last[e.Stream]; ok && e.Seq >= s {
			t.Fatalf("entry %d (%s:%d) after seq %d of its stream", i, e.Stream, e.Seq, s)
		}
		last[e.Stream] = e.Seq
	}
	for i := 1; i < len(out) && ordered; i++ {
		a, b := keyOf(&out[i-1]), keyOf(&out[i])
		if a.compare(b) <= 0 {
			t.Fatalf("entry %d (%s:%d at %s) is not older than the one before (%s:%d at %s)", i,
				out[i].Stream, out[i].Seq, out[i].Decision.Time, out[i-1].Stream, out[i-1].Seq, out[i-1].Decision.Time)
		}
	}
	return out
}

func keyOf(e *BrowseEntry) browseKey {
	return browseKey{t: e.Decision.Time.UnixMicro(), stream: e.Stream, seq: e.Seq}
}

func TestBrowseNewestFirstWithOutcomes(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	tw := openTrailWriter(t, path, "gw-1", 0, 50)
	tw.write(30)
	b := openFileBrowser(t, path, BrowseOptions{})
	got, err := b.Browse(context.Background(), Filter{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 10 {
		t.Fatalf("got %d entries, want 10", len(got))
	}
	// The newest: the issued event written last, then requests 29, 28…
	if got[0].Decision.Kind != KindIssued {
		t.Fatalf("newest entry is %s, want the issued event", got[0].Decision.Kind)
	}
	for k, e := range got[1:] {
		i := 29 - k
		want := fmt.Sprintf("req_%d", i)
		if e.Decision.RequestID != want {
			t.Fatalf("entry %d is %s, want %s", k+1, e.Decision.RequestID, want)
		}
		_, out := gwRequest(i)
		switch {
		case out == nil && e.Outcome != nil:
			t.Errorf("%s: a denial has an outcome", want)
		case out == nil && e.Status() != 403:
			t.Errorf("%s: status %d, want the denial's 403", want, e.Status())
		case out != nil && (e.Outcome == nil || e.Outcome.Status != out.Status):
			t.Errorf("%s: outcome %+v, want status %d", want, e.Outcome, out.Status)
		}
		if e.Seq == 0 || e.Stream != "gw-1" {
			t.Errorf("%s: seq %d stream %q", want, e.Seq, e.Stream)
		}
	}
	every := all(t, b, Filter{}, 7)
	for _, e := range every {
		if !entryKind(e.Decision.Kind) {
			t.Fatalf("a %s record is an entry", e.Decision.Kind)
		}
	}
	if len(every) != 31 {
		t.Fatalf("paging found %d entries, want 31 (30 requests, 1 event)", len(every))
	}
}

func TestBrowseFilters(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	tw := openTrailWriter(t, path, "gw-1", 0, 40)
	tw.write(90)
	mid := time.Now()
	tw.write(30)
	b := openFileBrowser(t, path, BrowseOptions{})
	checkFilters(t, b, mid)
	for _, c := range []string{"x", "t1:gw-1", "t1:a:b:0", "tx:gw-1:1", "r12"} {
		if _, err := b.BrowsePage(context.Background(), Filter{}, 10, c); err != ErrBadCursor {
			t.Errorf("cursor %q: %v, want ErrBadCursor", c, err)
		}
	}
}

// checkFilters checks Browse's filters on a trail of gwRequest(0…119),
// with an issued event after request 89 (at mid) and after 119.
func checkFilters(t *testing.T, b Pager, mid time.Time) {
	names := &Names{Agents: map[string]string{"agt_reviewer": "reviewer"}, Users: map[string]string{"usr_alice": "alice"}}
	// want counts the requests among 0…119 that the filter keeps.
	want := func(keep func(i int, dec, out *Record) bool) int {
		n := 0
		for i := range 120 {
			dec, out := gwRequest(i)
			if keep(i, dec, out) {
				n++
			}
		}
		return n
	}
	tests := []struct {
		name   string
		f      Filter
		want   int
		events int // issued events kept besides requests
	}{
		{"agent by id", Filter{Agent: "agt_reviewer"}, want(func(i int, _, _ *Record) bool { return i%3 == 0 }), 0},
		{"agent by name", Filter{Agent: "reviewer", Names: names}, want(func(i int, _, _ *Record) bool { return i%3 == 0 }), 0},
		{"agent in the chain", Filter{Agent: "agt_orch"}, 120, 2},
		{"user", Filter{Sub: "usr_bob"}, 60, 0},
		{"user by name", Filter{Sub: "alice", Names: names}, 60, 2},
		{"user's grants", Filter{Roots: []string{"dlg_root_1"}}, 60, 0},
		{"user or their grants", Filter{Sub: "usr_alice", Roots: []string{"dlg_root_1"}}, 120, 2},
		{"tool", Filter{Tool: "write_file"}, 40, 0},
		{"denied", Filter{Decision: Deny}, 40, 0},
		{"allowed read_diff", Filter{Decision: Allow, Tool: "read_diff"}, 40, 0},
		{"status 4xx", Filter{Status: "4xx"}, 40, 0},
		{"status 500", Filter{Status: "500"}, want(func(_ int, _, out *Record) bool { return out != nil && out.Status == 500 }), 0},
		{"status 200", Filter{Status: "200"}, want(func(_ int, _, out *Record) bool { return out != nil && out.Status == 200 }), 0},
		{"events only", Filter{Kinds: []Kind{KindIssued}}, 0, 2},
		{"since", Filter{Since: mid}, 30, 1},
		{"until", Filter{Until: mid}, 90, 1},
		{"request", Filter{RequestID: "req_7"}, 1, 0},
		{"chain", Filter{Chain: "dlg_root_0"}, 60, 0},
		{"nobody", Filter{Sub: "usr_mallory"}, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := all(t, b, tc.f, 25)
			if len(got) != tc.want+tc.events {
				t.Fatalf("%d entries, want %d", len(got), tc.want+tc.events)
			}
			for _, e := range got {
				if e.Decision.Kind == KindDecision && e.Decision.Decision == Allow && e.Outcome == nil {
					t.Fatalf("%s: allowed, without its outcome", e.Decision.RequestID)
				}
			}
		})
	}
	if _, err := b.BrowsePage(context.Background(), Filter{Status: "4x"}, 10, ""); err == nil {
		t.Error("status filter 4x accepted")
	}
}

// A trail rotated into many files, a live file ending in a partial line:
// paging finds every entry once, newest first, each with its outcome.
func TestBrowseRotatedAndPartial(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	tw := openTrailWriter(t, path, "gw-1", 16<<10, 100)
	for range 10 {
		tw.write(50)
	}
	tw.close()
	files, err := Files(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 5 {
		t.Fatalf("%d files, want a rotated trail", len(files))
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"seq":99999,"stream":"gw-1","time":"2030-01-01T00:0`)
	f.Close()
	b := openFileBrowser(t, path, BrowseOptions{})
	got := all(t, b, Filter{}, 33)
	if len(got) != 510 {
		t.Fatalf("%d entries, want 510 (500 requests, 10 events)", len(got))
	}
	seen := map[string]bool{}
	for _, e := range got {
		if e.Decision.Kind != KindDecision {
			continue
		}
		if seen[e.Decision.RequestID] {
			t.Fatalf("%s twice", e.Decision.RequestID)
		}
		seen[e.Decision.RequestID] = true
		if e.Decision.Decision == Allow && e.Outcome == nil {
			t.Fatalf("%s: no outcome (file boundary or page boundary lost it)", e.Decision.RequestID)
		}
	}
	// Denials only, in small pages: each page starts at a cursor and
	// binary-searches the files.
	if got := all(t, b, Filter{Decision: Deny}, 3); len(got) != 166 {
		t.Fatalf("%d denials, want 166", len(got))
	}
	// The partial line is the live end of the stream: not a fault.
	if st := waitStatus(t, b); !st.Verified || st.Uncovered != 0 || !strings.HasSuffix(st.Source, fmt.Sprintf("(%d files)", len(files))) {
		t.Fatalf("status %+v", st)
	}
}

// A page reads at most MaxScan records, whatever the filter: a search
// that matches one old record pages its way there.
func TestBrowseBoundedWork(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	tw := openTrailWriter(t, path, "gw-1", 0, 1000)
	tw.write(5)
	if err := tw.w.Write(&Record{Kind: KindDecision, Decision: Deny, Reason: "needle", RequestID: "req_needle", Tool: "needle", Status: 403}); err != nil {
		t.Fatal(err)
	}
	tw.write(6000) // with outcomes, over 10 000 records
	b := openFileBrowser(t, path, BrowseOptions{MaxScan: 1000})
	p, err := b.BrowsePage(context.Background(), Filter{Tool: "needle"}, 10, "")
	if err != nil {
		t.Fatal(err)
	}
	if p.Scanned != 1000 || len(p.Entries) != 0 || p.Next == "" {
		t.Fatalf("first page: scanned %d, %d entries, next %q; want 1000 scanned, none, a cursor", p.Scanned, len(p.Entries), p.Next)
	}
	pages, found := 1, 0
	for p.Next != "" {
		if p, err = b.BrowsePage(context.Background(), Filter{Tool: "needle"}, 10, p.Next); err != nil {
			t.Fatal(err)
		}
		if p.Scanned > 1000 {
			t.Fatalf("a page scanned %d records", p.Scanned)
		}
		found += len(p.Entries)
		pages++
	}
	if found != 1 || pages < 10 {
		t.Fatalf("found %d in %d pages, want the needle in over 10 pages", found, pages)
	}
}

// The default trail is a directory of files, one per process start.
func TestBrowseDefaultDirectory(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := Config{Sink: SinkFile, DataDir: dir}
	for run := range 2 {
		w, err := Open(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			dec, _ := gwRequest(run*5 + i)
			if err := w.Write(dec); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond) // stream ids name the start time
	}
	b, err := OpenBrowser(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	got := all(t, b.(Pager), Filter{}, 100)
	if len(got) != 10 || got[0].Decision.RequestID != "req_9" || got[9].Decision.RequestID != "req_0" {
		t.Fatalf("got %d entries (%v…), want req_9 … req_0 of both files", len(got), got)
	}
	st := waitStatus(t, b)
	if !st.Verified || !strings.Contains(st.Source, "(2 files)") || st.Uncovered != 0 || st.Checkpoint == "" {
		t.Fatalf("status %+v, want both files verified and covered by their final checkpoints", st)
	}
}

func TestOpenBrowserRefuses(t *testing.T) {
	t.Parallel()
	if _, err := OpenBrowser(context.Background(), Config{Sink: SinkStdout}); err == nil || !strings.Contains(err.Error(), "cannot be read") {
		t.Errorf("stdout: %v", err)
	}
	if _, err := OpenBrowser(context.Background(), Config{Sink: SinkFile, Path: filepath.Join(t.TempDir(), "a.jsonl")}); err == nil || !strings.Contains(err.Error(), "public key") {
		t.Errorf("no key: %v", err)
	}
}

// waitStatus asks for the status until a pass has ended.
func waitStatus(t testing.TB, b Browser) TrailStatus {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := b.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !st.Pending && !st.At.IsZero() {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatal("no verification pass ended")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// nextStatus waits for a pass that began after now: the second to end
// after now (the first may have begun before).
func nextStatus(t testing.TB, b Browser) TrailStatus {
	t.Helper()
	return statusAfter(t, b, statusAfter(t, b, time.Now()).At)
}

func statusAfter(t testing.TB, b Browser, since time.Time) TrailStatus {
	t.Helper()
	for {
		st := waitStatus(t, b)
		if st.At.After(since) {
			return st
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestBrowseStatus(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	tw := openTrailWriter(t, path, "gw-1", 64<<10, 30)
	tw.write(40) // 40 decisions, 26 outcomes, 1 event: checkpoints at 101…
	b := openFileBrowser(t, path, BrowseOptions{StatusEvery: time.Millisecond})
	st := waitStatus(t, b)
	if !st.Verified || st.Problem != "" || st.Checkpoint == "" || st.Uncovered == 0 || st.Uncovered >= 100 {
		t.Fatalf("status %+v: want verified, a checkpoint, under 100 records uncovered", st)
	}
	if want := "sha256 " + KeyFingerprint(mustPub(t, path)); st.KeyFingerprint != want {
		t.Fatalf("key %q, want %q", st.KeyFingerprint, want)
	}
	ref, err := ParseCheckpointRef(st.Checkpoint)
	if err != nil {
		t.Fatal(err)
	}
	entries := all(t, b, Filter{}, 1000)
	for _, e := range entries {
		if e.Covered != (e.Seq <= ref.Seq) {
			t.Fatalf("seq %d covered %v with the checkpoint at %s", e.Seq, e.Covered, st.Checkpoint)
		}
	}
	// More records, rotation included: the next pass goes on from where
	// this one ended.
	records := st.Records
	tw.write(200)
	st = nextStatus(t, b)
	if !st.Verified || st.Records <= records+300 {
		t.Fatalf("after 200 more requests: %+v (had %d records)", st, records)
	}
	tw.close() // the final checkpoint
	st = nextStatus(t, b)
	if !st.Verified || st.Uncovered != 0 {
		t.Fatalf("after close: %+v, want everything covered", st)
	}
	// An edited record of a rotated file: found by a full pass (a file
	// was replaced, so the pass starts again).
	files, _ := Files(path)
	ls := lines(t, files[0])
	ls[3] = strings.Replace(ls[3], "usr_bob", "usr_eve", 1)
	writeLines(t, files[0], ls)
	st = nextStatus(t, b)
	if st.Verified || !strings.Contains(st.Problem, "edited") {
		t.Fatalf("after tampering: %+v, want a problem", st)
	}
}

// Truncating the live file (records dropped from its end) is noticed at
// the next pass: it verifies from the start, and the dropped checkpoint
// no longer counts.
func TestBrowseStatusTruncated(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	tw := openTrailWriter(t, path, "gw-1", 0, 10)
	tw.write(20)
	tw.close()
	b := openFileBrowser(t, path, BrowseOptions{StatusEvery: time.Millisecond})
	st := waitStatus(t, b)
	if !st.Verified || st.Uncovered != 0 {
		t.Fatalf("%+v", st)
	}
	ls := lines(t, path)
	writeLines(t, path, ls[:len(ls)-3])
	st2 := nextStatus(t, b)
	if !st2.Verified || st2.Records != st.Records-3 || st2.Checkpoint == st.Checkpoint || st2.Uncovered == 0 {
		t.Fatalf("after truncation: %+v (before %+v)", st2, st)
	}
}

func mustPub(t testing.TB, path string) []byte {
	_, p := KeyPaths(path)
	pub, err := LoadPublicKey(p)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

func BenchmarkBrowseNewest50(b *testing.B) {
	path := filepath.Join(b.TempDir(), "audit.jsonl")
	tw := openTrailWriter(b, path, "gw-1", 0, 1000)
	for range 60 {
		tw.write(1000) // about 100 000 records in all
	}
	tw.close()
	br := openFileBrowser(b, path, BrowseOptions{})
	for b.Loop() {
		got, err := br.Browse(context.Background(), Filter{}, 50)
		if err != nil || len(got) != 50 {
			b.Fatal(len(got), err)
		}
	}
	fi, _ := os.Stat(path)
	b.ReportMetric(float64(fi.Size())/(1<<20), "trail-MB")
}

// Two processes writing one directory at once: their records merge by
// time, newest first, and the status covers both files.
func TestBrowseConcurrentFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a := openTrailWriter(t, filepath.Join(dir, "a.jsonl"), "gw-a", 0, 20)
	// Both trails are signed with a.jsonl's key, as the default trail's
	// files share audit.key.
	key, err := LoadOrCreateKey(filepath.Join(dir, "a.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	sink, err := OpenFile(filepath.Join(dir, "b.jsonl"), FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wb, err := NewWriter(context.Background(), sink, key, Options{Stream: "gw-b", CheckpointEvery: 20, CheckpointInterval: time.Hour, BatchDelay: -1})
	if err != nil {
		t.Fatal(err)
	}
	b := &trailWriter{t: t, w: wb}
	t.Cleanup(b.close)
	for range 10 {
		a.write(3)
		b.write(4)
	}
	// A directory named as the path: every trail in it.
	br, err := OpenBrowser(context.Background(), Config{Sink: SinkFile, Path: dir, Key: filepath.Join(dir, "a.jsonl.key")}, BrowseOptions{StatusEvery: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer br.Close()
	got := all(t, br.(Pager), Filter{}, 9)
	streams := map[string]int{}
	for _, e := range got {
		streams[e.Stream]++
	}
	if streams["gw-a"] != 40 || streams["gw-b"] != 50 {
		t.Fatalf("entries per stream %v, want gw-a 40 (30 requests, 10 events), gw-b 50", streams)
	}
	st := waitStatus(t, br)
	if !st.Verified || !strings.Contains(st.Source, "(2 files)") {
		t.Fatalf("status %+v", st)
	}
	a.write(5)
	b.write(5)
	if st = nextStatus(t, br); !st.Verified || st.Problem != "" {
		t.Fatalf("after both grew: %+v", st)
	}
}

// Requests written concurrently: their times are taken before they are
// queued, so a stream's times are a little out of seq order. Paging in
// small pages still yields every request once, in seq order.
func TestBrowseConcurrentWrites(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	tw := openTrailWriter(t, path, "gw-1", 32<<10, 100)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 250 {
				dec, out := gwRequest(g*1000 + i)
				if err := tw.w.Write(dec); err != nil {
					t.Error(err)
					return
				}
				if out != nil {
					if err := tw.w.Write(out); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	tw.close()
	b := openFileBrowser(t, path, BrowseOptions{})
	for _, limit := range []int{3, 40} {
		got := allOrdered(t, b, Filter{}, limit, false)
		seen := map[string]bool{}
		for _, e := range got {
			if seen[e.Decision.RequestID] {
				t.Fatalf("limit %d: %s twice", limit, e.Decision.RequestID)
			}
			seen[e.Decision.RequestID] = true
			if e.Decision.Decision == Allow && e.Outcome == nil {
				t.Fatalf("limit %d: %s without its outcome", limit, e.Decision.RequestID)
			}
		}
		if len(seen) != 2000 {
			t.Fatalf("limit %d: %d requests, want 2000", limit, len(seen))
		}
	}
}

// A line that is not a record is skipped and counted; the status names
// the fault.
func TestBrowseMalformedLine(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	tw := openTrailWriter(t, path, "gw-1", 0, 1000)
	tw.write(60)
	tw.close()
	ls := lines(t, path)
	want := 0
	for i, l := range ls {
		r, err := ParseLine([]byte(l))
		if err != nil {
			t.Fatal(err)
		}
		if i != 40 && i != 50 && entryKind(r.Kind) {
			want++
		}
	}
	ls[40] = "not a record"
	ls[50] = ls[50][:len(ls[50])-2] // a record cut short
	writeLines(t, path, ls)
	b := openFileBrowser(t, path, BrowseOptions{})
	skipped, n := 0, 0
	for cursor := ""; ; {
		p, err := b.BrowsePage(context.Background(), Filter{}, 4, cursor)
		if err != nil {
			t.Fatal(err)
		}
		skipped += p.Skipped
		n += len(p.Entries)
		if cursor = p.Next; cursor == "" {
			break
		}
	}
	if skipped != 2 || n != want {
		t.Fatalf("%d entries, %d lines skipped; want the 2 bad lines skipped and the %d entries of the others", n, skipped, want)
	}
	if st := waitStatus(t, b); st.Verified || !strings.Contains(st.Problem, "malformed") {
		t.Fatalf("status %+v", st)
	}
}

// Verification passes while the writer appends and rotates every few
// records never report a fault, and Browse keeps working.
func TestBrowseStatusWhileRotating(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	tw := openTrailWriter(t, path, "gw-1", 4<<10, 50)
	tw.write(1)
	b := openFileBrowser(t, path, BrowseOptions{StatusEvery: time.Millisecond})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 100 {
			tw.write(10)
		}
	}()
	passes := 0
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		st, err := b.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if st.Problem != "" {
			t.Fatalf("a pass during rotation: %+v", st)
		}
		if !st.At.IsZero() {
			passes++
		}
		if _, err := b.Browse(context.Background(), Filter{Decision: Deny}, 20); err != nil {
			t.Fatal(err)
		}
	}
	tw.close()
	st := nextStatus(t, b)
	if !st.Verified || st.Uncovered != 0 || passes == 0 {
		t.Fatalf("after the writer closed: %+v (%d passes seen)", st, passes)
	}
	files, _ := Files(path)
	if len(files) < 20 {
		t.Fatalf("%d files: the trail did not rotate much", len(files))
	}
}
