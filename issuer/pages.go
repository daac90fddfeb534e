package issuer

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"errors"
	"html/template"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kavachgate/kavach/issuer/store"
	"github.com/kavachgate/kavach/policy"
	"github.com/kavachgate/kavach/token"
)

//go:embed templates/*.html
var templateFS embed.FS

// pages are the login, consent and error pages. html/template escapes
// every value by its context, so client names, scopes and URLs render as
// text.
var pages = template.Must(template.New("pages").Funcs(consoleFuncs).ParseFS(templateFS, "templates/*.html"))

// Cookies. With an https issuer they carry the __Secure- prefix, which
// browsers accept only with the Secure attribute.
const (
	sessionCookie = "kavach_session"
	loginCookie   = "kavach_login"
)

// pageCSP is the Content-Security-Policy of every page: nothing loads,
// inline styles only, forms post to the issuer, never framed
// (clickjacking of the consent button).
const pageCSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"

// pageData is what the templates see.
type pageData struct {
	Title      string
	Error      string
	Action     string
	ReqID      string
	CSRF       string
	Username   string
	User       string
	Client     clientView
	Resource   string
	Scopes     []string
	Refused    []string
	RedirectTo string // where the browser goes next: the redirect URI's origin
	ReturnTo   string // on an error page: the error response to follow by hand
	// The login page's IdP buttons (each a form posting to IdPAction
	// with IdPCSRF) and whether it shows the password form.
	Providers []providerView
	IdPAction string
	IdPCSRF   string
	Local     bool
	// Retry, on an error page: the login page of the request, to try again.
	Retry string
	// Return, on the login page of the console: the console path the
	// sign-in returns to (instead of an authorization request).
	Return string
}

// Where a client's name comes from (clientView.Source).
const (
	sourceOperator = "operator" // registered through the admin API
	sourceSelf     = "self"     // dynamic registration: the client named itself
	sourceDocument = "document" // a client ID metadata document at Origin
)

// clientView is how a page names a client.
type clientView struct {
	Name   string
	ID     string
	Origin string // for a metadata-document client: the host vouching for it
	Source string
}

func viewClient(c *store.Client) clientView {
	v := clientView{Name: c.Name, ID: c.ID, Source: sourceSelf}
	if v.Name == "" {
		v.Name = "An unnamed application"
	}
	if strings.Contains(c.ID, "://") {
		v.Source = sourceDocument
		if u, err := url.Parse(c.ID); err == nil {
			v.Origin = u.Host
		}
	} else if c.Kind == store.ClientConfidential {
		v.Source = sourceOperator
	}
	return v
}

// setPageHeaders sets the headers every page and page redirect carries.
// formAction, when not empty, is one more origin the page's form may
// navigate to: the consent form's answer is a redirect to the client, and
// browsers apply form-action to the redirects that follow a submission.
func setPageHeaders(h http.Header, formAction string) {
	csp := pageCSP
	if formAction != "" {
		csp = strings.Replace(csp, "form-action 'self'", "form-action 'self' "+formAction, 1)
	}
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
}

// render writes a page. It renders into a buffer first so a template
// failure is a clean 500, not half a page.
func (s *Server) render(w http.ResponseWriter, status int, name string, d *pageData, formAction string) {
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, name, d); err != nil {
		s.log.Error("issuer: rendering page failed", "page", name, "error", err)
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString("internal error\n")
	}
	h := w.Header()
	setPageHeaders(h, formAction)
	h.Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// errorPage shows an error to the user instead of redirecting: for a
// request whose client or redirect URI cannot be trusted (RFC 6749
// §4.1.2.1) and for failures of the pages themselves.
func (s *Server) errorPage(w http.ResponseWriter, status int, title, msg string) {
	s.render(w, status, "error.html", &pageData{Title: title, Error: msg}, "")
}

// pageServerError logs err and shows a generic page.
func (s *Server) pageServerError(w http.ResponseWriter, err error) {
	s.log.Error("issuer: authorization page failed", "error", err)
	s.errorPage(w, http.StatusInternalServerError, "Something went wrong", "The server could not complete the request.")
}

// pageRedirect sends the browser to an issuer page or back to the client:
// 302 after a GET (RFC 6749 §4.1.2), 303 after a POST so the browser does
// not re-post.
func pageRedirect(w http.ResponseWriter, r *http.Request, location, formAction string) {
	setPageHeaders(w.Header(), formAction)
	w.Header().Set("Location", location)
	status := http.StatusFound
	if r.Method == http.MethodPost {
		status = http.StatusSeeOther
	}
	w.WriteHeader(status)
}

// basePath is the issuer URL's path, without a trailing slash.
func (s *Server) basePath() string { return strings.TrimSuffix(s.iss.EscapedPath(), "/") }

// pageURL is the path of an issuer page for an authorization request.
func (s *Server) pageURL(path, reqID string) string {
	return s.basePath() + path + "?req=" + url.QueryEscape(reqID)
}

func (s *Server) cookieName(base string) string {
	if s.iss.Scheme == "https" {
		return "__Secure-" + base
	}
	return base
}

// setCookie sets one of the issuer's cookies: HttpOnly, on the issuer's
// path, Secure with an https issuer. maxAge < 0 deletes it.
func (s *Server) setCookie(w http.ResponseWriter, base, value string, maxAge time.Duration, sameSite http.SameSite) {
	path := s.basePath()
	if path == "" {
		path = "/"
	}
	c := &http.Cookie{
		Name: s.cookieName(base), Value: value, Path: path,
		HttpOnly: true, Secure: s.iss.Scheme == "https", SameSite: sameSite,
	}
	if maxAge < 0 {
		c.MaxAge = -1
	} else {
		c.MaxAge = int(maxAge / time.Second)
	}
	http.SetCookie(w, c)
}

func (s *Server) cookieValue(r *http.Request, base string) string {
	c, err := r.Cookie(s.cookieName(base))
	if err != nil {
		return ""
	}
	return c.Value
}

// currentSession returns the browser's session and its user, or nil when
// there is none, it expired, or the user is revoked.
func (s *Server) currentSession(ctx context.Context, r *http.Request) (*store.Session, *store.User, error) {
	v := s.cookieValue(r, sessionCookie)
	if !isSecretShape(v) {
		return nil, nil, nil
	}
	sess, err := s.store.GetSession(ctx, hashSecret(v), now())
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	u, err := s.store.GetUser(ctx, sess.User)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	if !u.RevokedAt.IsZero() {
		return nil, nil, nil
	}
	return sess, u, nil
}

// isSecretShape reports whether v looks like one of our 256-bit secrets
// (43 base64url characters), so junk is not even hashed and looked up.
func isSecretShape(v string) bool {
	if len(v) != 43 {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(v)
	return err == nil
}

// formToken is the CSRF token of a form: HMAC-SHA256 under a secret only
// this browser holds (the login cookie, or the session's CSRF secret) of
// the form's purpose and the authorization request id, so a token is good
// for one form of one request in one browser.
func formToken(key, purpose, reqID string) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(purpose))
	m.Write([]byte{0})
	m.Write([]byte(reqID))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// validFormToken compares in constant time; an empty key or token never
// matches.
func validFormToken(got, key, purpose, reqID string) bool {
	if got == "" || key == "" {
		return false
	}
	want := formToken(key, purpose, reqID)
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// dummyPasswordHash is compared against when the user does not exist (or
// has no password), so every failed login costs the same bcrypt time and
// the response time does not tell which user names exist.
var dummyPasswordHash = sync.OnceValue(func() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	h, err := hashPassword(base64.RawURLEncoding.EncodeToString(b[:])[:40])
	if err != nil {
		panic("issuer: bcrypt: " + err.Error())
	}
	return h
})

// genericLoginError is the one message for every failed login: an
// unknown user, a wrong password, a user without a password or revoked.
const genericLoginError = "Wrong user name or password."

// serveLogin is the login page. GET shows the form; POST checks the
// password, creates a session and continues to the consent page. The
// form is bound to the authorization request and to this browser by a
// CSRF token derived from a login cookie (RFC 6749 §10.12).
func (s *Server) serveLogin(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		s.loginForm(w, r)
	case http.MethodPost:
		s.loginSubmit(w, r)
	default:
		w.Header().Set("Allow", "GET, POST")
		s.errorPage(w, http.StatusMethodNotAllowed, "Method not allowed", "Use GET or POST.")
	}
}

// authRequestFor loads the authorization request a page is for and its
// client; on failure it has answered.
func (s *Server) authRequestFor(w http.ResponseWriter, r *http.Request, reqID string) (*store.AuthRequest, *store.Client, bool) {
	ctx := r.Context()
	if !isSecretShape(reqID) {
		s.errorPage(w, http.StatusBadRequest, "Sign-in request not found", "This sign-in request is unknown or has expired.")
		return nil, nil, false
	}
	ar, err := s.store.GetAuthRequest(ctx, reqID, now())
	if errors.Is(err, store.ErrNotFound) {
		s.errorPage(w, http.StatusBadRequest, "Sign-in request not found", "This sign-in request is unknown or has expired.")
		return nil, nil, false
	}
	if err != nil {
		s.pageServerError(w, err)
		return nil, nil, false
	}
	c, err := s.resolveClient(ctx, ar.ClientID)
	if err != nil {
		var ce clientError
		if errors.As(err, &ce) {
			s.errorPage(w, http.StatusBadRequest, "Unknown application", ce.Error())
		} else {
			s.pageServerError(w, err)
		}
		return nil, nil, false
	}
	return ar, c, true
}

func (s *Server) loginForm(w http.ResponseWriter, r *http.Request) {
	if q := r.URL.Query(); !q.Has("req") && q.Has("return") {
		s.consoleLoginForm(w, r, q.Get("return"))
		return
	}
	reqID := r.URL.Query().Get("req")
	ar, c, ok := s.authRequestFor(w, r, reqID)
	if !ok {
		return
	}
	sess, _, err := s.currentSession(r.Context(), r)
	if err != nil {
		s.pageServerError(w, err)
		return
	}
	if sessionSatisfies(sess, ar) {
		pageRedirect(w, r, s.pageURL(pathConsent, ar.ID), "")
		return
	}
	s.showLogin(w, r, http.StatusOK, ar, c, "", "")
}

// showLogin renders the login form, setting the login cookie when the
// browser has none.
func (s *Server) showLogin(w http.ResponseWriter, r *http.Request, status int, ar *store.AuthRequest, c *store.Client, username, msg string) {
	key := s.cookieValue(r, loginCookie)
	if !isSecretShape(key) {
		key = newSecret()
	}
	// Lax, not Strict: the browser usually arrives here by a redirect
	// chain a client started cross-site, where a Strict cookie is not
	// sent; another open login tab would then get a new key and a stale
	// form. The HMAC token is the CSRF defence; Lax still keeps the cookie
	// off cross-site POSTs.
	s.setCookie(w, loginCookie, key, DefaultAuthTTL, http.SameSiteLaxMode)
	d := &pageData{
		Title: "Sign in", Action: s.basePath() + pathLogin, ReqID: ar.ID,
		CSRF: formToken(key, "login", ar.ID), Client: viewClient(c), Username: username, Error: msg,
		Local: s.login.local, Providers: s.loginProviders(r.Context()),
	}
	var idps []string
	if len(d.Providers) > 0 {
		d.IdPAction, d.IdPCSRF = s.basePath()+pathIdPStart, formToken(key, "idp", ar.ID)
		for _, p := range d.Providers {
			if p.origin != "" && !slices.Contains(idps, p.origin) {
				idps = append(idps, p.origin)
			}
		}
	}
	s.render(w, status, "login.html", d, strings.Join(idps, " "))
}

// csrfRefused answers a POST whose CSRF token is missing or wrong; it
// changes nothing.
func (s *Server) csrfRefused(w http.ResponseWriter) {
	s.errorPage(w, http.StatusForbidden, "Request refused", "This form has expired or was not sent from this site. Go back, reload the page and try again.")
}

// pageForm reads a page's POST body; on failure it has answered.
func (s *Server) pageForm(w http.ResponseWriter, r *http.Request) (url.Values, bool) {
	form, err := parseForm(w, r)
	if err != nil {
		var oe *oauthError
		if errors.As(err, &oe) {
			s.errorPage(w, oe.Status, "Bad request", oe.Description)
		} else {
			s.pageServerError(w, err)
		}
		return nil, false
	}
	return form, true
}

// loginSubmit checks, in order: the form's CSRF token (403), the rate
// limits of the user name and the client address (429, counting this
// attempt), the password.
func (s *Server) loginSubmit(w http.ResponseWriter, r *http.Request) {
	form, ok := s.pageForm(w, r)
	if !ok {
		return
	}
	reqID := form.Get("req")
	if reqID == "" && form.Has("return") {
		s.consoleLoginSubmit(w, r, form)
		return
	}
	ar, c, ok := s.authRequestFor(w, r, reqID)
	if !ok {
		return
	}
	if !validFormToken(form.Get("csrf"), s.cookieValue(r, loginCookie), "login", ar.ID) {
		s.csrfRefused(w)
		return
	}
	again := func(status int, username, msg string) { s.showLogin(w, r, status, ar, c, username, msg) }
	if !s.passwordSignIn(w, r, form, ar.ClientID, again) {
		return
	}
	pageRedirect(w, r, s.pageURL(pathConsent, ar.ID), "")
}

// passwordSignIn checks, after the form's CSRF token: that password
// sign-in is on (403), the rate limits of the user name and the client
// address (429, counting this attempt), the password; then starts a
// session. It returns true with the session started and nothing written;
// on false it has answered (again shows the form with a message).
func (s *Server) passwordSignIn(w http.ResponseWriter, r *http.Request, form url.Values, clientID string, again func(status int, username, msg string)) bool {
	if !s.login.local {
		s.errorPage(w, http.StatusForbidden, "Password sign-in is off", "This server signs people in through their organisation's identity provider only.")
		return false
	}
	ctx := r.Context()
	username, password := form.Get("username"), form.Get("password")
	if username == "" || password == "" || len(username) > MaxNameLen {
		again(http.StatusBadRequest, "", genericLoginError)
		return false
	}
	ip := limiterAddr(s.clientAddr(r))
	at := now()
	if retry, ok := s.logins.attempt(username, ip, at); !ok {
		s.event(Event{Kind: "login_failed", ClientID: clientID, Reason: "too many failed logins"})
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(retry.Seconds()))))
		s.errorPage(w, http.StatusTooManyRequests, "Too many attempts", "Too many failed sign-ins. Wait a few minutes and try again.")
		return false
	}
	u, err := s.store.GetUserByName(ctx, username)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.pageServerError(w, err)
		return false
	}
	hash := dummyPasswordHash()
	if u != nil && u.PasswordHash != "" {
		hash = u.PasswordHash
	}
	good := checkPassword(hash, password) && u != nil && u.PasswordHash != "" && u.RevokedAt.IsZero()
	if !good {
		e := Event{Kind: "login_failed", ClientID: clientID, Reason: "bad credentials"}
		if u != nil {
			e.Subject = u.ID
		}
		s.event(e)
		again(http.StatusBadRequest, username, genericLoginError)
		return false
	}
	s.logins.succeed(username, ip)
	// A new session at every login (no session fixation); the old one, if
	// any, ends.
	if err := s.startSession(w, r, u.ID, at, at.Add(s.cfg.SessionTTL)); err != nil {
		s.pageServerError(w, err)
		return false
	}
	return true
}

// serveConsent is the consent page: GET shows what the client asks for
// and what the user can grant; POST (CSRF-checked against the session)
// approves or denies.
func (s *Server) serveConsent(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		s.consentForm(w, r)
	case http.MethodPost:
		s.consentSubmit(w, r)
	default:
		w.Header().Set("Allow", "GET, POST")
		s.errorPage(w, http.StatusMethodNotAllowed, "Method not allowed", "Use GET or POST.")
	}
}

// consentScopes decides what the user can grant: the requested scopes
// their entitlements on the resource cover (matched with policy.Allows);
// with no scope requested, all their entitlements there (RFC 6749 §3.3
// lets the server use a default, and the page shows it). Requested scopes
// beyond the entitlements are refused and listed; the rest are granted
// (RFC 6749 §3.3: the issued scope may differ, and the token response
// says which). Nothing grantable is invalid_scope; a resource the user has
// no entitlements on is invalid_target (RFC 8707 §2).
func consentScopes(u *store.User, ar *store.AuthRequest) (grant, refused []string, err *oauthError) {
	ent := u.Entitlements[ar.Resource]
	if len(ent) == 0 {
		return nil, nil, errInvalidTarget("the user has no access to grant on this resource")
	}
	if ar.Scopes == nil {
		return slices.Clone(ent), nil, nil
	}
	grant, refused = splitByEntitlement(ar.Scopes, ent)
	if len(grant) == 0 {
		return nil, refused, errInvalidScope("none of the requested scopes is within the user's entitlements on this resource")
	}
	return grant, refused, nil
}

func splitByEntitlement(scopes, ent []string) (in, out []string) {
	for _, sc := range scopes {
		if policy.Allows(ent, sc) {
			in = append(in, sc)
		} else {
			out = append(out, sc)
		}
	}
	return in, out
}

func (s *Server) consentForm(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ar, c, ok := s.authRequestFor(w, r, r.URL.Query().Get("req"))
	if !ok {
		return
	}
	sess, u, err := s.currentSession(ctx, r)
	if err != nil {
		s.pageServerError(w, err)
		return
	}
	if !sessionSatisfies(sess, ar) {
		pageRedirect(w, r, s.pageURL(pathLogin, ar.ID), "")
		return
	}
	grant, refused, oerr := consentScopes(u, ar)
	if oerr != nil {
		s.finishWithError(w, r, ar, c, u, oerr.Code, oerr.Description)
		return
	}
	s.render(w, http.StatusOK, "consent.html", &pageData{
		Title: "Allow access", Action: s.basePath() + pathConsent, ReqID: ar.ID,
		CSRF: formToken(sess.CSRF, "consent", ar.ID), User: u.Name, Client: viewClient(c),
		Resource: ar.Resource, Scopes: grant, Refused: refused, RedirectTo: redirectDisplay(ar.RedirectURI),
	}, redirectOrigin(ar.RedirectURI))
}

// consentSubmit checks, in order: the session (403 without one: the CSRF
// token cannot be checked), the CSRF token (403), the decision.
func (s *Server) consentSubmit(w http.ResponseWriter, r *http.Request) {
	form, ok := s.pageForm(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	ar, c, ok := s.authRequestFor(w, r, form.Get("req"))
	if !ok {
		return
	}
	sess, u, err := s.currentSession(ctx, r)
	if err != nil {
		s.pageServerError(w, err)
		return
	}
	if sess == nil || !validFormToken(form.Get("csrf"), sess.CSRF, "consent", ar.ID) {
		s.csrfRefused(w)
		return
	}
	if !sessionSatisfies(sess, ar) {
		pageRedirect(w, r, s.pageURL(pathLogin, ar.ID), "")
		return
	}
	switch form.Get("action") {
	case "deny":
		s.finishWithError(w, r, ar, c, u, "access_denied", "the user denied access")
		return
	case "approve":
	default:
		s.errorPage(w, http.StatusBadRequest, "Bad request", "Choose Allow or Deny.")
		return
	}
	grantScopes, _, oerr := consentScopes(u, ar)
	if oerr != nil {
		s.finishWithError(w, r, ar, c, u, oerr.Code, oerr.Description)
		return
	}
	// The request is single-use: delete it before anything is created, so
	// a replayed approval finds nothing.
	if err := s.store.DeleteAuthRequest(ctx, ar.ID); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			s.errorPage(w, http.StatusBadRequest, "Sign-in request not found", "This sign-in request is unknown or has expired.")
			return
		}
		s.pageServerError(w, err)
		return
	}
	at := now()
	g := &store.Grant{
		ID: token.NewID(token.PrefixGrant), User: u.ID, Grantee: c.ID, Scopes: grantScopes,
		Audience: []string{ar.Resource}, CreatedAt: at, ExpiresAt: at.Add(s.cfg.RefreshTTL),
	}
	if err := s.store.CreateGrant(ctx, g); err != nil {
		s.pageServerError(w, err)
		return
	}
	code := newSecret()
	if err := s.store.CreateCode(ctx, &store.Code{
		Hash: hashSecret(code), ClientID: c.ID, User: u.ID, Grant: g.ID, RedirectURI: ar.RedirectURI,
		Challenge: ar.Challenge, Resource: ar.Resource, Scopes: grantScopes, ExpiresAt: at.Add(DefaultCodeTTL),
	}); err != nil {
		s.pageServerError(w, err)
		return
	}
	s.event(Event{Kind: "delegated", Subject: u.ID, ClientID: c.ID, Agents: []string{c.ID}, Chain: []string{g.ID}, Reason: "user consented to an OAuth client"})
	// RFC 6749 §4.1.2 with RFC 9207 §2: code, state, iss.
	q := url.Values{"code": {code}}
	if ar.State != "" {
		q.Set("state", ar.State)
	}
	q.Set("iss", s.cfg.Issuer)
	pageRedirect(w, r, withQuery(ar.RedirectURI, q), redirectOrigin(ar.RedirectURI))
}

// finishWithError ends an authorization request of the signed-in user u
// by sending the browser back to the client with an error (RFC 6749
// §4.1.2.1, RFC 9207 §2), or, when the client's redirect URI is not
// trusted, by showing it (unapprovedClientError).
func (s *Server) finishWithError(w http.ResponseWriter, r *http.Request, ar *store.AuthRequest, c *store.Client, u *store.User, code, desc string) {
	if err := s.store.DeleteAuthRequest(r.Context(), ar.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		s.pageServerError(w, err)
		return
	}
	trusted, err := s.redirectTrusted(r.Context(), c, u)
	if err != nil {
		s.pageServerError(w, err)
		return
	}
	if !trusted {
		s.unapprovedClientError(w, c, true, ar.RedirectURI, ar.State, code, desc)
		return
	}
	pageRedirect(w, r, s.errorRedirectURL(ar.RedirectURI, ar.State, code, desc), redirectOrigin(ar.RedirectURI))
}

// errorRedirectURL is the redirect URI with an error response added.
// desc is one of our fixed texts (RFC 6749 §4.1.2.1 restricts its
// characters; no client input goes into it).
func (s *Server) errorRedirectURL(redirectURI, state, code, desc string) string {
	q := url.Values{"error": {code}}
	if desc != "" {
		q.Set("error_description", desc)
	}
	if state != "" {
		q.Set("state", state)
	}
	q.Set("iss", s.cfg.Issuer)
	return withQuery(redirectURI, q)
}

// withQuery adds parameters to a redirect URI, keeping its own query
// (RFC 6749 §3.1.2: the query component is retained).
func withQuery(redirectURI string, q url.Values) string {
	sep := "?"
	if strings.Contains(redirectURI, "?") {
		sep = "&"
	}
	return redirectURI + sep + q.Encode()
}

// redirectOrigin is the CSP source of a redirect URI: scheme://host[:port]
// for http(s), the scheme for a private-use scheme. Anything that would
// not be a plain source expression gives "" (the redirect is then left to
// the browser's form-action 'self').
func redirectOrigin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return ""
	}
	src := u.Scheme + ":"
	if u.Scheme == "http" || u.Scheme == "https" {
		src = u.Scheme + "://" + u.Host
	}
	for i := 0; i < len(src); i++ {
		c := src[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(".-+:/[]", c) >= 0) {
			return ""
		}
	}
	return src
}

// redirectDisplay is the part of the redirect URI the consent page
// shows: where the user will land.
func redirectDisplay(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	if u.Host != "" {
		return u.Scheme + "://" + u.Host
	}
	return u.Scheme + ":"
}
