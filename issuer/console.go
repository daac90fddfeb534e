package issuer

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/kavachgate/kavach/admin"
	"github.com/kavachgate/kavach/audit"
	"github.com/kavachgate/kavach/issuer/store"
	"github.com/kavachgate/kavach/token"
)

// The web console (DESIGN.md §11, issue 17): server-rendered pages under
// <issuer>/console/ where people see their agents' delegation trees,
// the OAuth clients they consented to and the trail of requests made on
// their behalf, and revoke. Operators see everyone's.
//
// Rules every handler keeps:
//   - A browser session of the issuer (the one /oauth/login makes) is the
//     only credential; without one a GET goes to the login page, which
//     comes back here (consoleReturn: a same-origin console path only), and
//     a POST is refused. The admin token never reaches a page.
//   - Every POST carries a CSRF token (formToken under the session's CSRF
//     secret, bound to the action and its target), checked before anything
//     else happens; mutations are POST only.
//   - What a user may see is decided once per request (consoleUser.sees);
//     another user's agent or consent is "not found", by URL or filter,
//     without naming it.
//   - Revocations go through manage.go, the admin API's code path.
//   - Every response carries consoleCSP and the page headers.

// ConsoleConfig configures the web console.
type ConsoleConfig struct {
	// Off turns the console off (`console off`): its paths are not served.
	Off bool `json:"off,omitempty"`
	// Operators are users (by id or login name) who see and manage every
	// user's agents, consents and trail.
	Operators []string `json:"operators,omitempty"`
	// OperatorGroups: a user linked to an IdP whose last sign-in named one
	// of these groups is an operator too.
	OperatorGroups []string `json:"operator_groups,omitempty"`
}

// Validate checks the operator lists: names that are not empty, not too
// long, not repeated.
func (c *ConsoleConfig) Validate() error {
	for _, l := range []struct {
		what string
		list []string
	}{{"operators", c.Operators}, {"operator_group", c.OperatorGroups}} {
		for i, v := range l.list {
			if v == "" || len(v) > MaxNameLen {
				return fmt.Errorf("%s: %q is not a user id, name or group (1 to %d bytes)", l.what, v, MaxNameLen)
			}
			if slices.Contains(l.list[:i], v) {
				return fmt.Errorf("%s: %q is named twice", l.what, v)
			}
		}
	}
	if c.Off && len(c.Operators)+len(c.OperatorGroups) > 0 {
		return errors.New("a console that is off has no operators")
	}
	return nil
}

// pathConsole is the console's root, under the issuer's path.
const pathConsole = "/console"

// consoleCSP is the console's Content-Security-Policy: its one stylesheet,
// inline SVG charts, forms to itself, never framed.
const consoleCSP = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Sizes of what a page reads from the trail.
const (
	consolePageSize   = 50   // trail entries per page
	consoleRecentScan = 2000 // entries read for "last use" and the overview
	consoleAgentTrail = 20   // entries on an agent's page
	consoleChartRows  = 12   // bars of an overview chart
)

//go:embed templates/console.css
var consoleCSS []byte

// consoleFuncs are the console templates' helpers.
var consoleFuncs = template.FuncMap{
	"fmtTime": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"list": func(n *agentNode) []*agentNode { return []*agentNode{n} },
}

// consoleRoutes adds the console to the issuer's mux.
func (s *Server) consoleRoutes(mux *http.ServeMux, base string) {
	if s.cfg.Console.Off {
		return
	}
	root := base + pathConsole
	c := http.NewServeMux()
	c.HandleFunc("GET "+root+"/{$}", s.consoleAuth(s.consoleOverview))
	c.HandleFunc("GET "+root+"/agents", s.consoleAuth(s.consoleAgents))
	c.HandleFunc("GET "+root+"/agents/{id}", s.consoleAuth(s.consoleAgent))
	c.HandleFunc("GET "+root+"/agents/{id}/revoke", s.consoleAuth(s.consoleRevokePreview))
	c.HandleFunc("POST "+root+"/agents/{id}/revoke", s.consoleAuth(s.consoleRevoke))
	c.HandleFunc("GET "+root+"/clients", s.consoleAuth(s.consoleClients))
	c.HandleFunc("POST "+root+"/clients/{grant}/revoke", s.consoleAuth(s.consoleRevokeConsent))
	c.HandleFunc("GET "+root+"/trail", s.consoleAuth(s.consoleTrail))
	c.HandleFunc("POST "+root+"/logout", s.consoleAuth(s.consoleLogout))
	c.HandleFunc("GET "+root+"/console.css", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
		_, _ = w.Write(consoleCSS)
	})
	c.HandleFunc(root+"/", s.consoleAuth(func(w http.ResponseWriter, r *http.Request, cu *consoleUser) {
		s.consoleNotFound(w, cu)
	}))
	headers := func(w http.ResponseWriter, r *http.Request) {
		setConsoleHeaders(w.Header())
		c.ServeHTTP(w, r)
	}
	mux.HandleFunc(root+"/", headers)
	mux.HandleFunc(root, func(w http.ResponseWriter, r *http.Request) {
		setConsoleHeaders(w.Header())
		w.Header().Set("Location", root+"/")
		w.WriteHeader(http.StatusSeeOther)
	})
}

func setConsoleHeaders(h http.Header) {
	setPageHeaders(h, "")
	h.Set("Content-Security-Policy", consoleCSP)
}

// consoleUser is the signed-in person of a console request.
type consoleUser struct {
	sess     *store.Session
	user     *store.User
	operator bool
}

// sees reports whether the person may see what acts for user.
func (cu *consoleUser) sees(user string) bool { return cu.operator || cu.user.ID == user }

// token is the CSRF token of a console form doing action.
func (cu *consoleUser) token(action string) string { return formToken(cu.sess.CSRF, "console", action) }

// consoleAuth runs h for a signed-in person. Without a session, a GET is
// sent to the login page (which returns here) and anything else is
// refused; a POST's CSRF token is checked by h through checkCSRF.
func (s *Server) consoleAuth(h func(http.ResponseWriter, *http.Request, *consoleUser)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sess, u, err := s.currentSession(r.Context(), r)
		if err != nil {
			s.consoleError(w, nil, err)
			return
		}
		if sess == nil {
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				s.consoleCSRFRefused(w, nil)
				return
			}
			ret := r.URL.EscapedPath()
			if r.URL.RawQuery != "" {
				ret += "?" + r.URL.RawQuery
			}
			if _, ok := s.consoleReturn(ret); !ok {
				ret = s.basePath() + pathConsole + "/"
			}
			// 302 after a GET, like the issuer's other page redirects.
			setConsoleHeaders(w.Header())
			w.Header().Set("Location", s.basePath()+pathLogin+"?return="+url.QueryEscape(ret))
			w.WriteHeader(http.StatusFound)
			return
		}
		op, err := s.isOperator(r.Context(), u)
		if err != nil {
			s.consoleError(w, nil, err)
			return
		}
		h(w, r, &consoleUser{sess: sess, user: u, operator: op})
	}
}

// isOperator: the user is named in the config (id or name), or their IdP
// said at the last sign-in that they are in an operator group.
func (s *Server) isOperator(ctx context.Context, u *store.User) (bool, error) {
	cfg := s.cfg.Console
	if slices.Contains(cfg.Operators, u.ID) || slices.Contains(cfg.Operators, u.Name) {
		return true, nil
	}
	if len(cfg.OperatorGroups) == 0 {
		return false, nil
	}
	links, err := s.store.IdentityLinks(ctx, u.ID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return false, err
	}
	for _, l := range links {
		for _, g := range l.Groups {
			if slices.Contains(cfg.OperatorGroups, g) {
				return true, nil
			}
		}
	}
	return false, nil
}

// consoleReturn checks where a sign-in may return to: a path of this
// console (same origin, no scheme, host or "//"), never elsewhere (no open
// redirect). It returns the path as given.
func (s *Server) consoleReturn(v string) (string, bool) {
	root := s.basePath() + pathConsole
	if v == "" || len(v) > 1024 || strings.ContainsAny(v, "\\\r\n\t") || strings.Contains(v, "//") {
		return "", false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 0x21 || v[i] >= 0x7f {
			return "", false
		}
	}
	u, err := url.Parse(v)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" || u.Fragment != "" {
		return "", false
	}
	p := u.EscapedPath()
	if p != root && !strings.HasPrefix(p, root+"/") {
		return "", false
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "." || seg == ".." || strings.Contains(strings.ToLower(seg), "%2e") || strings.Contains(strings.ToLower(seg), "%2f") {
			return "", false
		}
	}
	return v, true
}

// checkCSRF reads a console POST's form and checks its token for action;
// on failure it has answered 403 (or 400/413 for a bad body) and nothing
// has happened.
func (s *Server) checkCSRF(w http.ResponseWriter, r *http.Request, cu *consoleUser, action string) (url.Values, bool) {
	form, err := parseForm(w, r)
	if err != nil {
		var oe *oauthError
		if !errors.As(err, &oe) {
			s.consoleError(w, cu, err)
			return nil, false
		}
		s.consoleRender(w, oe.Status, "console_message.html", cu, &consoleData{Title: "Bad request", Error: oe.Description})
		return nil, false
	}
	if !validFormToken(form.Get("csrf"), cu.sess.CSRF, "console", action) {
		s.consoleCSRFRefused(w, cu)
		return nil, false
	}
	return form, true
}

// consoleCSRFRefused answers a POST whose CSRF token is missing or wrong,
// or that has no session; nothing has changed.
func (s *Server) consoleCSRFRefused(w http.ResponseWriter, cu *consoleUser) {
	s.consoleRender(w, http.StatusForbidden, "console_message.html", cu, &consoleData{Title: "Request refused",
		Error: "This form has expired or was not sent from this console. Go back, reload the page and try again."})
}

// consoleData is what the console templates see.
type consoleData struct {
	Title    string
	Nav      string // the current section: overview, agents, clients, trail
	Root     string // the console's path
	Me       string
	Operator bool
	Logout   string // the sign-out form's CSRF token
	Notice   string
	Error    string

	Trail       *trailStatusView // nil: no trail configured
	TrailError  string
	UserPicker  []userOption
	PickedUser  string
	PickerPath  string
	ShowPicker  bool
	Trees       []userTree
	Agent       *agentNode
	Parents     []crumb
	Entries     []entryView
	Cascade     []cascadeItem
	RevokeCSRF  string
	RevokeURL   string
	Consents    []consentRow
	Filter      trailFilter
	NextPage    string
	PrevPage    string
	Overview    *overview
	NotFound    bool
	AgentsOfPic []userOption // agent choices of the trail filter
}

type userOption struct {
	ID, Name string
	Selected bool
}

// userTree is one user's delegation trees.
type userTree struct {
	User  string
	ID    string
	Roots []*agentNode
}

// agentNode is an agent as the console shows it.
type agentNode struct {
	ID, Name, URL, Owner, OwnerName string
	Parent                          string
	Scopes                          []string
	Constraints                     []string
	Credential                      string
	Status                          string // active, revoked, expired
	Created, Expires                time.Time
	LastUse                         time.Time
	Grant                           string
	Children                        []*agentNode
}

type crumb struct{ Name, URL string }

// cascadeItem is one thing a revocation stops.
type cascadeItem struct {
	Kind, ID, Name, URL, Status string
}

type consentRow struct {
	Grant, ClientID, ClientName, Source, Via string
	Scopes, Audience                         []string
	Created, Expires, LastUse                time.Time
	CSRF, Action                             string
}

type trailStatusView struct {
	audit.TrailStatus
}

// entryView is one trail entry on a page.
type entryView struct {
	Time     time.Time
	Kind     string
	Decision string // allow, deny or "" for events
	Chain    []crumb
	Tool     string
	Request  string // MCP method or HTTP method and path
	Args     string // argument digest (short)
	Reason   string
	Status   int
	Duration string
	Covered  bool
	IDs      []string
}

type trailFilter struct {
	Agent, Tool, Decision, Status, Since, Until, User string
}

type overview struct {
	Window  string
	Allowed int
	Denied  int
	ByAgent []countRow
	ByTool  []countRow
	// OneScope are denials that one more scope would have allowed.
	OneScope []countRow
	// Charts of ByAgent and ByTool (server-rendered SVG).
	AgentChart, ToolChart template.HTML
}

type countRow struct {
	Label, URL   string
	Tool         string
	Allow, Deny  int
	MissingScope string
}

// render writes a console page (buffered: a template failure is a clean
// 500).
func (s *Server) consoleRender(w http.ResponseWriter, status int, name string, cu *consoleUser, d *consoleData) {
	d.Root = s.basePath() + pathConsole
	if cu != nil {
		d.Me, d.Operator, d.Logout = cu.user.Name, cu.operator, cu.token("logout")
	}
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, name, d); err != nil {
		s.log.Error("issuer: rendering console page failed", "page", name, "error", err)
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString("internal error\n")
	}
	h := w.Header()
	setConsoleHeaders(h)
	h.Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (s *Server) consoleError(w http.ResponseWriter, cu *consoleUser, err error) {
	s.log.Error("issuer: console page failed", "error", err)
	s.consoleRender(w, http.StatusInternalServerError, "console_message.html", cu,
		&consoleData{Title: "Something went wrong", Error: "The server could not complete the request."})
}

// consoleNotFound answers for what does not exist and for what is not the
// person's: the same words, so a URL tells nothing about other users.
func (s *Server) consoleNotFound(w http.ResponseWriter, cu *consoleUser) {
	s.consoleRender(w, http.StatusNotFound, "console_message.html", cu,
		&consoleData{Title: "Not found", Error: "There is nothing here, or it is not yours to see.", NotFound: true})
}

// trailStatus fills the verification box.
func (s *Server) trailStatus(ctx context.Context, d *consoleData) {
	if s.cfg.Trail == nil {
		return
	}
	st, err := s.cfg.Trail.Status(ctx)
	if err != nil {
		s.log.Warn("issuer: console: trail status failed", "error", err)
		st = audit.TrailStatus{Problem: "The trail could not be read."}
	}
	d.Trail = &trailStatusView{st}
}

// browse reads the trail; a failure is shown on the page, not a 500.
func (s *Server) browse(ctx context.Context, d *consoleData, f audit.Filter, limit int) []audit.BrowseEntry {
	if s.cfg.Trail == nil {
		return nil
	}
	es, err := s.cfg.Trail.Browse(ctx, f, limit)
	if err != nil {
		s.log.Warn("issuer: console: reading the trail failed", "error", err)
		d.TrailError = "The trail could not be read."
		return nil
	}
	return es
}

// consolePage starts a console page: its data (title, navigation entry,
// the path its user picker submits to), the user whose things it shows
// (pickUser; a refusal or failure is answered here, and ok is false) and
// the trail's verification status.
func (s *Server) consolePage(w http.ResponseWriter, r *http.Request, cu *consoleUser, title, nav, path string, allowAll bool) (string, []*store.User, *consoleData, bool) {
	d := &consoleData{Title: title, Nav: nav, PickerPath: s.basePath() + pathConsole + path}
	want, users, ok, err := s.pickUser(r.Context(), r, cu, d, allowAll)
	if err != nil {
		s.consoleError(w, cu, err)
		return "", nil, nil, false
	}
	if !ok {
		s.consoleNotFound(w, cu)
		return "", nil, nil, false
	}
	s.trailStatus(r.Context(), d)
	return want, users, d, true
}

// pickUser is the user whose things a page shows: the person, or for an
// operator the ?user= one ("" for everyone). ok is false when the user
// asked for does not exist or is not the person's to see.
func (s *Server) pickUser(ctx context.Context, r *http.Request, cu *consoleUser, d *consoleData, allowAll bool) (string, []*store.User, bool, error) {
	want := r.URL.Query().Get("user")
	if !cu.operator {
		if want != "" && want != cu.user.ID {
			return "", nil, false, nil
		}
		return cu.user.ID, []*store.User{cu.user}, true, nil
	}
	users, err := s.store.ListUsers(ctx)
	if err != nil {
		return "", nil, false, err
	}
	d.ShowPicker = true
	if !allowAll && want == "" {
		want = cu.user.ID
	}
	var picked []*store.User
	for _, u := range users {
		sel := u.ID == want
		d.UserPicker = append(d.UserPicker, userOption{ID: u.ID, Name: u.Name, Selected: sel})
		if want == "" || sel {
			picked = append(picked, u)
		}
	}
	if want != "" && len(picked) == 0 {
		return "", nil, false, nil
	}
	d.PickedUser = want
	return want, picked, true, nil
}

// agentStatus is what a page says of an agent's state.
func agentStatus(a *store.Agent, at time.Time) string {
	switch {
	case !a.RevokedAt.IsZero():
		return "revoked"
	case !at.Before(a.ExpiresAt):
		return "expired"
	}
	return "active"
}

// constraintLines renders constraints as "field: values", from their JSON
// form so a constraint added later shows without a change here.
func constraintLines(a *store.Agent) []string {
	if a.Constraints.IsZero() {
		return nil
	}
	b, err := json.Marshal(a.Constraints)
	if err != nil {
		return []string{"(unreadable)"}
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil {
		return []string{"(unreadable)"}
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []string
	for _, k := range keys {
		var list []string
		v := string(m[k])
		if json.Unmarshal(m[k], &list) == nil {
			v = strings.Join(list, ", ")
		} else {
			var str string
			if json.Unmarshal(m[k], &str) == nil {
				v = str
			}
		}
		out = append(out, k+": "+v)
	}
	return out
}

func (s *Server) agentURL(id string) string {
	return s.basePath() + pathConsole + "/agents/" + url.PathEscape(id)
}

func (s *Server) viewAgent(a *store.Agent, at time.Time, owners map[string]*store.User) *agentNode {
	n := &agentNode{
		ID: a.ID, Name: a.Name, URL: s.agentURL(a.ID), Owner: a.Owner, Parent: a.Parent,
		Scopes: a.Scopes, Constraints: constraintLines(a), Credential: "client secret",
		Status: agentStatus(a, at), Created: a.CreatedAt, Expires: a.ExpiresAt, Grant: a.Chain[len(a.Chain)-1],
	}
	if u := owners[a.Owner]; u != nil {
		n.OwnerName = u.Name
		if !u.RevokedAt.IsZero() && n.Status == "active" {
			// Revoking a user cuts every token acting for them, the
			// agents' included, and the issuer mints them no more.
			n.Status = "revoked"
		}
	}
	if a.PublicKey != nil {
		n.Credential = "key (private_key_jwt)"
	}
	return n
}

// forest builds the delegation trees of a list of agents (one user's).
func (s *Server) forest(agents []*store.Agent, at time.Time, owners map[string]*store.User, last map[string]time.Time) (roots []*agentNode, byID map[string]*agentNode) {
	byID = make(map[string]*agentNode, len(agents))
	for _, a := range agents {
		n := s.viewAgent(a, at, owners)
		n.LastUse = last[a.ID]
		byID[a.ID] = n
	}
	for _, a := range agents {
		n := byID[a.ID]
		if p := byID[a.Parent]; p != nil {
			p.Children = append(p.Children, n)
		} else {
			roots = append(roots, n)
		}
	}
	return roots, byID
}

// lastUse maps agent and client ids to the time of their newest request
// in the trail (one read of recent entries of the user, or everyone's).
func (s *Server) lastUse(ctx context.Context, d *consoleData, sub string) map[string]time.Time {
	out := map[string]time.Time{}
	for _, e := range s.browse(ctx, d, audit.Filter{Sub: sub, Kinds: []audit.Kind{audit.KindDecision}}, consoleRecentScan) {
		r := &e.Decision
		for _, id := range append([]string{r.Actor, r.ClientID}, r.Agents...) {
			if id != "" && out[id].Before(r.Time) {
				out[id] = r.Time
			}
		}
	}
	return out
}

func userNames(users []*store.User) map[string]string {
	m := make(map[string]string, len(users))
	for _, u := range users {
		m[u.ID] = u.Name
	}
	return m
}

func usersByID(users []*store.User) map[string]*store.User {
	m := make(map[string]*store.User, len(users))
	for _, u := range users {
		m[u.ID] = u
	}
	return m
}

// consoleAgents is the agents page: each user's delegation trees.
func (s *Server) consoleAgents(w http.ResponseWriter, r *http.Request, cu *consoleUser) {
	ctx := r.Context()
	want, users, d, ok := s.consolePage(w, r, cu, "Agents", "agents", "/agents", true)
	if !ok {
		return
	}
	last := s.lastUse(ctx, d, want)
	at := now()
	owners := usersByID(users)
	for _, u := range users {
		agents, err := s.store.ListAgents(ctx, u.ID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			s.consoleError(w, cu, err)
			return
		}
		roots, _ := s.forest(agents, at, owners, last)
		if len(roots) == 0 && cu.operator && want == "" {
			continue // the operator's overview of everyone lists users with agents
		}
		d.Trees = append(d.Trees, userTree{User: u.Name, ID: u.ID, Roots: roots})
	}
	d.Notice = noticeOf(r)
	s.consoleRender(w, http.StatusOK, "console_agents.html", cu, d)
}

// noticeOf turns a redirect's ?done= into a sentence (fixed texts only:
// nothing from the query reaches the page).
func noticeOf(r *http.Request) string {
	switch r.URL.Query().Get("done") {
	case "revoked":
		return "Revoked. Every token of the agent and of everything below it is now refused by the gateways."
	case "consent-revoked":
		return "Consent revoked. The application must ask again, and its tokens are refused by the gateways."
	}
	return ""
}

// ownAgent loads the agent of a URL when the person may see it; else it
// has answered 404.
func (s *Server) ownAgent(w http.ResponseWriter, r *http.Request, cu *consoleUser, id string) (*store.Agent, bool) {
	if !strings.HasPrefix(id, token.PrefixAgent) || !validIDChars(id) || len(id) > maxIDLen {
		s.consoleNotFound(w, cu)
		return nil, false
	}
	a, err := s.store.GetAgent(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !cu.sees(a.Owner)) {
		s.consoleNotFound(w, cu)
		return nil, false
	}
	if err != nil {
		s.consoleError(w, cu, err)
		return nil, false
	}
	return a, true
}

// subtree loads an agent's tree of descendants (the agents of its owner
// below it).
func (s *Server) subtree(ctx context.Context, a *store.Agent, at time.Time, owners map[string]*store.User, last map[string]time.Time) (*agentNode, error) {
	agents, err := s.store.ListAgents(ctx, a.Owner)
	if err != nil {
		return nil, err
	}
	_, byID := s.forest(agents, at, owners, last)
	n := byID[a.ID]
	if n == nil {
		return nil, store.ErrNotFound
	}
	return n, nil
}

func (s *Server) owners(ctx context.Context, ids ...string) map[string]*store.User {
	m := map[string]*store.User{}
	for _, id := range ids {
		if u, err := s.store.GetUser(ctx, id); err == nil {
			m[id] = u
		}
	}
	return m
}

// agentPage starts the page of the agent the URL names (ownAgent: a
// refusal is answered and ok is false): its data titled title + its name,
// the trail status, and its subtree (with last use from the trail when
// lastUse).
func (s *Server) agentPage(w http.ResponseWriter, r *http.Request, cu *consoleUser, title string, lastUse bool) (*store.Agent, *agentNode, *consoleData, bool) {
	ctx := r.Context()
	a, ok := s.ownAgent(w, r, cu, r.PathValue("id"))
	if !ok {
		return nil, nil, nil, false
	}
	d := &consoleData{Title: title + a.Name, Nav: "agents"}
	s.trailStatus(ctx, d)
	var last map[string]time.Time
	if lastUse {
		last = s.lastUse(ctx, d, a.Owner)
	}
	n, err := s.subtree(ctx, a, now(), s.owners(ctx, a.Owner), last)
	if err != nil {
		s.consoleError(w, cu, err)
		return nil, nil, nil, false
	}
	d.Agent = n
	return a, n, d, true
}

// consoleAgent is an agent's page: details, subtree, recent trail, revoke.
func (s *Server) consoleAgent(w http.ResponseWriter, r *http.Request, cu *consoleUser) {
	ctx := r.Context()
	a, n, d, ok := s.agentPage(w, r, cu, "Agent ", true)
	if !ok {
		return
	}
	for _, id := range a.Agents[:len(a.Agents)-1] {
		if p, err := s.store.GetAgent(ctx, id); err == nil {
			d.Parents = append(d.Parents, crumb{Name: p.Name, URL: s.agentURL(p.ID)})
		}
	}
	names := s.namesFor(ctx, []*store.Agent{a})
	for _, e := range s.browse(ctx, d, audit.Filter{Agent: a.ID, Sub: a.Owner}, consoleAgentTrail) {
		d.Entries = append(d.Entries, s.viewEntry(&e, names, cu))
	}
	if n.Status == "active" {
		d.RevokeURL = s.agentURL(a.ID) + "/revoke"
	}
	s.consoleRender(w, http.StatusOK, "console_agent.html", cu, d)
}

// cascade lists what revoking n stops: n, every descendant, and their
// grants that still hold.
func cascade(n *agentNode, out []cascadeItem) []cascadeItem {
	if n.Status == "active" {
		out = append(out, cascadeItem{Kind: "agent", ID: n.ID, Name: n.Name, URL: n.URL, Status: n.Status},
			cascadeItem{Kind: "grant", ID: n.Grant, Name: "delegation to " + n.Name, Status: n.Status})
	}
	for _, c := range n.Children {
		out = cascade(c, out)
	}
	return out
}

// consoleRevokePreview shows what revoking an agent will stop, with the
// form that confirms it.
func (s *Server) consoleRevokePreview(w http.ResponseWriter, r *http.Request, cu *consoleUser) {
	a, n, d, ok := s.agentPage(w, r, cu, "Revoke ", false)
	if !ok {
		return
	}
	d.Cascade = cascade(n, nil)
	if len(d.Cascade) == 0 {
		d.Notice = "This agent is already " + n.Status + ": there is nothing left to revoke."
	} else {
		d.RevokeURL, d.RevokeCSRF = s.agentURL(a.ID)+"/revoke", cu.token("revoke-agent "+a.ID)
	}
	s.consoleRender(w, http.StatusOK, "console_revoke.html", cu, d)
}

// consoleRevoke revokes an agent and its subtree (manage.go's revokeAgent,
// the admin API's path), then shows the tree.
func (s *Server) consoleRevoke(w http.ResponseWriter, r *http.Request, cu *consoleUser) {
	id := r.PathValue("id")
	if _, ok := s.checkCSRF(w, r, cu, "revoke-agent "+id); !ok {
		return
	}
	a, ok := s.ownAgent(w, r, cu, id)
	if !ok {
		return
	}
	out, err := s.revokeAgent(r.Context(), a.ID)
	if err != nil {
		s.consoleError(w, cu, err)
		return
	}
	s.log.Info("issuer: agent revoked from the console", "agent", a.ID, "by", cu.user.ID, "ids", len(out.Revoked))
	to := s.basePath() + pathConsole + "/agents?done=revoked"
	if cu.operator {
		to += "&user=" + url.QueryEscape(a.Owner)
	}
	pageRedirectConsole(w, to)
}

func pageRedirectConsole(w http.ResponseWriter, to string) {
	setConsoleHeaders(w.Header())
	w.Header().Set("Location", to)
	w.WriteHeader(http.StatusSeeOther)
}

// consoleClients lists the OAuth clients the user consented to.
func (s *Server) consoleClients(w http.ResponseWriter, r *http.Request, cu *consoleUser) {
	ctx := r.Context()
	want, users, d, ok := s.consolePage(w, r, cu, "Applications", "clients", "/clients", false)
	if !ok {
		return
	}
	last := s.lastUse(ctx, d, want)
	for _, u := range users {
		list, err := s.listConsents(ctx, u.ID)
		if err != nil {
			s.consoleError(w, cu, err)
			return
		}
		for _, c := range list.Consents {
			row := consentRow{Grant: c.Grant, ClientID: c.ClientID, Scopes: c.Scopes, Audience: c.Audience, Via: c.Via,
				Created: c.CreatedAt, Expires: c.ExpiresAt, LastUse: last[c.ClientID],
				CSRF:   cu.token("revoke-consent " + c.Grant),
				Action: s.basePath() + pathConsole + "/clients/" + url.PathEscape(c.Grant) + "/revoke",
			}
			s.nameClient(ctx, &row)
			d.Consents = append(d.Consents, row)
		}
	}
	d.Notice = noticeOf(r)
	s.consoleRender(w, http.StatusOK, "console_clients.html", cu, d)
}

// nameClient names a consent's client without fetching anything: a
// registered client by its stored name, a metadata-document client by
// its URL's host (the page must not make the issuer fetch documents).
func (s *Server) nameClient(ctx context.Context, row *consentRow) {
	if strings.Contains(row.ClientID, "://") {
		row.Source = sourceDocument
		row.ClientName = row.ClientID
		if u, err := url.Parse(row.ClientID); err == nil {
			row.ClientName = u.Host
		}
		return
	}
	row.Source, row.ClientName = sourceSelf, row.ClientID
	if c, err := s.store.GetClient(ctx, row.ClientID); err == nil {
		v := viewClient(c)
		row.ClientName, row.Source = v.Name, v.Source
	}
}

// consoleRevokeConsent revokes one consent (manage.go's revokeConsent,
// the admin API's path).
func (s *Server) consoleRevokeConsent(w http.ResponseWriter, r *http.Request, cu *consoleUser) {
	grant := r.PathValue("grant")
	if _, ok := s.checkCSRF(w, r, cu, "revoke-consent "+grant); !ok {
		return
	}
	ctx := r.Context()
	g, err := s.store.GetGrant(ctx, grant)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !cu.sees(g.User)) {
		s.consoleNotFound(w, cu)
		return
	}
	if err != nil {
		s.consoleError(w, cu, err)
		return
	}
	if _, err := s.revokeConsent(ctx, g.User, grant); err != nil {
		var ae *admin.Error
		if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
			s.consoleNotFound(w, cu)
			return
		}
		s.consoleError(w, cu, err)
		return
	}
	to := s.basePath() + pathConsole + "/clients?done=consent-revoked"
	if cu.operator {
		to += "&user=" + url.QueryEscape(g.User)
	}
	pageRedirectConsole(w, to)
}

// consoleLogout ends the session.
func (s *Server) consoleLogout(w http.ResponseWriter, r *http.Request, cu *consoleUser) {
	if _, ok := s.checkCSRF(w, r, cu, "logout"); !ok {
		return
	}
	if err := s.store.DeleteSession(r.Context(), cu.sess.Hash); err != nil && !errors.Is(err, store.ErrNotFound) {
		s.consoleError(w, cu, err)
		return
	}
	s.setCookie(w, sessionCookie, "", -1, http.SameSiteLaxMode)
	pageRedirectConsole(w, s.basePath()+pathLogin+"?return="+url.QueryEscape(s.basePath()+pathConsole+"/"))
}
