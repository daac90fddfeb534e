package issuer

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/kavachgate/kavach/issuer/idp"
	"github.com/kavachgate/kavach/issuer/store"
	"github.com/kavachgate/kavach/revocation"
	"github.com/kavachgate/kavach/token"
)

// Sign-in through the organisation's OpenID provider (DESIGN.md §11,
// issue 16), the issuer's side of package idp:
//
//   - the login page shows a button per provider (a POST to pathIdPStart,
//     CSRF-checked like the password form), and the password form only
//     while local users are on;
//   - pathIdPStart seals an idp.Pending (state, nonce, PKCE verifier, the
//     authorization request id, a digest of this browser's login cookie)
//     into a cookie and sends the browser to the IdP;
//   - pathIdPCallback opens it (once), lets idp.Provider check the answer
//     and the ID token, then in one store transaction links or (JIT)
//     creates the user by (iss, sub), replaces their entitlements by the
//     entitle rules' verdict and, when that took anything away, records
//     an issued-before cutoff on the user so every token issued before
//     (their agents' included) stops at the gateways; then a session and
//     the consent page, as after a password.
//
// Entitlements: for a user linked to an IdP the rules win, at every
// sign-in (what the admin API set is replaced); a local user keeps what
// the admin API sets. Agents' later tokens are minted within the new
// entitlements (every mint checks them).

// Paths of the IdP sign-in.
const (
	pathIdPStart    = "/oauth/idp/start"
	pathIdPCallback = "/oauth/idp/callback"
)

// idpCookie holds the sealed idp.Pending between the redirect to the IdP
// and its callback.
const idpCookie = "kavach_idp"

// loginReadyTimeout bounds the login page's wait for an IdP's discovery
// document: a provider that does not answer within it is shown as down.
const loginReadyTimeout = 3 * time.Second

// loginIdPs is the sign-in configuration, checked and built by New.
type loginIdPs struct {
	providers []*loginProvider // config order
	rules     idp.Rules
	local     bool
	sealer    *idp.Sealer
	jag       *idp.JAGValidator // nil: the jwt-bearer grant is not offered
}

type loginProvider struct {
	*idp.Provider
	name, display string
	jit           bool
}

func (l *loginIdPs) provider(name string) *loginProvider {
	for _, p := range l.providers {
		if p.name == name {
			return p
		}
	}
	return nil
}

// ValidateSignIn checks the sign-in fields of cfg (Login, Entitle,
// TrustIDJAG, LoginKey) as New would, without starting anything (for
// `kavach validate`).
func ValidateSignIn(cfg *Config) error {
	_, err := newLoginIdPs(cfg)
	return err
}

// newLoginIdPs validates the sign-in fields of cfg. It reads nothing from
// the network: providers are discovered at first use.
func newLoginIdPs(cfg *Config) (*loginIdPs, error) {
	l := &loginIdPs{local: cfg.LocalUsers == nil || *cfg.LocalUsers, rules: cfg.Entitle}
	var replay idp.ReplayStore = idp.NewMemoryReplay()
	if cfg.Replay != nil {
		replay = cfg.Replay
	}
	names := map[string]bool{}
	for i := range cfg.Login {
		lp := cfg.Login[i]
		if err := lp.Validate(); err != nil {
			return nil, fmt.Errorf("issuer: login %q: %w", lp.Name, err)
		}
		if names[lp.Name] {
			return nil, fmt.Errorf("issuer: login %q: configured twice", lp.Name)
		}
		names[lp.Name] = true
		p, err := idp.NewProvider(lp.ProviderConfig, strings.TrimSuffix(cfg.Issuer, "/")+pathIdPCallback, cfg.IdPClient)
		if err != nil {
			return nil, fmt.Errorf("issuer: login %q: %w", lp.Name, err)
		}
		pc := p.Config()
		l.providers = append(l.providers, &loginProvider{Provider: p, name: pc.Name, display: pc.DisplayName, jit: lp.JITUsers})
	}
	if err := cfg.Entitle.Validate(); err != nil {
		return nil, fmt.Errorf("issuer: entitle: %w", err)
	}
	for _, r := range cfg.Entitle {
		if r.Provider != "" && !names[r.Provider] {
			return nil, fmt.Errorf("issuer: entitle %s: no login provider %q", r.String(), r.Provider)
		}
	}
	if len(cfg.Entitle) > 0 && len(cfg.Login) == 0 && len(cfg.TrustIDJAG) == 0 {
		return nil, errors.New("issuer: entitle rules need a login provider (they are evaluated at IdP sign-in)")
	}
	if len(cfg.Login) > 0 {
		key := cfg.LoginKey
		if key == nil {
			key = make([]byte, 32)
			if _, err := rand.Read(key); err != nil {
				return nil, err
			}
		}
		var err error
		if l.sealer, err = idp.NewSealer(key, replay); err != nil {
			return nil, fmt.Errorf("issuer: login key: %w", err)
		}
	}
	if len(cfg.TrustIDJAG) > 0 {
		for i := range cfg.TrustIDJAG {
			if err := cfg.TrustIDJAG[i].Validate(); err != nil {
				return nil, fmt.Errorf("issuer: trust_idjag %q: %w", cfg.TrustIDJAG[i].Issuer, err)
			}
		}
		var err error
		if l.jag, err = idp.NewJAGValidator(idp.JAGConfig{Trusted: cfg.TrustIDJAG, Replay: replay, HTTPClient: cfg.IdPClient}); err != nil {
			return nil, fmt.Errorf("issuer: trust_idjag: %w", err)
		}
	}
	return l, nil
}

// providerView is a login button.
type providerView struct {
	Name    string
	Display string
	Down    bool
	// origin is the CSP source of the IdP's authorization endpoint: the
	// login page's form-action allows it (the button's POST is answered
	// with a redirect there, and browsers apply form-action to it).
	origin string
}

// loginProviders returns the login page's buttons, asking each IdP whether
// it is up (discovery is cached, and a failure remembered for a few
// seconds, by idp.Provider).
func (s *Server) loginProviders(ctx context.Context) []providerView {
	if len(s.login.providers) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, loginReadyTimeout)
	defer cancel()
	out := make([]providerView, len(s.login.providers))
	for i, p := range s.login.providers {
		out[i] = providerView{Name: p.name, Display: p.display}
		auth, err := p.AuthEndpoint(ctx)
		if err != nil {
			out[i].Down = true
			s.log.Warn("issuer: identity provider unavailable", "provider", p.name, "error", err)
			continue
		}
		out[i].origin = redirectOrigin(auth)
	}
	return out
}

// browserBinding ties a sealed sign-in to the browser holding the login
// cookie key: a digest, so the cookie value itself is never sealed.
func browserBinding(key string) string {
	sum := sha256.Sum256([]byte("kavach idp binding\x00" + key))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// serveIdPStart is a login button: POST req, csrf, provider. It checks
// the CSRF token against the login cookie, then seals the pending
// sign-in into a cookie and redirects to the IdP. An IdP that is down
// gets the login page again, saying so.
func (s *Server) serveIdPStart(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		s.errorPage(w, http.StatusMethodNotAllowed, "Method not allowed", "Use POST.")
		return
	}
	form, ok := s.pageForm(w, r)
	if !ok {
		return
	}
	// The sign-in resumes an authorization request, or (no req, a
	// return path) returns to the console.
	var request string
	var again func(status int, msg string)
	var opts idp.AuthOptions
	if form.Get("req") == "" && form.Has("return") {
		ret, ok := s.consoleReturn(form.Get("return"))
		if !ok || s.cfg.Console.Off {
			s.badReturn(w)
			return
		}
		request = consolePending + ret
		again = func(status int, msg string) { s.showConsoleLogin(w, r, status, ret, "", msg) }
	} else {
		ar, c, ok := s.authRequestFor(w, r, form.Get("req"))
		if !ok {
			return
		}
		request = ar.ID
		again = func(status int, msg string) { s.showLogin(w, r, status, ar, c, "", msg) }
		opts.Prompt = ar.Prompt
		if ar.MaxAge > 0 {
			opts.MaxAge = time.Duration(ar.MaxAge) * time.Second
		}
	}
	key := s.cookieValue(r, loginCookie)
	if !validFormToken(form.Get("csrf"), key, "idp", request) {
		s.csrfRefused(w)
		return
	}
	p := s.login.provider(form.Get("provider"))
	if p == nil {
		again(http.StatusBadRequest, "Choose one of the sign-in options.")
		return
	}
	pend, err := idp.NewPending(p.name, request, browserBinding(key), 0)
	if err != nil {
		s.pageServerError(w, err)
		return
	}
	to, err := p.AuthURL(r.Context(), pend, opts)
	if err != nil {
		s.log.Warn("issuer: identity provider unavailable", "provider", p.name, "error", err)
		again(http.StatusServiceUnavailable, p.display+" is not reachable right now. Try again in a moment"+
			map[bool]string{true: ", or sign in with a password.", false: "."}[s.login.local])
		return
	}
	sealed, err := s.login.sealer.Seal(pend)
	if err != nil {
		s.pageServerError(w, err)
		return
	}
	// Lax: the IdP's redirect back is a cross-site top-level GET.
	s.setCookie(w, idpCookie, sealed, idp.DefaultPendingLifetime, http.SameSiteLaxMode)
	pageRedirect(w, r, to, "")
}

// signInFailed shows why a sign-in through an IdP failed: the
// *idp.Error's fixed public text (its detail is logged), and a way back
// to the login page (retry, "" for none) while the authorization request
// lives.
func (s *Server) signInFailed(w http.ResponseWriter, retry string, err error) {
	status, msg := http.StatusBadRequest, "The sign-in could not be completed."
	var ie *idp.Error
	if errors.As(err, &ie) {
		msg = ie.Description
		if errors.Is(err, idp.ErrIdPUnavailable) {
			status = http.StatusServiceUnavailable
		}
		s.log.Warn("issuer: sign-in through the identity provider refused", "reason", ie.Kind, "detail", ie.Detail, "cause", ie.Err)
	} else {
		s.log.Warn("issuer: sign-in through the identity provider refused", "error", err)
	}
	s.event(Event{Kind: "login_failed", Reason: "identity provider sign-in: " + msg})
	d := &pageData{Title: "Sign-in failed", Error: msg}
	d.Retry = retry
	s.render(w, status, "error.html", d, "")
}

// serveIdPCallback is where the IdP sends the browser back. Check order:
// the sealed pending record opens for this state and this browser, once
// (idp.Sealer.Open); the authorization request it resumes still exists;
// the IdP's answer and ID token (idp.Provider.Callback: error response,
// iss, code exchange with the PKCE verifier, signature, iss, aud, azp,
// exp, iat, nonce, auth_time); then the store links the user. Every
// failure is an error page and changes nothing.
func (s *Server) serveIdPCallback(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		s.errorPage(w, http.StatusMethodNotAllowed, "Method not allowed", "Use GET.")
		return
	}
	ctx := r.Context()
	q := r.URL.Query()
	sealed := s.cookieValue(r, idpCookie)
	s.setCookie(w, idpCookie, "", -1, http.SameSiteLaxMode)
	pend, err := s.login.sealer.Open(ctx, sealed, q.Get("state"), browserBinding(s.cookieValue(r, loginCookie)))
	if err != nil {
		s.signInFailed(w, "", err)
		return
	}
	p := s.login.provider(pend.Provider)
	if p == nil {
		s.signInFailed(w, "", errors.New("the sign-in names a provider no longer configured"))
		return
	}
	// Where the sign-in goes next: the console path it started from, or
	// the consent page of the authorization request it resumes.
	var retry, next string
	if ret, console := strings.CutPrefix(pend.Request, consolePending); console {
		var ok bool
		if next, ok = s.consoleReturn(ret); !ok {
			s.badReturn(w)
			return
		}
		retry = s.basePath() + pathLogin + "?return=" + url.QueryEscape(next)
	} else {
		ar, _, ok := s.authRequestFor(w, r, pend.Request)
		if !ok {
			return
		}
		retry, next = s.pageURL(pathLogin, ar.ID), s.pageURL(pathConsent, ar.ID)
	}
	id, err := p.Callback(ctx, q, pend)
	if err != nil {
		s.signInFailed(w, retry, err)
		return
	}
	at := now()
	u, err := s.linkIdentity(ctx, p, id, at)
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.signInFailed(w, retry, fmt.Errorf("%w: no user is linked to this identity", errNoLinkedUser))
		return
	case errors.Is(err, store.ErrInactive):
		s.signInFailed(w, retry, errUserRevoked)
		return
	case err != nil:
		s.pageServerError(w, err)
		return
	}
	// The session ends with the ID token: the IdP's word is not good for
	// longer.
	exp := at.Add(s.cfg.SessionTTL)
	if !id.Expiry.IsZero() && id.Expiry.Before(exp) {
		exp = id.Expiry
	}
	if !exp.After(at) {
		s.signInFailed(w, retry, errors.New("the identity provider's ID token leaves no session time"))
		return
	}
	if err := s.startSession(w, r, u.ID, at, exp); err != nil {
		s.pageServerError(w, err)
		return
	}
	pageRedirect(w, r, next, "")
}

// Sign-in refusals of the issuer's own (the IdP vouched for the person).
var (
	errNoLinkedUser = &idp.Error{Kind: errors.New("issuer: no linked user"), Code: "access_denied",
		Description: "Your account is not set up for this server. Ask its operator for access."}
	errUserRevoked = &idp.Error{Kind: errors.New("issuer: user revoked"), Code: "access_denied",
		Description: "Your access to this server has been revoked."}
)

// linkIdentity applies a verified sign-in to the store (one transaction,
// store.SignInIdP): the user linked to (iss, sub), or a new one when the
// provider creates users just in time; entitlements by the rules; a
// cutoff on the user when they shrank, published to the gateways after
// the commit.
func (s *Server) linkIdentity(ctx context.Context, p *loginProvider, id *idp.Identity, at time.Time) (*store.User, error) {
	ent := s.login.rules.Evaluate(id)
	var cut *revocation.Entry
	in := &store.IdPSignIn{
		Link: store.IdentityLink{Issuer: id.Issuer, Subject: id.Subject, Provider: p.name,
			Email: id.Email, Name: id.Name, Groups: id.Groups, SeenAt: at},
		Entitlements: ent,
		Cutoff: func(user string, old map[string][]string) *revocation.Entry {
			cut = nil
			if idp.Narrowed(old, ent) {
				e := s.cutoff(revocation.CutoffSubject, user, at)
				cut = &e
			}
			return cut
		},
	}
	var u *store.User
	var err error
	// A new user's name: provider:email, or provider:sub when that is
	// taken (another account with that email) or there is no email.
	for _, name := range jitNames(p.name, id) {
		if p.jit {
			in.NewUser = &store.User{ID: token.NewID(token.PrefixUser), Name: name, CreatedAt: at}
		}
		u, _, err = s.store.SignInIdP(ctx, in)
		if !errors.Is(err, store.ErrExists) {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	if cut != nil {
		s.publishRevocations(ctx, []revocation.Entry{*cut})
		s.log.Info("issuer: entitlements narrowed at sign-in; tokens issued before are cut", "user", u.ID, "provider", p.name)
		s.event(Event{Kind: "revoked", Subject: u.ID, IDs: []string{u.ID}, Reason: "entitlements narrowed at identity provider sign-in"})
	}
	return u, nil
}

func jitNames(provider string, id *idp.Identity) []string {
	bySub := provider + ":" + id.Subject
	var names []string
	if id.Email != "" && len(provider)+1+len(id.Email) <= MaxNameLen {
		names = append(names, provider+":"+id.Email)
	}
	if len(bySub) > MaxNameLen {
		sum := sha256.Sum256([]byte(id.Subject))
		bySub = provider + ":" + base64.RawURLEncoding.EncodeToString(sum[:])
	}
	return slices.Compact(append(names, bySub, bySub))
}

// startSession creates a new session for user (the old one, if any,
// ends: no session fixation) and sets its cookie.
func (s *Server) startSession(w http.ResponseWriter, r *http.Request, user string, at, exp time.Time) error {
	ctx := r.Context()
	if old := s.cookieValue(r, sessionCookie); isSecretShape(old) {
		if err := s.store.DeleteSession(ctx, hashSecret(old)); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	value := newSecret()
	sess := &store.Session{Hash: hashSecret(value), User: user, CSRF: newSecret(), CreatedAt: at, ExpiresAt: exp}
	if err := s.store.PutSession(ctx, sess); err != nil {
		return err
	}
	// SameSite=Lax: the session must reach /oauth/authorize when a client
	// sends the browser there (a cross-site top-level GET).
	s.setCookie(w, sessionCookie, value, exp.Sub(at), http.SameSiteLaxMode)
	s.setCookie(w, loginCookie, "", -1, http.SameSiteLaxMode)
	return nil
}

// sessionSatisfies reports whether a session's sign-in is recent enough
// for an authorization request (prompt=login, max_age: OpenID Connect
// Core §3.1.2.1).
func sessionSatisfies(sess *store.Session, ar *store.AuthRequest) bool {
	return sess != nil && (ar.AuthAfter.IsZero() || !sess.CreatedAt.Before(ar.AuthAfter))
}
