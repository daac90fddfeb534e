package audit

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"
)

// Filter selects records for Query. Zero fields select everything; set
// fields must all match. An outcome record is also selected when the
// decision record of its request was (see Query), so the filters on what
// only decisions say (agent, tool, decision…) keep each request's result.
type Filter struct {
	// Agent matches records whose actor, client_id or any of agents is it,
	// by id or, with Names, by name.
	Agent string
	// Sub matches records of the user the chain acts for, by id or, with
	// Names, by name.
	Sub string
	// Roots matches records whose chain begins with one of these grants.
	// With Sub, a record matches by either: the requests made on behalf
	// of a user are those naming them as sub, and those whose chain is
	// rooted in one of their grants.
	Roots []string
	// Tool matches records of MCP requests for this tool, resource or
	// prompt name.
	Tool string
	// RequestID matches the records of one request (decision and outcome).
	RequestID string
	// Chain matches records whose chain holds this grant id.
	Chain string
	// Since matches records at or after it.
	Since time.Time
	// Until matches records at or before it.
	Until time.Time
	// Decision matches decision records (and junk summaries, which are
	// deny) with this decision.
	Decision Decision
	// Kinds, when not empty, matches only these kinds.
	Kinds []Kind
	// Names lets Agent and Sub name principals by name as well as by id.
	Names *Names
	// Status matches entries of Browse by the HTTP status their request
	// got (the outcome's, or a denial's): a code ("403") or a class
	// ("4xx"); see CheckStatusFilter. Query does not read it: an outcome
	// comes after the decision it answers.
	Status string
}

// Names are the names people know principals by, by id: agents (agt_…)
// and users (usr_…). The CLI reads them from the issuer's admin API; a
// query shows them instead of ids, and Filter matches by them. A nil
// *Names knows no name: ids are shown.
type Names struct {
	Agents map[string]string
	Users  map[string]string
}

func (n *Names) agent(id string) string {
	if n != nil {
		if name := n.Agents[id]; name != "" {
			return name
		}
	}
	return id
}

func (n *Names) user(id string) string {
	if n != nil {
		if name := n.Users[id]; name != "" {
			return name
		}
	}
	return id
}

// Entry is one record Query yields.
type Entry struct {
	Record Record
	// Line is the line as read, without '\n'; valid until the next
	// iteration.
	Line   []byte
	Source string
	LineNo int
}

// ErrPartialLine is yielded (wrapped, naming the place) when a file of the
// trail ends in an incomplete line: a write in progress, or interrupted by
// a crash. What came before stands; a consumer that goes on gets the next
// file's records (Query does not verify: run Verify).
var ErrPartialLine = errors.New("audit: partial last line")

// maxJoin bounds the request ids Query remembers to join outcomes to the
// decisions that matched.
const maxJoin = 1 << 20

// Query yields the records of files (oldest first, as Files returns them)
// that match f. An outcome is also yielded when the decision with its
// request_id matched, so a query by agent shows each request's result even
// though outcomes do not repeat the chain. Query decodes strictly but does
// not verify the chain: run Verify for that. A line that is not a record
// ends the iteration with an error.
func Query(files []string, f Filter) iter.Seq2[*Entry, error] {
	return func(yield func(*Entry, error) bool) {
		sel := newSelector(f)
		br := bufio.NewReaderSize(nil, MaxLineBytes)
		var e Entry
		for _, name := range files {
			fh, err := os.Open(name)
			if err != nil {
				yield(nil, fmt.Errorf("audit: %w", err))
				return
			}
			br.Reset(fh)
			e.Source, e.LineNo = name, 0
			for {
				chunk, err := br.ReadSlice('\n')
				if err != nil {
					fh.Close()
					switch {
					case errors.Is(err, io.EOF) && len(chunk) == 0:
					case errors.Is(err, io.EOF):
						// A writer in the middle of a write, or one that
						// died in it (the default trail has a file per
						// process): the consumer may go on to the next file.
						if !yield(nil, fmt.Errorf("%w: %s:%d (%d bytes)", ErrPartialLine, name, e.LineNo+1, len(chunk))) {
							return
						}
					case errors.Is(err, bufio.ErrBufferFull):
						yield(nil, fmt.Errorf("audit: %s:%d: line longer than %d bytes", name, e.LineNo+1, MaxLineBytes))
						return
					default:
						yield(nil, fmt.Errorf("audit: read %s: %w", name, err))
						return
					}
					break
				}
				e.LineNo++
				e.Line = chunk[:len(chunk)-1]
				e.Record = Record{}
				var v view
				if err := decodeLine(e.Line, &v, &e.Record); err != nil {
					fh.Close()
					yield(nil, fmt.Errorf("audit: %s:%d: not a record: %w", name, e.LineNo, err))
					return
				}
				if sel.keep(&e.Record) && !yield(&e, nil) {
					fh.Close()
					return
				}
			}
		}
	}
}

// selector applies a Filter to records in trail order, joining outcomes
// to the decisions that matched (see Query).
type selector struct {
	f        Filter
	joining  bool
	requests map[string]struct{}
}

func newSelector(f Filter) *selector {
	joining := f.Agent != "" || f.Sub != "" || len(f.Roots) > 0 || f.Tool != "" || f.Chain != "" || f.Decision != ""
	return &selector{f: f, joining: joining, requests: make(map[string]struct{})}
}

// keep reports whether r, the next record, is selected.
func (s *selector) keep(r *Record) bool {
	ok := s.f.match(r)
	if !s.joining {
		return ok
	}
	if !ok && r.Kind == KindOutcome && r.RequestID != "" && s.f.timeAndKind(r) {
		_, ok = s.requests[r.RequestID]
	}
	if ok && r.Kind == KindOutcome {
		delete(s.requests, r.RequestID)
	}
	if ok && r.Kind == KindDecision && r.RequestID != "" {
		if len(s.requests) >= maxJoin {
			clear(s.requests)
		}
		s.requests[r.RequestID] = struct{}{}
	}
	return ok
}

// timeAndKind is the part of the filter an outcome joined to its
// decision must still meet.
func (f *Filter) timeAndKind(r *Record) bool {
	return (f.Since.IsZero() || !r.Time.Before(f.Since)) && (f.Until.IsZero() || !r.Time.After(f.Until)) &&
		(len(f.Kinds) == 0 || slices.Contains(f.Kinds, r.Kind)) &&
		(f.RequestID == "" || r.RequestID == f.RequestID)
}

func (f *Filter) match(r *Record) bool {
	switch {
	case !f.timeAndKind(r):
		return false
	case f.Decision != "" && r.Decision != f.Decision:
		return false
	case f.Agent != "" && !f.isAgent(r.Actor) && !f.isAgent(r.ClientID) && !slices.ContainsFunc(r.Agents, f.isAgent):
		return false
	case (f.Sub != "" || len(f.Roots) > 0) && !f.onBehalf(r):
		return false
	case f.Tool != "" && r.Tool != f.Tool:
		return false
	case f.Chain != "" && !slices.Contains(r.Chain, f.Chain):
		return false
	}
	return true
}

// isAgent reports whether id is the filter's agent, by id or by name.
func (f *Filter) isAgent(id string) bool {
	return id != "" && (id == f.Agent || f.Names.agent(id) == f.Agent)
}

// Printer prints query results (the CLI's `kavach audit query`).
type Printer interface {
	Print(e *Entry) error
	// Flush writes what is buffered.
	Flush() error
}

// NewJSONPrinter prints each record's line exactly as it is in the trail
// (JSON lines, hash included).
func NewJSONPrinter(w io.Writer) Printer { return &jsonPrinter{w: bufio.NewWriter(w)} }

type jsonPrinter struct{ w *bufio.Writer }

func (p *jsonPrinter) Print(e *Entry) error {
	p.w.Write(e.Line)
	return p.w.WriteByte('\n')
}

func (p *jsonPrinter) Flush() error { return p.w.Flush() }

// NewTablePrinter prints a narrow table for people, one row per record:
//
//	TIME                  DECISION  WHO                                                WHAT                   STATUS  REASON
//	2026-03-01T12:00:00Z  allow     reviewer, child of orchestrator, acting for alice  tools/call read_file   -       -
//	2026-03-01T12:00:00Z  outcome   reviewer, child of orchestrator, acting for alice  tools/call read_file   200     512 B, 3.1 ms
//	2026-03-01T12:00:02Z  deny      reviewer, child of orchestrator, acting for alice  tools/call write_file  403     insufficient_scope: repository:write
//
// DECISION is allow or deny for decisions and junk summaries ("deny (not
// enforced)" for a report_only route's denial), else the
// record's kind. WHO is the chain, current actor first, and the user it
// acts for, by the names names knows (ids otherwise; names may be nil).
// WHAT is the MCP method and tool, or the HTTP method and path; an outcome
// row repeats its decision's when the decision was printed before it.
// REASON says why a request was denied; for an outcome, the bytes and the
// time the response took. Values from the trail are escaped: control and
// other non-graphic characters never reach the terminal raw.
func NewTablePrinter(w io.Writer, names *Names) Printer {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tDECISION\tWHO\tWHAT\tSTATUS\tREASON")
	return &tablePrinter{w: tw, names: names, requests: make(map[string]request)}
}

// maxRequests bounds what the table printer remembers of decisions, to
// fill in their outcome rows.
const maxRequests = 1 << 16

type tablePrinter struct {
	w        *tabwriter.Writer
	names    *Names
	requests map[string]request // request_id → its decision's row
}

// request is what an outcome row takes from its decision's.
type request struct{ who, what string }

func (p *tablePrinter) Print(e *Entry) error {
	r := &e.Record
	who, what := p.names.Who(r), what(r)
	switch {
	case r.Kind == KindDecision && r.RequestID != "":
		if len(p.requests) >= maxRequests {
			clear(p.requests)
		}
		p.requests[r.RequestID] = request{who, what}
	case r.Kind == KindOutcome && r.RequestID != "":
		if d, ok := p.requests[r.RequestID]; ok {
			// The decision names the whole chain; outcomes written before
			// they named the user lack it.
			delete(p.requests, r.RequestID)
			who, what = d.who, d.what
		}
	}
	decision := string(r.Decision)
	if decision == "" {
		decision = string(r.Kind)
	}
	if r.Unenforced {
		decision += " (not enforced)" // report_only: forwarded all the same
	}
	status := ""
	if r.Status != 0 {
		status = strconv.Itoa(r.Status)
	}
	_, err := fmt.Fprintf(p.w, "%s\t%s\t%s\t%s\t%s\t%s\n",
		r.Time.UTC().Format(time.RFC3339), decision, orDash(who), orDash(what), orDash(status), orDash(reason(r)))
	return err
}

func (p *tablePrinter) Flush() error { return p.w.Flush() }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// Who describes a record's principal the way DESIGN.md §10 tells it:
// "agt_123, child of agt_89, acting for usr_alice" (current actor first),
// by ids. Values are escaped for a terminal.
func Who(r *Record) string { return (*Names)(nil).Who(r) }

// Who is the package's Who with the names n knows in place of ids:
// "reviewer, child of orchestrator, acting for alice".
func (n *Names) Who(r *Record) string {
	var b strings.Builder
	switch {
	case len(r.Agents) > 0:
		for i := len(r.Agents) - 1; i >= 0; i-- {
			if i < len(r.Agents)-1 {
				b.WriteString(", child of ")
			}
			b.WriteString(clean(n.agent(r.Agents[i])))
		}
	case r.Actor != "":
		b.WriteString(clean(n.agent(r.Actor)))
	case r.ClientID != "":
		b.WriteString(clean(n.agent(r.ClientID)))
	}
	if r.Sub != "" {
		if b.Len() > 0 {
			b.WriteString(", acting for ")
		}
		b.WriteString(clean(n.user(r.Sub)))
	}
	return b.String()
}

// what is what a record's request asked, or what an event concerned.
func what(r *Record) string {
	var parts []string
	switch {
	case r.MCPMethod != "":
		parts = append(parts, clean(r.MCPMethod))
		if r.Tool != "" {
			parts = append(parts, clean(r.Tool))
		}
	case r.Method != "" || r.Path != "":
		parts = append(parts, strings.TrimSpace(clean(r.Method)+" "+clean(r.Path)))
	}
	if r.JTI != "" && r.Kind != KindDecision && r.Kind != KindOutcome {
		parts = append(parts, "token "+clean(r.JTI))
	}
	if len(r.IDs) > 0 {
		ids := r.IDs
		more := ""
		if len(ids) > 3 {
			ids, more = ids[:3], fmt.Sprintf(" +%d more", len(r.IDs)-3)
		}
		cleaned := make([]string, len(ids))
		for i, id := range ids {
			cleaned[i] = clean(id)
		}
		parts = append(parts, "ids "+strings.Join(cleaned, ",")+more)
	}
	switch r.Kind {
	case KindCheckpoint:
		parts = append(parts, fmt.Sprintf("signs seq %d", r.Seq-1))
	case KindSummary:
		if r.Count == 1 {
			parts = append(parts, "1 request")
		} else {
			parts = append(parts, fmt.Sprintf("%d requests", r.Count))
		}
	}
	return strings.Join(parts, " ")
}

// reason is why (a denial, a summary, an issuer event), or for an outcome
// the size and time of the response. An allowed decision has none: its
// reason, "allowed", repeats its decision.
func reason(r *Record) string {
	switch {
	case r.Kind == KindOutcome:
		var parts []string
		if r.Bytes > 0 {
			parts = append(parts, fmt.Sprintf("%d B", r.Bytes))
		}
		if r.Duration > 0 {
			parts = append(parts, strconv.FormatFloat(float64(r.Duration)/float64(time.Millisecond), 'f', -1, 64)+" ms")
		}
		return strings.Join(parts, ", ")
	case r.Kind == KindDecision && r.Decision == Allow:
		return ""
	}
	return clean(r.Reason)
}

// clean escapes what must not reach a terminal or break the table: tabs,
// control and other non-graphic characters.
func clean(s string) string {
	ok := true
	for _, c := range s {
		if c == '\t' || !unicode.IsGraphic(c) || c == utf8.RuneError {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	var b strings.Builder
	for _, c := range s {
		switch {
		case c == '\t' || c == utf8.RuneError || !unicode.IsGraphic(c):
			if c < 0x100 {
				fmt.Fprintf(&b, `\x%02x`, c)
			} else {
				fmt.Fprintf(&b, `\u%04x`, c)
			}
		default:
			b.WriteRune(c)
		}
	}
	return b.String()
}
