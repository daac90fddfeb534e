package issuer

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/kavachgate/kavach/issuer/store"
)

func register(t *testing.T, env *testEnv, contentType, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(env.url(pathRegister), contentType, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(raw) > 0 && json.Unmarshal(raw, &out) != nil {
		t.Fatalf("not JSON: %d %s", resp.StatusCode, raw)
	}
	return resp.StatusCode, out
}

func TestRegister(t *testing.T) {
	env := newEnv(t)
	status, out := register(t, env, "application/json", `{
		"client_name": "Inspector",
		"redirect_uris": ["http://127.0.0.1/callback", "https://app.example/cb"],
		"grant_types": ["authorization_code", "refresh_token"],
		"token_endpoint_auth_method": "none",
		"software_statement_unknown": {"ignored": true},
		"logo_uri": "https://app.example/logo.png"
	}`)
	if status != http.StatusCreated {
		t.Fatalf("register: %d %v", status, out)
	}
	id, _ := out["client_id"].(string)
	if !strings.HasPrefix(id, "cli_") || out["client_id_issued_at"] == nil || out["token_endpoint_auth_method"] != "none" || out["client_secret"] != nil {
		t.Fatalf("response %v", out)
	}
	c, err := env.st.GetClient(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if c.Kind != store.ClientPublic || c.Name != "Inspector" || !slices.Equal(c.RedirectURIs, []string{"http://127.0.0.1/callback", "https://app.example/cb"}) || c.SecretHash != nil {
		t.Fatalf("stored %+v", c)
	}
	// The registered client can start an authorization.
	params := env.authParams(newVerifier())
	params.Set("client_id", id)
	if p := newBrowser(t).get(env.url(pathAuthorize) + "?" + params.Encode()); p.status != http.StatusFound || p.location.Path != pathLogin {
		t.Fatalf("authorize with the registered client: %d %v", p.status, p.location)
	}
}

func TestRegisterRefuses(t *testing.T) {
	env := newEnv(t)
	for name, tc := range map[string]struct {
		body   string
		status int
		code   string
	}{
		"oversized":             {`{"redirect_uris":["https://a.example/cb"],"client_name":"` + strings.Repeat("x", maxJSONBody) + `"}`, http.StatusRequestEntityTooLarge, "invalid_request"},
		"http non-loopback":     {`{"redirect_uris":["http://app.example/cb"]}`, http.StatusBadRequest, "invalid_redirect_uri"},
		"one bad among good":    {`{"redirect_uris":["https://a.example/cb","http://10.0.0.5/cb"]}`, http.StatusBadRequest, "invalid_redirect_uri"},
		"private-use scheme":    {`{"redirect_uris":["com.example.app:/cb"]}`, http.StatusBadRequest, "invalid_redirect_uri"},
		"fragment":              {`{"redirect_uris":["https://a.example/cb#x"]}`, http.StatusBadRequest, "invalid_redirect_uri"},
		"no redirect_uris":      {`{"client_name":"x"}`, http.StatusBadRequest, "invalid_redirect_uri"},
		"confidential":          {`{"redirect_uris":["https://a.example/cb"],"token_endpoint_auth_method":"client_secret_basic"}`, http.StatusBadRequest, "invalid_client_metadata"},
		"client_credentials":    {`{"redirect_uris":["https://a.example/cb"],"grant_types":["client_credentials"]}`, http.StatusBadRequest, "invalid_client_metadata"},
		"implicit":              {`{"redirect_uris":["https://a.example/cb"],"response_types":["token"]}`, http.StatusBadRequest, "invalid_client_metadata"},
		"refresh only":          {`{"redirect_uris":["https://a.example/cb"],"grant_types":["refresh_token"]}`, http.StatusBadRequest, "invalid_client_metadata"},
		"wrong type":            {`{"redirect_uris":"https://a.example/cb"}`, http.StatusBadRequest, "invalid_client_metadata"},
		"trailing data":         {`{"redirect_uris":["https://a.example/cb"]} {}`, http.StatusBadRequest, "invalid_client_metadata"},
		"control in name":       {`{"redirect_uris":["https://a.example/cb"],"client_name":"a\u202eb"}`, http.StatusBadRequest, "invalid_client_metadata"},
		"not json content type": {`redirect_uris=https://a.example/cb`, http.StatusBadRequest, "invalid_request"},
	} {
		t.Run(name, func(t *testing.T) {
			ct := "application/json"
			if name == "not json content type" {
				ct = "application/x-www-form-urlencoded"
			}
			status, out := register(t, env, ct, tc.body)
			if status != tc.status || out["error"] != tc.code {
				t.Fatalf("got %d %v, want %d %s", status, out, tc.status, tc.code)
			}
		})
	}
}

func TestRegisterDisabled(t *testing.T) {
	env := newEnv(t, func(c *Config) { c.DisableRegistration = true })
	resp, err := http.Post(env.url(pathRegister), "application/json", strings.NewReader(`{"redirect_uris":["https://a.example/cb"]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("got %d with registration disabled", resp.StatusCode)
	}
}
