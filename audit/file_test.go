package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestFileLock(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	s1, err := OpenFile(path, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = OpenFile(path, FileOptions{})
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "audit.jsonl.lock") {
		t.Fatalf("second OpenFile = %v, want ErrLocked naming the lock file", err)
	}
	s1.Close()
	s2, err := OpenFile(path, FileOptions{})
	if err != nil {
		t.Fatalf("OpenFile after Close: %v", err)
	}
	s2.Close()
}

func TestFileOpenErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := OpenFile(filepath.Join(dir, "missing", "audit.jsonl"), FileOptions{}); err == nil {
		t.Fatal("OpenFile in a missing directory succeeded")
	}
	if err := os.Mkdir(filepath.Join(dir, "adir"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenFile(filepath.Join(dir, "adir"), FileOptions{}); err == nil {
		t.Fatal("OpenFile on a directory succeeded")
	}
}

// TestFileReopenContinues: a new writer on an existing trail starts a new
// stream whose first record names the previous stream's last hash.
func TestFileReopenContinues(t *testing.T) {
	t.Parallel()
	path := writeTrail(t, t.TempDir(), "gw-a", 5, Options{})
	last, _ := ParseLine([]byte(lines(t, path)[5]))
	appendTrail(t, path, "gw-b", 5, Options{})
	first, _ := ParseLine([]byte(lines(t, path)[6]))
	if first.Stream != "gw-b" || first.Seq != 1 || first.Prev != last.Hash {
		t.Fatalf("gw-b's first record %+v does not link to gw-a's last hash %s", first, last.Hash)
	}
	if rep := verifyPath(t, path, VerifyOptions{RequireGenesis: true}); !rep.OK() || len(rep.Streams) != 2 {
		t.Fatalf("reopened trail:\n%s", reportText(rep))
	}
}

// TestFilePartialLine simulates a crash in the middle of a write: the
// partial line is moved aside (not lost), the trail verifies up to the last
// complete record, and the next stream links to that record's hash.
func TestFilePartialLine(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := writeTrail(t, dir, "gw-a", 20, Options{})
	data, _ := os.ReadFile(path)
	partial := []byte(`{"seq":22,"stream":"gw-a","time":"2026-`)
	os.WriteFile(path, append(bytes.Clone(data), partial...), 0o600)

	rep := verifyPath(t, path, VerifyOptions{})
	if !rep.OK() || len(rep.Partials) != 1 || rep.Partials[0].Bytes != len(partial) || rep.Records != 21 {
		t.Fatalf("verify with a partial line:\n%s", reportText(rep))
	}

	sink, err := OpenFile(path, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tail, _ := sink.Tail(context.Background())
	if tail.PartialBytes != int64(len(partial)) || tail.Seq != 21 || tail.Stream != "gw-a" {
		t.Fatalf("tail %+v", tail)
	}
	aside, err := os.ReadFile(tail.PartialPath)
	if err != nil || !bytes.Equal(aside, partial) || !strings.HasPrefix(filepath.Base(tail.PartialPath), "audit.jsonl.partial-") {
		t.Fatalf("partial line not moved aside intact: %q, %v", aside, err)
	}
	if now, _ := os.ReadFile(path); !bytes.Equal(now, data) {
		t.Fatal("the live file was not cut back to its last complete line")
	}
	w, err := NewWriter(context.Background(), sink, testKey(), Options{Stream: "gw-b", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if w.Tail().PartialPath != tail.PartialPath {
		t.Fatal("Writer.Tail does not report the partial line")
	}
	writeN(t, w, 3)
	w.Close()
	ls := lines(t, path)
	first, _ := ParseLine([]byte(ls[21]))
	if first.Prev != hex.EncodeToString(tail.Hash[:]) {
		t.Fatalf("new stream does not link to the last good hash")
	}
	if rep := verifyPath(t, path, VerifyOptions{RequireGenesis: true}); !rep.OK() || len(rep.Streams) != 2 || len(rep.Partials) != 0 {
		t.Fatalf("after recovery:\n%s", reportText(rep))
	}
	// Files does not take the aside file for a segment.
	if files, _ := Files(path); len(files) != 1 {
		t.Fatalf("Files = %v", files)
	}
}

// TestFileWholeFilePartial: a trail whose only line is partial.
func TestFileWholeFilePartial(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	os.WriteFile(path, []byte(`{"seq":1,"str`), 0o600)
	sink, err := OpenFile(path, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	if tail, _ := sink.Tail(context.Background()); tail.Found || tail.PartialBytes != 13 {
		t.Fatalf("tail %+v", tail)
	}
}

// TestFileTailInvalid: a trail whose last record does not verify is not
// continued.
func TestFileTailInvalid(t *testing.T) {
	t.Parallel()
	for name, mut := range map[string]func([]string) []string{
		"edited last record": func(ls []string) []string {
			ls[len(ls)-1] = strings.Replace(ls[len(ls)-1], `"seq":6`, `"seq":7`, 1)
			return ls
		},
		"garbage last line": func(ls []string) []string { return append(ls, "garbage") },
		"last record from elsewhere": func(ls []string) []string {
			return append(ls[:len(ls)-2], ls[len(ls)-1])
		},
	} {
		t.Run(name, func(t *testing.T) {
			path := writeTrail(t, t.TempDir(), "gw-a", 5, Options{})
			writeLines(t, path, mut(lines(t, path)))
			if _, err := OpenFile(path, FileOptions{}); !errors.Is(err, ErrTailInvalid) {
				t.Fatalf("OpenFile = %v, want ErrTailInvalid", err)
			}
		})
	}
}

// TestFileRotation: size rotation into <file>.1, <file>.2 … continues the
// chain; each rotated file ends in a checkpoint and every file verifies on
// its own.
func TestFileRotation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	sink, err := OpenFile(path, FileOptions{MaxSize: 8 << 10})
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWriter(context.Background(), sink, testKey(), Options{Stream: "gw-a", MaxBatch: 10, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		if err := w.WriteDurable(context.Background(), decision(i)); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	files, err := Files(path)
	if err != nil || len(files) < 4 {
		t.Fatalf("Files = %v, %v", files, err)
	}
	for i, f := range files[:len(files)-1] {
		if f != fmt.Sprintf("%s.%d", path, i+1) {
			t.Fatalf("Files order: %v", files)
		}
		ls := lines(t, f)
		if last, _ := ParseLine([]byte(ls[len(ls)-1])); last.Kind != KindCheckpoint {
			t.Errorf("%s does not end with a checkpoint", f)
		}
	}
	rep, err := VerifyFiles(context.Background(), files, testPub(), VerifyOptions{RequireGenesis: true})
	if err != nil || !rep.OK() || rep.Records < 200 || len(rep.Streams) != 1 {
		t.Fatalf("rotated trail: %v\n%s", err, reportText(rep))
	}
	// A later segment alone begins linked to records it does not hold.
	for _, f := range files[1 : len(files)-1] {
		if rep := verifyPath(t, f, VerifyOptions{}); rep.OK() || rep.Problem.Fault != FaultStart {
			t.Fatalf("%s alone:\n%s", f, reportText(rep))
		}
	}
	// Named in any order, the files are read in the order of their links.
	swapped := append([]string{files[1], files[0]}, files[2:]...)
	if rep, _ := VerifyFiles(context.Background(), swapped, testPub(), VerifyOptions{}); !rep.OK() || len(rep.Sources) != len(files) || rep.Sources[0] != files[0] {
		t.Fatalf("rotated files named out of order:\n%s", reportText(rep))
	}
	// Their contents swapped (renamed), the chain is whole: the names are
	// not what is verified.
	os.Rename(files[0], path+".tmp")
	os.Rename(files[1], files[0])
	os.Rename(path+".tmp", files[1])
	if rep, _ := VerifyFiles(context.Background(), files, testPub(), VerifyOptions{}); !rep.OK() || rep.Sources[0] != files[1] {
		t.Fatalf("rotated segments renamed:\n%s", reportText(rep))
	}
	os.Rename(files[0], path+".tmp")
	os.Rename(files[1], files[0])
	os.Rename(path+".tmp", files[1])
	// A deleted middle segment is caught.
	os.Rename(files[1], path+".aside")
	if rep, _ := VerifyTrail(context.Background(), path, testPub(), VerifyOptions{}); rep.OK() || rep.Problem.Fault != FaultMissing || rep.Problem.Source != files[2] {
		t.Fatalf("a missing segment went unnoticed:\n%s", reportText(rep))
	}
	os.Rename(path+".aside", files[1])

	// Rotated just before a stop, the live file is empty: the next stream
	// links to the last segment's tail.
	os.Rename(path, fmt.Sprintf("%s.%d", path, len(files)))
	os.WriteFile(path, nil, 0o600)
	appendTrail(t, path, "gw-b", 3, Options{})
	files, _ = Files(path)
	rep, err = VerifyFiles(context.Background(), files, testPub(), VerifyOptions{RequireGenesis: true})
	if err != nil || !rep.OK() || len(rep.Streams) != 2 {
		t.Fatalf("after reopening on an empty live file: %v\n%s", err, reportText(rep))
	}
}

// faultyFile injects write, fsync and truncate failures into the live file.
type faultyFile struct {
	segmentFile
	mu                          sync.Mutex
	writeErr, syncErr, truncErr error
	partial                     bool // write half the batch before failing
}

func (f *faultyFile) set(write, sync, trunc error, partial bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writeErr, f.syncErr, f.truncErr, f.partial = write, sync, trunc, partial
}

func (f *faultyFile) WriteAt(p []byte, off int64) (int, error) {
	f.mu.Lock()
	err, partial := f.writeErr, f.partial
	f.mu.Unlock()
	if err != nil {
		n := 0
		if partial {
			n, _ = f.segmentFile.WriteAt(p[:len(p)/2], off)
		}
		return n, err
	}
	return f.segmentFile.WriteAt(p, off)
}

func (f *faultyFile) Sync() error {
	f.mu.Lock()
	err := f.syncErr
	f.mu.Unlock()
	if err != nil {
		return err
	}
	return f.segmentFile.Sync()
}

func (f *faultyFile) Truncate(size int64) error {
	f.mu.Lock()
	err := f.truncErr
	f.mu.Unlock()
	if err != nil {
		return err
	}
	return f.segmentFile.Truncate(size)
}

// TestFileFaults: disk full (a write cut short), an fsync error and a
// read-only file: Write fails while the disk does, the partial append is
// undone, and once the disk recovers every accepted record is in the trail
// exactly once.
func TestFileFaults(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name               string
		write, sync, trunc error
		partial            bool
	}{
		{name: "disk full mid-write", write: syscall.ENOSPC, partial: true},
		{name: "fsync fails", sync: syscall.EIO},
		{name: "read-only file", write: syscall.EROFS},
		{name: "disk full, truncate fails too", write: syscall.ENOSPC, trunc: syscall.EIO, partial: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.jsonl")
			sink, err := OpenFile(path, FileOptions{})
			if err != nil {
				t.Fatal(err)
			}
			ff := &faultyFile{segmentFile: sink.f}
			sink.f = ff
			w, err := NewWriter(context.Background(), sink, testKey(), Options{Stream: "gw-a", Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			writeN(t, w, 10)
			ff.set(tc.write, tc.sync, tc.trunc, tc.partial)
			// Accepted before the failure shows: must survive it.
			var want []string
			for i := range 10 {
				want = append(want, fmt.Sprintf("req_%d", i))
			}
			for i := 10; i < 15; i++ {
				switch err := w.Write(decision(i)); {
				case err == nil:
					want = append(want, fmt.Sprintf("req_%d", i))
				case !errors.Is(err, ErrSinkFailing):
					t.Fatal(err)
				}
			}
			eventually(t, "the writer to see the failure", func() bool { return w.Stats().Failing })
			if err := w.Write(decision(99)); !errors.Is(err, ErrSinkFailing) {
				t.Fatalf("Write while failing = %v", err)
			}
			if err := w.WriteDurable(context.Background(), decision(99)); !errors.Is(err, ErrSinkFailing) {
				t.Fatalf("WriteDurable while failing = %v", err)
			}
			if tc.trunc == nil {
				// Nothing of the failed batch is in the file meanwhile.
				if rep := verifyPath(t, path, VerifyOptions{}); !rep.OK() || len(rep.Partials) != 0 || rep.Records != 10 {
					t.Fatalf("while failing:\n%s", reportText(rep))
				}
			}
			ff.set(nil, nil, nil, false)
			eventually(t, "recovery", func() bool { return !w.Stats().Failing })
			if err := w.WriteDurable(context.Background(), decision(15)); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			rep := verifyPath(t, path, VerifyOptions{RequireGenesis: true})
			if !rep.OK() {
				t.Fatalf("after recovery:\n%s", reportText(rep))
			}
			var ids []string
			for _, r := range records(t, mustRead(t, path)) {
				if r.Kind == KindDecision {
					ids = append(ids, r.RequestID)
				}
			}
			want = append(want, "req_15")
			if strings.Join(ids, " ") != strings.Join(want, " ") {
				t.Fatalf("written:  %v\naccepted: %v", ids, want)
			}
		})
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFileKill9 kills a writing process with SIGKILL under load: the trail
// verifies up to its last complete record, and a restart continues it with
// a new stream linked to the last good hash.
func TestFileKill9(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "AUDIT_CRASH_CHILD="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "ready" {
				ready <- true
				return
			}
		}
		ready <- false
	}()
	select {
	case ok := <-ready:
		if !ok {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatal("child did not start writing")
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal("child did not start writing")
	}
	time.Sleep(300 * time.Millisecond) // under load
	cmd.Process.Kill()                 // SIGKILL: no flush, no final checkpoint
	cmd.Wait()

	rep, err := VerifyTrail(context.Background(), path, testPub(), VerifyOptions{RequireGenesis: true})
	if err != nil || !rep.OK() || rep.Records < 100 {
		t.Fatalf("after kill -9: %v\n%s", err, reportText(rep))
	}
	t.Logf("after kill -9:\n%s", reportText(rep))
	appendTrail(t, path, "restarted", 10, Options{})
	rep, err = VerifyTrail(context.Background(), path, testPub(), VerifyOptions{RequireGenesis: true})
	if err != nil || !rep.OK() || len(rep.Streams) != 2 || rep.Streams[1].Uncovered != 0 {
		t.Fatalf("after restart: %v\n%s", err, reportText(rep))
	}
}

// TestCrashChild is TestFileKill9's writing process.
func TestCrashChild(t *testing.T) {
	path := os.Getenv("AUDIT_CRASH_CHILD")
	if path == "" {
		t.Skip("helper process of TestFileKill9")
	}
	sink, err := OpenFile(path, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWriter(context.Background(), sink, testKey(), Options{Stream: "crashing", CheckpointEvery: 100})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		if i == 200 {
			if err := w.WriteDurable(context.Background(), decision(i)); err != nil {
				t.Fatal(err)
			}
			fmt.Println("ready")
			continue
		}
		if err := w.Write(decision(i)); errors.Is(err, ErrQueueFull) {
			time.Sleep(50 * time.Microsecond)
		}
	}
}
