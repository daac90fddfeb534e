package integration

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// adminToken is the bearer token of the fixture's admin API.
func (f *issuerFixture) adminToken() string {
	for _, kv := range f.env {
		if v, ok := strings.CutPrefix(kv, "KAVACH_ADMIN_TOKEN="); ok {
			return v
		}
	}
	return ""
}

// createUser creates a user who can sign in on the login page, through
// the admin API (POST /v1/users with a password; the CLI reads it from
// stdin, which kavachEnv does not feed).
func (f *issuerFixture) createUser(t *testing.T, id, name, password string, entitlements map[string][]string) {
	t.Helper()
	body, err := json.Marshal(map[string]any{"id": id, "name": name, "password": password, "entitlements": entitlements})
	if err != nil {
		t.Fatal(err)
	}
	req := newReq(t, http.MethodPost, "http://"+f.admin+"/v1/users", f.adminToken(), bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if r := do(t, req); r.Status != http.StatusCreated {
		t.Fatalf("creating user %s: %d %s", id, r.Status, r.Body)
	}
}

// registerClient registers a public client by RFC 7591 dynamic
// registration and returns its client_id.
func (f *issuerFixture) registerClient(t *testing.T, name string, redirectURIs ...string) string {
	t.Helper()
	body, err := json.Marshal(map[string]any{
		"client_name": name, "redirect_uris": redirectURIs, "token_endpoint_auth_method": "none",
		"grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"},
	})
	if err != nil {
		t.Fatal(err)
	}
	req := newReq(t, http.MethodPost, f.issuer+"/oauth/register", "", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	r := do(t, req)
	var out struct {
		ClientID                string   `json:"client_id"`
		RedirectURIs            []string `json:"redirect_uris"`
		TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	}
	if r.Status != http.StatusCreated || json.Unmarshal([]byte(r.Body), &out) != nil || out.ClientID == "" {
		t.Fatalf("registering a public client: %d %s", r.Status, r.Body)
	}
	if out.TokenEndpointAuthMethod != "none" || len(out.RedirectURIs) != len(redirectURIs) {
		t.Fatalf("registered client metadata differs from the request: %s", r.Body)
	}
	return out.ClientID
}

// artifactsDir is where tests keep files for a human to look at
// (screenshots): $KAVACH_TEST_ARTIFACTS, by default
// integration/testdata/artifacts (git-ignored).
func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("KAVACH_TEST_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("testdata", "artifacts")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		t.Fatalf("artifacts directory: %v", err)
	}
	return abs
}
