package audit

import (
	"context"
	"fmt"
	"sync"

	"github.com/redis/go-redis/v9"
)

// Witness keeps copies of checkpoints off the host (DESIGN.md §6), so
// records a checkpoint covered cannot be dropped from the end of a trail
// unnoticed: the verifier compares the trail with the witness's
// checkpoints (VerifyOptions.Witness).
type Witness interface {
	// Put stores c. The Writer calls it off its commit path, with a
	// timeout; a failure is logged and counted, never blocks the trail.
	Put(ctx context.Context, c Checkpoint) error
	// Checkpoints returns the checkpoints stored for stream, in the order
	// they were put (oldest first); none is not an error.
	Checkpoints(ctx context.Context, stream string) ([]Checkpoint, error)
}

// RedisWitnessPrefix is the key prefix of the Redis witness: the list
// kavach:audit:ckpt:<stream> holds the checkpoints of a stream.
const RedisWitnessPrefix = "kavach:audit:ckpt:"

// RedisWitness is the Witness on Redis: one list per stream, RPUSH per
// checkpoint (encoded by Checkpoint.AppendJSON), trimmed to the newest
// MaxLen entries.
type RedisWitness struct {
	client redis.UniversalClient
	maxLen int64
}

// NewRedisWitness returns a witness on client, keeping the newest maxLen
// checkpoints per stream (DefaultWitnessMaxLen when maxLen <= 0). The
// caller owns client.
func NewRedisWitness(client redis.UniversalClient, maxLen int64) *RedisWitness {
	if maxLen <= 0 {
		maxLen = DefaultWitnessMaxLen
	}
	return &RedisWitness{client: client, maxLen: maxLen}
}

// Put appends c to the stream's list and trims it, in one MULTI/EXEC.
func (w *RedisWitness) Put(ctx context.Context, c Checkpoint) error {
	key := RedisWitnessPrefix + c.Stream
	_, err := w.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.RPush(ctx, key, c.AppendJSON(nil))
		p.LTrim(ctx, key, -w.maxLen, -1)
		return nil
	})
	if err != nil {
		return fmt.Errorf("audit: witness RPUSH %s: %w", key, err)
	}
	return nil
}

// Checkpoints reads the stream's list. An entry that does not decode is an
// error: whoever can write the list could otherwise hide a checkpoint.
func (w *RedisWitness) Checkpoints(ctx context.Context, stream string) ([]Checkpoint, error) {
	if !validStream(stream) {
		return nil, fmt.Errorf("audit: witness: bad stream id %q", stream)
	}
	key := RedisWitnessPrefix + stream
	vals, err := w.client.LRange(ctx, key, 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("audit: witness LRANGE %s: %w", key, err)
	}
	out := make([]Checkpoint, 0, len(vals))
	for i, v := range vals {
		c, err := ParseCheckpoint([]byte(v))
		if err != nil {
			return nil, fmt.Errorf("audit: witness %s[%d]: %w", key, i, err)
		}
		if c.Stream != stream {
			return nil, fmt.Errorf("audit: witness %s[%d] names stream %q", key, i, c.Stream)
		}
		out = append(out, c)
	}
	return out, nil
}

// MemoryWitness is a Witness in memory, for tests and single-process
// tools. Safe for concurrent use.
type MemoryWitness struct {
	mu sync.Mutex
	m  map[string][]Checkpoint
}

// Put stores c.
func (w *MemoryWitness) Put(_ context.Context, c Checkpoint) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.m == nil {
		w.m = make(map[string][]Checkpoint)
	}
	c.Sig = append([]byte(nil), c.Sig...)
	w.m[c.Stream] = append(w.m[c.Stream], c)
	return nil
}

// Checkpoints returns a copy of the stream's checkpoints.
func (w *MemoryWitness) Checkpoints(_ context.Context, stream string) ([]Checkpoint, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Checkpoint(nil), w.m[stream]...), nil
}

// Interface guards
var (
	_ Witness = (*RedisWitness)(nil)
	_ Witness = (*MemoryWitness)(nil)
)
