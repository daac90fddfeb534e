package issuer

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kavachgate/kavach/issuer/store"
	"github.com/kavachgate/kavach/token"
)

// TestIntrospection (RFC 7662): the admin token learns about any token, a
// resource server about tokens for its resources, an agent only about its
// own, a public client nothing; a dead token is {"active": false} and
// nothing more (§2.2).
func TestIntrospection(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *agentEnv) {
		mcp := url.Values{"resource": {testResource}}
		a := e.newAgent(agentReq{Name: "a"})
		ck := newAgentKey(t)
		c := e.newChild(a.ID, agentReq{PublicKey: ck.pub})
		other := e.newAgent(agentReq{Name: "other"})
		raw, _ := e.agentToken(a, url.Values{"resource": {testResource}, "scope": {"repo:read mcp:github"}})
		// A delegated token: act names the child, then the parent.
		draw, _ := e.mustToken(e.exchange(basic(a.ID, a.ClientSecret), raw, actor(e.assertion(ck, c.ID, nil))))

		clientCred := func(e *agentEnv, kind string, resources ...string) auth {
			e.t.Helper()
			body := map[string]any{"name": kind, "kind": kind}
			if resources != nil {
				body["resources"] = resources
			}
			status, out := e.adminCall(http.MethodPost, "/v1/clients", body)
			if status != http.StatusCreated {
				e.t.Fatalf("create client: %d %v", status, out)
			}
			return basic(out["client_id"].(string), out["client_secret"].(string))
		}
		wantActive := func(e *agentEnv, tok string, as auth) map[string]any {
			e.t.Helper()
			status, out := e.introspect(tok, as)
			if status != http.StatusOK || out["active"] != true {
				e.t.Fatalf("introspect: %d %v, want active", status, out)
			}
			return out
		}
		wantInactive := func(e *agentEnv, tok string, as auth) {
			e.t.Helper()
			status, out := e.introspect(tok, as)
			if status != http.StatusOK || len(out) != 1 || out["active"] != false {
				e.t.Fatalf("introspect: %d %v, want exactly {\"active\": false}", status, out)
			}
		}

		e.run("admin token", func(t *testing.T, e *agentEnv) {
			out := wantActive(e, draw, nil)
			act, _ := out["act"].(map[string]any)
			prior, _ := act["act"].(map[string]any)
			if act["sub"] != c.ID || prior["sub"] != a.ID || prior["act"] != nil {
				t.Fatalf("act %v, want %s acting after %s", out["act"], c.ID, a.ID)
			}
			if out["sub"] != e.user || out["client_id"] != c.ID || out["scope"] != "mcp:github repo:read" || out["iss"] != e.cfg.Issuer || out["token_type"] != "Bearer" {
				t.Fatalf("introspection %v", out)
			}
			if aud, _ := out["aud"].([]any); len(aud) != 1 || aud[0] != testResource {
				t.Fatalf("aud %v", out["aud"])
			}
			kvc, _ := out["kvc"].(map[string]any)
			if !slices.Equal(idList(kvc["chain"]), c.Chain) || !slices.Equal(idList(kvc["agents"]), []string{a.ID, c.ID}) {
				t.Fatalf("kvc %v", out["kvc"])
			}
			if out["exp"].(float64) <= float64(time.Now().Unix()) || out["jti"] == "" {
				t.Fatalf("exp %v jti %v", out["exp"], out["jti"])
			}
		})

		e.run("wrong admin token", func(t *testing.T, e *agentEnv) {
			status, out := e.introspect(raw, func(r *http.Request, _ url.Values) { r.Header.Set("Authorization", "Bearer not-the-admin-token") })
			wantError(t, status, out, http.StatusUnauthorized, "invalid_client", "")
		})

		e.run("resource server sees tokens for its resources", func(t *testing.T, e *agentEnv) {
			rs := clientCred(e, "resource_server", testResource)
			if out := wantActive(e, raw, rs); out["client_id"] != a.ID {
				t.Fatalf("introspection %v", out)
			}
			if out := wantActive(e, draw, rs); out["act"] == nil {
				t.Fatalf("no act: %v", out)
			}
			wantActive(e, raw, clientCred(e, "resource_server", otherResource, testResource))
		})

		e.run("resource server does not see tokens of other audiences", func(t *testing.T, e *agentEnv) {
			// RFC 7662 §4: the server makes sure the caller may learn about
			// the token; a resource server is told only about tokens meant
			// for it.
			rs := clientCred(e, "resource_server", otherResource)
			wantInactive(e, raw, rs)
			wantInactive(e, draw, rs)
			oraw, _ := e.agentToken(a, url.Values{"resource": {otherResource}, "scope": {"api:read"}})
			wantActive(e, oraw, rs)
			wantInactive(e, oraw, clientCred(e, "resource_server", testResource))
			// Exactly the URL: not a prefix, not another path or scheme.
			for _, near := range []string{testResource + "/", strings.TrimSuffix(testResource, "/mcp"), strings.Replace(testResource, "https:", "http:", 1)} {
				wantInactive(e, raw, clientCred(e, "resource_server", near))
			}
		})

		e.run("resource server without resources sees nothing", func(t *testing.T, e *agentEnv) {
			// One registered before resources existed: it fails closed
			// until an operator gives it its resources.
			secret := newSecret()
			rs := &store.Client{ID: token.NewID(token.PrefixClient), Name: "legacy", Kind: store.ClientResourceServer,
				SecretHash: hashSecret(secret), CreatedAt: now()}
			if err := e.st.CreateClient(context.Background(), rs); err != nil {
				t.Fatal(err)
			}
			wantInactive(e, raw, basic(rs.ID, secret))
			status, out := e.adminCall(http.MethodPut, "/v1/clients/"+rs.ID+"/resources", map[string]any{"resources": []string{testResource}})
			if status != http.StatusOK || !slices.Equal(idList(out["resources"]), []string{testResource}) {
				t.Fatalf("set resources: %d %v", status, out)
			}
			wantActive(e, raw, basic(rs.ID, secret))
		})

		e.run("confidential client sees only its own", func(t *testing.T, e *agentEnv) {
			wantInactive(e, raw, clientCred(e, "confidential"))
		})

		e.run("agent sees its own", func(t *testing.T, e *agentEnv) {
			wantActive(e, raw, basic(a.ID, a.ClientSecret))
			wantActive(e, draw, jwtAuth(e.assertion(ck, c.ID, nil)))
		})

		e.run("agent does not see another's", func(t *testing.T, e *agentEnv) {
			wantInactive(e, raw, basic(other.ID, other.ClientSecret))
			// Not even its child's token, delegated from its own.
			wantInactive(e, draw, basic(a.ID, a.ClientSecret))
			wantInactive(e, raw, jwtAuth(e.assertion(ck, c.ID, nil)))
		})

		e.run("public client refused", func(t *testing.T, e *agentEnv) {
			req, err := http.NewRequest(http.MethodPost, e.url(pathRegister), strings.NewReader(`{"client_name":"app","redirect_uris":["http://127.0.0.1/cb"]}`))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			status, reg := do(t, req)
			if status != http.StatusCreated {
				t.Fatalf("register: %d %v", status, reg)
			}
			status, out := e.introspect(raw, func(_ *http.Request, f url.Values) { f.Set("client_id", reg["client_id"].(string)) })
			wantError(t, status, out, http.StatusUnauthorized, "invalid_client", "")
		})

		e.run("no client authentication", func(t *testing.T, e *agentEnv) {
			status, out := e.introspect(raw, func(*http.Request, url.Values) {})
			wantError(t, status, out, http.StatusUnauthorized, "invalid_client", "")
		})

		e.run("wrong secret", func(t *testing.T, e *agentEnv) {
			status, out := e.introspect(raw, basic(a.ID, "wrong"))
			wantError(t, status, out, http.StatusUnauthorized, "invalid_client", "")
		})

		e.run("missing token", func(t *testing.T, e *agentEnv) {
			status, out := e.postOAuth(pathIntrospect, nil, basic(a.ID, a.ClientSecret))
			wantError(t, status, out, http.StatusBadRequest, "invalid_request", "")
		})

		e.run("revoked token", func(t *testing.T, e *agentEnv) {
			r := e.newAgent(agentReq{Name: "revoked"})
			rraw, _ := e.agentToken(r, mcp)
			wantActive(e, rraw, nil)
			if status, out := e.adminCall(http.MethodPost, "/v1/agents/"+r.ID+"/revoke", nil); status != http.StatusOK {
				t.Fatalf("revoke: %d %v", status, out)
			}
			wantInactive(e, rraw, nil)
			wantInactive(e, rraw, clientCred(e, "resource_server", testResource))
			// The revoked agent itself is no client any more.
			status, out := e.introspect(rraw, basic(r.ID, r.ClientSecret))
			wantError(t, status, out, http.StatusUnauthorized, "invalid_client", "")
		})

		e.run("token under a revoked parent", func(t *testing.T, e *agentEnv) {
			r := e.newAgent(agentReq{Name: "revoked-parent"})
			rc := e.newChild(r.ID, agentReq{})
			craw, _ := e.agentToken(rc, mcp)
			e.adminCall(http.MethodPost, "/v1/agents/"+r.ID+"/revoke", nil)
			wantInactive(e, craw, nil)
		})

		e.run("expired token", func(t *testing.T, e *agentEnv) {
			// Signed by the issuer's own key, expired ten minutes ago.
			_, tok := e.agentToken(a, mcp)
			c := tok.Claims
			c.ID = token.NewID(token.PrefixToken)
			c.IssuedAt = time.Now().Add(-15 * time.Minute).Unix()
			c.Expiry = time.Now().Add(-10 * time.Minute).Unix()
			key, err := e.s().keys.signer(now())
			if err != nil {
				t.Fatal(err)
			}
			expired, err := token.Mint(key, &c)
			if err != nil {
				t.Fatal(err)
			}
			wantInactive(e, expired, nil)
		})

		e.run("token of an expired agent", func(t *testing.T, e *agentEnv) {
			// Long enough for a slow machine to get its token first.
			x := e.newAgent(agentReq{Name: "brief", TTL: "10s"})
			xraw, _ := e.agentToken(x, mcp)
			setClock(t, 11*time.Second)
			wantInactive(e, xraw, nil)
		})

		e.run("not a token", func(t *testing.T, e *agentEnv) {
			wantInactive(e, "not.a.token", nil)
			wantInactive(e, raw[:len(raw)-4]+"AAAA", nil)
		})

	})
}

// TestRevokeEndpoint (RFC 7009): a client revokes its own access token; a
// request by anyone else is answered 200 and changes nothing (§2.2).
func TestRevokeEndpoint(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *agentEnv) {
		mcp := url.Values{"resource": {testResource}}
		a := e.newAgent(agentReq{Name: "a"})
		other := e.newAgent(agentReq{Name: "other"})
		revoke := func(e *agentEnv, tok string, as auth, extra url.Values) {
			e.t.Helper()
			form := url.Values{"token": {tok}}
			for k, v := range extra {
				form[k] = v
			}
			status, out := e.postOAuth(pathRevoke, form, as)
			if status != http.StatusOK || len(out) != 0 {
				e.t.Fatalf("revoke: %d %v, want 200 and no body", status, out)
			}
		}

		e.run("by its client", func(t *testing.T, e *agentEnv) {
			raw, tok := e.agentToken(a, mcp)
			keep, _ := e.agentToken(a, mcp)
			revoke(e, raw, basic(a.ID, a.ClientSecret), nil)
			if e.active(raw) {
				t.Fatal("revoked token still active")
			}
			if !e.rev.IsRevoked(tok.ID) || !e.gatewayRejects(tok) {
				t.Fatal("the gateways' set does not hold the jti")
			}
			if !e.active(keep) {
				t.Fatal("revoking one token revoked another of the same client")
			}
			e.agentToken(a, mcp)
		})

		e.run("by its client with a hint", func(t *testing.T, e *agentEnv) {
			raw, _ := e.agentToken(a, mcp)
			revoke(e, raw, post(a.ID, a.ClientSecret), url.Values{"token_type_hint": {"access_token"}})
			if e.active(raw) {
				t.Fatal("revoked token still active")
			}
		})

		e.run("by a keyed child", func(t *testing.T, e *agentEnv) {
			ck := newAgentKey(t)
			c := e.newChild(a.ID, agentReq{PublicKey: ck.pub})
			raw, _ := e.mustToken(e.clientCredentials(jwtAuth(e.assertion(ck, c.ID, nil)), mcp))
			revoke(e, raw, jwtAuth(e.assertion(ck, c.ID, nil)), nil)
			if e.active(raw) {
				t.Fatal("revoked token still active")
			}
		})

		e.run("by another agent", func(t *testing.T, e *agentEnv) {
			raw, tok := e.agentToken(a, mcp)
			revoke(e, raw, basic(other.ID, other.ClientSecret), nil)
			if !e.active(raw) || e.gatewayRejects(tok) {
				t.Fatal("another agent revoked the token")
			}
		})

		e.run("by a resource server", func(t *testing.T, e *agentEnv) {
			status, rs := e.adminCall(http.MethodPost, "/v1/clients", map[string]any{"name": "rs", "resources": []string{testResource}})
			if status != http.StatusCreated {
				t.Fatalf("create client: %d %v", status, rs)
			}
			raw, _ := e.agentToken(a, mcp)
			revoke(e, raw, basic(rs["client_id"].(string), rs["client_secret"].(string)), nil)
			if !e.active(raw) {
				t.Fatal("a resource server revoked an agent's token")
			}
		})

		e.run("by the parent of its client", func(t *testing.T, e *agentEnv) {
			c := e.newChild(a.ID, agentReq{Name: "c"})
			raw, _ := e.agentToken(c, mcp)
			revoke(e, raw, basic(a.ID, a.ClientSecret), nil)
			if !e.active(raw) {
				t.Fatal("the parent revoked its child's token through RFC 7009")
			}
		})

		e.run("unknown token", func(t *testing.T, e *agentEnv) {
			revoke(e, "not-a-token", basic(a.ID, a.ClientSecret), nil)
		})

		e.run("unauthenticated", func(t *testing.T, e *agentEnv) {
			raw, _ := e.agentToken(a, mcp)
			status, out := e.postOAuth(pathRevoke, url.Values{"token": {raw}}, nil)
			wantError(t, status, out, http.StatusUnauthorized, "invalid_client", "")
			status, out = e.postOAuth(pathRevoke, url.Values{"token": {raw}}, basic(a.ID, "wrong"))
			wantError(t, status, out, http.StatusUnauthorized, "invalid_client", "")
			if !e.active(raw) {
				t.Fatal("an unauthenticated request revoked the token")
			}
		})
	})
}
