package audit

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// queryTrail: two requests of agt_child (one allowed with its outcome,
// one denied), one of agt_other, and counted junk.
func queryTrail(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	sink, err := OpenFile(path, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w := newTestWriter(t, sink, Options{Stream: "gw-q"})
	d1 := decision(1)
	d1.Time = t0
	d2 := decision(2)
	d2.Decision, d2.Reason, d2.Status, d2.Time = Deny, "insufficient_scope: repo:write", 403, t0.Add(time.Hour)
	d2.Tool = "write_file"
	other := &Record{Kind: KindDecision, Decision: Allow, RequestID: "req_3", Sub: "usr_bob", Actor: "agt_other",
		Agents: []string{"agt_other"}, Chain: []string{"dlg_other"}, Method: "GET", Host: "api.example", Path: "/x\x1b[31m", Time: t0.Add(time.Hour)}
	o1 := outcome(1)
	o1.Time = t0.Add(time.Second)
	o3 := outcome(3)
	o3.Time, o3.Sub = t0.Add(time.Hour), "usr_bob" // outcomes name the user since args_sha256 came
	for _, r := range []*Record{d1, other, d2, o1, o3} {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	w.CountJunk("missing_token")
	w.CountJunk("missing_token")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func query(t *testing.T, path string, f Filter) []*Entry {
	t.Helper()
	var out []*Entry
	for e, err := range Query([]string{path}, f) {
		if err != nil {
			t.Fatal(err)
		}
		c := *e
		c.Line = bytes.Clone(e.Line)
		out = append(out, &c)
	}
	return out
}

func kindsAndIDs(es []*Entry) string {
	var s []string
	for _, e := range es {
		s = append(s, string(e.Record.Kind)+":"+e.Record.RequestID)
	}
	return strings.Join(s, " ")
}

// names are what the admin listener would say of queryTrail's principals.
var names = &Names{
	Agents: map[string]string{"agt_child": "reviewer", "agt_parent": "orchestrator", "agt_other": "builder"},
	Users:  map[string]string{"usr_alice": "alice", "usr_bob": "bob"},
}

func TestQuery(t *testing.T) {
	t.Parallel()
	path := queryTrail(t)
	for _, tc := range []struct {
		name string
		f    Filter
		want string
	}{
		{"everything", Filter{}, "decision:req_1 decision:req_3 decision:req_2 outcome:req_1 outcome:req_3 summary: checkpoint:"},
		{"by agent, with outcomes", Filter{Agent: "agt_child"}, "decision:req_1 decision:req_2 outcome:req_1"},
		{"by parent agent", Filter{Agent: "agt_parent"}, "decision:req_1 decision:req_2 outcome:req_1"},
		{"by chain", Filter{Chain: "dlg_other"}, "decision:req_3 outcome:req_3"},
		{"denied", Filter{Decision: Deny}, "decision:req_2 summary:"},
		{"since", Filter{Since: t0.Add(time.Minute), Kinds: []Kind{KindDecision}}, "decision:req_3 decision:req_2"},
		{"agent and decision", Filter{Agent: "agt_child", Decision: Allow}, "decision:req_1 outcome:req_1"},
		{"unknown agent", Filter{Agent: "agt_nobody"}, ""},
		{"agent by name", Filter{Agent: "reviewer", Names: names}, "decision:req_1 decision:req_2 outcome:req_1"},
		{"parent by name", Filter{Agent: "orchestrator", Names: names}, "decision:req_1 decision:req_2 outcome:req_1"},
		{"agent by id, with names", Filter{Agent: "agt_other", Names: names}, "decision:req_3 outcome:req_3"},
		{"a name without names", Filter{Agent: "reviewer"}, ""},
		{"user", Filter{Sub: "usr_bob"}, "decision:req_3 outcome:req_3"},
		{"user by name", Filter{Sub: "alice", Names: names}, "decision:req_1 decision:req_2 outcome:req_1"},
		{"tool", Filter{Tool: "write_file"}, "decision:req_2"},
		{"tool, with its outcome", Filter{Tool: "read_file"}, "decision:req_1 outcome:req_1"},
		{"until", Filter{Until: t0.Add(time.Minute)}, "decision:req_1 outcome:req_1"},
		{"since and until", Filter{Since: t0.Add(time.Minute), Until: t0.Add(time.Hour)}, "decision:req_3 decision:req_2 outcome:req_3"},
		{"request", Filter{RequestID: "req_1"}, "decision:req_1 outcome:req_1"},
		{"request and agent", Filter{RequestID: "req_3", Agent: "agt_child"}, ""},
		{"tool and decision", Filter{Tool: "write_file", Decision: Allow}, ""},
	} {
		if got := kindsAndIDs(query(t, path, tc.f)); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, got, tc.want)
		}
	}
}

func TestPrinters(t *testing.T) {
	t.Parallel()
	path := queryTrail(t)
	es := query(t, path, Filter{Agent: "agt_child"})
	table := func(names *Names, es []*Entry) []string {
		var b bytes.Buffer
		p := NewTablePrinter(&b, names)
		for _, e := range es {
			p.Print(e)
		}
		p.Flush()
		if strings.Contains(b.String(), "\x1b") {
			t.Error("a control character from the trail reached the terminal")
		}
		return strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	}
	// Columns: TIME DECISION WHO WHAT STATUS REASON, one row per record;
	// an outcome row repeats what its decision asked.
	rows := table(nil, es)
	want := [][]string{
		{"TIME", "DECISION", "WHO", "WHAT", "STATUS", "REASON"},
		{"2026-03-01T12:00:00Z", "allow", "agt_child, child of agt_parent, acting for usr_alice", "tools/call read_file", "-", "-"},
		{"2026-03-01T13:00:00Z", "deny", "agt_child, child of agt_parent, acting for usr_alice", "tools/call write_file", "403", "insufficient_scope: repo:write"},
		{"2026-03-01T12:00:01Z", "outcome", "agt_child, child of agt_parent, acting for usr_alice", "tools/call read_file", "200", "1234 B, 1.5 ms"},
	}
	if len(rows) != len(want) {
		t.Fatalf("%d rows, want %d:\n%s", len(rows), len(want), strings.Join(rows, "\n"))
	}
	for i, cells := range want {
		at := 0
		for _, c := range cells {
			j := strings.Index(rows[i][at:], c)
			if j < 0 {
				t.Errorf("row %d lacks %q after column %d: %s", i, c, at, rows[i])
				break
			}
			at += j + len(c)
		}
	}
	// With names: people, not ids; an HTTP request shows its method and
	// path; the trail's escapes survive.
	rows = table(names, query(t, path, Filter{}))
	for _, want := range []string{
		"reviewer, child of orchestrator, acting for alice", "builder, acting for bob", `GET /x\x1b[31m`,
		"2 requests", "signs seq",
	} {
		if !strings.Contains(strings.Join(rows, "\n"), want) {
			t.Errorf("table lacks %q:\n%s", want, strings.Join(rows, "\n"))
		}
	}
	// Every outcome row says whom the request acted for: from the record
	// (newer trails) or from its decision's row.
	for _, r := range rows {
		if strings.Contains(r, "outcome") && !strings.Contains(r, "acting for") {
			t.Errorf("outcome row without its user: %s", r)
		}
	}
	// An outcome read alone (its decision filtered out) still names its
	// user when the record does.
	alone := table(names, query(t, path, Filter{Kinds: []Kind{KindOutcome}}))
	if !strings.Contains(strings.Join(alone, "\n"), "bob") {
		t.Errorf("outcome alone without its user:\n%s", strings.Join(alone, "\n"))
	}

	var jl bytes.Buffer
	p := NewJSONPrinter(&jl)
	for _, e := range es {
		p.Print(e)
	}
	p.Flush()
	all, _ := os.ReadFile(path)
	for _, l := range strings.Split(strings.TrimSpace(jl.String()), "\n") {
		if !bytes.Contains(all, []byte(l+"\n")) {
			t.Fatalf("JSON printer changed a line: %s", l)
		}
	}
	// The printed lines are the trail's: they verify as records.
	if _, err := ParseLine([]byte(strings.Split(jl.String(), "\n")[0])); err != nil {
		t.Fatal(err)
	}
}

func TestQueryPartialAndMalformed(t *testing.T) {
	t.Parallel()
	path := queryTrail(t)
	data, _ := os.ReadFile(path)
	os.WriteFile(path, append(data, `{"seq":9`...), 0o600)
	n := 0
	var last error
	for _, err := range Query([]string{path}, Filter{}) {
		if err != nil {
			last = err
			continue
		}
		n++
	}
	if n != 7 || !errors.Is(last, ErrPartialLine) {
		t.Fatalf("%d records, last error %v; want 7 and ErrPartialLine", n, last)
	}
	// A process that died mid-write leaves its file (one per process in
	// the default trail) torn; the next file's records still come.
	second := filepath.Join(filepath.Dir(path), "second.jsonl")
	os.WriteFile(second, data, 0o600)
	n, last = 0, nil
	for _, err := range Query([]string{path, second}, Filter{}) {
		if err != nil {
			last = err
			continue
		}
		n++
	}
	if n != 14 || !errors.Is(last, ErrPartialLine) || !strings.Contains(last.Error(), filepath.Base(path)) {
		t.Fatalf("torn first file: %d records, error %v; want 14 and ErrPartialLine naming it", n, last)
	}
	os.WriteFile(path, append(data, "junk\n"...), 0o600)
	last = nil
	for _, err := range Query([]string{path}, Filter{}) {
		last = err
	}
	if last == nil || !strings.Contains(last.Error(), ":8: not a record") {
		t.Fatalf("malformed line: %v", last)
	}
	// Stopping early is fine.
	for range Query([]string{path}, Filter{}) {
		break
	}
}

// TestTableUnenforced: a report_only denial reads "deny (not enforced)"
// in the table, so nobody mistakes it for a request that was refused.
func TestTableUnenforced(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	p := NewTablePrinter(&b, nil)
	_ = p.Print(&Entry{Record: Record{Time: t0, Kind: KindDecision, Decision: Deny, Unenforced: true, Actor: "agt_r", Status: 403, Reason: "insufficient_scope: x:y"}})
	_ = p.Print(&Entry{Record: Record{Time: t0, Kind: KindDecision, Decision: Deny, Actor: "agt_r", Status: 403, Reason: "insufficient_scope: x:y"}})
	_ = p.Flush()
	rows := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	if len(rows) != 3 || !strings.Contains(rows[1], "deny (not enforced)") || strings.Contains(rows[2], "not enforced") {
		t.Fatalf("table:\n%s", b.String())
	}
}
