package audit

import (
	"context"
	"errors"
)

// Sink stores the trail's lines (DESIGN.md §6). Implementations: the JSONL
// file (OpenFile), stdout (NewStdoutSink) and PostgreSQL (OpenPostgres: a
// batch per INSERT, Tail the last record of the writer's node). Every sink
// passes the conformance suite in audit/sinktest.
//
// The Writer is a sink's only user: it calls Tail once, then Append from a
// single goroutine, then Close. Calls never overlap.
type Sink interface {
	// Tail returns the last complete record in the sink, so a new stream
	// can link to it; a zero Tail (Found false) for an empty sink or one
	// that cannot be read back (stdout). A sink that cannot vouch for its
	// tail fails here: it must not let a new stream link to bytes that do
	// not verify.
	Tail(ctx context.Context) (Tail, error)

	// Append stores the batch's lines, in order, after everything appended
	// before, and returns once they are durable (the file sink: written and
	// fsynced). It is all or nothing: when it returns an error, no part of
	// the batch is in the trail, and the writer retries the same batch
	// later. A sink that cannot undo a partial append fails every later
	// Append with ErrSinkBroken.
	Append(ctx context.Context, b *Batch) error

	// Close releases the sink (the file sink: its file lock).
	Close() error
}

// Rotator is a Sink that splits the trail into segments (the file sink's
// size rotation into <file>.1, <file>.2, …). After a successful Append the
// Writer asks Full; when it is, the Writer closes the segment with a
// checkpoint, calls Rotate, and writes prev on the next record so the new
// segment verifies on its own.
type Rotator interface {
	Sink
	// Full reports whether the current segment reached its size limit.
	Full() bool
	// Rotate closes the current segment and starts a new, empty one. On an
	// error the sink stays usable: Append retries what Rotate could not
	// finish.
	Rotate() error
}

// ErrSinkBroken is returned by a sink that can no longer guarantee an
// all-or-nothing Append (stdout after a partial write).
var ErrSinkBroken = errors.New("audit: sink broken")

// Tail is where a sink's trail ends.
type Tail struct {
	// Found is false for an empty trail: the next stream starts at the
	// zero hash.
	Found bool
	// Stream, Seq and Hash identify the last complete record.
	Stream string
	Seq    uint64
	Hash   [32]byte
	// PartialBytes is the length of an incomplete last line (a crash in
	// the middle of a write) that the sink moved out of the trail when it
	// opened, to PartialPath. Such bytes were never acknowledged.
	PartialBytes int64
	PartialPath  string
}

// Batch is the encoded lines of one group commit, all of one stream, in
// order. Sinks must not keep it after Append returns.
type Batch struct {
	Stream string
	// Data is the lines, each ending in '\n'.
	Data []byte
	// Lines describes each line of Data.
	Lines []LineInfo
}

// LineInfo describes one line of a Batch.
type LineInfo struct {
	Seq  uint64
	Kind Kind
	Hash [32]byte
	// End is the offset in Batch.Data just past the line's '\n'.
	End int
}

// Line returns line i of the batch, '\n' included.
func (b *Batch) Line(i int) []byte {
	start := 0
	if i > 0 {
		start = b.Lines[i-1].End
	}
	return b.Data[start:b.Lines[i].End]
}

// Len is the number of lines.
func (b *Batch) Len() int { return len(b.Lines) }

func (b *Batch) reset(stream string) {
	b.Stream = stream
	b.Data = b.Data[:0]
	b.Lines = b.Lines[:0]
}
