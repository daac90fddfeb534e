package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"

	"github.com/kavachgate/kavach/token"
)

// TestGatewayTrustsIssuerByURL: a gateway configured with `issuer <url>`
// finds the keys through the issuer's RFC 8414 metadata, follows a key
// rotation by itself, and stops accepting tokens of a withdrawn key even
// when they sit in its verify cache.
func TestGatewayTrustsIssuerByURL(t *testing.T) {
	t.Parallel()
	rd := startRevRedis(t)
	oldKey, _ := token.GenerateSigningKey(jwa.EdDSA)
	newKey, _ := token.GenerateSigningKey(jwa.EdDSA)
	var published atomic.Pointer[[]byte]
	publish := func(keys ...*token.SigningKey) {
		set, err := token.PublicSet(keys...)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(set)
		published.Store(&b)
	}
	publish(oldKey)
	var iss string
	issuer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/.well-known/oauth-authorization-server":
			_ = json.NewEncoder(w).Encode(map[string]string{"issuer": iss, "jwks_uri": iss + "/jwks"})
		case "/jwks":
			_, _ = w.Write(*published.Load())
		default:
			http.NotFound(w, r)
		}
	}))
	defer issuer.Close()
	iss = issuer.URL

	dir := t.TempDir()
	port := freePort(t)
	up := newUpstream(t)
	resource := fmt.Sprintf("http://127.0.0.1:%d/api", port)
	caddyfile := fmt.Sprintf(`{
	admin off
	kavach {
		issuer %s
		redis %s
		key_refresh 1s
	}
}
http://127.0.0.1:%d {
	kavach /api/* {
		resource %s
		scope GET /api/* repo:read
	}
	reverse_proxy /api/* %s
}
`, iss, rd.url(), port, resource, up.addr())
	if err := os.WriteFile(filepath.Join(dir, "Caddyfile"), []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	startGateway(t, dir, nil, port)

	mint := func(k *token.SigningKey) string {
		n := time.Now()
		agents := []string{"agt_remote"}
		s, err := token.Mint(k, &token.Claims{
			Issuer: iss, Subject: "usr_alice", Actor: token.ActorFor(agents), ClientID: agents[0],
			Audience: token.Audience{resource}, Scope: "repo:read", ID: token.NewID(token.PrefixToken),
			IssuedAt: n.Unix(), Expiry: n.Add(5 * time.Minute).Unix(),
			Kavach: &token.Kavach{Version: 1, Chain: []string{"dlg_remote"}, Agents: agents},
		})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/api/x", port)
	oldTok, newTok := mint(oldKey), mint(newKey)

	waitUntil(t, 5*time.Second, "the old key's token accepted", func() bool { return statusOf(url, oldTok) == 200 })
	if s := statusOf(url, newTok); s != 401 {
		t.Fatalf("token of an unpublished key: status %d, want 401", s)
	}

	// Rotation: the issuer publishes the new key and withdraws the old.
	publish(newKey)
	waitUntil(t, 5*time.Second, "the new key's token accepted", func() bool { return statusOf(url, newTok) == 200 })
	if s := statusOf(url, oldTok); s != 401 {
		t.Fatalf("token of a withdrawn key (cached before): status %d, want 401", s)
	}
	up.take()
}
