package audit

import "time"

// Limits of the record format and defaults of the writer and sinks, in one
// place (DESIGN.md §6). A limit of the format binds the writer and the
// verifier alike: the writer never produces a line the verifier refuses.
const (
	// MaxLineBytes bounds one encoded line, '\n' included. Write refuses a
	// record whose line would be longer (ErrRecordTooLarge); the verifier
	// reports a longer line as malformed.
	MaxLineBytes = 1 << 20

	// MaxStringBytes bounds every string field, counted in bytes before
	// escaping. The encoder truncates a longer value at a UTF-8 boundary and
	// ends it with "…" (U+2026), so the result is at most MaxStringBytes;
	// an overlong request path costs its tail, never the record.
	MaxStringBytes = 4096

	// MaxArgsBytes bounds the arguments of an MCP call a route records
	// (args, with audit_arguments): the gateway cuts a longer recording at
	// a UTF-8 boundary and ends it with "…", so a decision record stays
	// small whatever the call carries. args_sha256 always covers the whole.
	MaxArgsBytes = 2048

	// MaxListLen bounds agents, chain and ids. Write refuses a longer list
	// (ErrRecordTooLarge); a caller with more ids writes several records.
	MaxListLen = 256

	// MaxStreamBytes bounds a stream id, which is [A-Za-z0-9._-]+ so it can
	// name a file and a Redis key and never needs escaping.
	MaxStreamBytes = 128

	// MaxJunkReasons bounds the distinct reasons CountJunk keeps between
	// two summaries; further reasons are counted under JunkOther.
	MaxJunkReasons = 32

	// JunkOther is the reason junk is counted under once MaxJunkReasons
	// distinct reasons are in use.
	JunkOther = "other"

	// DefaultCheckpointEvery is how many records a checkpoint covers at
	// most (DESIGN.md §6: every N records or T seconds).
	DefaultCheckpointEvery = 1000

	// DefaultCheckpointInterval is the longest time records stay uncovered
	// by a checkpoint while the writer runs.
	DefaultCheckpointInterval = 5 * time.Second

	// DefaultSummaryInterval is how often counted junk is written as
	// summary records (one per reason with a non-zero count).
	DefaultSummaryInterval = 5 * time.Second

	// DefaultQueueSize is the writer's bounded queue, in records. When it
	// is full, Write fails at once (the gateway answers 503).
	DefaultQueueSize = 16384

	// DefaultBatchDelay is how long the writer gathers records into one
	// group commit (one fsync) unless a durable write is waiting.
	DefaultBatchDelay = 10 * time.Millisecond

	// DefaultMaxBatch is the most records one group commit appends.
	DefaultMaxBatch = 4096

	// DefaultCloseTimeout bounds how long Close keeps retrying a failing
	// sink before it gives up on the records still queued.
	DefaultCloseTimeout = 10 * time.Second

	// DefaultWitnessTimeout bounds one witness write.
	DefaultWitnessTimeout = 2 * time.Second

	// DefaultWitnessMaxLen is how many checkpoints the Redis witness keeps
	// per stream (the newest; the newest is what detects a dropped tail).
	DefaultWitnessMaxLen = 10000

	// DefaultMaxFileSize is the size at which the file sink rotates.
	DefaultMaxFileSize = 128 << 20

	// RetryMin and RetryMax bound the writer's backoff while its sink fails.
	RetryMin = 50 * time.Millisecond
	RetryMax = 5 * time.Second

	// DiagnoseLookahead is how many lines the verifier reads past a seq
	// that jumped ahead, to tell records reordered from records deleted.
	DiagnoseLookahead = 1024
)
