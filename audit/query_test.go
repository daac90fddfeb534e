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
	d2.Decision, d2.Reason, d2.Time = Deny, "insufficient_scope", t0.Add(time.Hour)
	d2.Tool, d2.Path = "write_file", "/mcp\x1b[31m"
	other := &Record{Kind: KindDecision, Decision: Allow, RequestID: "req_3", Sub: "usr_bob", Actor: "agt_other",
		Agents: []string{"agt_other"}, Chain: []string{"dlg_other"}, Method: "GET", Host: "api.example", Path: "/x", Time: t0.Add(time.Hour)}
	o1 := outcome(1)
	o1.Time = t0.Add(time.Second)
	o3 := outcome(3)
	o3.Time = t0.Add(time.Hour)
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
	var table bytes.Buffer
	p := NewTablePrinter(&table)
	for _, e := range es {
		p.Print(e)
	}
	p.Flush()
	out := table.String()
	for _, want := range []string{
		"TIME", "agt_child, child of agt_parent, acting for usr_alice",
		"POST mcp.internal/mcp tools/call read_file", "→ 200, 1234 B, 1.500 ms",
		"insufficient_scope", `/mcp\x1b[31m`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\x1b") {
		t.Error("a control character from the trail reached the terminal")
	}

	var jl bytes.Buffer
	p = NewJSONPrinter(&jl)
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
