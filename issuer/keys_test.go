package issuer

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/kavachgate/kavach/revocation"
)

func (e *testEnv) jwksKIDs() []string {
	e.t.Helper()
	var set struct {
		Keys []struct {
			KID string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(e.s.JWKS(), &set); err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, k := range set.Keys {
		out = append(out, k.KID)
	}
	return out
}

func (e *testEnv) admin(method, path string) (int, map[string]any) {
	e.t.Helper()
	w := httptest.NewRecorder()
	e.s.AdminHandler().ServeHTTP(w, httptest.NewRequest(method, path, nil))
	var out map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &out)
	return w.Code, out
}

// TestKeyRotation: a rotated key is published at once but signs only
// after the publish-ahead interval (gateways learn it first); the old key
// stays published for the lifetime of its tokens.
func TestKeyRotation(t *testing.T) {
	e := newEnv(t)
	first := e.jwksKIDs()
	if len(first) != 1 {
		t.Fatalf("a new issuer publishes %d keys, want 1", len(first))
	}
	code, out := e.admin(http.MethodPost, "/v1/keys/rotate")
	if code != http.StatusOK {
		t.Fatalf("rotate: %d %v", code, out)
	}
	newKID := out["kid"].(string)
	if got := e.jwksKIDs(); len(got) != 2 {
		t.Fatalf("after rotation JWKS has %v, want the old and the new key", got)
	}
	k, err := e.s.keys.signer(now())
	if err != nil || k.KID != first[0] {
		t.Fatalf("right after rotation the signer is %v, want the old key %s", k, first[0])
	}
	setClock(t, DefaultKeyPublishAhead+time.Second)
	if k, err := e.s.keys.signer(now()); err != nil || k.KID != newKID {
		t.Fatalf("after the publish-ahead interval the signer is %v, want %s", k, newKID)
	}
	if got := e.jwksKIDs(); len(got) != 2 {
		t.Errorf("the old key left the JWKS while its tokens may live: %v", got)
	}
}

// TestKeyRevoke: revoking the signing key replaces it at once and cuts off
// every token it signed.
func TestKeyRevoke(t *testing.T) {
	e := newEnv(t)
	old := e.jwksKIDs()[0]
	before := time.Now().Unix()
	code, out := e.admin(http.MethodPost, "/v1/keys/"+old+"/revoke")
	if code != http.StatusOK {
		t.Fatalf("revoke key: %d %v", code, out)
	}
	k, err := e.s.keys.signer(now())
	if err != nil || k.KID == old {
		t.Fatalf("after revoking the signing key the signer is %v", k)
	}
	if !e.s.cfg.Revoked.RevokedBefore(revocation.CutoffKey, old, before) {
		t.Error("no issued-before cutoff for the revoked key's tokens")
	}
	if code, _ := e.admin(http.MethodPost, "/v1/keys/nope/revoke"); code != http.StatusNotFound {
		t.Errorf("revoking an unknown kid: %d", code)
	}
}

// TestClientRevoke: a revoked OAuth client can no longer authenticate and
// every token it holds is cut off by a client_id cutoff.
func TestClientRevoke(t *testing.T) {
	e := newEnv(t)
	before := time.Now().Unix()
	code, out := e.admin(http.MethodPost, "/v1/clients/"+e.client.ID+"/revoke")
	if code != http.StatusOK {
		t.Fatalf("revoke client: %d %v", code, out)
	}
	if !e.s.cfg.Revoked.RevokedBefore(revocation.CutoffClient, e.client.ID, before) {
		t.Error("no client_id cutoff for the revoked client's tokens")
	}
	status, body := e.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}, "client_id": {e.client.ID}})
	if status != http.StatusUnauthorized || body["error"] != "invalid_client" {
		t.Errorf("a revoked client at the token endpoint: %d %v", status, body)
	}
	if code, _ := e.admin(http.MethodPost, "/v1/clients/cli_nope/revoke"); code != http.StatusNotFound {
		t.Errorf("revoking an unknown client: %d", code)
	}
}
