package token

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

func TestVerifyAcceptsMintedToken(t *testing.T) {
	t.Parallel()
	v := testVerifier(t)
	tok, err := v.Verify(mint(t, testKey(t), testClaims()))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if tok.Subject != "usr_alice" || tok.CurrentActor() != "agt_123" || tok.External {
		t.Errorf("claims = sub %q actor %q external %v", tok.Subject, tok.CurrentActor(), tok.External)
	}
	if !slices.Equal(tok.Scopes, []string{"mcp:review", "pullrequest:read"}) {
		t.Errorf("scopes = %q", tok.Scopes)
	}
	if !slices.Equal(tok.Agents(), []string{"agt_89", "agt_123"}) || tok.KeyID != testKey(t).KID {
		t.Errorf("agents %q kid %q", tok.Agents(), tok.KeyID)
	}
}

func TestVerifyAcceptsES256(t *testing.T) {
	t.Parallel()
	k, err := GenerateSigningKey(jwa.ES256)
	if err != nil {
		t.Fatal(err)
	}
	v := NewVerifier(ringFor(t, Issuer{ID: testIssuer, Keys: publicSet(t, k)}), VerifierOptions{Now: func() time.Time { return testNow }})
	if _, err := v.Verify(mint(t, k, testClaims())); err != nil {
		t.Fatalf("ES256 token rejected: %v", err)
	}
}

func TestVerifyAcceptedVariants(t *testing.T) {
	t.Parallel()
	k := testKey(t)
	hdr := map[string]any{"kid": k.KID, "typ": "application/at+jwt"}
	cases := map[string]string{
		// RFC 9068 §4: the typ may carry the application/ prefix.
		"typ_with_media_prefix": signRaw(t, jwa.EdDSA, k.private, hdr, testClaims()),
		// RFC 7519 §4.1.3: aud may be a single string.
		"aud_as_string": signRaw(t, jwa.EdDSA, k.private, map[string]any{"kid": k.KID, "typ": "at+jwt"},
			claimsMap(t, func(m map[string]any) { m["aud"] = "https://mcp.example/mcp" })),
		"within_leeway_after_exp": mint(t, k, func() *Claims {
			c := testClaims()
			c.IssuedAt, c.Expiry = testNow.Add(-10*time.Minute).Unix(), testNow.Add(-20*time.Second).Unix()
			return c
		}()),
		"unknown_claims_ignored": signRaw(t, jwa.EdDSA, k.private, map[string]any{"kid": k.KID, "typ": "at+jwt"},
			claimsMap(t, func(m map[string]any) { m["x_extra"] = map[string]any{"a": 1} })),
	}
	v := testVerifier(t)
	for name, tok := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := v.Verify(tok); err != nil {
				t.Fatalf("rejected: %v", err)
			}
		})
	}
}

// TestVerifyRejects names every rejection DESIGN.md §2 and the foundation
// issue list, with the reason a client would be told.
func TestVerifyRejects(t *testing.T) {
	t.Parallel()
	k := testKey(t)
	good := mint(t, k, testClaims())
	h, p, s := split3(good)
	std := map[string]any{"kid": k.KID, "typ": "at+jwt"}
	signed := func(edit func(m map[string]any)) string {
		return signRaw(t, jwa.EdDSA, k.private, std, claimsMap(t, edit))
	}
	withClaims := func(edit func(c *Claims)) string {
		c := testClaims()
		edit(c)
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		return signRaw(t, jwa.EdDSA, k.private, std, b)
	}
	pub := k.private.Public().(ed25519.PublicKey)
	pubJWKS, _ := json.Marshal(publicSet(t, k))
	hmacToken := func(secret []byte) string {
		hd := b64(map[string]any{"alg": "HS256", "typ": "at+jwt", "kid": k.KID})
		mac := hmac.New(sha256.New, secret)
		mac.Write([]byte(hd + "." + p))
		return hd + "." + p + "." + b64(mac.Sum(nil))
	}
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)

	cases := []struct {
		name  string
		token string
		want  error
	}{
		{"oversized", "eyJ" + strings.Repeat("A", MaxTokenSize), ErrTooLarge},
		{"empty", "", ErrMalformed},
		{"two_segments", h + "." + p, ErrMalformed},
		{"trailing_segment", good + ".AAAA", ErrMalformed},
		{"trailing_dot", good + ".", ErrMalformed},
		{"trailing_newline", good + "\n", ErrMalformed},
		{"leading_space", " " + good, ErrMalformed},
		{"json_serialization", `{"payload":"` + p + `","protected":"` + h + `","signature":"` + s + `"}`, ErrMalformed},
		{"padding", h + "." + p + "." + s + "==", ErrMalformed},
		{"std_base64_alphabet", h + "." + p + "." + strings.Replace(s, s[:1], "+", 1), ErrMalformed},
		{"non_canonical_signature_bits", h + "." + p + "." + flipUnusedBits(s), ErrMalformed},
		{"alg_none_empty_signature", b64(map[string]any{"alg": "none", "typ": "at+jwt"}) + "." + p + ".", ErrMalformed},
		{"alg_none_with_signature", b64(map[string]any{"alg": "none", "typ": "at+jwt", "kid": k.KID}) + "." + p + "." + s, ErrAlgorithm},
		{"hmac_keyed_with_public_key", hmacToken(pub), ErrAlgorithm},
		{"hmac_keyed_with_jwks", hmacToken(pubJWKS), ErrAlgorithm},
		{"es256_header_on_ed25519_key", signRaw(t, jwa.ES256, ecKey, std, testClaims()), ErrAlgorithm},
		{"crit_header", signRaw(t, jwa.EdDSA, k.private, map[string]any{"kid": k.KID, "typ": "at+jwt", "crit": []string{"exp"}, "exp": 1}, testClaims()), ErrMalformed},
		{"unknown_kid", signRaw(t, jwa.EdDSA, k.private, map[string]any{"kid": "nope", "typ": "at+jwt"}, testClaims()), ErrUnknownKey},
		{"no_kid", signRaw(t, jwa.EdDSA, k.private, map[string]any{"typ": "at+jwt"}, testClaims()), ErrUnknownKey},
		{"signed_by_untrusted_key_claiming_trusted_kid", signRaw(t, jwa.EdDSA, otherKey(t).private, std, testClaims()), ErrSignature},
		{"tampered_payload", h + "." + b64(claimsMap(t, func(m map[string]any) { m["scope"] = "mcp:admin" })) + "." + s, ErrSignature},
		{"tampered_signature", h + "." + p + "." + flipFirst(s), ErrSignature},
		{"wrong_typ", signRaw(t, jwa.EdDSA, k.private, map[string]any{"kid": k.KID, "typ": "JWT"}, testClaims()), ErrType},
		{"missing_typ", signRaw(t, jwa.EdDSA, k.private, map[string]any{"kid": k.KID}, testClaims()), ErrType},
		{"wrong_iss", withClaims(func(c *Claims) { c.Issuer = "https://evil.test" }), ErrIssuer},
		{"iss_case_differs", withClaims(func(c *Claims) { c.Issuer = strings.ToUpper(testIssuer) }), ErrIssuer},
		{"expired", withClaims(func(c *Claims) {
			c.IssuedAt, c.Expiry = testNow.Add(-10*time.Minute).Unix(), testNow.Add(-31*time.Second).Unix()
		}), ErrExpired},
		{"not_yet_valid_nbf", withClaims(func(c *Claims) { c.NotBefore = testNow.Add(time.Minute).Unix() }), ErrNotYetValid},
		{"issued_in_future", withClaims(func(c *Claims) {
			c.IssuedAt, c.Expiry = testNow.Add(time.Minute).Unix(), testNow.Add(2*time.Minute).Unix()
		}), ErrNotYetValid},
		{"lifetime_over_max", withClaims(func(c *Claims) { c.Expiry = testNow.Add(DefaultMaxLifetime + time.Second).Unix() }), ErrLifetime},
		{"missing_exp", signed(func(m map[string]any) { delete(m, "exp") }), ErrClaims},
		{"missing_iat", signed(func(m map[string]any) { delete(m, "iat") }), ErrClaims},
		{"exp_before_iat", withClaims(func(c *Claims) { c.Expiry = c.IssuedAt - 1 }), ErrClaims},
		{"missing_sub", withClaims(func(c *Claims) { c.Subject = "" }), ErrClaims},
		{"missing_jti", withClaims(func(c *Claims) { c.ID = "" }), ErrClaims},
		{"missing_aud", withClaims(func(c *Claims) { c.Audience = nil }), ErrClaims},
		{"missing_client_id", withClaims(func(c *Claims) { c.ClientID = "" }), ErrClaims},
		{"claims_not_json", signRaw(t, jwa.EdDSA, k.private, std, []byte("not json")), ErrClaims},
		{"claims_trailing_data", signRaw(t, jwa.EdDSA, k.private, std, append(mustJSON(t, testClaims()), []byte(`{}`)...)), ErrClaims},
		{"bad_scope_syntax", withClaims(func(c *Claims) { c.Scope = "a::b" }), ErrClaims},
		{"missing_kvc", withClaims(func(c *Claims) { c.Kavach = nil }), ErrClaims},
		{"kvc_version", withClaims(func(c *Claims) { c.Kavach.Version = 2 }), ErrClaims},
		{"chain_agents_length_differ", withClaims(func(c *Claims) { c.Kavach.Chain = c.Kavach.Chain[:1] }), ErrClaims},
		{"chain_empty", withClaims(func(c *Claims) { c.Kavach.Chain, c.Kavach.Agents, c.Actor = []string{}, []string{}, nil }), ErrClaims},
		{"chain_longer_than_cap", withClaims(func(c *Claims) {
			var chain, agents []string
			for i := range MaxChainLen + 1 {
				chain = append(chain, "dlg_"+string(rune('a'+i)))
				agents = append(agents, "agt_"+string(rune('a'+i)))
			}
			c.Kavach.Chain, c.Kavach.Agents, c.Actor, c.ClientID = chain, agents, ActorFor(agents), agents[len(agents)-1]
		}), ErrClaims},
		{"duplicate_agent", withClaims(func(c *Claims) {
			c.Kavach.Agents = []string{"agt_123", "agt_123"}
			c.Actor = ActorFor(c.Kavach.Agents)
		}), ErrClaims},
		{"act_sub_not_last_agent", withClaims(func(c *Claims) { c.Actor = ActorFor([]string{"agt_123", "agt_89"}) }), ErrClaims},
		{"act_missing", withClaims(func(c *Claims) { c.Actor = nil }), ErrClaims},
		{"act_missing_prior_actor", withClaims(func(c *Claims) { c.Actor = &Actor{Subject: "agt_123"} }), ErrClaims},
		{"act_extra_actor", withClaims(func(c *Claims) { c.Actor = ActorFor([]string{"agt_0", "agt_89", "agt_123"}) }), ErrClaims},
		{"id_with_comma", withClaims(func(c *Claims) { c.Kavach.Chain[0] = "dlg_a,dlg_x" }), ErrClaims},
		{"empty_hosts_constraint", signed(func(m map[string]any) { kvc(m)["cnst"] = map[string]any{"hosts": []string{}} }), ErrClaims},
		{"null_hosts_constraint", signed(func(m map[string]any) { kvc(m)["cnst"] = map[string]any{"hosts": nil} }), ErrClaims},
		{"empty_cidrs_constraint", signed(func(m map[string]any) { kvc(m)["cnst"] = map[string]any{"cidrs": []string{}} }), ErrClaims},
		{"empty_methods_constraint", signed(func(m map[string]any) { kvc(m)["cnst"] = map[string]any{"methods": []string{}} }), ErrClaims},
		{"empty_paths_constraint", signed(func(m map[string]any) { kvc(m)["cnst"] = map[string]any{"paths": []string{}} }), ErrClaims},
		{"zero_max_body", signed(func(m map[string]any) { kvc(m)["cnst"] = map[string]any{"max_body": 0} }), ErrClaims},
		{"empty_audit", signed(func(m map[string]any) { kvc(m)["cnst"] = map[string]any{"audit": ""} }), ErrClaims},
		{"unknown_audit_mode", signed(func(m map[string]any) { kvc(m)["cnst"] = map[string]any{"audit": "optional"} }), ErrClaims},
		{"bad_cidr", signed(func(m map[string]any) { kvc(m)["cnst"] = map[string]any{"cidrs": []string{"10.0.0.1/8"}} }), ErrClaims},
		{"cnf_claim", signed(func(m map[string]any) { m["cnf"] = map[string]any{"jkt": "abc"} }), ErrConfirmation},
	}
	v := testVerifier(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tok, err := v.Verify(tc.token)
			if err == nil {
				t.Fatalf("accepted (sub %q)", tok.Subject)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want reason %v", err, tc.want)
			}
			var ve *VerifyError
			if !errors.As(err, &ve) || ve.Public() != tc.want.Error() {
				t.Fatalf("not a *VerifyError with public reason %q: %#v", tc.want, err)
			}
			if len(tc.token) > 20 && strings.Contains(err.Error(), tc.token[len(tc.token)-20:]) {
				t.Fatalf("error echoes the token: %v", err)
			}
		})
	}
}

func TestVerifyExternalIssuer(t *testing.T) {
	t.Parallel()
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := jwk.FromRaw(rk.Public())
	_ = pub.Set(jwk.KeyIDKey, "okta-1")
	set := jwk.NewSet()
	_ = set.AddKey(pub)
	const oktaISS = "https://okta.test/oauth2/default"
	ring := ringFor(t,
		Issuer{ID: testIssuer, Keys: publicSet(t, testKey(t))},
		Issuer{ID: oktaISS, External: true, Algorithms: []jwa.SignatureAlgorithm{jwa.RS256}, Types: []string{"JWT", "at+jwt"}, Keys: set},
	)
	v := NewVerifier(ring, VerifierOptions{Now: func() time.Time { return testNow }})
	c := claimsMap(t, func(m map[string]any) {
		m["iss"] = oktaISS
		m["scope"] = "repo:read repo:* *"
		delete(m, "client_id")
	})
	tok, err := v.Verify(signRaw(t, jwa.RS256, rk, map[string]any{"kid": "okta-1", "typ": "JWT"}, c))
	if err != nil {
		t.Fatalf("external token rejected: %v", err)
	}
	if !tok.External || tok.Kavach != nil {
		t.Errorf("kvc honoured from an external issuer: external=%v kvc=%v", tok.External, tok.Kavach)
	}
	if !slices.Equal(tok.Scopes, []string{"repo:read"}) {
		t.Errorf("external scopes = %q, want only the concrete repo:read", tok.Scopes)
	}
	// The Kavach issuer's rule (at+jwt only) is not loosened by another
	// issuer's policy.
	if _, err := v.Verify(signRaw(t, jwa.EdDSA, testKey(t).private, map[string]any{"kid": testKey(t).KID, "typ": "JWT"}, testClaims())); !errors.Is(err, ErrType) {
		t.Errorf("Kavach token with typ JWT: err = %v, want ErrType", err)
	}
	// RS256 is not allowed for the Kavach issuer even if a key were there.
	if _, err := v.Verify(signRaw(t, jwa.RS256, rk, map[string]any{"kid": "okta-1", "typ": "at+jwt"}, testClaims())); !errors.Is(err, ErrIssuer) {
		t.Errorf("Kavach iss signed by the external key: err = %v, want ErrIssuer", err)
	}
}

func TestVerifyKeyRotation(t *testing.T) {
	t.Parallel()
	a, b := testKey(t), otherKey(t)
	v := NewVerifier(ringFor(t, Issuer{ID: testIssuer, Keys: publicSet(t, a)}), VerifierOptions{Now: func() time.Time { return testNow }})
	tb := mint(t, b, testClaims())
	if _, err := v.Verify(tb); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("before rotation: err = %v, want ErrUnknownKey", err)
	}
	v.SetKeyRing(ringFor(t, Issuer{ID: testIssuer, Keys: publicSet(t, a, b)}))
	if _, err := v.Verify(tb); err != nil {
		t.Fatalf("after rotation: %v", err)
	}
	if _, err := NewVerifier(nil, VerifierOptions{}).Verify(tb); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("no keys: err = %v, want ErrUnknownKey", err)
	}
}

func TestVerifySharedKIDAcrossIssuers(t *testing.T) {
	t.Parallel()
	// Two issuers publishing the same kid (with different keys): the token
	// verifies against its own issuer's key only.
	a, b := testKey(t), otherKey(t)
	bPub, _ := b.Public()
	_ = bPub.Set(jwk.KeyIDKey, a.KID)
	bSet := jwk.NewSet()
	_ = bSet.AddKey(bPub)
	ring := ringFor(t, Issuer{ID: testIssuer, Keys: publicSet(t, a)}, Issuer{ID: "https://second.test", Keys: bSet})
	v := NewVerifier(ring, VerifierOptions{Now: func() time.Time { return testNow }})
	c := testClaims()
	c.Issuer = "https://second.test"
	bAsA := &SigningKey{KID: a.KID, Alg: b.Alg, private: b.private}
	if _, err := v.Verify(mint(t, bAsA, c)); err != nil {
		t.Fatalf("second issuer's token: %v", err)
	}
	if _, err := v.Verify(mint(t, a, testClaims())); err != nil {
		t.Fatalf("first issuer's token: %v", err)
	}
	if _, err := v.Verify(mint(t, bAsA, testClaims())); err == nil {
		t.Fatal("second issuer's key accepted for the first issuer")
	}
}

func TestNewKeyRingRejects(t *testing.T) {
	t.Parallel()
	k := testKey(t)
	privSet := jwk.NewSet()
	priv, _ := jwk.FromRaw(k.private)
	_ = priv.Set(jwk.KeyIDKey, "p")
	_ = privSet.AddKey(priv)
	noKID := jwk.NewSet()
	nk, _ := jwk.FromRaw(k.private.Public())
	_ = noKID.AddKey(nk)
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	smallSet := jwk.NewSet()
	sk, _ := jwk.FromRaw(small.Public())
	_ = sk.Set(jwk.KeyIDKey, "small")
	_ = smallSet.AddKey(sk)
	cases := map[string][]Issuer{
		"private_key":         {{ID: testIssuer, Keys: privSet}},
		"key_without_kid":     {{ID: testIssuer, Keys: noKID}},
		"kavach_with_rs256":   {{ID: testIssuer, Algorithms: []jwa.SignatureAlgorithm{jwa.RS256}}},
		"kavach_with_typ_jwt": {{ID: testIssuer, Types: []string{"JWT"}}},
		"external_hs256":      {{ID: "x", External: true, Algorithms: []jwa.SignatureAlgorithm{jwa.HS256}}},
		"external_none":       {{ID: "x", External: true, Algorithms: []jwa.SignatureAlgorithm{jwa.NoSignature}}},
		"external_no_algs":    {{ID: "x", External: true}},
		"rsa_1024":            {{ID: "x", External: true, Algorithms: []jwa.SignatureAlgorithm{jwa.RS256}, Keys: smallSet}},
		"duplicate_issuer":    {{ID: testIssuer}, {ID: testIssuer}},
		"empty_issuer_id":     {{ID: ""}},
	}
	for name, issuers := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := NewKeyRing(issuers...); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestMintRefusesInvalidClaims(t *testing.T) {
	t.Parallel()
	k := testKey(t)
	cases := map[string]func(c *Claims){
		"act_not_last_agent": func(c *Claims) { c.Actor = &Actor{Subject: "agt_89"} },
		"chain_mismatch":     func(c *Claims) { c.Kavach.Chain = []string{"dlg_a1"} },
		"bad_scope":          func(c *Claims) { c.Scope = "a: b" },
		"no_audience":        func(c *Claims) { c.Audience = nil },
		"exp_not_after_iat":  func(c *Claims) { c.Expiry = c.IssuedAt },
		"cnf":                func(c *Claims) { c.Confirmation = json.RawMessage(`{}`) },
	}
	for name, edit := range cases {
		t.Run(name, func(t *testing.T) {
			c := testClaims()
			edit(c)
			if tok, err := Mint(k, c); err == nil {
				t.Fatalf("minted %.20s…", tok)
			}
		})
	}
}

func TestSigningKeyFileRoundTrip(t *testing.T) {
	t.Parallel()
	for _, alg := range []jwa.SignatureAlgorithm{jwa.EdDSA, jwa.ES256} {
		k, err := GenerateSigningKey(alg)
		if err != nil {
			t.Fatal(err)
		}
		data, err := json.Marshal(k)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseSigningKey(data)
		if err != nil {
			t.Fatalf("%s: %v", alg, err)
		}
		if back.KID != k.KID || back.Alg != alg {
			t.Fatalf("%s: round trip gave kid %q alg %q", alg, back.KID, back.Alg)
		}
		// A key file whose kid was edited is refused.
		var m map[string]any
		_ = json.Unmarshal(data, &m)
		m["kid"] = "other"
		edited, _ := json.Marshal(m)
		if _, err := ParseSigningKey(edited); err == nil {
			t.Fatalf("%s: edited kid accepted", alg)
		}
		// The public set holds no private material.
		pub, _ := json.Marshal(publicSet(t, k))
		if strings.Contains(string(pub), `"d"`) {
			t.Fatalf("%s: public set leaks the private key: %s", alg, pub)
		}
	}
	if _, err := GenerateSigningKey(jwa.HS256); err == nil {
		t.Fatal("HS256 signing key generated")
	}
}

func split3(tok string) (string, string, string) {
	p := strings.Split(tok, ".")
	return p[0], p[1], p[2]
}

func flipFirst(s string) string {
	if s[0] == 'A' {
		return "B" + s[1:]
	}
	return "A" + s[1:]
}

// flipUnusedBits changes only the bits of the last character that encode no
// data (an Ed25519 signature is 86 characters: the last carries 2 bits).
func flipUnusedBits(s string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, s[len(s)-1])
	return s[:len(s)-1] + string(alphabet[last^1])
}

func kvc(m map[string]any) map[string]any { return m["kvc"].(map[string]any) }

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
