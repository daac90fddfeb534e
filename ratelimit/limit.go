// Package ratelimit is Kavach's per-principal token buckets (issue 18,
// DESIGN.md §11 "Guardrails"): the limit a route declares (`rate 60/m
// per agent burst 10`), the bucket arithmetic, and two stores of buckets,
// Memory (one node) and Redis (every gateway of a cluster). It is
// Caddy-free and knows nothing of tokens: package gateway says who the
// principal of a request is.
//
// # Buckets
//
// A limit of n per window with burst b is a token bucket holding at most
// b tokens, refilled at n per window, one token per request. A principal
// no request was seen from has a full bucket, so b requests pass at once,
// then one per window/n. Burst defaults to n: `rate 5/m` lets five
// requests through at once, then one every 12 s.
//
// The bucket is kept as one number, its theoretical arrival time (GCRA,
// the generic cell rate algorithm, which is a token bucket): tat is when
// the bucket will be full again. A request at time now with interval
// T = window/n passes when max(tat, now) + T − now ≤ b·T, and then tat
// becomes max(tat, now) + T. A bucket whose tat has passed is full, the
// same as no bucket: stores forget it without changing any answer.
//
//	m := ratelimit.NewMemory(ratelimit.MemoryOptions{})
//	l, _ := ratelimit.NewLimit("5/m", ratelimit.PerAgent, 0, "route-a")
//	var res [1]ratelimit.Result
//	m.Take(ctx, []ratelimit.Check{{Limit: l, Principal: "agt_1"}}, res[:])
package ratelimit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"strconv"
	"strings"
	"time"
)

// Per is whose requests a limit counts.
type Per uint8

// Principals a limit can count by.
const (
	// PerAgent counts by the current actor (act.sub: the agent making
	// the call, or the OAuth client).
	PerAgent Per = iota + 1
	// PerRoot counts by the chain's root (kvc.agents[0]): an agent and
	// every child it delegates to share one bucket.
	PerRoot
	// PerUser counts by the user the chain acts for (sub): every agent
	// of a user shares one bucket.
	PerUser
)

func (p Per) String() string {
	switch p {
	case PerAgent:
		return "agent"
	case PerRoot:
		return "root"
	case PerUser:
		return "user"
	}
	return "unknown"
}

// ParsePer reads agent, root or user.
func ParsePer(s string) (Per, error) {
	switch s {
	case "agent":
		return PerAgent, nil
	case "root":
		return PerRoot, nil
	case "user":
		return PerUser, nil
	}
	return 0, fmt.Errorf("per %q: want agent, root or user", s)
}

// Limit is one compiled rate limit of a route. Build it with NewLimit;
// its fields are read-only after that.
type Limit struct {
	// Count requests per Window, in bursts of at most Burst.
	Count  int64
	Window time.Duration
	Burst  int64
	Per    Per
	// Tool, when set, limits only MCP tools/call requests of this tool
	// (the route decides which requests a limit counts).
	Tool string

	// Name is the limit's name in RateLimit-Policy and RateLimit headers
	// and in metrics: "agent", "root" or "user", with "-2", "-3"… for a
	// second limit of the same kind on a route (set by the route).
	Name string
	// ID identifies the limit across gateways: the same route (its
	// resource) and the same limit give the same ID, so gateways of a
	// cluster share its buckets in Redis; anything else gives another.
	ID string

	interval  int64  // ns per token: Window / Count
	tolerance int64  // ns: Burst · interval
	seed      uint64 // ID hashed, the memory store's part of a bucket key
	spec      string // "5/m per agent burst 5"
}

// units are the window units of a rate.
var units = map[string]time.Duration{"s": time.Second, "m": time.Minute, "h": time.Hour}

// ParseRate reads "<n>/<s|m|h>".
func ParseRate(rate string) (int64, time.Duration, error) {
	n, u, ok := strings.Cut(rate, "/")
	w, known := units[u]
	c, err := strconv.ParseInt(n, 10, 64)
	switch {
	case !ok || !known:
		return 0, 0, fmt.Errorf("rate %q: want <n>/s, <n>/m or <n>/h", rate)
	case err != nil || c < 1 || c > MaxCount || n[0] == '+' || n[0] == '0':
		return 0, 0, fmt.Errorf("rate %q: the count is a whole number from 1 to %d", rate, MaxCount)
	}
	return c, w, nil
}

// NewLimit compiles `rate <rate> per <per> [burst <burst>]` of the route
// whose resource is scope (0 burst: the count). The ID depends on scope
// and the limit, never on its place among the route's lines.
func NewLimit(rate string, per Per, burst int64, scope string) (*Limit, error) {
	return NewToolLimit(rate, per, burst, "", scope)
}

// NewToolLimit is NewLimit for the calls of one MCP tool (tool "": every
// request of the route).
func NewToolLimit(rate string, per Per, burst int64, tool, scope string) (*Limit, error) {
	c, w, err := ParseRate(rate)
	if err != nil {
		return nil, err
	}
	if per < PerAgent || per > PerUser {
		return nil, errors.New("a limit counts per agent, root or user")
	}
	if burst == 0 {
		burst = c
	}
	if burst < 1 || burst > MaxCount {
		return nil, fmt.Errorf("burst %d: a whole number from 1 to %d", burst, MaxCount)
	}
	l := &Limit{Count: c, Window: w, Burst: burst, Per: per, Name: per.String(), Tool: tool}
	l.interval = int64(w) / c
	if l.interval < 1 {
		l.interval = 1
	}
	l.tolerance = burst * l.interval
	l.spec = rate + " per " + per.String() + " burst " + strconv.FormatInt(burst, 10)
	if tool != "" {
		l.spec += " tool " + tool
	}
	sum := sha256.Sum256([]byte(scope + "\x00" + l.spec))
	l.ID = hex.EncodeToString(sum[:8])
	l.seed = uint64(sum[8]) | uint64(sum[9])<<8 | uint64(sum[10])<<16 | uint64(sum[11])<<24 |
		uint64(sum[12])<<32 | uint64(sum[13])<<40 | uint64(sum[14])<<48 | uint64(sum[15])<<56
	return l, nil
}

// String is the limit as configured: "5/m per agent burst 5", with
// " tool <name>" for a tool's limit.
func (l *Limit) String() string { return l.spec }

// WindowSeconds is the window in whole seconds (RateLimit-Policy w).
func (l *Limit) WindowSeconds() int64 { return int64(l.Window / time.Second) }

// Check is one bucket a request takes a token from: a limit and the
// principal it counts.
type Check struct {
	Limit *Limit
	// Issuer and Principal name whom the bucket counts: the token's iss
	// and the agent, chain root or user id (ids of two issuers never
	// share a bucket).
	Issuer, Principal string
}

// Result is a bucket's answer.
type Result struct {
	// Allowed: the request took a token. In a Take where another bucket
	// refused, the tokens taken are given back: Allowed then says only
	// that this bucket would have allowed it.
	Allowed bool
	// FirstDenial: the request was refused, and it is the first refusal
	// of this bucket since its last allowed request (the gateway records
	// it; the refusals that follow are counted, see package gateway).
	FirstDenial bool
	// Remaining tokens after the request (RateLimit r).
	Remaining int64
	// RetryAfter, when refused: until the bucket has a token again.
	RetryAfter time.Duration
	// Reset: until the bucket is full again (RateLimit t).
	Reset time.Duration
}

// Store keeps buckets. Take takes one token from every bucket of checks,
// or from none: when one refuses, the others give theirs back. It fills
// res[i] for checks[i] (len(res) ≥ len(checks)). An error means the
// store could not answer (Redis slow or down): the caller decides.
type Store interface {
	Take(ctx context.Context, checks []Check, res []Result) error
}

// ErrUnavailable wraps a store's failure to answer in time.
var ErrUnavailable = errors.New("ratelimit: store unavailable")

// gcra is one bucket's decision at now (ns), its tat before (0: none).
// It returns the new tat (unchanged when refused) and the result.
func gcra(l *Limit, tat, now int64) (int64, Result) {
	if tat < now {
		tat = now
	}
	next := tat + l.interval
	if d := next - now; d > l.tolerance {
		return tat, Result{RetryAfter: time.Duration(d - l.tolerance), Reset: time.Duration(tat - now)}
	}
	return next, Result{Allowed: true, Remaining: (l.tolerance - (next - now)) / l.interval, Reset: time.Duration(next - now)}
}

// keyOf is the memory store's key of a bucket.
func keyOf(seed maphash.Seed, l *Limit, issuer, principal string) uint64 {
	var h maphash.Hash
	h.SetSeed(seed)
	var b [8]byte
	s := l.seed
	for i := range b {
		b[i] = byte(s >> (8 * i))
	}
	_, _ = h.Write(b[:])
	_, _ = h.WriteString(issuer)
	_, _ = h.Write([]byte{0})
	_, _ = h.WriteString(principal)
	return h.Sum64()
}
