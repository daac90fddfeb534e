package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The cut-head tests of issue 14: a trail whose first records were deleted
// must not verify unless the verification is told where to start (--from).

// twoStreams writes gw-a (30 records) and gw-b (20 records) into one file,
// a checkpoint every 10 records: gw-a is lines 1–33 (checkpoints at seq 11,
// 22, 33), gw-b lines 34–55 (checkpoints at seq 11, 22).
func twoStreams(t *testing.T) (string, []string) {
	t.Helper()
	path := writeTrail(t, t.TempDir(), "gw-a", 30, Options{CheckpointEvery: 10})
	appendTrail(t, path, "gw-b", 20, Options{CheckpointEvery: 10})
	ls := lines(t, path)
	if len(ls) != 55 {
		t.Fatalf("%d lines", len(ls))
	}
	return path, ls
}

func TestVerifyCutHead(t *testing.T) {
	t.Parallel()
	_, ls := twoStreams(t)
	for _, tc := range []struct {
		name   string
		lines  []string
		fault  Fault
		stream string
		seq    uint64
	}{
		// A checkpoint names prev, so a trail cut up to one begins linked
		// to records it does not hold.
		{"cut up to a checkpoint", ls[10:], FaultStart, "gw-a", 11},
		{"the earlier stream deleted", ls[33:], FaultStart, "gw-b", 1},
		{"the earlier stream and the second's head deleted", ls[43:], FaultStart, "gw-b", 11},
		// Other records name no prev: the chain cannot even be checked.
		{"cut right after a checkpoint", ls[11:], FaultMissing, "gw-a", 1},
		{"cut in the middle of a stretch", ls[15:], FaultMissing, "gw-a", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := filepath.Join(t.TempDir(), "audit.jsonl")
			writeLines(t, p, tc.lines)
			rep := verifyPath(t, p, VerifyOptions{})
			if rep.OK() || rep.Problem.Fault != tc.fault || rep.Problem.Stream != tc.stream || rep.Problem.Seq != tc.seq {
				t.Fatalf("want a cut head (%s) at stream %s seq %d:\n%s", tc.fault, tc.stream, tc.seq, reportText(rep))
			}
			if rep.Uncovered != 0 || strings.Contains(reportText(rep), "not yet covered") {
				t.Errorf("a stream that failed at its first record reports uncovered records:\n%s", reportText(rep))
			}
			if tc.fault == FaultStart && !strings.Contains(reportText(rep), "--from") {
				t.Errorf("the failure does not say how to verify from a checkpoint:\n%s", reportText(rep))
			}
		})
	}
}

// rotatedTrail writes 200 records into a trail rotated every 8 KiB and
// returns its path and files, oldest first.
func rotatedTrail(t *testing.T) (string, []string) {
	t.Helper()
	return rotatedTrailWith(t, nil)
}

func rotatedTrailWith(t *testing.T, witness Witness) (string, []string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	sink, err := OpenFile(path, FileOptions{MaxSize: 8 << 10})
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWriter(context.Background(), sink, testKey(), Options{Stream: "gw-a", MaxBatch: 10, CheckpointInterval: 1 << 40, Witness: witness})
	if err != nil {
		t.Fatal(err)
	}
	writeN(t, w, 200)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	var files []string
	for i := 1; ; i++ {
		seg := fmt.Sprintf("%s.%d", path, i)
		if _, err := os.Stat(seg); err != nil {
			break
		}
		files = append(files, seg)
	}
	if len(files) < 3 {
		t.Fatalf("only %d rotated segments", len(files))
	}
	return path, append(files, path)
}

func TestVerifyRotatedSegmentDeleted(t *testing.T) {
	t.Parallel()
	path, files := rotatedTrail(t)
	if rep, err := VerifyTrail(context.Background(), path, testPub(), VerifyOptions{}); err != nil || !rep.OK() {
		t.Fatalf("the whole rotated trail: %v\n%s", err, reportText(rep))
	}
	// The oldest segment deleted: the trail now begins linked to records
	// it does not hold.
	if err := os.Remove(files[0]); err != nil {
		t.Fatal(err)
	}
	rep, err := VerifyTrail(context.Background(), path, testPub(), VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || rep.Problem.Fault != FaultStart || rep.Problem.Stream != "gw-a" {
		t.Fatalf("want a cut head after deleting %s:\n%s", files[0], reportText(rep))
	}
}

func TestVerifyFrom(t *testing.T) {
	t.Parallel()
	_, ls := twoStreams(t)
	from := func(refs ...string) VerifyOptions {
		var o VerifyOptions
		for _, r := range refs {
			c, err := ParseCheckpointRef(r)
			if err != nil {
				t.Fatal(err)
			}
			o.From = append(o.From, c)
		}
		return o
	}
	for _, tc := range []struct {
		name     string
		lines    []string
		opts     VerifyOptions
		fault    Fault  // "" for a pass
		from     string // the stream's From, for a pass
		complete bool
	}{
		{name: "cut at the checkpoint named", lines: ls[10:], opts: from("gw-a:11"), from: "checkpoint gw-a:11 (--from)"},
		{name: "cut before a later checkpoint named", lines: ls[10:], opts: from("gw-a:22"), from: "checkpoint gw-a:22 (--from)"},
		{name: "the earlier stream deleted, a checkpoint of the second named", lines: ls[33:], opts: from("gw-b:22"), from: "checkpoint gw-b:22 (--from)"},
		{name: "nothing cut", lines: ls, opts: from("gw-a:22"), complete: true},
		{name: "names a record that is not a checkpoint", lines: ls[10:], opts: from("gw-a:12"), fault: FaultStart},
		{name: "names a checkpoint that was cut too", lines: ls[21:], opts: from("gw-a:11"), fault: FaultStart},
		{name: "names a checkpoint past the end", lines: ls[10:], opts: from("gw-a:99"), fault: FaultStart},
		{name: "names a stream not in the trail", lines: ls, opts: from("gw-z:11"), fault: FaultStart},
		{name: "names the first stream, the second's head is cut", lines: append(ls[10:33:33], ls[43:]...), opts: from("gw-a:11"), fault: FaultMissing},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := filepath.Join(t.TempDir(), "audit.jsonl")
			writeLines(t, p, tc.lines)
			rep := verifyPath(t, p, tc.opts)
			if tc.fault != "" {
				if rep.OK() || rep.Problem.Fault != tc.fault {
					t.Fatalf("want %s:\n%s", tc.fault, reportText(rep))
				}
				return
			}
			if !rep.OK() || rep.Complete() != tc.complete {
				t.Fatalf("want a pass (complete %v):\n%s", tc.complete, reportText(rep))
			}
			if !tc.complete {
				if rep.Streams[0].From != tc.from || !strings.HasPrefix(reportText(rep), "ok from a checkpoint:") ||
					!strings.Contains(reportText(rep), "verified from "+tc.from) {
					t.Fatalf("want the first stream verified from %q:\n%s", tc.from, reportText(rep))
				}
			} else if !strings.HasPrefix(reportText(rep), "ok: ") {
				t.Fatalf("a complete verification does not begin with ok:\n%s", reportText(rep))
			}
		})
	}
	// The checkpoint named must verify with the pinned key.
	p := filepath.Join(t.TempDir(), "audit.jsonl")
	writeLines(t, p, ls[10:])
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32)).Public().(ed25519.PublicKey)
	rep, err := VerifyFiles(context.Background(), []string{p}, other, from("gw-a:11"))
	if err != nil || rep.OK() || rep.Problem.Fault != FaultCheckpoint || rep.Problem.Seq != 11 {
		t.Fatalf("a checkpoint another key signed: %v\n%s", err, reportText(rep))
	}
}

func TestParseCheckpointRef(t *testing.T) {
	t.Parallel()
	if c, err := ParseCheckpointRef("gw1-20260301T120000.000000Z:1001"); err != nil || c.Stream != "gw1-20260301T120000.000000Z" || c.Seq != 1001 || c.String() != "gw1-20260301T120000.000000Z:1001" {
		t.Fatalf("ParseCheckpointRef = %+v, %v", c, err)
	}
	for _, bad := range []string{"", "gw1", "gw1:", ":12", "gw1:1", "gw1:0", "gw1:012", "gw1:-3", "gw 1:12", "gw1:12:13", "gw1:1e3"} {
		if _, err := ParseCheckpointRef(bad); err == nil {
			t.Errorf("ParseCheckpointRef(%q) succeeded", bad)
		}
	}
}

// splitStreams writes each stream of ls into its own file of a new
// directory (as the default trail keeps them), named name(i).jsonl.
func splitStreams(t *testing.T, ls []string, names ...string) (string, []string) {
	t.Helper()
	dir := t.TempDir()
	var paths []string
	start := 0
	for i := range ls {
		last := i == len(ls)-1
		if !last {
			a, _ := ParseLine([]byte(ls[i]))
			b, _ := ParseLine([]byte(ls[i+1]))
			last = a.Stream != b.Stream
		}
		if last {
			p := filepath.Join(dir, names[len(paths)]+".jsonl")
			writeLines(t, p, ls[start:i+1])
			paths = append(paths, p)
			start = i + 1
		}
	}
	if len(paths) != len(names) {
		t.Fatalf("%d streams, %d names", len(paths), len(names))
	}
	return dir, paths
}

func TestVerifyDirectory(t *testing.T) {
	t.Parallel()
	path, _ := twoStreams(t)
	appendTrail(t, path, "gw-c", 5, Options{CheckpointEvery: 10})
	ls := lines(t, path)
	// The files' names sort against the order of their links.
	dir, files := splitStreams(t, ls, "z-first", "b-second", "a-third")
	os.WriteFile(filepath.Join(dir, "z-first.jsonl.pub"), []byte("not part of the trail"), 0o644)
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not part of the trail"), 0o644)

	rep, err := VerifyFiles(context.Background(), []string{dir}, testPub(), VerifyOptions{})
	if err != nil || !rep.OK() || !rep.Complete() || len(rep.Streams) != 3 || rep.Records != 61 {
		t.Fatalf("the directory: %v\n%s", err, reportText(rep))
	}
	if rep.Streams[0].Stream != "gw-a" || rep.Streams[1].After != "stream gw-a seq 33" || rep.Streams[2].After != "stream gw-b seq 22" {
		t.Fatalf("streams out of their links' order:\n%s", reportText(rep))
	}
	if got, err := Files(dir); err != nil || !slices.Equal(got, files) {
		t.Fatalf("Files(dir) = %v, %v; want %v", got, err, files)
	}
	// Files named in any order, or a file and its directory, read the same.
	if got, err := Files(files[2], files[0], dir, files[1]); err != nil || !slices.Equal(got, files) {
		t.Fatalf("Files(named) = %v, %v; want %v", got, err, files)
	}

	// Deleting a whole file is a cut head of the stream after it.
	for i, name := range []string{"the first file", "the middle file"} {
		t.Run(name, func(t *testing.T) {
			d := t.TempDir()
			for j, f := range files {
				if j != i {
					data, _ := os.ReadFile(f)
					os.WriteFile(filepath.Join(d, filepath.Base(f)), data, 0o600)
				}
			}
			rep, err := VerifyFiles(context.Background(), []string{d}, testPub(), VerifyOptions{})
			want := []string{"gw-b", "gw-c"}[i]
			if err != nil || rep.OK() || rep.Problem.Fault != FaultStart || rep.Problem.Stream != want {
				t.Fatalf("want a cut head in %s: %v\n%s", want, err, reportText(rep))
			}
		})
	}

	// Two streams that began after the same one (two processes started
	// together) both link to it: a branch, verified after it.
	fork := filepath.Join(dir, "fork.jsonl")
	first := lines(t, files[0])
	writeLines(t, fork, first)
	appendTrail(t, fork, "gw-d", 3, Options{})
	writeLines(t, fork, lines(t, fork)[len(first):])
	rep, err = VerifyFiles(context.Background(), []string{dir}, testPub(), VerifyOptions{})
	if err != nil || !rep.OK() || len(rep.Streams) != 4 || rep.Streams[3].Stream != "gw-d" || rep.Streams[3].After != "stream gw-a seq 33" {
		t.Fatalf("a branch: %v\n%s", err, reportText(rep))
	}
	// The same file twice under two names is a stream that turns up again.
	data, _ := os.ReadFile(files[1])
	os.WriteFile(filepath.Join(dir, "copy.jsonl"), data, 0o600)
	if rep, _ := VerifyFiles(context.Background(), []string{dir}, testPub(), VerifyOptions{}); rep.OK() {
		t.Fatalf("a copied file verified:\n%s", reportText(rep))
	}
}

// TestVerifyDirectoryNodes: trails of several nodes in one directory each
// begin at their first record and are read in the order of their times.
func TestVerifyDirectoryNodes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, n := range []string{"node-y", "node-x"} { // node-y writes first
		appendTrail(t, filepath.Join(dir, n+".jsonl"), StreamID(n, t0), 3, Options{})
	}
	rep, err := VerifyFiles(context.Background(), []string{dir}, testPub(), VerifyOptions{})
	if err != nil || !rep.OK() || !rep.Complete() || len(rep.Streams) != 2 || StreamNode(rep.Streams[0].Stream) != "node-y" {
		t.Fatalf("two nodes: %v\n%s", err, reportText(rep))
	}
	if StreamNode("node-x") != "node-x" || StreamNode(StreamID("gw-1-b", t0)) != "gw-1-b" {
		t.Fatal("StreamNode")
	}
}

// TestFileLinkDir: with LinkDir, a new file of a directory of per-process
// trails links its stream to the newest trail no writer holds, so the
// directory verifies as one chain and a deleted file is caught.
func TestFileLinkDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var files []string
	write := func(i int) {
		p := filepath.Join(dir, fmt.Sprintf("gw-%d.jsonl", i))
		sink, err := OpenFile(p, FileOptions{LinkDir: true})
		if err != nil {
			t.Fatal(err)
		}
		w, err := NewWriter(context.Background(), sink, testKey(), Options{Stream: fmt.Sprintf("gw-%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		writeN(t, w, 3)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
	}
	write(0)
	// A live trail (locked) and an empty one are passed over.
	live, err := OpenFile(filepath.Join(dir, "live.jsonl"), FileOptions{LinkDir: true})
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	os.WriteFile(filepath.Join(dir, "empty.jsonl"), nil, 0o600)
	write(1)
	// A trail ending in a partial line links at its last complete record.
	f, _ := os.OpenFile(files[1], os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"seq":5,"str`)
	f.Close()
	write(2)
	for i, p := range files[1:] {
		first, _ := ParseLine([]byte(lines(t, p)[0]))
		prev := lines(t, files[i])
		last, err := ParseLine([]byte(prev[len(prev)-1]))
		if err != nil { // the partial line
			last, _ = ParseLine([]byte(prev[len(prev)-2]))
		}
		if first.Seq != 1 || first.Prev == "" || first.Prev != last.Hash {
			t.Fatalf("%s does not link to the end of %s", p, files[i])
		}
	}
	rep, err := VerifyFiles(context.Background(), []string{dir}, testPub(), VerifyOptions{})
	if err != nil || !rep.OK() || len(rep.Streams) != 3 || len(rep.Partials) != 1 {
		t.Fatalf("the directory: %v\n%s", err, reportText(rep))
	}
	os.Remove(files[1])
	if rep, _ := VerifyFiles(context.Background(), []string{dir}, testPub(), VerifyOptions{}); rep.OK() || rep.Problem.Fault != FaultStart {
		t.Fatalf("a deleted file went unnoticed:\n%s", reportText(rep))
	}
}

// TestVerifyWitnessStreams: the witness knows every stream begun with the
// key: one the trail lacks is missing, one begun with another key is a
// re-signed trail, and a head it holds a checkpoint for is verified from
// there.
func TestVerifyWitnessStreams(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	wit := &MemoryWitness{}
	dir := t.TempDir()
	var files, streams []string
	for i := range 3 {
		stream := StreamID("gw1", t0.Add(time.Duration(i)*time.Second))
		p := filepath.Join(dir, stream+".jsonl")
		sink, err := OpenFile(p, FileOptions{LinkDir: true})
		if err != nil {
			t.Fatal(err)
		}
		w, err := NewWriter(ctx, sink, testKey(), Options{Stream: stream, Witness: wit, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		writeN(t, w, 5)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		files, streams = append(files, p), append(streams, stream)
	}
	if fp, _ := wit.StreamKey(ctx, streams[0]); fp != KeyFingerprint(testPub()) {
		t.Fatalf("the writer recorded key %q, want %q", fp, KeyFingerprint(testPub()))
	}
	rep, err := VerifyFiles(ctx, []string{dir}, testPub(), VerifyOptions{Witness: wit})
	if err != nil || !rep.Complete() || len(rep.Streams) != 3 || !rep.Streams[2].KeyWitnessed {
		t.Fatalf("the whole directory: %v\n%s", err, reportText(rep))
	}

	// The newest file deleted: nothing links to it, only the witness
	// knows.
	aside := filepath.Join(t.TempDir(), "newest")
	os.Rename(files[2], aside)
	if rep, _ := VerifyFiles(ctx, []string{dir}, testPub(), VerifyOptions{}); !rep.OK() {
		t.Fatalf("without the witness:\n%s", reportText(rep))
	}
	rep, _ = VerifyFiles(ctx, []string{dir}, testPub(), VerifyOptions{Witness: wit})
	if rep.OK() || rep.Problem.Fault != FaultMissing || rep.Problem.Stream != streams[2] || rep.Problem.Source != "witness" {
		t.Fatalf("want %s missing:\n%s", streams[2], reportText(rep))
	}
	os.Rename(aside, files[2])

	// The oldest file archived, verified from a checkpoint of the next:
	// the witness's streams before it are earlier, not missing.
	os.Rename(files[0], aside)
	rep, _ = VerifyFiles(ctx, []string{dir}, testPub(), VerifyOptions{Witness: wit})
	if rep.OK() || rep.Problem.Fault != FaultStart {
		t.Fatalf("want a cut head:\n%s", reportText(rep))
	}
	ls := lines(t, files[1])
	ck, _ := ParseLine([]byte(ls[len(ls)-1]))
	opts := VerifyOptions{Witness: wit, From: []CheckpointRef{{ck.Stream, ck.Seq}}}
	rep, _ = VerifyFiles(ctx, []string{dir}, testPub(), opts)
	if !rep.OK() || rep.Complete() || !slices.Equal(rep.Earlier, streams[:1]) || !strings.Contains(reportText(rep), "1 earlier streams") {
		t.Fatalf("want a pass from %s:%d with %s earlier:\n%s", ck.Stream, ck.Seq, streams[0], reportText(rep))
	}
	os.Rename(aside, files[0])

	// A stream begun with another key: the trail was re-signed.
	other := &MemoryWitness{}
	other.Begin(ctx, streams[1], KeyFingerprint(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32)).Public().(ed25519.PublicKey)))
	rep, _ = VerifyFiles(ctx, []string{dir}, testPub(), VerifyOptions{Witness: other})
	if rep.OK() || rep.Problem.Fault != FaultWitness || rep.Problem.Stream != streams[1] || !strings.Contains(rep.Problem.Detail, "another key") {
		t.Fatalf("want the key mismatch:\n%s", reportText(rep))
	}
}

// TestVerifyWitnessLinkedStreamDropped: two linked streams in one file,
// the second cut off whole: it leaves no gap in the first, but the
// witness knows it.
func TestVerifyWitnessLinkedStreamDropped(t *testing.T) {
	t.Parallel()
	wit := &MemoryWitness{}
	dir := t.TempDir()
	a, b := StreamID("gw1", t0), StreamID("gw1", t0.Add(time.Minute))
	path := writeTrail(t, dir, a, 12, Options{CheckpointEvery: 5, Witness: wit})
	n := len(lines(t, path))
	appendTrail(t, path, b, 12, Options{CheckpointEvery: 5, Witness: wit})
	writeLines(t, path, lines(t, path)[:n])
	if rep := verifyPath(t, path, VerifyOptions{Witness: wit}); rep.OK() || rep.Problem.Fault != FaultMissing || rep.Problem.Stream != b {
		t.Fatalf("want stream %s missing:\n%s", b, reportText(rep))
	}
}

// TestVerifyWitnessHead: a trail whose head is gone (a rotated segment
// archived, or cut at a checkpoint) verifies from the witness's checkpoint
// right before it, and says so; without the witness it is a cut head.
func TestVerifyWitnessHead(t *testing.T) {
	t.Parallel()
	wit := &MemoryWitness{}
	path, files := rotatedTrailWith(t, wit)
	os.Remove(files[0])
	rep, err := VerifyTrail(context.Background(), path, testPub(), VerifyOptions{Witness: wit})
	if err != nil || !rep.OK() || rep.Complete() || !strings.Contains(rep.Streams[0].From, "the witness's checkpoint of seq") {
		t.Fatalf("want a pass from the witness's checkpoint: %v\n%s", err, reportText(rep))
	}
	ls := lines(t, files[1])
	writeLines(t, files[1], ls[len(ls)-1:]) // only its closing checkpoint
	rep, _ = VerifyTrail(context.Background(), path, testPub(), VerifyOptions{Witness: wit})
	if !rep.OK() || rep.Complete() {
		t.Fatalf("want a pass from the witness's checkpoint:\n%s", reportText(rep))
	}
	if rep, _ := VerifyTrail(context.Background(), path, testPub(), VerifyOptions{}); rep.OK() {
		t.Fatalf("without the witness a cut head verified:\n%s", reportText(rep))
	}
}
