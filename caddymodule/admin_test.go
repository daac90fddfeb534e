package caddymodule

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestRequireBearer: a caller without a token is told one is required, a
// caller with the wrong one that it was rejected.
func TestRequireBearer(t *testing.T) {
	t.Parallel()
	h := requireBearer("s3cret", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	for _, tt := range []struct {
		auth, want string
		status     int
	}{
		{"", `"admin token required"`, http.StatusUnauthorized},
		{"Bearer wrong", `"admin token rejected"`, http.StatusUnauthorized},
		{"Bearer s3cret", "", http.StatusNoContent},
	} {
		r := httptest.NewRequest(http.MethodGet, "/v1/agents", nil)
		if tt.auth != "" {
			r.Header.Set("Authorization", tt.auth)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tt.status || !strings.Contains(w.Body.String(), tt.want) {
			t.Errorf("Authorization %q: %d %q, want %d with %s", tt.auth, w.Code, w.Body.String(), tt.status, tt.want)
		}
	}
}

// TestAdminCallRejected: the CLI says the token was rejected, not that one
// is missing.
func TestAdminCallRejected(t *testing.T) {
	t.Setenv("KAVACH_ADMIN_TOKEN", "wrong")
	srv := httptest.NewServer(requireBearer("s3cret", http.NotFoundHandler()))
	defer srv.Close()
	_, err := adminCall(strings.TrimPrefix(srv.URL, "http://"), http.MethodGet, "/v1/agents", nil)
	if err == nil || !strings.Contains(err.Error(), "admin token rejected") || strings.Contains(err.Error(), "required") {
		t.Fatalf("adminCall = %v, want an error saying the admin token was rejected", err)
	}
}
