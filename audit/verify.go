package audit

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
)

// VerifyOptions configure a verification.
type VerifyOptions struct {
	// Witness, when set, is asked for the checkpoints of every stream in
	// the trail. Each must verify with the key and match the trail: a
	// witness checkpoint past the end of its stream in the trail means
	// records it covered were dropped (FaultTruncated).
	Witness Witness
	// RequireGenesis makes a trail that does not begin with the first
	// record ever written (seq 1, no prev) a failure (FaultStart), rather
	// than reported in Report.LinkedStart. Use it when no rotated segment
	// has been deleted.
	RequireGenesis bool
}

// Fault classifies the first problem of a trail.
type Fault string

// Faults, in the terms of the tamper tests.
const (
	// FaultMalformed: a line is not a record (or a rotated file ends in the
	// middle of a line).
	FaultMalformed Fault = "malformed"
	// FaultEdited: a record's hash does not match its bytes: it, or the
	// record before it, was changed.
	FaultEdited Fault = "edited"
	// FaultMissing: seq skips ahead and the missing records do not turn up
	// nearby, or a stream does not start at seq 1: records were deleted.
	FaultMissing Fault = "missing"
	// FaultReordered: a seq turns up after a later one (records swapped or
	// moved), or a stream resumes after another began.
	FaultReordered Fault = "reordered"
	// FaultLink: a stream's first record does not name the previous
	// stream's last hash (its end was cut or changed), or a prev does not
	// name the record before.
	FaultLink Fault = "link"
	// FaultCheckpoint: a checkpoint's signature does not verify with the
	// pinned key: the records it covers were rewritten (deleted, edited
	// and re-hashed), or it was signed by another key.
	FaultCheckpoint Fault = "checkpoint"
	// FaultTruncated: the witness holds a checkpoint past the end of its
	// stream in the trail: records it covered were dropped from the end.
	FaultTruncated Fault = "truncated"
	// FaultWitness: the witness disagrees with the trail, holds an entry
	// that does not verify, or cannot be read.
	FaultWitness Fault = "witness"
	// FaultStart: RequireGenesis, and the trail does not start at its
	// first record.
	FaultStart Fault = "start"
	// FaultEmpty: the trail holds no complete record.
	FaultEmpty Fault = "empty"
)

// Problem is the first place a trail fails to verify.
type Problem struct {
	Fault  Fault
	Source string // file name ("-" for a reader)
	Line   int    // 1-based line in Source; 0 when not about one line
	Stream string // when known
	Seq    uint64 // the first bad seq, when known
	Detail string
}

func (p *Problem) Error() string {
	var b strings.Builder
	b.WriteString(p.Source)
	if p.Line > 0 {
		b.WriteString(":" + strconv.Itoa(p.Line))
	}
	b.WriteString(": ")
	if p.Stream != "" {
		fmt.Fprintf(&b, "stream %s ", p.Stream)
	}
	if p.Seq > 0 {
		fmt.Fprintf(&b, "seq %d ", p.Seq)
	}
	fmt.Fprintf(&b, "%s: %s", p.Fault, p.Detail)
	return b.String()
}

// StreamReport describes one stream of a verified trail.
type StreamReport struct {
	Stream      string
	FirstSeq    uint64
	LastSeq     uint64
	LastHash    string
	Records     uint64
	Checkpoints int
	// CoveredSeq is the seq of the stream's last valid checkpoint record
	// (FirstSeq-1 when none): it and everything before it are signed.
	CoveredSeq uint64
	// Uncovered is how many records follow the last checkpoint (in the
	// trail or, when asked, the witness): they hold together, but could be
	// cut from the end without a trace.
	Uncovered uint64
	// Witnessed is the highest seq a witness checkpoint confirmed.
	Witnessed uint64
}

// PartialLine is an incomplete last line: an interrupted write. It was
// never acknowledged, and is reported rather than verified.
type PartialLine struct {
	Source string
	Line   int
	Bytes  int
}

// Report is the result of a verification. The trail verified when Problem
// is nil.
type Report struct {
	Sources     []string
	Records     uint64
	Checkpoints int
	Streams     []StreamReport
	// Uncovered is the sum of the streams' Uncovered.
	Uncovered uint64
	// LinkedStart is the prev (hex) of the trail's first record when that
	// record links to earlier records that were not given (a deleted or
	// unlisted rotated segment); empty when the trail starts at its
	// genesis.
	LinkedStart string
	Partial     *PartialLine
	Problem     *Problem
}

// OK reports whether the trail verified.
func (r *Report) OK() bool { return r.Problem == nil }

// Err returns the problem as an error, or nil.
func (r *Report) Err() error {
	if r.Problem == nil {
		return nil
	}
	return r.Problem
}

// WriteText writes a summary for people (the CLI's output).
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	if r.Problem != nil {
		fmt.Fprintf(&b, "FAIL %s\n", r.Problem.Error())
		fmt.Fprintf(&b, "%d records verified before it\n", r.Records)
	} else {
		fmt.Fprintf(&b, "ok: %d records, %d checkpoints, %d streams in %s\n",
			r.Records, r.Checkpoints, len(r.Streams), strings.Join(r.Sources, ", "))
	}
	for _, s := range r.Streams {
		fmt.Fprintf(&b, "  stream %s: seq %d–%d, %d checkpoints", s.Stream, s.FirstSeq, s.LastSeq, s.Checkpoints)
		if s.Uncovered > 0 {
			fmt.Fprintf(&b, ", %d records after seq %d not yet covered by a checkpoint", s.Uncovered, s.LastSeq-s.Uncovered)
		}
		if s.Witnessed > 0 {
			fmt.Fprintf(&b, ", witness confirms seq %d", s.Witnessed)
		}
		b.WriteString("\n")
	}
	if r.LinkedStart != "" {
		fmt.Fprintf(&b, "note: the trail begins linked to an earlier record (prev %s…) that was not verified\n", r.LinkedStart[:16])
	}
	if p := r.Partial; p != nil {
		fmt.Fprintf(&b, "warning: %s:%d: partial last line (%d bytes): an interrupted write, not verified\n", p.Source, p.Line, p.Bytes)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Verifier checks a trail fed to it line by line, in chain order: the state
// machine under VerifyFiles and Verify, exported so other sources (a
// PostgreSQL sink's rows, stream by stream in seq order) can feed it.
//
// Check order per line, stopping at the first failure:
//
//  1. the line decodes strictly (Record);
//  2. seq and stream: within a stream seq is the previous seq + 1 (a jump
//     ahead is classified by reading up to DiagnoseLookahead lines on:
//     reordered if the missing seq turns up, else missing); a new stream
//     starts at seq 1, names prev, and was not seen before;
//  3. prev, when present, is the hash of the record before;
//  4. hash = SHA-256(prev_raw || body) over the bytes read;
//  5. a checkpoint's signature verifies with the pinned key over its
//     stream, seq-1, prev and time (Checkpoint.SignedBytes);
//  6. with a witness, its checkpoint for this seq names this hash.
//
// At the end of each stream the witness must hold no checkpoint past its
// last seq.
type Verifier struct {
	pub    ed25519.PublicKey
	opts   VerifyOptions
	ctx    context.Context
	rep    Report
	h      *chainHasher
	sigBuf []byte
	br     *bufio.Reader

	source  string
	line    int
	started bool
	head    [32]byte
	cur     *streamState
	seen    map[string]struct{}
	diag    *diagnosis
	stopped bool
}

type streamState struct {
	idx     int // in rep.Streams
	name    string
	lastSeq uint64
	witness []Checkpoint // sorted by Seq
	wi      int
}

// diagnosis is a seq that jumped ahead, being classified.
type diagnosis struct {
	p    Problem
	want uint64
	left int
}

// NewVerifier returns a verifier pinned to pub. ctx bounds witness reads.
func NewVerifier(ctx context.Context, pub ed25519.PublicKey, opts VerifyOptions) *Verifier {
	return &Verifier{pub: pub, opts: opts, ctx: ctx, h: newChainHasher(), seen: make(map[string]struct{})}
}

// VerifyTrail verifies the trail at path with its rotated segments (Files).
func VerifyTrail(ctx context.Context, path string, pub ed25519.PublicKey, opts VerifyOptions) (*Report, error) {
	files, err := Files(path)
	if err != nil {
		return nil, err
	}
	return VerifyFiles(ctx, files, pub, opts)
}

// VerifyFiles verifies files as one trail, in the order given (oldest
// first, as Files returns them). Only the last may end in a partial line.
// The error is for I/O; a trail that does not verify is a Report with a
// Problem.
func VerifyFiles(ctx context.Context, files []string, pub ed25519.PublicKey, opts VerifyOptions) (*Report, error) {
	v := NewVerifier(ctx, pub, opts)
	for i, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return nil, fmt.Errorf("audit: %w", err)
		}
		err = v.ReadSource(f, name, i == len(files)-1)
		f.Close()
		if err != nil {
			return nil, err
		}
		if v.stopped {
			break
		}
	}
	return v.Finish(), nil
}

// Verify verifies one trail read from r, named name in the report.
func Verify(ctx context.Context, r io.Reader, name string, pub ed25519.PublicKey, opts VerifyOptions) (*Report, error) {
	v := NewVerifier(ctx, pub, opts)
	if err := v.ReadSource(r, name, true); err != nil {
		return nil, err
	}
	return v.Finish(), nil
}

// ReadSource feeds the lines of one source. last says whether it is the last
// source (only the last may end in a partial line).
func (v *Verifier) ReadSource(r io.Reader, name string, last bool) error {
	v.BeginSource(name)
	if v.br == nil {
		v.br = bufio.NewReaderSize(r, MaxLineBytes)
	} else {
		v.br.Reset(r)
	}
	for !v.stopped {
		chunk, err := v.br.ReadSlice('\n')
		switch {
		case err == nil:
			v.Line(chunk[:len(chunk)-1])
		case errors.Is(err, bufio.ErrBufferFull):
			v.line++
			v.fail(FaultMalformed, "", 0, fmt.Sprintf("line longer than %d bytes", MaxLineBytes))
		case errors.Is(err, io.EOF):
			if len(chunk) > 0 {
				if last {
					v.Partial(len(chunk))
				} else {
					v.line++
					v.fail(FaultMalformed, "", 0, "the file ends in the middle of a line (only the live file may)")
				}
			}
			return nil
		default:
			return fmt.Errorf("audit: read %s: %w", name, err)
		}
	}
	return nil
}

// BeginSource starts a new source (file); line numbers restart.
func (v *Verifier) BeginSource(name string) {
	v.source, v.line = name, 0
	v.rep.Sources = append(v.rep.Sources, name)
}

// beginChain starts an independent chain of streams (the next node of a
// PostgreSQL trail): its first record is checked as a trail's first one
// (RequireGenesis applies to each chain), not as a link from the stream
// before. A stream id seen in an earlier chain may not turn up again.
func (v *Verifier) beginChain() bool {
	if v.stopped {
		return false
	}
	if v.diag != nil {
		v.settle()
		return false
	}
	if !v.endStream() {
		return false
	}
	v.cur, v.started, v.head = nil, false, [32]byte{}
	return true
}

// Partial reports that the current source ends in n bytes without '\n'.
func (v *Verifier) Partial(n int) {
	v.rep.Partial = &PartialLine{Source: v.source, Line: v.line + 1, Bytes: n}
}

func (v *Verifier) fail(f Fault, stream string, seq uint64, detail string) {
	if v.stopped {
		return
	}
	v.stopped = true
	v.rep.Problem = &Problem{Fault: f, Source: v.source, Line: v.line, Stream: stream, Seq: seq, Detail: detail}
}

func short(h []byte) string {
	if len(h) > 12 {
		return string(h[:12]) + "…"
	}
	return string(h)
}

// Line verifies the next line (without its '\n'). It returns false once
// the trail failed; later lines are ignored.
func (v *Verifier) Line(line []byte) bool {
	if v.stopped {
		return false
	}
	v.line++
	if v.diag != nil {
		v.diagnose(line)
		return !v.stopped
	}
	var lv view
	if err := decodeLine(line, &lv, nil); err != nil {
		v.fail(FaultMalformed, "", lv.seq, "not a record: "+err.Error())
		return false
	}
	// Within a stream, reuse its name: no allocation per line.
	var stream string
	if v.cur != nil && string(lv.stream) == v.cur.name {
		stream = v.cur.name
	} else {
		stream = string(lv.stream)
	}
	switch {
	case !v.started:
		v.started = true
		if _, ok := v.seen[stream]; ok { // only in a later chain (beginChain)
			v.fail(FaultReordered, stream, lv.seq, "the stream turns up again in another chain: records moved")
			return false
		}
		switch {
		case v.opts.RequireGenesis && (lv.prev != nil || lv.seq != 1):
			v.fail(FaultStart, stream, lv.seq, "the trail does not begin with its first record (seq 1 without prev): earlier records are missing")
			return false
		case lv.prev != nil:
			decodeHex(v.head[:], lv.prev)
			if v.rep.LinkedStart == "" {
				v.rep.LinkedStart = string(lv.prev)
			}
		case lv.seq != 1:
			v.fail(FaultMissing, stream, 1, fmt.Sprintf("the trail begins at seq %d without a link to earlier records: records before it were deleted", lv.seq))
			return false
		}
		if !v.beginStream(stream, lv.seq) {
			return false
		}
	case stream == v.cur.name:
		if want := v.cur.lastSeq + 1; lv.seq != want {
			p := Problem{Source: v.source, Line: v.line, Stream: stream, Seq: want}
			if lv.seq > want {
				v.diag = &diagnosis{p: p, want: want, left: DiagnoseLookahead}
				v.diag.p.Detail = fmt.Sprintf("seq %d follows seq %d", lv.seq, want-1)
				return true
			}
			v.fail(FaultReordered, stream, lv.seq, fmt.Sprintf("seq %d after seq %d: records reordered or repeated", lv.seq, want-1))
			return false
		}
	default:
		prevStream := v.cur
		if _, ok := v.seen[stream]; ok {
			v.fail(FaultReordered, stream, lv.seq, fmt.Sprintf("the stream resumes after stream %s began: records reordered", prevStream.name))
			return false
		}
		if !v.endStream() {
			return false
		}
		if lv.seq != 1 {
			v.fail(FaultMissing, stream, 1, fmt.Sprintf("the stream begins at seq %d: its first records were deleted", lv.seq))
			return false
		}
		if lv.prev == nil {
			v.fail(FaultLink, stream, lv.seq, fmt.Sprintf("the stream does not link to stream %s (its first record names no prev)", prevStream.name))
			return false
		}
		if string(lv.prev) != hex.EncodeToString(v.head[:]) {
			v.fail(FaultLink, stream, lv.seq, fmt.Sprintf("the stream links to %s but stream %s ends at seq %d with hash %s: records at its end were removed or changed",
				short(lv.prev), prevStream.name, prevStream.lastSeq, short([]byte(hex.EncodeToString(v.head[:])))))
			return false
		}
		if !v.beginStream(stream, lv.seq) {
			return false
		}
	}
	if lv.prev != nil && !hexIs(lv.prev, &v.head) {
		v.fail(FaultLink, stream, lv.seq, fmt.Sprintf("prev names %s but the record before has hash %s: a record before it was changed or removed",
			short(lv.prev), short([]byte(hex.EncodeToString(v.head[:])))))
		return false
	}
	if v.h.sum(&v.head, lv.body) != lv.hash {
		v.fail(FaultEdited, stream, lv.seq, "the record's hash does not match its bytes: this record (or the one before it) was changed")
		return false
	}
	st := &v.rep.Streams[v.cur.idx]
	if lv.kind == KindCheckpoint {
		var ok bool
		v.sigBuf, ok = verifyCheckpointView(v.pub, &lv, v.sigBuf)
		if !ok {
			v.fail(FaultCheckpoint, stream, lv.seq, "the checkpoint's signature does not verify with the pinned key: the records it covers were rewritten, or another key signed it")
			return false
		}
		st.Checkpoints++
		st.CoveredSeq = lv.seq
		v.rep.Checkpoints++
	}
	if w := v.cur.witness; v.cur.wi < len(w) {
		for v.cur.wi < len(w) && w[v.cur.wi].Seq <= lv.seq {
			c := &w[v.cur.wi]
			if c.Seq == lv.seq {
				if c.Hash != lv.hash {
					v.fail(FaultWitness, stream, lv.seq, fmt.Sprintf("the witness's checkpoint names hash %s for this seq, the trail has %s: the record was replaced",
						short([]byte(hex.EncodeToString(c.Hash[:]))), short([]byte(hex.EncodeToString(lv.hash[:])))))
					return false
				}
				st.Witnessed = lv.seq
			}
			v.cur.wi++
		}
	}
	v.head = lv.hash
	v.cur.lastSeq = lv.seq
	st.LastSeq = lv.seq
	st.Records++
	v.rep.Records++
	return true
}

// hexIs reports whether the 64 hex digits h spell *want.
func hexIs(h []byte, want *[32]byte) bool {
	var got [32]byte
	return decodeHex(got[:], h) && got == *want
}

// diagnose classifies a seq that jumped ahead: the missing seq turning up
// within DiagnoseLookahead lines means reordered; otherwise missing.
func (v *Verifier) diagnose(line []byte) {
	d := v.diag
	var lv view
	err := decodeLine(line, &lv, nil)
	if err == nil && string(lv.stream) == d.p.Stream && lv.seq == d.want {
		d.p.Fault = FaultReordered
		d.p.Detail += fmt.Sprintf("; seq %d turns up at line %d: records reordered (swapped or moved)", d.want, v.line)
		v.settle()
		return
	}
	if d.left--; d.left <= 0 || err != nil {
		v.settle()
	}
}

// settle ends a diagnosis: the missing seq did not turn up.
func (v *Verifier) settle() {
	d := v.diag
	v.diag = nil
	if d.p.Fault == "" {
		d.p.Fault = FaultMissing
		d.p.Detail += fmt.Sprintf(": seq %d is missing (deleted)", d.want)
	}
	v.stopped = true
	v.rep.Problem = &d.p
}

// beginStream starts the report of a stream and reads its witness entries.
func (v *Verifier) beginStream(name string, first uint64) bool {
	v.seen[name] = struct{}{}
	v.rep.Streams = append(v.rep.Streams, StreamReport{Stream: name, FirstSeq: first, CoveredSeq: first - 1})
	v.cur = &streamState{idx: len(v.rep.Streams) - 1, name: name, lastSeq: first - 1}
	if v.opts.Witness == nil {
		return true
	}
	cps, err := v.opts.Witness.Checkpoints(v.ctx, name)
	if err != nil {
		v.fail(FaultWitness, name, 0, "cannot read the witness: "+err.Error())
		return false
	}
	for _, c := range cps {
		if c.Stream != name || c.Verify(v.pub) != nil {
			v.fail(FaultWitness, name, c.Seq, "the witness holds a checkpoint whose signature does not verify with the pinned key")
			return false
		}
	}
	slices.SortStableFunc(cps, func(a, b Checkpoint) int {
		switch {
		case a.Seq < b.Seq:
			return -1
		case a.Seq > b.Seq:
			return 1
		}
		return 0
	})
	// Checkpoints before the first record given cover records not given.
	for len(cps) > 0 && cps[0].Seq < first {
		cps = cps[1:]
	}
	v.cur.witness = cps
	return true
}

// endStream closes the current stream: the witness must not know of
// records past its end.
func (v *Verifier) endStream() bool {
	c := v.cur
	if c == nil {
		return true
	}
	st := &v.rep.Streams[c.idx]
	st.Uncovered = st.LastSeq - max(st.CoveredSeq, st.Witnessed)
	if st.Records > 0 {
		st.LastHash = hex.EncodeToString(v.head[:])
	}
	if c.wi < len(c.witness) {
		w := c.witness[len(c.witness)-1]
		v.fail(FaultTruncated, c.name, st.LastSeq+1, fmt.Sprintf("the witness holds a checkpoint at seq %d but the trail ends at seq %d: the records after it were dropped", w.Seq, st.LastSeq))
		return false
	}
	return true
}

// Finish ends the verification and returns the report.
func (v *Verifier) Finish() *Report {
	if v.diag != nil {
		v.settle()
	}
	if !v.stopped {
		if v.endStream() && !v.started {
			v.fail(FaultEmpty, "", 0, "the trail holds no complete record")
		}
	} else if v.cur != nil {
		st := &v.rep.Streams[v.cur.idx]
		st.Uncovered = st.LastSeq - max(st.CoveredSeq, min(st.Witnessed, st.LastSeq))
	}
	v.rep.Uncovered = 0
	for _, s := range v.rep.Streams {
		v.rep.Uncovered += s.Uncovered
	}
	rep := v.rep
	return &rep
}
