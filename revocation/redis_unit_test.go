package revocation

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// Tests of the Redis set on miniredis: the shared conformance suite, the
// wire format and the edges. The real-server behaviour (propagation,
// reconnects, staleness) is in redis_test.go.

var updateRedisGolden = flag.Bool("update-redis", false, "rewrite testdata/redis/*.golden")

// miniSet runs a Redis set on its own miniredis until t ends. It may be
// called from a parallel subtest of t, so it reports with Errorf.
func miniSet(t *testing.T, opts RedisOptions) (*Redis, *miniredis.Miniredis) {
	mr := miniredis.NewMiniRedis()
	if err := mr.Start(); err != nil {
		t.Errorf("miniredis: %v", err)
	}
	// miniredis runs Lua in Go: under -race on a loaded machine a pipeline
	// of scripts can take longer than the default 2 s read timeout.
	opts.URL = "redis://" + mr.Addr() + "?read_timeout=10s"
	if opts.PingInterval == 0 {
		opts.PingInterval = 50 * time.Millisecond
	}
	if opts.MaxStaleness == 0 {
		opts.MaxStaleness = 2 * time.Second
	}
	r, err := NewRedis(opts)
	if err != nil {
		t.Errorf("NewRedis: %v", err)
		return nil, mr
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		_ = r.Close()
		mr.Close()
	})
	wctx, wcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer wcancel()
	if err := r.WaitLoaded(wctx); err != nil {
		t.Errorf("WaitLoaded: %v", err)
	}
	return r, mr
}

// The Redis set behaves as every Set must (memory_test.go).
func TestRedisSet(t *testing.T) {
	t.Parallel()
	testSet(t, func(now func() time.Time) Set {
		r, _ := miniSet(t, RedisOptions{Now: now})
		return r
	})
}

func TestNewRedisOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		opts    RedisOptions
		wantErr string // "" = valid
	}{
		{"plain", RedisOptions{URL: "redis://127.0.0.1:6379/0"}, ""},
		{"TLS with user", RedisOptions{URL: "rediss://kavach:hunter2@redis.example:6380/2"}, ""},
		{"query timeouts", RedisOptions{URL: "redis://127.0.0.1:6379?dial_timeout=1s&read_timeout=500ms"}, ""},
		{"no URL", RedisOptions{}, "URL is required"},
		{"bad scheme", RedisOptions{URL: "http://:hunter2@127.0.0.1:6379"}, "invalid Redis URL"},
		{"unknown parameter", RedisOptions{URL: "redis://:hunter2@127.0.0.1:6379?bogus=1"}, "invalid Redis URL"},
		{"unparsable", RedisOptions{URL: "redis://:hunter2@[::1"}, "invalid Redis URL"},
		{"staleness below two pings", RedisOptions{URL: "redis://127.0.0.1:6379", MaxStaleness: time.Second, PingInterval: time.Second}, "at least twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, err := NewRedis(tt.opts)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("NewRedis() = %v", err)
				}
				if r.Fresh() || r.Status().Loaded {
					t.Error("fresh or loaded before Run")
				}
				_ = r.Close()
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("NewRedis() = %v, want an error containing %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
}

// NewRedis does no I/O (it runs under `caddy validate`) and the set is not
// fresh until Run has loaded.
func TestRedisNotFreshBeforeLoad(t *testing.T) {
	t.Parallel()
	mr := miniredis.RunT(t)
	r, err := NewRedis(RedisOptions{URL: "redis://" + mr.Addr(), PingInterval: 50 * time.Millisecond, MaxStaleness: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if n := mr.TotalConnectionCount(); n != 0 {
		t.Errorf("NewRedis made %d connections", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := r.WaitLoaded(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitLoaded without Run = %v, want DeadlineExceeded", err)
	}
	if r.Fresh() {
		t.Error("fresh without a load")
	}

	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(runCtx); close(done) }()
	wctx, wcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer wcancel()
	if err := r.WaitLoaded(wctx); err != nil {
		t.Fatal(err)
	}
	if !r.Fresh() {
		t.Error("not fresh after the load")
	}
	if st := r.Status(); !st.Loaded || st.LastLoad.IsZero() || st.LastPong.IsZero() || !st.EpochMissing {
		t.Errorf("Status() = %+v, want loaded, times set, epoch missing", st)
	}

	// Close stops Run; the set is no longer fresh once MaxStaleness passes.
	_ = r.Close()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after Close")
	}
	stop()
	deadline := time.Now().Add(3 * time.Second)
	for r.Fresh() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if r.Fresh() {
		t.Error("still fresh 3 s after Close")
	}
}

// The keys, values and messages Revoke writes, as a golden file: a change
// of the wire format is a visible diff.
func TestRedisWireFormat(t *testing.T) {
	t.Parallel()
	now := time.Date(2099, 1, 1, 12, 0, 0, 0, time.UTC) // keys live in miniredis' real clock
	r, mr := miniSet(t, RedisOptions{Now: func() time.Time { return now }})
	sub := redis.NewClient(&redis.Options{Addr: mr.Addr(), Protocol: 2})
	defer sub.Close()
	ctx := context.Background()
	ps := sub.Subscribe(ctx, RedisChannel)
	defer ps.Close()
	if _, err := ps.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	entries := []Entry{
		{ID: "agt_89", Until: now.Add(time.Hour)},
		{ID: "usr_alice", Cutoff: CutoffSubject, Before: now.Add(-time.Minute), Until: now.Add(time.Hour)},
		{ID: "https://app.example/cimd.json", Cutoff: CutoffClient, Before: now, Until: now.Add(90 * time.Minute)},
		{ID: "k1", Cutoff: CutoffKey, Before: now, Until: now.Add(time.Hour).Add(500 * time.Millisecond)},
		{ID: "tok_default_until"},
	}
	var got strings.Builder
	for _, e := range entries {
		if err := r.Revoke(ctx, e); err != nil {
			t.Fatal(err)
		}
		msg, err := ps.ReceiveMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got.WriteString("PUBLISH " + msg.Channel + " " + msg.Payload + "\n")
	}
	keys := mr.Keys()
	slices.Sort(keys)
	for _, k := range keys {
		v, _ := mr.Get(k)
		got.WriteString("SET " + k + " " + v + " PXAT " + pxat(mustDecode(t, v).Until) + "\n")
	}
	path := filepath.Join("testdata", "redis", "wire.golden")
	if *updateRedisGolden {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update-redis to create it)", err)
	}
	if got.String() != string(want) {
		t.Errorf("wire format changed (run with -update-redis if intended)\ngot:\n%s\nwant:\n%s", got.String(), want)
	}
}

func mustDecode(t *testing.T, v string) Entry {
	t.Helper()
	e, err := decodeStored(v, time.Time{}, time.Hour, 0)
	if err != nil {
		t.Fatalf("stored value %s: %v", v, err)
	}
	return e
}

// Values that are not entries are skipped and logged without their
// content; an entry without until gets the default one (it still revokes).
func TestRedisInvalidEntries(t *testing.T) {
	t.Parallel()
	mr := miniredis.RunT(t)
	until := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	bad := map[string]string{
		RedisKeyPrefix + "id:junk":    "SECRET not json",
		RedisKeyPrefix + "id:badid":   `{"id":"SECRET id","until":"` + until + `"}`,
		RedisKeyPrefix + "id:extra":   `{"id":"agt_y","until":"` + until + `","SECRET":"1"}`,
		RedisKeyPrefix + "sub:before": `{"id":"usr_b","cutoff":"sub","until":"` + until + `"}`,
		RedisKeyPrefix + "id:huge":    `{"id":"` + strings.Repeat("x", MaxBodyBytes) + `"}`,
	}
	for k, v := range bad {
		if err := mr.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := mr.Set(RedisKeyPrefix+"id:agt_ok", `{"id":"agt_ok","until":"`+until+`"}`); err != nil {
		t.Fatal(err)
	}
	if err := mr.Set(RedisKeyPrefix+"id:agt_nountil", `{"id":"agt_nountil"}`); err != nil {
		t.Fatal(err)
	}
	var buf syncBuffer
	r, err := NewRedis(RedisOptions{URL: "redis://" + mr.Addr(), Logger: slog.New(slog.NewTextHandler(&buf, nil)),
		PingInterval: 50 * time.Millisecond, MaxStaleness: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)
	defer r.Close()
	if err := r.WaitLoaded(ctx); err != nil {
		t.Fatal(err)
	}
	mr.Publish(RedisChannel, "SECRET message")
	mr.Publish(RedisChannel, `{"id":"agt_msg","until":"`+until+`"}`)
	waitFor(t, 2*time.Second, "the valid message", func() bool { return r.IsRevoked("agt_msg") })

	if !r.IsRevoked("agt_ok") || !r.IsRevoked("agt_nountil") {
		t.Error("valid entries next to invalid ones not loaded")
	}
	if r.IsRevoked("agt_y") || r.RevokedBefore(CutoffSubject, "usr_b", 0) {
		t.Error("an invalid entry was applied")
	}
	if got := r.Status().Entries; got != 3 {
		t.Errorf("Entries = %d, want 3", got)
	}
	log := buf.String()
	if n := strings.Count(log, "ignoring an invalid entry"); n != len(bad)+1 {
		t.Errorf("%d warnings for %d invalid values; log:\n%s", n, len(bad)+1, log)
	}
	if strings.Contains(log, "SECRET") {
		t.Errorf("the log shows a stored value:\n%s", log)
	}
}

// The URL's password never reaches the log or an error.
func TestRedisNoSecretInLogs(t *testing.T) {
	t.Parallel()
	mr := miniredis.RunT(t)
	mr.RequireAuth("right")
	var buf syncBuffer
	url := "redis://:wrongpass@" + mr.Addr()
	r, err := NewRedis(RedisOptions{URL: url, Logger: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})),
		PingInterval: 50 * time.Millisecond, MaxStaleness: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)
	defer r.Close()
	waitFor(t, 5*time.Second, "a failed connection logged", func() bool { return strings.Contains(buf.String(), "reconnecting") })
	rerr := r.Revoke(ctx, Entry{ID: "agt_x", Until: time.Now().Add(time.Hour)})
	_, perr := PublishRevocation(ctx, url, Entry{ID: "agt_x"}, 0, 0)
	for _, err := range []error{rerr, perr} {
		if err == nil || strings.Contains(err.Error(), "wrongpass") {
			t.Errorf("error = %v, want a failure without the password", err)
		}
	}
	if strings.Contains(buf.String(), "wrongpass") {
		t.Errorf("the log shows the password:\n%s", buf.String())
	}
	if r.Fresh() {
		t.Error("fresh without ever loading")
	}
}

// When Redis fails, Revoke reports it and still revokes locally.
func TestRedisRevokeRedisDown(t *testing.T) {
	t.Parallel()
	r, mr := miniSet(t, RedisOptions{})
	mr.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := r.Revoke(ctx, Entry{ID: "agt_x", Until: time.Now().Add(time.Hour)})
	if err == nil {
		t.Fatal("Revoke succeeded with Redis down")
	}
	if errors.Is(err, ErrInvalidEntry) {
		t.Errorf("Revoke = %v, an entry error for a Redis failure", err)
	}
	if !r.IsRevoked("agt_x") {
		t.Error("not revoked locally when Redis failed")
	}
}

// Revoke fills a missing Until; PublishRevocation refuses a past one.
func TestRedisDefaultUntil(t *testing.T) {
	t.Parallel()
	c := newClock()
	c.ns.Store(time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	r, mr := miniSet(t, RedisOptions{Now: c.Now, MaxLifetime: 10 * time.Minute, Leeway: 5 * time.Second})
	ctx := context.Background()
	if err := r.Revoke(ctx, Entry{ID: "agt_x"}); err != nil {
		t.Fatal(err)
	}
	later := c.Now().Add(time.Hour)
	if err := r.Revoke(ctx, Entry{ID: "usr_a", Cutoff: CutoffSubject, Before: later}); err != nil {
		t.Fatal(err)
	}
	v, _ := mr.Get(RedisKeyPrefix + "id:agt_x")
	if got, want := mustDecode(t, v).Until, c.Now().Add(10*time.Minute+10*time.Second); !got.Equal(want) {
		t.Errorf("default Until = %v, want %v", got, want)
	}
	v, _ = mr.Get(RedisKeyPrefix + "sub:usr_a")
	if got, want := mustDecode(t, v).Until, later.Add(10*time.Minute+10*time.Second); !got.Equal(want) {
		t.Errorf("default Until of a future cutoff = %v, want %v", got, want)
	}
	c.Advance(10*time.Minute + 10*time.Second - 1)
	if !r.IsRevoked("agt_x") {
		t.Error("expired before its default Until")
	}
	c.Advance(1)
	if r.IsRevoked("agt_x") {
		t.Error("live after its default Until")
	}

	_, err := PublishRevocation(ctx, "redis://"+mr.Addr(), Entry{ID: "agt_y", Until: time.Now().Add(-time.Second)}, 0, 0)
	if fe, ok := errors.AsType[*FieldError](err); !ok || fe.Field != "until" {
		t.Errorf("PublishRevocation(past until) = %v, want a FieldError for until", err)
	}
	if mr.Exists(RedisKeyPrefix + "id:agt_y") {
		t.Error("a refused entry was written")
	}
}

// Reseed writes the live entries without shortening any, then a new epoch;
// an invalid entry fails it before anything is written.
func TestRedisReseed(t *testing.T) {
	t.Parallel()
	now := time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
	r, mr := miniSet(t, RedisOptions{Now: func() time.Time { return now }})
	ctx := context.Background()
	if err := r.Revoke(ctx, Entry{ID: "agt_long", Until: now.Add(3 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	err := r.Reseed(ctx, []Entry{{ID: "agt_a", Until: now.Add(time.Hour)}, {ID: "bad id", Until: now.Add(time.Hour)}})
	if !errors.Is(err, ErrInvalidEntry) || mr.Exists(RedisKeyPrefix+"id:agt_a") || mr.Exists(RedisEpochKey) {
		t.Fatalf("Reseed with an invalid entry = %v; wrote agt_a %v, epoch %v", err, mr.Exists(RedisKeyPrefix+"id:agt_a"), mr.Exists(RedisEpochKey))
	}

	var entries []Entry
	for i := range 600 { // more than one batch
		entries = append(entries, Entry{ID: "tok_" + string(rune('a'+i%26)) + strings.Repeat("x", i/26), Until: now.Add(time.Hour)})
	}
	entries = append(entries,
		Entry{ID: "agt_long", Until: now.Add(time.Hour)},                                                  // shorter than Redis holds
		Entry{ID: "usr_a", Cutoff: CutoffSubject, Before: now.Add(-time.Hour), Until: now.Add(time.Hour)}, // merged with the next
		Entry{ID: "usr_a", Cutoff: CutoffSubject, Before: now.Add(-time.Minute), Until: now.Add(time.Minute)},
		Entry{ID: "agt_gone", Until: now.Add(-time.Second)}, // expired: skipped
	)
	if err := r.Reseed(ctx, entries); err != nil {
		t.Fatal(err)
	}
	epoch1, _ := mr.Get(RedisEpochKey)
	if epoch1 == "" {
		t.Fatal("no epoch after Reseed")
	}
	v, _ := mr.Get(RedisKeyPrefix + "id:agt_long")
	if got := mustDecode(t, v).Until; !got.Equal(now.Add(3 * time.Hour)) {
		t.Errorf("Reseed shortened agt_long to %v", got)
	}
	v, _ = mr.Get(RedisKeyPrefix + "sub:usr_a")
	if e := mustDecode(t, v); !e.Before.Equal(now.Add(-time.Minute)) || !e.Until.Equal(now.Add(time.Hour)) {
		t.Errorf("usr_a stored %+v, want the later before and until", e)
	}
	if mr.Exists(RedisKeyPrefix + "id:agt_gone") {
		t.Error("an expired entry was reseeded")
	}
	if n := len(mr.Keys()); n != 600+3 {
		t.Errorf("%d keys after Reseed, want %d", n, 600+3)
	}
	if err := r.Reseed(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if epoch2, _ := mr.Get(RedisEpochKey); epoch2 == epoch1 || epoch2 == "" {
		t.Errorf("epoch %q after a second Reseed, was %q: want a new one", epoch2, epoch1)
	}
}

// Lookups and Fresh are on the request path: no allocation. Run is not
// started (its pings would count): the set is marked loaded by hand.
// Not parallel: AllocsPerRun counts the whole process's allocations.
func TestRedisLookupsDoNotAllocate(t *testing.T) {
	r, err := NewRedis(RedisOptions{URL: "redis://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.mem.Revoke(context.Background(), Entry{ID: "tok_1", Until: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	r.loaded.Store(true)
	r.pong(r.mono())
	tests := []struct {
		name string
		f    func() bool
		want bool
	}{
		{"IsRevoked", func() bool { return r.IsRevoked("tok_1") }, true},
		{"RevokedBefore", func() bool { return r.RevokedBefore(CutoffSubject, "usr_a", 0) }, false},
		{"Fresh", r.Fresh, true},
	}
	for _, tt := range tests {
		var got bool
		if allocs := testing.AllocsPerRun(1000, func() { got = tt.f() }); allocs != 0 {
			t.Errorf("%s: %v allocs per call, want 0", tt.name, allocs)
		}
		if got != tt.want {
			t.Errorf("%s = %v, want %v", tt.name, got, tt.want)
		}
	}
}
