package audit

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

type shortWriter struct{ n int }

func (w shortWriter) Write(p []byte) (int, error) { return min(w.n, len(p)), syscall.EPIPE }

// TestStdoutSinkFailures: a write that failed before writing anything is
// retryable; after a partial write the sink is broken for good, so the
// writer keeps refusing records instead of shipping a torn trail.
func TestStdoutSinkFailures(t *testing.T) {
	t.Parallel()
	b := &Batch{Data: []byte("line\n"), Lines: []LineInfo{{Seq: 1, End: 5}}}
	s := NewStdoutSink(shortWriter{0})
	if err := s.Append(context.Background(), b); err == nil || errors.Is(err, ErrSinkBroken) {
		t.Fatalf("nothing written: %v, want a retryable error", err)
	}
	s.w = shortWriter{2}
	if err := s.Append(context.Background(), b); !errors.Is(err, ErrSinkBroken) {
		t.Fatalf("partial write: %v, want ErrSinkBroken", err)
	}
	s.w = shortWriter{100}
	if err := s.Append(context.Background(), b); !errors.Is(err, ErrSinkBroken) {
		t.Fatalf("after a partial write: %v, want ErrSinkBroken", err)
	}
}

// TestStdoutSinkFile: stdout redirected to a file is fsynced; a pipe is
// not, and that is not an error.
func TestStdoutSinkFile(t *testing.T) {
	t.Parallel()
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := &Batch{Data: []byte("line\n"), Lines: []LineInfo{{Seq: 1, End: 5}}}
	if err := NewStdoutSink(f).Append(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	go func() {
		buf := make([]byte, 64)
		r.Read(buf)
	}()
	if err := NewStdoutSink(w).Append(context.Background(), b); err != nil {
		t.Fatalf("pipe: %v", err)
	}
}
