package idp_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/redis/go-redis/v9"

	"github.com/kavachgate/kavach/internal/redistest"
	"github.com/kavachgate/kavach/issuer"
	"github.com/kavachgate/kavach/issuer/idp"
)

// Two issuer nodes share a real redis-server through issuer.RedisReplay:
// an ID-JAG exchanged at one is a replay at the other; with Redis down the
// check fails closed (temporarily_unavailable), and nothing is accepted.
func TestJAGReplayAcrossNodesWithRedis(t *testing.T) {
	srv := redistest.Start(t)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub, _ := jwk.FromRaw(key.Public())
	_ = pub.Set(jwk.KeyIDKey, "k1")
	set := jwk.NewSet()
	_ = set.AddKey(pub)
	jwks, _ := json.Marshal(set)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(jwks) }))
	defer ts.Close()

	node := func() *idp.JAGValidator {
		c := redis.NewClient(&redis.Options{Addr: srv.Addr(), Protocol: 2, MaxRetries: -1, DialTimeout: 300 * time.Millisecond})
		t.Cleanup(func() { _ = c.Close() })
		v, err := idp.NewJAGValidator(idp.JAGConfig{
			Trusted: []idp.TrustedIssuer{{Issuer: ts.URL, JWKS: ts.URL}},
			Replay:  issuer.RedisReplay{Client: c},
		})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	a, b := node(), node()
	mint := func(jti string) string {
		n := time.Now().Unix()
		payload, _ := json.Marshal(map[string]any{
			"iss": ts.URL, "sub": "00u-alice", "aud": "https://kavach.example", "client_id": "cli_x",
			"jti": jti, "iat": n, "exp": n + 120, "scope": "mcp:review",
		})
		h := jws.NewHeaders()
		_ = h.Set(jws.TypeKey, idp.JAGType)
		_ = h.Set(jws.KeyIDKey, "k1")
		out, err := jws.Sign(payload, jws.WithKey(jwa.ES256, key, jws.WithProtectedHeaders(h)))
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	expect := idp.Expect{Audience: "https://kavach.example", ClientID: "cli_x"}
	ctx := context.Background()

	j1 := mint("jti-1")
	if _, err := a.Validate(ctx, j1, expect); err != nil {
		t.Fatalf("node A: %v", err)
	}
	if _, err := b.Validate(ctx, j1, expect); !errors.Is(err, idp.ErrReplayed) {
		t.Fatalf("node B, the same assertion: %v, want ErrReplayed", err)
	}
	if _, err := b.Validate(ctx, mint("jti-2"), expect); err != nil {
		t.Fatalf("node B, a fresh assertion: %v", err)
	}

	srv.Stop()
	_, err := a.Validate(ctx, mint("jti-3"), expect)
	var e *idp.Error
	if !errors.Is(err, idp.ErrUnavailable) || !errors.As(err, &e) || e.Code != "temporarily_unavailable" {
		t.Fatalf("Redis down: %v, want ErrUnavailable (temporarily_unavailable)", err)
	}
}
