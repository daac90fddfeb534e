// Package oidctest is a real OpenID provider for tests: zitadel/oidc's certified op
// package (discovery, JWKS, authorize, PKCE, token endpoint, userinfo) on
// a loopback httptest server, with a storage written here that signs one
// user in at once (auto-login) and can spoil one thing of the next ID
// token (fault) or rotate its signing key.
//
//	o := oidctest.Start(t, issuerURL+"/oauth/idp/callback")
//	o.Set(oidctest.Alice, oidctest.FaultNone)
//	// configure the relying party with o.Issuer, oidctest.ClientID, oidctest.ClientSecret
package oidctest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

const (
	ClientID     = "kavach-test"
	ClientSecret = "test-secret-7d1f"
	// Another relying party at the same OP, whose ID tokens are not for Kavach.
	OtherClientID = "someone-else"
)

// User is who the OP signs in.
type User struct {
	Sub, Email, Name string
	Groups           []string
}

var (
	Alice = User{"00u-Alice", "Alice@corp.example", "Alice", []string{"platform-eng", "staff"}}
	Carol = User{"00u-Carol", "Carol@corp.example", "Carol", []string{"marketing"}}
)

// Faults the OP can put into the next ID token or response.
const (
	FaultNone      = ""
	FaultNonce     = "nonce"     // the ID token carries another nonce
	FaultIssuer    = "iss"       // the token endpoint signs as another issuer
	FaultExpired   = "expired"   // the ID token expired before it was issued
	FaultSignature = "signature" // signed by a key the JWKS does not hold, under the published kid
	FaultDeny      = "deny"      // the login page denies: error=access_denied
	FaultUserinfo  = "userinfo"  // groups only at the userinfo endpoint
)

type rsaKey struct {
	kid  string
	priv *rsa.PrivateKey
}

func generateRSAKey() (rsaKey, error) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return rsaKey{}, err
	}
	var b [9]byte
	_, _ = rand.Read(b[:])
	return rsaKey{kid: base64.RawURLEncoding.EncodeToString(b[:]), priv: k}, nil
}

type OP struct {
	t      testing.TB // nil when started by Serve
	srv    *httptest.Server
	mux    *http.ServeMux
	Issuer string

	redirect string
	// clientID and secret are the relying party's (ClientID and
	// ClientSecret unless Serve was told others).
	clientID, secret string
	// users, when set, are offered by a picker on the login page
	// (Serve's Options.Users); otherwise user is signed in at once.
	users []User

	mu        sync.Mutex
	user      User
	fault     string
	signing   rsaKey
	published []rsaKey
	other     *rsa.PrivateKey // for FaultSignature
	requests  map[string]*opAuthRequest
	codes     map[string]string // code → request id
	tokens    map[string]string // access token id → subject
	authorize []url.Values      // every authorization request seen
}

// Start starts the OP on loopback for a relying party whose callback is
// redirect; it stops when the test ends.
func Start(t testing.TB, redirect string) *OP {
	t.Helper()
	o, err := Serve(Options{Redirect: redirect})
	if err != nil {
		t.Fatal(err)
	}
	o.t = t
	t.Cleanup(o.srv.Close)
	return o
}

// Options configure an OP started by Serve, outside a test (the demo's
// IdP, demo/idp).
type Options struct {
	// Addr is the listen address. Default: 127.0.0.1:0.
	Addr string
	// Redirect is the relying party's one callback URL.
	Redirect string
	// ClientID and ClientSecret are the relying party's credentials.
	// Default: the package's ClientID and ClientSecret.
	ClientID, ClientSecret string
	// Users, when set, are offered by a picker page at the OP's login
	// (one link per user); otherwise the user Set names (Alice at first)
	// is signed in at once.
	Users []User
}

// Serve starts an OP that runs until Close.
func Serve(opts Options) (*OP, error) {
	o := &OP{
		redirect: opts.Redirect, clientID: opts.ClientID, secret: opts.ClientSecret, users: opts.Users,
		user: Alice, requests: map[string]*opAuthRequest{}, codes: map[string]string{}, tokens: map[string]string{},
	}
	if o.clientID == "" {
		o.clientID = ClientID
	}
	if o.secret == "" {
		o.secret = ClientSecret
	}
	if len(o.users) > 0 {
		o.user = o.users[0]
	}
	var err error
	if o.signing, err = generateRSAKey(); err != nil {
		return nil, err
	}
	o.published = []rsaKey{o.signing}
	other, err := generateRSAKey()
	if err != nil {
		return nil, err
	}
	o.other = other.priv
	addr := opts.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	o.srv = httptest.NewUnstartedServer(nil)
	o.srv.Listener.Close()
	o.srv.Listener = ln
	o.Issuer = "http://" + ln.Addr().String()
	var cryptoKey [32]byte
	_, _ = rand.Read(cryptoKey[:])
	cfg := &op.Config{CryptoKey: cryptoKey, CodeMethodS256: true, SupportedScopes: []string{"openid", "email", "profile", "groups"}}
	issuerFn := func(bool) (op.IssuerFromRequest, error) {
		return func(r *http.Request) string {
			if r.URL.Path == "/oauth/token" && o.getFault() == FaultIssuer {
				return "http://127.0.0.1:1/evil"
			}
			return o.Issuer
		}, nil
	}
	prov, err := op.NewProvider(cfg, o, issuerFn, op.WithAllowInsecure())
	if err != nil {
		ln.Close()
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/login", o.login(prov))
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/authorize" {
			o.mu.Lock()
			o.authorize = append(o.authorize, r.URL.Query())
			o.mu.Unlock()
		}
		prov.ServeHTTP(w, r)
	}))
	o.mux = mux
	o.srv.Config.Handler = mux
	o.srv.Start()
	return o, nil
}

// Handle adds a handler to the OP's server (the demo's ID-JAG endpoint).
func (o *OP) Handle(pattern string, h http.Handler) { o.mux.Handle(pattern, h) }

func (o *OP) Set(u User, fault string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.user, o.fault = u, fault
}

func (o *OP) getFault() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.fault
}

// rotate signs with a new key from now on and publishes only it.
func (o *OP) Rotate() {
	k, err := generateRSAKey()
	if err != nil {
		panic(err)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.signing, o.published = k, []rsaKey{k}
}

func (o *OP) LastAuthorize() url.Values {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.authorize) == 0 {
		return nil
	}
	return o.authorize[len(o.authorize)-1]
}

// login is the OP's login page: the current user is signed in at once,
// or, with FaultDeny, the request is denied. With Options.Users it is a
// picker: one link per user, and ?user=<name> signs that user in.
func (o *OP) login(prov op.OpenIDProvider) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.URL.Query().Get("id")
		if len(o.users) > 0 && r.URL.Query().Get("user") == "" {
			o.picker(w, id)
			return
		}
		o.mu.Lock()
		ar, ok := o.requests[id]
		user := o.user
		if len(o.users) > 0 {
			var found bool
			user, found = o.userNamed(r.URL.Query().Get("user"))
			ok = ok && found
		}
		if ok {
			ar.done, ar.subject, ar.authTime = true, user.Sub, time.Now()
		}
		fault := o.fault
		o.mu.Unlock()
		if !ok {
			http.Error(w, "unknown request or user", http.StatusBadRequest)
			return
		}
		if fault == FaultDeny {
			q := url.Values{"error": {"access_denied"}, "error_description": {"the user said no"}, "state": {ar.req.State}}
			http.Redirect(w, r, ar.req.RedirectURI+"?"+q.Encode(), http.StatusFound)
			return
		}
		http.Redirect(w, r, op.AuthCallbackURL(prov)(r.Context(), id), http.StatusFound)
	}
}

// picker is the login page of an OP with several users: no passwords,
// a link per user.
func (o *OP) picker(w http.ResponseWriter, id string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	fmt.Fprint(w, "<!doctype html><title>Demo IdP: sign in</title><h1>Demo IdP</h1><p>Sign in as:</p><ul>\n")
	for _, u := range o.users {
		link := "/login?" + url.Values{"id": {id}, "user": {PickerName(u)}}.Encode()
		fmt.Fprintf(w, "<li><a href=\"%s\">%s</a> &lt;%s&gt;, groups: %s</li>\n",
			html.EscapeString(link), html.EscapeString(u.Name), html.EscapeString(u.Email), html.EscapeString(strings.Join(u.Groups, ", ")))
	}
	fmt.Fprint(w, "</ul>\n")
}

// PickerName is how the picker's ?user= names u: its name in lower case.
func PickerName(u User) string { return strings.ToLower(u.Name) }

// userNamed finds a picker user; o.mu is held.
func (o *OP) userNamed(name string) (User, bool) {
	for _, u := range o.users {
		if PickerName(u) == name {
			return u, true
		}
	}
	return User{}, false
}

// userBySub is who the OP answers for sub: the user Set names, else one
// of the picker's; o.mu is held.
func (o *OP) userBySub(sub string) (User, bool) {
	if o.user.Sub == sub {
		return o.user, true
	}
	for _, u := range o.users {
		if u.Sub == sub {
			return u, true
		}
	}
	return User{}, false
}

// IDJAGType is the JWT typ of an Identity Assertion JWT Authorization
// Grant (draft-ietf-oauth-identity-assertion-authz-grant §3).
const IDJAGType = "oauth-id-jag+jwt"

// IDJAG is what MintIDJAG puts in an assertion.
type IDJAG struct {
	Subject, Audience, ClientID, Resource, Scope string
	// TTL is the lifetime from now. Default: 5 minutes.
	TTL time.Duration
}

// MintIDJAG signs an ID-JAG as this OP (iss = o.Issuer) with the key its
// JWKS publishes, as an IdP does for a client it lets act for a user.
func (o *OP) MintIDJAG(a IDJAG) (string, error) {
	o.mu.Lock()
	k := o.signing
	o.mu.Unlock()
	if a.TTL == 0 {
		a.TTL = 5 * time.Minute
	}
	now := time.Now()
	claims := map[string]any{
		"iss": o.Issuer, "sub": a.Subject, "aud": a.Audience, "client_id": a.ClientID, "jti": opRandom(),
		"iat": now.Unix(), "exp": now.Add(a.TTL).Unix(),
	}
	if a.Resource != "" {
		claims["resource"] = a.Resource
	}
	if a.Scope != "" {
		claims["scope"] = a.Scope
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: k.priv},
		(&jose.SignerOptions{}).WithType(IDJAGType).WithHeader("kid", k.kid))
	if err != nil {
		return "", err
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

// opAuthRequest implements op.AuthRequest.
type opAuthRequest struct {
	id       string
	req      oidc.AuthRequest
	done     bool
	subject  string
	authTime time.Time
	nonce    string
	audience []string
}

func (a *opAuthRequest) GetID() string          { return a.id }
func (a *opAuthRequest) GetACR() string         { return "" }
func (a *opAuthRequest) GetAMR() []string       { return []string{"pwd"} }
func (a *opAuthRequest) GetAudience() []string  { return a.audience }
func (a *opAuthRequest) GetAuthTime() time.Time { return a.authTime }
func (a *opAuthRequest) GetClientID() string    { return a.req.ClientID }
func (a *opAuthRequest) GetCodeChallenge() *oidc.CodeChallenge {
	if a.req.CodeChallenge == "" {
		return nil
	}
	return &oidc.CodeChallenge{Challenge: a.req.CodeChallenge, Method: a.req.CodeChallengeMethod}
}
func (a *opAuthRequest) GetNonce() string                   { return a.nonce }
func (a *opAuthRequest) GetRedirectURI() string             { return a.req.RedirectURI }
func (a *opAuthRequest) GetResponseType() oidc.ResponseType { return a.req.ResponseType }
func (a *opAuthRequest) GetResponseMode() oidc.ResponseMode { return a.req.ResponseMode }
func (a *opAuthRequest) GetScopes() []string                { return a.req.Scopes }
func (a *opAuthRequest) GetState() string                   { return a.req.State }
func (a *opAuthRequest) GetSubject() string                 { return a.subject }
func (a *opAuthRequest) Done() bool                         { return a.done }

// opClient implements op.Client: one confidential web client.
type opClient struct {
	o  *OP
	id string
}

func (c opClient) GetID() string                       { return c.id }
func (c opClient) RedirectURIs() []string              { return []string{c.o.redirect} }
func (c opClient) PostLogoutRedirectURIs() []string    { return nil }
func (c opClient) ApplicationType() op.ApplicationType { return op.ApplicationTypeWeb }
func (c opClient) AuthMethod() oidc.AuthMethod         { return oidc.AuthMethodBasic }
func (c opClient) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (c opClient) GrantTypes() []oidc.GrantType        { return []oidc.GrantType{oidc.GrantTypeCode} }
func (c opClient) LoginURL(id string) string           { return c.o.Issuer + "/login?id=" + url.QueryEscape(id) }
func (c opClient) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeBearer }
func (c opClient) IDTokenLifetime() time.Duration {
	if c.o.getFault() == FaultExpired {
		return -10 * time.Minute
	}
	return 5 * time.Minute
}
func (c opClient) DevMode() bool { return true }
func (c opClient) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c opClient) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c opClient) IsScopeAllowed(scope string) bool     { return scope == "groups" }
func (c opClient) IDTokenUserinfoClaimsAssertion() bool { return true }
func (c opClient) ClockSkew() time.Duration             { return 0 }

type opSigningKey struct {
	k    rsaKey
	priv *rsa.PrivateKey
}

func (s opSigningKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (s opSigningKey) Key() any                                    { return s.priv }
func (s opSigningKey) ID() string                                  { return s.k.kid }

type opPublicKey struct{ k rsaKey }

func (p opPublicKey) ID() string                         { return p.k.kid }
func (p opPublicKey) Algorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (p opPublicKey) Use() string                        { return "sig" }
func (p opPublicKey) Key() any                           { return &p.k.priv.PublicKey }

var errOPNotFound = errors.New("not found")

func opRandom() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// op.Storage

func (o *OP) CreateAuthRequest(_ context.Context, req *oidc.AuthRequest, _ string) (op.AuthRequest, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	ar := &opAuthRequest{id: opRandom(), req: *req, nonce: req.Nonce, audience: []string{req.ClientID}}
	switch o.fault {
	case FaultNonce:
		ar.nonce = "not-" + req.Nonce
	}
	o.requests[ar.id] = ar
	return ar, nil
}

func (o *OP) AuthRequestByID(_ context.Context, id string) (op.AuthRequest, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if ar, ok := o.requests[id]; ok {
		return ar, nil
	}
	return nil, errOPNotFound
}

func (o *OP) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	o.mu.Lock()
	id, ok := o.codes[code]
	o.mu.Unlock()
	if !ok {
		return nil, errOPNotFound
	}
	return o.AuthRequestByID(ctx, id)
}

func (o *OP) SaveAuthCode(_ context.Context, id, code string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.codes[code] = id
	return nil
}

func (o *OP) DeleteAuthRequest(_ context.Context, id string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.requests, id)
	for code, rid := range o.codes {
		if rid == id {
			delete(o.codes, code)
		}
	}
	return nil
}

func (o *OP) CreateAccessToken(_ context.Context, req op.TokenRequest) (string, time.Time, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	id := opRandom()
	o.tokens[id] = req.GetSubject()
	return id, time.Now().Add(5 * time.Minute), nil
}

func (o *OP) CreateAccessAndRefreshTokens(context.Context, op.TokenRequest, string) (string, string, time.Time, error) {
	return "", "", time.Time{}, errors.New("no refresh tokens")
}

func (o *OP) TokenRequestByRefreshToken(context.Context, string) (op.RefreshTokenRequest, error) {
	return nil, errors.New("no refresh tokens")
}

func (o *OP) TerminateSession(context.Context, string, string) error { return nil }

func (o *OP) RevokeToken(context.Context, string, string, string) *oidc.Error { return nil }

func (o *OP) GetRefreshTokenInfo(context.Context, string, string) (string, string, error) {
	return "", "", op.ErrInvalidRefreshToken
}

func (o *OP) SigningKey(context.Context) (op.SigningKey, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.fault == FaultSignature {
		return opSigningKey{o.signing, o.other}, nil
	}
	return opSigningKey{o.signing, o.signing.priv}, nil
}

func (o *OP) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}

func (o *OP) KeySet(context.Context) ([]op.Key, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	keys := make([]op.Key, 0, len(o.published))
	for _, k := range o.published {
		keys = append(keys, opPublicKey{k})
	}
	return keys, nil
}

func (o *OP) GetClientByClientID(_ context.Context, id string) (op.Client, error) {
	if id != o.clientID && id != OtherClientID {
		return nil, errOPNotFound
	}
	return opClient{o, id}, nil
}

func (o *OP) AuthorizeClientIDSecret(_ context.Context, id, secret string) error {
	if (id != o.clientID && id != OtherClientID) || secret != o.secret {
		return errors.New("bad client credentials")
	}
	return nil
}

// SetUserinfoFromScopes fills the ID token's claims.
func (o *OP) SetUserinfoFromScopes(_ context.Context, ui *oidc.UserInfo, userID, _ string, scopes []string) error {
	return o.fillUserinfo(ui, userID, scopes, o.getFault() != FaultUserinfo)
}

// SetUserinfoFromToken answers the userinfo endpoint.
func (o *OP) SetUserinfoFromToken(_ context.Context, ui *oidc.UserInfo, tokenID, _, _ string) error {
	o.mu.Lock()
	sub, ok := o.tokens[tokenID]
	o.mu.Unlock()
	if !ok {
		return errOPNotFound
	}
	return o.fillUserinfo(ui, sub, []string{"openid", "email", "profile", "groups"}, true)
}

func (o *OP) fillUserinfo(ui *oidc.UserInfo, sub string, scopes []string, groups bool) error {
	o.mu.Lock()
	u, ok := o.userBySub(sub)
	o.mu.Unlock()
	if !ok {
		return errOPNotFound
	}
	ui.Subject = sub
	for _, s := range scopes {
		switch s {
		case "email":
			ui.Email, ui.EmailVerified = u.Email, true
		case "profile":
			ui.Name = u.Name
		case "groups":
			if groups {
				ui.AppendClaims("groups", u.Groups)
			}
		}
	}
	return nil
}

func (o *OP) SetIntrospectionFromToken(context.Context, *oidc.IntrospectionResponse, string, string, string) error {
	return errors.New("no introspection")
}

func (o *OP) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil
}

func (o *OP) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, errOPNotFound
}

func (o *OP) ValidateJWTProfileScopes(_ context.Context, _ string, scopes []string) ([]string, error) {
	return scopes, nil
}

func (o *OP) Health(context.Context) error { return nil }

var _ op.Storage = (*OP)(nil)

// SignIn runs the browser's part of a sign-in against the OP: it follows
// the redirects from the authorization URL through the OP's login until
// the OP sends the browser to opRedirect, and returns that callback's
// query.
func SignIn(t testing.TB, authURL, opRedirect string) url.Values {
	t.Helper()
	client := &http.Client{
		Timeout: 10 * time.Second,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if strings.HasPrefix(req.URL.String(), opRedirect) || len(via) > 10 {
				return http.ErrUseLastResponse
			}
			return nil
		},
	}
	resp, err := client.Get(authURL)
	if err != nil {
		t.Fatalf("sign-in at the OP: %v", err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, opRedirect) {
		t.Fatalf("the OP did not send the browser back: HTTP %d, Location %q", resp.StatusCode, loc)
	}
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}

// SigningKeyID is the kid of the key the OP signs with now.
func (o *OP) SigningKeyID() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.signing.kid
}

// Close stops the OP at once (an IdP that goes down).
func (o *OP) Close() {
	o.srv.CloseClientConnections()
	o.srv.Close()
}
