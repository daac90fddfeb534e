package issuer

import (
	"context"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/kavachgate/kavach/audit"
	"github.com/kavachgate/kavach/internal/svgchart"
	"github.com/kavachgate/kavach/issuer/store"
)

// The console's trail pages: the timeline and the overview (see
// console.go for the rules every console handler keeps).

// names are the names a trail page shows for ids: agents and users.
type names struct {
	agents map[string]*store.Agent
	users  map[string]string
}

// namesFor collects the names of the agents' owners' agents and users.
func (s *Server) namesFor(ctx context.Context, agents []*store.Agent) *names {
	n := &names{agents: map[string]*store.Agent{}, users: map[string]string{}}
	owners := map[string]bool{}
	for _, a := range agents {
		owners[a.Owner] = true
	}
	for o := range owners {
		list, err := s.store.ListAgents(ctx, o)
		if err != nil {
			continue
		}
		for _, a := range list {
			n.agents[a.ID] = a
		}
		for id, u := range s.owners(ctx, o) {
			n.users[id] = u.Name
		}
	}
	return n
}

// visibleNames are the names the person's pages show: everyone's for an
// operator (allNames), else those of the person's own agents.
func (s *Server) visibleNames(ctx context.Context, cu *consoleUser) (*names, error) {
	if cu.operator {
		return s.allNames(ctx)
	}
	return s.namesFor(ctx, []*store.Agent{{Owner: cu.user.ID}}), nil
}

// allNames is namesFor every agent and user (an operator's pages).
func (s *Server) allNames(ctx context.Context) (*names, error) {
	n := &names{agents: map[string]*store.Agent{}, users: map[string]string{}}
	agents, err := s.store.ListAgents(ctx, "")
	if err != nil {
		return nil, err
	}
	for _, a := range agents {
		n.agents[a.ID] = a
	}
	users, err := s.store.ListUsers(ctx)
	if err != nil {
		return nil, err
	}
	n.users = userNames(users)
	return n, nil
}

// viewEntry renders a trail entry: the chain as breadcrumbs, current actor
// first ("reviewer ← orchestrator ← alice"), each agent linked when the
// person may open it.
func (s *Server) viewEntry(e *audit.BrowseEntry, n *names, cu *consoleUser) entryView {
	r := &e.Decision
	v := entryView{Time: r.Time, Kind: string(r.Kind), Decision: string(r.Decision), Tool: r.Tool, Covered: e.Covered, IDs: r.IDs}
	switch {
	case r.MCPMethod != "":
		v.Request = r.MCPMethod
	case r.Method != "":
		v.Request = r.Method + " " + r.Path
	}
	if r.ArgsSHA256 != "" {
		v.Args = r.ArgsSHA256
		if len(v.Args) > 16 {
			v.Args = v.Args[:16] + "…"
		}
	}
	if r.Kind != audit.KindDecision || r.Decision != audit.Allow {
		v.Reason = reasonInWords(r.Reason)
	}
	if r.Kind != audit.KindDecision {
		v.Decision = ""
	}
	for i := len(r.Agents) - 1; i >= 0; i-- {
		id := r.Agents[i]
		c := crumb{Name: id}
		if a := n.agents[id]; a != nil {
			c.Name = a.Name
			if cu.sees(a.Owner) {
				c.URL = s.agentURL(id)
			}
		}
		v.Chain = append(v.Chain, c)
	}
	if r.Sub != "" {
		name := n.users[r.Sub]
		if name == "" {
			name = r.Sub
		}
		v.Chain = append(v.Chain, crumb{Name: name})
	}
	v.Status = r.Status
	if e.Outcome != nil {
		v.Status = e.Outcome.Status
		if e.Outcome.Duration > 0 {
			v.Duration = e.Outcome.Duration.Round(100 * time.Microsecond).String()
		}
	}
	return v
}

// reasonInWords says a trail reason ("insufficient_scope: repository:write")
// as a person would.
func reasonInWords(reason string) string {
	outcome, why, _ := strings.Cut(reason, ": ")
	switch outcome {
	case "insufficient_scope":
		if why != "" && !strings.Contains(why, " ") {
			return "missing scope " + why
		}
		return "insufficient scope: " + why
	case "invalid_token":
		return "token refused: " + why
	case "revoked":
		return "revoked: " + why
	}
	return reason
}

// missingScope is the scope a denial needed, when exactly one would have
// allowed it.
func missingScope(r *audit.Record) string {
	outcome, why, _ := strings.Cut(r.Reason, ": ")
	if outcome == "insufficient_scope" && why != "" && !strings.ContainsAny(why, " ,") {
		return why
	}
	return ""
}

// consoleTrail is the timeline, newest first, filtered by a GET form.
func (s *Server) consoleTrail(w http.ResponseWriter, r *http.Request, cu *consoleUser) {
	ctx := r.Context()
	q := r.URL.Query()
	want, _, d, ok := s.consolePage(w, r, cu, "Trail", "trail", "/trail", true)
	if !ok {
		return
	}
	tf := trailFilter{Agent: q.Get("agent"), Tool: q.Get("tool"), Decision: q.Get("decision"), Status: q.Get("status"),
		Since: q.Get("since"), Until: q.Get("until"), User: want}
	cursor := q.Get("cursor")
	f := audit.Filter{Sub: want, Tool: tf.Tool, Status: strings.ToLower(strings.TrimSpace(tf.Status))}
	if len(tf.Tool) > 256 {
		s.consoleBadFilter(w, cu, d, tf, "The tool name is too long.")
		return
	}
	if tf.Agent != "" {
		a, ok := s.ownAgent(w, r, cu, tf.Agent)
		if !ok {
			return
		}
		f.Agent = a.ID
	}
	switch tf.Decision {
	case "":
	case "allow", "deny":
		f.Decision = audit.Decision(tf.Decision)
		f.Kinds = []audit.Kind{audit.KindDecision}
	default:
		s.consoleBadFilter(w, cu, d, tf, "Choose allow or deny.")
		return
	}
	if audit.CheckStatusFilter(f.Status) != nil {
		s.consoleBadFilter(w, cu, d, tf, "Status is a number such as 403, or a class such as 4xx.")
		return
	}
	for _, t := range []struct {
		v   string
		dst *time.Time
	}{{tf.Since, &f.Since}, {tf.Until, &f.Until}} {
		if t.v == "" {
			continue
		}
		at, err := parseWhen(t.v, now())
		if err != nil {
			s.consoleBadFilter(w, cu, d, tf, sentence(err.Error()))
			return
		}
		*t.dst = at
	}
	d.Filter = tf
	n, err := s.visibleNames(ctx, cu)
	if err != nil {
		s.consoleError(w, cu, err)
		return
	}
	for _, a := range n.agents {
		if cu.sees(a.Owner) && (want == "" || a.Owner == want) {
			d.AgentsOfPic = append(d.AgentsOfPic, userOption{ID: a.ID, Name: a.Name, Selected: a.ID == tf.Agent})
		}
	}
	sort.Slice(d.AgentsOfPic, func(i, j int) bool { return d.AgentsOfPic[i].Name < d.AgentsOfPic[j].Name })
	if want != "" {
		// On behalf of the user: sub names them, or the chain is rooted in
		// one of their agents' grants.
		f.Roots = rootGrants(n, want)
	}
	entries, next, err := s.trailPage(ctx, d, f, cursor)
	if errors.Is(err, audit.ErrBadCursor) {
		s.consoleBadFilter(w, cu, d, tf, "This page link is not valid any more: start again from the newest entries.")
		return
	}
	for _, e := range entries {
		d.Entries = append(d.Entries, s.viewEntry(&e, n, cu))
	}
	link := func(cursor string) string {
		v := url.Values{}
		for k, x := range map[string]string{"agent": tf.Agent, "tool": tf.Tool, "decision": tf.Decision, "status": tf.Status,
			"since": tf.Since, "until": tf.Until, "user": d.PickedUser, "cursor": cursor} {
			if x != "" {
				v.Set(k, x)
			}
		}
		return s.basePath() + pathConsole + "/trail?" + v.Encode()
	}
	if next != "" {
		d.NextPage = link(next)
	}
	if cursor != "" {
		d.PrevPage = link("")
	}
	s.consoleRender(w, http.StatusOK, "console_trail.html", cu, d)
}

// trailPage reads one page of the trail from cursor: by the Browser's
// cursor when it pages (every audit.OpenBrowser trail does), else the
// newest page only. A failure other than a bad cursor is shown on the
// page.
func (s *Server) trailPage(ctx context.Context, d *consoleData, f audit.Filter, cursor string) ([]audit.BrowseEntry, string, error) {
	pager, ok := s.cfg.Trail.(audit.Pager)
	if !ok {
		if cursor != "" {
			return nil, "", audit.ErrBadCursor
		}
		return s.browse(ctx, d, f, consolePageSize), "", nil
	}
	pg, err := pager.BrowsePage(ctx, f, consolePageSize, cursor)
	if errors.Is(err, audit.ErrBadCursor) {
		return nil, "", err
	}
	if err != nil {
		s.log.Warn("issuer: console: reading the trail failed", "error", err)
		d.TrailError = "The trail could not be read."
		return nil, "", nil
	}
	return pg.Entries, pg.Next, nil
}

// rootGrants are the root grants of a user's agent trees.
func rootGrants(n *names, user string) []string {
	var out []string
	for _, a := range n.agents {
		if a.Owner == user && a.Parent == "" && len(a.Chain) > 0 {
			out = append(out, a.Chain[0])
		}
	}
	sort.Strings(out)
	return out
}

func (s *Server) consoleBadFilter(w http.ResponseWriter, cu *consoleUser, d *consoleData, tf trailFilter, msg string) {
	d.Filter, d.Error = tf, msg
	s.consoleRender(w, http.StatusBadRequest, "console_trail.html", cu, d)
}

// sentence makes an error message a sentence for a page.
func sentence(msg string) string {
	if msg == "" {
		return msg
	}
	return strings.ToUpper(msg[:1]) + msg[1:] + "."
}

// parseWhen reads a time filter: a datetime-local value (UTC), RFC 3339,
// or a duration back from now ("1h", "30m").
func parseWhen(v string, at time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return at.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, v, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errors.New("times are like 2026-03-01T12:00 (UTC), or a span back from now such as 1h")
}

// consoleOverview is the console's home: counts of the last hour and day.
func (s *Server) consoleOverview(w http.ResponseWriter, r *http.Request, cu *consoleUser) {
	ctx := r.Context()
	want, _, d, ok := s.consolePage(w, r, cu, "Overview", "overview", "/", true)
	if !ok {
		return
	}
	window := r.URL.Query().Get("window")
	span := time.Hour
	switch window {
	case "", "hour":
		window = "hour"
	case "day":
		span = 24 * time.Hour
	default:
		s.consoleNotFound(w, cu)
		return
	}
	n, err := s.visibleNames(ctx, cu)
	if err != nil {
		s.consoleError(w, cu, err)
		return
	}
	ov := &overview{Window: window}
	byAgent, byTool, one := map[string]*countRow{}, map[string]*countRow{}, map[string]*countRow{}
	f := audit.Filter{Sub: want, Kinds: []audit.Kind{audit.KindDecision}, Since: now().Add(-span)}
	for _, e := range s.browse(ctx, d, f, consoleRecentScan) {
		rec := &e.Decision
		allow := rec.Decision == audit.Allow
		if allow {
			ov.Allowed++
		} else {
			ov.Denied++
		}
		count := func(m map[string]*countRow, key, label, url string) *countRow {
			c := m[key]
			if c == nil {
				c = &countRow{Label: label, URL: url}
				m[key] = c
			}
			if allow {
				c.Allow++
			} else {
				c.Deny++
			}
			return c
		}
		if rec.Actor != "" {
			label, link := rec.Actor, ""
			if a := n.agents[rec.Actor]; a != nil {
				label = a.Name
				if cu.sees(a.Owner) {
					link = s.agentURL(a.ID)
				}
			}
			count(byAgent, rec.Actor, label, link)
		}
		if rec.Tool != "" {
			count(byTool, rec.Tool, rec.Tool, "")
		}
		if ms := missingScope(rec); ms != "" && !allow {
			label := rec.Actor
			if a := n.agents[rec.Actor]; a != nil {
				label = a.Name
			}
			c := count(one, rec.Actor+"\x00"+rec.Tool+"\x00"+ms, label, "")
			c.MissingScope, c.Tool = ms, rec.Tool
		}
	}
	ov.ByAgent, ov.ByTool, ov.OneScope = sortedCounts(byAgent), sortedCounts(byTool), sortedCounts(one)
	ov.AgentChart = countChart("Requests per agent, last "+window, ov.ByAgent)
	ov.ToolChart = countChart("Requests per tool, last "+window, ov.ByTool)
	d.Overview = ov
	s.consoleRender(w, http.StatusOK, "console_overview.html", cu, d)
}

// countChart draws counts as stacked allowed/denied bars (at most the
// first consoleChartRows).
func countChart(title string, rows []countRow) template.HTML {
	if len(rows) == 0 {
		return ""
	}
	rows = rows[:min(len(rows), consoleChartRows)]
	labels := make([]string, len(rows))
	allow, deny := make([]int, len(rows)), make([]int, len(rows))
	for i, r := range rows {
		labels[i], allow[i], deny[i] = r.Label, r.Allow, r.Deny
	}
	return svgchart.Stacked(title, labels, []svgchart.Series{
		{Name: "allowed", Values: allow, Class: "allow"}, {Name: "denied", Values: deny, Class: "deny"}})
}

func sortedCounts(m map[string]*countRow) []countRow {
	out := make([]countRow, 0, len(m))
	for _, c := range m {
		out = append(out, *c)
	}
	sort.Slice(out, func(i, j int) bool {
		if a, b := out[i].Allow+out[i].Deny, out[j].Allow+out[j].Deny; a != b {
			return a > b
		}
		return out[i].Label < out[j].Label
	})
	return out
}
