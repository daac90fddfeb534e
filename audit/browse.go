package audit

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Browser reads a trail for people (the issuer's console): newest first,
// outcomes joined to their decisions, with how far the trail is verified.
// OpenBrowser opens one for a file trail or a PostgreSQL trail.
type Browser interface {
	// Browse returns up to limit entries matching f, NEWEST FIRST, with
	// outcome records joined (limit ≤ 0: 50; at most 10000). It reads at
	// most BrowseOptions.MaxScan records: fewer entries than limit does
	// not mean there are no more (Pager says where to go on). Covered is
	// as of the last verification pass, which Browse starts in the
	// background when it is due (it never waits for one).
	Browse(ctx context.Context, f Filter, limit int) ([]BrowseEntry, error)
	// Status says how far the trail is verified (computed incrementally,
	// cached; cheap to call).
	Status(ctx context.Context) (TrailStatus, error)
	Close() error
}

// Pager is a Browser that pages: every Browser OpenBrowser returns is
// one.
type Pager interface {
	Browser
	// BrowsePage is Browse from cursor on ("" for the newest records):
	// the entries older than the cursor's position that match f. It
	// reads at most BrowseOptions.MaxScan records, and Page.Next says
	// where the next page begins ("" when the trail's oldest record was
	// read). A cursor from another trail or made up is ErrBadCursor.
	BrowsePage(ctx context.Context, f Filter, limit int, cursor string) (Page, error)
}

// Page is what BrowsePage found.
type Page struct {
	Entries []BrowseEntry
	// Next is the cursor of the next page, "" at the trail's oldest
	// record. It is set when limit entries were found, or when the scan
	// stopped at MaxScan records: then Entries may be short, or empty.
	Next string
	// Scanned is how many records were read (outcomes and checkpoints
	// included), at most MaxScan.
	Scanned int
	// Skipped counts lines that are not records (Status reports the
	// fault).
	Skipped int
}

// ErrBadCursor is BrowsePage's error for a cursor it did not make.
var ErrBadCursor = errors.New("audit: not a cursor of this trail")

// BrowseEntry is one request (or event) of the trail.
type BrowseEntry struct {
	Decision Record  // the decision record (Kind decision or summary or issuer event)
	Outcome  *Record // the outcome record of the same request_id, if any (status, duration)
	Seq      uint64
	Stream   string
	Covered  bool // covered by a verified signed checkpoint
}

// Status is the HTTP status the entry's request got: its outcome's, or
// the status a denial was answered with; 0 when not known.
func (e *BrowseEntry) Status() int {
	if e.Outcome != nil && e.Outcome.Status != 0 {
		return e.Outcome.Status
	}
	return e.Decision.Status
}

// TrailStatus is how far a trail is verified.
type TrailStatus struct {
	Source       string // "file ./audit.jsonl (3 files)" or "postgres (2 nodes)"
	Verified     bool   // chain verified from the start up to Checkpoint
	Checkpoint   string // "stream:seq" of the newest verified signed checkpoint ("" if none)
	CheckpointAt time.Time
	Uncovered    int // records after the checkpoint, not yet covered
	// KeyFingerprint is the fingerprint of the checkpoint signing key as
	// `kavach audit verify` prints it ("sha256 <hex>").
	KeyFingerprint string
	Problem        string // non-empty when verification found a fault
	// Records is how many records were verified.
	Records uint64
	// Pending: a verification pass is catching up with the trail; the
	// other fields are as of the last pass.
	Pending bool
	// At is when the last pass ended (zero before the first).
	At time.Time
}

// BrowseOptions configure OpenBrowser. Zero values mean the defaults.
type BrowseOptions struct {
	// Pub is the key checkpoints are verified with. Default: the public
	// half beside the config's signing key (<key>.pub).
	Pub ed25519.PublicKey
	// MaxScan bounds the records one Browse or BrowsePage reads. Default
	// DefaultBrowseScan.
	MaxScan int
	// JoinWindow: a page that begins at a cursor also reads the outcomes
	// of up to this much newer time, for the decisions just before the
	// cursor. Default DefaultJoinWindow.
	JoinWindow time.Duration
	// StatusWait bounds how long Status waits for the pass it starts
	// before it answers with what the last pass found. Default 200 ms.
	StatusWait time.Duration
	// StatusEvery: Status starts a pass only when the last one ended
	// longer ago than this. Default 1 s.
	StatusEvery time.Duration
	// FullEvery: a pass verifies from the first record again when the
	// last full pass is older than this (a pass otherwise continues where
	// the last one ended, and notices only appended records, rotation and
	// truncation). Default 15 min.
	FullEvery time.Duration
}

// Defaults of BrowseOptions.
const (
	DefaultBrowseScan = 50000
	DefaultJoinWindow = 10 * time.Second
)

func (o *BrowseOptions) defaults() {
	setDefault(&o.MaxScan, DefaultBrowseScan)
	setDefault(&o.JoinWindow, DefaultJoinWindow)
	setDefault(&o.StatusWait, 200*time.Millisecond)
	setDefault(&o.StatusEvery, time.Second)
	setDefault(&o.FullEvery, 15*time.Minute)
}

// OpenBrowser opens the trail cfg writes for reading: a file sink's file
// with its rotated segments (the default trail: its directory, see
// Files), or a PostgreSQL sink's table. A stdout trail cannot be read
// back, and an off one does not exist: both are errors. The key
// checkpoints are verified with is opts' Pub, else the .pub beside the
// config's signing key.
func OpenBrowser(ctx context.Context, cfg Config, opts ...BrowseOptions) (Browser, error) {
	var o BrowseOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	o.defaults()
	switch cfg.Sink {
	case SinkStdout:
		return nil, errors.New("audit: a stdout trail cannot be read back: browse it where the log shipper sends it")
	case SinkOff:
		return nil, errors.New("audit: the trail is off")
	}
	c, err := cfg.Resolved()
	if err != nil {
		return nil, err
	}
	if o.Pub == nil {
		_, pubPath := KeyPaths(c.KeyTrail())
		pub, err := LoadPublicKey(pubPath)
		if err != nil {
			return nil, fmt.Errorf("audit: the trail's public key: %w", err)
		}
		o.Pub = pub
	}
	if len(o.Pub) != ed25519.PublicKeySize {
		return nil, errors.New("audit: browse: the public key is not an Ed25519 key")
	}
	switch c.Sink {
	case SinkPostgres:
		return openPostgresBrowser(ctx, c.URL, o)
	default:
		path, label := c.Path, c.Path
		if path == "" {
			// The default trail: a file per process start.
			path = filepath.Dir(c.KeyTrail())
			label = path
		}
		return newFileBrowser([]string{path}, label, o), nil
	}
}

// Filter additions for browsing (see Filter.Status and Filter.Roots).

// statusMatches reports whether status meets the filter's Status: "" any,
// "403" that code, "4xx" that class.
func statusMatches(want string, status int) bool {
	if want == "" {
		return true
	}
	if len(want) == 3 && want[1:] == "xx" && want[0] >= '1' && want[0] <= '9' {
		return status/100 == int(want[0]-'0')
	}
	n, err := strconv.Atoi(want)
	return err == nil && n == status
}

// CheckStatusFilter validates a Filter.Status value: "", a code (100–999)
// or a class ("1xx"…"9xx").
func CheckStatusFilter(s string) error {
	if s == "" {
		return nil
	}
	if len(s) == 3 && s[1:] == "xx" && s[0] >= '1' && s[0] <= '9' {
		return nil
	}
	if n, err := strconv.Atoi(s); err == nil && n >= 100 && n <= 999 && strconv.Itoa(n) == s {
		return nil
	}
	return fmt.Errorf("audit: status %q: want a code (403) or a class (4xx)", s)
}

// entryKind reports whether a record of kind k is an entry of Browse
// (outcomes are joined to theirs, checkpoints are the trail's own).
func entryKind(k Kind) bool { return k != KindOutcome && k != KindCheckpoint }

// joinLimit bounds the outcomes one page remembers by request id.
const joinLimit = 1 << 16

// browseKey orders records newest first: by time, then stream, then seq.
type browseKey struct {
	t      int64 // Unix microseconds
	stream string
	seq    uint64
}

func (a browseKey) compare(b browseKey) int {
	if a.t != b.t {
		if a.t < b.t {
			return -1
		}
		return 1
	}
	if c := strings.Compare(a.stream, b.stream); c != 0 {
		return c
	}
	switch {
	case a.seq < b.seq:
		return -1
	case a.seq > b.seq:
		return 1
	}
	return 0
}

// after reports whether the record at key was read before the cursor c
// (a page beginning at c skips it): in c's stream, by seq, the order of
// the stream's lines (the times of concurrent requests may be a little
// out of order); in other streams, by time.
func (c browseKey) after(key browseKey, bad bool) bool {
	if !bad && key.stream == c.stream {
		return key.seq >= c.seq
	}
	return key.compare(c) >= 0
}

// cursor of a file trail: "t<unix µs>:<stream>:<seq>", the key of the
// last record a page read.
func (a browseKey) cursor() string {
	return "t" + strconv.FormatInt(a.t, 10) + ":" + a.stream + ":" + strconv.FormatUint(a.seq, 10)
}

func parseKeyCursor(s string) (browseKey, error) {
	rest, ok := strings.CutPrefix(s, "t")
	if !ok {
		return browseKey{}, ErrBadCursor
	}
	parts := strings.Split(rest, ":")
	if len(parts) != 3 || !validStream(parts[1]) {
		return browseKey{}, ErrBadCursor
	}
	t, err1 := strconv.ParseInt(parts[0], 10, 64)
	seq, err2 := strconv.ParseUint(parts[2], 10, 64)
	if err1 != nil || err2 != nil || seq == 0 {
		return browseKey{}, ErrBadCursor
	}
	return browseKey{t: t, stream: parts[1], seq: seq}, nil
}

// selectEntry applies f to a record that may be an entry, with its
// outcome (nil when not known).
func (f *Filter) selectEntry(r *Record, out *Record) bool {
	if !entryKind(r.Kind) || !f.match(r) {
		return false
	}
	if f.Status == "" {
		return true
	}
	e := BrowseEntry{Decision: *r, Outcome: out}
	return statusMatches(f.Status, e.Status())
}

// coverage is what the last verification pass proved: per stream, the
// seq of its last verified checkpoint.
type coverage map[string]uint64

func (c coverage) covers(stream string, seq uint64) bool {
	s, ok := c[stream]
	return ok && seq <= s
}

// limitOf bounds a Browse limit.
func limitOf(limit int) int {
	switch {
	case limit <= 0:
		return 50
	case limit > 10000:
		return 10000
	}
	return limit
}

// onBehalf reports whether r was made on behalf of the filter's user: by
// its sub, or by a chain rooted in one of Roots.
func (f *Filter) onBehalf(r *Record) bool {
	if f.Sub != "" && r.Sub != "" && (r.Sub == f.Sub || f.Names.user(r.Sub) == f.Sub) {
		return true
	}
	return len(f.Roots) > 0 && len(r.Chain) > 0 && slices.Contains(f.Roots, r.Chain[0])
}

// count says "1 file", "3 files".
func count(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}
