package integration

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kavachgate/kavach/revocation"
	"github.com/kavachgate/kavach/token"
)

// TestClusterRevocation runs two (sometimes three) `kavach run` gateways
// sharing a real redis-server, each with max_staleness 2s, and checks the
// revocation contract of DESIGN.md §5 end to end: what is revoked through
// Redis is rejected by every gateway, entries live until their until,
// gateways fail closed (503) when they cannot know, and recover on their
// own.
//
// Timings are logged, never asserted, beyond generous deadlines.
func TestClusterRevocation(t *testing.T) {
	c := newRevCluster(t, 2)
	c.waitReady(t)
	gw1, gw2 := c.gws[0], c.gws[1]
	var latencies []time.Duration
	record := func(t *testing.T, what string, lat []time.Duration) {
		t.Helper()
		t.Logf("propagation of %s (revoke returned → first 401): %s %v, %s %v", what, gw1.name, lat[0], gw2.name, lat[1])
		latencies = append(latencies, lat...)
	}

	t.Run("root grant revoked rejects a depth-3 descendant on both gateways", func(t *testing.T) {
		root, mid, leaf := token.NewID(token.PrefixGrant), token.NewID(token.PrefixGrant), token.NewID(token.PrefixGrant)
		a1, a2, a3 := token.NewID(token.PrefixAgent), token.NewID(token.PrefixAgent), token.NewID(token.PrefixAgent)
		deep := c.mint(t, "--sub", "usr_c1", "--agent", a1, "--agent", a2, "--agent", a3,
			"--chain", root, "--chain", mid, "--chain", leaf)
		// The same agents delegated under another root grant: untouched.
		sibling := c.mint(t, "--sub", "usr_c1", "--agent", a1, "--agent", a2, "--agent", a3,
			"--chain", token.NewID(token.PrefixGrant), "--chain", token.NewID(token.PrefixGrant), "--chain", token.NewID(token.PrefixGrant))
		for _, g := range c.gws {
			// In each gateway's verify cache before the revocation.
			c.expectAllowed(t, g, deep, "depth-3 token before the revocation")
			c.expectAllowed(t, g, sibling, "sibling token")
		}
		e := c.revoke(t, root)
		start := time.Now()
		if e.ID != root || e.Cutoff != "" || !e.Until.After(start) {
			t.Errorf("revoke printed %+v, want an id revocation of %s with a future until", e, root)
		}
		record(t, "a root grant", c.propagation(t, start, deep))
		for _, g := range c.gws {
			c.expectRevoked(t, g, deep, "depth-3 token of the revoked root grant")
			c.expectAllowed(t, g, sibling, "token of another root grant")
		}
	})

	t.Run("agent revoked: every token naming it is rejected on both", func(t *testing.T) {
		bad, x, y := token.NewID(token.PrefixAgent), token.NewID(token.PrefixAgent), token.NewID(token.PrefixAgent)
		good := token.NewID(token.PrefixAgent)
		naming := map[string]string{
			"alone":         c.mint(t, "--sub", "usr_c2", "--agent", bad),
			"as root":       c.mint(t, "--sub", "usr_c2", "--agent", bad, "--agent", x),
			"in the middle": c.mint(t, "--sub", "usr_c2", "--agent", y, "--agent", bad, "--agent", x),
			"as actor":      c.mint(t, "--sub", "usr_c2", "--agent", y, "--agent", bad),
		}
		others := map[string]string{
			"other agent alone":        c.mint(t, "--sub", "usr_c2", "--agent", good),
			"other agent, same parent": c.mint(t, "--sub", "usr_c2", "--agent", y, "--agent", good),
		}
		for _, g := range c.gws {
			for what, tok := range naming {
				c.expectAllowed(t, g, tok, "before the revocation, token naming the agent "+what)
			}
		}
		c.revoke(t, bad)
		start := time.Now()
		record(t, "an agent", c.propagation(t, start, naming["in the middle"]))
		for _, g := range c.gws {
			for what, tok := range naming {
				c.expectRevoked(t, g, tok, "token naming the revoked agent "+what)
			}
			for what, tok := range others {
				c.expectAllowed(t, g, tok, what)
			}
		}
	})

	t.Run("entries expire at until", func(t *testing.T) {
		agent := token.NewID(token.PrefixAgent)
		tok := c.mint(t, "--sub", "usr_c3", "--agent", agent, "--ttl", "10m")
		for _, g := range c.gws {
			c.expectAllowed(t, g, tok, "before the revocation")
		}
		until := time.Now().Truncate(time.Second).Add(5 * time.Second)
		e := c.revoke(t, agent, "--until", until.UTC().Format(time.RFC3339))
		start := time.Now()
		if !e.Until.Equal(until) {
			t.Errorf("stored until %v, want %v", e.Until, until)
		}
		record(t, "an agent with until", c.propagation(t, start, tok))
		entries := map[string]int{}
		for _, g := range c.gws {
			entries[g.name] = g.ready(t).Entries
		}
		// DESIGN.md §5: SET kavach:rev:… PXAT <until>.
		key := revocation.RedisKeyPrefix + "id:" + agent
		ms, err := c.redis.client(t).Do(context.Background(), "PEXPIRETIME", key).Int64()
		if err != nil || ms != until.UnixMilli() {
			t.Errorf("PEXPIRETIME %s = %d (%v), want %d (the until)", key, ms, err, until.UnixMilli())
		}
		// Rejected until the until, accepted again after it. A 200 that
		// arrives before the until would be a shortened revocation.
		for _, g := range c.gws {
			var accepted time.Time
			waitUntil(t, time.Until(until)+3*time.Second, g.name+" accepts the token after its revocation's until", func() bool {
				r := g.get(t, tok)
				got := time.Now()
				switch {
				case r.Status == 200:
					if got.Before(until) {
						t.Fatalf("%s accepted the token %v before the revocation's until", g.name, until.Sub(got))
					}
					accepted = got
					return true
				case r.Status != 401:
					t.Fatalf("%s: status %d body %q, want 401 then 200", g.name, r.Status, r.Body)
				}
				return false
			})
			t.Logf("%s accepts the token again %v after the until", g.name, accepted.Sub(until))
			c.expectAllowed(t, g, tok, "after the until")
			if z := g.ready(t); z.Entries != entries[g.name]-1 {
				t.Errorf("%s /readyz entries %d after the until, want %d (one fewer)", g.name, z.Entries, entries[g.name]-1)
			}
		}
	})

	t.Run("a gateway started after the revocation rejects", func(t *testing.T) {
		agent := token.NewID(token.PrefixAgent)
		tok := c.mint(t, "--sub", "usr_c4", "--agent", agent)
		other := c.mint(t, "--sub", "usr_c4", "--agent", token.NewID(token.PrefixAgent))
		c.revoke(t, agent)
		record(t, "an agent (before a late gateway)", c.propagation(t, time.Now(), tok))
		late := c.startGateway(t, "gw3-late")
		// The very first request: the gateway has loaded Redis before it
		// answers (or would answer 503), never 200.
		c.expectRevoked(t, late, tok, "first request to a gateway started after the revocation")
		c.expectAllowed(t, late, other, "an unrevoked token on the late gateway")
		if z := late.ready(t); z.Status != 200 || z.Entries < 1 {
			t.Errorf("late gateway /readyz %+v, want 200 with the loaded entries", z)
		}
	})

	t.Run("issued-before cutoff for a user", func(t *testing.T) {
		user, other := token.NewID(token.PrefixUser), token.NewID(token.PrefixUser)
		a1, a2 := token.NewID(token.PrefixAgent), token.NewID(token.PrefixAgent)
		old1 := c.mint(t, "--sub", user, "--agent", a1)
		old2 := c.mint(t, "--sub", user, "--agent", a2, "--agent", a1)
		otherTok := c.mint(t, "--sub", other, "--agent", a1)
		for _, g := range c.gws {
			c.expectAllowed(t, g, old1, "user's token before the cutoff")
			c.expectAllowed(t, g, old2, "user's delegated token before the cutoff")
		}
		e := c.revoke(t, "--before", "now", "--sub", user)
		start := time.Now()
		if e.Cutoff != revocation.CutoffSubject || e.ID != user || e.Before.IsZero() {
			t.Fatalf("revoke printed %+v, want a sub cutoff for %s", e, user)
		}
		record(t, "a sub cutoff", c.propagation(t, start, old1))
		for _, g := range c.gws {
			c.expectRevoked(t, g, old1, "user's token issued before the cutoff")
			c.expectRevoked(t, g, old2, "user's delegated token issued before the cutoff")
			c.expectAllowed(t, g, otherTok, "another user's token (same agent)")
		}
		// A token issued at or after the cutoff (iat is whole seconds).
		time.Sleep(time.Until(e.Before) + 50*time.Millisecond)
		fresh := c.mint(t, "--sub", user, "--agent", a1)
		for _, g := range c.gws {
			c.expectAllowed(t, g, fresh, "user's token minted after the cutoff")
			c.expectRevoked(t, g, old1, "user's old token, after a new one was minted")
		}
	})

	t.Run("propagation latency", func(t *testing.T) {
		// Three revocations written to Redis by `kavach revoke --redis`
		// (both gateways remote), three through gw1's admin listener (gw2
		// hears it through Redis).
		var viaAdmin []time.Duration
		for i := range 6 {
			agent := token.NewID(token.PrefixAgent)
			tok := c.mint(t, "--sub", "usr_lat", "--agent", agent)
			for _, g := range c.gws {
				c.expectAllowed(t, g, tok, "before the revocation")
			}
			if i%2 == 0 {
				c.revoke(t, agent)
				record(t, fmt.Sprintf("agent #%d via --redis", i+1), c.propagation(t, time.Now(), tok))
				continue
			}
			args := []string{"revoke", "--admin", gw1.admin, agent}
			out, errOut, err := kavachEnv(c.keyDir, []string{"KAVACH_ADMIN_TOKEN=" + c.adminToken}, args...)
			start := time.Now()
			if err != nil || !strings.Contains(out, agent) {
				t.Fatalf("kavach %v: %v\nstdout: %s\nstderr: %s", args, err, out, errOut)
			}
			// gw1 applied it before answering.
			c.expectRevoked(t, gw1, tok, "token revoked through this gateway's admin listener")
			lat := c.propagation(t, start, tok, gw2)
			t.Logf("propagation of agent #%d via gw1's admin listener to gw2: %v", i+1, lat[0])
			viaAdmin = append(viaAdmin, lat[0])
		}
		for what, l := range map[string][]time.Duration{"--redis, to either gateway": latencies, "gw1 admin listener, to gw2": viaAdmin} {
			sorted := slices.Clone(l)
			slices.Sort(sorted)
			t.Logf("propagation (%s) over %d samples: min %v, median %v, max %v",
				what, len(sorted), sorted[0], sorted[len(sorted)/2], sorted[len(sorted)-1])
		}
	})

	t.Run("redis down: 503 after max_staleness, then recovery without restart", testRedisDownAndBack)
	t.Run("redis restarted empty: entries kept, epoch_missing, re-seed", testRedisRestartedEmpty)
	t.Run("half-open connection: 503 within max_staleness, then recovery", testRedisPaused)
}

// waitPong waits until every gateway, in one round of /readyz, heard
// Redis within the last 0.75 s, so that what follows starts with more
// than half of max_staleness ahead on each. (Pings are every second, so
// two gateways are both under 0.75 s for at least a quarter of the time.)
func (c *revCluster) waitPong(t *testing.T) {
	t.Helper()
	waitUntil(t, 5*time.Second, "every gateway heard Redis within 0.75s", func() bool {
		for _, g := range c.gws {
			z := g.ready(t)
			if z.Status != 200 || (z.LastSyncAge != nil && *z.LastSyncAge >= 0.75) {
				return false
			}
		}
		return true
	})
}

// waitUnavailable polls g with tok until it answers 503, allowing only 200
// before, and fails after limit. It returns when the 503 came.
func (c *revCluster) waitUnavailable(t *testing.T, g *revGateway, tok string, limit time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		c.up.take()
		r := g.get(t, tok)
		switch r.Status {
		case 503:
			at := time.Now()
			c.expectUnavailable(t, r, g, "request while Redis does not answer")
			return at
		case 200:
		default:
			t.Fatalf("%s: status %d body %q while waiting for 503", g.name, r.Status, r.Body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still answers 200 %v after Redis stopped answering (max_staleness 2s)", g.name, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// testRedisDownAndBack: Redis killed → traffic flows until max_staleness,
// then 503 with Retry-After and /readyz 503; Redis restarted on the same
// port, a revocation written while the gateways reconnect → both recover
// without a restart and apply it.
func testRedisDownAndBack(t *testing.T) {
	c := newRevCluster(t, 2)
	c.waitReady(t)
	good := c.mint(t, "--sub", "usr_c5", "--agent", token.NewID(token.PrefixAgent))
	laterAgent := token.NewID(token.PrefixAgent)
	later := c.mint(t, "--sub", "usr_c5", "--agent", laterAgent)
	for _, g := range c.gws {
		c.expectAllowed(t, g, good, "before Redis stops")
		c.expectAllowed(t, g, later, "before Redis stops")
	}

	c.waitPong(t)
	c.redis.kill()
	killed := time.Now()
	// Within max_staleness the set is still trusted.
	for _, g := range c.gws {
		if r := g.get(t, good); r.Status != 200 || time.Since(killed) > 2*time.Second {
			t.Errorf("%s right after Redis died (%v): status %d body %q, want 200 until max_staleness", g.name, time.Since(killed), r.Status, r.Body)
		}
	}
	c.up.take()
	for _, g := range c.gws {
		at := c.waitUnavailable(t, g, good, 5*time.Second)
		t.Logf("%s answers 503 %v after Redis was killed (max_staleness 2s)", g.name, at.Sub(killed))
		c.expectUnavailable(t, g.get(t, later), g, "another token while Redis is down")
		if z := g.ready(t); z.Status != 503 || z.Fresh {
			t.Errorf("%s /readyz while Redis is down: %+v, want 503, fresh false", g.name, z)
		}
	}

	c.redis.restart()
	restarted := time.Now()
	c.revoke(t, laterAgent)
	revoked := time.Now()
	for _, g := range c.gws {
		t.Logf("%s /readyz when the revoke returned (%v after the restart): %d", g.name, revoked.Sub(restarted), g.ready(t).Status)
	}
	for _, g := range c.gws {
		waitUntil(t, 15*time.Second, g.name+" recovers and applies the revocation written while it reconnected", func() bool {
			g.alive(t)
			if g.ready(t).Status != 200 {
				return false
			}
			s1, s2 := statusOf(g.base+"/api/x", good), statusOf(g.base+"/api/x", later)
			return s1 == 200 && s2 == 401
		})
		t.Logf("%s recovered and applied it by %v after the revoke returned (%v after the Redis restart)", g.name, time.Since(revoked), time.Since(restarted))
		c.expectAllowed(t, g, good, "good token after recovery")
		c.expectRevoked(t, g, later, "token revoked while the gateway reconnected")
		if z := g.ready(t); z.Status != 200 || !z.Fresh {
			t.Errorf("%s /readyz after recovery %+v, want 200 fresh", g.name, z)
		}
	}
}

// testRedisRestartedEmpty: Redis loses its data → running gateways keep
// rejecting what they knew and report epoch_missing; after a re-seed (as
// the issuer does) a new gateway rejects too.
func testRedisRestartedEmpty(t *testing.T) {
	c := newRevCluster(t, 2)
	c.waitReady(t)
	agent, user := token.NewID(token.PrefixAgent), token.NewID(token.PrefixUser)
	byAgent := c.mint(t, "--sub", "usr_c6", "--agent", agent)
	byUser := c.mint(t, "--sub", user, "--agent", token.NewID(token.PrefixAgent))
	good := c.mint(t, "--sub", "usr_c6", "--agent", token.NewID(token.PrefixAgent))
	entries := []revocation.Entry{c.revoke(t, agent), c.revoke(t, "--before", "now", "--sub", user)}
	c.propagation(t, time.Now(), byAgent)
	c.propagation(t, time.Now(), byUser)

	reseed := func() {
		t.Helper()
		r, err := revocation.NewRedis(revocation.RedisOptions{URL: c.redis.url()})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := r.Reseed(ctx, entries); err != nil {
			t.Fatalf("Reseed: %v", err)
		}
	}
	epochMissing := func(g *revGateway, want bool) func() bool {
		return func() bool {
			z := g.ready(t)
			return z.Status == 200 && z.EpochMissing == want
		}
	}
	// The issuer seeds at start: the epoch exists.
	reseed()
	for _, g := range c.gws {
		waitUntil(t, 5*time.Second, g.name+" /readyz without epoch_missing after the seed", epochMissing(g, false))
	}

	c.redis.kill()
	c.redis.restart()
	rc := c.redis.client(t)
	if n, err := rc.DBSize(context.Background()).Result(); err != nil || n != 0 {
		t.Fatalf("restarted Redis holds %d keys (%v), want an empty Redis", n, err)
	}
	for _, g := range c.gws {
		// While the gateway reconnects, a revoked token is never let through.
		waitUntil(t, 15*time.Second, g.name+" reconnected and reports epoch_missing", func() bool {
			for _, tok := range []string{byAgent, byUser} {
				if s := statusOf(g.base+"/api/x", tok); s != 401 && s != 503 {
					t.Fatalf("%s answered %d to a revoked token while Redis was empty", g.name, s)
				}
			}
			g.alive(t)
			return epochMissing(g, true)()
		})
		if z := g.ready(t); z.Entries < len(entries) {
			t.Errorf("%s /readyz %+v: the entries Redis forgot must stay", g.name, z)
		}
		c.expectRevoked(t, g, byAgent, "revoked agent's token after Redis lost its data")
		c.expectRevoked(t, g, byUser, "cut-off user's token after Redis lost its data")
		c.expectAllowed(t, g, good, "good token after Redis restarted empty")
	}

	reseed()
	for _, key := range []string{revocation.RedisEpochKey, revocation.RedisKeyPrefix + "id:" + agent, revocation.RedisKeyPrefix + "sub:" + user} {
		if n, err := rc.Exists(context.Background(), key).Result(); err != nil || n != 1 {
			t.Errorf("after Reseed, %s exists %d (%v), want 1", key, n, err)
		}
	}
	for _, g := range c.gws {
		waitUntil(t, 5*time.Second, g.name+" /readyz without epoch_missing after the re-seed", epochMissing(g, false))
	}
	late := c.startGateway(t, "gw3-after-reseed")
	c.expectRevoked(t, late, byAgent, "revoked agent's token on a gateway started after the re-seed")
	c.expectRevoked(t, late, byUser, "cut-off user's token on a gateway started after the re-seed")
	c.expectAllowed(t, late, good, "good token on a gateway started after the re-seed")
	if z := late.ready(t); z.Status != 200 || z.EpochMissing {
		t.Errorf("late gateway /readyz %+v, want 200 without epoch_missing", z)
	}
}

// testRedisPaused: CLIENT PAUSE makes Redis accept connections and bytes
// but answer nothing, as a half-open connection does. Only the gateways'
// own pings can tell; they must answer 503 within max_staleness (plus a
// margin), and recover after the pause.
func testRedisPaused(t *testing.T) {
	c := newRevCluster(t, 2)
	c.waitReady(t)
	good := c.mint(t, "--sub", "usr_c7", "--agent", token.NewID(token.PrefixAgent))
	badAgent := token.NewID(token.PrefixAgent)
	bad := c.mint(t, "--sub", "usr_c7", "--agent", badAgent)
	c.revoke(t, badAgent)
	c.propagation(t, time.Now(), bad)
	for _, g := range c.gws {
		c.expectAllowed(t, g, good, "before the pause")
	}

	const pause = 6 * time.Second
	c.waitPong(t)
	if err := c.redis.client(t).Do(context.Background(), "CLIENT", "PAUSE", pause.Milliseconds(), "ALL").Err(); err != nil {
		t.Fatalf("CLIENT PAUSE: %v", err)
	}
	paused := time.Now()
	for _, g := range c.gws {
		// max_staleness 2s + 2.5s margin, still inside the 6s pause.
		at := c.waitUnavailable(t, g, good, 4500*time.Millisecond-time.Since(paused))
		t.Logf("%s answers 503 %v into the pause (max_staleness 2s)", g.name, at.Sub(paused))
		if z := g.ready(t); z.Status != 503 {
			t.Errorf("%s /readyz during the pause: %+v, want 503", g.name, z)
		}
	}
	if time.Since(paused) >= pause {
		t.Fatalf("the checks during the pause took %v, longer than the pause", time.Since(paused))
	}
	time.Sleep(time.Until(paused.Add(pause)))
	resumed := time.Now()
	for _, g := range c.gws {
		waitUntil(t, 15*time.Second, g.name+" recovers after the pause", func() bool {
			g.alive(t)
			return g.ready(t).Status == 200 && statusOf(g.base+"/api/x", good) == 200
		})
		t.Logf("%s recovered %v after the pause ended", g.name, time.Since(resumed))
		c.expectAllowed(t, g, good, "good token after the pause")
		c.expectRevoked(t, g, bad, "revoked token after the pause")
	}
	c.up.take()
	// Still in step with Redis: a new revocation propagates.
	other := token.NewID(token.PrefixAgent)
	tok := c.mint(t, "--sub", "usr_c7", "--agent", other)
	c.revoke(t, other)
	lat := c.propagation(t, time.Now(), tok)
	t.Logf("propagation after the pause: %v", lat)
}
