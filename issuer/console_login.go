package issuer

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// Signing in to the console: the issuer's login page without an
// authorization request, with ?return=<console path> instead of ?req=.
// The form's CSRF token is bound to the return path (formToken purpose
// "login"/"idp", request "console <path>"), and the path is checked by
// consoleReturn on the way in and again on the way out, so a sign-in can
// only land on this console (no open redirect). An IdP sign-in carries
// the path in its sealed pending record (idp.Pending.Request, prefixed
// consolePending) and lands there after the callback.

// consolePending prefixes idp.Pending.Request for a console sign-in.
const consolePending = "console "

func (s *Server) badReturn(w http.ResponseWriter) {
	s.errorPage(w, http.StatusBadRequest, "Sign-in link not valid", "This sign-in link does not lead to this server's console. Open the console from its address.")
}

func (s *Server) consoleLoginForm(w http.ResponseWriter, r *http.Request, ret string) {
	ret, ok := s.consoleReturn(ret)
	if !ok || s.cfg.Console.Off {
		s.badReturn(w)
		return
	}
	sess, _, err := s.currentSession(r.Context(), r)
	if err != nil {
		s.pageServerError(w, err)
		return
	}
	if sess != nil {
		pageRedirect(w, r, ret, "")
		return
	}
	s.showConsoleLogin(w, r, http.StatusOK, ret, "", "")
}

// showConsoleLogin is showLogin for the console.
func (s *Server) showConsoleLogin(w http.ResponseWriter, r *http.Request, status int, ret, username, msg string) {
	key := s.cookieValue(r, loginCookie)
	if !isSecretShape(key) {
		key = newSecret()
	}
	s.setCookie(w, loginCookie, key, DefaultAuthTTL, http.SameSiteLaxMode)
	d := &pageData{
		Title: "Sign in", Action: s.basePath() + pathLogin, Return: ret,
		CSRF: formToken(key, "login", consolePending+ret), Username: username, Error: msg,
		Local: s.login.local, Providers: s.loginProviders(r.Context()),
	}
	var idps []string
	if len(d.Providers) > 0 {
		d.IdPAction, d.IdPCSRF = s.basePath()+pathIdPStart, formToken(key, "idp", consolePending+ret)
		for _, p := range d.Providers {
			if p.origin != "" && !slices.Contains(idps, p.origin) {
				idps = append(idps, p.origin)
			}
		}
	}
	s.render(w, status, "login.html", d, strings.Join(idps, " "))
}

// consoleLoginSubmit is loginSubmit for the console: CSRF (bound to the
// return path), then passwordSignIn, then back to the console.
func (s *Server) consoleLoginSubmit(w http.ResponseWriter, r *http.Request, form url.Values) {
	ret, ok := s.consoleReturn(form.Get("return"))
	if !ok || s.cfg.Console.Off {
		s.badReturn(w)
		return
	}
	if !validFormToken(form.Get("csrf"), s.cookieValue(r, loginCookie), "login", consolePending+ret) {
		s.csrfRefused(w)
		return
	}
	again := func(status int, username, msg string) { s.showConsoleLogin(w, r, status, ret, username, msg) }
	if !s.passwordSignIn(w, r, form, "", again) {
		return
	}
	pageRedirect(w, r, ret, "")
}
