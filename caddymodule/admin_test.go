package caddymodule

import (
	"encoding/json"
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

// TestAdminErrorShape: every error of the admin listener, including the
// ones net/http writes for an unknown path or method, is
// {"error","error_description"} JSON.
func TestAdminErrorShape(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/agents/{id}/revoke", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"error":"not_found","error_description":"not found"}`))
	})
	h := requireBearer("s3cret", jsonErrors(mux))
	for _, tt := range []struct {
		method, path string
		status       int
		code         string
	}{
		{http.MethodGet, "/v1/nothing", http.StatusNotFound, "not_found"},
		{http.MethodGet, "/v1/agents/agt_x/revoke", http.StatusMethodNotAllowed, "method_not_allowed"},
		{http.MethodPost, "/v1/agents/agt_x/revoke", http.StatusNotFound, "not_found"},
	} {
		r := httptest.NewRequest(tt.method, tt.path, nil)
		r.Header.Set("Authorization", "Bearer s3cret")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		var body struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		err := json.Unmarshal(w.Body.Bytes(), &body)
		if w.Code != tt.status || err != nil || body.Error != tt.code || body.Description == "" ||
			w.Header().Get("Content-Type") != "application/json" {
			t.Errorf("%s %s: %d %q %q, want %d {error: %s, error_description}", tt.method, tt.path, w.Code, w.Header().Get("Content-Type"), w.Body.String(), tt.status, tt.code)
		}
		if tt.status == http.StatusMethodNotAllowed && w.Header().Get("Allow") == "" {
			t.Errorf("405 without Allow")
		}
	}
}
