package issuer

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/kavachgate/kavach/admin"
	"github.com/kavachgate/kavach/token"
)

// rawKey is an agent key that signs whatever header it is given, as an
// attacker holding (or an agent misusing) the registered key can.
type rawKey struct {
	pub  json.RawMessage // the public JWK, as registered
	sign func(input []byte) []byte
}

func newRawEd25519(t *testing.T) *rawKey {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &rawKey{pub: publicJWK(t, pub), sign: func(in []byte) []byte { return ed25519.Sign(priv, in) }}
}

func newRawP256(t *testing.T) *rawKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &rawKey{pub: publicJWK(t, &priv.PublicKey), sign: func(in []byte) []byte {
		// RFC 7518 §3.4: R || S, each 32 bytes.
		sum := sha256.Sum256(in)
		r, s, err := ecdsa.Sign(rand.Reader, priv, sum[:])
		if err != nil {
			t.Fatal(err)
		}
		return append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...)
	}}
}

func publicJWK(t *testing.T, pub any) json.RawMessage {
	t.Helper()
	k, err := jwk.FromRaw(pub)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// signedAs is a client assertion of agent id whose JOSE header is header
// (alg included or not), signed for real with k over that header.
func (e *agentEnv) signedAs(k *rawKey, id string, header map[string]any) string {
	e.t.Helper()
	at := now()
	h, err := json.Marshal(header)
	if err != nil {
		e.t.Fatal(err)
	}
	p, err := json.Marshal(map[string]any{
		"iss": id, "sub": id, "aud": e.cfg.Issuer,
		"iat": at.Unix(), "exp": at.Add(2 * time.Minute).Unix(), "jti": token.NewID("asr_"),
	})
	if err != nil {
		e.t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	input := enc(h) + "." + enc(p)
	return input + "." + enc(k.sign([]byte(input)))
}

// TestAssertionHeaderAlg (RFC 8725 §3.1, issue 14 item 2): the header's
// alg of a private_key_jwt assertion or an actor_token must be one the
// agent's registered key is for: EdDSA (or RFC 9864's Ed25519) for an
// Ed25519 key, ES256 for a P-256 key. A signature made by the right key
// under any other header is refused.
func TestAssertionHeaderAlg(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *agentEnv) {
		edKey, ecKey := newRawEd25519(t), newRawP256(t)
		ed := e.newAgent(agentReq{Name: "ed25519", PublicKey: edKey.pub})
		ec := e.newAgent(agentReq{Name: "p256", PublicKey: ecKey.pub})
		// Children for actor_tokens, under a parent that exchanges.
		parent := e.newAgent(agentReq{Name: "parent"})
		edChild := e.newChild(parent.ID, agentReq{Name: "ed-child", PublicKey: edKey.pub})
		ecChild := e.newChild(parent.ID, agentReq{Name: "ec-child", PublicKey: ecKey.pub})
		mcp := url.Values{"resource": {testResource}, "scope": {"repo:read"}}
		subject, _ := e.agentToken(parent, mcp)

		alg := func(a string) map[string]any { return map[string]any{"alg": a, "typ": "JWT"} }
		type keyCase struct {
			key    *rawKey
			agent  *admin.Agent
			child  *admin.Agent
			accept []map[string]any
			refuse map[string]map[string]any
		}
		cases := map[string]keyCase{
			"Ed25519 key": {edKey, ed, edChild,
				[]map[string]any{alg("EdDSA"), alg("Ed25519"), {"alg": "EdDSA"}},
				map[string]map[string]any{
					"none": alg("none"), "HS256": alg("HS256"), "RS256": alg("RS256"), "ES256": alg("ES256"),
					"eddsa": alg("eddsa"), "empty alg": alg(""), "no alg": {"typ": "JWT"}, "alg not a string": {"alg": 1},
				}},
			"P-256 key": {ecKey, ec, ecChild,
				[]map[string]any{alg("ES256")},
				map[string]map[string]any{
					"none": alg("none"), "HS256": alg("HS256"), "EdDSA": alg("EdDSA"), "Ed25519": alg("Ed25519"),
					"ES384": alg("ES384"), "no alg": {"typ": "JWT"},
				}},
		}
		for name, kc := range cases {
			e.run(name, func(t *testing.T, e *agentEnv) {
				for _, h := range kc.accept {
					e.run("client assertion alg "+h["alg"].(string), func(t *testing.T, e *agentEnv) {
						e.mustToken(e.clientCredentials(jwtAuth(e.signedAs(kc.key, kc.agent.ID, h)), mcp))
					})
					e.run("actor_token alg "+h["alg"].(string), func(t *testing.T, e *agentEnv) {
						e.mustToken(e.exchange(basic(parent.ID, parent.ClientSecret), subject, actor(e.signedAs(kc.key, kc.child.ID, h))))
					})
				}
				for rname, h := range kc.refuse {
					e.run("client assertion "+rname, func(t *testing.T, e *agentEnv) {
						status, out := e.clientCredentials(jwtAuth(e.signedAs(kc.key, kc.agent.ID, h)), mcp)
						wantError(t, status, out, http.StatusUnauthorized, "invalid_client", "")
					})
					e.run("actor_token "+rname, func(t *testing.T, e *agentEnv) {
						status, out := e.exchange(basic(parent.ID, parent.ClientSecret), subject, actor(e.signedAs(kc.key, kc.child.ID, h)))
						wantError(t, status, out, http.StatusBadRequest, "invalid_grant", "")
					})
				}
			})
		}

		e.run("metadata lists the accepted algs", func(t *testing.T, e *agentEnv) {
			req, err := http.NewRequest(http.MethodGet, e.url("/.well-known/oauth-authorization-server"), nil)
			if err != nil {
				t.Fatal(err)
			}
			status, out := do(t, req)
			if status != http.StatusOK {
				t.Fatalf("metadata: %d", status)
			}
			list := func(name string) []string {
				var l []string
				for _, v := range out[name].([]any) {
					l = append(l, v.(string))
				}
				return l
			}
			// RFC 8414 §2: each endpoint taking private_key_jwt lists the
			// algs; none of them is an HMAC (client_secret_jwt).
			for _, ep := range []string{"token_endpoint", "revocation_endpoint", "introspection_endpoint"} {
				if algs := list(ep + "_auth_signing_alg_values_supported"); !slices.Equal(algs, []string{"EdDSA", "Ed25519", "ES256"}) {
					t.Errorf("%s_auth_signing_alg_values_supported %v", ep, algs)
				}
				if methods := list(ep + "_auth_methods_supported"); !slices.Contains(methods, "private_key_jwt") || slices.Contains(methods, "client_secret_jwt") {
					t.Errorf("%s_auth_methods_supported %v", ep, methods)
				}
			}
		})
	})
}
