package cli

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/kavachgate/kavach/admin"
)

// Tables for people; --json gives scripts the admin API's JSON.

func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

// cell makes a value safe for a terminal and a table: a name that holds
// a control character (an escape sequence, a tab, a newline) is shown
// quoted, so it can neither move the cursor nor break the columns.
func cell(s string) string {
	if s == "" {
		return "-"
	}
	if strings.IndexFunc(s, func(r rune) bool { return unicode.IsControl(r) || r == unicode.ReplacementChar }) >= 0 {
		return strconv.Quote(s)
	}
	return s
}

func cells(l []string, sep string) string {
	if len(l) == 0 {
		return "-"
	}
	out := make([]string, len(l))
	for i, s := range l {
		out[i] = cell(s)
	}
	return strings.Join(out, sep)
}

func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// state is "active", "revoked" or "expired".
func state(revoked *time.Time, expires time.Time, now time.Time) string {
	switch {
	case revoked != nil:
		return "revoked"
	case !expires.IsZero() && !now.Before(expires):
		return "expired"
	}
	return "active"
}

func userTable(w io.Writer, users []*admin.User) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "ID\tNAME\tSTATUS\tCREATED\tENTITLEMENTS")
	for _, u := range users {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", cell(u.ID), cell(u.Name), state(u.RevokedAt, time.Time{}, time.Now()), when(u.CreatedAt), entitlementsCell(u.Entitlements))
	}
	return tw.Flush()
}

// userDetail is `user show`: one row per field, one per entitlement
// resource and one per IdP account.
func userDetail(w io.Writer, u *admin.User) error {
	tw := newTable(w)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	row("ID", cell(u.ID))
	row("Name", cell(u.Name))
	row("Status", state(u.RevokedAt, time.Time{}, time.Now()))
	row("Created", when(u.CreatedAt))
	if u.RevokedAt != nil {
		row("Revoked", when(*u.RevokedAt))
	}
	src := cell(u.EntitlementsSource)
	switch u.EntitlementsSource {
	case "idp":
		src = "idp (entitle rules at the last sign-in)"
	case "admin":
		src = "admin (set through the admin API)"
	}
	if u.EntitlementsAt != nil {
		src += ", " + when(*u.EntitlementsAt)
	}
	row("Entitlements", src)
	if len(u.Entitlements) == 0 {
		row("", "-")
	}
	for _, res := range slices.Sorted(maps.Keys(u.Entitlements)) {
		row("  "+cell(res), cells(u.Entitlements[res], " "))
	}
	for _, l := range u.IdPLinks {
		row("IdP", cell(l.Provider)+" "+cell(l.Issuer)+" sub="+cell(l.Subject))
		row("  Email", cell(l.Email))
		row("  Groups", cells(l.Groups, " "))
		row("  Last sign-in", when(l.SeenAt))
	}
	return tw.Flush()
}

// entitlementsCell is "resource=scope,scope resource=…", resources sorted.
func entitlementsCell(ent admin.Entitlements) string {
	if len(ent) == 0 {
		return "-"
	}
	var parts []string
	for _, res := range slices.Sorted(maps.Keys(ent)) {
		parts = append(parts, cell(res)+"="+cells(ent[res], ","))
	}
	return strings.Join(parts, " ")
}

func agentTable(w io.Writer, agents []*admin.Agent) error {
	tw := newTable(w)
	now := time.Now()
	fmt.Fprintln(tw, "ID\tNAME\tOWNER\tPARENT\tSTATUS\tEXPIRES\tSCOPES")
	for _, a := range agents {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", cell(a.ID), cell(a.Name), cell(a.Owner), cell(a.Parent),
			state(a.RevokedAt, a.ExpiresAt, now), when(a.ExpiresAt), cells(a.Scopes, " "))
	}
	return tw.Flush()
}

// agentDetail shows one agent, a field a line.
func agentDetail(w io.Writer, a *admin.Agent) error {
	tw := newTable(w)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	row("ID", cell(a.ID))
	row("Name", cell(a.Name))
	row("Owner", cell(a.Owner))
	row("Parent", cell(a.Parent))
	row("Status", state(a.RevokedAt, a.ExpiresAt, time.Now()))
	row("Scopes", cells(a.Scopes, " "))
	row("Constraints", constraintsCell(a))
	row("Chain", cells(a.Chain, " → "))
	row("Agents", cells(a.Agents, " → "))
	row("Children", cells(a.Children, " "))
	row("Auth", cell(a.Auth))
	row("Created", when(a.CreatedAt))
	row("Expires", when(a.ExpiresAt))
	if a.RevokedAt != nil {
		row("Revoked", when(*a.RevokedAt))
	}
	return tw.Flush()
}

func constraintsCell(a *admin.Agent) string {
	c := a.Constraints
	if c == nil || c.IsZero() {
		return "-"
	}
	var parts []string
	add := func(name string, l []string) {
		if len(l) > 0 {
			parts = append(parts, name+"="+cells(l, ","))
		}
	}
	add("hosts", c.Hosts)
	var cidrs []string
	for _, p := range c.CIDRs {
		cidrs = append(cidrs, p.String())
	}
	add("cidrs", cidrs)
	add("methods", c.Methods)
	add("paths", c.Paths)
	if c.MaxBody > 0 {
		parts = append(parts, fmt.Sprintf("max_body=%d", c.MaxBody))
	}
	if c.Audit != "" {
		parts = append(parts, "audit="+cell(string(c.Audit)))
	}
	if c.Rate != "" {
		parts = append(parts, "rate="+cell(string(c.Rate)))
	}
	return strings.Join(parts, " ")
}
