package admin_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kavachgate/kavach/admin"
	"github.com/kavachgate/kavach/issuer"
	"github.com/kavachgate/kavach/issuer/store"
	"github.com/kavachgate/kavach/policy"
	"github.com/kavachgate/kavach/revocation"
)

const resource = "https://mcp.example/mcp"

// issuerClient runs a real issuer (SQLite) whose admin API is served
// behind a bearer check, and returns a Client for it and the revocation
// set the issuer publishes to.
func issuerClient(t *testing.T) (*admin.Client, *revocation.Memory) {
	t.Helper()
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "kavach.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	set := revocation.NewMemory(revocation.MemoryOptions{})
	s, err := issuer.New(issuer.Config{
		Issuer: "https://issuer.example", Store: st, Revoked: set,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer s3cret" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":"unauthorized","error_description":"admin token rejected"}`))
			return
		}
		s.AdminHandler().ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return &admin.Client{BaseURL: srv.URL, Token: "s3cret"}, set
}

// TestClientAgainstIssuer: every operation of the issuer API through the
// typed client, with what the issuer made and what reached the gateways'
// revocation set.
func TestClientAgainstIssuer(t *testing.T) {
	t.Parallel()
	c, set := issuerClient(t)
	ctx := context.Background()

	u, err := c.CreateUser(ctx, admin.UserCreate{ID: "usr_alice", Name: "alice", Password: "correct horse battery",
		Entitlements: admin.Entitlements{resource: {"mcp:review", "repository:read", "repository:write"}}})
	if err != nil || u.ID != "usr_alice" || u.Name != "alice" || u.CreatedAt.IsZero() || u.RevokedAt != nil {
		t.Fatalf("CreateUser: %+v %v", u, err)
	}
	if u, err = c.SetEntitlements(ctx, "usr_alice", admin.Entitlements{resource: {"mcp:review", "repository:read"}}); err != nil || len(u.Entitlements[resource]) != 2 {
		t.Fatalf("SetEntitlements: %+v %v", u, err)
	}
	orch, err := c.CreateAgent(ctx, admin.AgentCreate{Name: "orchestrator", Owner: "usr_alice", Scopes: []string{"mcp:review", "repository:read"},
		TTL: admin.Duration(time.Hour), Constraints: policy.Constraints{Hosts: policy.StringList{"mcp.example"}}})
	if err != nil || orch.ClientSecret == "" || orch.Auth != "client_secret_basic" || orch.Owner != "usr_alice" ||
		orch.ExpiresAt.Sub(orch.CreatedAt) != time.Hour || orch.Constraints == nil || orch.Constraints.Hosts[0] != "mcp.example" {
		t.Fatalf("CreateAgent: %+v %v", orch, err)
	}
	rev, err := c.CreateChild(ctx, orch.ID, admin.AgentCreate{Name: "reviewer", Scopes: []string{"repository:read"}})
	if err != nil || rev.Parent != orch.ID || !slices.Equal(rev.Agents, []string{orch.ID, rev.ID}) || len(rev.Chain) != 2 || rev.Grant != rev.Chain[1] {
		t.Fatalf("CreateChild: %+v %v", rev, err)
	}
	if got, err := c.Agent(ctx, orch.ID); err != nil || got.ClientSecret != "" || !slices.Equal(got.Children, []string{rev.ID}) {
		t.Fatalf("Agent: %+v %v", got, err)
	}
	if l, err := c.Agents(ctx, "usr_alice"); err != nil || len(l) != 2 {
		t.Fatalf("Agents(usr_alice): %d %v", len(l), err)
	}
	if _, err := c.Agents(ctx, "usr_nobody"); !admin.IsCode(err, "not_found") {
		t.Fatalf("Agents(usr_nobody): %v", err)
	}
	if l, err := c.Users(ctx); err != nil || len(l) != 1 || l[0].ID != "usr_alice" {
		t.Fatalf("Users: %+v %v", l, err)
	}
	if got, err := c.User(ctx, "usr_alice"); err != nil || got.Name != "alice" {
		t.Fatalf("User: %+v %v", got, err)
	}
	cred, err := c.RotateAgent(ctx, rev.ID, nil)
	if err != nil || cred.ID != rev.ID || cred.ClientSecret == "" || cred.ClientSecret == rev.ClientSecret || cred.Auth != "client_secret_basic" {
		t.Fatalf("RotateAgent: %+v %v", cred, err)
	}
	if !set.RevokedBefore(revocation.CutoffClient, rev.ID, time.Now().Unix()) {
		t.Error("rotation did not cut the old credential's tokens off at the gateways")
	}

	rs, err := c.CreateClient(ctx, admin.ClientCreate{Name: "rs", Resources: []string{resource}})
	if err != nil || rs.Kind != admin.ClientResourceServer || rs.ClientSecret == "" || !slices.Equal(rs.Resources, []string{resource}) {
		t.Fatalf("CreateClient: %+v %v", rs, err)
	}
	if got, err := c.SetClientResources(ctx, rs.ClientID, []string{resource, "https://api.example/"}); err != nil || len(got.Resources) != 2 || got.ClientID != rs.ClientID {
		t.Fatalf("SetClientResources: %+v %v", got, err)
	}
	app, err := c.CreateClient(ctx, admin.ClientCreate{Name: "app", Kind: admin.ClientConfidential, RedirectURIs: []string{"https://app.example/cb"}})
	if err != nil || app.Kind != admin.ClientConfidential || app.Resources != nil {
		t.Fatalf("CreateClient(confidential): %+v %v", app, err)
	}
	if got, err := c.RevokeClient(ctx, app.ClientID); err != nil || got.Revoked[0] != app.ClientID {
		t.Fatalf("RevokeClient: %+v %v", got, err)
	}
	if got, err := c.RevokeClient(ctx, "https://tools.example/client.json"); err != nil || got.Revoked[0] != "https://tools.example/client.json" {
		t.Fatalf("RevokeClient(metadata URL): %+v %v", got, err)
	}
	if got, err := c.RevokeClients(ctx, admin.ClientsRevoke{Host: "Tools.Example."}); err != nil || got.Host != "tools.example" || got.Clients == nil {
		t.Fatalf("RevokeClients(host): %+v %v", got, err)
	}

	k, err := c.RotateKeys(ctx)
	if err != nil || k.KID == "" || !k.SignsFrom.After(k.PublishedAt) {
		t.Fatalf("RotateKeys: %+v %v", k, err)
	}
	if got, err := c.RevokeKey(ctx, k.KID); err != nil || !slices.Equal(got.Revoked, []string{k.KID}) {
		t.Fatalf("RevokeKey: %+v %v", got, err)
	}
	if got, err := c.RevokeAgent(ctx, orch.ID); err != nil || !slices.Contains(got.Revoked, rev.ID) || !set.IsRevoked(orch.ID) {
		t.Fatalf("RevokeAgent: %+v %v", got, err)
	}
	if got, err := c.RevokeUser(ctx, "usr_alice"); err != nil || !slices.Equal(got.Revoked, []string{"usr_alice"}) {
		t.Fatalf("RevokeUser: %+v %v", got, err)
	}
	if n, err := c.Reseed(ctx); err != nil || n.Entries == 0 {
		t.Fatalf("Reseed: %+v %v", n, err)
	}
}

// TestClientErrors: the issuer's error answers arrive as *admin.Error with
// status, code and description, which a caller switches on.
func TestClientErrors(t *testing.T) {
	t.Parallel()
	c, _ := issuerClient(t)
	ctx := context.Background()
	if _, err := c.CreateUser(ctx, admin.UserCreate{ID: "usr_bob", Name: "bob", Entitlements: admin.Entitlements{resource: {"repository:read"}}}); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("n", issuer.MaxNameLen+1)
	for _, tc := range []struct {
		name   string
		call   func() error
		status int
		code   string
		desc   string // a prefix
	}{
		{"beyond the owner's entitlements", func() error {
			_, err := c.CreateAgent(ctx, admin.AgentCreate{Name: "a", Owner: "usr_bob", Scopes: []string{"repository:write"}})
			return err
		}, 400, "invalid_scope", `scope: "repository:write" beyond the owner's entitlements`},
		{"agent name over the limit", func() error {
			_, err := c.CreateAgent(ctx, admin.AgentCreate{Name: long, Owner: "usr_bob", Scopes: []string{"repository:read"}})
			return err
		}, 400, "invalid_request", "name is required (at most 128 bytes)"},
		{"user name over the limit", func() error {
			_, err := c.CreateUser(ctx, admin.UserCreate{Name: long})
			return err
		}, 400, "invalid_request", "name is required (at most 128 bytes)"},
		{"user exists", func() error {
			_, err := c.CreateUser(ctx, admin.UserCreate{ID: "usr_bob", Name: "bob"})
			return err
		}, 409, "conflict", "already exists"},
		{"unknown agent", func() error { _, err := c.Agent(ctx, "agt_nobody"); return err }, 404, "not_found", "not found"},
		{"child with an owner", func() error {
			_, err := c.CreateChild(ctx, "agt_nobody", admin.AgentCreate{Name: "c", Owner: "usr_bob", Scopes: []string{"repository:read"}})
			return err
		}, 400, "invalid_request", "a child's owner is its parent's"},
		{"client id that is none", func() error { _, err := c.RevokeClient(ctx, "agt_x"); return err }, 404, "not_found", "no client"},
		{"host and client id", func() error {
			_, err := c.RevokeClients(ctx, admin.ClientsRevoke{ClientID: "cli_x", Host: "tools.example"})
			return err
		}, 400, "invalid_request", "give exactly one of client_id and host"},
	} {
		err := tc.call()
		var ae *admin.Error
		if !errors.As(err, &ae) || ae.Status != tc.status || ae.Code != tc.code || !strings.HasPrefix(ae.Description, tc.desc) {
			t.Errorf("%s: %#v, want %d %s %q…", tc.name, err, tc.status, tc.code, tc.desc)
			continue
		}
		if !admin.IsCode(err, tc.code) || !strings.Contains(err.Error(), tc.code) {
			t.Errorf("%s: IsCode or Error() %q", tc.name, err.Error())
		}
	}
	bad := *c
	bad.Token = "wrong"
	if _, err := bad.Users(ctx); !admin.IsCode(err, "unauthorized") || strings.Contains(err.Error(), "wrong") {
		t.Errorf("wrong token: %v", err)
	}
}

// TestClientWire: the requests the client sends (issuer selector on the
// issuer API only, no body where the listener wants none) and how it
// reads answers that are not the listener's JSON, readiness included.
func TestClientWire(t *testing.T) {
	t.Parallel()
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got = append(got, r.Method+" "+r.URL.RequestURI()+" "+string(body))
		switch r.URL.Path {
		case "/readyz":
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"mode":"redis","fresh":false,"entries":3,"last_sync_age_seconds":12.5,"epoch_missing":false}`))
		case "/v1/revocations":
			_, _ = w.Write([]byte(`{"revoked":{"id":"agt_x","until":"2030-01-01T00:00:00Z"}}`))
		case "/v1/agents/agt_x/rotate":
			_, _ = w.Write([]byte(`{"id":"agt_x","client_id":"agt_x","token_endpoint_auth_method":"private_key_jwt"}`))
		default:
			w.WriteHeader(http.StatusBadGateway)
			_, _ = w.Write([]byte("<html>bad gateway</html>\nmore"))
		}
	}))
	defer srv.Close()
	c := &admin.Client{BaseURL: srv.URL + "/", Token: "t", Issuer: "https://b.example"}
	ctx := context.Background()

	if e, err := c.Revoke(ctx, admin.Revocation{ID: "agt_x"}); err != nil || e.ID != "agt_x" || e.Until.Year() != 2030 {
		t.Errorf("Revoke: %+v %v", e, err)
	}
	if _, err := c.RotateAgent(ctx, "agt_x", nil); err != nil {
		t.Errorf("RotateAgent: %v", err)
	}
	if _, err := c.RotateAgent(ctx, "agt_x", []byte(`{"kty":"OKP"}`)); err != nil {
		t.Errorf("RotateAgent(key): %v", err)
	}
	_, err := c.Agents(ctx, "usr_a b")
	var ae *admin.Error
	if !errors.As(err, &ae) || ae.Status != http.StatusBadGateway || ae.Code != "" || ae.Description != "<html>bad gateway</html>" {
		t.Errorf("a proxy's page: %#v", err)
	}
	r, err := c.Ready(ctx)
	if !admin.IsCode(err, "not_ready") || r == nil || r.Fresh || r.Entries != 3 || r.Mode != "redis" {
		t.Errorf("Ready: %+v %v", r, err)
	}
	want := []string{
		`POST /v1/revocations {"id":"agt_x"}`,
		"POST /v1/agents/agt_x/rotate?issuer=https%3A%2F%2Fb.example ",
		`POST /v1/agents/agt_x/rotate?issuer=https%3A%2F%2Fb.example {"public_key":{"kty":"OKP"}}`,
		"GET /v1/agents?issuer=https%3A%2F%2Fb.example&owner=usr_a+b ",
		"GET /readyz ",
	}
	if !slices.Equal(got, want) {
		t.Errorf("requests\n%q\nwant\n%q", got, want)
	}
}
