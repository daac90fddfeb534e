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
// fields must all match.
type Filter struct {
	// Agent matches records whose actor, client_id or any of agents is it.
	Agent string
	// Chain matches records whose chain holds this grant id.
	Chain string
	// Since matches records at or after it.
	Since time.Time
	// Decision matches decision records (and junk summaries, which are
	// deny) with this decision.
	Decision Decision
	// Kinds, when not empty, matches only these kinds.
	Kinds []Kind
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

// ErrPartialLine is yielded (wrapped, naming the place) when the trail's
// last file ends in an incomplete line, an interrupted write. It is the
// last thing yielded; what came before stands.
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
		for i, name := range files {
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
					case errors.Is(err, io.EOF) && i == len(files)-1:
						yield(nil, fmt.Errorf("%w: %s:%d (%d bytes)", ErrPartialLine, name, e.LineNo+1, len(chunk)))
						return
					case errors.Is(err, io.EOF):
						yield(nil, fmt.Errorf("audit: %s:%d: the file ends in the middle of a line", name, e.LineNo+1))
						return
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
	return &selector{f: f, joining: f.Agent != "" || f.Chain != "" || f.Decision != "", requests: make(map[string]struct{})}
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

func (f *Filter) timeAndKind(r *Record) bool {
	return (f.Since.IsZero() || !r.Time.Before(f.Since)) && (len(f.Kinds) == 0 || slices.Contains(f.Kinds, r.Kind))
}

func (f *Filter) match(r *Record) bool {
	switch {
	case !f.timeAndKind(r):
		return false
	case f.Decision != "" && r.Decision != f.Decision:
		return false
	case f.Agent != "" && r.Actor != f.Agent && r.ClientID != f.Agent && !slices.Contains(r.Agents, f.Agent):
		return false
	case f.Chain != "" && !slices.Contains(r.Chain, f.Chain):
		return false
	}
	return true
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

// NewTablePrinter prints a table for people: time, kind, decision, who
// ("agt_123, child of agt_89, acting for usr_alice"), what was asked, and
// the result. Values from the trail are escaped: control and other
// non-graphic characters never reach the terminal raw.
func NewTablePrinter(w io.Writer) Printer {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tKIND\tDECISION\tWHO\tWHAT\tRESULT")
	return &tablePrinter{w: tw}
}

type tablePrinter struct{ w *tabwriter.Writer }

func (p *tablePrinter) Print(e *Entry) error {
	r := &e.Record
	_, err := fmt.Fprintf(p.w, "%s\t%s\t%s\t%s\t%s\t%s\n",
		r.Time.UTC().Format("2006-01-02T15:04:05.000Z"), r.Kind, orDash(string(r.Decision)),
		orDash(Who(r)), orDash(what(r)), orDash(result(r)))
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
// "agt_123, child of agt_89, acting for usr_alice" (current actor first).
// Values are escaped for a terminal.
func Who(r *Record) string {
	var b strings.Builder
	switch {
	case len(r.Agents) > 0:
		for i := len(r.Agents) - 1; i >= 0; i-- {
			if i < len(r.Agents)-1 {
				b.WriteString(", child of ")
			}
			b.WriteString(clean(r.Agents[i]))
		}
	case r.Actor != "":
		b.WriteString(clean(r.Actor))
	case r.ClientID != "":
		b.WriteString(clean(r.ClientID))
	}
	if r.Sub != "" {
		if b.Len() > 0 {
			b.WriteString(", acting for ")
		}
		b.WriteString(clean(r.Sub))
	}
	return b.String()
}

func what(r *Record) string {
	var parts []string
	if r.Method != "" || r.Host != "" || r.Path != "" {
		parts = append(parts, strings.TrimSpace(clean(r.Method)+" "+clean(r.Host)+clean(r.Path)))
	}
	if r.MCPMethod != "" {
		parts = append(parts, clean(r.MCPMethod))
	}
	if r.Tool != "" {
		parts = append(parts, clean(r.Tool))
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
	if r.Kind == KindCheckpoint {
		parts = append(parts, fmt.Sprintf("signs seq %d", r.Seq-1))
	}
	return strings.Join(parts, " ")
}

func result(r *Record) string {
	switch r.Kind {
	case KindOutcome:
		s := "→ " + strconv.Itoa(r.Status)
		if r.Bytes > 0 {
			s += fmt.Sprintf(", %d B", r.Bytes)
		}
		if r.Duration > 0 {
			s += fmt.Sprintf(", %.3f ms", float64(r.Duration)/float64(time.Millisecond))
		}
		return s
	case KindSummary:
		return fmt.Sprintf("%d × %s", r.Count, clean(r.Reason))
	}
	if r.Status != 0 {
		return strconv.Itoa(r.Status) + " " + clean(r.Reason)
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
