package audit

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/kavachgate/kavach/internal/redistest"
)

// The Redis witness against miniredis and a real redis-server (DESIGN.md
// §6: the list kavach:audit:ckpt:<stream>).

func TestRedisWitnessMiniredis(t *testing.T) {
	t.Parallel()
	mr := miniredis.RunT(t)
	c := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer c.Close()
	testRedisWitness(t, c, func(key string) []string {
		l, _ := mr.List(key)
		return l
	})
}

func TestRedisWitnessServer(t *testing.T) {
	t.Parallel()
	addr := redistest.Start(t).Addr()
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	testRedisWitness(t, c, func(key string) []string {
		return c.LRange(context.Background(), key, 0, -1).Val()
	})
}

func testRedisWitness(t *testing.T, c *redis.Client, list func(key string) []string) {
	ctx := context.Background()
	wit := NewRedisWitness(c, 3)
	if cps, err := wit.Checkpoints(ctx, "none"); err != nil || len(cps) != 0 {
		t.Fatalf("empty stream: %v, %v", cps, err)
	}

	// A writer pushes its checkpoints; the list is trimmed to the newest 3.
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	sink, err := OpenFile(path, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWriter(ctx, sink, testKey(), Options{Stream: "gw-r", CheckpointEvery: 10, CheckpointInterval: time.Hour, Witness: wit, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	writeN(t, w, 55)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	raw := list(RedisWitnessPrefix + "gw-r")
	if len(raw) != 3 {
		t.Fatalf("list holds %d entries, want the newest 3: %v", len(raw), raw)
	}
	cps, err := wit.Checkpoints(ctx, "gw-r")
	if err != nil {
		t.Fatal(err)
	}
	// Checkpoints every 10 records: seq 10, 21, 32, 43, 54, final 60.
	if got := fmt.Sprint(cps[0].Seq, cps[1].Seq, cps[2].Seq); got != "43 54 60" {
		t.Fatalf("witness seqs %s, want 43 54 60", got)
	}
	if rep := verifyPath(t, path, VerifyOptions{Witness: wit}); !rep.OK() || rep.Streams[0].Witnessed != 60 {
		t.Fatalf("with the witness:\n%s", reportText(rep))
	}
	// Cut the trail's end: the witness catches it.
	ls := lines(t, path)
	writeLines(t, path, ls[:50])
	if rep := verifyPath(t, path, VerifyOptions{Witness: wit}); rep.OK() || rep.Problem.Fault != FaultTruncated {
		t.Fatalf("cut trail against the witness:\n%s", reportText(rep))
	}
	// The writer recorded its stream and key when it began.
	fp := KeyFingerprint(testPub())
	if got := c.Get(ctx, RedisWitnessKeyPrefix+"gw-r").Val(); got != fp {
		t.Fatalf("%sgw-r = %q, want %q", RedisWitnessKeyPrefix, got, fp)
	}
	if got, err := wit.StreamKey(ctx, "gw-r"); err != nil || got != fp {
		t.Fatalf("StreamKey = %q, %v", got, err)
	}
	if got, err := wit.Streams(ctx, fp); err != nil || fmt.Sprint(got) != "[gw-r]" {
		t.Fatalf("Streams = %v, %v", got, err)
	}
	if got, err := wit.StreamKey(ctx, "gw-none"); err != nil || got != "" {
		t.Fatalf("StreamKey of an unknown stream = %q, %v", got, err)
	}
	other := strings.Repeat("ab", 32)
	if err := wit.Begin(ctx, "gw-r", other); err == nil || !strings.Contains(err.Error(), "another key") {
		t.Fatalf("Begin with another key = %v", err)
	}
	if err := wit.Begin(ctx, "gw-r", fp); err != nil {
		t.Fatalf("Begin again with the same key = %v", err)
	}
	if err := wit.Begin(ctx, "gw-s", "not-a-fingerprint"); err == nil {
		t.Fatal("Begin with a bad fingerprint succeeded")
	}
	c.SAdd(ctx, RedisWitnessStreamsPrefix+other, "bad stream")
	if _, err := wit.Streams(ctx, other); err == nil {
		t.Fatal("a junk stream id in the set was accepted")
	}

	// Junk in the list is an error, not skipped.
	c.RPush(ctx, RedisWitnessPrefix+"gw-r", "junk")
	if _, err := wit.Checkpoints(ctx, "gw-r"); err == nil {
		t.Fatal("a junk witness entry was accepted")
	}
	if rep := verifyPath(t, path, VerifyOptions{Witness: wit}); rep.OK() || rep.Problem.Fault != FaultWitness {
		t.Fatalf("junk witness:\n%s", reportText(rep))
	}
}

func (hangingWitness) Begin(ctx context.Context, _, _ string) error      { <-ctx.Done(); return ctx.Err() }
func (hangingWitness) StreamKey(context.Context, string) (string, error) { return "", nil }
func (hangingWitness) Streams(context.Context, string) ([]string, error) { return nil, nil }
