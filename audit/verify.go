package audit

import (
	"bufio"
	"cmp"
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
	"time"
)

// VerifyOptions configure a verification.
type VerifyOptions struct {
	// Witness, when set, is asked for the checkpoints of every stream in
	// the trail and the key it was begun with. Each checkpoint must verify
	// with the key and match the trail: a witness checkpoint past the end
	// of its stream in the trail means records it covered were dropped
	// (FaultTruncated); a stream begun with another key is FaultWitness. A
	// stream the witness knows (begun with the pinned key by a node whose
	// streams the trail holds, with a checkpoint) that the trail lacks is
	// FaultMissing. A stream whose first record in the trail follows the
	// record a witness checkpoint names is verified from that checkpoint
	// (see StreamReport.From).
	Witness Witness
	// From names checkpoints to verify from. A stream whose first record
	// in the trail links to records the trail does not hold (its head was
	// cut: archived, or deleted) fails with FaultStart, unless From names
	// a checkpoint of that stream at or after that record. Every From
	// checkpoint must be in the trail, be a checkpoint record, and verify
	// with the key. Such a trail verifies, but is not Complete.
	From []CheckpointRef
	// Deprecated: every verification now requires what RequireGenesis
	// did: each stream starts at its first record, at a record the trail
	// holds, or at a checkpoint (From, Witness). Kept so callers compile.
	RequireGenesis bool
}

// CheckpointRef names a checkpoint record of a trail, written
// <stream>:<seq>: the stream and seq of the line whose kind is checkpoint
// (a stream id holds no ':').
type CheckpointRef struct {
	Stream string
	Seq    uint64
}

func (c CheckpointRef) String() string { return c.Stream + ":" + strconv.FormatUint(c.Seq, 10) }

// ParseCheckpointRef reads <stream>:<seq>.
func ParseCheckpointRef(s string) (CheckpointRef, error) {
	stream, seq, ok := strings.Cut(s, ":")
	n, err := strconv.ParseUint(seq, 10, 64)
	if !ok || !validStream(stream) || err != nil || n < 2 || strconv.FormatUint(n, 10) != seq {
		return CheckpointRef{}, fmt.Errorf("audit: checkpoint %q: want <stream>:<seq>, the stream and seq of a checkpoint record", s)
	}
	return CheckpointRef{Stream: stream, Seq: n}, nil
}

// Fault classifies the first problem of a trail.
type Fault string

// Faults, in the terms of the tamper tests.
const (
	// FaultMalformed: a line is not a record (or a file that its stream
	// continues after ends in the middle of a line).
	FaultMalformed Fault = "malformed"
	// FaultEdited: a record's hash does not match its bytes: it, or the
	// record before it, was changed.
	FaultEdited Fault = "edited"
	// FaultMissing: seq skips ahead and the missing records do not turn up
	// nearby, or a stream does not start at seq 1 and names no prev:
	// records were deleted. Also a stream the witness knows that the
	// trail lacks.
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
	// FaultWitness: the witness disagrees with the trail (another key,
	// another hash), holds an entry that does not verify, or cannot be
	// read.
	FaultWitness Fault = "witness"
	// FaultStart: the head was cut. A stream's first record in the trail
	// links to a record the trail does not hold (a rotated segment, an
	// earlier stream or file deleted, or `tail -n +N`), and no checkpoint
	// named in VerifyOptions.From (or the witness) accounts for it; or a
	// From checkpoint is not in the trail.
	FaultStart Fault = "start"
	// FaultEmpty: the trail holds no complete record.
	FaultEmpty Fault = "empty"
)

// Problem is the first place a trail fails to verify.
type Problem struct {
	Fault  Fault
	Source string // file name ("-" for a reader, "witness" for what only the witness knows)
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
	// After names the record the stream's first record links to, when the
	// trail holds it: "stream <id> seq <n>" (the stream before it, or the
	// segment it continues).
	After string
	// From is set when the stream's first record in the trail links to
	// records the trail does not hold, accounted for by a checkpoint:
	// "checkpoint <stream>:<seq> (--from)" or "the witness's checkpoint of
	// seq <n>". The records before FirstSeq were not checked.
	From string
	// KeyWitnessed: the witness recorded that the stream was begun with
	// the pinned key.
	KeyWitnessed bool
}

// PartialLine is an incomplete last line: an interrupted write. It was
// never acknowledged, and is reported rather than verified.
type PartialLine struct {
	Source string
	Line   int
	Bytes  int
}

// Report is the result of a verification. The trail verified when Problem
// is nil; it verified from its first record on when Complete.
type Report struct {
	Sources     []string
	Records     uint64
	Checkpoints int
	Streams     []StreamReport
	// Uncovered is the sum of the streams' Uncovered.
	Uncovered uint64
	// Key is the fingerprint of the pinned key (KeyFingerprint).
	Key string
	// Earlier lists streams the witness knows that the trail lacks and
	// that ended before a stream the trail holds from a checkpoint on
	// (StreamReport.From): earlier records, not checked.
	Earlier []string
	// Partials are the files that end in an incomplete line.
	Partials []PartialLine
	Problem  *Problem
}

// OK reports whether the trail verified.
func (r *Report) OK() bool { return r.Problem == nil }

// Complete reports whether the trail verified from the first record of
// every stream on: no stream was verified from a checkpoint (From).
func (r *Report) Complete() bool {
	if r.Problem != nil {
		return false
	}
	for _, s := range r.Streams {
		if s.From != "" {
			return false
		}
	}
	return true
}

// Err returns the problem as an error, or nil.
func (r *Report) Err() error {
	if r.Problem == nil {
		return nil
	}
	return r.Problem
}

// WriteText writes a summary for people (the CLI's output). Its first line
// begins "ok:" only for a complete verification, "ok from a checkpoint:"
// for one that began at a checkpoint, "FAIL" otherwise.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	sources := strings.Join(r.Sources, ", ")
	if n := len(r.Sources); n > 4 {
		sources = fmt.Sprintf("%s and %d more files", strings.Join(r.Sources[:3], ", "), n-3)
	}
	switch {
	case r.Problem != nil:
		fmt.Fprintf(&b, "FAIL %s\n", r.Problem.Error())
		fmt.Fprintf(&b, "%d records verified before it\n", r.Records)
	case r.Complete():
		fmt.Fprintf(&b, "ok: %d records, %d checkpoints, %d streams in %s\n",
			r.Records, r.Checkpoints, len(r.Streams), sources)
	default:
		fmt.Fprintf(&b, "ok from a checkpoint: %d records, %d checkpoints, %d streams in %s; the records before it were not checked\n",
			r.Records, r.Checkpoints, len(r.Streams), sources)
	}
	for _, s := range r.Streams {
		if s.Records == 0 {
			continue // failed at its first record
		}
		fmt.Fprintf(&b, "  stream %s: seq %d–%d, %d checkpoints", s.Stream, s.FirstSeq, s.LastSeq, s.Checkpoints)
		if s.After != "" {
			fmt.Fprintf(&b, ", after %s", s.After)
		}
		switch {
		case s.From != "" && s.FirstSeq == 1:
			fmt.Fprintf(&b, ", verified from %s: the stream it follows is not in the trail and was not checked", s.From)
		case s.From != "":
			fmt.Fprintf(&b, ", verified from %s: the records before seq %d are not in the trail and were not checked", s.From, s.FirstSeq)
		}
		if s.Uncovered > 0 {
			fmt.Fprintf(&b, ", %d records after seq %d not yet covered by a checkpoint", s.Uncovered, s.LastSeq-s.Uncovered)
		}
		if s.Witnessed > 0 {
			fmt.Fprintf(&b, ", witness confirms seq %d", s.Witnessed)
		}
		b.WriteString("\n")
	}
	if r.Key != "" {
		fmt.Fprintf(&b, "key: sha256 %s\n", r.Key)
	}
	if len(r.Earlier) > 0 {
		fmt.Fprintf(&b, "note: the witness knows %d earlier streams the trail does not hold (before the checkpoint it was verified from): %s\n", len(r.Earlier), strings.Join(r.Earlier, ", "))
	}
	for _, p := range r.Partials {
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
//     starts at seq 1, names prev, and was not seen before; the first
//     record of a chain starts at seq 1 without prev, or links to a
//     record verified before (a branch), or to records not given — then a
//     From checkpoint or the witness must account for it (FaultStart);
//  3. prev, when present, is the hash of the record before;
//  4. hash = SHA-256(prev_raw || body) over the bytes read;
//  5. a checkpoint's signature verifies with the pinned key over its
//     stream, seq-1, prev and time (Checkpoint.SignedBytes); the record a
//     From checkpoint names is a checkpoint;
//  6. with a witness, its checkpoint for this seq names this hash.
//
// At the end of each stream the witness must hold no checkpoint past its
// last seq, and a From checkpoint of the stream must have turned up. At
// the end, with a witness, no stream it knows may be missing.
type Verifier struct {
	pub    ed25519.PublicKey
	fp     string
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

	// seed is what a branch's first record must link to (beginBranch).
	seed *ChainEnd
	// from: stream → seq of its From checkpoint.
	from map[string]uint64
	// cutoff: node → the time of the earliest record verified from a
	// checkpoint: streams the witness knows that ended before it are
	// earlier records, not missing ones.
	cutoff map[string]time.Time
}

type streamState struct {
	idx     int // in rep.Streams
	name    string
	lastSeq uint64
	witness []Checkpoint // sorted by Seq
	wi      int
	// fromSeq is the seq of the stream's From checkpoint until it turns up.
	fromSeq uint64
	// witnessFrom is the seq of a witness checkpoint the stream's first
	// record follows, when it links to records not given.
	witnessFrom uint64
}

// diagnosis is a seq that jumped ahead, being classified.
type diagnosis struct {
	p    Problem
	want uint64
	left int
}

// ChainEnd is the last record a Verifier verified: where a branch may
// begin (BeginBranch).
type ChainEnd struct {
	Stream string
	Seq    uint64
	Hash   [32]byte
}

// NewVerifier returns a verifier pinned to pub. ctx bounds witness reads.
func NewVerifier(ctx context.Context, pub ed25519.PublicKey, opts VerifyOptions) *Verifier {
	v := &Verifier{pub: pub, opts: opts, ctx: ctx, h: newChainHasher(), seen: make(map[string]struct{}),
		from: make(map[string]uint64), cutoff: make(map[string]time.Time)}
	if len(pub) == ed25519.PublicKeySize {
		v.fp = KeyFingerprint(pub)
	}
	v.rep.Key = v.fp
	for _, f := range opts.From {
		v.from[f.Stream] = f.Seq
	}
	return v
}

// VerifyTrail verifies the trail at path: a file with its rotated
// segments, or a directory (see Files).
func VerifyTrail(ctx context.Context, path string, pub ed25519.PublicKey, opts VerifyOptions) (*Report, error) {
	return VerifyFiles(ctx, []string{path}, pub, opts)
}

// VerifyFiles verifies the trail at paths — files, their rotated segments
// and directories, expanded and ordered by Files — following the links
// between its files: a file that continues a stream or begins a new one
// is verified after the file it links to, and a stream that links to a
// record no given file holds is a cut head (FaultStart, unless From names
// a checkpoint). A file may end in a partial line unless its stream goes
// on in another file. The error is for I/O; a trail that does not verify
// is a Report with a Problem.
func VerifyFiles(ctx context.Context, paths []string, pub ed25519.PublicKey, opts VerifyOptions) (*Report, error) {
	p, err := planFiles(paths)
	if err != nil {
		return nil, err
	}
	v := NewVerifier(ctx, pub, opts)
	ends := make([]ChainEnd, len(p.files))
	for ci, c := range p.chains {
		if ci > 0 {
			ok := false
			if c.after >= 0 {
				ok = v.BeginBranch(ends[c.after])
			} else {
				ok = v.beginChain()
			}
			if !ok {
				break
			}
		}
		for _, i := range c.files {
			f := &p.files[i]
			fh, err := os.Open(f.path)
			if err != nil {
				return nil, fmt.Errorf("audit: %w", err)
			}
			err = v.ReadSource(fh, f.path, !f.continued)
			fh.Close()
			if err != nil {
				return nil, err
			}
			if v.stopped {
				return v.Finish(), nil
			}
			ends[i], _ = v.End()
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

// ReadSource feeds the lines of one source. partialOK says whether it may
// end in a partial line (an interrupted write: the live end of a stream).
func (v *Verifier) ReadSource(r io.Reader, name string, partialOK bool) error {
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
				if partialOK {
					v.Partial(len(chunk))
				} else {
					v.line++
					v.fail(FaultMalformed, "", 0, "the file ends in the middle of a line, but its stream goes on in the next file (only a stream's live end may)")
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
// PostgreSQL trail, the next trail of a directory): its first record is
// checked as a trail's first one, not as a link from the stream before. A
// stream id seen in an earlier chain may not turn up again.
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
	v.cur, v.started, v.head, v.seed = nil, false, [32]byte{}, nil
	return true
}

// BeginBranch starts a chain whose first record links to end, a record
// verified before (two processes that began after the same stream): the
// first record must name end's hash as prev.
func (v *Verifier) BeginBranch(end ChainEnd) bool {
	if !v.beginChain() {
		return false
	}
	v.seed = &end
	return true
}

// End returns the last record verified, ok false before the first.
func (v *Verifier) End() (ChainEnd, bool) {
	if v.cur == nil || v.rep.Streams[v.cur.idx].Records == 0 {
		return ChainEnd{}, false
	}
	return ChainEnd{Stream: v.cur.name, Seq: v.cur.lastSeq, Hash: v.head}, true
}

// Partial reports that the current source ends in n bytes without '\n'.
func (v *Verifier) Partial(n int) {
	v.rep.Partials = append(v.rep.Partials, PartialLine{Source: v.source, Line: v.line + 1, Bytes: n})
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
			if last := v.lastSeqOf(stream); lv.seq > last+1 {
				v.fail(FaultMissing, stream, last+1, fmt.Sprintf("the stream goes on at seq %d in this file, but no file holds seq %d–%d: records were deleted (a rotated segment?)", lv.seq, last+1, lv.seq-1))
				return false
			}
			v.fail(FaultReordered, stream, lv.seq, "the stream turns up again in another chain: records moved or copied")
			return false
		}
		outside, after := false, ""
		switch {
		case lv.prev == nil && lv.seq != 1:
			v.fail(FaultMissing, stream, 1, fmt.Sprintf("the trail begins at seq %d without a link to earlier records: records before it were deleted", lv.seq))
			return false
		case lv.prev == nil:
		case v.seed != nil && hexIs(lv.prev, &v.seed.Hash):
			v.head = v.seed.Hash
			after = fmt.Sprintf("stream %s seq %d", v.seed.Stream, v.seed.Seq)
		default:
			decodeHex(v.head[:], lv.prev)
			outside = true
		}
		v.seed = nil
		if !v.beginStream(stream, &lv) {
			return false
		}
		v.rep.Streams[v.cur.idx].After = after
		if outside && !v.verifyFrom(&lv) {
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
		if !v.beginStream(stream, &lv) {
			return false
		}
		v.rep.Streams[v.cur.idx].After = fmt.Sprintf("stream %s seq %d", prevStream.name, prevStream.lastSeq)
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
	if v.cur.fromSeq == lv.seq {
		if lv.kind != KindCheckpoint {
			v.fail(FaultStart, stream, lv.seq, fmt.Sprintf("--from %s names a %s record, not a checkpoint", CheckpointRef{stream, lv.seq}, lv.kind))
			return false
		}
		v.cur.fromSeq = 0
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

// lastSeqOf is the last seq verified of a stream seen before.
func (v *Verifier) lastSeqOf(stream string) uint64 {
	for i := len(v.rep.Streams) - 1; i >= 0; i-- {
		if v.rep.Streams[i].Stream == stream {
			return v.rep.Streams[i].LastSeq
		}
	}
	return 0
}

// verifyFrom accounts for a stream whose first record (lv) links to
// records not given: a From checkpoint at or after it, or a witness
// checkpoint right before it; else the head was cut.
func (v *Verifier) verifyFrom(lv *view) bool {
	c := v.cur
	st := &v.rep.Streams[c.idx]
	switch {
	case c.fromSeq != 0 && lv.seq <= c.fromSeq:
		st.From = fmt.Sprintf("checkpoint %s (--from)", CheckpointRef{c.name, c.fromSeq})
	case c.fromSeq != 0:
		v.fail(FaultStart, c.name, lv.seq, fmt.Sprintf("--from %s names a checkpoint before the first record of the stream in the trail (seq %d, linked to earlier records): the records from that checkpoint on were deleted",
			CheckpointRef{c.name, c.fromSeq}, lv.seq))
		return false
	case c.witnessFrom != 0:
		st.From = fmt.Sprintf("the witness's checkpoint of seq %d", c.witnessFrom)
	default:
		what := "the record before it"
		if lv.seq == 1 {
			what = "the last record of the stream before it"
		}
		v.fail(FaultStart, c.name, lv.seq, fmt.Sprintf("the stream begins at seq %d linked to %s (prev %s), which the trail does not hold: its head was cut, or the file before it is missing; if the earlier records were archived on purpose, verify from a checkpoint record of this stream with --from %s:<seq>",
			lv.seq, what, short(lv.prev), c.name))
		return false
	}
	if t, ok := parseTime(lv.time); ok {
		node := StreamNode(c.name)
		if cut, ok := v.cutoff[node]; !ok || t.Before(cut) {
			v.cutoff[node] = t
		}
	}
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

// beginStream starts the report of a stream (lv is its first record) and
// reads what the witness knows of it.
func (v *Verifier) beginStream(name string, lv *view) bool {
	first := lv.seq
	v.seen[name] = struct{}{}
	v.rep.Streams = append(v.rep.Streams, StreamReport{Stream: name, FirstSeq: first, LastSeq: first - 1, CoveredSeq: first - 1})
	v.cur = &streamState{idx: len(v.rep.Streams) - 1, name: name, lastSeq: first - 1, fromSeq: v.from[name]}
	if v.opts.Witness == nil {
		return true
	}
	fp, err := v.opts.Witness.StreamKey(v.ctx, name)
	switch {
	case err != nil:
		v.fail(FaultWitness, name, 0, "cannot read the witness: "+err.Error())
		return false
	case fp == "":
	case fp != v.fp:
		v.fail(FaultWitness, name, 0, fmt.Sprintf("the witness recorded that the stream was begun with the key sha256 %s, but the pinned key is sha256 %s: the trail was re-signed with another key (a replaced .pub?), or the wrong key is pinned",
			short([]byte(fp)), short([]byte(v.fp))))
		return false
	default:
		v.rep.Streams[v.cur.idx].KeyWitnessed = true
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
	slices.SortStableFunc(cps, func(a, b Checkpoint) int { return cmp.Compare(a.Seq, b.Seq) })
	// A first record that links to records not given may follow the
	// record a witness checkpoint names, or the checkpoint record itself
	// (a deleted rotated segment ends with one).
	if lv.prev != nil && first > 1 {
		for i := range cps {
			c := &cps[i]
			if (c.Seq+1 == first && hexIs(lv.prev, &c.Hash)) || (c.Seq+2 == first && hexIs(lv.prev, ptr(c.recordHash()))) {
				v.cur.witnessFrom = c.Seq
			}
		}
	}
	// Checkpoints before the first record given cover records not given.
	for len(cps) > 0 && cps[0].Seq < first {
		cps = cps[1:]
	}
	v.cur.witness = cps
	return true
}

func ptr[T any](v T) *T { return &v }

// endStream closes the current stream: the witness must not know of
// records past its end, and its From checkpoint must have turned up.
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
	if c.fromSeq != 0 {
		v.fail(FaultStart, c.name, c.fromSeq, fmt.Sprintf("--from %s: the stream ends at seq %d in the trail, before that checkpoint", CheckpointRef{c.name, c.fromSeq}, st.LastSeq))
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
		if v.endStream() && len(v.rep.Streams) == 0 {
			v.fail(FaultEmpty, "", 0, "the trail holds no complete record")
		}
	} else if v.cur != nil {
		st := &v.rep.Streams[v.cur.idx]
		st.Uncovered = st.LastSeq - min(max(st.CoveredSeq, st.Witnessed), st.LastSeq)
	}
	if !v.stopped {
		for _, f := range v.opts.From {
			if _, ok := v.seen[f.Stream]; !ok {
				v.fail(FaultStart, f.Stream, f.Seq, fmt.Sprintf("--from %s names a stream the trail does not hold", f))
				break
			}
		}
	}
	if !v.stopped && v.opts.Witness != nil {
		v.missingStreams()
	}
	v.rep.Uncovered = 0
	for _, s := range v.rep.Streams {
		v.rep.Uncovered += s.Uncovered
	}
	rep := v.rep
	return &rep
}

// missingStreams fails when the witness knows a stream begun with the
// pinned key, by a node whose streams the trail holds, with a checkpoint,
// that the trail lacks; one that ended before the trail's records were
// verified from a checkpoint is only reported (Report.Earlier).
func (v *Verifier) missingStreams() {
	nodes := make(map[string]struct{})
	for s := range v.seen {
		nodes[StreamNode(s)] = struct{}{}
	}
	v.source, v.line = "witness", 0
	names, err := v.opts.Witness.Streams(v.ctx, v.fp)
	if err != nil {
		v.fail(FaultWitness, "", 0, "cannot read the witness: "+err.Error())
		return
	}
	slices.Sort(names)
	for _, name := range names {
		node := StreamNode(name)
		if _, ok := v.seen[name]; ok {
			continue
		}
		if _, ok := nodes[node]; !ok {
			continue
		}
		cps, err := v.opts.Witness.Checkpoints(v.ctx, name)
		if err != nil {
			v.fail(FaultWitness, name, 0, "cannot read the witness: "+err.Error())
			return
		}
		var last *Checkpoint
		for i := range cps {
			if c := &cps[i]; c.Stream == name && c.Verify(v.pub) == nil && (last == nil || c.Seq > last.Seq) {
				last = c
			}
		}
		if last == nil {
			continue // begun, but no checkpoint: it wrote nothing the witness saw
		}
		if cut, ok := v.cutoff[node]; ok && last.Time.Before(cut) {
			v.rep.Earlier = append(v.rep.Earlier, name)
			continue
		}
		v.fail(FaultMissing, name, 0, fmt.Sprintf("the witness holds checkpoints of this stream up to seq %d (at %s), signed with the pinned key, but the trail does not hold it: its file was deleted, or is not among those given",
			last.Seq, last.Time.UTC().Format(time.RFC3339)))
		return
	}
}
