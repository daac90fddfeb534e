package audit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Witness keeps copies of checkpoints off the host (DESIGN.md §6), so
// records a checkpoint covered cannot be dropped from the end of a trail
// unnoticed: the verifier compares the trail with the witness's
// checkpoints (VerifyOptions.Witness). It also records each stream when it
// begins, with the fingerprint of the key that signs it, so a verifier
// can tell a trail re-signed with another key (a replaced .pub beside it)
// and find whole streams deleted from the trail.
type Witness interface {
	// Begin records that stream begins, signed with the key whose
	// KeyFingerprint is keyFP. The Writer calls it first, off its commit
	// path, like Put. A stream already begun with another key is an error.
	Begin(ctx context.Context, stream, keyFP string) error
	// Put stores c. The Writer calls it off its commit path, with a
	// timeout; a failure is logged and counted, never blocks the trail.
	Put(ctx context.Context, c Checkpoint) error
	// Checkpoints returns the checkpoints stored for stream, in the order
	// they were put (oldest first); none is not an error.
	Checkpoints(ctx context.Context, stream string) ([]Checkpoint, error)
	// StreamKey returns the key fingerprint stream was begun with, "" when
	// it was not recorded.
	StreamKey(ctx context.Context, stream string) (string, error)
	// Streams returns the streams begun with the key keyFP, in no order.
	Streams(ctx context.Context, keyFP string) ([]string, error)
}

// Keys of the Redis witness.
const (
	// RedisWitnessPrefix: the list kavach:audit:ckpt:<stream> holds the
	// checkpoints of a stream.
	RedisWitnessPrefix = "kavach:audit:ckpt:"
	// RedisWitnessKeyPrefix: the string kavach:audit:key:<stream> is the
	// KeyFingerprint the stream was begun with.
	RedisWitnessKeyPrefix = "kavach:audit:key:"
	// RedisWitnessStreamsPrefix: the set kavach:audit:streams:<key
	// fingerprint> holds the streams begun with that key.
	RedisWitnessStreamsPrefix = "kavach:audit:streams:"
)

// streamStampLayout is the start time StreamID appends to a node name.
const streamStampLayout = "20060102T150405.000000Z"

// StreamNode returns the node of a stream id StreamID made: the id without
// its "-<start>" suffix. An id of another form is its own node.
func StreamNode(stream string) string {
	if n := len(stream) - len(streamStampLayout) - 1; n > 0 && stream[n] == '-' {
		if _, err := time.Parse(streamStampLayout, stream[n+1:]); err == nil {
			return stream[:n]
		}
	}
	return stream
}

// validKeyFP reports whether s is a KeyFingerprint: 64 lowercase hex digits.
func validKeyFP(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// errKeyMismatch: a stream begun again with another key.
var errKeyMismatch = errors.New("already begun with another key")

// RedisWitness is the Witness on Redis: one list per stream, RPUSH per
// checkpoint (encoded by Checkpoint.AppendJSON), trimmed to the newest
// MaxLen entries; per stream the fingerprint of its key (SET NX), and per
// key the set of its streams (SADD).
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

// Begin sets kavach:audit:key:<stream> (unless set) and adds the stream to
// kavach:audit:streams:<keyFP>, in one MULTI/EXEC.
func (w *RedisWitness) Begin(ctx context.Context, stream, keyFP string) error {
	if !validStream(stream) || !validKeyFP(keyFP) {
		return fmt.Errorf("audit: witness: bad stream %q or key fingerprint %q", stream, keyFP)
	}
	key := RedisWitnessKeyPrefix + stream
	var set *redis.BoolCmd
	_, err := w.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		set = p.SetNX(ctx, key, keyFP, 0)
		p.SAdd(ctx, RedisWitnessStreamsPrefix+keyFP, stream)
		return nil
	})
	if err != nil {
		return fmt.Errorf("audit: witness begin %s: %w", stream, err)
	}
	if !set.Val() {
		have, err := w.client.Get(ctx, key).Result()
		if err != nil {
			return fmt.Errorf("audit: witness GET %s: %w", key, err)
		}
		if have != keyFP {
			return fmt.Errorf("audit: witness: stream %s %w (sha256 %s)", stream, errKeyMismatch, have)
		}
	}
	return nil
}

// StreamKey reads kavach:audit:key:<stream>.
func (w *RedisWitness) StreamKey(ctx context.Context, stream string) (string, error) {
	if !validStream(stream) {
		return "", fmt.Errorf("audit: witness: bad stream id %q", stream)
	}
	key := RedisWitnessKeyPrefix + stream
	fp, err := w.client.Get(ctx, key).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("audit: witness GET %s: %w", key, err)
	case !validKeyFP(fp):
		return "", fmt.Errorf("audit: witness %s is not a key fingerprint", key)
	}
	return fp, nil
}

// Streams reads kavach:audit:streams:<keyFP>.
func (w *RedisWitness) Streams(ctx context.Context, keyFP string) ([]string, error) {
	if !validKeyFP(keyFP) {
		return nil, fmt.Errorf("audit: witness: bad key fingerprint %q", keyFP)
	}
	key := RedisWitnessStreamsPrefix + keyFP
	names, err := w.client.SMembers(ctx, key).Result()
	if err != nil {
		return nil, fmt.Errorf("audit: witness SMEMBERS %s: %w", key, err)
	}
	for _, n := range names {
		if !validStream(n) {
			return nil, fmt.Errorf("audit: witness %s holds a bad stream id %q", key, n)
		}
	}
	return names, nil
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
	mu      sync.Mutex
	m       map[string][]Checkpoint
	keys    map[string]string              // stream → key fingerprint
	streams map[string]map[string]struct{} // key fingerprint → streams
}

// Begin records the stream and its key.
func (w *MemoryWitness) Begin(_ context.Context, stream, keyFP string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.keys == nil {
		w.keys, w.streams = make(map[string]string), make(map[string]map[string]struct{})
	}
	if have, ok := w.keys[stream]; ok && have != keyFP {
		return fmt.Errorf("audit: witness: stream %s %w (sha256 %s)", stream, errKeyMismatch, have)
	}
	w.keys[stream] = keyFP
	if w.streams[keyFP] == nil {
		w.streams[keyFP] = make(map[string]struct{})
	}
	w.streams[keyFP][stream] = struct{}{}
	return nil
}

// StreamKey returns the key the stream was begun with.
func (w *MemoryWitness) StreamKey(_ context.Context, stream string) (string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.keys[stream], nil
}

// Streams returns the streams begun with keyFP.
func (w *MemoryWitness) Streams(_ context.Context, keyFP string) ([]string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]string, 0, len(w.streams[keyFP]))
	for s := range w.streams[keyFP] {
		out = append(out, s)
	}
	return out, nil
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
