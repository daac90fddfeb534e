package caddymodule

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

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

// requireBearer stands in for the admin listener's bearer check (package
// node's) in front of a bare issuer admin handler, for the CLI's tests.
func requireBearer(secret string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+secret {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":"unauthorized","error_description":"admin token rejected"}` + "\n"))
			return
		}
		next.ServeHTTP(w, r)
	})
}
