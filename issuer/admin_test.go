package issuer

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kavachgate/kavach/admin"
)

// TestAdminAgents: the admin API creates agents and children only within
// what their owner and parent have, and refuses malformed bodies.
func TestAdminAgents(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *agentEnv) {
		parent := e.newAgent(agentReq{Name: "parent", TTL: "1h"})

		refuse := func(name, path string, body any, status int, code, prefix string) {
			e.run(name, func(t *testing.T, e *agentEnv) {
				got, out := e.adminCall(http.MethodPost, path, body)
				if got != status || out["error"] != code {
					t.Fatalf("got %d %v, want %d %s", got, out, status, code)
				}
				if msg, _ := out["error_description"].(string); !strings.HasPrefix(msg, prefix) {
					t.Fatalf("message %q, want it to start with %q", msg, prefix)
				}
			})
		}
		agent := func(scopes ...string) map[string]any {
			return map[string]any{"name": "a", "owner": e.user, "scopes": scopes}
		}
		children := "/v1/agents/" + parent.ID + "/children"

		refuse("agent beyond the owner's entitlements", "/v1/agents", agent("repo:read", "admin:all"), http.StatusBadRequest, "invalid_scope", "scope: ")
		refuse("agent wildcard over concrete entitlements", "/v1/agents", agent("mcp:*"), http.StatusBadRequest, "invalid_scope", "scope: ")
		refuse("agent one segment deeper than entitled", "/v1/agents", agent("repo:read:all"), http.StatusBadRequest, "invalid_scope", "scope: ")
		refuse("agent of an unknown owner", "/v1/agents", map[string]any{"name": "a", "owner": "usr_nobody", "scopes": []string{"repo:read"}}, http.StatusBadRequest, "invalid_request", "")
		refuse("agent without scopes", "/v1/agents", agent(), http.StatusBadRequest, "invalid_request", "")
		refuse("agent with a malformed scope", "/v1/agents", agent("repo read"), http.StatusBadRequest, "invalid_request", "")
		refuse("agent ttl beyond the maximum", "/v1/agents", map[string]any{"name": "a", "owner": e.user, "scopes": []string{"repo:read"}, "ttl": "2400h"}, http.StatusBadRequest, "invalid_request", "")
		refuse("agent with empty constraint", "/v1/agents", map[string]any{"name": "a", "owner": e.user, "scopes": []string{"repo:read"}, "constraints": map[string]any{"hosts": []string{}}}, http.StatusBadRequest, "invalid_request", "")
		refuse("agent with a bad public key", "/v1/agents", map[string]any{"name": "a", "owner": e.user, "scopes": []string{"repo:read"}, "public_key": map[string]any{"kty": "oct", "k": "c2VjcmV0"}}, http.StatusBadRequest, "invalid_request", "public_key: ")

		refuse("child with a segment widening", children, map[string]any{"name": "c", "scopes": []string{"mcp:github:admin"}}, http.StatusBadRequest, "invalid_scope", "scope: ")
		refuse("child with a scope the parent lacks", children, map[string]any{"name": "c", "scopes": []string{"api:write"}}, http.StatusBadRequest, "invalid_scope", "scope: ")
		refuse("child with a wider host", children, map[string]any{"name": "c", "scopes": []string{"repo:read"}, "constraints": map[string]any{"hosts": []string{"*.internal"}}}, http.StatusBadRequest, "invalid_scope", "hosts: ")
		refuse("child with a wider cidr", children, map[string]any{"name": "c", "scopes": []string{"repo:read"}, "constraints": map[string]any{"cidrs": []string{"10.0.0.0/7"}}}, http.StatusBadRequest, "invalid_scope", "cidrs: ")
		refuse("child with another method", children, map[string]any{"name": "c", "scopes": []string{"repo:read"}, "constraints": map[string]any{"methods": []string{"PUT"}}}, http.StatusBadRequest, "invalid_scope", "methods: ")
		refuse("child with a wider path", children, map[string]any{"name": "c", "scopes": []string{"repo:read"}, "constraints": map[string]any{"paths": []string{"/api/*"}}}, http.StatusBadRequest, "invalid_scope", "paths: ")
		refuse("child with a larger max_body", children, map[string]any{"name": "c", "scopes": []string{"repo:read"}, "constraints": map[string]any{"max_body": 1 << 30}}, http.StatusBadRequest, "invalid_scope", "max_body: ")
		refuse("child with an owner", children, map[string]any{"name": "c", "owner": e.user, "scopes": []string{"repo:read"}}, http.StatusBadRequest, "invalid_request", "")
		refuse("child of an unknown agent", "/v1/agents/agt_nobody/children", map[string]any{"name": "c", "scopes": []string{"repo:read"}}, http.StatusNotFound, "not_found", "")

		e.run("child inherits the parent's constraints", func(t *testing.T, e *agentEnv) {
			c := e.newChild(parent.ID, agentReq{Scopes: []string{"repo:read"}, Constraints: map[string]any{"methods": []string{"GET"}}})
			cn := c.Constraints
			if cn == nil || !slices.Equal(cn.Methods, []string{"GET"}) || !slices.Equal(cn.Hosts, []string{"mcp.internal", "*.corp.example"}) || !cn.AuditRequired() || cn.MaxBody != 5242880 {
				t.Fatalf("child constraints %+v", cn)
			}
			if c.Owner != e.user || c.Parent != parent.ID || !slices.Equal(c.Agents, []string{parent.ID, c.ID}) || !slices.Equal(c.Chain[:1], parent.Chain) || c.Grant != c.Chain[1] {
				t.Fatalf("child %+v", c)
			}
		})

		e.run("child ttl is capped to the parent's expiry", func(t *testing.T, e *agentEnv) {
			c := e.newChild(parent.ID, agentReq{Scopes: []string{"repo:read"}, TTL: "48h"})
			status, got := e.adminCall(http.MethodGet, "/v1/agents/"+parent.ID, nil)
			if status != http.StatusOK {
				t.Fatalf("get parent: %d %v", status, got)
			}
			pexp, err := time.Parse(time.RFC3339Nano, got["expires_at"].(string))
			if err != nil {
				t.Fatal(err)
			}
			if !c.ExpiresAt.Equal(pexp) {
				t.Fatalf("child expires_at %v, parent's %v", c.ExpiresAt, pexp)
			}
			if kids, _ := got["children"].([]any); !slices.Contains(kids, any(c.ID)) {
				t.Fatalf("the parent does not list the child: %v", got["children"])
			}
			// Its tokens end with the parent, even near the end.
			setClock(t, time.Hour-time.Minute)
			status, out := e.clientCredentials(basic(c.ID, c.ClientSecret), url.Values{"resource": {testResource}})
			if status != http.StatusOK {
				t.Fatalf("token near the end: %d %v", status, out)
			}
			if in := out["expires_in"].(float64); in > 61 {
				t.Fatalf("expires_in %v outlives the parent", in)
			}
		})

		e.run("oversized body", func(t *testing.T, e *agentEnv) {
			body := `{"name":"` + strings.Repeat("x", maxJSONBody) + `","owner":"` + e.user + `","scopes":["repo:read"]}`
			for _, path := range []string{"/v1/agents", children, "/v1/users", "/v1/clients", "/v1/agents/" + parent.ID + "/rotate"} {
				status, out := e.adminCall(http.MethodPost, path, body)
				if status != http.StatusRequestEntityTooLarge {
					t.Fatalf("%s: got %d %v, want 413", path, status, out)
				}
			}
		})

		e.run("unknown field", func(t *testing.T, e *agentEnv) {
			for path, body := range map[string]string{
				"/v1/agents":  `{"name":"a","owner":"` + e.user + `","scopes":["repo:read"],"admin":true}`,
				children:      `{"name":"c","scopes":["repo:read"],"parent":"agt_other"}`,
				"/v1/users":   `{"name":"mallory","role":"admin"}`,
				"/v1/clients": `{"name":"rs","introspect_all":true}`,
			} {
				status, out := e.adminCall(http.MethodPost, path, body)
				if status != http.StatusBadRequest || out["error"] != "invalid_request" {
					t.Fatalf("%s: got %d %v, want 400", path, status, out)
				}
			}
		})

		e.run("unknown constraint", func(t *testing.T, e *agentEnv) {
			status, out := e.adminCall(http.MethodPost, children, `{"name":"c","scopes":["repo:read"],"constraints":{"weekdays":["mon"]}}`)
			if status != http.StatusBadRequest {
				t.Fatalf("got %d %v", status, out)
			}
		})

		e.run("trailing data", func(t *testing.T, e *agentEnv) {
			status, out := e.adminCall(http.MethodPost, "/v1/agents", `{"name":"a","owner":"`+e.user+`","scopes":["repo:read"]} {"name":"b"}`)
			if status != http.StatusBadRequest {
				t.Fatalf("got %d %v", status, out)
			}
		})

		e.run("list by owner", func(t *testing.T, e *agentEnv) {
			status, out := e.adminCall(http.MethodGet, "/v1/agents?owner="+url.QueryEscape(e.user), nil)
			if status != http.StatusOK {
				t.Fatalf("list: %d %v", status, out)
			}
			var ids []string
			for _, a := range out["agents"].([]any) {
				m := a.(map[string]any)
				if m["client_secret"] != nil {
					t.Fatal("a listed agent shows its secret")
				}
				ids = append(ids, m["id"].(string))
			}
			if !slices.Contains(ids, parent.ID) {
				t.Fatalf("list %v lacks %s", ids, parent.ID)
			}
			if status, _ := e.adminCall(http.MethodGet, "/v1/agents?owner=usr_nobody", nil); status != http.StatusNotFound {
				t.Fatalf("unknown owner: %d", status)
			}
		})
	})
}

// TestAdminRevokeAgent: revoking an agent revokes its grant and every
// descendant, in the store and in the gateways' set, and nothing else.
func TestAdminRevokeAgent(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *agentEnv) {
		mcp := url.Values{"resource": {testResource}}
		r := e.newAgent(agentReq{Name: "r"})
		c1 := e.newChild(r.ID, agentReq{Name: "c1"})
		c2 := e.newChild(r.ID, agentReq{Name: "c2"})
		g := e.newChild(c1.ID, agentReq{Name: "g"})
		tokens := map[string]string{}
		for _, a := range []*admin.Agent{r, c1, c2, g} {
			tokens[a.ID], _ = e.agentToken(a, mcp)
		}

		e.run("a subtree", func(t *testing.T, e *agentEnv) {
			status, out := e.adminCall(http.MethodPost, "/v1/agents/"+c1.ID+"/revoke", nil)
			if status != http.StatusOK {
				t.Fatalf("revoke: %d %v", status, out)
			}
			want := []string{c1.ID, c1.Grant, g.ID, g.Grant}
			if got := idList(out["revoked"]); !sameSet(got, want) || got[0] != c1.ID {
				t.Fatalf("revoked %v, want %v (the agent first)", got, want)
			}
			for _, id := range want {
				if !e.rev.IsRevoked(id) {
					t.Fatalf("%s is not in the revocation set", id)
				}
			}
			for _, id := range []string{r.ID, r.Grant, c2.ID, c2.Grant} {
				if e.rev.IsRevoked(id) {
					t.Fatalf("%s was revoked with its sibling", id)
				}
			}
			if e.active(tokens[c1.ID]) || e.active(tokens[g.ID]) || !e.active(tokens[r.ID]) || !e.active(tokens[c2.ID]) {
				t.Fatal("revoking a subtree reached outside it or missed a token in it")
			}
			e.agentToken(c2, mcp)
			if status, _ := e.clientCredentials(basic(g.ID, g.ClientSecret), mcp); status == http.StatusOK {
				t.Fatal("a revoked descendant still gets tokens")
			}
			status, got := e.adminCall(http.MethodGet, "/v1/agents/"+g.ID, nil)
			if status != http.StatusOK || got["revoked_at"] == nil {
				t.Fatalf("show revoked grandchild: %d %v", status, got)
			}
			// No new child under a revoked agent.
			if status, out := e.adminCall(http.MethodPost, "/v1/agents/"+c1.ID+"/children", map[string]any{"name": "late", "scopes": []string{"repo:read"}}); status != http.StatusConflict {
				t.Fatalf("child of a revoked agent: %d %v", status, out)
			}
		})

		e.run("the root lists agent, grants and all descendants", func(t *testing.T, e *agentEnv) {
			status, out := e.adminCall(http.MethodPost, "/v1/agents/"+r.ID+"/revoke", nil)
			if status != http.StatusOK {
				t.Fatalf("revoke: %d %v", status, out)
			}
			all := []string{r.ID, r.Grant, c1.ID, c1.Grant, c2.ID, c2.Grant, g.ID, g.Grant}
			got := idList(out["revoked"])
			if !sameSet(got, all) || got[0] != r.ID {
				t.Fatalf("revoked %v, want %v", got, all)
			}
			for id, tok := range tokens {
				if e.active(tok) {
					t.Fatalf("token of %s still active", id)
				}
			}
			// Again: the same ids, nothing new.
			status, again := e.adminCall(http.MethodPost, "/v1/agents/"+r.ID+"/revoke", nil)
			if status != http.StatusOK || !sameSet(idList(again["revoked"]), all) {
				t.Fatalf("second revoke: %d %v", status, again)
			}
			if status, _ := e.clientCredentials(basic(c2.ID, c2.ClientSecret), mcp); status == http.StatusOK {
				t.Fatal("a revoked descendant still gets tokens")
			}
		})

		e.run("unknown agent", func(t *testing.T, e *agentEnv) {
			if status, out := e.adminCall(http.MethodPost, "/v1/agents/agt_nobody/revoke", nil); status != http.StatusNotFound {
				t.Fatalf("got %d %v", status, out)
			}
		})
	})
}

// TestAdminRotateAgent: rotation follows a leak, so the old secret stops
// working and every token it obtained dies, while the new one works.
func TestAdminRotateAgent(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *agentEnv) {
		mcp := url.Values{"resource": {testResource}}
		rotate := func(e *agentEnv, a *admin.Agent) string {
			e.t.Helper()
			status, out := e.adminCall(http.MethodPost, "/v1/agents/"+a.ID+"/rotate", nil)
			if status != http.StatusOK || out["token_endpoint_auth_method"] != "client_secret_basic" {
				e.t.Fatalf("rotate: %d %v", status, out)
			}
			secret, _ := out["client_secret"].(string)
			if secret == "" || secret == a.ClientSecret {
				e.t.Fatalf("rotate returned secret %q", secret)
			}
			return secret
		}
		check := func(e *agentEnv, a *admin.Agent, oldSecret, newSecret, oldTok string) {
			t := e.t
			t.Helper()
			status, out := e.clientCredentials(basic(a.ID, oldSecret), mcp)
			wantError(t, status, out, http.StatusUnauthorized, "invalid_client", "")
			nraw, ntok := e.mustToken(e.clientCredentials(basic(a.ID, newSecret), mcp))
			if !e.active(nraw) || e.gatewayRejects(ntok) {
				t.Fatal("a token of the new secret is rejected")
			}
			old, err := e.s().Verifier().Verify(oldTok)
			if err != nil {
				t.Fatal(err)
			}
			if !e.gatewayRejects(old) {
				t.Error("a gateway still accepts the token obtained before rotation (no client_id cutoff covers it)")
			}
			if e.active(oldTok) {
				t.Error("introspection calls the token obtained before rotation active")
			}
		}

		e.run("token from an earlier second", func(t *testing.T, e *agentEnv) {
			a := e.newAgent(agentReq{Name: "leaked"})
			clk := holdClock(t, nextSecond(100*time.Millisecond))
			old, _ := e.agentToken(a, mcp)
			clk.set(nextSecond(0).Add(1500 * time.Millisecond))
			check(e, a, a.ClientSecret, rotate(e, a), old)
		})

		e.run("token from the same second", func(t *testing.T, e *agentEnv) {
			// iat and the cutoff are whole seconds: a token obtained with the
			// leaked secret 500 ms before rotation must die all the same.
			a := e.newAgent(agentReq{Name: "leaked-same-second"})
			base := nextSecond(100 * time.Millisecond)
			clk := holdClock(t, base)
			old, _ := e.agentToken(a, mcp)
			clk.set(base.Add(500 * time.Millisecond))
			secret := rotate(e, a)
			clk.set(base.Add(1200 * time.Millisecond))
			check(e, a, a.ClientSecret, secret, old)
		})

		e.run("to a public key", func(t *testing.T, e *agentEnv) {
			a := e.newAgent(agentReq{Name: "to-key"})
			old, _ := e.agentToken(a, mcp)
			setClock(t, 2*time.Second)
			k := newAgentKey(t)
			status, out := e.adminCall(http.MethodPost, "/v1/agents/"+a.ID+"/rotate", map[string]json.RawMessage{"public_key": k.pub})
			if status != http.StatusOK || out["token_endpoint_auth_method"] != "private_key_jwt" || out["client_secret"] != nil {
				t.Fatalf("rotate: %d %v", status, out)
			}
			status, out = e.clientCredentials(basic(a.ID, a.ClientSecret), mcp)
			wantError(t, status, out, http.StatusUnauthorized, "invalid_client", "")
			e.mustToken(e.clientCredentials(jwtAuth(e.assertion(k, a.ID, nil)), mcp))
			if e.active(old) {
				t.Fatal("the token of the old secret is active")
			}
		})

		e.run("revoked agent", func(t *testing.T, e *agentEnv) {
			a := e.newAgent(agentReq{Name: "gone"})
			e.adminCall(http.MethodPost, "/v1/agents/"+a.ID+"/revoke", nil)
			status, out := e.adminCall(http.MethodPost, "/v1/agents/"+a.ID+"/rotate", nil)
			if status != http.StatusConflict {
				t.Fatalf("rotating a revoked agent: %d %v", status, out)
			}
		})
	})
}

// TestAdminRevokeUser: a revoked user's tokens die everywhere and nothing
// more is minted for them.
func TestAdminRevokeUser(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *agentEnv) {
		mcp := url.Values{"resource": {testResource}}
		newUser := func(e *agentEnv, name string) (string, *admin.Agent) {
			e.t.Helper()
			status, u := e.adminCall(http.MethodPost, "/v1/users", map[string]any{"name": name, "entitlements": aliceEntitlements})
			if status != http.StatusCreated {
				e.t.Fatalf("create user: %d %v", status, u)
			}
			return u["id"].(string), e.newAgent(agentReq{Owner: u["id"].(string)})
		}
		revoke := func(e *agentEnv, id string) {
			e.t.Helper()
			status, out := e.adminCall(http.MethodPost, "/v1/users/"+id+"/revoke", nil)
			if status != http.StatusOK || !slices.Equal(idList(out["revoked"]), []string{id}) {
				e.t.Fatalf("revoke user: %d %v", status, out)
			}
		}

		e.run("tokens and mints", func(t *testing.T, e *agentEnv) {
			uid, a := newUser(e, "carol")
			raw, _ := e.agentToken(a, mcp)
			setClock(t, 2*time.Second)
			revoke(e, uid)
			if e.active(raw) {
				t.Fatal("a revoked user's token is active")
			}
			status, out := e.exchange(basic(a.ID, a.ClientSecret), raw, url.Values{"scope": {"repo:read"}})
			wantError(t, status, out, http.StatusBadRequest, "invalid_grant", "")
			if status, out := e.clientCredentials(basic(a.ID, a.ClientSecret), mcp); status == http.StatusOK {
				t.Fatalf("a revoked user's agent got a token: %v", out)
			}
			if status, out := e.adminCall(http.MethodPost, "/v1/agents", map[string]any{"name": "late", "owner": uid, "scopes": []string{"repo:read"}}); status == http.StatusCreated {
				t.Fatalf("an agent was created for a revoked user: %v", out)
			}
			if status, out := e.adminCall(http.MethodGet, "/v1/users/"+uid, nil); status != http.StatusOK || out["revoked_at"] == nil {
				t.Fatalf("show revoked user: %d %v", status, out)
			}
			// Other users are untouched.
			e.agentToken(e.newAgent(agentReq{Name: "alice's"}), mcp)
		})

		e.run("gateway cutoff for a token of an earlier second", func(t *testing.T, e *agentEnv) {
			uid, a := newUser(e, "dave")
			base := nextSecond(100 * time.Millisecond)
			clk := holdClock(t, base)
			_, tok := e.agentToken(a, mcp)
			clk.set(base.Add(1500 * time.Millisecond))
			revoke(e, uid)
			if !e.gatewayRejects(tok) {
				t.Fatal("a gateway still accepts the revoked user's token")
			}
		})

		e.run("gateway cutoff for a token of the same second", func(t *testing.T, e *agentEnv) {
			uid, a := newUser(e, "erin")
			base := nextSecond(100 * time.Millisecond)
			clk := holdClock(t, base)
			_, tok := e.agentToken(a, mcp)
			clk.set(base.Add(500 * time.Millisecond))
			revoke(e, uid)
			if !e.gatewayRejects(tok) {
				t.Fatal("a gateway still accepts a token minted 400 ms before the user was revoked (the sub cutoff compares whole seconds)")
			}
		})
	})
}

// TestAdminKeyRotation: a new signing key is published at once and signs
// after KeyPublishAhead; tokens of the old key stay valid.
func TestAdminKeyRotation(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *agentEnv) {
		mcp := url.Values{"resource": {testResource}}
		a := e.newAgent(agentReq{})
		oldRaw, old := e.agentToken(a, mcp)
		status, out := e.adminCall(http.MethodPost, "/v1/keys/rotate", nil)
		if status != http.StatusOK {
			t.Fatalf("rotate keys: %d %v", status, out)
		}
		kid := out["kid"].(string)
		if kid == old.KeyID {
			t.Fatal("rotation returned the old kid")
		}
		var set struct {
			Keys []struct {
				KID string `json:"kid"`
				D   string `json:"d"`
			} `json:"keys"`
		}
		if err := json.Unmarshal(e.s().JWKS(), &set); err != nil {
			t.Fatal(err)
		}
		var kids []string
		for _, k := range set.Keys {
			if k.D != "" {
				t.Fatal("the JWKS publishes a private key")
			}
			kids = append(kids, k.KID)
		}
		if !slices.Contains(kids, kid) || !slices.Contains(kids, old.KeyID) {
			t.Fatalf("JWKS kids %v, want the new %s and the old %s", kids, kid, old.KeyID)
		}
		if _, tok := e.agentToken(a, mcp); tok.KeyID != old.KeyID {
			t.Fatal("the new key signs before it has been published for KeyPublishAhead")
		}
		setClock(t, 3*time.Second)
		if _, tok := e.agentToken(a, mcp); tok.KeyID != kid {
			t.Fatalf("after KeyPublishAhead tokens are signed by %s, want %s", tok.KeyID, kid)
		}
		if !e.active(oldRaw) {
			t.Fatal("a token of the retired key is no longer active")
		}
	}, func(c *Config) { c.KeyPublishAhead = 2 * time.Second })
}

// TestAdminClients: resource servers and confidential clients are created
// with a secret shown once; a resource server names the resources it
// serves (absolute URLs), the only ones it may introspect tokens for.
func TestAdminClients(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *agentEnv) {
		status, out := e.adminCall(http.MethodPost, "/v1/clients", map[string]any{"name": "gateway", "resources": []string{testResource}})
		if status != http.StatusCreated || out["kind"] != "resource_server" || !strings.HasPrefix(out["client_id"].(string), "cli_") || out["client_secret"] == "" ||
			!slices.Equal(idList(out["resources"]), []string{testResource}) {
			t.Fatalf("create client: %d %v", status, out)
		}
		rs := out["client_id"].(string)
		status, out = e.adminCall(http.MethodPost, "/v1/clients", map[string]any{"name": "app", "kind": "confidential", "redirect_uris": []string{"https://app.example/cb"}})
		if status != http.StatusCreated {
			t.Fatalf("create confidential client: %d %v", status, out)
		}
		app := out["client_id"].(string)
		for name, body := range map[string]any{
			"unknown kind":                        map[string]any{"name": "x", "kind": "public"},
			"no name":                             map[string]any{"kind": "resource_server", "resources": []string{testResource}},
			"bad redirect uri":                    map[string]any{"name": "x", "kind": "confidential", "redirect_uris": []string{"http://evil.example/cb"}},
			"resource server without resources":   map[string]any{"name": "x"},
			"resource server with no resources":   map[string]any{"name": "x", "kind": "resource_server", "resources": []string{}},
			"relative resource":                   map[string]any{"name": "x", "resources": []string{"/mcp"}},
			"resource without a host":             map[string]any{"name": "x", "resources": []string{"https:///mcp"}},
			"resource of another scheme":          map[string]any{"name": "x", "resources": []string{"ftp://files.example/"}},
			"resource with a fragment":            map[string]any{"name": "x", "resources": []string{"https://api.example/mcp#x"}},
			"resource with userinfo":              map[string]any{"name": "x", "resources": []string{"https://u:p@api.example/mcp"}},
			"empty resource":                      map[string]any{"name": "x", "resources": []string{""}},
			"repeated resource":                   map[string]any{"name": "x", "resources": []string{testResource, testResource}},
			"resources for a confidential client": map[string]any{"name": "x", "kind": "confidential", "resources": []string{testResource}},
		} {
			e.run(name, func(t *testing.T, e *agentEnv) {
				if status, out := e.adminCall(http.MethodPost, "/v1/clients", body); status != http.StatusBadRequest || out["error"] != "invalid_request" {
					t.Fatalf("got %d %v", status, out)
				}
			})
		}

		e.run("set resources", func(t *testing.T, e *agentEnv) {
			status, out := e.adminCall(http.MethodPut, "/v1/clients/"+rs+"/resources", map[string]any{"resources": []string{otherResource, testResource}})
			if status != http.StatusOK || !slices.Equal(idList(out["resources"]), []string{otherResource, testResource}) {
				t.Fatalf("set resources: %d %v", status, out)
			}
			c, err := e.st.GetClient(context.Background(), rs)
			if err != nil || !slices.Equal(c.Resources, []string{otherResource, testResource}) {
				t.Fatalf("stored client %+v, %v", c, err)
			}
			for name, tc := range map[string]struct {
				id   string
				body any
				want int
			}{
				"unknown client":        {"cli_nope", map[string]any{"resources": []string{testResource}}, http.StatusNotFound},
				"not a resource server": {app, map[string]any{"resources": []string{testResource}}, http.StatusBadRequest},
				"no resources":          {rs, map[string]any{"resources": []string{}}, http.StatusBadRequest},
				"relative resource":     {rs, map[string]any{"resources": []string{"mcp"}}, http.StatusBadRequest},
				"unknown member":        {rs, map[string]any{"resources": []string{testResource}, "kind": "confidential"}, http.StatusBadRequest},
			} {
				e.run(name, func(t *testing.T, e *agentEnv) {
					if status, out := e.adminCall(http.MethodPut, "/v1/clients/"+tc.id+"/resources", tc.body); status != tc.want {
						t.Fatalf("got %d %v, want %d", status, out, tc.want)
					}
				})
			}
		})
	})
}

func idList(v any) []string {
	var out []string
	l, _ := v.([]any)
	for _, x := range l {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
