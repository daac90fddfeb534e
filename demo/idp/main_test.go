package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/kavachgate/kavach/internal/oidctest"
)

func TestUserFlag(t *testing.T) {
	var us users
	if err := us.Set("Dana:dana@corp.example:platform-eng, sre"); err != nil {
		t.Fatal(err)
	}
	want := oidctest.User{Sub: "00u-dana", Email: "dana@corp.example", Name: "Dana", Groups: []string{"platform-eng", "sre"}}
	if len(us) != 1 || us[0].Sub != want.Sub || us[0].Email != want.Email || strings.Join(us[0].Groups, " ") != "platform-eng sre" {
		t.Errorf("got %+v, want %+v", us, want)
	}
	for _, bad := range []string{"dana", "dana:", ":x:y"} {
		if err := us.Set(bad); err == nil {
			t.Errorf("-user %q accepted", bad)
		}
	}
}

func TestLoopbackOnly(t *testing.T) {
	for addr, ok := range map[string]bool{"127.0.0.1:8083": true, "[::1]:0": true, "localhost:8083": true, ":8083": false, "0.0.0.0:8083": false, "192.0.2.1:80": false} {
		if err := loopbackOnly(addr); (err == nil) != ok {
			t.Errorf("loopbackOnly(%q) = %v", addr, err)
		}
	}
}

// TestIDJAG: the minted assertion is an ID-JAG (typ oauth-id-jag+jwt)
// for the picked user's sub, verified by the key the OP's JWKS publishes.
func TestIDJAG(t *testing.T) {
	o, err := oidctest.Serve(oidctest.Options{Redirect: "http://127.0.0.1:1/cb", Users: defaultUsers})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	h := idjagHandler(o, defaultUsers, "http://127.0.0.1:8081")

	rec := httptest.NewRecorder()
	h(rec, httptest.NewRequest("POST", "/demo/id-jag", strings.NewReader(url.Values{"user": {"nobody"}, "client_id": {"c"}}.Encode())))
	if rec.Code != http.StatusBadRequest {
		t.Errorf("unknown user: HTTP %d", rec.Code)
	}

	req := httptest.NewRequest("POST", "/demo/id-jag", strings.NewReader(url.Values{
		"user": {"priya"}, "client_id": {"cli_1"}, "resource": {"http://127.0.0.1:8080/mcp"}, "scope": {"mcp:review"}, "ttl": {"2m"},
	}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec = httptest.NewRecorder()
	h(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("HTTP %d: %s", rec.Code, rec.Body)
	}
	jws, err := jose.ParseSignedCompact(strings.TrimSpace(rec.Body.String()), []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	if typ := jws.Signatures[0].Header.ExtraHeaders[jose.HeaderType]; typ != oidctest.IDJAGType {
		t.Errorf("typ %v", typ)
	}
	resp, err := http.Get(o.Issuer + "/keys")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	body, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(body, &set); err != nil {
		t.Fatal(err)
	}
	keys := set.Key(jws.Signatures[0].Header.KeyID)
	if len(keys) != 1 {
		t.Fatalf("the JWKS has no key %q: %s", jws.Signatures[0].Header.KeyID, body)
	}
	payload, err := jws.Verify(keys[0].Key)
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Iss, Sub, Aud, Resource, Scope string
		Iat, Exp                       int64
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	_ = json.Unmarshal(payload, &raw)
	if c.Iss != o.Issuer || c.Sub != "00u-priya" || c.Aud != "http://127.0.0.1:8081" || raw["client_id"] != "cli_1" ||
		c.Resource != "http://127.0.0.1:8080/mcp" || c.Scope != "mcp:review" || raw["jti"] == "" ||
		time.Duration(c.Exp-c.Iat)*time.Second != 2*time.Minute {
		t.Errorf("claims: %s", payload)
	}
}

// TestPicker: the login page lists every user with a link that signs
// that one in.
func TestPicker(t *testing.T) {
	o, err := oidctest.Serve(oidctest.Options{Redirect: "http://127.0.0.1:1/cb", Users: defaultUsers})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	resp, err := http.Get(o.Issuer + "/login?id=abc")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"/login?id=abc&amp;user=priya", "platform-eng, staff", "/login?id=abc&amp;user=marco", "marketing, staff"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("picker lacks %q:\n%s", want, body)
		}
	}
	resp, err = http.Get(o.Issuer + "/login?id=abc&user=nobody")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("unknown user: HTTP %d", resp.StatusCode)
	}
}
