package issuer

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/kavachgate/kavach/revocation"
	"github.com/kavachgate/kavach/token"
)

// adminJSON calls the admin API with a JSON body (nil: none), through an
// HTTP server and a ServeMux in front of it as the admin listener has, so
// an encoded client id in the path takes the way it takes there.
func (e *testEnv) adminJSON(method, path string, body any) (int, map[string]any) {
	e.t.Helper()
	mux := http.NewServeMux()
	mux.Handle("/v1/", e.s.AdminHandler())
	srv := httptest.NewServer(mux)
	defer srv.Close()
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	// A redirect (a mux cleaning "//" out of an unencoded URL) must show
	// as what it is, not be followed.
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out
}

// metadataClientFlow runs the code flow for a client identified by its
// metadata document URL and returns the token response.
func (e *testEnv) metadataClientFlow(b *browser, clientID string) map[string]any {
	e.t.Helper()
	v := newVerifier()
	params := e.authParams(v)
	params.Set("client_id", clientID)
	q := e.loginAndConsent(b, params)
	status, out := e.tokenRequest(url.Values{
		"grant_type": {"authorization_code"}, "client_id": {clientID}, "code": {q.Get("code")},
		"redirect_uri": {"http://127.0.0.1:5555/callback"}, "code_verifier": {v},
	})
	if status != http.StatusOK {
		e.t.Fatalf("%s: code exchange: %d %v", clientID, status, out)
	}
	return out
}

// gatewayRejects reports whether a gateway holding set rejects the access
// token tok for a revocation (DESIGN.md §5): its jti, a grant or an agent
// of its chain is revoked, or a cutoff on sub, client_id or kid covers it.
func gatewayRejects(t *testing.T, s *Server, set revocation.Set, tok string) bool {
	t.Helper()
	c, err := s.Verifier().Verify(tok)
	if err != nil {
		t.Fatalf("the access token does not verify: %v", err)
	}
	for _, id := range append(append([]string{c.ID}, c.Kavach.Chain...), c.Kavach.Agents...) {
		if set.IsRevoked(id) {
			return true
		}
	}
	return set.RevokedBefore(revocation.CutoffSubject, c.Subject, c.IssuedAt) ||
		set.RevokedBefore(revocation.CutoffClient, c.ClientID, c.IssuedAt) ||
		set.RevokedBefore(revocation.CutoffKey, c.KeyID, c.IssuedAt)
}

// metadataClientState is what a client can still do after a revocation.
type metadataClientState struct {
	refresh   int  // status of a refresh with its refresh token
	token     int  // status of a code exchange as the client (the code is junk: a usable client gets 400 invalid_grant)
	authorize int  // status of a new authorization request
	redirects bool // the authorization request redirected (to the login page)
	cut       bool // a gateway rejects its access token
}

func (e *testEnv) metadataClientState(s *Server, set revocation.Set, issuer, clientID string, tokens map[string]any) metadataClientState {
	e.t.Helper()
	var st metadataClientState
	st.refresh, _ = postForm(e.t, issuer+pathToken, url.Values{
		"grant_type": {"refresh_token"}, "client_id": {clientID}, "refresh_token": {tokens["refresh_token"].(string)},
	}, "")
	st.token, _ = postForm(e.t, issuer+pathToken, url.Values{
		"grant_type": {"authorization_code"}, "client_id": {clientID}, "code": {"junk"},
		"redirect_uri": {"http://127.0.0.1:5555/callback"}, "code_verifier": {newVerifier()},
	}, "")
	params := e.authParams(newVerifier())
	params.Set("client_id", clientID)
	p := newBrowser(e.t).get(issuer + pathAuthorize + "?" + params.Encode())
	st.authorize, st.redirects = p.status, p.location != nil
	if p.status == http.StatusBadRequest && !strings.Contains(p.body, "revoked") {
		e.t.Errorf("%s: the authorization page does not say the application is revoked:\n%s", clientID, p.body)
	}
	st.cut = gatewayRejects(e.t, s, set, tokens["access_token"].(string))
	return st
}

var (
	usable  = metadataClientState{refresh: http.StatusOK, token: http.StatusBadRequest, authorize: http.StatusFound, redirects: true}
	revoked = metadataClientState{refresh: http.StatusUnauthorized, token: http.StatusUnauthorized, authorize: http.StatusBadRequest, cut: true}
)

// TestRevokeMetadataClient: an operator revokes a client ID metadata
// document client by its URL (URL-encoded in the admin path), or every
// client document on a host, with the cascade of a registered client: its
// refresh tokens and consents are revoked, gateways reject its access
// tokens, and it is refused from then on, also after a restart.
func TestRevokeMetadataClient(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *testEnv) {
		docs := newDocServer(t, false)
		port := strings.TrimPrefix(docs.URL, "http://127.0.0.1:")
		a := docs.URL + "/client.json"                   // revoked by URL
		b := docs.URL + "/client.json?tenant=b"          // same host: revoked with the host
		c := "http://localhost:" + port + "/client.json" // another host: never revoked
		br := newBrowser(t)
		tokA, tokB, tokC := e.metadataClientFlow(br, a), e.metadataClientFlow(br, b), e.metadataClientFlow(br, c)
		set := e.s.cfg.Revoked
		state := func(id string, tok map[string]any) metadataClientState {
			t.Helper()
			return e.metadataClientState(e.s, set, e.srv.URL, id, tok)
		}
		if got := state(a, tokA); got != usable {
			t.Fatalf("before any revocation: %+v", got)
		}
		tokA = e.metadataClientFlow(br, a) // the check refreshed it

		// By URL, escaped into one path segment.
		status, out := e.adminJSON(http.MethodPost, "/v1/clients/"+url.PathEscape(a)+"/revoke", nil)
		if status != http.StatusOK {
			t.Fatalf("revoke %s: %d %v", a, status, out)
		}
		ids, _ := out["revoked"].([]any)
		if !slices.Contains(ids, any(a)) || len(ids) < 3 { // the client and its two consents
			t.Errorf("revoke %s answered %v, want the client and its consent grants", a, out)
		}
		if got := state(a, tokA); got != revoked {
			t.Errorf("after revoking %s: %+v, want %+v", a, got, revoked)
		}
		if got := state(b, tokB); got != usable {
			t.Errorf("another client on the same host after revoking %s: %+v", a, got)
		}
		tokB = e.metadataClientFlow(br, b) // the check refreshed it

		// By host: every document on it.
		status, out = e.adminJSON(http.MethodPost, "/v1/clients/revoke", map[string]any{"host": "127.0.0.1"})
		if status != http.StatusOK {
			t.Fatalf("revoke host: %d %v", status, out)
		}
		if got := state(b, tokB); got != revoked {
			t.Errorf("after revoking the host: %s: %+v, want %+v", b, got, revoked)
		}
		if got := state(c, tokC); got != usable {
			t.Errorf("after revoking 127.0.0.1: %s on another host: %+v", c, got)
		}
		// A client of the host never seen before is refused too.
		status, _ = postForm(t, e.url(pathToken), url.Values{"grant_type": {"authorization_code"},
			"client_id": {docs.URL + "/client.json?tenant=new"}, "code": {"junk"}}, "")
		if status != http.StatusUnauthorized {
			t.Errorf("a new client document on a revoked host: %d, want 401", status)
		}

		// A restart (new issuer, new cache, empty gateway set seeded from
		// the store) forgets nothing.
		fresh := revocation.NewMemory(revocation.MemoryOptions{})
		cfg := e.s.cfg
		cfg.Revoked = fresh
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		s2, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := s2.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s2.Close() })
		if _, err := s2.Reseed(context.Background()); err != nil {
			t.Fatal(err)
		}
		srv2 := httptest.NewServer(s2.Handler())
		t.Cleanup(srv2.Close)
		for id, tok := range map[string]map[string]any{a: tokA, b: tokB} {
			if got := e.metadataClientState(s2, fresh, srv2.URL, id, tok); got != revoked {
				t.Errorf("after a restart, %s: %+v, want %+v", id, got, revoked)
			}
		}
		if got := e.metadataClientState(s2, fresh, srv2.URL, c, tokC); got != usable {
			t.Errorf("after a restart, %s: %+v", c, got)
		}
	}, func(c *Config) { c.AllowLoopbackMetadata = true })
}

// TestRevokeClientAdminInput: the admin API says what is wrong with a
// client revocation it cannot do.
func TestRevokeClientAdminInput(t *testing.T) {
	e := newEnv(t)
	for _, tt := range []struct {
		path   string
		body   any
		status int
	}{
		{"/v1/clients/cli_nope/revoke", nil, http.StatusNotFound},
		{"/v1/clients/" + url.PathEscape("ftp://tools.example/c.json") + "/revoke", nil, http.StatusBadRequest},
		{"/v1/clients/revoke", map[string]any{}, http.StatusBadRequest},
		{"/v1/clients/revoke", map[string]any{"host": "tools.example", "client_id": "https://tools.example/c.json"}, http.StatusBadRequest},
		{"/v1/clients/revoke", map[string]any{"host": "https://tools.example/"}, http.StatusBadRequest},
		{"/v1/clients/revoke", map[string]any{"host": "*"}, http.StatusBadRequest},
		{"/v1/clients/revoke", map[string]any{"host": ""}, http.StatusBadRequest},
		{"/v1/clients/revoke", map[string]any{"client_id": "https://tools.example/c.json"}, http.StatusOK},
		{"/v1/clients/revoke", map[string]any{"client_id": e.client.ID}, http.StatusOK},
		{"/v1/clients/revoke", map[string]any{"host": "Tools.Example."}, http.StatusOK},
	} {
		status, out := e.adminJSON(http.MethodPost, tt.path, tt.body)
		if status != tt.status || (status != http.StatusOK && (out["error"] == nil || out["error_description"] == nil)) {
			t.Errorf("POST %s %v: %d %v, want %d", tt.path, tt.body, status, out, tt.status)
		}
	}
}

// TestRevokeRegisteredClientCascade: revoking a registered client also
// revokes the consents users gave it, so the gateways drop its tokens by
// their chain as well as by the client_id cutoff.
func TestRevokeRegisteredClientCascade(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *testEnv) {
		out := e.codeFlow(newBrowser(t))
		tok, err := e.s.Verifier().Verify(out["access_token"].(string))
		if err != nil {
			t.Fatal(err)
		}
		status, res := e.adminJSON(http.MethodPost, "/v1/clients/"+e.client.ID+"/revoke", nil)
		if status != http.StatusOK {
			t.Fatalf("revoke: %d %v", status, res)
		}
		ids, _ := res["revoked"].([]any)
		if !slices.Contains(ids, any(e.client.ID)) || !slices.Contains(ids, any(tok.Kavach.Chain[0])) {
			t.Errorf("revoked %v, want the client and its consent %s", ids, tok.Kavach.Chain[0])
		}
		if !e.s.cfg.Revoked.IsRevoked(tok.Kavach.Chain[0]) {
			t.Error("the gateways' set does not hold the client's consent grant")
		}
		g, err := e.st.GetGrant(context.Background(), tok.Kavach.Chain[0])
		if err != nil || g.RevokedAt.IsZero() {
			t.Errorf("the consent grant is not revoked in the store: %+v %v", g, err)
		}
		if !strings.HasPrefix(e.client.ID, token.PrefixClient) {
			t.Fatal(e.client.ID)
		}
	})
}
