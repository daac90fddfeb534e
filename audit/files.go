package audit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// TrailExt is the extension of a trail file in a directory: the default
// trail is <Caddy data dir>/kavach/audit/<stream>.jsonl, one file per
// process start.
const TrailExt = ".jsonl"

// Files returns the trail files at paths, in chain order (oldest first), the
// order Query and VerifyFiles read them in. Each path is
//
//   - a trail file: it and its rotated segments <path>.1, <path>.2, … (the
//     file sink rotates the live file into the next free number, so a
//     higher number is newer); or
//   - a directory: every trail in it, each *.jsonl file with its rotated
//     segments (and segments whose live file is gone).
//
// Other files (.key, .pub, .lock, .partial-…) are not part of a trail. A
// file named twice is listed once.
//
// Files are ordered by their links, not by their names: a file whose first
// record links to the last record of another (a rotated segment continuing
// its stream, or a new stream linking to the one before) follows it; files
// that follow none — each chain's first — are ordered by the time of their
// first record, so the trails of several nodes interleave by time.
func Files(paths ...string) ([]string, error) {
	p, err := planFiles(paths)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(p.files))
	for _, c := range p.chains {
		for _, i := range c.files {
			out = append(out, p.files[i].path)
		}
	}
	return out, nil
}

// trailPlan is the order VerifyFiles reads files in: chains of files, each
// read one after the other by the Verifier.
type trailPlan struct {
	files  []trailFile
	chains []fileChain
}

// fileChain is files read in order, each linking to the one before. after
// is -1 for a chain that begins at its own first record (or at records
// that are not given), else the index of the file whose last record it
// links to: a branch (two processes that started from the same
// predecessor), read after that file was verified.
type fileChain struct {
	files []int
	after int
}

// trailFile is what the plan knows of a file before verifying it: its
// first and last complete lines, as they claim to be.
type trailFile struct {
	path        string
	first, last lineEnd
	// continued: the next file of its chain continues its last stream,
	// so it must not end in a partial line (only a stream's live end may).
	continued bool
}

// lineEnd is a decoded first or last line; ok is false when the file has
// no complete line that decodes.
type lineEnd struct {
	ok      bool
	stream  string
	seq     uint64
	hasPrev bool
	prev    [32]byte
	hash    [32]byte
	time    time.Time
}

// expandPaths lists the files of paths (see Files), each once.
func expandPaths(paths []string) ([]string, error) {
	if len(paths) == 0 {
		return nil, errors.New("audit: no trail named")
	}
	var out []string
	seen := make(map[string]struct{})
	add := func(names []string) {
		for _, n := range names {
			key, err := filepath.Abs(n)
			if err != nil {
				key = filepath.Clean(n)
			}
			if _, ok := seen[key]; !ok {
				seen[key] = struct{}{}
				out = append(out, n)
			}
		}
	}
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err == nil && fi.IsDir() {
			bases, err := dirTrails(p)
			if err != nil {
				return nil, err
			}
			for _, b := range bases {
				names, err := trailFiles(b)
				if err != nil {
					return nil, err
				}
				add(names)
			}
			continue
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("audit: %w", err)
		}
		names, err := trailFiles(p) // the path, or only its rotated segments
		if err != nil {
			return nil, err
		}
		add(names)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("audit: %s: no trail file (*%s) in it: %w", strings.Join(paths, ", "), TrailExt, fs.ErrNotExist)
	}
	return out, nil
}

// dirTrails lists the trails of a directory: each *.jsonl file, and each
// base of a rotated segment *.jsonl.N whose live file is gone, sorted.
func dirTrails(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	var bases []string
	seen := make(map[string]struct{})
	for _, e := range entries {
		name := e.Name()
		if i := strings.LastIndexByte(name, '.'); i > 0 && isSegmentNumber(name[i+1:]) {
			name = name[:i]
		}
		if !strings.HasSuffix(name, TrailExt) || name == TrailExt || strings.HasPrefix(name, ".") {
			continue
		}
		if e.Name() == name && !e.Type().IsRegular() {
			continue
		}
		if _, ok := seen[name]; !ok {
			seen[name] = struct{}{}
			bases = append(bases, filepath.Join(dir, name))
		}
	}
	slices.Sort(bases)
	return bases, nil
}

// trailFiles returns the trail at path, oldest first by name: its rotated
// segments in ascending order, then path itself when it exists.
func trailFiles(path string) ([]string, error) {
	nums, err := segments(path)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	out := make([]string, 0, len(nums)+1)
	for _, n := range nums {
		out = append(out, segmentPath(path, n))
	}
	switch _, err := os.Stat(path); {
	case err == nil:
		out = append(out, path)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("audit: %w", err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("audit: %s: %w", path, fs.ErrNotExist)
	}
	return out, nil
}

func segmentPath(path string, n int) string { return path + "." + strconv.Itoa(n) }

// isSegmentNumber reports whether s is the N of a rotated segment: decimal,
// no leading zero, at most 9 digits.
func isSegmentNumber(s string) bool {
	if s == "" || len(s) > 9 || s[0] == '0' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// segments lists the numbers of path's rotated segments, ascending.
func segments(path string) ([]int, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var nums []int
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), base+".")
		if !ok || !isSegmentNumber(rest) || !e.Type().IsRegular() {
			continue
		}
		n, err := strconv.Atoi(rest)
		if err != nil {
			continue
		}
		nums = append(nums, n)
	}
	slices.Sort(nums)
	return nums, nil
}

// planFiles expands paths and orders their files by their links (see
// Files). The links are what the lines claim; the Verifier checks them.
func planFiles(paths []string) (*trailPlan, error) {
	names, err := expandPaths(paths)
	if err != nil {
		return nil, err
	}
	p := &trailPlan{files: make([]trailFile, len(names))}
	byLast := make(map[[32]byte][]int)
	for i, name := range names {
		f := &p.files[i]
		f.path = name
		if f.first, f.last, err = fileEnds(name); err != nil {
			return nil, err
		}
		if f.last.ok {
			byLast[f.last.hash] = append(byLast[f.last.hash], i)
		}
	}
	// Each file follows the file whose last record its first names, when
	// that is consistent: the same stream one seq on (a rotated segment),
	// or a new stream's first record.
	pred := make([]int, len(names))
	children := make([][]int, len(names))
	for i := range p.files {
		pred[i] = -1
		f := &p.files[i]
		if !f.first.ok || !f.first.hasPrev {
			continue
		}
		for _, j := range byLast[f.first.prev] {
			l := &p.files[j].last
			if j == i {
				continue
			}
			if (f.first.seq == 1 && l.stream != f.first.stream) || (f.first.seq > 1 && l.stream == f.first.stream && l.seq == f.first.seq-1) {
				pred[i] = j
				children[j] = append(children[j], i)
				break
			}
		}
	}
	// Earlier first records first; files without records last; then by
	// name, so the order is the same every time.
	byTime := func(a, b int) int {
		fa, fb := &p.files[a].first, &p.files[b].first
		switch {
		case fa.ok != fb.ok:
			if fa.ok {
				return -1
			}
			return 1
		case fa.ok && !fa.time.Equal(fb.time):
			return fa.time.Compare(fb.time)
		}
		return strings.Compare(p.files[a].path, p.files[b].path)
	}
	var roots []int
	for i := range p.files {
		slices.SortFunc(children[i], byTime)
		if pred[i] < 0 {
			roots = append(roots, i)
		}
	}
	slices.SortFunc(roots, byTime)
	visited := make([]bool, len(names))
	// walk emits the chain that starts at file i, then the branches off
	// each of its files, depth first.
	var walk func(i, after int)
	walk = func(i, after int) {
		c := fileChain{after: after}
		for {
			visited[i] = true
			c.files = append(c.files, i)
			next := -1
			for _, k := range children[i] {
				if !visited[k] {
					next = k
					break
				}
			}
			if next < 0 {
				break
			}
			if p.files[next].first.seq > 1 {
				p.files[i].continued = true
			}
			i = next
		}
		p.chains = append(p.chains, c)
		for _, j := range c.files {
			for _, k := range children[j] {
				if !visited[k] {
					walk(k, j)
				}
			}
		}
	}
	for _, r := range roots {
		walk(r, -1)
	}
	// Files in a cycle of claimed links (lines that cannot verify) are
	// read as chains of their own, and fail there.
	for i := range p.files {
		if !visited[i] {
			walk(i, -1)
		}
	}
	return p, nil
}

// fileEnds decodes the first and the last complete line of a file (not
// verified). A file without a complete line that decodes has neither.
func fileEnds(name string) (first, last lineEnd, err error) {
	f, err := os.Open(name)
	if err != nil {
		return first, last, fmt.Errorf("audit: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return first, last, fmt.Errorf("audit: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return first, last, fmt.Errorf("audit: %s is not a regular file", name)
	}
	size := fi.Size()
	if size == 0 {
		return first, last, nil
	}
	buf := make([]byte, min(size, MaxLineBytes))
	n, err := f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return first, last, fmt.Errorf("audit: read %s: %w", name, err)
	}
	i := bytes.IndexByte(buf[:n], '\n')
	if i < 0 {
		return first, last, nil
	}
	first = decodeEnd(buf[:i])
	// The last complete line: read back from the end in growing chunks
	// until the line before the last '\n' begins in the chunk.
	for k := min(size, 64<<10); ; k = min(size, 2*k) {
		buf = make([]byte, k)
		if _, err := f.ReadAt(buf, size-k); err != nil && !errors.Is(err, io.EOF) {
			return first, last, fmt.Errorf("audit: read %s: %w", name, err)
		}
		end := bytes.LastIndexByte(buf, '\n')
		if end < 0 {
			if k == size || k >= 2*MaxLineBytes {
				return first, last, nil
			}
			continue
		}
		start := bytes.LastIndexByte(buf[:end], '\n')
		if start >= 0 || k == size {
			last = decodeEnd(buf[start+1 : end])
			return first, last, nil
		}
		if k >= 2*MaxLineBytes {
			return first, last, nil
		}
	}
}

func decodeEnd(line []byte) lineEnd {
	var v view
	if decodeLine(line, &v, nil) != nil {
		return lineEnd{}
	}
	e := lineEnd{ok: true, stream: string(v.stream), seq: v.seq, hash: v.hash}
	if v.prev != nil {
		e.hasPrev = decodeHex(e.prev[:], v.prev)
	}
	e.time, _ = parseTime(v.time)
	return e
}
