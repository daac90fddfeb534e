package cli

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kavachgate/kavach/admin"
	"github.com/kavachgate/kavach/issuer"
	"github.com/kavachgate/kavach/issuer/store"
	"github.com/kavachgate/kavach/revocation"
)

// run runs `kavach <args>` with env and stdin and returns stdout, stderr
// and the exit status.
func run(t *testing.T, env *Env, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	if env == nil {
		env = &Env{DataDir: t.TempDir()}
	}
	var out, errOut bytes.Buffer
	code = Run(context.Background(), env, args, strings.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), code
}

// bearer admits only requests with the admin token, answering 401 as the
// admin listener does.
func bearer(secret string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte("Bearer "+secret)) != 1 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":"unauthorized","error_description":"admin token rejected"}`))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// realIssuer runs a real issuer (SQLite) behind the admin listener's
// bearer check and returns the listener's address and a client for it.
func realIssuer(t *testing.T, secret string) (string, *admin.Client) {
	t.Helper()
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "kavach.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s, err := issuer.New(issuer.Config{
		Issuer: "https://issuer.example", Store: st,
		Revoked: revocation.NewMemory(revocation.MemoryOptions{}),
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	srv := httptest.NewServer(bearer(secret, s.AdminHandler()))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), &admin.Client{BaseURL: srv.URL, Token: secret}
}

// adminWithAgents is realIssuer with user alice, her agent orchestrator
// and its child reviewer. It returns the listener's address and the two
// agents' ids.
func adminWithAgents(t *testing.T, secret string) (addr, orch, rev string) {
	t.Helper()
	addr, c := realIssuer(t, secret)
	ctx := context.Background()
	const res = "https://mcp.example/mcp"
	scopes := []string{"mcp:review", "repository:read"}
	if _, err := c.CreateUser(ctx, admin.UserCreate{ID: "usr_alice", Name: "alice", Entitlements: admin.Entitlements{res: scopes}}); err != nil {
		t.Fatal(err)
	}
	o, err := c.CreateAgent(ctx, admin.AgentCreate{Name: "orchestrator", Owner: "usr_alice", Scopes: scopes})
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.CreateChild(ctx, o.ID, admin.AgentCreate{Name: "reviewer", Scopes: scopes})
	if err != nil {
		t.Fatal(err)
	}
	return addr, o.ID, r.ID
}

// request is one request a fake admin listener received.
type request struct {
	Method, Path, Query, Auth, ContentType string
	Body                                   map[string]any
	RawBody                                string
}

// fakeAdmin is an admin listener that records each request and answers
// it with the status and body answer gives.
func fakeAdmin(t *testing.T, answer func(r *request) (int, any)) (addr string, got func() []*request) {
	t.Helper()
	var reqs []*request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req := &request{Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery, Auth: r.Header.Get("Authorization"),
			ContentType: r.Header.Get("Content-Type"), RawBody: string(body)}
		if len(body) > 0 {
			if err := json.Unmarshal(body, &req.Body); err != nil {
				t.Errorf("%s %s: body is not a JSON object: %s", r.Method, r.URL, body)
			}
		}
		reqs = append(reqs, req)
		status, out := answer(req)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(out)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), func() []*request { return reqs }
}
