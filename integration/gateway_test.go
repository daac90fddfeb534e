package integration

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kavachgate/kavach/token"
)

// gwIssuer is the Kavach issuer the test gateways trust through
// trusted_keys (its JWK set is jwks.json, made from key.jwk).
const gwIssuer = "https://issuer.gateway.test"

// gwFixture is one running gateway with two protected sites in front of a
// recording upstream: site A plain, site B with handle_errors showing the
// public reason.
type gwFixture struct {
	dir        string
	up         *upstream
	adminAddr  string // Kavach admin listener
	adminToken string

	addrA, baseA, resA, prmA string
	addrB, baseB, resB, prmB string
	// site C protects /api/* but proxies the whole site.
	addrC, baseC, resC string
}

// newKeys writes key.jwk (trusted: jwks.json) and rogue.jwk (untrusted)
// into dir with the CLI.
func newKeys(t *testing.T, dir string) {
	t.Helper()
	kavach(t, dir, "keys", "generate", "--out", "key.jwk")
	kavach(t, dir, "keys", "generate", "--out", "rogue.jwk")
	jwks := kavach(t, dir, "keys", "jwks", "--in", "key.jwk")
	if err := os.WriteFile(filepath.Join(dir, "jwks.json"), []byte(jwks), 0o644); err != nil {
		t.Fatal(err)
	}
}

func startFixture(t *testing.T) *gwFixture {
	t.Helper()
	f := &gwFixture{dir: t.TempDir(), up: newUpstream(t), adminToken: token.NewID("adm_")}
	newKeys(t, f.dir)
	pA, pB, pC, pK := freePort(t), freePort(t), freePort(t), freePort(t)
	f.adminAddr = fmt.Sprintf("127.0.0.1:%d", pK)
	f.addrA, f.addrB = fmt.Sprintf("127.0.0.1:%d", pA), fmt.Sprintf("127.0.0.1:%d", pB)
	f.baseA, f.baseB = "http://"+f.addrA, "http://"+f.addrB
	f.resA, f.resB = f.baseA+"/api", f.baseB+"/api"
	f.prmA = f.baseA + "/.well-known/oauth-protected-resource/api"
	f.prmB = f.baseB + "/.well-known/oauth-protected-resource/api"
	f.addrC = fmt.Sprintf("127.0.0.1:%d", pC)
	f.baseC = "http://" + f.addrC
	f.resC = f.baseC + "/api"
	caddyfile := fmt.Sprintf(`{
	admin off
	kavach {
		trusted_keys %[1]s ./jwks.json
		admin %[2]s
	}
}

http://%[3]s {
	bind 127.0.0.1
	kavach /api/* {
		resource %[4]s
		scope GET /api/* repo:read
		scope POST /api/write repo:write
	}
	reverse_proxy /api/* %[5]s
}

http://%[6]s {
	bind 127.0.0.1
	kavach /api/* {
		resource %[7]s
		scope GET /api/* repo:read
	}
	reverse_proxy /api/* %[5]s {
		header_up X-Token-Id {kavach.jti}
		header_up X-Agent {kavach.actor}
	}
	handle_errors {
		respond "{err.message}"
	}
}

http://%[8]s {
	bind 127.0.0.1
	kavach /api/* {
		resource %[9]s
		scope GET /api/* repo:read
	}
	reverse_proxy %[5]s
}
`, gwIssuer, f.adminAddr, f.addrA, f.resA, f.up.addr(), f.addrB, f.resB, f.addrC, f.resC)
	if err := os.WriteFile(filepath.Join(f.dir, "Caddyfile"), []byte(caddyfile), 0o644); err != nil {
		t.Fatal(err)
	}
	startGateway(t, f.dir, []string{"KAVACH_ADMIN_TOKEN=" + f.adminToken}, pA, pB, pC, pK)
	return f
}

// mint runs `kavach token mint` with the trusted key and issuer; --sub and
// --agent get defaults when args do not give them.
func (f *gwFixture) mint(t *testing.T, args ...string) string {
	t.Helper()
	base := []string{"token", "mint", "--key", "key.jwk", "--iss", gwIssuer}
	if !slices.Contains(args, "--key") {
		args = append(base, args...)
	} else {
		args = append([]string{"token", "mint"}, args...)
	}
	if !slices.Contains(args, "--sub") {
		args = append(args, "--sub", "usr_alice")
	}
	if !slices.Contains(args, "--agent") {
		args = append(args, "--agent", "agt_default")
	}
	return strings.TrimSpace(kavach(t, f.dir, args...))
}

// revoke runs `kavach revoke` against the fixture's admin listener.
func (f *gwFixture) revoke(t *testing.T, args ...string) {
	t.Helper()
	args = append([]string{"revoke", "--admin", f.adminAddr}, args...)
	out, errOut, err := kavachEnv(f.dir, []string{"KAVACH_ADMIN_TOKEN=" + f.adminToken}, args...)
	if err != nil {
		t.Fatalf("kavach %v: %v\nstdout: %s\nstderr: %s", args, err, out, errOut)
	}
	if !strings.Contains(out, "revoked") {
		t.Fatalf("kavach %v printed %q, want the stored entry", args, out)
	}
}

// inProcessToken signs claims with key.jwk, for what the CLI refuses to
// mint (tokens already expired or not yet valid).
func (f *gwFixture) inProcessToken(t *testing.T, aud string, iat, exp time.Time) string {
	t.Helper()
	k := signingKey(t, filepath.Join(f.dir, "key.jwk"))
	agents := []string{"agt_inproc"}
	c := &token.Claims{
		Issuer:   gwIssuer,
		Subject:  "usr_alice",
		Actor:    token.ActorFor(agents),
		ClientID: agents[0],
		Audience: token.Audience{aud},
		Scope:    "repo:read",
		ID:       token.NewID(token.PrefixToken),
		IssuedAt: iat.Unix(),
		Expiry:   exp.Unix(),
		Kavach:   &token.Kavach{Version: token.KavachVersion, Chain: []string{token.NewID(token.PrefixGrant)}, Agents: agents},
	}
	raw, err := token.Mint(k, c)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// expectChallenge checks a denial: the status, exactly one Bearer
// challenge whose parameters are exactly error (when code is not ""),
// scope (when scope is not ""), error_description (when desc is not "")
// and resource_metadata = prm.
func expectChallenge(t *testing.T, r response, status int, code, scope, desc, prm string) {
	t.Helper()
	if r.Status != status {
		t.Errorf("status %d, want %d (body %q, WWW-Authenticate %q)", r.Status, status, r.Body, r.Header.Values("WWW-Authenticate"))
	}
	vals := r.Header.Values("WWW-Authenticate")
	if len(vals) != 1 {
		t.Fatalf("want one WWW-Authenticate header, got %q", vals)
	}
	c, err := parseChallenge(vals[0])
	if err != nil {
		t.Fatalf("WWW-Authenticate %q: %v", vals[0], err)
	}
	if c.Scheme != "Bearer" {
		t.Errorf("challenge scheme %q, want Bearer: %q", c.Scheme, vals[0])
	}
	want := map[string]string{"resource_metadata": prm}
	if code != "" {
		want["error"] = code
	}
	if scope != "" {
		want["scope"] = scope
	}
	if desc != "" {
		want["error_description"] = desc
	}
	for k, v := range want {
		if got, ok := c.Params[k]; !ok || got != v {
			t.Errorf("challenge %s = %q (present %v), want %q; challenge %q", k, got, ok, v, vals[0])
		}
	}
	for k := range c.Params {
		if _, ok := want[k]; !ok {
			t.Errorf("challenge has unexpected parameter %s=%q: %q", k, c.Params[k], vals[0])
		}
	}
}

// expectNoUpstream fails if the upstream received anything.
func expectNoUpstream(t *testing.T, up *upstream) {
	t.Helper()
	if got := up.take(); len(got) != 0 {
		t.Errorf("the upstream received %d request(s), want none: first %s %s headers %v", len(got), got[0].Method, got[0].RequestURI, got[0].Header)
	}
}

// expectOneUpstream returns the single request the upstream received.
func expectOneUpstream(t *testing.T, up *upstream) seen {
	t.Helper()
	got := up.take()
	if len(got) != 1 {
		t.Fatalf("the upstream received %d requests, want 1", len(got))
	}
	return got[0]
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// logText turns Caddy's JSON log lines into their messages (unescaped, so
// quotes read as written), keeping other lines as they are.
func logText(out string) string {
	var b strings.Builder
	for _, line := range strings.Split(out, "\n") {
		var entry struct {
			Msg   string `json:"msg"`
			Error string `json:"error"`
		}
		if json.Unmarshal([]byte(line), &entry) == nil && entry.Msg != "" {
			b.WriteString(entry.Msg)
			if entry.Error != "" {
				b.WriteString(": " + entry.Error)
			}
		} else {
			b.WriteString(line)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func TestGateway(t *testing.T) {
	f := startFixture(t)
	up := f.up

	// The subtests share the gateway and the upstream's record, so they
	// run one after another.

	t.Run("missing token", func(t *testing.T) {
		r := do(t, newReq(t, "GET", f.baseA+"/api/x", "", nil))
		expectChallenge(t, r, 401, "", "repo:read repo:write", "", f.prmA)
		if got := r.Header.Get("WWW-Authenticate"); got != `Bearer scope="repo:read repo:write", resource_metadata="`+f.prmA+`"` {
			t.Errorf("challenge %q, want exactly the RFC 9728 §5.1 form without an error code, with the route's scopes (MCP 2025-11-25)", got)
		}
		req := newReq(t, "GET", f.baseA+"/api/x", "", nil)
		req.Header.Set("Authorization", "Basic YWxpY2U6c2VjcmV0")
		expectChallenge(t, do(t, req), 401, "", "repo:read repo:write", "", f.prmA)
		expectNoUpstream(t, up)
	})

	t.Run("token only from the Authorization header", func(t *testing.T) {
		// The metadata advertises bearer_methods_supported ["header"]: a
		// token in the query (RFC 6750 §2.3) or a form body (§2.2) is not
		// a token.
		tok := f.mint(t, "--aud", f.resA, "--scope", "repo:read")
		r := do(t, newReq(t, "GET", f.baseA+"/api/x?access_token="+tok, "", nil))
		expectChallenge(t, r, 401, "", "repo:read repo:write", "", f.prmA)
		req := newReq(t, "POST", f.baseA+"/api/write", "", strings.NewReader("access_token="+tok))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		expectChallenge(t, do(t, req), 401, "", "repo:read repo:write", "", f.prmA)
		expectNoUpstream(t, up)
		// The scheme name is case-insensitive (RFC 9110 §11.1).
		req = newReq(t, "GET", f.baseA+"/api/x", "", nil)
		req.Header.Set("Authorization", "bearer "+tok)
		if r := do(t, req); r.Status != 200 {
			t.Errorf("lower-case scheme: status %d, challenge %q", r.Status, r.Header.Get("WWW-Authenticate"))
		}
		expectOneUpstream(t, up)
	})

	t.Run("protected resource metadata", func(t *testing.T) {
		r := do(t, newReq(t, "GET", f.prmA, "", nil))
		if r.Status != 200 {
			t.Fatalf("GET %s: status %d, body %q", f.prmA, r.Status, r.Body)
		}
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("Content-Type %q, want application/json", ct)
		}
		var doc struct {
			Resource             string   `json:"resource"`
			AuthorizationServers []string `json:"authorization_servers"`
			BearerMethods        []string `json:"bearer_methods_supported"`
		}
		if err := json.Unmarshal([]byte(r.Body), &doc); err != nil {
			t.Fatalf("metadata is not JSON: %v\n%s", err, r.Body)
		}
		if doc.Resource != f.resA {
			t.Errorf("resource %q, want %q", doc.Resource, f.resA)
		}
		if !slices.Equal(doc.AuthorizationServers, []string{gwIssuer}) {
			t.Errorf("authorization_servers %q, want [%s]", doc.AuthorizationServers, gwIssuer)
		}
		if !slices.Equal(doc.BearerMethods, []string{"header"}) {
			t.Errorf("bearer_methods_supported %q, want [header]", doc.BearerMethods)
		}
		r = do(t, newReq(t, "GET", f.prmB, "", nil))
		if r.Status != 200 || !strings.Contains(r.Body, `"`+f.resB+`"`) {
			t.Errorf("site B metadata: status %d body %q", r.Status, r.Body)
		}
		expectNoUpstream(t, up)
	})

	good := f.mint(t, "--aud", f.resA, "--scope", "repo:read repo:write", "--agent", "agt_root", "--agent", "agt_child")

	t.Run("good token", func(t *testing.T) {
		r := do(t, newReq(t, "GET", f.baseA+"/api/x?q=1", good, nil))
		if r.Status != 200 || r.Body != "upstream ok" {
			t.Fatalf("status %d body %q, want 200 from the upstream", r.Status, r.Body)
		}
		s := expectOneUpstream(t, up)
		if s.Method != "GET" || s.RequestURI != "/api/x?q=1" {
			t.Errorf("upstream got %s %s, want GET /api/x?q=1", s.Method, s.RequestURI)
		}
		want := map[string]string{
			"Kavach-Subject": "usr_alice",
			"Kavach-Actor":   "agt_child",
			"Kavach-Chain":   "agt_root,agt_child",
			"Kavach-Scope":   "repo:read repo:write",
		}
		for k, v := range want {
			if got := s.Header.Values(k); len(got) != 1 || got[0] != v {
				t.Errorf("upstream %s = %q, want [%q]", k, got, v)
			}
		}
		if v, ok := s.Header["Authorization"]; ok {
			t.Errorf("upstream received Authorization %q", v)
		}

		r = do(t, newReq(t, "POST", f.baseA+"/api/write", good, strings.NewReader("payload")))
		if r.Status != 200 {
			t.Fatalf("POST /api/write: status %d body %q", r.Status, r.Body)
		}
		if s := expectOneUpstream(t, up); s.Method != "POST" || string(s.Body) != "payload" || s.BodyErr != nil {
			t.Errorf("upstream got %s body %q (err %v), want POST \"payload\"", s.Method, s.Body, s.BodyErr)
		}
	})

	t.Run("invalid tokens", func(t *testing.T) {
		parts := strings.Split(good, ".")
		hdr, err := base64.RawURLEncoding.DecodeString(parts[0])
		if err != nil {
			t.Fatal(err)
		}
		var h struct {
			Kid string `json:"kid"`
		}
		if err := json.Unmarshal(hdr, &h); err != nil || h.Kid == "" {
			t.Fatalf("header %s: %v", hdr, err)
		}
		payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
		var claims map[string]any
		if err := json.Unmarshal(payload, &claims); err != nil {
			t.Fatal(err)
		}
		claims["scope"] = "repo:read repo:write repo:admin"
		widened, _ := json.Marshal(claims)

		jwks, err := os.ReadFile(filepath.Join(f.dir, "jwks.json"))
		if err != nil {
			t.Fatal(err)
		}
		hsHeader := b64([]byte(`{"alg":"HS256","typ":"at+jwt","kid":"` + h.Kid + `"}`))
		mac := hmac.New(sha256.New, jwks)
		mac.Write([]byte(hsHeader + "." + parts[1]))
		noneHeader := b64([]byte(`{"alg":"none","typ":"at+jwt","kid":"` + h.Kid + `"}`))

		now := time.Now()
		cases := []struct {
			name, token, desc string
		}{
			{"malformed", "not-a-jwt", "malformed token"},
			{"malformed three segments", "a.b.c", "malformed token"},
			{"oversized", strings.Repeat("a", 9000), "token too large"},
			{"oversized shaped", parts[0] + "." + strings.Repeat("A", 8200) + "." + parts[2], "token too large"},
			{"expired", f.inProcessToken(t, f.resA, now.Add(-2*time.Hour), now.Add(-time.Hour)), "token expired"},
			{"not yet valid", f.inProcessToken(t, f.resA, now.Add(10*time.Minute), now.Add(15*time.Minute)), "token not yet valid"},
			{"lifetime over max", f.mint(t, "--aud", f.resA, "--scope", "repo:read", "--ttl", "2h"), "token lifetime too long"},
			{"wrong audience", f.mint(t, "--aud", "https://elsewhere.test/api", "--scope", "repo:read"), "token is not for this resource"},
			{"audience of the other site", f.mint(t, "--aud", f.resB, "--scope", "repo:read"), "token is not for this resource"},
			{"untrusted key and issuer", f.mint(t, "--key", "rogue.jwk", "--iss", "https://rogue.test", "--aud", f.resA, "--scope", "repo:read"), "unknown signing key"},
			{"untrusted key claiming the trusted issuer", f.mint(t, "--key", "rogue.jwk", "--iss", gwIssuer, "--aud", f.resA, "--scope", "repo:read"), "unknown signing key"},
			{"trusted key, other issuer", f.mint(t, "--iss", "https://rogue.test", "--aud", f.resA, "--scope", "repo:read"), "untrusted issuer"},
			{"tampered payload", parts[0] + "." + b64(widened) + "." + parts[2], "invalid signature"},
			{"tampered signature", parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2])), "invalid signature"},
			{"alg none", noneHeader + "." + parts[1] + ".", "malformed token"},
			{"alg none with a signature", noneHeader + "." + parts[1] + "." + parts[2], "signing algorithm not allowed"},
			{"HS256 keyed with the public JWKS", hsHeader + "." + parts[1] + "." + b64(mac.Sum(nil)), "signing algorithm not allowed"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				r := do(t, newReq(t, "GET", f.baseA+"/api/x", tc.token, nil))
				expectChallenge(t, r, 401, "invalid_token", "", tc.desc, f.prmA)
				if d := r.Header.Get("WWW-Authenticate"); len(d) > 300 || strings.Contains(d, tc.token[:min(len(tc.token), 40)]) {
					t.Errorf("challenge is long or echoes the token: %q", d)
				}
				expectNoUpstream(t, up)
			})
		}
	})

	t.Run("more than one Authorization header", func(t *testing.T) {
		req := newReq(t, "GET", f.baseA+"/api/x", good, nil)
		req.Header.Add("Authorization", "Bearer "+good)
		r := do(t, req)
		expectChallenge(t, r, 400, "invalid_request", "", "more than one Authorization header", f.prmA)
		expectNoUpstream(t, up)
	})

	t.Run("missing scope", func(t *testing.T) {
		writer := f.mint(t, "--aud", f.resA, "--scope", "repo:write")
		r := do(t, newReq(t, "GET", f.baseA+"/api/x", writer, nil))
		expectChallenge(t, r, 403, "insufficient_scope", "repo:read", "insufficient scope", f.prmA)
		reader := f.mint(t, "--aud", f.resA, "--scope", "repo:read")
		r = do(t, newReq(t, "POST", f.baseA+"/api/write", reader, strings.NewReader("x")))
		expectChallenge(t, r, 403, "insufficient_scope", "repo:write", "insufficient scope", f.prmA)
		expectNoUpstream(t, up)
	})

	t.Run("no rule for method and path", func(t *testing.T) {
		for _, mp := range [][2]string{{"DELETE", "/api/x"}, {"POST", "/api/x"}, {"PUT", "/api/write"}} {
			r := do(t, newReq(t, mp[0], f.baseA+mp[1], good, nil))
			expectChallenge(t, r, 403, "", "", "no rule allows this method and path", f.prmA)
		}
		expectNoUpstream(t, up)
	})

	t.Run("constraint violations", func(t *testing.T) {
		cases := []struct {
			name, constraint, desc string
		}{
			{"methods", "methods=POST", "method not allowed by token"},
			{"hosts", "hosts=other.example", "host not allowed by token"},
			{"cidrs", "cidrs=10.0.0.0/8", "client address not allowed by token"},
			{"paths", "paths=/api/other", "path not allowed by token"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				tok := f.mint(t, "--aud", f.resA, "--scope", "repo:read", "--constraint", tc.constraint)
				r := do(t, newReq(t, "GET", f.baseA+"/api/x", tok, nil))
				expectChallenge(t, r, 403, "", "", tc.desc, f.prmA)
				expectNoUpstream(t, up)
			})
		}
		t.Run("max_body with Content-Length", func(t *testing.T) {
			tok := f.mint(t, "--aud", f.resA, "--scope", "repo:read repo:write", "--constraint", "max_body=10")
			req := newReq(t, "POST", f.baseA+"/api/write", tok, strings.NewReader("0123456789abcdef"))
			if req.ContentLength != 16 {
				t.Fatalf("ContentLength %d", req.ContentLength)
			}
			r := do(t, req)
			expectChallenge(t, r, 413, "", "", "request body larger than the token allows", f.prmA)
			expectNoUpstream(t, up)
		})
	})

	t.Run("constraints satisfied", func(t *testing.T) {
		// The same constraints, satisfied, let the request through: the
		// denials above are the constraints' doing.
		tok := f.mint(t, "--aud", f.resA, "--scope", "repo:read repo:write",
			"--constraint", "methods=GET,POST", "--constraint", "hosts=127.0.0.1",
			"--constraint", "cidrs=127.0.0.0/8", "--constraint", "paths=/api/x,/api/write",
			"--constraint", "max_body=16")
		r := do(t, newReq(t, "GET", f.baseA+"/api/x", tok, nil))
		if r.Status != 200 {
			t.Fatalf("GET: status %d, challenge %q", r.Status, r.Header.Get("WWW-Authenticate"))
		}
		expectOneUpstream(t, up)
		r = do(t, newReq(t, "POST", f.baseA+"/api/write", tok, strings.NewReader("0123456789abcdef")))
		if r.Status != 200 {
			t.Fatalf("POST 16 bytes under max_body=16: status %d, challenge %q", r.Status, r.Header.Get("WWW-Authenticate"))
		}
		if s := expectOneUpstream(t, up); string(s.Body) != "0123456789abcdef" || s.BodyErr != nil {
			t.Errorf("upstream body %q err %v", s.Body, s.BodyErr)
		}
	})

	t.Run("streamed body over max_body", func(t *testing.T) {
		tok := f.mint(t, "--aud", f.resA, "--scope", "repo:read repo:write", "--constraint", "max_body=10")

		// Under the limit, a chunked body passes whole.
		req := newReq(t, "POST", f.baseA+"/api/write", tok, struct{ io.Reader }{strings.NewReader("01234")})
		req.ContentLength = -1
		r := do(t, req)
		if r.Status != 200 {
			t.Fatalf("chunked 5 bytes under max_body=10: status %d body %q", r.Status, r.Body)
		}
		if s := expectOneUpstream(t, up); string(s.Body) != "01234" || s.BodyErr != nil {
			t.Fatalf("upstream got %q (err %v), want the 5 bytes", s.Body, s.BodyErr)
		}

		body := bytes.Repeat([]byte("x"), 100)
		req = newReq(t, "POST", f.baseA+"/api/write", tok, struct{ io.Reader }{bytes.NewReader(body)})
		req.ContentLength = -1
		r = do(t, req)
		got := up.waitTake(3 * time.Second)
		t.Logf("chunked 100-byte body, max_body=10: client got %d %q; upstream recorded %d request(s)", r.Status, r.Body, len(got))
		for i, s := range got {
			t.Logf("  upstream request %d: %s %s, read %d body bytes, read error: %v", i, s.Method, s.RequestURI, len(s.Body), s.BodyErr)
			if s.BodyErr == nil {
				t.Errorf("the upstream read a body that ended cleanly (%d bytes): a truncated body must never look complete", len(s.Body))
			}
			if bytes.Equal(s.Body, body) {
				t.Errorf("the upstream received the complete 100-byte body")
			}
			if len(s.Body) > 10 {
				t.Errorf("the upstream received %d bytes, more than max_body=10", len(s.Body))
			}
		}
		if r.Status != 413 {
			t.Errorf("client status %d, want 413", r.Status)
		}
	})

	t.Run("bad paths", func(t *testing.T) {
		send := func(target string) response {
			return rawHTTP(t, f.addrA, "GET "+target+" HTTP/1.1\r\nHost: "+f.addrA+"\r\nAuthorization: Bearer "+good+"\r\nConnection: close\r\n\r\n")
		}
		// The raw client itself works: a clean path is served.
		if r := send("/api/x"); r.Status != 200 {
			t.Fatalf("raw GET /api/x: status %d", r.Status)
		}
		expectOneUpstream(t, up)
		for _, target := range []string{"/api/a%2f..%2fb", "/api/a%2F..%2Fb", "/api/%5c", "/api/a%5C..%5Cb", "/api/./x", "/api/../x", "/api/x/../../admin"} {
			t.Run(target, func(t *testing.T) {
				r := send(target)
				if r.Status != 400 {
					hint := ""
					if r.Status == 200 && r.Body == "" && r.Header.Get("WWW-Authenticate") == "" {
						hint = " (Caddy's empty 200: no route matched, so the kavach handler never saw the request)"
					}
					t.Errorf("GET %s: status %d (body %q, challenge %q), want 400%s", target, r.Status, r.Body, r.Header.Get("WWW-Authenticate"), hint)
				}
				expectNoUpstream(t, up)
			})
		}
	})

	t.Run("dot segments cannot skip the gateway of a site-wide proxy", func(t *testing.T) {
		// Site C proxies every path and protects /api/*. A request whose
		// raw path starts with /api/ must not reach the upstream unless
		// the gateway allowed it: an upstream that routes on the raw or
		// escaped path would serve /api/..%2fx as an /api/ resource.
		send := func(target, bearer string) response {
			auth := ""
			if bearer != "" {
				auth = "Authorization: Bearer " + bearer + "\r\n"
			}
			return rawHTTP(t, f.addrC, "GET "+target+" HTTP/1.1\r\nHost: "+f.addrC+"\r\n"+auth+"Connection: close\r\n\r\n")
		}
		// Controls: the site proxies what it does not protect, and
		// protects /api/.
		if r := send("/public", ""); r.Status != 200 || r.Body != "upstream ok" {
			t.Fatalf("GET /public on site C: status %d body %q, want the upstream's answer", r.Status, r.Body)
		}
		expectOneUpstream(t, up)
		if r := send("/api/x", ""); r.Status != 401 {
			t.Fatalf("GET /api/x without a token on site C: status %d, want 401", r.Status)
		}
		expectNoUpstream(t, up)
		for _, target := range []string{"/api/../x", "/api/x/../../admin", "/api/..%2fx", "/api/%2e%2e/x"} {
			t.Run(target, func(t *testing.T) {
				r := send(target, "")
				for _, s := range up.take() {
					t.Errorf("the upstream received %s %s without a token (Kavach-Actor %q); client got %d", s.Method, s.RequestURI, s.Header.Get("Kavach-Actor"), r.Status)
				}
			})
		}
	})

	t.Run("spoofed Kavach headers", func(t *testing.T) {
		req := newReq(t, "GET", f.baseA+"/api/x", good, nil)
		// Set through the map so each spelling goes on the wire as written.
		req.Header["Kavach-Actor"] = []string{"evil"}
		req.Header["Kavach_Actor"] = []string{"evil"}
		req.Header["KAVACH-SUBJECT"] = []string{"evil"}
		req.Header["kavach_chain"] = []string{"evil"}
		req.Header["Kavach-Scope"] = []string{"evil"}
		req.Header["Kavach-Extra"] = []string{"evil"}
		r := do(t, req)
		if r.Status != 200 {
			t.Fatalf("status %d, challenge %q", r.Status, r.Header.Get("WWW-Authenticate"))
		}
		s := expectOneUpstream(t, up)
		if got := s.Header.Values("Kavach-Actor"); len(got) != 1 || got[0] != "agt_child" {
			t.Errorf("upstream Kavach-Actor %q, want [agt_child]", got)
		}
		for name, vals := range s.Header {
			norm := strings.ToLower(strings.ReplaceAll(name, "_", "-"))
			if slices.Contains(vals, "evil") {
				t.Errorf("upstream received spoofed header %s: %q", name, vals)
			}
			if strings.HasPrefix(norm, "kavach-") && !slices.Contains([]string{"kavach-subject", "kavach-actor", "kavach-chain", "kavach-scope", "kavach-issuer"}, norm) {
				t.Errorf("upstream received client-sent header %s: %q", name, vals)
			}
			if norm == "authorization" {
				t.Errorf("upstream received Authorization")
			}
		}
	})

	t.Run("CORS preflight", func(t *testing.T) {
		req := newReq(t, "OPTIONS", f.baseA+"/api/x", "", nil)
		req.Header.Set("Origin", "http://app.example")
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "authorization")
		r := do(t, req)
		if r.Status != 200 || r.Body != "upstream ok" {
			t.Fatalf("preflight: status %d body %q, want the upstream's answer", r.Status, r.Body)
		}
		if s := expectOneUpstream(t, up); s.Method != "OPTIONS" || s.Header.Get("Access-Control-Request-Method") != "POST" {
			t.Errorf("upstream got %s with ACRM %q", s.Method, s.Header.Get("Access-Control-Request-Method"))
		}
		// An OPTIONS that is not a preflight needs a token like any request.
		r = do(t, newReq(t, "OPTIONS", f.baseA+"/api/x", "", nil))
		expectChallenge(t, r, 401, "", "repo:read repo:write", "", f.prmA)
		expectNoUpstream(t, up)
	})

	t.Run("CORS preflight carries no spoofed Kavach headers", func(t *testing.T) {
		// The upstream must be able to trust Kavach-Actor on every request
		// the gateway forwards, a preflight included.
		req := newReq(t, "OPTIONS", f.baseA+"/api/x", "", nil)
		req.Header.Set("Origin", "http://app.example")
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header["Kavach-Actor"] = []string{"evil"}
		req.Header["Kavach_Subject"] = []string{"evil"}
		r := do(t, req)
		if r.Status != 200 {
			t.Fatalf("preflight: status %d", r.Status)
		}
		s := expectOneUpstream(t, up)
		for name, vals := range s.Header {
			if slices.Contains(vals, "evil") {
				t.Errorf("upstream received spoofed %s: %q on a preflight", name, vals)
			}
		}
	})

	t.Run("handle_errors shows the public reason", func(t *testing.T) {
		now := time.Now()
		expired := f.inProcessToken(t, f.resB, now.Add(-2*time.Hour), now.Add(-time.Hour))
		r := do(t, newReq(t, "GET", f.baseB+"/api/x", expired, nil))
		expectChallenge(t, r, 401, "invalid_token", "", "token expired", f.prmB)
		if r.Body != "token expired" {
			t.Errorf("body %q, want the public reason \"token expired\"", r.Body)
		}
		r = do(t, newReq(t, "GET", f.baseB+"/api/x", "", nil))
		expectChallenge(t, r, 401, "", "repo:read", "", f.prmB)
		if r.Body != "bearer token required" {
			t.Errorf("missing token: body %q", r.Body)
		}
		writer := f.mint(t, "--aud", f.resB, "--scope", "repo:write")
		r = do(t, newReq(t, "GET", f.baseB+"/api/x", writer, nil))
		expectChallenge(t, r, 403, "insufficient_scope", "repo:read", "insufficient scope", f.prmB)
		if r.Body != "insufficient scope" {
			t.Errorf("insufficient scope: body %q", r.Body)
		}
		// Without handle_errors (site A) the body carries no detail.
		r = do(t, newReq(t, "GET", f.baseA+"/api/x", f.inProcessToken(t, f.resA, now.Add(-2*time.Hour), now.Add(-time.Hour)), nil))
		if r.Status != 401 || r.Body != "" {
			t.Errorf("site A: status %d body %q, want 401 with an empty body", r.Status, r.Body)
		}
		good := f.mint(t, "--aud", f.resB, "--scope", "repo:read", "--jti", "tok_siteb", "--agent", "agt_siteb")
		if r := do(t, newReq(t, "GET", f.baseB+"/api/x", good, nil)); r.Status != 200 || r.Body != "upstream ok" {
			t.Errorf("site B with a good token: status %d body %q", r.Status, r.Body)
		}
		// The kavach.* placeholders are set for the handlers after it.
		s := expectOneUpstream(t, up)
		if got, want := s.Header.Get("X-Token-Id")+" "+s.Header.Get("X-Agent"), "tok_siteb agt_siteb"; got != want {
			t.Errorf("header_up from {kavach.jti} {kavach.actor}: %q, want %q", got, want)
		}
	})

	t.Run("revocation", func(t *testing.T) {
		ok := func(t *testing.T, tok string) {
			t.Helper()
			if r := do(t, newReq(t, "GET", f.baseA+"/api/x", tok, nil)); r.Status != 200 {
				t.Fatalf("before revocation: status %d, challenge %q", r.Status, r.Header.Get("WWW-Authenticate"))
			}
			expectOneUpstream(t, up)
		}
		revoked := func(t *testing.T, tok string) {
			t.Helper()
			r := do(t, newReq(t, "GET", f.baseA+"/api/x", tok, nil))
			expectChallenge(t, r, 401, "invalid_token", "", "token revoked", f.prmA)
			expectNoUpstream(t, up)
		}

		t.Run("admin listener refuses a wrong admin token", func(t *testing.T) {
			tok := f.mint(t, "--aud", f.resA, "--scope", "repo:read", "--agent", "agt_wrongadmin")
			ok(t, tok)
			_, _, err := kavachEnv(f.dir, []string{"KAVACH_ADMIN_TOKEN=wrong"}, "revoke", "--admin", f.adminAddr, "agt_wrongadmin")
			if err == nil {
				t.Fatal("kavach revoke with a wrong admin token succeeded")
			}
			ok(t, tok)
		})

		t.Run("agent", func(t *testing.T) {
			// Used first, so it is in the verify cache when revoked.
			tok := f.mint(t, "--aud", f.resA, "--scope", "repo:read", "--agent", "agt_revokeme")
			other := f.mint(t, "--aud", f.resA, "--scope", "repo:read", "--agent", "agt_keepme")
			ok(t, tok)
			f.revoke(t, "agt_revokeme")
			revoked(t, tok)
			revoked(t, f.mint(t, "--aud", f.resA, "--scope", "repo:read", "--agent", "agt_revokeme"))
			ok(t, other)
		})

		t.Run("grant of a depth-2 chain", func(t *testing.T) {
			tok := f.mint(t, "--aud", f.resA, "--scope", "repo:read",
				"--agent", "agt_parent", "--agent", "agt_kid", "--chain", "dlg_parentgrant", "--chain", "dlg_kidgrant")
			sibling := f.mint(t, "--aud", f.resA, "--scope", "repo:read",
				"--agent", "agt_parent", "--agent", "agt_kid", "--chain", "dlg_othergrant", "--chain", "dlg_otherkid")
			ok(t, tok)
			f.revoke(t, "dlg_parentgrant")
			revoked(t, tok)
			ok(t, sibling)
		})

		t.Run("token id", func(t *testing.T) {
			tok := f.mint(t, "--aud", f.resA, "--scope", "repo:read", "--agent", "agt_jti", "--jti", "tok_revokedone")
			ok(t, tok)
			f.revoke(t, "tok_revokedone")
			revoked(t, tok)
			ok(t, f.mint(t, "--aud", f.resA, "--scope", "repo:read", "--agent", "agt_jti"))
		})

		t.Run("user cutoff", func(t *testing.T) {
			tok := f.mint(t, "--aud", f.resA, "--scope", "repo:read", "--sub", "usr_bob", "--agent", "agt_bobs")
			ok(t, tok)
			f.revoke(t, "--before", "now", "--sub", "usr_bob")
			revoked(t, tok)
			ok(t, f.mint(t, "--aud", f.resA, "--scope", "repo:read", "--sub", "usr_carol", "--agent", "agt_bobs2"))
		})
	})
}

// TestGatewayReloadKeepsRevocation reloads the config twice, through
// Caddy's admin API and through `kavach reload`, and checks that a
// revocation made before survives and the Kavach admin listener keeps
// serving.
func TestGatewayReloadKeepsRevocation(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	f := &gwFixture{dir: t.TempDir(), up: up, adminToken: "adm_reload"}
	newKeys(t, f.dir)
	p, pK, pC := freePort(t), freePort(t), freePort(t)
	f.addrA = fmt.Sprintf("127.0.0.1:%d", p)
	f.baseA, f.adminAddr = "http://"+f.addrA, fmt.Sprintf("127.0.0.1:%d", pK)
	f.resA, f.prmA = f.baseA+"/api", f.baseA+"/.well-known/oauth-protected-resource/api"
	caddyAdmin := fmt.Sprintf("127.0.0.1:%d", pC)
	config := func(version string) string {
		return fmt.Sprintf(`{
	admin %s
	kavach {
		trusted_keys %s ./jwks.json
		admin %s
	}
}

http://%s {
	bind 127.0.0.1
	kavach /api/* {
		resource %s
		scope GET /api/* repo:read
	}
	reverse_proxy /api/* %s
	respond /version %q
}
`, caddyAdmin, gwIssuer, f.adminAddr, f.addrA, f.resA, up.addr(), version)
	}
	write := func(version string) {
		if err := os.WriteFile(filepath.Join(f.dir, "Caddyfile"), []byte(config(version)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	version := func() string {
		return do(t, newReq(t, "GET", f.baseA+"/version", "", nil)).Body
	}
	write("v1")
	startGateway(t, f.dir, []string{"KAVACH_ADMIN_TOKEN=" + f.adminToken}, p, pK, pC)

	first := f.mint(t, "--aud", f.resA, "--scope", "repo:read", "--agent", "agt_before")
	second := f.mint(t, "--aud", f.resA, "--scope", "repo:read", "--agent", "agt_after")
	status := func(tok string) int {
		r := do(t, newReq(t, "GET", f.baseA+"/api/x", tok, nil))
		up.take()
		return r.Status
	}
	if s1, s2 := status(first), status(second); s1 != 200 || s2 != 200 {
		t.Fatalf("before revocation: %d %d", s1, s2)
	}
	f.revoke(t, "agt_before")
	if s := status(first); s != 401 {
		t.Fatalf("after revocation: %d, want 401", s)
	}

	// Reload 1: POST the Caddyfile to Caddy's admin API.
	write("v2")
	req := newReq(t, "POST", "http://"+caddyAdmin+"/load", "", strings.NewReader(config("v2")))
	req.Header.Set("Content-Type", "text/caddyfile")
	if r := do(t, req); r.Status != 200 {
		t.Fatalf("POST /load: status %d body %q", r.Status, r.Body)
	}
	if v := version(); v != "v2" {
		t.Fatalf("after /load the config serves %q, want v2: the reload did not happen", v)
	}
	if s := status(first); s != 401 {
		t.Errorf("after reload via /load, the token of the revoked agent gets %d, want 401", s)
	}
	if s := status(second); s != 200 {
		t.Errorf("after reload via /load, an unrevoked token gets %d, want 200", s)
	}

	// The Kavach admin listener still works after the reload.
	f.revoke(t, "agt_after")
	if s := status(second); s != 401 {
		t.Errorf("revoked after the reload: %d, want 401", s)
	}

	// Reload 2: the CLI.
	write("v3")
	if out, errOut, err := kavachEnv(f.dir, nil, "reload", "--config", "Caddyfile", "--adapter", "caddyfile", "--address", caddyAdmin); err != nil {
		t.Fatalf("kavach reload: %v\n%s\n%s", err, out, errOut)
	}
	if v := version(); v != "v3" {
		t.Fatalf("after kavach reload the config serves %q, want v3", v)
	}
	if s1, s2 := status(first), status(second); s1 != 401 || s2 != 401 {
		t.Errorf("after kavach reload: revoked tokens get %d and %d, want 401 and 401", s1, s2)
	}
	if s := status(f.mint(t, "--aud", f.resA, "--scope", "repo:read", "--agent", "agt_fresh")); s != 200 {
		t.Errorf("after kavach reload, a fresh token gets %d, want 200", s)
	}
}

// TestGatewayValidateRejectsBadConfig runs `kavach validate` on configs
// that differ from a good one by one line each; every refusal must name
// the file and the line at fault.
func TestGatewayValidateRejectsBadConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	newKeys(t, dir)
	const good = `{
	admin off
	kavach {
		trusted_keys https://issuer.gateway.test ./jwks.json
		admin 127.0.0.1:2021
		max_token_lifetime 1h
	}
}

http://127.0.0.1:8080 {
	kavach /api/* {
		resource http://127.0.0.1:8080/api
		scope GET /api/* repo:read
	}
	reverse_proxy /api/* 127.0.0.1:8081
}
`
	validate := func(t *testing.T, name, config string) (string, error) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(config), 0o644); err != nil {
			t.Fatal(err)
		}
		out, errOut, err := kavachEnv(dir, nil, "validate", "--config", name, "--adapter", "caddyfile")
		return logText(out + errOut), err
	}
	if out, err := validate(t, "good.Caddyfile", good); err != nil {
		t.Fatalf("the good config does not validate: %v\n%s", err, out)
	}

	cases := []struct {
		name, from, to string
		line           int
		mention        string
	}{
		{"wildcard in a required scope", "scope GET /api/* repo:read", "scope GET /api/* repo:*", 13, `"repo:*"`},
		{"wildcard in a route-wide scope", "scope GET /api/* repo:read", "scope *", 13, `"*"`},
		{"bad resource URL", "resource http://127.0.0.1:8080/api", "resource /api", 12, `"/api"`},
		{"resource with a query", "resource http://127.0.0.1:8080/api", "resource http://127.0.0.1:8080/api?x=1", 12, "query"},
		{"unknown directive option", "scope GET /api/* repo:read", "scopes GET /api/* repo:read", 13, `"scopes"`},
		{"unknown global option", "max_token_lifetime 1h", "max_token_age 1h", 6, `"max_token_age"`},
		{"bad duration", "max_token_lifetime 1h", "max_token_lifetime soon", 6, "max_token_lifetime"},
		{"non-positive duration", "max_token_lifetime 1h", "max_token_lifetime 0s", 6, "max_token_lifetime"},
		{"bad cache_size", "max_token_lifetime 1h", "cache_size lots", 6, "cache_size"},
		{"admin not on loopback", "admin 127.0.0.1:2021", "admin 0.0.0.0:2021", 5, "loopback"},
		// A remote issuer without redis is refused by `kavach run`, not by
		// validate: only at start is it known whether a kavach_issuer of
		// the same config serves that URL (TestRemoteIssuerNeedsRedis).
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if !strings.Contains(good, tc.from) {
				t.Fatalf("%q not in the good config", tc.from)
			}
			name := "bad-" + strings.ReplaceAll(tc.name, " ", "-") + ".Caddyfile"
			config := strings.Replace(good, tc.from, tc.to, 1)
			if got := strings.Split(config, "\n")[tc.line-1]; !strings.Contains(got, tc.to) {
				t.Fatalf("line %d of the bad config is %q, not the changed line", tc.line, got)
			}
			out, err := validate(t, name, config)
			if err == nil {
				t.Fatalf("kavach validate accepted:\n%s\noutput:\n%s", config, out)
			}
			if want := fmt.Sprintf("%s:%d", name, tc.line); !strings.Contains(out, want) {
				t.Errorf("output does not name %s:\n%s", want, out)
			}
			if !strings.Contains(out, tc.mention) {
				t.Errorf("output does not mention %s:\n%s", tc.mention, out)
			}
		})
	}

	t.Run("audit required with the trail off", func(t *testing.T) {
		t.Parallel()
		config := strings.Replace(strings.Replace(good, "max_token_lifetime 1h", "audit off", 1),
			"scope GET /api/* repo:read", "scope GET /api/* repo:read\n\t\taudit required", 1)
		out, err := validate(t, "bad-audit-required-off.Caddyfile", config)
		if err == nil {
			t.Fatalf("kavach validate accepted a route requiring a trail that is off:\n%s", out)
		}
		if !strings.Contains(out, "audit required") {
			t.Errorf("output does not say which option conflicts:\n%s", out)
		}
	})

	t.Run("report_only with the trail off", func(t *testing.T) {
		t.Parallel()
		config := strings.Replace(strings.Replace(good, "max_token_lifetime 1h", "audit off", 1),
			"scope GET /api/* repo:read", "scope GET /api/* repo:read\n\t\treport_only", 1)
		out, err := validate(t, "bad-report-only-off.Caddyfile", config)
		if err == nil {
			t.Fatalf("kavach validate accepted a report_only route whose trail is off:\n%s", out)
		}
		if !strings.Contains(out, "report_only") {
			t.Errorf("output does not say which option conflicts:\n%s", out)
		}
	})

	t.Run("missing trusted_keys file", func(t *testing.T) {
		t.Parallel()
		out, err := validate(t, "bad-missing-jwks.Caddyfile", strings.Replace(good, "./jwks.json", "./missing.json", 1))
		if err == nil {
			t.Fatalf("kavach validate accepted a missing key file:\n%s", out)
		}
		if !strings.Contains(out, "missing.json") {
			t.Errorf("output does not name the missing file:\n%s", out)
		}
	})
}
