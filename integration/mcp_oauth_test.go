package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/auth/extauth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
	"golang.org/x/net/html"
)

// TestMCPOAuth connects the official MCP Go SDK's client to an MCP server
// behind the gateway, with nothing configured but the endpoint URL and
// credentials: the client's OAuth handlers react to the gateway's 401,
// discover the issuer from the RFC 9728 metadata the challenge names and
// the issuer's RFC 8414 metadata, get a token, and the retried requests
// reach the server as the user. Once as a user's app (dynamic
// registration, code flow with PKCE, the login and consent forms posted
// over HTTP), once as the user's agent (client credentials).
func TestMCPOAuth(t *testing.T) {
	up := newMCPUpstream(t)
	f := startMCPGateway(t, up.addr())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// MCP clients take the endpoint URL as the resource (MCP "canonical
	// server URI"; the SDK requires the metadata's resource to equal it).
	endpoint := f.resource
	const password = "mcp user password"
	f.createUser(t, "usr_alice", "alice", password, map[string][]string{f.resource: {"mcp:tools", "mcp:admin"}})
	sdkHTTP := &http.Client{Timeout: 15 * time.Second}

	// What every MCP client does first, step by step with the SDK's own
	// discovery functions: 401 naming the resource metadata, which names
	// the issuer, whose metadata has the endpoints.
	r := do(t, newReq(t, http.MethodPost, endpoint, "", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`)))
	if r.Status != http.StatusUnauthorized {
		t.Fatalf("MCP request without a token: %d, want 401", r.Status)
	}
	up.expectNone(t)
	challenges, err := oauthex.ParseWWWAuthenticate(r.Header.Values("WWW-Authenticate"))
	if err != nil || len(challenges) != 1 || challenges[0].Scheme != "bearer" {
		t.Fatalf("WWW-Authenticate %q: %v %+v", r.Header.Values("WWW-Authenticate"), err, challenges)
	}
	metaURL := challenges[0].Params["resource_metadata"]
	if metaURL != f.gateway+"/.well-known/oauth-protected-resource/mcp" {
		t.Fatalf("resource_metadata = %q, want %s/.well-known/oauth-protected-resource/mcp", metaURL, f.gateway)
	}
	prm, err := oauthex.GetProtectedResourceMetadata(ctx, metaURL, endpoint, sdkHTTP)
	if err != nil {
		t.Fatalf("protected resource metadata: %v", err)
	}
	if !slices.Equal(prm.AuthorizationServers, []string{f.issuer}) {
		t.Fatalf("authorization_servers = %q, want [%s]", prm.AuthorizationServers, f.issuer)
	}
	asm, err := auth.GetAuthServerMetadata(ctx, prm.AuthorizationServers[0], sdkHTTP)
	if err != nil || asm == nil {
		t.Fatalf("authorization server metadata: %v (found: %v)", err, asm != nil)
	}
	if asm.Issuer != f.issuer || asm.TokenEndpoint != f.issuer+"/oauth/token" || asm.AuthorizationEndpoint != f.issuer+"/oauth/authorize" ||
		asm.RegistrationEndpoint != f.issuer+"/oauth/register" || !slices.Equal(asm.CodeChallengeMethodsSupported, []string{"S256"}) ||
		!asm.AuthorizationResponseIssParameterSupported || !slices.Contains(asm.GrantTypesSupported, "client_credentials") {
		t.Fatalf("authorization server metadata: %+v", asm)
	}

	t.Run("user app, code flow", func(t *testing.T) {
		redirectURL := fmt.Sprintf("http://127.0.0.1:%d/callback", freePort(t))
		var authURLs []string
		h, err := auth.NewAuthorizationCodeHandler(&auth.AuthorizationCodeHandlerConfig{
			DynamicClientRegistrationConfig: &auth.DynamicClientRegistrationConfig{Metadata: &oauthex.ClientRegistrationMetadata{
				ClientName:              "Kavach MCP test app",
				RedirectURIs:            []string{redirectURL},
				TokenEndpointAuthMethod: "none",
				GrantTypes:              []string{"authorization_code", "refresh_token"},
				ResponseTypes:           []string{"code"},
			}},
			RedirectURL: redirectURL,
			AuthorizationCodeFetcher: func(ctx context.Context, args *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
				authURLs = append(authURLs, args.URL)
				return signInOverHTTP(ctx, args.URL, redirectURL, "alice", password)
			},
			Client: sdkHTTP,
		})
		if err != nil {
			t.Fatal(err)
		}
		rec := &exchangeLog{base: http.DefaultTransport}
		who := callWhoami(ctx, t, endpoint, &mcp.StreamableClientTransport{Endpoint: endpoint, OAuthHandler: h, HTTPClient: &http.Client{Transport: rec}})

		if len(authURLs) != 1 {
			t.Fatalf("the SDK started %d authorization flows, want 1", len(authURLs))
		}
		au, _ := url.Parse(authURLs[0])
		q := au.Query()
		if au.Scheme+"://"+au.Host+au.Path != f.issuer+"/oauth/authorize" || q.Get("resource") != endpoint ||
			q.Get("code_challenge_method") != "S256" || !strings.HasPrefix(q.Get("client_id"), "cli_") {
			t.Errorf("authorization request %s: want the issuer's endpoint, resource %s, S256, a registered client", authURLs[0], endpoint)
		}
		if who.Subject != "usr_alice" {
			t.Errorf("Kavach-Subject = %q, want usr_alice", who.Subject)
		}
		if who.Actor != q.Get("client_id") {
			t.Errorf("Kavach-Actor = %q, want the registered app %s", who.Actor, q.Get("client_id"))
		}
		// The gateway's metadata advertises the route's scopes
		// (scopes_supported), so the SDK asks for exactly those: least
		// privilege, although alice is entitled to mcp:admin too.
		if q.Get("scope") != "mcp:tools" {
			t.Errorf("the SDK asked for scope %q, want the advertised mcp:tools", q.Get("scope"))
		}
		if got := sortedFields(who.Scope); !slices.Equal(got, []string{"mcp:tools"}) {
			t.Errorf("Kavach-Scope = %q, want mcp:tools", who.Scope)
		}
		rec.expectChallengeThenOK(t, metaURL)
		up.expectAllAuthenticated(t)
	})

	t.Run("agent, client credentials", func(t *testing.T) {
		var agent agentOut
		f.cli(t, &agent, "agent", "create", "--name", "mcp-agent", "--owner", "usr_alice", "--scope", "mcp:tools", "--ttl", "1h")
		// The SDK's client_credentials handler sends no RFC 8707 resource;
		// the issuer then uses the owner's only entitled resource.
		h, err := extauth.NewClientCredentialsHandler(&extauth.ClientCredentialsHandlerConfig{
			Credentials: &oauthex.ClientCredentials{
				ClientID:         agent.ClientID,
				ClientSecretAuth: &oauthex.ClientSecretAuth{ClientSecret: agent.ClientSecret},
				Issuer:           f.issuer,
			},
			HTTPClient: sdkHTTP,
		})
		if err != nil {
			t.Fatal(err)
		}
		rec := &exchangeLog{base: http.DefaultTransport}
		who := callWhoami(ctx, t, endpoint, &mcp.StreamableClientTransport{Endpoint: endpoint, OAuthHandler: h, HTTPClient: &http.Client{Transport: rec}})
		if who.Subject != "usr_alice" || who.Actor != agent.ID {
			t.Errorf("the agent's call arrived as subject %q actor %q, want usr_alice and %s", who.Subject, who.Actor, agent.ID)
		}
		// The agent has mcp:tools only, though its owner has more.
		if who.Scope != "mcp:tools" {
			t.Errorf("Kavach-Scope = %q, want mcp:tools", who.Scope)
		}
		rec.expectChallengeThenOK(t, metaURL)
		up.expectAllAuthenticated(t)
	})
}

// startMCPGateway is startIssuer with an MCP endpoint: the gateway
// protects /mcp (resource <gateway>/mcp, every request needs mcp:tools)
// and proxies it to the MCP server at upstream.
func startMCPGateway(t *testing.T, upstream string) *issuerFixture {
	t.Helper()
	dir := t.TempDir()
	pi, pg, pa := freePort(t), freePort(t), freePort(t)
	f := &issuerFixture{
		dir:     dir,
		env:     []string{"KAVACH_ADMIN_TOKEN=it-admin-" + fmt.Sprint(time.Now().UnixNano())},
		issuer:  fmt.Sprintf("http://127.0.0.1:%d", pi),
		gateway: fmt.Sprintf("http://127.0.0.1:%d", pg),
		admin:   fmt.Sprintf("127.0.0.1:%d", pa),
	}
	f.resource = f.gateway + "/mcp"
	caddyfile := fmt.Sprintf(`{
	admin off
	persist_config off
	auto_https off
	kavach {
		issuer %[1]s
		admin %[3]s
		admin_token {env.KAVACH_ADMIN_TOKEN}
	}
}
%[1]s {
	kavach_issuer {
		issuer %[1]s
		store sqlite ./data/kavach.db
	}
}
%[2]s {
	kavach /mcp* {
		resource %[2]s/mcp
		scope mcp:tools
	}
	reverse_proxy /mcp* %[4]s
}
`, f.issuer, f.gateway, f.admin, upstream)
	if err := os.WriteFile(filepath.Join(dir, "Caddyfile"), []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	f.proc = startGateway(t, dir, f.env, pi, pg, pa)
	return f
}

// whoami is what the upstream MCP server's whoami tool returns: the
// identity headers the gateway added.
type whoami struct {
	Subject string `json:"subject"`
	Actor   string `json:"actor"`
	Scope   string `json:"scope"`
}

// mcpUpstream is an MCP server (the SDK's streamable HTTP handler) that
// counts requests arriving with a token or without a gateway identity.
type mcpUpstream struct {
	srv *httptest.Server

	mu        sync.Mutex
	requests  int
	leaked    int // carried an Authorization header
	anonymous int // carried no Kavach-Subject
}

func newMCPUpstream(t *testing.T) *mcpUpstream {
	t.Helper()
	server := mcp.NewServer(&mcp.Implementation{Name: "kavach-it-upstream", Version: "1.0.0"}, nil)
	mcp.AddTool(server, &mcp.Tool{Name: "whoami", Description: "The identity the gateway vouches for."},
		func(_ context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, whoami, error) {
			h := req.Extra.Header
			return nil, whoami{Subject: h.Get("Kavach-Subject"), Actor: h.Get("Kavach-Actor"), Scope: h.Get("Kavach-Scope")}, nil
		})
	handler := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil)
	u := &mcpUpstream{}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.requests++
		if r.Header.Get("Authorization") != "" {
			u.leaked++
		}
		if r.Header.Get("Kavach-Subject") == "" {
			u.anonymous++
		}
		u.mu.Unlock()
		handler.ServeHTTP(w, r)
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *mcpUpstream) addr() string { return u.srv.Listener.Addr().String() }

func (u *mcpUpstream) counts() (requests, leaked, anonymous int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.requests, u.leaked, u.anonymous
}

func (u *mcpUpstream) expectNone(t *testing.T) {
	t.Helper()
	if n, _, _ := u.counts(); n != 0 {
		t.Fatalf("the MCP server received %d request(s) without a token", n)
	}
}

// expectAllAuthenticated: everything that reached the server came through
// the gateway's checks (a subject added) and without the token.
func (u *mcpUpstream) expectAllAuthenticated(t *testing.T) {
	t.Helper()
	n, leaked, anonymous := u.counts()
	if n == 0 || leaked != 0 || anonymous != 0 {
		t.Errorf("MCP server: %d requests, %d with the token, %d without a subject; want >0, 0, 0", n, leaked, anonymous)
	}
}

// callWhoami connects an SDK client through transport, calls whoami and
// closes the session.
func callWhoami(ctx context.Context, t *testing.T, endpoint string, transport *mcp.StreamableClientTransport) whoami {
	t.Helper()
	client := mcp.NewClient(&mcp.Implementation{Name: "kavach-it-client", Version: "1.0.0"}, nil)
	session, err := client.Connect(ctx, transport, nil)
	if err != nil {
		t.Fatalf("MCP connect to %s: %v", endpoint, err)
	}
	defer session.Close()
	res, err := session.CallTool(ctx, &mcp.CallToolParams{Name: "whoami"})
	if err != nil {
		t.Fatalf("calling whoami: %v", err)
	}
	if res.IsError {
		t.Fatalf("whoami failed: %+v", res.Content)
	}
	raw, err := json.Marshal(res.StructuredContent)
	if err != nil {
		t.Fatal(err)
	}
	var who whoami
	if err := json.Unmarshal(raw, &who); err != nil {
		t.Fatalf("whoami result %s: %v", raw, err)
	}
	return who
}

// exchangeLog records the status of every MCP request and the challenge
// of each 401.
type exchangeLog struct {
	base http.RoundTripper

	mu      sync.Mutex
	entries []string // "POST 401 <WWW-Authenticate>" or "POST 200"
}

func (l *exchangeLog) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := l.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	e := fmt.Sprintf("%s %d", req.Method, resp.StatusCode)
	if resp.StatusCode == http.StatusUnauthorized {
		e += " " + resp.Header.Get("WWW-Authenticate")
	}
	l.mu.Lock()
	l.entries = append(l.entries, e)
	l.mu.Unlock()
	return resp, nil
}

// expectChallengeThenOK: the first request was refused with the metadata
// challenge; after the SDK authorized, none was refused.
func (l *exchangeLog) expectChallengeThenOK(t *testing.T, metaURL string) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.entries) < 2 || l.entries[0] != `POST 401 Bearer scope="mcp:tools", resource_metadata="`+metaURL+`"` {
		t.Fatalf("MCP requests %q: want a first 401 naming %s", l.entries, metaURL)
	}
	for _, e := range l.entries[1:] {
		if !strings.HasPrefix(e, "POST 2") && !strings.HasPrefix(e, "GET 2") && !strings.HasPrefix(e, "DELETE 2") {
			t.Errorf("MCP requests %q: %q after authorizing", l.entries, e)
		}
	}
}

// signInOverHTTP is a user agent without a browser: it follows the
// authorization URL to the login page, posts the user's name and password
// with the form's hidden fields (request id, CSRF token) and its cookies,
// approves on the consent page, and returns what the redirect to
// redirectURL carries.
func signInOverHTTP(ctx context.Context, authURL, redirectURL, user, password string) (*auth.AuthorizationResult, error) {
	jar, err := cookiejar.New(nil)
	if err != nil {
		return nil, err
	}
	ua := &http.Client{Jar: jar, Timeout: 15 * time.Second, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), redirectURL) {
			return http.ErrUseLastResponse // the app's listener takes it from here
		}
		if len(via) >= 10 {
			return errors.New("too many redirects")
		}
		return nil
	}}
	login, err := fetchForm(ctx, ua, http.MethodGet, authURL, nil)
	if err != nil {
		return nil, fmt.Errorf("login page: %w", err)
	}
	login.values.Set("username", user)
	login.values.Set("password", password)
	consent, err := fetchForm(ctx, ua, http.MethodPost, login.action, login.values)
	if err != nil {
		return nil, fmt.Errorf("signing in: %w", err)
	}
	if !consent.buttons["action"]["approve"] {
		return nil, errors.New("the page after signing in has no approve button")
	}
	consent.values.Set("action", "approve")
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, consent.action, strings.NewReader(consent.values.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := ua.Do(req)
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	loc, err := resp.Location()
	if err != nil || !strings.HasPrefix(loc.String(), redirectURL) {
		return nil, fmt.Errorf("approving: %s, Location %v, want a redirect to %s", resp.Status, loc, redirectURL)
	}
	q := loc.Query()
	if e := q.Get("error"); e != "" {
		return nil, fmt.Errorf("authorization error %s: %s", e, q.Get("error_description"))
	}
	return &auth.AuthorizationResult{Code: q.Get("code"), State: q.Get("state"), Iss: q.Get("iss")}, nil
}

// htmlForm is the first form of a page: its absolute action, hidden
// fields, and submit buttons by name and value.
type htmlForm struct {
	action  string
	values  url.Values
	buttons map[string]map[string]bool
}

// fetchForm requests a page (following redirects) and parses its form.
func fetchForm(ctx context.Context, ua *http.Client, method, target string, body url.Values) (*htmlForm, error) {
	var req *http.Request
	var err error
	if body != nil {
		req, err = http.NewRequestWithContext(ctx, method, target, strings.NewReader(body.Encode()))
		if err == nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	} else {
		req, err = http.NewRequestWithContext(ctx, method, target, nil)
	}
	if err != nil {
		return nil, err
	}
	resp, err := ua.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s %s: %s", method, target, resp.Status)
	}
	doc, err := html.Parse(resp.Body)
	if err != nil {
		return nil, err
	}
	var form *html.Node
	for n := range doc.Descendants() {
		if n.Type == html.ElementNode && n.Data == "form" {
			form = n
			break
		}
	}
	if form == nil {
		return nil, fmt.Errorf("%s: no form on the page", resp.Request.URL)
	}
	attr := func(n *html.Node, name string) string {
		for _, a := range n.Attr {
			if a.Key == name {
				return a.Val
			}
		}
		return ""
	}
	action, err := resp.Request.URL.Parse(attr(form, "action"))
	if err != nil {
		return nil, err
	}
	f := &htmlForm{action: action.String(), values: url.Values{}, buttons: map[string]map[string]bool{}}
	for n := range form.Descendants() {
		if n.Type != html.ElementNode {
			continue
		}
		switch {
		case n.Data == "input" && attr(n, "type") == "hidden":
			f.values.Set(attr(n, "name"), attr(n, "value"))
		case n.Data == "button" && attr(n, "name") != "":
			if f.buttons[attr(n, "name")] == nil {
				f.buttons[attr(n, "name")] = map[string]bool{}
			}
			f.buttons[attr(n, "name")][attr(n, "value")] = true
		}
	}
	return f, nil
}

func sortedFields(s string) []string {
	f := strings.Fields(s)
	slices.Sort(f)
	return f
}
