package integration

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// TestRevokeMetadataDocumentClient: `kavach client revoke <URL>` through
// the real admin listener (the URL escaped into one path segment) revokes
// a client ID metadata document client with the cascade of a registered
// client — its refresh token is refused, the gateway rejects its access
// token, a new authorization is refused on the issuer's page — and all of
// it still holds after a restart.
func TestRevokeMetadataDocumentClient(t *testing.T) {
	f := startIssuerWith(t, "sqlite ./data/kavach.db\n\t\tdev_loopback_client_metadata", "")
	ctx := context.Background()
	const cb = "http://127.0.0.1:9/cb" // never reached: the sign-in stops at the redirect
	docs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"client_id": "http://" + r.Host + r.URL.RequestURI(), "client_name": "Doc Tool",
			"redirect_uris": []string{cb}, "token_endpoint_auth_method": "none",
		})
	}))
	t.Cleanup(docs.Close)
	clientID := docs.URL + "/client.json"
	f.createUser(t, "usr_bob", "bob", "bob-password-1", map[string][]string{f.resource: {"repo:read"}})

	verifier := strings.Repeat("v", 43)
	sum := sha256.Sum256([]byte(verifier))
	authURL := f.issuer + "/oauth/authorize?" + url.Values{
		"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {cb}, "state": {"s1"},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
		"resource": {f.resource}, "scope": {"repo:read"},
	}.Encode()
	res, err := signInOverHTTP(ctx, authURL, cb, "bob", "bob-password-1")
	if err != nil {
		t.Fatal(err)
	}
	tokenReq := func(form url.Values) (int, map[string]any) {
		t.Helper()
		req := newReq(t, http.MethodPost, f.issuer+"/oauth/token", "", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r := do(t, req)
		var out map[string]any
		_ = json.Unmarshal([]byte(r.Body), &out)
		return r.Status, out
	}
	status, tok := tokenReq(url.Values{"grant_type": {"authorization_code"}, "code": {res.Code}, "client_id": {clientID},
		"redirect_uri": {cb}, "code_verifier": {verifier}})
	if status != http.StatusOK {
		t.Fatalf("code exchange: %d %v", status, tok)
	}
	access, _ := tok["access_token"].(string)
	refresh, _ := tok["refresh_token"].(string)
	if r := f.get(t, "/api/repos/x", access); r.Status != http.StatusOK {
		t.Fatalf("the client's token before the revocation: %d %s", r.Status, r.Body)
	}

	var out struct {
		Revoked []string `json:"revoked"`
	}
	f.cli(t, &out, "client", "revoke", clientID)
	if !slices.Contains(out.Revoked, clientID) || len(out.Revoked) < 2 {
		t.Errorf("kavach client revoke printed %v, want the client and its consent", out.Revoked)
	}

	check := func(when string) {
		t.Helper()
		if r := f.get(t, "/api/repos/x", access); r.Status != http.StatusUnauthorized {
			t.Errorf("%s: the revoked client's access token: %d, want 401", when, r.Status)
		}
		if status, out := tokenReq(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "client_id": {clientID}}); status != http.StatusUnauthorized {
			t.Errorf("%s: the revoked client's refresh: %d %v, want 401 invalid_client", when, status, out)
		}
		r := do(t, newReq(t, http.MethodGet, authURL, "", nil))
		if r.Status != http.StatusBadRequest || r.Header.Get("Location") != "" || !strings.Contains(r.Body, "revoked") {
			t.Errorf("%s: a new authorization for the revoked client: %d %q, want a 400 page saying it is revoked", when, r.Status, r.Header.Get("Location"))
		}
	}
	check("after the revocation")
	f.restart(t)
	check("after a restart")

	// By host, through the CLI flag.
	var byHost struct {
		Host string `json:"host"`
	}
	f.cli(t, &byHost, "client", "revoke", "--host", "127.0.0.1")
	if byHost.Host != "127.0.0.1" {
		t.Errorf("kavach client revoke --host answered %+v", byHost)
	}
	if _, _, err := kavachEnv(f.dir, f.env, "client", "revoke", "--admin", f.admin, "https://tools.example/c.json", "--host", "tools.example"); err == nil {
		t.Error("kavach client revoke accepted a client id and --host together")
	}
}
