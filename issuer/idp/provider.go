package idp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// ProviderConfig is one upstream OpenID provider (the Caddyfile's
// `login oidc <name> { … }` block).
type ProviderConfig struct {
	// Name identifies the provider in config, URLs and the store: lower
	// case letters, digits, '-' and '_', at most 32.
	Name string `json:"name"`
	// DisplayName is the login button's label. Default: Name.
	DisplayName string `json:"display_name,omitempty"`
	// Issuer is the provider's issuer identifier; discovery reads
	// Issuer + "/.well-known/openid-configuration" and must find the same
	// issuer there (OIDC Discovery §4.3).
	Issuer string `json:"issuer"`
	// ClientID is Kavach's client id at the provider.
	ClientID string `json:"client_id"`
	// ClientSecret is Kavach's client secret at the provider (from a
	// placeholder such as {env.KAVACH_IDP_SECRET}); empty for a public
	// client, which then relies on PKCE alone.
	ClientSecret string `json:"client_secret,omitempty"`
	// Scopes are requested from the provider; "openid" is added when
	// missing. Default: openid email profile.
	Scopes []string `json:"scopes,omitempty"`
	// GroupsClaim names the claim that lists the user's groups: a plain
	// name, or a dotted path into nested objects when no claim has the
	// whole name. Default: groups.
	GroupsClaim string `json:"groups_claim,omitempty"`
	// RolesClaim names the claim that lists the user's roles (Entra ID
	// "roles", Keycloak "realm_access.roles"). Default: roles.
	RolesClaim string `json:"roles_claim,omitempty"`
}

var providerName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)

// Validate reports the first problem of the config, naming the field. It
// reads nothing from the network.
func (c *ProviderConfig) Validate() error {
	if !providerName.MatchString(c.Name) {
		return fmt.Errorf("idp: provider name %q: use 1 to 32 of a-z 0-9 - _, starting with a letter or digit", c.Name)
	}
	u, err := url.Parse(c.Issuer)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("idp: provider %s: issuer must be an http(s) URL without query or fragment", c.Name)
	}
	if c.ClientID == "" {
		return fmt.Errorf("idp: provider %s: client_id is required", c.Name)
	}
	for _, s := range c.Scopes {
		if s == "" || strings.ContainsAny(s, " \t\r\n\"\\") {
			return fmt.Errorf("idp: provider %s: bad scope %q", c.Name, s)
		}
	}
	return nil
}

// Identity is a person as the IdP vouched for them in a verified ID token
// (with userinfo filling in claims the ID token lacked). A Kavach user is
// linked to (Issuer, Subject), never to Email.
type Identity struct {
	Provider      string    // config name of the IdP
	Issuer        string    // iss
	Subject       string    // sub
	Email         string    // email, as the IdP asserts it
	EmailVerified bool      // email_verified
	Name          string    // name
	Groups        []string  // from GroupsClaim, sorted, no duplicates
	Roles         []string  // from RolesClaim, sorted, no duplicates
	AuthTime      time.Time // auth_time, zero when absent
	Expiry        time.Time // the ID token's exp: bounds the issuer's session
	// Claims are all claims, for `entitle claim` rules.
	Claims map[string]any
}

// AuthOptions are optional parameters of the authorization request.
type AuthOptions struct {
	// Prompt is sent as prompt ("login" to force re-authentication,
	// OIDC Core §3.1.2.1).
	Prompt string
	// MaxAge, when positive, is sent as max_age (whole seconds) and
	// auth_time is then checked. To force a fresh login use Prompt
	// "login" (max_age=0 means the same).
	MaxAge time.Duration
}

// Provider is a configured upstream OpenID provider. Discovery happens at
// first use, not at construction: an IdP that is down when the issuer
// starts only makes its button answer ErrIdPUnavailable until it is up.
type Provider struct {
	cfg         ProviderConfig
	redirectURL string
	client      *http.Client

	mu       sync.Mutex
	disc     *discovered
	failedAt time.Time // last failed discovery
	failure  error
}

// discovered is one successful discovery.
type discovered struct {
	at       time.Time
	provider *oidc.Provider
	oauth    oauth2.Config
	strict   *oidc.IDTokenVerifier // every check of go-oidc on
	sigOnly  *oidc.IDTokenVerifier // signature only: to name what failed
	userinfo bool
	issParam bool // RFC 9207: the IdP puts iss in every authorization response
}

// NewProvider checks cfg and returns a Provider whose callback is
// redirectURL (the issuer's callback endpoint, registered at the IdP).
// client makes every request to the IdP; nil is a client with
// HTTPTimeout.
func NewProvider(cfg ProviderConfig, redirectURL string, client *http.Client) (*Provider, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if u, err := url.Parse(redirectURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("idp: provider %s: redirect URL must be an absolute http(s) URL", cfg.Name)
	}
	if cfg.DisplayName == "" {
		cfg.DisplayName = cfg.Name
	}
	if len(cfg.Scopes) == 0 {
		cfg.Scopes = DefaultScopes
	}
	if !slices.Contains(cfg.Scopes, oidc.ScopeOpenID) {
		cfg.Scopes = append([]string{oidc.ScopeOpenID}, cfg.Scopes...)
	}
	cfg.Scopes = slices.Clone(cfg.Scopes)
	if cfg.GroupsClaim == "" {
		cfg.GroupsClaim = "groups"
	}
	if cfg.RolesClaim == "" {
		cfg.RolesClaim = "roles"
	}
	if client == nil {
		client = &http.Client{Timeout: HTTPTimeout}
	}
	return &Provider{cfg: cfg, redirectURL: redirectURL, client: client}, nil
}

// Config returns the provider's config with defaults filled in.
func (p *Provider) Config() ProviderConfig { return p.cfg }

// Ready discovers the provider if needed and reports ErrIdPUnavailable
// when it cannot: the login page calls it to mark a button "down".
func (p *Provider) Ready(ctx context.Context) error {
	_, err := p.discover(ctx)
	return err
}

// AuthEndpoint is the IdP's authorization endpoint, from its discovery
// document (read as Ready reads it). The login page's CSP form-action
// must name its origin: browsers apply form-action to the redirect that
// follows a login button's POST.
func (p *Provider) AuthEndpoint(ctx context.Context) (string, error) {
	d, err := p.discover(ctx)
	if err != nil {
		return "", err
	}
	return d.oauth.Endpoint.AuthURL, nil
}

// discover returns the discovery result, reading the document at first
// use, after DiscoveryMaxAge (a failed re-read keeps the old one), and
// after a failure at most every DiscoveryRetry.
func (p *Provider) discover(ctx context.Context) (*discovered, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	at := now()
	if p.disc != nil && at.Sub(p.disc.at) < DiscoveryMaxAge {
		return p.disc, nil
	}
	if p.disc == nil && p.failure != nil && at.Sub(p.failedAt) < DiscoveryRetry {
		return nil, p.failure
	}
	// go-oidc keeps only the HTTP client of this context (for the key set
	// it fetches later), not its deadline.
	reqCtx, cancel := context.WithTimeout(oidc.ClientContext(ctx, p.client), HTTPTimeout)
	defer cancel()
	prov, err := oidc.NewProvider(reqCtx, p.cfg.Issuer)
	if err != nil {
		if p.disc != nil {
			// Keep the old document; read it again after DiscoveryRetry,
			// not on every request while the IdP is down.
			p.disc.at = at.Add(DiscoveryRetry - DiscoveryMaxAge)
			return p.disc, nil
		}
		p.failedAt, p.failure = at, signInError(ErrIdPUnavailable, "the identity provider cannot be reached; try again later", "discovery of "+p.cfg.Issuer, err)
		return nil, p.failure
	}
	var meta struct {
		UserInfo     string `json:"userinfo_endpoint"`
		ISSParameter bool   `json:"authorization_response_iss_parameter_supported"`
	}
	_ = prov.Claims(&meta)
	d := &discovered{
		at:       at,
		provider: prov,
		oauth: oauth2.Config{
			ClientID:     p.cfg.ClientID,
			ClientSecret: p.cfg.ClientSecret,
			Endpoint:     prov.Endpoint(),
			RedirectURL:  p.redirectURL,
			Scopes:       p.cfg.Scopes,
		},
		strict:   prov.Verifier(&oidc.Config{ClientID: p.cfg.ClientID, Now: func() time.Time { return now() }}),
		sigOnly:  prov.Verifier(&oidc.Config{SkipClientIDCheck: true, SkipExpiryCheck: true, SkipIssuerCheck: true}),
		userinfo: meta.UserInfo != "",
		issParam: meta.ISSParameter,
	}
	p.disc, p.failure = d, nil
	return d, nil
}

// AuthURL returns the IdP authorization request for p (OIDC Core §3.1.2.1):
// response_type=code, the configured scopes, state, nonce, and the PKCE
// S256 challenge of p.Verifier (RFC 7636 §4.2), with p's prompt and
// max_age. It records opts in p, so set them before sealing p.
func (p *Provider) AuthURL(ctx context.Context, pend *Pending, opts AuthOptions) (string, error) {
	if pend.Provider != p.cfg.Name {
		return "", fmt.Errorf("idp: pending record is for provider %q, not %q", pend.Provider, p.cfg.Name)
	}
	d, err := p.discover(ctx)
	if err != nil {
		return "", err
	}
	params := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(pend.Verifier), oidc.Nonce(pend.Nonce)}
	pend.Prompt, pend.MaxAge = opts.Prompt, 0
	if opts.Prompt != "" {
		params = append(params, oauth2.SetAuthURLParam("prompt", opts.Prompt))
	}
	if opts.MaxAge > 0 {
		pend.MaxAge = int64(opts.MaxAge / time.Second)
		params = append(params, oauth2.SetAuthURLParam("max_age", strconv.FormatInt(pend.MaxAge, 10)))
	}
	return d.oauth.AuthCodeURL(pend.State, params...), nil
}

// Callback handles the IdP's redirect back (the query of the callback
// request) for a pending record the Sealer opened: an error response
// (RFC 6749 §4.1.2.1) is ErrIdPRefused; an iss parameter (RFC 9207 §2.4)
// must be this IdP's, and present when its metadata promises it
// (ErrWrongIssuer: a mix-up); then the code is
// exchanged (Exchange), and with max_age the auth_time checked.
func (p *Provider) Callback(ctx context.Context, query url.Values, pend *Pending) (*Identity, error) {
	if pend.Provider != p.cfg.Name {
		return nil, signInError(ErrStateMismatch, "the sign-in response does not match this browser's request", "pending record for provider "+pend.Provider, nil)
	}
	if code := query.Get("error"); code != "" {
		e := signInError(ErrIdPRefused, "the identity provider refused the sign-in", "", nil)
		e.IdPCode = oauthCode(code)
		e.Detail = "error=" + strconv.Quote(code) + " error_description=" + strconv.Quote(query.Get("error_description"))
		return nil, e
	}
	iss, hasISS := query["iss"]
	if hasISS && (len(iss) != 1 || iss[0] != p.cfg.Issuer) {
		return nil, signInError(ErrWrongIssuer, "the sign-in response came from another identity provider", "iss parameter "+strconv.Quote(strings.Join(iss, ",")), nil)
	}
	if !hasISS {
		// RFC 9207 §2.4: an IdP that advertises the parameter always
		// sends it; a response without it may come from another.
		if d, err := p.discover(ctx); err == nil && d.issParam {
			return nil, signInError(ErrWrongIssuer, "the sign-in response came from another identity provider", "no iss parameter", nil)
		}
	}
	code := query.Get("code")
	if code == "" {
		return nil, signInError(ErrIdPRefused, "the identity provider refused the sign-in", "callback without code", nil)
	}
	id, err := p.Exchange(ctx, code, pend.Verifier, pend.Nonce)
	if err != nil {
		return nil, err
	}
	if pend.MaxAge > 0 {
		// OIDC Core §3.1.2.1: with max_age, auth_time is required, and an
		// older authentication must not be accepted.
		if id.AuthTime.IsZero() {
			return nil, signInError(ErrExpired, "the sign-in at the identity provider is too old; sign in again", "max_age sent, no auth_time", nil)
		}
		if now().After(id.AuthTime.Add(time.Duration(pend.MaxAge)*time.Second + Leeway)) {
			return nil, signInError(ErrExpired, "the sign-in at the identity provider is too old; sign in again", "auth_time older than max_age", nil)
		}
	}
	return id, nil
}

// oauthCode keeps an IdP's error code if it is a well-formed one
// (RFC 6749 §4.1.2.1: NQSCHAR without space), else "invalid_request".
func oauthCode(s string) string {
	if s == "" || len(s) > 64 {
		return "invalid_request"
	}
	for _, c := range []byte(s) {
		if !(c == '_' || c == '-' || c == '.' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
			return "invalid_request"
		}
	}
	return s
}

// Exchange redeems an authorization code at the IdP's token endpoint with
// the PKCE verifier (RFC 7636 §4.5) and verifies the ID token, in this
// order: go-oidc's checks (signature against the discovered JWK set with
// an algorithm the IdP advertises, iss, aud contains our client id, exp),
// then azp (OIDC Core §3.1.3.7 items 4–5: when present, or when there are
// several audiences, it must be our client id), iat not in the future,
// nonce equal to the one sent, sub present. When go-oidc refuses, the
// token is checked again signature-only to name the failure.
func (p *Provider) Exchange(ctx context.Context, code, verifier, nonce string) (*Identity, error) {
	d, err := p.discover(ctx)
	if err != nil {
		return nil, err
	}
	tok, raw, err := p.redeem(ctx, d, code, verifier)
	if err != nil {
		return nil, err
	}
	idt, err := p.verifyIDToken(ctx, d, raw, nonce)
	if err != nil {
		return nil, err
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return nil, signInError(ErrMalformed, "the identity provider's ID token is malformed", "claims", err)
	}
	hctx := oidc.ClientContext(ctx, p.client)
	if d.userinfo && (claimAt(claims, p.cfg.GroupsClaim) == nil || claims["email"] == nil) {
		p.mergeUserInfo(hctx, d, tok, idt.Subject, claims)
	}
	return p.identity(idt, claims), nil
}

// redeem exchanges the code at the token endpoint and returns the token
// response and its raw ID token.
func (p *Provider) redeem(ctx context.Context, d *discovered, code, verifier string) (*oauth2.Token, string, error) {
	tok, err := d.oauth.Exchange(oidc.ClientContext(ctx, p.client), code, oauth2.VerifierOption(verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.ErrorCode != "" {
			e := signInError(ErrIdPRefused, "the identity provider refused the sign-in", "token endpoint: "+re.ErrorCode, nil)
			e.IdPCode = oauthCode(re.ErrorCode)
			return nil, "", e
		}
		return nil, "", signInError(ErrIdPUnavailable, "the identity provider cannot be reached; try again later", "token endpoint", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return nil, "", signInError(ErrMalformed, "the identity provider sent no ID token", "token response without id_token", nil)
	}
	if len(raw) > MaxAssertionLen {
		return nil, "", signInError(ErrMalformed, "the identity provider's ID token is malformed", "id_token too large", nil)
	}
	return tok, raw, nil
}

// verifyIDToken runs the ID token checks in Exchange's order.
func (p *Provider) verifyIDToken(ctx context.Context, d *discovered, raw, nonce string) (*oidc.IDToken, error) {
	hctx := oidc.ClientContext(ctx, p.client)
	idt, err := d.strict.Verify(hctx, raw)
	if err != nil {
		return nil, p.classify(hctx, d, raw, err)
	}
	var c struct {
		AZP *string `json:"azp"`
	}
	if err := idt.Claims(&c); err != nil {
		return nil, signInError(ErrMalformed, "the identity provider's ID token is malformed", "claims", err)
	}
	if (c.AZP != nil || len(idt.Audience) > 1) && (c.AZP == nil || *c.AZP != p.cfg.ClientID) {
		return nil, signInError(ErrWrongAudience, "the ID token is not for Kavach", "azp is not our client id", nil)
	}
	if !idt.IssuedAt.IsZero() && idt.IssuedAt.After(now().Add(Leeway)) {
		return nil, signInError(ErrExpired, "the ID token is not valid yet; check the clocks", "iat in the future", nil)
	}
	if nonce == "" || !equal(idt.Nonce, nonce) {
		return nil, signInError(ErrBadNonce, "the ID token does not belong to this sign-in", "nonce mismatch", nil)
	}
	if idt.Subject == "" {
		return nil, signInError(ErrMalformed, "the identity provider's ID token is malformed", "no sub", nil)
	}
	return idt, nil
}

// classify names why go-oidc refused an ID token.
func (p *Provider) classify(ctx context.Context, d *discovered, raw string, strictErr error) error {
	var expired *oidc.TokenExpiredError
	if errors.As(strictErr, &expired) {
		return signInError(ErrExpired, "the ID token has expired; sign in again", "exp passed", strictErr)
	}
	idt, err := d.sigOnly.Verify(ctx, raw)
	if err != nil {
		// go-oidc flattens its causes into text (%v), so the text is all
		// there is to tell a key set that could not be fetched from a
		// signature that does not verify.
		switch msg := err.Error(); {
		case strings.Contains(msg, "malformed jwt"):
			return signInError(ErrMalformed, "the identity provider's ID token is malformed", "", err)
		case strings.Contains(msg, "fetching keys"):
			return signInError(ErrIdPUnavailable, "the identity provider cannot be reached; try again later", "JWKS", err)
		}
		return signInError(ErrBadSignature, "the ID token's signature is not the identity provider's", "", err)
	}
	switch {
	case idt.Issuer != p.cfg.Issuer:
		return signInError(ErrWrongIssuer, "the ID token was issued by another identity provider", "iss "+strconv.Quote(idt.Issuer), strictErr)
	case !slices.Contains(idt.Audience, p.cfg.ClientID):
		return signInError(ErrWrongAudience, "the ID token is not for Kavach", "aud does not contain our client id", strictErr)
	}
	return signInError(ErrMalformed, "the identity provider's ID token was refused", "", strictErr)
}

// mergeUserInfo adds claims the ID token lacks from the userinfo endpoint
// (OIDC Core §5.3); its sub must be the ID token's (§5.3.2). A failure
// leaves claims as they are: the ID token alone is authoritative.
func (p *Provider) mergeUserInfo(ctx context.Context, d *discovered, tok *oauth2.Token, sub string, claims map[string]any) {
	ui, err := d.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil || ui.Subject != sub {
		return
	}
	var extra map[string]any
	if ui.Claims(&extra) != nil {
		return
	}
	for k, v := range extra {
		if _, ok := claims[k]; !ok {
			claims[k] = v
		}
	}
}

func (p *Provider) identity(idt *oidc.IDToken, claims map[string]any) *Identity {
	id := &Identity{
		Provider: p.cfg.Name,
		Issuer:   idt.Issuer,
		Subject:  idt.Subject,
		Expiry:   idt.Expiry,
		Groups:   stringsClaim(claimAt(claims, p.cfg.GroupsClaim)),
		Roles:    stringsClaim(claimAt(claims, p.cfg.RolesClaim)),
		Claims:   claims,
	}
	id.Email, _ = claims["email"].(string)
	id.Name, _ = claims["name"].(string)
	id.EmailVerified, _ = claims["email_verified"].(bool)
	if f, ok := claims["auth_time"].(float64); ok && f > 0 {
		id.AuthTime = time.Unix(int64(f), 0)
	}
	return id
}

// claimAt returns the claim called name, or, when there is none and name
// has dots, the value at that path through nested objects
// ("realm_access.roles"). A claim whose own name has dots (Auth0's
// "https://corp.example/groups") is found by its whole name first.
func claimAt(claims map[string]any, name string) any {
	if v, ok := claims[name]; ok {
		return v
	}
	var cur any = claims
	for part := range strings.SplitSeq(name, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		if cur, ok = m[part]; !ok {
			return nil
		}
	}
	return cur
}

// stringsClaim reads a list of strings: a JSON array of strings (other
// members ignored) or one string. Sorted, without duplicates or empties.
func stringsClaim(v any) []string {
	var out []string
	switch t := v.(type) {
	case string:
		if t != "" {
			out = []string{t}
		}
	case []any:
		for _, e := range t {
			if s, ok := e.(string); ok && s != "" {
				out = append(out, s)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// claimValues reads a claim for `entitle claim` matching: a string, a
// boolean or a number as its JSON text, or an array of those.
func claimValues(v any) []string {
	one := func(e any) (string, bool) {
		switch t := e.(type) {
		case string:
			return t, true
		case bool:
			return strconv.FormatBool(t), true
		case float64:
			return strconv.FormatFloat(t, 'f', -1, 64), true
		case json.Number:
			return t.String(), true
		}
		return "", false
	}
	if list, ok := v.([]any); ok {
		var out []string
		for _, e := range list {
			if s, ok := one(e); ok {
				out = append(out, s)
			}
		}
		return out
	}
	if s, ok := one(v); ok {
		return []string{s}
	}
	return nil
}
