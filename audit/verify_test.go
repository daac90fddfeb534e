package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The tamper tests of issue 7. A trail of 2500 decision records with a
// checkpoint every 1000: seq 1–1000, checkpoint 1001, 1002–2001, checkpoint
// 2002, 2003–2502, final checkpoint 2503. In one stream, line n is seq n.

// trailFixture is a closed trail, the snapshot a kill -9 after the last
// record would have left, and the witness that saw every checkpoint.
type trailFixture struct {
	full, crash string
	witness     *MemoryWitness
}

func newTrailFixture(t *testing.T) trailFixture {
	t.Helper()
	dir := t.TempDir()
	fx := trailFixture{full: filepath.Join(dir, "audit.jsonl"), crash: filepath.Join(dir, "crash.jsonl"), witness: &MemoryWitness{}}
	sink, err := OpenFile(fx.full, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWriter(context.Background(), sink, testKey(), Options{Stream: "gw-1", Witness: fx.witness, CheckpointInterval: 1 << 40})
	if err != nil {
		t.Fatal(err)
	}
	writeN(t, w, 2500)
	// Everything acknowledged is on disk: this is what a crash leaves.
	data, err := os.ReadFile(fx.full)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fx.crash, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return fx
}

// rehash is an attacker without the key: it renumbers and re-hashes
// lines[from:] so the chain holds again (checkpoint signatures cannot be
// redone).
func rehash(t *testing.T, ls []string, from int) []string {
	t.Helper()
	out := slices.Clone(ls)
	var prev [32]byte
	if from > 0 {
		r, err := ParseLine([]byte(out[from-1]))
		if err != nil {
			t.Fatal(err)
		}
		hex.Decode(prev[:], []byte(r.Hash))
	}
	for i := from; i < len(out); i++ {
		r, err := ParseLine([]byte(out[i]))
		if err != nil {
			t.Fatal(err)
		}
		r.Seq = uint64(i + 1)
		if r.Prev != "" {
			r.Prev = hex.EncodeToString(prev[:])
		}
		line, h, err := AppendLine(nil, prev, &r)
		if err != nil {
			t.Fatal(err)
		}
		out[i], prev = strings.TrimSuffix(string(line), "\n"), h
	}
	return out
}

func TestVerifyClean(t *testing.T) {
	t.Parallel()
	fx := newTrailFixture(t)
	rep := verifyPath(t, fx.full, VerifyOptions{RequireGenesis: true, Witness: fx.witness})
	if !rep.OK() || rep.Records != 2503 || rep.Checkpoints != 3 || rep.Uncovered != 0 || rep.Streams[0].Witnessed != 2502 {
		t.Fatalf("clean trail:\n%s", reportText(rep))
	}
	// The crash snapshot verifies too, its tail reported as uncovered.
	rep = verifyPath(t, fx.crash, VerifyOptions{})
	if !rep.OK() || rep.Records != 2502 || rep.Uncovered != 500 || rep.Streams[0].CoveredSeq != 2002 {
		t.Fatalf("crash snapshot:\n%s", reportText(rep))
	}
	if !strings.Contains(reportText(rep), "500 records after seq 2002 not yet covered") {
		t.Errorf("report does not mention the uncovered records:\n%s", reportText(rep))
	}
}

func TestVerifyFaults(t *testing.T) {
	t.Parallel()
	fx := newTrailFixture(t)
	full := lines(t, fx.full)
	crash := lines(t, fx.crash)
	otherKey := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32)).Public().(ed25519.PublicKey)
	forged := &MemoryWitness{}
	for _, c := range fx.witness.m["gw-1"] {
		forged.Put(context.Background(), c)
	}
	bad := fx.witness.m["gw-1"][0]
	bad.Seq = 5000
	forged.Put(context.Background(), bad)

	for _, tc := range []struct {
		name    string
		lines   []string
		pub     ed25519.PublicKey
		witness Witness
		fault   Fault
		seq     uint64
	}{
		{name: "edit one byte of a middle record", fault: FaultEdited, seq: 1500,
			lines: edit(full, 1500, func(l string) string { return strings.Replace(l, "agt_child", "agt_chilD", 1) })},
		{name: "edit a record's hash", fault: FaultEdited, seq: 1500,
			lines: edit(full, 1500, func(l string) string { return l[:len(l)-3] + flip(l[len(l)-3]) + l[len(l)-2:] })},
		{name: "edit and re-hash the record", fault: FaultEdited, seq: 1501, // the next one no longer chains
			lines: append(rehash(t, edit(full, 1500, func(l string) string { return strings.Replace(l, "agt_child", "agt_chilD", 1) }), 1499)[:1500:1500], full[1500:]...)},
		{name: "delete a record", fault: FaultMissing, seq: 1500, lines: slices.Delete(slices.Clone(full), 1499, 1500)},
		{name: "delete the first record", fault: FaultMissing, seq: 1, lines: full[1:]},
		{name: "swap two records", fault: FaultReordered, seq: 1500, lines: swap(full, 1499, 1500)},
		{name: "swap distant records", fault: FaultReordered, seq: 1200, lines: swap(full, 1199, 1700)},
		{name: "repeat a record", fault: FaultReordered, seq: 1500, lines: slices.Insert(slices.Clone(full), 1500, full[1499])},
		{name: "drop records a checkpoint covers and re-hash", fault: FaultCheckpoint, seq: 991,
			lines: rehash(t, slices.Delete(slices.Clone(full), 499, 509), 499)},
		{name: "delete a checkpoint", fault: FaultMissing, seq: 1001, lines: slices.Delete(slices.Clone(full), 1000, 1001)},
		{name: "another key", fault: FaultCheckpoint, seq: 1001, lines: full, pub: otherKey},
		{name: "garbage line", fault: FaultMalformed, seq: 0, lines: slices.Insert(slices.Clone(full), 700, "not json")},
		{name: "truncate to the last local checkpoint, witness has more", fault: FaultTruncated, seq: 2003,
			lines: full[:2002], witness: fx.witness},
		{name: "truncate after the last local checkpoint, witness has more", fault: FaultTruncated, seq: 2301,
			lines: full[:2300], witness: fx.witness},
		{name: "rewrite the uncovered tail, witness has its checkpoint", fault: FaultWitness, seq: 2502,
			lines:   rehash(t, edit(full[:2502], 2400, func(l string) string { return strings.Replace(l, "agt_child", "agt_chilD", 1) }), 2399),
			witness: fx.witness},
		{name: "forged witness entry", fault: FaultWitness, lines: full, witness: forged},
		{name: "witness unavailable", fault: FaultWitness, lines: full, witness: failingWitness{}},
		{name: "witness checkpoint past a cut crash snapshot", fault: FaultTruncated, seq: 2401, lines: crash[:2400], witness: fx.witness},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "t.jsonl")
			writeLines(t, path, tc.lines)
			pub := tc.pub
			if pub == nil {
				pub = testPub()
			}
			rep, err := VerifyFiles(context.Background(), []string{path}, pub, VerifyOptions{Witness: tc.witness})
			if err != nil {
				t.Fatal(err)
			}
			p := rep.Problem
			if p == nil || p.Fault != tc.fault || (tc.seq != 0 && p.Seq != tc.seq) {
				t.Fatalf("want %s at seq %d, got:\n%s", tc.fault, tc.seq, reportText(rep))
			}
			if p.Source != path || (tc.fault != FaultTruncated && tc.fault != FaultWitness && p.Line == 0) {
				t.Errorf("problem does not name the place: %+v", p)
			}
		})
	}
}

// TestVerifyUncoveredDrop: dropping records no checkpoint covers cannot be
// detected without a witness, but what is left is reported as uncovered.
func TestVerifyUncoveredDrop(t *testing.T) {
	t.Parallel()
	fx := newTrailFixture(t)
	crash := lines(t, fx.crash)
	path := filepath.Join(t.TempDir(), "t.jsonl")
	writeLines(t, path, crash[:2200])
	rep := verifyPath(t, path, VerifyOptions{})
	if !rep.OK() || rep.Uncovered != 198 {
		t.Fatalf("want ok with 198 uncovered:\n%s", reportText(rep))
	}
	// The witness (which has the final checkpoint, seq 2502) catches it.
	if rep := verifyPath(t, path, VerifyOptions{Witness: fx.witness}); rep.OK() || rep.Problem.Fault != FaultTruncated || rep.Problem.Seq != 2201 {
		t.Fatalf("witness does not catch the dropped records:\n%s", reportText(rep))
	}
	// The whole trail minus its final checkpoint record: 500 uncovered
	// locally; the witness's copy of that checkpoint still covers them.
	writeLines(t, path, lines(t, fx.full)[:2502])
	if rep := verifyPath(t, path, VerifyOptions{}); !rep.OK() || rep.Uncovered != 500 {
		t.Fatalf("want ok with 500 uncovered:\n%s", reportText(rep))
	}
	if rep := verifyPath(t, path, VerifyOptions{Witness: fx.witness}); !rep.OK() || rep.Uncovered != 0 || rep.Streams[0].Witnessed != 2502 {
		t.Fatalf("want the witness to cover the tail:\n%s", reportText(rep))
	}
}

// TestVerifyPartialLine: a write cut in the middle (kill -9) leaves a
// partial last line: what precedes verifies, the line is reported.
func TestVerifyPartialLine(t *testing.T) {
	t.Parallel()
	fx := newTrailFixture(t)
	data, _ := os.ReadFile(fx.full)
	cut := data[:len(data)-40]
	path := filepath.Join(t.TempDir(), "t.jsonl")
	os.WriteFile(path, cut, 0o600)
	rep := verifyPath(t, path, VerifyOptions{})
	if !rep.OK() || rep.Records != 2502 || len(rep.Partials) != 1 || rep.Partials[0].Line != 2503 || rep.Uncovered != 500 {
		t.Fatalf("want ok up to seq 2502 and the partial line 2503:\n%s", reportText(rep))
	}
	if !strings.Contains(reportText(rep), "partial last line") {
		t.Errorf("report does not mention the partial line:\n%s", reportText(rep))
	}
	// Only a stream's live end may end mid-line, not a segment its stream
	// goes on from.
	rotated, files := rotatedTrail(t)
	f, _ := os.OpenFile(files[1], os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"seq":99,"str`)
	f.Close()
	rep, err := VerifyTrail(context.Background(), rotated, testPub(), VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || rep.Problem.Fault != FaultMalformed || rep.Problem.Source != files[1] {
		t.Fatalf("a rotated file ending mid-line must fail:\n%s", reportText(rep))
	}
}

func TestVerifyStreams(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := writeTrail(t, dir, "gw-a", 30, Options{CheckpointEvery: 10})
	appendTrail(t, path, "gw-b", 20, Options{CheckpointEvery: 10})
	ls := lines(t, path)
	// gw-a: 30 records + 3 checkpoints = 33 lines; gw-b: 20 + 2 = 22.
	if len(ls) != 55 {
		t.Fatalf("%d lines", len(ls))
	}
	rep := verifyPath(t, path, VerifyOptions{RequireGenesis: true})
	if !rep.OK() || len(rep.Streams) != 2 || rep.Streams[1].Stream != "gw-b" || rep.Uncovered != 0 {
		t.Fatalf("two streams:\n%s", reportText(rep))
	}
	for _, tc := range []struct {
		name   string
		lines  []string
		opts   VerifyOptions
		fault  Fault
		stream string
	}{
		{"cut the end of the first stream", slices.Delete(slices.Clone(ls), 32, 33), VerifyOptions{}, FaultLink, "gw-b"},
		{"cut the start of the second stream", slices.Delete(slices.Clone(ls), 33, 34), VerifyOptions{}, FaultMissing, "gw-b"},
		{"streams swapped", append(slices.Clone(ls[33:]), ls[:33]...), VerifyOptions{}, FaultStart, "gw-b"},
		{"stream resumes", append(slices.Clone(ls[:33]), append([]string{ls[33], ls[34]}, ls[33:]...)...), VerifyOptions{}, FaultReordered, "gw-b"},
		{"a stream resumes after another", append(slices.Clone(ls), ls[20]), VerifyOptions{}, FaultReordered, "gw-a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "t.jsonl")
			writeLines(t, p, tc.lines)
			rep := verifyPath(t, p, tc.opts)
			if rep.OK() || rep.Problem.Fault != tc.fault || rep.Problem.Stream != tc.stream {
				t.Fatalf("want %s in %s:\n%s", tc.fault, tc.stream, reportText(rep))
			}
		})
	}
}

func TestVerifyEmpty(t *testing.T) {
	t.Parallel()
	for _, content := range []string{"", `{"seq":1,"str`} {
		rep, err := Verify(context.Background(), strings.NewReader(content), "-", testPub(), VerifyOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if rep.OK() || rep.Problem.Fault != FaultEmpty {
			t.Fatalf("%q: want empty:\n%s", content, reportText(rep))
		}
	}
}

func TestVerifyLongLine(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", MaxLineBytes+10) + "\n"
	rep, err := Verify(context.Background(), strings.NewReader(long), "-", testPub(), VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || rep.Problem.Fault != FaultMalformed {
		t.Fatalf("want malformed:\n%s", reportText(rep))
	}
}

type failingWitness struct{}

func (failingWitness) Begin(context.Context, string, string) error { return errors.New("down") }
func (failingWitness) Put(context.Context, Checkpoint) error       { return errors.New("down") }
func (failingWitness) StreamKey(context.Context, string) (string, error) {
	return "", errors.New("down")
}
func (failingWitness) Streams(context.Context, string) ([]string, error) {
	return nil, errors.New("down")
}
func (failingWitness) Checkpoints(context.Context, string) ([]Checkpoint, error) {
	return nil, errors.New("down")
}

func edit(ls []string, lineNo int, f func(string) string) []string {
	out := slices.Clone(ls)
	out[lineNo-1] = f(out[lineNo-1])
	return out
}

func swap(ls []string, i, j int) []string {
	out := slices.Clone(ls)
	out[i], out[j] = out[j], out[i]
	return out
}

func flip(c byte) string {
	if c == '0' {
		return "1"
	}
	return "0"
}
