package issuer

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kavachgate/kavach/token"
)

// TestClientCredentials: an agent gets its own token with its secret, and
// nothing beyond what both its registration and its owner's entitlements
// on the resource allow (DESIGN.md §7).
func TestClientCredentials(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *agentEnv) {
		a := e.newAgent(agentReq{})
		mcp := url.Values{"resource": {testResource}}

		e.run("token carries owner, chain and constraints", func(t *testing.T, e *agentEnv) {
			status, out := e.clientCredentials(basic(a.ID, a.ClientSecret), url.Values{"resource": {testResource}, "scope": {"repo:read mcp:github"}})
			raw, tok := e.mustToken(status, out)
			if out["scope"] != "repo:read mcp:github" || out["refresh_token"] != nil {
				t.Fatalf("response: %v", out)
			}
			if tok.Subject != e.user || tok.ClientID != a.ID || tok.Issuer != e.cfg.Issuer {
				t.Fatalf("sub %s client_id %s iss %s", tok.Subject, tok.ClientID, tok.Issuer)
			}
			if !slices.Equal(tok.Audience, []string{testResource}) || !slices.Equal(tok.Scopes, []string{"repo:read", "mcp:github"}) {
				t.Fatalf("aud %v scope %v", tok.Audience, tok.Scopes)
			}
			if !slices.Equal(tok.Kavach.Chain, a.Chain) || !slices.Equal(tok.Kavach.Agents, []string{a.ID}) ||
				tok.Actor == nil || tok.Actor.Subject != a.ID || tok.Actor.Actor != nil {
				t.Fatalf("chain %v agents %v act %+v, want %v [%s]", tok.Kavach.Chain, tok.Kavach.Agents, tok.Actor, a.Chain, a.ID)
			}
			cn := tok.Constraints()
			if cn == nil || !cn.AuditRequired() || cn.MaxBody != 5242880 || !slices.Equal(cn.Methods, []string{"GET", "POST"}) {
				t.Fatalf("constraints %+v, want the agent's", cn)
			}
			if d := tok.ExpiresAt().Sub(tok.IssuedAtTime()); d != DefaultAccessTTL {
				t.Fatalf("lifetime %v", d)
			}
			if !e.active(raw) {
				t.Fatal("the new token is not active")
			}
		})

		e.run("client_secret_post", func(t *testing.T, e *agentEnv) {
			e.mustToken(e.clientCredentials(post(a.ID, a.ClientSecret), mcp))
		})

		e.run("grandchild token names the whole chain", func(t *testing.T, e *agentEnv) {
			c := e.newChild(a.ID, agentReq{Scopes: []string{"repo:read", "mcp:github"}})
			g := e.newChild(c.ID, agentReq{Scopes: []string{"repo:read"}})
			_, tok := e.agentToken(g, mcp)
			if tok.Subject != e.user || tok.ClientID != g.ID {
				t.Fatalf("sub %s client_id %s", tok.Subject, tok.ClientID)
			}
			if want := []string{a.ID, c.ID, g.ID}; !slices.Equal(tok.Kavach.Agents, want) || !slices.Equal(tok.Kavach.Chain, g.Chain) || len(g.Chain) != 3 {
				t.Fatalf("agents %v chain %v, want %v %v", tok.Kavach.Agents, tok.Kavach.Chain, want, g.Chain)
			}
			want := &token.Actor{Subject: g.ID, Actor: &token.Actor{Subject: c.ID, Actor: &token.Actor{Subject: a.ID}}}
			if !sameActor(tok.Actor, want) {
				t.Fatalf("act %s", actString(tok.Actor))
			}
			if !slices.Equal(tok.Scopes, []string{"repo:read"}) {
				t.Fatalf("default scope %v, want the grandchild's", tok.Scopes)
			}
		})

		e.run("default scopes are the agent's entitled ones", func(t *testing.T, e *agentEnv) {
			status, out := e.clientCredentials(basic(a.ID, a.ClientSecret), mcp)
			_, tok := e.mustToken(status, out)
			// api:read is the agent's but not entitled on this resource;
			// mcp:github:admin is entitled but not the agent's.
			if want := []string{"mcp:github", "repo:read", "repo:write", "issues:*"}; !slices.Equal(tok.Scopes, want) {
				t.Fatalf("scope %v, want %v", tok.Scopes, want)
			}
			status, out = e.clientCredentials(basic(a.ID, a.ClientSecret), url.Values{"resource": {otherResource}})
			if _, tok = e.mustToken(status, out); !slices.Equal(tok.Scopes, []string{"api:read"}) {
				t.Fatalf("scope on %s: %v", otherResource, tok.Scopes)
			}
		})

		e.run("single resource is the default", func(t *testing.T, e *agentEnv) {
			// A user with one resource: resource may be left out.
			status, u := e.adminCall(http.MethodPost, "/v1/users", map[string]any{"name": "bob", "entitlements": map[string][]string{testResource: {"repo:read"}}})
			if status != http.StatusCreated {
				t.Fatalf("create bob: %d %v", status, u)
			}
			b := e.newAgent(agentReq{Owner: u["id"].(string), Scopes: []string{"repo:read"}})
			if _, tok := e.agentToken(b, nil); !slices.Equal(tok.Audience, []string{testResource}) || tok.Subject != u["id"] {
				t.Fatalf("aud %v sub %s", tok.Audience, tok.Subject)
			}
		})

		e.run("unknown client", func(t *testing.T, e *agentEnv) {
			status, out := e.clientCredentials(basic("agt_doesnotexist", a.ClientSecret), mcp)
			wantError(t, status, out, http.StatusUnauthorized, "invalid_client", "")
			status, out = e.clientCredentials(basic("someone", "secret"), mcp)
			wantError(t, status, out, http.StatusUnauthorized, "invalid_client", "")
		})

		e.run("wrong secret", func(t *testing.T, e *agentEnv) {
			status, out := e.clientCredentials(basic(a.ID, a.ClientSecret+"x"), mcp)
			wantError(t, status, out, http.StatusUnauthorized, "invalid_client", "")
			other := e.newAgent(agentReq{Name: "other"})
			status, out = e.clientCredentials(basic(a.ID, other.ClientSecret), mcp)
			wantError(t, status, out, http.StatusUnauthorized, "invalid_client", "")
		})

		e.run("revoked agent", func(t *testing.T, e *agentEnv) {
			r := e.newAgent(agentReq{Name: "to-revoke"})
			e.agentToken(r, mcp)
			if status, out := e.adminCall(http.MethodPost, "/v1/agents/"+r.ID+"/revoke", nil); status != http.StatusOK {
				t.Fatalf("revoke: %d %v", status, out)
			}
			status, out := e.clientCredentials(basic(r.ID, r.ClientSecret), mcp)
			wantError(t, status, out, http.StatusUnauthorized, "invalid_client", "")
		})

		e.run("child of a revoked agent", func(t *testing.T, e *agentEnv) {
			r := e.newAgent(agentReq{Name: "revoked-parent"})
			c := e.newChild(r.ID, agentReq{})
			if status, out := e.adminCall(http.MethodPost, "/v1/agents/"+r.ID+"/revoke", nil); status != http.StatusOK {
				t.Fatalf("revoke: %d %v", status, out)
			}
			status, out := e.clientCredentials(basic(c.ID, c.ClientSecret), mcp)
			if status == http.StatusOK {
				t.Fatalf("the child of a revoked agent got a token: %v", out)
			}
		})

		e.run("expired agent", func(t *testing.T, e *agentEnv) {
			x := e.newAgent(agentReq{Name: "short-lived", TTL: "1m"})
			e.agentToken(x, mcp)
			setClock(t, 2*time.Minute)
			status, out := e.clientCredentials(basic(x.ID, x.ClientSecret), mcp)
			wantError(t, status, out, http.StatusUnauthorized, "invalid_client", "")
		})

		e.run("agent expiring within the current second", func(t *testing.T, e *agentEnv) {
			// Claims hold whole seconds: an agent with 50 ms left would get
			// exp == iat, a token nobody can use; refused, never a 500.
			t0 := time.Now().Truncate(time.Second).Add(time.Second + 100*time.Millisecond)
			prev := now
			t.Cleanup(func() { now = prev })
			now = func() time.Time { return t0 }
			x := e.newAgent(agentReq{Name: "last-second", TTL: "1m"})
			now = func() time.Time { return t0.Add(time.Minute - 50*time.Millisecond) }
			status, out := e.clientCredentials(basic(x.ID, x.ClientSecret), mcp)
			wantError(t, status, out, http.StatusBadRequest, "invalid_grant", "")
		})

		e.run("scope beyond the agent's", func(t *testing.T, e *agentEnv) {
			// The owner is entitled to mcp:github:admin; the agent is not,
			// and mcp:github does not cover it (same number of segments).
			status, out := e.clientCredentials(basic(a.ID, a.ClientSecret), url.Values{"resource": {testResource}, "scope": {"mcp:github:admin"}})
			wantError(t, status, out, http.StatusBadRequest, "invalid_scope", "scope")
		})

		e.run("scope beyond the owner's entitlements on the resource", func(t *testing.T, e *agentEnv) {
			// api:read is the agent's and the owner's, but on another resource.
			status, out := e.clientCredentials(basic(a.ID, a.ClientSecret), url.Values{"resource": {testResource}, "scope": {"repo:read api:read"}})
			wantError(t, status, out, http.StatusBadRequest, "invalid_scope", "scope")
		})

		e.run("entitlements withdrawn after creation", func(t *testing.T, e *agentEnv) {
			w := e.newAgent(agentReq{Name: "entitled-once"})
			bob := map[string][]string{testResource: {"repo:read"}, otherResource: {"api:read"}}
			if status, out := e.adminCall(http.MethodPut, "/v1/users/"+e.user+"/entitlements", bob); status != http.StatusOK {
				t.Fatalf("set entitlements: %d %v", status, out)
			}
			t.Cleanup(func() { e.adminCall(http.MethodPut, "/v1/users/"+e.user+"/entitlements", aliceEntitlements) })
			status, out := e.clientCredentials(basic(w.ID, w.ClientSecret), url.Values{"resource": {testResource}, "scope": {"repo:write"}})
			wantError(t, status, out, http.StatusBadRequest, "invalid_scope", "scope")
			if _, tok := e.agentToken(w, mcp); !slices.Equal(tok.Scopes, []string{"repo:read"}) {
				t.Fatalf("default scope after withdrawal %v", tok.Scopes)
			}
		})

		e.run("unknown resource", func(t *testing.T, e *agentEnv) {
			status, out := e.clientCredentials(basic(a.ID, a.ClientSecret), url.Values{"resource": {"https://elsewhere.example/mcp"}})
			wantError(t, status, out, http.StatusBadRequest, "invalid_target", "")
		})

		e.run("two resources", func(t *testing.T, e *agentEnv) {
			status, out := e.clientCredentials(basic(a.ID, a.ClientSecret), url.Values{"resource": {testResource, otherResource}})
			wantError(t, status, out, http.StatusBadRequest, "invalid_target", "")
		})

		e.run("missing resource with several entitled", func(t *testing.T, e *agentEnv) {
			status, out := e.clientCredentials(basic(a.ID, a.ClientSecret), nil)
			wantError(t, status, out, http.StatusBadRequest, "invalid_target", "")
		})

		e.run("malformed scope", func(t *testing.T, e *agentEnv) {
			status, out := e.clientCredentials(basic(a.ID, a.ClientSecret), url.Values{"resource": {testResource}, "scope": {"repo:read  repo:write"}})
			wantError(t, status, out, http.StatusBadRequest, "invalid_scope", "")
		})

		e.run("OAuth client cannot use client_credentials", func(t *testing.T, e *agentEnv) {
			status, c := e.adminCall(http.MethodPost, "/v1/clients", map[string]any{"name": "rs", "resources": []string{testResource}})
			if status != http.StatusCreated {
				t.Fatalf("create client: %d %v", status, c)
			}
			status, out := e.clientCredentials(basic(c["client_id"].(string), c["client_secret"].(string)), mcp)
			wantError(t, status, out, http.StatusBadRequest, "unauthorized_client", "")
		})
	})
}

// TestPrivateKeyJWT: an agent registered with a public key authenticates
// with assertions signed by it (RFC 7523 §2.2, §3), each usable once.
func TestPrivateKeyJWT(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *agentEnv) {
		key := newAgentKey(t)
		a := e.newAgent(agentReq{Name: "keyed", PublicKey: key.pub})
		if a.Auth != "private_key_jwt" || a.ClientSecret != "" {
			t.Fatalf("agent with a key: auth %s, secret %t", a.Auth, a.ClientSecret != "")
		}
		mcp := url.Values{"resource": {testResource}}
		get := func(e *agentEnv, assertion string, extra url.Values) (int, map[string]any) {
			e.t.Helper()
			form := url.Values{"resource": {testResource}}
			for k, v := range extra {
				form[k] = v
			}
			return e.clientCredentials(jwtAuth(assertion), form)
		}

		e.run("signed assertion", func(t *testing.T, e *agentEnv) {
			_, tok := e.mustToken(get(e, e.assertion(key, a.ID, nil), url.Values{"scope": {"repo:read"}}))
			if tok.Subject != e.user || tok.ClientID != a.ID || !slices.Equal(tok.Kavach.Chain, a.Chain) || tok.CurrentActor() != a.ID {
				t.Fatalf("sub %s client_id %s chain %v act %s", tok.Subject, tok.ClientID, tok.Kavach.Chain, tok.CurrentActor())
			}
		})

		e.run("aud is the token endpoint", func(t *testing.T, e *agentEnv) {
			e.mustToken(get(e, e.assertion(key, a.ID, func(c map[string]any) { c["aud"] = []string{e.url(pathToken)} }), nil))
		})

		e.run("client_id that matches", func(t *testing.T, e *agentEnv) {
			e.mustToken(get(e, e.assertion(key, a.ID, nil), url.Values{"client_id": {a.ID}}))
		})

		reject := func(name string, assertion func(e *agentEnv) string, extra url.Values) {
			e.run(name, func(t *testing.T, e *agentEnv) {
				status, out := get(e, assertion(e), extra)
				wantError(t, status, out, http.StatusUnauthorized, "invalid_client", "")
			})
		}
		reject("wrong aud", func(e *agentEnv) string {
			return e.assertion(key, a.ID, func(c map[string]any) { c["aud"] = "https://other-issuer.example" })
		}, nil)
		reject("aud of a resource", func(e *agentEnv) string {
			return e.assertion(key, a.ID, func(c map[string]any) { c["aud"] = []string{testResource} })
		}, nil)
		reject("no aud", func(e *agentEnv) string {
			return e.assertion(key, a.ID, func(c map[string]any) { delete(c, "aud") })
		}, nil)
		reject("expired", func(e *agentEnv) string {
			return e.assertion(key, a.ID, func(c map[string]any) {
				c["iat"] = now().Add(-10 * time.Minute).Unix()
				c["exp"] = now().Add(-time.Minute).Unix()
			})
		}, nil)
		reject("no exp", func(e *agentEnv) string {
			return e.assertion(key, a.ID, func(c map[string]any) { delete(c, "exp") })
		}, nil)
		reject("too long-lived", func(e *agentEnv) string {
			return e.assertion(key, a.ID, func(c map[string]any) { c["exp"] = now().Add(time.Hour).Unix() })
		}, nil)
		reject("not yet valid", func(e *agentEnv) string {
			return e.assertion(key, a.ID, func(c map[string]any) { c["nbf"] = now().Add(2 * time.Minute).Unix() })
		}, nil)
		reject("no jti", func(e *agentEnv) string {
			return e.assertion(key, a.ID, func(c map[string]any) { delete(c, "jti") })
		}, nil)
		reject("signed by another key", func(e *agentEnv) string {
			return e.assertion(newAgentKey(e.t), a.ID, nil)
		}, nil)
		reject("iss differs from sub", func(e *agentEnv) string {
			return e.assertion(key, a.ID, func(c map[string]any) { c["iss"] = "agt_someoneelse" })
		}, nil)
		reject("another agent's id", func(e *agentEnv) string {
			// Signed with a's key but claiming b: b's key must verify it.
			b := e.newAgent(agentReq{Name: "keyed-b", PublicKey: newAgentKey(e.t).pub})
			return e.assertion(key, b.ID, nil)
		}, nil)
		reject("agent with a secret", func(e *agentEnv) string {
			s := e.newAgent(agentReq{Name: "secret-agent"})
			return e.assertion(key, s.ID, nil)
		}, nil)
		reject("client_id mismatch", func(e *agentEnv) string {
			return e.assertion(key, a.ID, nil)
		}, url.Values{"client_id": {"agt_notme"}})
		e.run("unsupported assertion type", func(t *testing.T, e *agentEnv) {
			asr := e.assertion(key, a.ID, nil)
			saml := func(_ *http.Request, f url.Values) {
				f.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:saml2-bearer")
				f.Set("client_assertion", asr)
			}
			status, out := e.clientCredentials(saml, mcp)
			wantError(t, status, out, http.StatusUnauthorized, "invalid_client", "")
		})
		reject("alg none", func(e *agentEnv) string {
			// The payload of a real assertion under an unsigned header.
			parts := strings.Split(e.assertion(key, a.ID, nil), ".")
			return "eyJhbGciOiJub25lIn0." + parts[1] + "."
		}, nil)

		e.run("replayed jti", func(t *testing.T, e *agentEnv) {
			asr := e.assertion(key, a.ID, nil)
			e.mustToken(get(e, asr, nil))
			status, out := get(e, asr, nil)
			wantError(t, status, out, http.StatusUnauthorized, "invalid_client", "")
			// The same jti in a new assertion is a replay too.
			jti := token.NewID("asr_")
			e.mustToken(get(e, e.assertion(key, a.ID, func(c map[string]any) { c["jti"] = jti }), nil))
			status, out = get(e, e.assertion(key, a.ID, func(c map[string]any) { c["jti"] = jti; c["exp"] = now().Add(3 * time.Minute).Unix() }), nil)
			wantError(t, status, out, http.StatusUnauthorized, "invalid_client", "")
		})

		e.run("replayed concurrently", func(t *testing.T, e *agentEnv) {
			asr := e.assertion(key, a.ID, nil)
			const n = 8
			statuses := make(chan int, n)
			var wg sync.WaitGroup
			for range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					status, _ := get(e, asr, nil)
					statuses <- status
				}()
			}
			wg.Wait()
			close(statuses)
			ok := 0
			for s := range statuses {
				if s == http.StatusOK {
					ok++
				} else if s != http.StatusUnauthorized {
					t.Fatalf("status %d", s)
				}
			}
			if ok != 1 {
				t.Fatalf("one assertion sent %d times at once got %d tokens, want 1", n, ok)
			}
		})

		e.run("secret for an agent with a key", func(t *testing.T, e *agentEnv) {
			for _, secret := range []string{"guess", ""} {
				status, out := e.clientCredentials(basic(a.ID, secret), mcp)
				wantError(t, status, out, http.StatusUnauthorized, "invalid_client", "")
			}
		})

		e.run("a refused assertion does not spend its jti", func(t *testing.T, e *agentEnv) {
			// A forged assertion (another key) with the victim's next jti
			// must not lock the victim out.
			jti := token.NewID("asr_")
			status, out := get(e, e.assertion(newAgentKey(t), a.ID, func(c map[string]any) { c["jti"] = jti }), nil)
			wantError(t, status, out, http.StatusUnauthorized, "invalid_client", "")
			e.mustToken(get(e, e.assertion(key, a.ID, func(c map[string]any) { c["jti"] = jti }), nil))
		})

		e.run("two methods at once", func(t *testing.T, e *agentEnv) {
			s := e.newAgent(agentReq{Name: "with-secret"})
			for name, au := range map[string]auth{
				"basic and assertion": both(basic(s.ID, s.ClientSecret), jwtAuth(e.assertion(key, a.ID, nil))),
				"post and assertion":  both(post(a.ID, s.ClientSecret), jwtAuth(e.assertion(key, a.ID, nil))),
				"basic and post":      both(basic(s.ID, s.ClientSecret), post(s.ID, s.ClientSecret)),
			} {
				e.run(name, func(t *testing.T, e *agentEnv) {
					status, out := e.clientCredentials(au, mcp)
					wantError(t, status, out, http.StatusBadRequest, "invalid_request", "")
				})
			}
		})

		e.run("rotated key", func(t *testing.T, e *agentEnv) {
			r := e.newAgent(agentReq{Name: "rotating", PublicKey: key.pub})
			k2 := newAgentKey(t)
			status, out := e.adminCall(http.MethodPost, "/v1/agents/"+r.ID+"/rotate", map[string]any{"public_key": k2.pub})
			if status != http.StatusOK || out["token_endpoint_auth_method"] != "private_key_jwt" || out["client_secret"] != nil {
				t.Fatalf("rotate: %d %v", status, out)
			}
			status, out = get(e, e.assertion(key, r.ID, nil), nil)
			wantError(t, status, out, http.StatusUnauthorized, "invalid_client", "")
			e.mustToken(get(e, e.assertion(k2, r.ID, nil), nil))
		})

		e.run("a private key is not registered", func(t *testing.T, e *agentEnv) {
			k, err := token.GenerateSigningKey("EdDSA")
			if err != nil {
				t.Fatal(err)
			}
			status, out := e.adminCall(http.MethodPost, "/v1/agents", map[string]any{
				"name": "leaky", "owner": e.user, "scopes": []string{"repo:read"}, "public_key": k,
			})
			if status != http.StatusBadRequest {
				t.Fatalf("registering a private JWK: %d %v, want 400 (the store would hold the agent's private key)", status, out)
			}
		})
	})
}

func sameActor(a, b *token.Actor) bool {
	for a != nil && b != nil {
		if a.Subject != b.Subject {
			return false
		}
		a, b = a.Actor, b.Actor
	}
	return a == nil && b == nil
}

func actString(a *token.Actor) string {
	var parts []string
	for ; a != nil; a = a.Actor {
		parts = append(parts, a.Subject)
	}
	return strings.Join(parts, " ← ")
}
