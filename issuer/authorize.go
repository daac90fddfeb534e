package issuer

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kavachgate/kavach/issuer/store"
	"github.com/kavachgate/kavach/policy"
	"github.com/kavachgate/kavach/token"
)

// clientError is a client_id that cannot be used; its text is shown to
// the user (never in a redirect: the client is not trusted).
type clientError string

func (e clientError) Error() string { return string(e) }

// resolveClient finds the client an authorization request names: a
// registered public or confidential client (cli_…), or a client ID
// metadata document URL. Resource servers cannot use the code flow.
func (s *Server) resolveClient(ctx context.Context, id string) (*store.Client, error) {
	if strings.HasPrefix(id, "https://") || strings.HasPrefix(id, "http://") {
		c, err := s.metadataClient(ctx, id)
		if err != nil {
			var ce cimdError
			switch {
			case errors.Is(err, errClientRevoked):
				return nil, clientError("This application has been revoked by the operator of this server.")
			case errors.As(err, &ce):
				return nil, clientError("The application's client metadata document was refused: " + ce.Error() + ".")
			}
			return nil, err
		}
		return c, nil
	}
	unknown := clientError("The application (client_id) is not registered with this server.")
	if !strings.HasPrefix(id, token.PrefixClient) || !validIDChars(id) {
		return nil, unknown
	}
	c, err := s.store.GetClient(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, unknown
	}
	if err != nil {
		return nil, err
	}
	if (c.Kind != store.ClientPublic && c.Kind != store.ClientConfidential) || !c.RevokedAt.IsZero() {
		return nil, unknown
	}
	return c, nil
}

// registeredRedirect reports whether requested is one of the client's
// redirect URIs: exactly, or a loopback one on another port (RFC 8252
// §7.3, redirectMatches).
func registeredRedirect(c *store.Client, requested string) bool {
	if len(requested) > maxRedirectURILen || checkRedirectURI(requested) != nil {
		return false
	}
	for _, reg := range c.RedirectURIs {
		if redirectMatches(reg, requested) {
			return true
		}
	}
	return false
}

// maxMaxAge bounds max_age (a year; larger is no bound at all).
const maxMaxAge = 365 * 24 * 3600

// serveAuthorize is the authorization endpoint (RFC 6749 §4.1.1, OAuth
// 2.1 §4.1.1), GET or POST. Checks run in this order:
//
//  1. client_id names a usable client, and redirect_uri is one of its
//     registered ones. A failure is shown to the user and never
//     redirected (RFC 6749 §4.1.2.1): the redirect target is not trusted.
//  2. Everything else fails with a redirect to the client carrying error,
//     state and iss (RFC 9207 §2) when its redirect URI is trusted
//     (redirectTrusted), else on the issuer's own page (RFC 9700
//     §4.11.2): no repeated parameter (RFC 6749 §3.1); response_type
//     code; no request objects; PKCE with S256 only (OAuth 2.1 §4.1.1,
//     RFC 7636 §4.3); exactly one resource (RFC 8707 §2); a well-formed
//     scope.
//
// The request is then stored server-side and the browser goes to the
// login page, or to the consent page when it has a session, carrying only
// the request id.
func (s *Server) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	var params url.Values
	switch r.Method {
	case http.MethodGet:
		params = r.URL.Query()
	case http.MethodPost:
		var ok bool
		if params, ok = s.pageForm(w, r); !ok {
			return
		}
	default:
		w.Header().Set("Allow", "GET, POST")
		s.errorPage(w, http.StatusMethodNotAllowed, "Method not allowed", "Use GET or POST.")
		return
	}
	ctx := r.Context()

	// 1. The client and its redirect URI: errors go to the user.
	if len(params["client_id"]) != 1 || params.Get("client_id") == "" {
		s.errorPage(w, http.StatusBadRequest, "Invalid request", "The request names no application (client_id is missing or repeated).")
		return
	}
	client, err := s.resolveClient(ctx, params.Get("client_id"))
	if err != nil {
		var ce clientError
		if errors.As(err, &ce) {
			s.errorPage(w, http.StatusBadRequest, "Unknown application", ce.Error())
		} else {
			s.pageServerError(w, err)
		}
		return
	}
	// redirect_uri is required even when the client registered only one
	// (OAuth 2.1 would allow it then), so the token request's exact
	// comparison (RFC 6749 §4.1.3) always has something to compare.
	if len(params["redirect_uri"]) != 1 || params.Get("redirect_uri") == "" {
		s.errorPage(w, http.StatusBadRequest, "Invalid request", "The request has no redirect_uri, or more than one.")
		return
	}
	redirectURI := params.Get("redirect_uri")
	if !registeredRedirect(client, redirectURI) {
		s.errorPage(w, http.StatusBadRequest, "Invalid redirect", "The redirect_uri is not registered for this application.")
		return
	}

	// 2. Everything else goes back to the client, if it can be trusted.
	sess, u, err := s.currentSession(ctx, r)
	if err != nil {
		s.pageServerError(w, err)
		return
	}
	trusted, err := s.redirectTrusted(ctx, client, u)
	if err != nil {
		s.pageServerError(w, err)
		return
	}
	state := params.Get("state")
	fail := func(code, desc string) {
		if !trusted {
			s.unapprovedClientError(w, client, sess != nil, redirectURI, state, code, desc)
			return
		}
		pageRedirect(w, r, s.errorRedirectURL(redirectURI, state, code, desc), "")
	}
	if len(params["state"]) > 1 || len(state) > maxStateLen {
		// Not echoed: it is not the client's single, bounded state.
		state = ""
		fail("invalid_request", "state is repeated or too long")
		return
	}
	for k, v := range params {
		if len(v) > 1 && k != "resource" {
			fail("invalid_request", "a parameter is repeated")
			return
		}
	}
	switch rt := params.Get("response_type"); rt {
	case "code":
	case "":
		fail("invalid_request", "response_type is required")
		return
	default:
		fail("unsupported_response_type", "only response_type code is supported")
		return
	}
	// RFC 9101 §5 / OpenID Connect Core §6.1: request objects are not
	// supported; ignoring them could ignore what the client meant.
	if params.Has("request") {
		fail("request_not_supported", "request objects are not supported")
		return
	}
	if params.Has("request_uri") {
		fail("request_uri_not_supported", "request_uri is not supported")
		return
	}
	switch params.Get("code_challenge_method") {
	case "S256":
	case "":
		fail("invalid_request", "PKCE is required: code_challenge_method S256 and code_challenge")
		return
	default:
		fail("invalid_request", "only code_challenge_method S256 is supported")
		return
	}
	challenge := params.Get("code_challenge")
	if !validChallenge(challenge) {
		fail("invalid_request", "code_challenge must be the 43-character base64url SHA-256 of the code_verifier")
		return
	}
	resources := params["resource"]
	switch {
	case len(resources) == 0:
		fail("invalid_target", "resource is required")
		return
	case len(resources) > 1:
		fail("invalid_target", "one resource per authorization request")
		return
	case !validResource(resources[0]):
		fail("invalid_target", "resource must be an absolute http or https URL without query or fragment")
		return
	}
	scopes, err := policy.ParseScopes(params.Get("scope"))
	if err != nil {
		fail("invalid_scope", "scope is malformed")
		return
	}

	at := now()
	ar := &store.AuthRequest{
		ID: newSecret(), ClientID: client.ID, RedirectURI: redirectURI, State: state,
		Challenge: challenge, Resource: resources[0], Scopes: scopes, ExpiresAt: at.Add(DefaultAuthTTL),
	}
	// OpenID Connect Core §3.1.2.1: prompt=login and max_age ask for a
	// sign-in at least that recent; both are passed on to an IdP. Other
	// prompt values are ignored, as before.
	if slices.Contains(strings.Fields(params.Get("prompt")), "login") {
		ar.Prompt, ar.AuthAfter = "login", at
	}
	if params.Has("max_age") {
		n, err := strconv.ParseInt(params.Get("max_age"), 10, 64)
		if err != nil || n < 0 || n > maxMaxAge {
			fail("invalid_request", "max_age must be a number of seconds")
			return
		}
		if n == 0 {
			ar.Prompt, ar.AuthAfter = "login", at
		} else {
			ar.MaxAge = n
			if after := at.Add(-time.Duration(n) * time.Second); after.After(ar.AuthAfter) {
				ar.AuthAfter = after
			}
		}
	}
	if err := s.store.PutAuthRequest(ctx, ar); err != nil {
		s.pageServerError(w, err)
		return
	}
	next := pathLogin
	if sessionSatisfies(sess, ar) {
		next = pathConsent
	}
	pageRedirect(w, r, s.pageURL(next, ar.ID), "")
}

// redirectTrusted reports whether an authorization error may be sent to
// the client's redirect URI without the user deciding (RFC 9700 §4.11.2):
// the operator registered the client (the admin API; only it creates
// confidential clients), or the signed-in user u has approved it before
// (a consent grant to it that still holds). Anyone can register a client
// (RFC 7591) or publish a metadata document with a phishing page as its
// redirect URI; until the user approved such a client, its errors are
// shown on the issuer's page (unapprovedClientError).
func (s *Server) redirectTrusted(ctx context.Context, c *store.Client, u *store.User) (bool, error) {
	if c.Kind == store.ClientConfidential && strings.HasPrefix(c.ID, token.PrefixClient) {
		return true, nil
	}
	if u == nil {
		return false, nil
	}
	return s.store.HasConsent(ctx, u.ID, c.ID, now())
}

// unapprovedClientError shows an authorization error on the issuer's page
// instead of redirecting to a client whose redirect URI is not trusted
// (redirectTrusted). Once the user is signed in (RFC 9700 §4.11.2: the
// user is authenticated before any redirect), the page offers the error
// response the client would have received as a link, leaving the decision
// to follow it to the user; before, it offers nothing.
func (s *Server) unapprovedClientError(w http.ResponseWriter, c *store.Client, signedIn bool, redirectURI, state, code, desc string) {
	d := &pageData{Title: "Request refused", Error: "The application's request was refused: " + desc + " (" + code + ")."}
	if code == "access_denied" {
		d.Title, d.Error = "Access denied", "You denied access. The application has not been told."
	}
	if signedIn {
		d.Client = viewClient(c)
		d.ReturnTo = s.errorRedirectURL(redirectURI, state, code, desc)
		d.RedirectTo = redirectDisplay(redirectURI)
	}
	s.render(w, http.StatusBadRequest, "error.html", d, "")
}

// validResource checks a resource indicator (RFC 8707 §2: an absolute URI
// without fragment) the way entitlement keys are checked (http or https,
// no query, no userinfo), and that it fits the aud claim.
func validResource(raw string) bool {
	if len(raw) > token.MaxIDLen {
		return false
	}
	for i := 0; i < len(raw); i++ {
		if b := raw[i]; b <= ' ' || b >= 0x7f || b == '"' || b == '\\' {
			return false
		}
	}
	u, err := url.Parse(raw)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" &&
		u.RawQuery == "" && !u.ForceQuery && u.Fragment == "" && !strings.Contains(raw, "#") && u.User == nil
}
