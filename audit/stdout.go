package audit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// StdoutSink writes the trail to standard output (or any io.Writer) for a
// log shipper to collect (DESIGN.md §6).
//
// It cannot read back what it wrote, so Tail is always empty: each stream
// starts from the zero hash, and a shipped trail is verified one stream at
// a time. Append hands the batch to the writer in one Write call and, when
// the writer is a file that supports it, fsyncs it; on a pipe or terminal
// there is nothing to fsync and the pipe's reader owns durability. A write
// that fails before any byte is written is retryable; after a partial write
// the stream holds half a line that cannot be taken back, so the sink
// fails every later Append with ErrSinkBroken (the gateway answers 503
// rather than proxy without a trail).
type StdoutSink struct {
	w      io.Writer
	broken error
	closed bool
}

// NewStdoutSink returns a sink writing to w; os.Stdout when w is nil. The
// caller owns w: Close does not close it.
func NewStdoutSink(w io.Writer) *StdoutSink {
	if w == nil {
		w = os.Stdout
	}
	return &StdoutSink{w: w}
}

// Tail returns the zero Tail: a stream cannot be read back.
func (s *StdoutSink) Tail(context.Context) (Tail, error) { return Tail{}, nil }

// Append writes the batch in one Write and syncs it when possible.
func (s *StdoutSink) Append(_ context.Context, b *Batch) error {
	switch {
	case s.closed:
		return errors.New("audit: stdout sink closed")
	case s.broken != nil:
		return fmt.Errorf("%w: %v", ErrSinkBroken, s.broken)
	case len(b.Data) == 0:
		return nil
	}
	n, err := s.w.Write(b.Data)
	if err == nil && n != len(b.Data) {
		err = io.ErrShortWrite
	}
	if err != nil {
		if n > 0 {
			s.broken = err
			return fmt.Errorf("%w: partial write: %v", ErrSinkBroken, err)
		}
		return fmt.Errorf("audit: write to stdout: %w", err)
	}
	if f, ok := s.w.(*os.File); ok {
		if err := f.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOTSUP) {
			// The bytes are in the file but not known durable; writing
			// them again would duplicate them.
			s.broken = err
			return fmt.Errorf("%w: fsync: %v", ErrSinkBroken, err)
		}
	}
	return nil
}

// Close marks the sink closed; it leaves the writer open.
func (s *StdoutSink) Close() error {
	s.closed = true
	return nil
}

// Interface guards
var _ Sink = (*StdoutSink)(nil)
