package audit

import (
	"bytes"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"strconv"
	"time"
)

// fileBrowser browses a file trail: a file with its rotated segments, or
// a directory of trails (see Files).
//
// A page reads the trail's files backwards, newest record first, in
// blocks (revBlock), merging the files by record time (the files of a
// directory may be written at the same time by several processes), and
// stops after limit entries or MaxScan records. Nothing is indexed: a
// page that begins at a cursor finds its place in each file by binary
// search on the records' times (records of a file are in time order), so
// its cost does not grow with the trail. Outcomes come after their
// decisions, so reading backwards meets an outcome first and remembers it
// by request id until its decision turns up.
type fileBrowser struct {
	paths []string
	label string
	opts  BrowseOptions
	*statusCache
}

func newFileBrowser(paths []string, label string, o BrowseOptions) *fileBrowser {
	b := &fileBrowser{paths: paths, label: label, opts: o}
	fv := &fileVerifier{paths: paths, label: label, opts: o}
	b.statusCache = newStatusCache(o, fv.pass, TrailStatus{Source: "file " + label, KeyFingerprint: "sha256 " + KeyFingerprint(o.Pub)})
	return b
}

func (b *fileBrowser) Browse(ctx context.Context, f Filter, limit int) ([]BrowseEntry, error) {
	p, err := b.BrowsePage(ctx, f, limit, "")
	return p.Entries, err
}

// revBlock is how much a backwards read takes at a time.
const revBlock = 64 << 10

func (b *fileBrowser) BrowsePage(ctx context.Context, f Filter, limit int, cursor string) (Page, error) {
	var page Page
	limit = limitOf(limit)
	var cur *browseKey
	if cursor != "" {
		k, err := parseKeyCursor(cursor)
		if err != nil {
			return page, err
		}
		cur = &k
	}
	if err := CheckStatusFilter(f.Status); err != nil {
		return page, err
	}
	if _, _, err := b.kick(); err != nil {
		return page, err
	}
	// A page read while the writer rotated may have missed the renamed
	// file: read it again (once; rotation is rare).
	for try := 0; ; try++ {
		before := listing(b.paths)
		page, err := b.page(ctx, &f, limit, cur)
		if err != nil || try > 0 || sameListing(before, listing(b.paths)) {
			return page, err
		}
	}
}

func (b *fileBrowser) page(ctx context.Context, f *Filter, limit int, cur *browseKey) (Page, error) {
	var page Page
	plan, err := planFiles(b.paths)
	if errors.Is(err, fs.ErrNotExist) {
		return page, nil // nothing written yet
	}
	if err != nil {
		return page, err
	}
	cov := b.coverage()
	bound := int64(math.MaxInt64)
	if cur != nil {
		// Records of a stream are in seq order, and their times nearly
		// so (a record's time is taken before it is queued): the search
		// starts well after the cursor's time.
		bound = cur.t + max(b.opts.JoinWindow, time.Second).Microseconds()
	}
	var h sourceHeap
	defer func() {
		for _, s := range h {
			s.close()
		}
	}()
	for _, c := range plan.chains {
		// A chain's files are read one after the other, newest first:
		// its records come in the order they were written.
		src := &revSource{minT: math.MaxInt64}
		for k := len(c.files) - 1; k >= 0; k-- {
			tf := &plan.files[c.files[k]]
			if !tf.first.ok || tf.first.time.UnixMicro() > bound {
				continue // no record, or all newer than the search
			}
			if len(src.files) == 0 {
				src.key = browseKey{t: tf.last.time.UnixMicro(), stream: tf.last.stream, seq: tf.last.seq}
				if !tf.last.ok {
					// Its last line is not a record: read it first.
					src.key = browseKey{t: math.MaxInt64}
				}
				if src.key.t > bound {
					src.key = browseKey{t: bound, stream: "\xff", seq: math.MaxUint64}
					src.search = bound
				}
			}
			src.files = append(src.files, tf.path)
		}
		if len(src.files) > 0 {
			h = append(h, src)
		}
	}
	heap.Init(&h)
	outcomes := make(map[string]*Record)
	var last *browseKey // of the last record of the page
	for n := 0; h.Len() > 0; n++ {
		if n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return page, err
			}
		}
		s := h[0]
		if !s.opened {
			s.opened = true
			more, err := s.advance()
			if err != nil {
				return page, err
			}
			if more {
				heap.Fix(&h, 0)
			} else {
				heap.Pop(&h)
			}
			continue
		}
		line, key, bad := s.line, s.key, s.bad
		more, err := s.advance()
		if err != nil {
			return page, err
		}
		if more {
			heap.Fix(&h, 0)
		} else {
			heap.Pop(&h).(*revSource).close()
		}
		if cur != nil && cur.after(key, bad) {
			// Read before the cursor: only an outcome is wanted, for a
			// decision of this page. The member can only be the kind:
			// quotes inside strings are escaped.
			if !bad && bytes.Contains(line, []byte(`"kind":"outcome"`)) {
				if rec, ok := decodeRecord(line); ok && rec.Kind == KindOutcome && rec.RequestID != "" {
					remember(outcomes, rec)
				}
			}
			continue
		}
		rec, ok := decodeRecord(line)
		bad = bad || !ok
		page.Scanned++
		switch {
		case bad:
			page.Skipped++
		case rec.Kind == KindOutcome:
			if rec.RequestID != "" {
				remember(outcomes, rec)
			}
		default:
			var out *Record
			if rec.RequestID != "" {
				out = outcomes[rec.RequestID]
			}
			if f.selectEntry(rec, out) {
				page.Entries = append(page.Entries, BrowseEntry{Decision: *rec, Outcome: out, Seq: rec.Seq, Stream: rec.Stream, Covered: cov.covers(rec.Stream, rec.Seq)})
			}
		}
		if !bad {
			last = &key
		}
		if len(page.Entries) >= limit || page.Scanned >= b.opts.MaxScan {
			// A line that is not a record has no key of its own: the
			// page goes on from the last one that had.
			if h.Len() > 0 && last != nil {
				page.Next = last.cursor()
			}
			return page, nil
		}
	}
	return page, nil
}

// remember keeps an outcome for its decision, bounded.
func remember(outcomes map[string]*Record, rec *Record) {
	if _, ok := outcomes[rec.RequestID]; ok {
		return // the newest (a 503 after a failed durable write) wins
	}
	if len(outcomes) >= joinLimit {
		clear(outcomes)
	}
	outcomes[rec.RequestID] = rec
}

// revSource is a chain of files (Files: a stream's rotated segments and
// the streams that followed it) read backwards, newest file first. Before
// it is opened its key is an upper bound of its records' (its newest
// file's last record's); after, the key of line, the line it yields
// next. Its keys never increase: a record's time is clamped to the times
// after it (concurrent requests take their times before they are queued,
// so a stream's times are a little out of seq order), which keeps the
// merge of several chains in order and a cursor's place the same from
// page to page.
type revSource struct {
	files  []string // newest first
	search int64    // when not 0: begin the first file before the records newer than this (Unix µs)
	opened bool
	rr     *revReader
	key    browseKey
	minT   int64
	line   []byte
	bad    bool // its head is not a record's
}

// openNext opens the next file of the chain; false when none is left.
func (s *revSource) openNext() (bool, error) {
	for len(s.files) > 0 {
		path := s.files[0]
		s.files = s.files[1:]
		f, err := os.Open(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue // rotated away since the plan
		}
		if err != nil {
			return false, fmt.Errorf("audit: %w", err)
		}
		fi, err := f.Stat()
		var end int64
		if err == nil {
			end, err = lastLineEnd(f, fi.Size())
		}
		if err == nil && s.search != 0 {
			end, err = searchAfter(f, end, s.search)
		}
		s.search = 0
		if err != nil {
			f.Close()
			return false, fmt.Errorf("audit: read %s: %w", path, err)
		}
		s.rr = &revReader{f: f, pos: end, name: path}
		return true, nil
	}
	return false, nil
}

// advance reads the next line back; false at the chain's first. Its key
// comes from the line's head; it is decoded when it is needed.
func (s *revSource) advance() (bool, error) {
	for {
		if s.rr == nil {
			if ok, err := s.openNext(); !ok || err != nil {
				return false, err
			}
		}
		line, err := s.rr.next()
		if errors.Is(err, io.EOF) {
			s.close()
			continue
		}
		if err != nil {
			return false, fmt.Errorf("audit: read %s: %w", s.rr.name, err)
		}
		s.line = line
		key, ok := headKey(line)
		if !ok {
			// Keeps the key before it: the merge stays in order.
			s.bad = true
			return true, nil
		}
		s.minT = min(s.minT, key.t)
		key.t = s.minT
		s.key, s.bad = key, false
		return true, nil
	}
}

// decodeRecord decodes a line strictly.
func decodeRecord(line []byte) (*Record, bool) {
	rec := new(Record)
	var v view
	if decodeLine(line, &v, rec) != nil {
		return nil, false
	}
	return rec, true
}

// headKey reads a line's key from its head, which begins
// {"seq":N,"stream":"S","time":"T" (Record's member order); the line is
// decoded strictly later, when it is used.
func headKey(line []byte) (browseKey, bool) {
	rest, ok := bytes.CutPrefix(line, []byte(`{"seq":`))
	if !ok {
		return browseKey{}, false
	}
	i := bytes.IndexByte(rest, ',')
	if i < 1 || i > 20 {
		return browseKey{}, false
	}
	seq, err := strconv.ParseUint(string(rest[:i]), 10, 64)
	if err != nil {
		return browseKey{}, false
	}
	rest, ok = bytes.CutPrefix(rest[i:], []byte(`,"stream":"`))
	if !ok {
		return browseKey{}, false
	}
	j := bytes.IndexByte(rest, '"')
	if j < 1 || j > MaxStreamBytes {
		return browseKey{}, false
	}
	stream := rest[:j]
	rest, ok = bytes.CutPrefix(rest[j:], []byte(`","time":"`))
	if !ok || len(rest) < timeLen {
		return browseKey{}, false
	}
	t, ok := parseTime(rest[:timeLen])
	if !ok {
		return browseKey{}, false
	}
	return browseKey{t: t.UnixMicro(), stream: string(stream), seq: seq}, true
}

func (s *revSource) close() {
	if s.rr != nil {
		s.rr.f.Close()
		s.rr = nil
	}
}

// sourceHeap is a max-heap of sources by key: the newest record first.
type sourceHeap []*revSource

func (h sourceHeap) Len() int           { return len(h) }
func (h sourceHeap) Less(i, j int) bool { return h[i].key.compare(h[j].key) > 0 }
func (h sourceHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *sourceHeap) Push(x any)        { *h = append(*h, x.(*revSource)) }
func (h *sourceHeap) Pop() any {
	old := *h
	s := old[len(old)-1]
	*h = old[:len(old)-1]
	return s
}

// revReader yields the complete lines of a file before pos, last first,
// reading revBlock bytes at a time. Lines are fresh slices (valid after
// the next call).
type revReader struct {
	f    *os.File
	name string
	pos  int64 // bytes [0, pos) are unread; pos is a line start
	// carry is the part of the line that ends where the read part begins
	// and began before pos (without its '\n').
	carry   []byte
	pending [][]byte
	started bool
}

func (r *revReader) next() ([]byte, error) {
	for {
		if n := len(r.pending); n > 0 {
			l := r.pending[n-1]
			r.pending = r.pending[:n-1]
			return l, nil
		}
		if r.pos == 0 {
			if r.carry != nil {
				l := r.carry
				r.carry = nil
				return l, nil
			}
			return nil, io.EOF
		}
		n := min(int64(revBlock), r.pos)
		r.pos -= n
		data := make([]byte, int(n)+len(r.carry))
		if _, err := r.f.ReadAt(data[:n], r.pos); err != nil {
			return nil, err
		}
		copy(data[n:], r.carry)
		r.carry = nil
		if !r.started {
			// The first block ends in the '\n' of the line before the
			// starting position.
			r.started = true
			if data[len(data)-1] != '\n' {
				return nil, errors.New("backwards read not at a line start")
			}
			data = data[:len(data)-1]
		}
		if r.pos > 0 {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				if len(data) > MaxLineBytes {
					return nil, fmt.Errorf("line longer than %d bytes", MaxLineBytes)
				}
				r.carry = data
				continue
			}
			r.carry, data = data[:i], data[i+1:]
		}
		r.pending = bytes.Split(data, []byte{'\n'})
	}
}

// lastLineEnd is the offset after the file's last '\n' (0 without one):
// a partial last line (a write in progress) is not read.
func lastLineEnd(f *os.File, size int64) (int64, error) {
	buf := make([]byte, revBlock)
	for end := size; end > 0; {
		n := min(int64(revBlock), end)
		start := end - n
		if _, err := f.ReadAt(buf[:n], start); err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			return start + int64(i) + 1, nil
		}
		end = start
	}
	return 0, nil
}

// searchAfter returns a line start at or before end from which on every
// line's time is after bound (Unix µs), and before which at most about a
// block of lines is: a binary search over the file, whose records are in
// time order. Lines it cannot place (longer than a block, not records)
// only make the answer later, never wrong for a reader going backwards
// from it and skipping what is newer.
func searchAfter(f *os.File, end, bound int64) (int64, error) {
	ans, lo, hi := end, int64(0), end
	buf := make([]byte, revBlock)
	for hi-lo > revBlock {
		mid := lo + (hi-lo)/2
		s, t, ok, err := lineAt(f, buf, mid, hi)
		switch {
		case err != nil:
			return 0, err
		case !ok:
			hi = mid
		case t > bound:
			ans, hi = s, s
		default:
			lo = s + 1
		}
	}
	return ans, nil
}

// lineAt finds the first line that starts at or after off and before
// limit, and its time.
func lineAt(f *os.File, buf []byte, off, limit int64) (start, t int64, ok bool, err error) {
	n, err := f.ReadAt(buf, off-1)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, 0, false, err
	}
	b := buf[:n]
	i := bytes.IndexByte(b, '\n')
	if i < 0 || off+int64(i) >= limit {
		return 0, 0, false, nil
	}
	start = off + int64(i)
	head := b[i+1:]
	tm, ok := headTime(head)
	if !ok {
		return 0, 0, false, nil
	}
	return start, tm, true, nil
}

// headTime reads the time of a line from its head, which begins
// {"seq":N,"stream":"S","time":"T" (Record's field order).
func headTime(head []byte) (int64, bool) {
	i := bytes.Index(head, []byte(`","time":"`))
	if i < 0 || i > 200+MaxStreamBytes {
		return 0, false
	}
	head = head[i+len(`","time":"`):]
	if len(head) < timeLen {
		return 0, false
	}
	tm, ok := parseTime(head[:timeLen])
	if !ok {
		return 0, false
	}
	return tm.UnixMicro(), true
}
