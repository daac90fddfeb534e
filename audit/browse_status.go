package audit

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"time"
)

// statusCache runs verification passes in the background, one at a time,
// and answers Status with what the last one found.
type statusCache struct {
	opts BrowseOptions
	pass func(ctx context.Context) (TrailStatus, coverage)

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	st      TrailStatus
	cov     coverage
	running bool
	done    chan struct{}
	last    time.Time // when the last pass ended
}

func newStatusCache(o BrowseOptions, pass func(context.Context) (TrailStatus, coverage), initial TrailStatus) *statusCache {
	ctx, cancel := context.WithCancel(context.Background())
	return &statusCache{opts: o, pass: pass, ctx: ctx, cancel: cancel, st: initial}
}

// Status starts a pass when none runs and the last ended StatusEvery ago,
// waits for it at most StatusWait, and returns what the last pass found.
func (c *statusCache) Status(ctx context.Context) (TrailStatus, error) {
	running, done, err := c.kick()
	if err != nil {
		return TrailStatus{}, err
	}
	if running {
		t := time.NewTimer(c.opts.StatusWait)
		select {
		case <-done:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.st
	st.Pending = c.running
	return st, nil
}

// kick starts a pass when none runs and the last ended StatusEvery ago,
// without waiting for it (Browse calls it, so that Covered follows the
// trail).
func (c *statusCache) kick() (running bool, done chan struct{}, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ctx.Err() != nil {
		return false, nil, errors.New("audit: browser closed")
	}
	if !c.running && time.Since(c.last) >= c.opts.StatusEvery {
		c.running, c.done = true, make(chan struct{})
		c.wg.Add(1)
		go c.run(c.done)
	}
	return c.running, c.done, nil
}

func (c *statusCache) run(done chan struct{}) {
	defer c.wg.Done()
	st, cov := c.pass(c.ctx)
	c.mu.Lock()
	if c.ctx.Err() == nil {
		st.At = time.Now()
		c.st, c.cov = st, cov
	}
	c.running, c.last = false, time.Now()
	close(done)
	c.mu.Unlock()
}

// coverage is what the last pass proved (never nil).
func (c *statusCache) coverage() coverage {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cov == nil {
		return coverage{}
	}
	return c.cov
}

// Close stops a running pass and waits for it.
func (c *statusCache) Close() error {
	c.cancel()
	c.wg.Wait()
	return nil
}

// chainProgress is what a pass remembers besides the Verifier: the
// newest verified checkpoint.
type chainProgress struct {
	ckpt   CheckpointRef
	ckptAt time.Time
}

// line feeds one line to v and notes a checkpoint it verified.
func (p *chainProgress) line(v *Verifier, line []byte) bool {
	n := v.rep.Checkpoints
	if !v.Line(line) {
		return false
	}
	if v.rep.Checkpoints > n {
		var lv view
		if decodeLine(line, &lv, nil) == nil {
			t, _ := parseTime(lv.time)
			if !t.Before(p.ckptAt) {
				p.ckpt, p.ckptAt = CheckpointRef{Stream: string(lv.stream), Seq: lv.seq}, t
			}
		}
	}
	return true
}

// statusOf reads what verifiers found into st and their coverage.
func statusOf(st *TrailStatus, p *chainProgress, vs ...*Verifier) coverage {
	cov := coverage{}
	st.Records, st.Uncovered, st.Problem = 0, 0, ""
	for _, v := range vs {
		st.Records += v.rep.Records
		for _, s := range v.rep.Streams {
			if s.Records == 0 {
				continue
			}
			if s.Checkpoints > 0 {
				cov[s.Stream] = s.CoveredSeq
			}
			st.Uncovered += int(s.LastSeq - max(s.CoveredSeq, s.Witnessed))
		}
		switch {
		case st.Problem != "":
		case v.rep.Problem != nil:
			st.Problem = v.rep.Problem.Error()
		case v.diag != nil:
			st.Problem = v.diag.p.Error() + " (seq jumped ahead; classifying)"
		}
	}
	st.Checkpoint, st.CheckpointAt = "", time.Time{}
	if p.ckpt.Stream != "" {
		st.Checkpoint, st.CheckpointAt = p.ckpt.String(), p.ckptAt
	}
	st.Verified = st.Problem == "" && st.Records > 0
	return cov
}

// fileVerifier verifies a file trail incrementally: it keeps its Verifier
// between passes and goes on where the last pass stopped, as long as the
// files it read are still there (by identity, so a rotated file is
// recognised under its new name), the live one has not shrunk nor been
// written to without growing, and the others have not changed (size,
// modification time). Otherwise — a truncated, rewritten, replaced or
// re-ordered file, or FullEvery after the last full pass — it verifies
// from the first record again. (Verified bytes of the live file
// overwritten in place while records are appended to it are found by
// the next full pass.)
type fileVerifier struct {
	paths []string
	label string
	opts  BrowseOptions

	v        *Verifier
	prog     chainProgress
	read     []readFile
	ends     []ChainEnd // per read file: the last record verified in it
	fullAt   time.Time
	fullTook time.Duration // how long the last full pass took
	lastStat TrailStatus
	lastCov  coverage
}

// readFile is a file a pass read: its identity, how far (the end of its
// last complete line), and where it sits in the plan.
type readFile struct {
	fi    os.FileInfo
	off   int64
	begin int // -1: continues the chain; -2: begins a chain; else the branch's file (index in read)
}

func (fv *fileVerifier) pass(ctx context.Context) (TrailStatus, coverage) {
	st := TrailStatus{KeyFingerprint: "sha256 " + KeyFingerprint(fv.opts.Pub)}
	before := listing(fv.paths)
	plan, err := planFiles(fv.paths)
	if err != nil {
		st.Source = "file " + fv.label + " (0 files)"
		if !errors.Is(err, fs.ErrNotExist) {
			st.Problem = err.Error()
		}
		fv.v, fv.read, fv.ends = nil, nil, nil
		return st, coverage{}
	}
	st.Source = "file " + fv.label + " (" + count(len(plan.files), "file") + ")"
	// The plan as a sequence of files, each with how it begins.
	type step struct {
		file  *trailFile
		fi    os.FileInfo
		begin int
	}
	var steps []step
	pos := make(map[int]int) // plan file index → step index
	for ci, c := range plan.chains {
		for k, i := range c.files {
			if !plan.files[i].first.ok {
				// No complete record yet (a live file just rotated in):
				// where it links is not known. Such files come last, in
				// chains of their own; a later pass reads them.
				continue
			}
			b := -1
			if k == 0 && ci > 0 {
				b = -2
				if c.after >= 0 {
					b = pos[c.after]
				}
			}
			pos[i] = len(steps)
			fi, err := os.Stat(plan.files[i].path)
			if errors.Is(err, fs.ErrNotExist) {
				return fv.raced() // rotated since the plan
			}
			if err != nil {
				st.Problem = err.Error()
				return st, coverage{}
			}
			steps = append(steps, step{file: &plan.files[i], fi: fi, begin: b})
		}
	}
	// Go on from the last pass when the files it read are where it left
	// them.
	resume := fv.v != nil && time.Since(fv.fullAt) < fv.opts.FullEvery && len(fv.read) <= len(steps)
	grew := false // only an earlier file grew
	for k := 0; resume && k < len(fv.read); k++ {
		r, s := &fv.read[k], &steps[k]
		switch {
		case !os.SameFile(r.fi, s.fi), r.begin != s.begin, s.fi.Size() < r.off:
			resume, grew = false, false
		case s.fi.Size() == r.fi.Size() && !s.fi.ModTime().Equal(r.fi.ModTime()):
			resume, grew = false, false // written to without growing: rewritten in place
		case k < len(fv.read)-1 && s.fi.Size() > r.fi.Size():
			resume, grew = false, true // another live file: read from the start again
		case k < len(fv.read)-1 && (s.fi.Size() != r.fi.Size() || !s.fi.ModTime().Equal(r.fi.ModTime())):
			resume, grew = false, false // an earlier file changed
		}
	}
	if fv.v != nil && fv.v.stopped && resume {
		return fv.lastStat, fv.lastCov // the fault stands until the files change
	}
	if grew && time.Since(fv.fullAt) < 10*fv.fullTook {
		// Several live files (processes writing a directory at once)
		// make every pass a full one: at most a tenth of the time.
		return fv.lastStat, fv.lastCov
	}
	if !resume {
		defer func(start time.Time) { fv.fullTook = time.Since(start) }(time.Now())
		fv.v, fv.read, fv.ends, fv.prog = NewVerifier(ctx, fv.opts.Pub, VerifyOptions{}), nil, nil, chainProgress{}
		fv.fullAt = time.Now()
	}
	v := fv.v
	for k := max(len(fv.read)-1, 0); k < len(steps) && !v.stopped; k++ {
		s := &steps[k]
		if k >= len(fv.read) {
			ok := true
			switch {
			case s.begin == -2:
				ok = v.beginChain()
			case s.begin >= 0:
				ok = v.BeginBranch(fv.ends[s.begin])
			}
			if !ok {
				break
			}
			v.BeginSource(s.file.path)
			fv.read = append(fv.read, readFile{fi: s.fi, begin: s.begin})
			fv.ends = append(fv.ends, ChainEnd{})
		}
		r := &fv.read[k]
		off, fi, err := fv.readFrom(ctx, v, s.file.path, s.fi, r.off, !s.file.continued)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errRenamed) {
			fv.v = nil
			return fv.raced()
		}
		if err != nil {
			st.Problem = err.Error()
			fv.v = nil
			return st, coverage{}
		}
		r.off, r.fi = off, fi
		fv.ends[k], _ = v.End()
	}
	if (v.stopped || v.diag != nil) && !sameListing(before, listing(fv.paths)) {
		// Files were rotated while the pass read them: what it found
		// may be the race, not the trail. The next pass starts again.
		fv.v = nil
		return fv.raced()
	}
	cov := statusOf(&st, &fv.prog, v)
	fv.lastStat, fv.lastCov = st, cov
	return st, cov
}

// listing is the trail's files by name, with their identities.
func listing(paths []string) map[string]os.FileInfo {
	names, err := expandPaths(paths)
	if err != nil {
		return nil
	}
	out := make(map[string]os.FileInfo, len(names))
	for _, n := range names {
		if fi, err := os.Stat(n); err == nil {
			out[n] = fi
		}
	}
	return out
}

// sameListing reports whether two listings name the same files.
func sameListing(a, b map[string]os.FileInfo) bool {
	if len(a) != len(b) {
		return false
	}
	for n, fa := range a {
		fb, ok := b[n]
		if !ok || !os.SameFile(fa, fb) {
			return false
		}
	}
	return true
}

// raced answers a pass that met a file rotated away since it listed the
// files: what the last pass found (the next one lists them again).
func (fv *fileVerifier) raced() (TrailStatus, coverage) {
	st := fv.lastStat
	if st.KeyFingerprint == "" {
		st = TrailStatus{Source: "file " + fv.label, KeyFingerprint: "sha256 " + KeyFingerprint(fv.opts.Pub)}
	}
	return st, fv.lastCov
}

// errRenamed: the path names another file than the plan's.
var errRenamed = errors.New("audit: file renamed while read")

// readFrom feeds the complete lines of path (the file want, else
// errRenamed) from off on, and returns the offset after the last one fed
// and the file's state after reading. A partial last line is left for
// the next pass, unless partialOK is false (the stream goes on in the
// next file): then it is a fault.
func (fv *fileVerifier) readFrom(ctx context.Context, v *Verifier, path string, want os.FileInfo, off int64, partialOK bool) (int64, os.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return off, nil, fmt.Errorf("audit: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !os.SameFile(fi, want) {
		return off, nil, errRenamed
	}
	off, err = fv.feed(ctx, v, f, path, off, partialOK)
	if err != nil {
		return off, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		return off, nil, fmt.Errorf("audit: %w", err)
	}
	return off, fi, nil
}

func (fv *fileVerifier) feed(ctx context.Context, v *Verifier, f *os.File, path string, off int64, partialOK bool) (int64, error) {
	br := bufio.NewReaderSize(io.NewSectionReader(f, off, 1<<62), MaxLineBytes)
	for n := 0; !v.stopped; n++ {
		if n%4096 == 0 && ctx.Err() != nil {
			return off, ctx.Err()
		}
		chunk, err := br.ReadSlice('\n')
		switch {
		case err == nil:
			fv.prog.line(v, chunk[:len(chunk)-1])
			off += int64(len(chunk))
		case errors.Is(err, bufio.ErrBufferFull):
			v.line++
			v.fail(FaultMalformed, "", 0, fmt.Sprintf("line longer than %d bytes", MaxLineBytes))
		case errors.Is(err, io.EOF):
			if len(chunk) > 0 && !partialOK {
				v.line++
				v.fail(FaultMalformed, "", 0, "the file ends in the middle of a line, but its stream goes on in the next file (only a stream's live end may)")
			}
			return off, nil
		default:
			return off, fmt.Errorf("audit: read %s: %w", path, err)
		}
	}
	return off, nil
}
