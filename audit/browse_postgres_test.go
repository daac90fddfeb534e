package audit

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kavachgate/kavach/internal/pgtest"
)

// openPGTrailWriter writes as node through the real PostgreSQL sink.
func openPGTrailWriter(t *testing.T, url, node string, every int) *trailWriter {
	t.Helper()
	sink, err := OpenPostgres(context.Background(), url, PostgresOptions{Node: node})
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWriter(context.Background(), sink, testKey(), Options{Stream: StreamID(node, time.Now()), CheckpointEvery: every, CheckpointInterval: time.Hour, BatchDelay: -1})
	if err != nil {
		t.Fatal(err)
	}
	tw := &trailWriter{t: t, w: w}
	t.Cleanup(func() { tw.close() })
	return tw
}

func openPGBrowser(t *testing.T, url string) Pager {
	t.Helper()
	b, err := OpenBrowser(context.Background(), Config{Sink: SinkPostgres, URL: url}, BrowseOptions{Pub: testPub(), StatusEvery: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b.(Pager)
}

func TestBrowsePostgres(t *testing.T) {
	t.Parallel()
	url := pgtest.Start(t)
	// Before any gateway wrote: no table, nothing to show, no fault.
	empty := openPGBrowser(t, url)
	if got, err := empty.Browse(context.Background(), Filter{}, 10); err != nil || len(got) != 0 {
		t.Fatalf("no table: %v %v", got, err)
	}
	if st := waitStatus(t, empty); st.Problem != "" || st.Verified || st.Source != "postgres (0 nodes)" {
		t.Fatalf("no table: %+v", st)
	}
	tw := openPGTrailWriter(t, url, "gw-a", 40)
	tw.write(90)
	mid := time.Now()
	tw.write(30)
	b := openPGBrowser(t, url)
	got, err := b.Browse(context.Background(), Filter{}, 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 5 || got[0].Decision.Kind != KindIssued || got[1].Decision.RequestID != "req_119" || got[4].Decision.RequestID != "req_116" {
		t.Fatalf("newest 5: %+v", got)
	}
	if got[2].Outcome == nil || got[2].Outcome.Status != 200 || got[1].Outcome != nil || got[1].Status() != 403 {
		t.Fatalf("outcomes not joined: %+v", got[1:3])
	}
	checkFilters(t, b, mid)
	st := waitStatus(t, b)
	if !st.Verified || st.Checkpoint == "" || st.Uncovered == 0 || st.Source != "postgres (1 node)" {
		t.Fatalf("status %+v", st)
	}
	ref, _ := ParseCheckpointRef(st.Checkpoint)
	for _, e := range all(t, b, Filter{}, 50) {
		if e.Covered != (e.Seq <= ref.Seq) {
			t.Fatalf("seq %d covered %v with checkpoint %s", e.Seq, e.Covered, st.Checkpoint)
		}
	}
	for _, c := range []string{"r0", "r-1", "t1:a:1", "r01"} {
		if _, err := b.BrowsePage(context.Background(), Filter{}, 10, c); err != ErrBadCursor {
			t.Errorf("cursor %q: %v", c, err)
		}
	}
}

// Two nodes, bounded pages, incremental status, and a row changed in the
// database.
func TestBrowsePostgresStatus(t *testing.T) {
	t.Parallel()
	url := pgtest.Start(t)
	a := openPGTrailWriter(t, url, "gw-a", 25)
	bw := openPGTrailWriter(t, url, "gw-b", 25)
	a.write(100)
	bw.write(100)
	br, err := OpenBrowser(context.Background(), Config{Sink: SinkPostgres, URL: url}, BrowseOptions{Pub: testPub(), StatusEvery: time.Millisecond, MaxScan: 50})
	if err != nil {
		t.Fatal(err)
	}
	defer br.Close()
	b := br.(Pager)
	p, err := b.BrowsePage(context.Background(), Filter{Tool: "no such tool"}, 10, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Entries) != 0 || p.Next == "" || p.Scanned > 50 {
		t.Fatalf("bounded page: %+v", p)
	}
	n := 0
	for cursor := ""; ; {
		p, err := b.BrowsePage(context.Background(), Filter{Decision: Deny}, 7, cursor)
		if err != nil {
			t.Fatal(err)
		}
		n += len(p.Entries)
		if cursor = p.Next; cursor == "" {
			break
		}
	}
	if n != 66 {
		t.Fatalf("%d denials in both nodes, want 66", n)
	}
	st := waitStatus(t, b)
	if !st.Verified || st.Source != "postgres (2 nodes)" {
		t.Fatalf("%+v", st)
	}
	records := st.Records
	a.write(10)
	st = nextStatus(t, b)
	if !st.Verified || st.Records <= records {
		t.Fatalf("after more records: %+v (had %d)", st, records)
	}
	a.close()
	bw.close()
	st = nextStatus(t, b)
	if !st.Verified || st.Uncovered != 0 {
		t.Fatalf("after close: %+v", st)
	}
	// Found by the next full pass: FullEvery is long, so make a new
	// browser (as a restart would).
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), `UPDATE kavach_audit SET line = convert_to(replace(convert_from(line, 'UTF8'), 'usr_bob', 'usr_eve'), 'UTF8') WHERE node = 'gw-b' AND kind = 'decision' AND id = (SELECT min(id) FROM kavach_audit WHERE node = 'gw-b' AND kind = 'decision' AND convert_from(line, 'UTF8') LIKE '%usr_bob%')`); err != nil {
		t.Fatal(err)
	}
	b2 := openPGBrowser(t, url)
	st = waitStatus(t, b2)
	if st.Verified || !strings.Contains(st.Problem, "edited") {
		t.Fatalf("after an edit: %+v", st)
	}
}
