package revocation

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// storeScript writes one entry without ever shortening one: it SETs the
// key only if it still holds what the writer merged with (ARGV[1], ""
// for absent), and otherwise returns what it holds so that the writer can
// merge again. A compare-and-set rather than a merge in Lua keeps the JSON
// and the merge rule in Go, next to Memory's; and the common case, a new
// key, costs one round trip, PUBLISH included.
//
// KEYS[1] the entry's key; ARGV: expected value, new value, PXAT in Unix
// ms, channel, "1" to PUBLISH the new value. Returns {1} when written,
// {0, current value} when not.
var storeScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if not cur then cur = '' end
if cur ~= ARGV[1] then return {0, cur} end
redis.call('SET', KEYS[1], ARGV[2], 'PXAT', ARGV[3])
if ARGV[5] == '1' then redis.call('PUBLISH', ARGV[4], ARGV[2]) end
return {1}
`)

const (
	// storeAttempts bounds the compare-and-set loop: each failure means
	// another writer changed the key in between.
	storeAttempts = 10
	// reseedBatch is how many entries Reseed reads with one MGET and writes
	// with one pipeline.
	reseedBatch = 256
)

// redisKey is the key of e (see RedisKeyPrefix).
func redisKey(e Entry) string {
	if e.Cutoff == "" {
		return RedisKeyPrefix + "id:" + e.ID
	}
	return RedisKeyPrefix + string(e.Cutoff) + ":" + e.ID
}

// prepareEntry gives e its default Until when it has none (DefaultUntil from
// now, or from Before for a cutoff whose Before is later, as the admin
// handler does), puts its times in UTC and validates it, including that its
// times can be written in RFC 3339.
func prepareEntry(e Entry, now time.Time, maxLifetime, leeway time.Duration) (Entry, error) {
	if e.Until.IsZero() {
		from := now
		if e.Cutoff != "" && e.Before.After(from) {
			from = e.Before
		}
		e.Until = DefaultUntil(from, maxLifetime, leeway)
	}
	e.Until = e.Until.UTC()
	if !e.Before.IsZero() {
		e.Before = e.Before.UTC()
	}
	if err := e.Validate(); err != nil {
		return Entry{}, err
	}
	// RFC 3339 has four-digit years.
	if e.Until.Year() > 9999 {
		return Entry{}, &FieldError{"until", "must be before the year 10000"}
	}
	if !e.Before.IsZero() && e.Before.Year() < 0 {
		return Entry{}, &FieldError{"before", "must be after the year 0"}
	}
	return e, nil
}

// decodeStored reads an entry from Redis with the admin handler's strict
// decoder. A value without "until" gets the default one.
func decodeStored(value string, now time.Time, maxLifetime, leeway time.Duration) (Entry, error) {
	if len(value) > MaxBodyBytes {
		return Entry{}, &FieldError{"body", "must be at most " + strconv.Itoa(MaxBodyBytes) + " bytes"}
	}
	e, _, fe := decodeEntry([]byte(value))
	if fe != nil {
		return Entry{}, fe
	}
	return prepareEntry(e, now, maxLifetime, leeway)
}

// merged is what a key holds after e is written over old: the later Until
// and, for a cutoff, the later Before, unless old has expired (the rule of
// Memory.Revoke).
func merged(old, e Entry, now time.Time) Entry {
	if old.ID != e.ID || old.Cutoff != e.Cutoff || !old.Until.After(now) {
		return e
	}
	if old.Until.After(e.Until) {
		e.Until = old.Until
	}
	if e.Cutoff != "" && old.Before.After(e.Before) {
		e.Before = old.Before
	}
	return e
}

// pxat is until in Unix milliseconds, rounded up so that Redis never
// forgets an entry before its Until.
func pxat(until time.Time) string {
	ms := until.UnixMilli()
	if until.After(time.UnixMilli(ms)) {
		ms++
	}
	return strconv.FormatInt(ms, 10)
}

// writeSpec is what storeEntry needs besides the entry.
type writeSpec struct {
	now         time.Time
	maxLifetime time.Duration // for a stored value without until
	leeway      time.Duration
	publish     bool
}

// storeEntry writes e (prepared, live) to its key, merged with what the
// key holds, and returns the entry as stored.
func storeEntry(ctx context.Context, c redis.Scripter, e Entry, w writeSpec) (Entry, error) {
	key := redisKey(e)
	flag := "0"
	if w.publish {
		flag = "1"
	}
	want, expect := e, ""
	for range storeAttempts {
		val, err := json.Marshal(want)
		if err != nil {
			return Entry{}, err // unreachable: prepareEntry checked the years
		}
		res, err := storeScript.Run(ctx, c, []string{key}, expect, val, pxat(want.Until), RedisChannel, flag).Slice()
		if err != nil {
			return Entry{}, err
		}
		cur, written := storeResult(res)
		if written {
			return want, nil
		}
		want, expect = e, cur
		if old, err := decodeStored(cur, w.now, w.maxLifetime, w.leeway); err == nil {
			want = merged(old, e, w.now)
		}
	}
	return Entry{}, errors.New("the key kept changing; retry")
}

// storeResult reads storeScript's reply.
func storeResult(res []any) (current string, written bool) {
	if len(res) > 0 {
		if n, ok := res[0].(int64); ok && n == 1 {
			return "", true
		}
	}
	if len(res) > 1 {
		current, _ = res[1].(string)
	}
	return current, false
}

// Reseed writes every live entry of entries to Redis, never shortening
// what Redis holds, then sets RedisEpochKey to a new random value. The
// issuer calls it with its store's revocations when the epoch is missing
// (or at start). Nothing is published: running gateways see the new epoch
// within a PingInterval and load everything again. The entries are also
// applied to the local set.
//
// Entries without Until get the default one; an invalid entry fails the
// whole call before anything is written.
func (r *Redis) Reseed(ctx context.Context, entries []Entry) error {
	now := r.now()
	spec := writeSpec{now: now, maxLifetime: r.maxLifetime, leeway: r.leeway}
	byKey := make(map[string]Entry, len(entries))
	var keys []string
	for i, e := range entries {
		e, err := prepareEntry(e, now, r.maxLifetime, r.leeway)
		if err != nil {
			return fmt.Errorf("revocation: reseed entry %d: %w", i, err)
		}
		if !e.Until.After(now) {
			continue
		}
		k := redisKey(e)
		if old, ok := byKey[k]; ok {
			e = merged(old, e, now)
		} else {
			keys = append(keys, k)
		}
		byKey[k] = e
	}
	fail := func(err error) error { return fmt.Errorf("revocation: reseed Redis at %s: %w", r.addr, err) }
	if len(keys) > 0 {
		if err := storeScript.Load(ctx, r.client).Err(); err != nil {
			return fail(err)
		}
	}
	for len(keys) > 0 {
		batch := keys[:min(len(keys), reseedBatch)]
		keys = keys[len(batch):]
		if err := r.reseedBatch(ctx, batch, byKey, spec); err != nil {
			return fail(err)
		}
	}
	if err := r.client.Set(ctx, RedisEpochKey, rand.Text(), 0).Err(); err != nil {
		return fail(err)
	}
	return nil
}

// reseedBatch writes the entries of keys with one MGET and one pipeline of
// compare-and-sets; a key that changed in between goes through storeEntry.
func (r *Redis) reseedBatch(ctx context.Context, keys []string, byKey map[string]Entry, spec writeSpec) error {
	vals, err := r.client.MGet(ctx, keys...).Result()
	if err != nil {
		return err
	}
	pipe := r.client.Pipeline()
	wants := make([]Entry, len(keys))
	cmds := make([]*redis.Cmd, len(keys))
	for i, k := range keys {
		e := byKey[k]
		want, expect := e, ""
		if cur, ok := vals[i].(string); ok {
			expect = cur
			if old, err := decodeStored(cur, spec.now, spec.maxLifetime, spec.leeway); err == nil {
				want = merged(old, e, spec.now)
			}
		}
		val, err := json.Marshal(want)
		if err != nil {
			return err
		}
		wants[i] = want
		cmds[i] = storeScript.EvalSha(ctx, pipe, []string{k}, expect, val, pxat(want.Until), RedisChannel, "0")
	}
	_, _ = pipe.Exec(ctx) // each command's result is read below
	for i, cmd := range cmds {
		stored := wants[i]
		res, err := cmd.Slice()
		if err != nil && !redis.HasErrorPrefix(err, "NOSCRIPT") {
			return err
		}
		if _, written := storeResult(res); err != nil || !written {
			if stored, err = storeEntry(ctx, r.client, byKey[keys[i]], spec); err != nil {
				return err
			}
		}
		_ = r.mem.Revoke(context.Background(), stored)
	}
	return nil
}

// PublishRevocation writes e to the Redis at url as Revoke does, for
// `kavach revoke --redis URL` (no gateway in this process). A zero Until
// gets DefaultUntil(now, maxLifetime, leeway) (from Before for a later
// cutoff); an Until already past is refused. maxLifetime and leeway
// default to DefaultMaxLifetime and DefaultLeeway when not positive. It
// returns the entry as stored: with the later Until (and Before) when the
// key already held a longer revocation. Errors never contain the URL.
func PublishRevocation(ctx context.Context, url string, e Entry, maxLifetime, leeway time.Duration) (Entry, error) {
	if maxLifetime <= 0 {
		maxLifetime = DefaultMaxLifetime
	}
	if leeway <= 0 {
		leeway = DefaultLeeway
	}
	o, err := redisOptions(url)
	if err != nil {
		return Entry{}, err
	}
	now := time.Now()
	e, err = prepareEntry(e, now, maxLifetime, leeway)
	if err != nil {
		return Entry{}, err
	}
	if !e.Until.After(now) {
		return Entry{}, &FieldError{"until", "must be in the future"}
	}
	c := redis.NewClient(o)
	defer c.Close()
	stored, err := storeEntry(ctx, c, e, writeSpec{now: now, maxLifetime: maxLifetime, leeway: leeway, publish: true})
	if err != nil {
		return Entry{}, fmt.Errorf("revocation: Redis at %s: %w", o.Addr, err)
	}
	return stored, nil
}
