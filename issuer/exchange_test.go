package issuer

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"

	"github.com/kavachgate/kavach/admin"
	"github.com/kavachgate/kavach/policy"
	"github.com/kavachgate/kavach/token"
)

// TestTokenExchange is delegation at run time (RFC 8693, DESIGN.md §7):
// only the subject token's current actor may exchange it, only for a
// registered child of its own or for itself, and never for more.
func TestTokenExchange(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *agentEnv) {
		a := e.newAgent(agentReq{Name: "parent"})
		asA := basic(a.ID, a.ClientSecret)
		ck := newAgentKey(t)
		c := e.newChild(a.ID, agentReq{Name: "kid", PublicKey: ck.pub})
		asC := func(e *agentEnv) auth { return jwtAuth(e.assertion(ck, c.ID, nil)) }
		childActor := func(e *agentEnv) url.Values { return actor(e.assertion(ck, c.ID, nil)) }
		parentToken := func(e *agentEnv) (string, *token.Token) {
			return e.agentToken(a, url.Values{"resource": {testResource}, "scope": {"mcp:github repo:read"}})
		}

		e.run("delegation to a registered child", func(t *testing.T, e *agentEnv) {
			raw, pt := parentToken(e)
			status, out := e.exchange(asA, raw, childActor(e))
			craw, ct := e.mustToken(status, out)
			if out["issued_token_type"] != tokenTypeAccessToken || out["refresh_token"] != nil {
				t.Fatalf("response: %v", out)
			}
			if wantChain := append(slices.Clone(pt.Kavach.Chain), c.Grant); !slices.Equal(ct.Kavach.Chain, wantChain) || !slices.Equal(c.Chain, wantChain) {
				t.Fatalf("chain %v, want %v (the child's registered chain %v)", ct.Kavach.Chain, wantChain, c.Chain)
			}
			if !slices.Equal(ct.Kavach.Agents, []string{a.ID, c.ID}) {
				t.Fatalf("agents %v", ct.Kavach.Agents)
			}
			if want := (&token.Actor{Subject: c.ID, Actor: &token.Actor{Subject: a.ID}}); !sameActor(ct.Actor, want) {
				t.Fatalf("act %s", actString(ct.Actor))
			}
			if ct.Subject != e.user || ct.ClientID != c.ID || !slices.Equal(ct.Audience, pt.Audience) {
				t.Fatalf("sub %s client_id %s aud %v", ct.Subject, ct.ClientID, ct.Audience)
			}
			if !slices.Equal(ct.Scopes, pt.Scopes) || ct.Expiry > pt.Expiry {
				t.Fatalf("scope %v exp %d, parent %v %d", ct.Scopes, ct.Expiry, pt.Scopes, pt.Expiry)
			}
			if cn := ct.Constraints(); cn == nil || !cn.AuditRequired() || !slices.Equal(cn.Hosts, pt.Constraints().Hosts) {
				t.Fatalf("constraints %+v", cn)
			}
			if !e.active(craw) || e.gatewayRejects(ct) {
				t.Fatal("the delegated token is not live")
			}

			// The child, authenticated by its key, narrows its own token.
			status, out = e.exchange(asC(e), craw, url.Values{"scope": {"repo:read"}})
			_, nt := e.mustToken(status, out)
			if !slices.Equal(nt.Kavach.Chain, ct.Kavach.Chain) || nt.CurrentActor() != c.ID || !slices.Equal(nt.Scopes, []string{"repo:read"}) {
				t.Fatalf("child self-attenuation: chain %v act %s scope %v", nt.Kavach.Chain, nt.CurrentActor(), nt.Scopes)
			}
		})

		e.run("delegation with a narrower scope and lifetime", func(t *testing.T, e *agentEnv) {
			raw, pt := parentToken(e)
			form := childActor(e)
			form.Set("scope", "repo:read")
			form.Set("expires_in", "60")
			_, ct := e.mustToken(e.exchange(asA, raw, form))
			if !slices.Equal(ct.Scopes, []string{"repo:read"}) || ct.Expiry > now().Add(61*time.Second).Unix() || ct.Expiry > pt.Expiry {
				t.Fatalf("scope %v exp in %v", ct.Scopes, time.Until(ct.ExpiresAt()))
			}
		})

		e.run("delegation to a child that expires first", func(t *testing.T, e *agentEnv) {
			sk := newAgentKey(t)
			short := e.newChild(a.ID, agentReq{Name: "short-kid", PublicKey: sk.pub, TTL: "2m"})
			raw, pt := parentToken(e)
			_, ct := e.mustToken(e.exchange(asA, raw, actor(e.assertion(sk, short.ID, nil))))
			if ct.Expiry != short.ExpiresAt.Unix() || ct.Expiry >= pt.Expiry {
				t.Fatalf("exp %v, want the child's expiry %v (parent token's %v)", ct.ExpiresAt(), short.ExpiresAt, pt.ExpiresAt())
			}
			// Asking for longer than the child lives gets the child's expiry.
			form := actor(e.assertion(sk, short.ID, nil))
			form.Set("expires_in", "240")
			_, ct = e.mustToken(e.exchange(asA, raw, form))
			if ct.Expiry > short.ExpiresAt.Unix() {
				t.Fatalf("exp %v outlives the child (%v)", ct.ExpiresAt(), short.ExpiresAt)
			}
		})

		e.run("self-attenuation narrows with the same chain", func(t *testing.T, e *agentEnv) {
			raw, pt := parentToken(e)
			status, out := e.exchange(asA, raw, url.Values{"scope": {"repo:read"}, "constraints": {`{"methods":["GET"],"paths":["/api/repos/kavach/*"]}`}, "expires_in": {"120"}})
			nraw, nt := e.mustToken(status, out)
			if out["issued_token_type"] != tokenTypeAccessToken || out["scope"] != "repo:read" {
				t.Fatalf("response: %v", out)
			}
			if !slices.Equal(nt.Kavach.Chain, pt.Kavach.Chain) || !slices.Equal(nt.Kavach.Agents, pt.Kavach.Agents) || !sameActor(nt.Actor, pt.Actor) || nt.ClientID != a.ID {
				t.Fatalf("chain %v agents %v act %s client %s, want the parent's", nt.Kavach.Chain, nt.Kavach.Agents, actString(nt.Actor), nt.ClientID)
			}
			cn, pc := nt.Constraints(), pt.Constraints()
			if !slices.Equal(cn.Methods, []string{"GET"}) || !slices.Equal(cn.Paths, []string{"/api/repos/kavach/*"}) ||
				!slices.Equal(cn.Hosts, pc.Hosts) || !slices.Equal(cn.CIDRs, pc.CIDRs) || cn.MaxBody != pc.MaxBody || !cn.AuditRequired() {
				t.Fatalf("constraints %+v: narrowed fields not applied or the others not inherited from %+v", cn, pc)
			}
			if nt.Expiry > now().Add(121*time.Second).Unix() {
				t.Fatalf("exp in %v, asked 120 s", time.Until(nt.ExpiresAt()))
			}
			if !e.active(nraw) {
				t.Fatal("not active")
			}
		})

		e.run("by another agent", func(t *testing.T, e *agentEnv) {
			raw, _ := parentToken(e)
			other := e.newAgent(agentReq{Name: "other"})
			status, out := e.exchange(basic(other.ID, other.ClientSecret), raw, nil)
			wantError(t, status, out, http.StatusBadRequest, "invalid_grant", "")
			// Nor with a child of its own as the actor.
			ok := newAgentKey(t)
			oc := e.newChild(other.ID, agentReq{PublicKey: ok.pub})
			status, out = e.exchange(basic(other.ID, other.ClientSecret), raw, actor(e.assertion(ok, oc.ID, nil)))
			wantError(t, status, out, http.StatusBadRequest, "invalid_grant", "")
		})

		e.run("by the child before delegation", func(t *testing.T, e *agentEnv) {
			raw, _ := parentToken(e)
			status, out := e.exchange(asC(e), raw, nil)
			wantError(t, status, out, http.StatusBadRequest, "invalid_grant", "")
		})

		e.run("by a prior actor", func(t *testing.T, e *agentEnv) {
			// Once delegated, the parent is no longer the current actor.
			raw, _ := parentToken(e)
			craw, _ := e.mustToken(e.exchange(asA, raw, childActor(e)))
			status, out := e.exchange(asA, craw, url.Values{"scope": {"repo:read"}})
			wantError(t, status, out, http.StatusBadRequest, "invalid_grant", "")
		})

		e.run("foreign token signed by an unknown key", func(t *testing.T, e *agentEnv) {
			_, pt := parentToken(e)
			k, err := token.GenerateSigningKey(jwa.EdDSA)
			if err != nil {
				t.Fatal(err)
			}
			c := pt.Claims
			c.ID = token.NewID(token.PrefixToken)
			forged, err := token.Mint(k, &c)
			if err != nil {
				t.Fatal(err)
			}
			status, out := e.exchange(asA, forged, nil)
			wantError(t, status, out, http.StatusBadRequest, "invalid_grant", "")
		})

		e.run("foreign token of another issuer", func(t *testing.T, e *agentEnv) {
			// Another issuer sharing the store (so the signing key) but with
			// its own identifier: its tokens are not this issuer's.
			other, err := New(Config{Issuer: "https://other-issuer.example", Store: e.st, Logger: e.cfg.Logger})
			if err != nil {
				t.Fatal(err)
			}
			if err := other.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			defer other.Close()
			_, pt := parentToken(e)
			is, err := other.mint(context.Background(), &mintRequest{
				User: pt.Subject, ClientID: a.ID, Chain: pt.Kavach.Chain, Agents: pt.Kavach.Agents,
				Rights: rightsOf(pt),
			})
			if err != nil {
				t.Fatal(err)
			}
			status, out := e.exchange(asA, is.Token, nil)
			wantError(t, status, out, http.StatusBadRequest, "invalid_grant", "")
		})

		e.run("tampered token", func(t *testing.T, e *agentEnv) {
			raw, _ := parentToken(e)
			parts := strings.Split(raw, ".")
			parts[2] = strings.Repeat("A", len(parts[2]))
			status, out := e.exchange(asA, strings.Join(parts, "."), nil)
			wantError(t, status, out, http.StatusBadRequest, "invalid_grant", "")
		})

		e.run("subject_token_type jwt", func(t *testing.T, e *agentEnv) {
			raw, _ := parentToken(e)
			status, out := e.exchange(asA, raw, url.Values{"subject_token_type": {tokenTypeJWT}})
			wantError(t, status, out, http.StatusBadRequest, "invalid_request", "")
		})

		e.run("revoked agent's token", func(t *testing.T, e *agentEnv) {
			r := e.newAgent(agentReq{Name: "revoked"})
			raw, _ := e.agentToken(r, url.Values{"resource": {testResource}})
			if status, out := e.adminCall(http.MethodPost, "/v1/agents/"+r.ID+"/revoke", nil); status != http.StatusOK {
				t.Fatalf("revoke: %d %v", status, out)
			}
			status, out := e.exchange(basic(r.ID, r.ClientSecret), raw, url.Values{"scope": {"repo:read"}})
			// A revoked agent (the cascade reaches children) is no client:
			// refused at authentication, before its token is looked at.
			wantError(t, status, out, http.StatusUnauthorized, "invalid_client", "")
		})

		e.run("token under a revoked parent", func(t *testing.T, e *agentEnv) {
			r := e.newAgent(agentReq{Name: "revoked-root"})
			rc := e.newChild(r.ID, agentReq{})
			raw, _ := e.agentToken(rc, url.Values{"resource": {testResource}})
			if status, out := e.adminCall(http.MethodPost, "/v1/agents/"+r.ID+"/revoke", nil); status != http.StatusOK {
				t.Fatalf("revoke: %d %v", status, out)
			}
			status, out := e.exchange(basic(rc.ID, rc.ClientSecret), raw, url.Values{"scope": {"repo:read"}})
			// A revoked agent (the cascade reaches children) is no client:
			// refused at authentication, before its token is looked at.
			wantError(t, status, out, http.StatusUnauthorized, "invalid_client", "")
		})

		e.run("token revoked by its client", func(t *testing.T, e *agentEnv) {
			raw, _ := parentToken(e)
			if status, out := e.postOAuth(pathRevoke, url.Values{"token": {raw}}, asA); status != http.StatusOK {
				t.Fatalf("revoke: %d %v", status, out)
			}
			status, out := e.exchange(asA, raw, childActor(e))
			wantError(t, status, out, http.StatusBadRequest, "invalid_grant", "")
		})

		e.run("actor not a child of the caller", func(t *testing.T, e *agentEnv) {
			raw, _ := parentToken(e)
			b := e.newAgent(agentReq{Name: "b"})
			bk := newAgentKey(t)
			bc := e.newChild(b.ID, agentReq{PublicKey: bk.pub})
			status, out := e.exchange(asA, raw, actor(e.assertion(bk, bc.ID, nil)))
			wantError(t, status, out, http.StatusBadRequest, "invalid_grant", "")
		})

		e.run("actor a grandchild of the caller", func(t *testing.T, e *agentEnv) {
			raw, _ := parentToken(e)
			gk := newAgentKey(t)
			g := e.newChild(c.ID, agentReq{PublicKey: gk.pub})
			status, out := e.exchange(asA, raw, actor(e.assertion(gk, g.ID, nil)))
			wantError(t, status, out, http.StatusBadRequest, "invalid_grant", "")
		})

		e.run("actor the caller itself", func(t *testing.T, e *agentEnv) {
			sk := newAgentKey(t)
			self := e.newAgent(agentReq{Name: "keyed-self", PublicKey: sk.pub})
			raw, _ := e.mustToken(e.clientCredentials(jwtAuth(e.assertion(sk, self.ID, nil)), url.Values{"resource": {testResource}}))
			status, out := e.exchange(jwtAuth(e.assertion(sk, self.ID, nil)), raw, actor(e.assertion(sk, self.ID, nil)))
			wantError(t, status, out, http.StatusBadRequest, "invalid_grant", "")
		})

		e.run("actor_token signed by another key", func(t *testing.T, e *agentEnv) {
			raw, _ := parentToken(e)
			status, out := e.exchange(asA, raw, actor(e.assertion(newAgentKey(t), c.ID, nil)))
			wantError(t, status, out, http.StatusBadRequest, "invalid_grant", "")
		})

		e.run("actor_token replayed", func(t *testing.T, e *agentEnv) {
			raw, _ := parentToken(e)
			asr := e.assertion(ck, c.ID, nil)
			e.mustToken(e.exchange(asA, raw, actor(asr)))
			status, out := e.exchange(asA, raw, actor(asr))
			wantError(t, status, out, http.StatusBadRequest, "invalid_grant", "")
		})

		e.run("actor_token for another audience", func(t *testing.T, e *agentEnv) {
			raw, _ := parentToken(e)
			status, out := e.exchange(asA, raw, actor(e.assertion(ck, c.ID, func(m map[string]any) { m["aud"] = testResource })))
			wantError(t, status, out, http.StatusBadRequest, "invalid_grant", "")
		})

		e.run("actor_token_type access_token", func(t *testing.T, e *agentEnv) {
			raw, _ := parentToken(e)
			form := childActor(e)
			form.Set("actor_token_type", tokenTypeAccessToken)
			status, out := e.exchange(asA, raw, form)
			wantError(t, status, out, http.StatusBadRequest, "invalid_request", "")
		})

		e.run("revoked child", func(t *testing.T, e *agentEnv) {
			rk := newAgentKey(t)
			rc := e.newChild(a.ID, agentReq{Name: "revoked-kid", PublicKey: rk.pub})
			if status, out := e.adminCall(http.MethodPost, "/v1/agents/"+rc.ID+"/revoke", nil); status != http.StatusOK {
				t.Fatalf("revoke: %d %v", status, out)
			}
			raw, _ := parentToken(e)
			status, out := e.exchange(asA, raw, actor(e.assertion(rk, rc.ID, nil)))
			wantError(t, status, out, http.StatusBadRequest, "invalid_grant", "")
		})

		e.run("beyond the child's registration", func(t *testing.T, e *agentEnv) {
			nk := newAgentKey(t)
			nc := e.newChild(a.ID, agentReq{Name: "narrow-kid", PublicKey: nk.pub, Scopes: []string{"repo:read"},
				Constraints: map[string]any{"methods": []string{"GET"}, "max_body": 1024}})
			raw, _ := parentToken(e)
			// Within the parent token, beyond what the child is registered for.
			form := actor(e.assertion(nk, nc.ID, nil))
			form.Set("scope", "mcp:github")
			status, out := e.exchange(asA, raw, form)
			wantError(t, status, out, http.StatusBadRequest, "invalid_scope", "scope")
			form = actor(e.assertion(nk, nc.ID, nil))
			form.Set("constraints", `{"methods":["POST"]}`)
			status, out = e.exchange(asA, raw, form)
			wantError(t, status, out, http.StatusBadRequest, "invalid_scope", "methods")
			// Left to defaults, the child gets its registration ∩ the parent.
			_, ct := e.mustToken(e.exchange(asA, raw, actor(e.assertion(nk, nc.ID, nil))))
			if cn := ct.Constraints(); !slices.Equal(ct.Scopes, []string{"repo:read"}) || !slices.Equal(cn.Methods, []string{"GET"}) || cn.MaxBody != 1024 || !cn.AuditRequired() {
				t.Fatalf("scope %v constraints %+v", ct.Scopes, cn)
			}
		})

		e.run("rate of the child's registration", func(t *testing.T, e *agentEnv) {
			nk := newAgentKey(t)
			nc := e.newChild(a.ID, agentReq{Name: "rated-kid", PublicKey: nk.pub, Scopes: []string{"repo:read"},
				Constraints: map[string]any{"rate": "10/m"}})
			raw, _ := parentToken(e)
			// Left to defaults, the child's token carries its registered rate.
			_, ct := e.mustToken(e.exchange(asA, raw, actor(e.assertion(nk, nc.ID, nil))))
			if cn := ct.Constraints(); cn == nil || cn.Rate != "10/m" {
				t.Fatalf("constraints %+v, want rate 10/m", cn)
			}
			// A wider rate (more at once, or a faster refill: 1/s is 60/m) is
			// refused, naming rate; a narrower one is granted.
			var form url.Values
			for _, r := range []string{"20/m", "600/h", "1/s"} {
				form = actor(e.assertion(nk, nc.ID, nil))
				form.Set("constraints", `{"rate":"`+r+`"}`)
				status, out := e.exchange(asA, raw, form)
				wantError(t, status, out, http.StatusBadRequest, "invalid_scope", "rate")
			}
			form = actor(e.assertion(nk, nc.ID, nil))
			form.Set("constraints", `{"rate":"5/m"}`)
			if _, nt := e.mustToken(e.exchange(asA, raw, form)); nt.Constraints().Rate != "5/m" {
				t.Fatalf("rate %q, want 5/m", nt.Constraints().Rate)
			}
		})

		// Widening, as self-attenuation and as delegation to the child:
		// refused with the field that would widen named.
		widen := []struct {
			name, code, field string
			form              url.Values
		}{
			{"scope with another segment", "invalid_scope", "scope", url.Values{"scope": {"mcp:github:admin"}}},
			{"scope the parent lacks", "invalid_scope", "scope", url.Values{"scope": {"repo:read repo:write"}}},
			{"host not in the parent's", "invalid_scope", "hosts", url.Values{"constraints": {`{"hosts":["evil.example"]}`}}},
			{"wildcard host over an exact one", "invalid_scope", "hosts", url.Values{"constraints": {`{"hosts":["*.internal"]}`}}},
			{"host two labels below a wildcard", "invalid_scope", "hosts", url.Values{"constraints": {`{"hosts":["a.b.corp.example"]}`}}},
			{"cidr outside", "invalid_scope", "cidrs", url.Values{"constraints": {`{"cidrs":["11.0.0.0/8"]}`}}},
			{"cidr wider", "invalid_scope", "cidrs", url.Values{"constraints": {`{"cidrs":["0.0.0.0/0"]}`}}},
			{"cidr of another family", "invalid_scope", "cidrs", url.Values{"constraints": {`{"cidrs":["::/0"]}`}}},
			{"method", "invalid_scope", "methods", url.Values{"constraints": {`{"methods":["GET","DELETE"]}`}}},
			{"path outside", "invalid_scope", "paths", url.Values{"constraints": {`{"paths":["/admin"]}`}}},
			{"path prefix wider", "invalid_scope", "paths", url.Values{"constraints": {`{"paths":["/api/*"]}`}}},
			{"max_body raised", "invalid_scope", "max_body", url.Values{"constraints": {`{"max_body":5242881}`}}},
			{"outliving the parent", "invalid_scope", "exp", url.Values{"expires_in": {"600"}}},
			{"another resource", "invalid_target", "aud", url.Values{"resource": {otherResource}}},
			{"another audience", "invalid_target", "aud", url.Values{"audience": {"https://evil.example/"}}},
		}
		for _, mode := range []string{"self", "child"} {
			for _, w := range widen {
				e.run(mode+"/"+w.name, func(t *testing.T, e *agentEnv) {
					raw, _ := parentToken(e)
					form := url.Values{}
					if mode == "child" {
						form = childActor(e)
					}
					for k, v := range w.form {
						form[k] = v
					}
					status, out := e.exchange(asA, raw, form)
					wantError(t, status, out, http.StatusBadRequest, w.code, w.field)
				})
			}
		}

		// audit: required cannot be dropped: an absent field inherits it,
		// and no other value exists.
		for _, mode := range []string{"self", "child"} {
			e.run(mode+"/dropping audit", func(t *testing.T, e *agentEnv) {
				raw, pt := parentToken(e)
				if !pt.Constraints().AuditRequired() {
					t.Fatal("the parent token does not require audit")
				}
				form := url.Values{"constraints": {`{"methods":["GET"]}`}}
				if mode == "child" {
					for k, v := range childActor(e) {
						form[k] = v
					}
				}
				_, nt := e.mustToken(e.exchange(asA, raw, form))
				if !nt.Constraints().AuditRequired() {
					t.Fatalf("constraints without audit dropped it: %+v", nt.Constraints())
				}
				for _, cn := range []string{`{"audit":"none"}`, `{"audit":""}`, `{"audit":null}`, `{"max_body":0}`, `{"hosts":[]}`} {
					form.Set("constraints", cn)
					if mode == "child" {
						form.Set("actor_token", e.assertion(ck, c.ID, nil))
					}
					status, out := e.exchange(asA, raw, form)
					wantError(t, status, out, http.StatusBadRequest, "invalid_request", "")
				}
			})
		}

		e.run("unknown constraint", func(t *testing.T, e *agentEnv) {
			raw, _ := parentToken(e)
			status, out := e.exchange(asA, raw, url.Values{"constraints": {`{"methods":["GET"],"weekdays":["mon"]}`}})
			wantError(t, status, out, http.StatusBadRequest, "invalid_request", "")
		})

		e.run("expires_in beyond max_token_lifetime", func(t *testing.T, e *agentEnv) {
			raw, _ := parentToken(e)
			for _, v := range []string{"3601", "0", "-5", "soon"} {
				status, out := e.exchange(asA, raw, url.Values{"expires_in": {v}})
				wantError(t, status, out, http.StatusBadRequest, "invalid_request", "")
			}
		})

		e.run("refresh_token requested", func(t *testing.T, e *agentEnv) {
			raw, _ := parentToken(e)
			status, out := e.exchange(asA, raw, url.Values{"requested_token_type": {"urn:ietf:params:oauth:token-type:refresh_token"}})
			wantError(t, status, out, http.StatusBadRequest, "invalid_request", "")
		})
	})
}

// TestTokenExchangeDepth: no delegation makes a chain longer than
// max_depth, at registration or at run time.
func TestTokenExchangeDepth(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *agentEnv) {
		e.run("registration beyond max_depth", func(t *testing.T, e *agentEnv) {
			parent := e.newAgent(agentReq{Name: "d1"})
			for d := 2; d <= policy.DefaultMaxDepth; d++ {
				parent = e.newChild(parent.ID, agentReq{})
			}
			if len(parent.Chain) != policy.DefaultMaxDepth {
				t.Fatalf("chain of %d", len(parent.Chain))
			}
			status, out := e.adminCall(http.MethodPost, "/v1/agents/"+parent.ID+"/children", map[string]any{"name": "too-deep", "scopes": []string{"repo:read"}})
			if status != http.StatusBadRequest || out["error"] != "invalid_scope" || !strings.HasPrefix(out["error_description"].(string), "depth: ") {
				t.Fatalf("child past max_depth: %d %v", status, out)
			}
			// The deepest agent still gets tokens of its own.
			e.agentToken(parent, url.Values{"resource": {testResource}})
		})

		// A chain of keyed agents R → K1 → K2 → K3, registered under the
		// default max_depth; the issuer then restarts with max_depth 3.
		r := e.newAgent(agentReq{Name: "R"})
		keys := make([]*agentKey, 4)
		agents := []*admin.Agent{r}
		for i := 1; i <= 3; i++ {
			keys[i] = newAgentKey(t)
			agents = append(agents, e.newChild(agents[i-1].ID, agentReq{PublicKey: keys[i].pub}))
		}
		// delegate walks the chain from R's token to depth n.
		delegate := func(e *agentEnv, n int) (string, *token.Token, int, map[string]any) {
			t := e.t
			t.Helper()
			raw, tok := e.agentToken(r, url.Values{"resource": {testResource}, "scope": {"repo:read"}})
			for i := 1; i < n; i++ {
				var caller auth = basic(r.ID, r.ClientSecret)
				if i > 1 {
					caller = jwtAuth(e.assertion(keys[i-1], agents[i-1].ID, nil))
				}
				status, out := e.exchange(caller, raw, actor(e.assertion(keys[i], agents[i].ID, nil)))
				if status != http.StatusOK {
					return raw, tok, status, out
				}
				raw, tok = e.mustToken(status, out)
				if len(tok.Kavach.Chain) != i+1 || tok.CurrentActor() != agents[i].ID {
					t.Fatalf("hop %d: chain %v act %s", i, tok.Kavach.Chain, tok.CurrentActor())
				}
			}
			return raw, tok, http.StatusOK, nil
		}

		e.run("delegation along the chain", func(t *testing.T, e *agentEnv) {
			_, tok, status, out := delegate(e, 4)
			if status != http.StatusOK {
				t.Fatalf("delegating to depth 4 under max_depth %d: %d %v", policy.DefaultMaxDepth, status, out)
			}
			if !slices.Equal(tok.Kavach.Chain, agents[3].Chain) {
				t.Fatalf("chain %v, want %v", tok.Kavach.Chain, agents[3].Chain)
			}
		})

		e.run("delegation past a lowered max_depth", func(t *testing.T, e *agentEnv) {
			e.restart(func(c *Config) { c.MaxDepth = 3 })
			t.Cleanup(func() { e.restart() })
			raw, tok, status, out := delegate(e, 3)
			if status != http.StatusOK || len(tok.Kavach.Chain) != 3 {
				t.Fatalf("delegating up to max_depth: %d %v", status, out)
			}
			// One more hop: K2 delegates to K3.
			status, out = e.exchange(jwtAuth(e.assertion(keys[2], agents[2].ID, nil)), raw, actor(e.assertion(keys[3], agents[3].ID, nil)))
			wantError(t, status, out, http.StatusBadRequest, "invalid_scope", "depth")
		})

		e.run("client_credentials past a lowered max_depth", func(t *testing.T, e *agentEnv) {
			// K3 was registered at depth 4; under max_depth 3 its chain is
			// too long for any new token (policy.Attenuate refuses even
			// self-attenuation there), client_credentials included.
			e.restart(func(c *Config) { c.MaxDepth = 3 })
			t.Cleanup(func() { e.restart() })
			status, out := e.clientCredentials(jwtAuth(e.assertion(keys[3], agents[3].ID, nil)), url.Values{"resource": {testResource}})
			if status == http.StatusOK {
				_, tok := e.mustToken(status, out)
				t.Fatalf("a token of depth %d was minted under max_depth 3", len(tok.Kavach.Chain))
			}
		})
	})
}

// rightsOf is what a verified token lets its holder do.
func rightsOf(t *token.Token) policy.Rights {
	r := policy.Rights{Scopes: t.Scopes, Audience: t.Audience, Expiry: t.ExpiresAt(), Depth: len(t.Kavach.Chain)}
	if cn := t.Constraints(); cn != nil {
		r.Constraints = *cn
	}
	return r
}

// TestRevokeRootDuringMints races agents minting tokens for a grandchild
// against the revocation of the chain's root (DESIGN.md §5): a token minted
// in the race carries a revoked id, so every gateway rejects it, and once
// the revocation has returned nothing more is minted.
func TestRevokeRootDuringMints(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *agentEnv) {
		root := e.newAgent(agentReq{Name: "root"})
		child := e.newChild(root.ID, agentReq{})
		grand := e.newChild(child.ID, agentReq{})
		cred := basic(grand.ID, grand.ClientSecret)
		form := url.Values{"resource": {testResource}, "scope": {"repo:read"}}

		const workers = 8
		var (
			revoked  atomic.Bool // set once the revocation call has returned
			mu       sync.Mutex
			minted   []string
			late     []string // minted by a request sent after the revocation returned
			failures int
			wg       sync.WaitGroup
		)
		started := make(chan struct{}, workers)
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				signalled := false
				for i := 0; i < 200; i++ {
					after := revoked.Load()
					status, out := e.clientCredentials(cred, form)
					mu.Lock()
					if status == http.StatusOK {
						minted = append(minted, out["access_token"].(string))
						if after {
							late = append(late, out["access_token"].(string))
						}
					} else {
						failures++
					}
					mu.Unlock()
					if !signalled {
						started <- struct{}{}
						signalled = true
					}
					if after && status != http.StatusOK {
						return
					}
				}
			}()
		}
		for range workers {
			<-started
		}
		status, out := e.adminCall(http.MethodPost, "/v1/agents/"+root.ID+"/revoke", nil)
		revoked.Store(true)
		wg.Wait()
		if status != http.StatusOK {
			t.Fatalf("revoke: %d %v", status, out)
		}
		if len(late) > 0 {
			t.Errorf("%d tokens minted after the revocation returned", len(late))
		}
		if failures == 0 {
			t.Fatal("no mint failed: the revocation never took effect")
		}
		if len(minted) == 0 {
			t.Fatal("nothing was minted before the revocation")
		}
		for _, raw := range minted {
			tok, err := e.s().Verifier().Verify(raw)
			if err != nil {
				t.Fatalf("minted token does not verify: %v", err)
			}
			if !slices.Equal(tok.Kavach.Chain, grand.Chain) {
				t.Fatalf("chain %v, want %v", tok.Kavach.Chain, grand.Chain)
			}
			var dead []string
			for _, id := range tok.Kavach.Chain {
				if e.rev.IsRevoked(id) {
					dead = append(dead, id)
				}
			}
			if len(dead) == 0 {
				t.Fatalf("token %s carries no revoked grant: a gateway would accept it", tok.ID)
			}
			if e.active(raw) {
				t.Fatalf("token %s is still active", tok.ID)
			}
		}
		t.Logf("%d minted, %d refused", len(minted), failures)
	})
}
