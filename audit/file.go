package audit

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// ErrLocked is returned by OpenFile when another writer (another process,
// or another FileSink in this one) holds the trail.
var ErrLocked = errors.New("audit: trail in use by another writer")

// ErrTailInvalid is returned by OpenFile when the last complete record of
// the trail does not verify (edited, or not a record): the sink refuses to
// link a new stream to it. Run `kavach audit verify`, then move the trail
// aside to start a new one.
var ErrTailInvalid = errors.New("audit: the trail's last record does not verify")

var errLockHeld = errors.New("lock held")

// FileOptions configure OpenFile.
type FileOptions struct {
	// MaxSize is the size in bytes at which the live file is rotated
	// (Rotator). Default DefaultMaxFileSize; negative: never rotate. A file
	// may exceed it by one batch.
	MaxSize int64
	// LinkDir says the trail is one of a directory of trails, one per
	// process start (the default trail, <stream>.jsonl): when the file is
	// new, its first stream links to the last record of the most recently
	// written other trail in the directory that no writer holds (with its
	// rotated segments), so that deleting a whole file of the directory
	// breaks a link `kavach audit verify <dir>` follows. Trails that do not
	// verify at their end are passed over.
	LinkDir bool
}

// FileSink is the JSONL file sink (DESIGN.md §6), the default.
//
//   - One writer per trail: OpenFile takes an exclusive flock(2) on
//     <path>.lock (a separate file, so rotation never moves the lock) and
//     fails with ErrLocked while another holds it.
//   - Append writes the batch at the end of the live file and fsyncs it.
//     A failed write or fsync is undone by truncating back to the last
//     durable size, so the writer can retry the same batch; if even the
//     truncation fails, the next Append retries it first.
//   - Rotation: when the live file reaches MaxSize, Rotate renames it to
//     <path>.N, N one more than the highest existing (so <path>.1 is the
//     oldest), and starts an empty <path>. Files lists them in order.
//   - Reopening validates the tail: an incomplete last line (a crash in
//     the middle of a write; never acknowledged) is moved aside, not
//     deleted: its bytes go to <path>.partial-<unix nanoseconds> (fsynced)
//     and the live file is truncated to its last complete line, which is
//     reported in Tail (PartialBytes, PartialPath). The last complete record
//     must then decode and chain from the line before it, else OpenFile
//     fails with ErrTailInvalid.
//
// Files are created 0600: the trail names users and agents.
type FileSink struct {
	path    string
	dir     string
	lock    *os.File
	f       segmentFile // nil after a rotation that could not create the new file
	size    int64       // durable size of the live file
	dirty   bool        // bytes past size may be in the file (an append not yet undone)
	next    int         // number of the next rotated segment
	maxSize int64
	linkDir bool
	tail    Tail
	closed  bool
}

// segmentFile is what FileSink needs of the live file (a seam for fault
// injection in tests).
type segmentFile interface {
	WriteAt(p []byte, off int64) (int, error)
	Sync() error
	Truncate(size int64) error
	Close() error
}

// OpenFile opens (creating when absent) the trail at path: it locks it,
// recovers from a crash, and validates the tail (see FileSink). The
// directory must exist.
func OpenFile(path string, opts FileOptions) (*FileSink, error) {
	path = filepath.Clean(path)
	lock, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	if err := lockSoon(lock); err != nil {
		lock.Close()
		if errors.Is(err, errLockHeld) {
			return nil, fmt.Errorf("%w: %s is locked (%s.lock): one gateway process per trail file", ErrLocked, path, path)
		}
		return nil, fmt.Errorf("audit: lock %s.lock: %w", path, err)
	}
	s := &FileSink{path: path, dir: filepath.Dir(path), lock: lock, maxSize: opts.MaxSize, linkDir: opts.LinkDir}
	if s.maxSize == 0 {
		s.maxSize = DefaultMaxFileSize
	}
	if err := s.open(); err != nil {
		if s.f != nil {
			s.f.Close()
		}
		lock.Close()
		return nil, err
	}
	return s, nil
}

// Path is the live file's path.
func (s *FileSink) Path() string { return s.path }

func (s *FileSink) open() error {
	nums, err := segments(s.path)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	s.next = 1
	if len(nums) > 0 {
		s.next = nums[len(nums)-1] + 1
	}
	f, err := os.OpenFile(s.path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	s.f = f
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("audit: %s is not a regular file", s.path)
	}
	s.size = fi.Size()
	if err := syncDir(s.dir); err != nil {
		return err
	}
	if s.size > 0 {
		if err := s.movePartialAside(f); err != nil {
			return err
		}
	}
	switch {
	case s.size > 0:
		t, err := readTail(f, s.size, s.path)
		if err != nil {
			return err
		}
		t.PartialBytes, t.PartialPath = s.tail.PartialBytes, s.tail.PartialPath
		s.tail = t
	case len(nums) > 0:
		// Rotated, and nothing written to the new file yet.
		seg := segmentPath(s.path, nums[len(nums)-1])
		sf, err := os.Open(seg)
		if err != nil {
			return fmt.Errorf("audit: %w", err)
		}
		defer sf.Close()
		fi, err := sf.Stat()
		if err != nil {
			return fmt.Errorf("audit: %w", err)
		}
		if fi.Size() > 0 {
			t, err := readTail(sf, fi.Size(), seg)
			if err != nil {
				return err
			}
			t.PartialBytes, t.PartialPath = s.tail.PartialBytes, s.tail.PartialPath
			s.tail = t
		}
	case s.linkDir:
		t, err := linkTail(s.path)
		if err != nil {
			return err
		}
		s.tail = t
	}
	return nil
}

// linkTail is the tail a new trail in a directory of per-process trails
// links to (FileOptions.LinkDir): the last complete record of the other
// trail whose last record is newest, among those no writer holds and
// whose end verifies; a zero Tail when there is none.
func linkTail(path string) (Tail, error) {
	bases, err := dirTrails(filepath.Dir(path))
	if err != nil {
		return Tail{}, err
	}
	var best Tail
	var bestTime time.Time
	for _, b := range bases {
		if b == path || trailHeld(b) {
			continue
		}
		files, err := trailFiles(b)
		if err != nil {
			continue
		}
		for i := len(files) - 1; i >= 0; i-- {
			t, at, ok := fileTail(files[i])
			if !ok {
				continue // empty: its stream ends in the segment before
			}
			if !best.Found || at.After(bestTime) {
				best, bestTime = t, at
			}
			break
		}
	}
	return best, nil
}

// lockWait is how long OpenFile retries a held lock. A lock released
// by Close can still be held for a moment by a child this process is
// forking (between fork and exec the child shares the open file
// description, whose flock it is), so a writer reopening its own trail
// must not take that moment for a second writer.
const lockWait = 500 * time.Millisecond

// lockSoon is lockFile, retried for up to lockWait while the lock is held.
func lockSoon(f *os.File) error {
	deadline := time.Now().Add(lockWait)
	for {
		err := lockFile(f)
		if !errors.Is(err, errLockHeld) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// trailHeld reports whether a writer holds the trail at path (its lock).
func trailHeld(path string) bool {
	f, err := os.OpenFile(path+".lock", os.O_RDWR, 0)
	if err != nil {
		return false // never locked, or gone
	}
	defer f.Close() // releases the lock if lockFile took it
	return lockFile(f) != nil
}

// fileTail reads the last complete record of a file that may end in a
// partial line (a writer killed in a write) and checks it as readTail
// does; ok is false for a file without one, or whose end does not verify.
func fileTail(name string) (Tail, time.Time, bool) {
	f, err := os.Open(name)
	if err != nil {
		return Tail{}, time.Time{}, false
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return Tail{}, time.Time{}, false
	}
	k := min(fi.Size(), 2*MaxLineBytes)
	buf := make([]byte, k)
	if _, err := f.ReadAt(buf, fi.Size()-k); err != nil {
		return Tail{}, time.Time{}, false
	}
	end := bytes.LastIndexByte(buf, '\n')
	if end < 0 {
		return Tail{}, time.Time{}, false
	}
	size := fi.Size() - k + int64(end) + 1
	t, err := readTail(f, size, name)
	if err != nil {
		return Tail{}, time.Time{}, false
	}
	last := decodeEnd(buf[bytes.LastIndexByte(buf[:end], '\n')+1 : end])
	return t, last.time, true
}

// movePartialAside moves an incomplete last line out of the live file (see
// FileSink).
func (s *FileSink) movePartialAside(f *os.File) error {
	k := min(s.size, MaxLineBytes)
	buf := make([]byte, k)
	if _, err := f.ReadAt(buf, s.size-k); err != nil {
		return fmt.Errorf("audit: read %s: %w", s.path, err)
	}
	if buf[k-1] == '\n' {
		return nil
	}
	var cut int64
	if i := bytes.LastIndexByte(buf, '\n'); i >= 0 {
		cut = s.size - k + int64(i) + 1
	} else if s.size > k {
		return fmt.Errorf("%w: %s: no line end in its last %d bytes (not an audit trail?)", ErrTailInvalid, s.path, k)
	}
	partial := buf[k-(s.size-cut):]
	aside := s.path + ".partial-" + strconv.FormatInt(now().UnixNano(), 10)
	pf, err := os.OpenFile(aside, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("audit: move the partial last line aside: %w", err)
	}
	_, err = pf.Write(partial)
	if err == nil {
		err = pf.Sync()
	}
	if cerr := pf.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncDir(s.dir)
	}
	if err == nil {
		err = f.Truncate(cut)
	}
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		return fmt.Errorf("audit: move the partial last line of %s aside to %s: %w", s.path, aside, err)
	}
	s.tail.PartialBytes, s.tail.PartialPath = s.size-cut, aside
	s.size = cut
	return nil
}

// readTail decodes the last line of a file that ends in '\n' and checks
// that it chains from the line before it (or, as the file's first line,
// from its prev or the zero hash).
func readTail(r io.ReaderAt, size int64, name string) (Tail, error) {
	invalid := func(format string, a ...any) (Tail, error) {
		return Tail{}, fmt.Errorf("%w: %s: %s", ErrTailInvalid, name, fmt.Sprintf(format, a...))
	}
	k := min(size, 2*MaxLineBytes)
	buf := make([]byte, k)
	if _, err := r.ReadAt(buf, size-k); err != nil {
		return Tail{}, fmt.Errorf("audit: read %s: %w", name, err)
	}
	if buf[k-1] != '\n' {
		return invalid("it ends in the middle of a line")
	}
	end := int(k) - 1
	i := bytes.LastIndexByte(buf[:end], '\n')
	if i < 0 && size > k {
		return invalid("its last line is over %d bytes", MaxLineBytes)
	}
	var v view
	if err := decodeLine(buf[i+1:end], &v, nil); err != nil {
		return invalid("its last line is not a record: %v", err)
	}
	var prev [32]byte
	switch {
	case i >= 0:
		j := bytes.LastIndexByte(buf[:i], '\n')
		if j < 0 && size > k {
			return invalid("its last but one line is over %d bytes", MaxLineBytes)
		}
		var pv view
		if err := decodeLine(buf[j+1:i], &pv, nil); err != nil {
			return invalid("its last but one line is not a record: %v", err)
		}
		prev = pv.hash
		if v.prev != nil && string(v.prev) != hex.EncodeToString(prev[:]) {
			return invalid("the last record (seq %d) does not link to the one before it", v.seq)
		}
	case v.prev != nil:
		decodeHex(prev[:], v.prev)
	case v.seq != 1:
		return invalid("its only record (seq %d) names no prev", v.seq)
	}
	if hashOf(prev, v.body) != v.hash {
		return invalid("the last record (stream %s seq %d) was changed: its hash does not match", v.stream, v.seq)
	}
	return Tail{Found: true, Stream: string(v.stream), Seq: v.seq, Hash: v.hash}, nil
}

// Tail returns the tail found when the sink opened.
func (s *FileSink) Tail(context.Context) (Tail, error) { return s.tail, nil }

// Append writes b at the end of the live file and fsyncs it; on an error it
// truncates the file back (see FileSink).
func (s *FileSink) Append(_ context.Context, b *Batch) error {
	if s.closed {
		return fmt.Errorf("audit: append to %s: sink closed", s.path)
	}
	if len(b.Data) == 0 {
		return nil
	}
	if s.f == nil {
		if err := s.createLive(); err != nil {
			return err
		}
	}
	if s.dirty {
		if err := s.f.Truncate(s.size); err != nil {
			return fmt.Errorf("audit: undo a failed append to %s: %w", s.path, err)
		}
		s.dirty = false
	}
	n, err := s.f.WriteAt(b.Data, s.size)
	if err == nil && n != len(b.Data) {
		err = io.ErrShortWrite
	}
	if err == nil {
		err = s.f.Sync()
	}
	if err != nil {
		// After a failed fsync the written pages are in an unknown state;
		// dropping them and writing the batch again is the only safe retry.
		s.dirty = true
		if s.f.Truncate(s.size) == nil {
			s.dirty = false
		}
		return fmt.Errorf("audit: append to %s: %w", s.path, err)
	}
	s.size += int64(n)
	return nil
}

// Full reports whether the live file reached MaxSize.
func (s *FileSink) Full() bool { return s.maxSize > 0 && s.size >= s.maxSize }

// Rotate renames the live file to <path>.N and starts an empty one.
func (s *FileSink) Rotate() error {
	if s.closed {
		return fmt.Errorf("audit: rotate %s: sink closed", s.path)
	}
	if s.f == nil || s.dirty {
		return fmt.Errorf("audit: rotate %s: the last append is not settled", s.path)
	}
	seg := segmentPath(s.path, s.next)
	if _, err := os.Lstat(seg); !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("audit: rotate %s: %s exists", s.path, seg)
	}
	if err := os.Rename(s.path, seg); err != nil {
		return fmt.Errorf("audit: rotate %s: %w", s.path, err)
	}
	s.next++
	s.f.Close()
	s.f = nil
	return s.createLive()
}

// createLive creates the live file after a rotation.
func (s *FileSink) createLive() error {
	if err := syncDir(s.dir); err != nil {
		return err
	}
	f, err := os.OpenFile(s.path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	fi, err := f.Stat()
	if err == nil && fi.Size() != 0 {
		err = fmt.Errorf("%s is not empty after rotation", s.path)
	}
	if err == nil {
		err = syncDir(s.dir)
	}
	if err != nil {
		f.Close()
		return fmt.Errorf("audit: %w", err)
	}
	s.f, s.size, s.dirty = f, 0, false
	return nil
}

// Close closes the live file and releases the lock.
func (s *FileSink) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	var err error
	if s.f != nil {
		err = s.f.Close()
	}
	if lerr := s.lock.Close(); err == nil {
		err = lerr
	}
	return err
}

// syncDir fsyncs a directory so a created or renamed file survives a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("audit: fsync %s: %w", dir, err)
	}
	return nil
}

// Interface guards
var (
	_ Sink    = (*FileSink)(nil)
	_ Rotator = (*FileSink)(nil)
)
