package integration

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kavachgate/kavach/token"
)

// restart kills the fixture's process (SIGKILL: nothing flushed on the way
// out) and starts a new one on the same store, data directory and ports.
func (f *issuerFixture) restart(t *testing.T) {
	t.Helper()
	_ = f.proc.cmd.Process.Kill()
	<-f.proc.exited
	f.proc = startGateway(t, f.dir, f.env, portOf(f.issuer), portOf(f.gateway), portOf(f.admin))
}

// TestAdminRevocationsSurviveRestart: a revocation or cutoff sent to the
// admin listener (`kavach revoke`) is not forgotten when the single-node
// gateway restarts: with an issuer in the process it goes to the issuer's
// store; without one, to a file in Caddy's data directory.
func TestAdminRevocationsSurviveRestart(t *testing.T) {
	t.Run("issuer in the process", func(t *testing.T) {
		f := startIssuer(t, "sqlite ./data/kavach.db")
		ctx := context.Background()
		f.cli(t, nil, "user", "create", "--id", "usr_bob", "--name", "bob", "--entitle", f.resource+"=repo:read")
		f.cli(t, nil, "user", "create", "--id", "usr_carol", "--name", "carol", "--entitle", f.resource+"=repo:read")
		var b, c agentOut
		f.cli(t, &b, "agent", "create", "--name", "b", "--owner", "usr_bob", "--scope", "repo:read", "--ttl", "1h")
		f.cli(t, &c, "agent", "create", "--name", "c", "--owner", "usr_carol", "--scope", "repo:read", "--ttl", "1h")
		tb, err := f.clientToken(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		tc, err := f.clientToken(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		tc2, err := f.clientToken(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		jti, _ := f.introspect(t, tc)["jti"].(string)
		if jti == "" {
			t.Fatal("introspection gave no jti")
		}
		f.cli(t, nil, "revoke", "--before", "now", "--sub", "usr_bob")
		f.cli(t, nil, "revoke", jti)
		check := func(when string) {
			t.Helper()
			if r := f.get(t, "/api/repos/x", tb); r.Status != http.StatusUnauthorized {
				t.Errorf("%s: token issued before bob's cutoff: %d", when, r.Status)
			}
			if r := f.get(t, "/api/repos/x", tc); r.Status != http.StatusUnauthorized {
				t.Errorf("%s: revoked token id: %d", when, r.Status)
			}
			if r := f.get(t, "/api/repos/x", tc2); r.Status != http.StatusOK {
				t.Errorf("%s: carol's other token: %d %s", when, r.Status, r.Body)
			}
		}
		check("before the restart")
		f.restart(t)
		check("after the restart")
		// The cutoff is a time, not a ban: bob's next token works.
		time.Sleep(1100 * time.Millisecond)
		if tb2, err := f.clientToken(ctx, b); err != nil {
			t.Fatal(err)
		} else if r := f.get(t, "/api/repos/x", tb2); r.Status != http.StatusOK {
			t.Errorf("bob's token issued after the cutoff: %d %s", r.Status, r.Body)
		}
	})

	t.Run("no issuer", func(t *testing.T) {
		g := startKeyGateway(t, newUpstream(t).addr(), "")
		alice, agentX, other := g.mint(t, "usr_alice", "agt_a"), g.mint(t, "usr_dave", "agt_x"), g.mint(t, "usr_dave", "agt_y")
		g.revoke(t, "--before", "now", "--sub", "usr_alice")
		g.revoke(t, "agt_x")
		get := func(tok string) int {
			return do(t, newReq(t, http.MethodGet, g.url+"/api/x", tok, nil)).Status
		}
		check := func(when string) {
			t.Helper()
			if s := get(alice); s != http.StatusUnauthorized {
				t.Errorf("%s: token before alice's cutoff: %d", when, s)
			}
			if s := get(agentX); s != http.StatusUnauthorized {
				t.Errorf("%s: token of revoked agt_x: %d", when, s)
			}
			if s := get(other); s != http.StatusOK {
				t.Errorf("%s: unrelated token: %d", when, s)
			}
		}
		check("before the restart")
		g.restart(t)
		check("after the restart")
	})
}

// keyGateway is one `kavach run` that trusts key.jwk (gwIssuer), has an
// admin listener, and protects /api/* (repo:read for GET) in front of an
// upstream.
type keyGateway struct {
	dir, url, admin string
	env             []string
	ports           []int // gateway, admin
	proc            *gatewayProc
}

// startKeyGateway writes keys and a Caddyfile into a new directory and
// starts the gateway; proxyBlock goes inside reverse_proxy's block.
func startKeyGateway(t *testing.T, upstream, proxyBlock string) *keyGateway {
	t.Helper()
	g := &keyGateway{dir: t.TempDir(), env: []string{"KAVACH_ADMIN_TOKEN=" + token.NewID("adm_")}}
	newKeys(t, g.dir)
	g.ports = []int{freePort(t), freePort(t)}
	g.url = fmt.Sprintf("http://127.0.0.1:%d", g.ports[0])
	g.admin = fmt.Sprintf("127.0.0.1:%d", g.ports[1])
	caddyfile := fmt.Sprintf(`{
	admin off
	kavach {
		trusted_keys %[1]s ./jwks.json
		admin %[2]s
	}
}
%[3]s {
	bind 127.0.0.1
	kavach /api/* {
		resource %[3]s/api
		scope GET /api/* repo:read
	}
	reverse_proxy /api/* %[4]s {
		%[5]s
	}
}
`, gwIssuer, g.admin, g.url, upstream, proxyBlock)
	if err := os.WriteFile(filepath.Join(g.dir, "Caddyfile"), []byte(caddyfile), 0o644); err != nil {
		t.Fatal(err)
	}
	g.proc = startGateway(t, g.dir, g.env, g.ports...)
	return g
}

// restart kills the gateway (SIGKILL) and starts it again on the same
// directory and ports.
func (g *keyGateway) restart(t *testing.T) {
	t.Helper()
	_ = g.proc.cmd.Process.Kill()
	<-g.proc.exited
	g.proc = startGateway(t, g.dir, g.env, g.ports...)
}

// mint is a repo:read token for the gateway's resource.
func (g *keyGateway) mint(t *testing.T, sub, agent string) string {
	t.Helper()
	return strings.TrimSpace(kavach(t, g.dir, "token", "mint", "--key", "key.jwk", "--iss", gwIssuer,
		"--aud", g.url+"/api", "--sub", sub, "--agent", agent, "--scope", "repo:read"))
}

// revoke runs `kavach revoke` against the admin listener.
func (g *keyGateway) revoke(t *testing.T, args ...string) {
	t.Helper()
	out, errOut, err := kavachEnv(g.dir, g.env, append([]string{"revoke", "--admin", g.admin}, args...)...)
	if err != nil {
		t.Fatalf("kavach revoke %v: %v\n%s%s", args, err, out, errOut)
	}
}
