package audit

// CONTRACT STUB (branch c-console): the declarations of the trail reader
// as agreed with branch c-trail, which writes the real audit/browse.go
// (with the file and PostgreSQL implementations). When merging, take
// c-trail's version of this file.

import (
	"context"
	"time"
)

// Browser reads a trail for people: newest first, outcomes joined, with
// how far the trail is verified.
type Browser interface {
	// Browse returns up to limit entries matching f, NEWEST FIRST, with
	// outcome records joined.
	Browse(ctx context.Context, f Filter, limit int) ([]BrowseEntry, error)
	// Status says how far the trail is verified (computed incrementally,
	// cached; cheap to call).
	Status(ctx context.Context) (TrailStatus, error)
	Close() error
}

// BrowseEntry is one request (or event) of the trail.
type BrowseEntry struct {
	Decision Record  // the decision record (Kind decision or summary or issuer event)
	Outcome  *Record // the outcome record of the same request_id, if any (status, duration)
	Seq      uint64
	Stream   string
	Covered  bool // covered by a verified signed checkpoint
}

// TrailStatus is how far a trail is verified.
type TrailStatus struct {
	Source         string // "file ./audit.jsonl (3 files)" or "postgres"
	Verified       bool   // chain verified from the start up to Checkpoint
	Checkpoint     string // "stream:seq" of the newest verified signed checkpoint ("" if none)
	CheckpointAt   time.Time
	Uncovered      int    // records after the checkpoint, not yet covered
	KeyFingerprint string // fingerprint of the checkpoint signing key
	Problem        string // non-empty when verification found a fault
}
