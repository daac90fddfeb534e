package audit_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kavachgate/kavach/audit"
	"github.com/kavachgate/kavach/audit/sinktest"
	"github.com/kavachgate/kavach/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

var pgKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, ed25519.SeedSize))

func pgPub() ed25519.PublicKey { return pgKey.Public().(ed25519.PublicKey) }

func TestPostgresSinkConformance(t *testing.T) {
	t.Parallel()
	sinktest.Run(t, func(t *testing.T) sinktest.Harness {
		url := pgtest.Start(t)
		return sinktest.Harness{
			Open: func() (audit.Sink, error) {
				return audit.OpenPostgres(context.Background(), url, audit.PostgresOptions{Node: "conf"})
			},
			ReadBack:   func() ([]byte, error) { return pgReadBack(url) },
			Persistent: true,
		}
	})
}

// pgReadBack returns every line in the order verify reads them.
func pgReadBack(url string) ([]byte, error) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, audit.PostgresChainOrder)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []byte
	for rows.Next() {
		vals := rows.RawValues()
		out = append(out, vals[len(vals)-1]...)
		out = append(out, '\n')
	}
	return out, rows.Err()
}

// pgConn is a direct connection for the test to look and tamper with.
func pgConn(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func pgExec(t *testing.T, conn *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func openPG(t *testing.T, url, node string) *audit.PostgresSink {
	t.Helper()
	s, err := audit.OpenPostgres(context.Background(), url, audit.PostgresOptions{Node: node})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// pgRecord is request i of an agent: a decision, or (odd i) the outcome
// of request i-1.
func pgRecord(agent string, i int) *audit.Record {
	id := fmt.Sprintf("%s-req-%d", agent, i/2)
	if i%2 == 1 {
		return &audit.Record{Kind: audit.KindOutcome, RequestID: id, Status: 200, Bytes: 42, Duration: time.Millisecond}
	}
	return &audit.Record{Kind: audit.KindDecision, Decision: audit.Allow, RequestID: id,
		Sub: "usr_alice", Actor: agent, Agents: []string{"agt_root", agent}, Chain: []string{"dlg_root", "dlg_" + agent},
		Method: "POST", Host: "mcp.internal", Path: fmt.Sprintf("/mcp/%d", i), MCPMethod: "tools/call", Tool: "read_file"}
}

// writePG writes n records as node into a new stream and closes the
// writer (final checkpoint).
func writePG(t *testing.T, url, node, stream string, n int, opts audit.Options) {
	t.Helper()
	opts.Stream = stream
	if opts.CheckpointInterval == 0 {
		opts.CheckpointInterval = time.Hour
	}
	w, err := audit.NewWriter(context.Background(), openPG(t, url, node), pgKey, opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := w.WriteDurable(context.Background(), pgRecord("agt_"+node, i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func verifyPG(t *testing.T, url string, opts audit.VerifyOptions) *audit.Report {
	t.Helper()
	rep, err := audit.VerifyPostgres(context.Background(), url, pgPub(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func text(r *audit.Report) string {
	var b strings.Builder
	r.WriteText(&b)
	return b.String()
}

// TestPostgresTwoGateways: two gateways write into one database at once,
// each restarting once (a second stream linked to its first); verify
// checks both nodes' chains, and tells them apart.
func TestPostgresTwoGateways(t *testing.T) {
	t.Parallel()
	url := pgtest.Start(t)
	var wg sync.WaitGroup
	for _, node := range []string{"gw1", "gw2"} {
		wg.Go(func() {
			writePG(t, url, node, node+"-a", 120, audit.Options{CheckpointEvery: 50})
			writePG(t, url, node, node+"-b", 30, audit.Options{CheckpointEvery: 50})
		})
	}
	wg.Wait()
	rep := verifyPG(t, url, audit.VerifyOptions{RequireGenesis: true})
	if !rep.OK() || len(rep.Streams) != 4 || rep.Uncovered != 0 || len(rep.Sources) != 2 {
		t.Fatalf("two gateways' trail:\n%s", text(rep))
	}
	// 120 records + 3 checkpoints (after 50, 100 and the final one); 30 + 1.
	if want := uint64(2 * (123 + 31)); rep.Records != want {
		t.Errorf("%d records verified, want %d", rep.Records, want)
	}
	for _, s := range rep.Streams {
		if s.FirstSeq != 1 {
			t.Errorf("stream %s starts at seq %d", s.Stream, s.FirstSeq)
		}
	}
	if !strings.Contains(rep.Sources[0], "(node gw") {
		t.Errorf("source %q does not name the node", rep.Sources[0])
	}
	// The second stream of a node links to its first.
	conn := pgConn(t, url)
	var first, last []byte
	if err := conn.QueryRow(context.Background(), `SELECT line FROM kavach_audit WHERE stream = 'gw2-b' AND seq = 1`).Scan(&first); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(context.Background(), `SELECT line FROM kavach_audit WHERE stream = 'gw2-a' ORDER BY seq DESC LIMIT 1`).Scan(&last); err != nil {
		t.Fatal(err)
	}
	b, _ := audit.ParseLine(first)
	a, _ := audit.ParseLine(last)
	if b.Prev == "" || b.Prev != a.Hash {
		t.Errorf("gw2-b seq 1 prev %q, want gw2-a's last hash %q", b.Prev, a.Hash)
	}
	// The columns are there to query with SQL.
	var n int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM kavach_audit
		WHERE node = 'gw1' AND kind = 'decision' AND convert_from(line, 'UTF8')::jsonb ->> 'actor' = 'agt_gw1'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 60+15 {
		t.Errorf("SQL finds %d decisions of agt_gw1, want 75", n)
	}
}

// TestPostgresConcurrentOpen: gateways starting together on a new
// database all create the table without tripping over each other.
func TestPostgresConcurrentOpen(t *testing.T) {
	t.Parallel()
	url := pgtest.Start(t)
	const n = 8
	errs := make(chan error, n)
	for i := range n {
		go func() {
			s, err := audit.OpenPostgres(context.Background(), url, audit.PostgresOptions{Node: fmt.Sprintf("gw%d", i)})
			if err == nil {
				err = s.Close()
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// TestPostgresTamper: rows edited, deleted, swapped or moved make verify
// fail naming the first bad seq.
func TestPostgresTamper(t *testing.T) {
	t.Parallel()
	const stream = "gw1-a"
	cases := []struct {
		name   string
		tamper func(t *testing.T, c *pgx.Conn)
		fault  audit.Fault
		seq    uint64
	}{
		{"edit one byte of a line", func(t *testing.T, c *pgx.Conn) {
			var line []byte
			if err := c.QueryRow(context.Background(), `SELECT line FROM kavach_audit WHERE stream = $1 AND seq = 23`, stream).Scan(&line); err != nil {
				t.Fatal(err)
			}
			i := bytes.Index(line, []byte(`"/mcp/`))
			if i < 0 {
				t.Fatalf("seq 23 is not a decision: %s", line)
			}
			line[i+2] = 'n' // /mcp → /ncp
			pgExec(t, c, `UPDATE kavach_audit SET line = $2 WHERE stream = $1 AND seq = 23`, stream, line)
		}, audit.FaultEdited, 23},
		{"delete a row", func(t *testing.T, c *pgx.Conn) {
			pgExec(t, c, `DELETE FROM kavach_audit WHERE stream = $1 AND seq = 23`, stream)
		}, audit.FaultMissing, 23},
		{"swap two rows' lines", func(t *testing.T, c *pgx.Conn) {
			pgExec(t, c, `UPDATE kavach_audit a SET line = b.line FROM kavach_audit b
				WHERE a.stream = $1 AND b.stream = $1 AND a.seq IN (23, 24) AND b.seq = 47 - a.seq`, stream)
		}, audit.FaultReordered, 23},
		{"swap two rows' seqs", func(t *testing.T, c *pgx.Conn) {
			pgExec(t, c, `UPDATE kavach_audit SET seq = 1000000 WHERE stream = $1 AND seq = 23`, stream)
			pgExec(t, c, `UPDATE kavach_audit SET seq = 23 WHERE stream = $1 AND seq = 24`, stream)
			pgExec(t, c, `UPDATE kavach_audit SET seq = 24 WHERE stream = $1 AND seq = 1000000`, stream)
		}, audit.FaultReordered, 23},
		{"move a row to another node", func(t *testing.T, c *pgx.Conn) {
			pgExec(t, c, `UPDATE kavach_audit SET node = 'gw9' WHERE stream = $1 AND seq = 23`, stream)
		}, audit.FaultMissing, 23},
		{"move the end of a node's last stream to another node", func(t *testing.T, c *pgx.Conn) {
			pgExec(t, c, `UPDATE kavach_audit SET node = 'gw0' WHERE stream = 'gw1-b' AND seq > 3`)
		}, audit.FaultReordered, 4},
		{"change a row's time column", func(t *testing.T, c *pgx.Conn) {
			pgExec(t, c, `UPDATE kavach_audit SET time = time - interval '1 day' WHERE stream = $1 AND seq = 23`, stream)
		}, audit.FaultEdited, 23},
		{"change a row's kind column", func(t *testing.T, c *pgx.Conn) {
			pgExec(t, c, `UPDATE kavach_audit SET kind = 'outcome' WHERE stream = $1 AND seq = 23`, stream)
		}, audit.FaultEdited, 23},
		{"delete a stream's first row", func(t *testing.T, c *pgx.Conn) {
			pgExec(t, c, `DELETE FROM kavach_audit WHERE stream = 'gw1-b' AND seq = 1`)
		}, audit.FaultMissing, 1},
		{"rewrite and re-hash the end of a stream", func(t *testing.T, c *pgx.Conn) {
			// Without the key the checkpoint cannot be re-signed.
			rows, err := c.Query(context.Background(), `SELECT seq, line FROM kavach_audit WHERE stream = $1 AND seq >= 22 ORDER BY seq`, stream)
			if err != nil {
				t.Fatal(err)
			}
			lines, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([]byte, error) {
				var seq int64
				var line []byte
				err := r.Scan(&seq, &line)
				return line, err
			})
			if err != nil {
				t.Fatal(err)
			}
			prevRec, err := audit.ParseLine(lines[0])
			if err != nil {
				t.Fatal(err)
			}
			var prev [32]byte
			copy(prev[:], mustHex(t, prevRec.Hash))
			for _, l := range lines[1:] {
				r, err := audit.ParseLine(l)
				if err != nil {
					t.Fatal(err)
				}
				r.Path = strings.ReplaceAll(r.Path, "/mcp/", "/xyz/")
				if r.Prev != "" {
					r.Prev = fmt.Sprintf("%x", prev)
				}
				out, h, err := audit.AppendLine(nil, prev, &r)
				if err != nil {
					t.Fatal(err)
				}
				pgExec(t, c, `UPDATE kavach_audit SET line = $3 WHERE stream = $1 AND seq = $2`, stream, int64(r.Seq), bytes.TrimSuffix(out, []byte("\n")))
				prev = h
			}
			// gw1-b links to the old end; relink it too.
			var b1 []byte
			if err := c.QueryRow(context.Background(), `SELECT line FROM kavach_audit WHERE stream = 'gw1-b' AND seq = 1`).Scan(&b1); err != nil {
				t.Fatal(err)
			}
			r, _ := audit.ParseLine(b1)
			r.Prev = fmt.Sprintf("%x", prev)
			out, _, _ := audit.AppendLine(nil, prev, &r)
			pgExec(t, c, `UPDATE kavach_audit SET line = $1 WHERE stream = 'gw1-b' AND seq = 1`, bytes.TrimSuffix(out, []byte("\n")))
		}, audit.FaultCheckpoint, 33},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			url := pgtest.Start(t)
			// gw1-a: 40 records (seq 23 is a decision, 24 its outcome),
			// checkpoints at seq 11, 22, 33 and the final 44; gw1-b: 5 +
			// the final checkpoint.
			writePG(t, url, "gw1", stream, 40, audit.Options{CheckpointEvery: 10})
			writePG(t, url, "gw1", "gw1-b", 5, audit.Options{CheckpointEvery: 10})
			writePG(t, url, "gw2", "gw2-a", 10, audit.Options{CheckpointEvery: 10})
			if rep := verifyPG(t, url, audit.VerifyOptions{}); !rep.OK() {
				t.Fatalf("before tampering:\n%s", text(rep))
			}
			tc.tamper(t, pgConn(t, url))
			rep := verifyPG(t, url, audit.VerifyOptions{})
			p := rep.Problem
			if p == nil || p.Fault != tc.fault || p.Seq != tc.seq {
				t.Fatalf("verify after tampering, want %s at seq %d:\n%s", tc.fault, tc.seq, text(rep))
			}
			if !strings.Contains(text(rep), fmt.Sprintf("seq %d ", tc.seq)) {
				t.Errorf("the report does not name seq %d:\n%s", tc.seq, text(rep))
			}
		})
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	var b []byte
	if _, err := fmt.Sscanf(s, "%x", &b); err != nil || len(b) != 32 {
		t.Fatalf("hash %q: %v", s, err)
	}
	return b
}

// pgBatch encodes n decision records continuing the chain at *seq, *prev.
func pgBatch(t *testing.T, stream string, seq *uint64, prev *[32]byte, n int, reason string) *audit.Batch {
	t.Helper()
	b := &audit.Batch{Stream: stream}
	for range n {
		*seq++
		rec := audit.Record{Seq: *seq, Stream: stream, Time: time.Date(2026, 3, 1, 12, 0, 0, int(*seq)*1000, time.UTC),
			Kind: audit.KindDecision, Decision: audit.Deny, Reason: reason, RequestID: fmt.Sprintf("r%d", *seq)}
		var h [32]byte
		var err error
		b.Data, h, err = audit.AppendLine(b.Data, *prev, &rec)
		if err != nil {
			t.Fatal(err)
		}
		b.Lines = append(b.Lines, audit.LineInfo{Seq: *seq, Kind: rec.Kind, Hash: h, End: len(b.Data)})
		*prev = h
	}
	return b
}

func rowCount(t *testing.T, url string) int {
	t.Helper()
	var n int
	if err := pgConn(t, url).QueryRow(context.Background(), `SELECT count(*) FROM kavach_audit`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestPostgresRetryAfterLostAck: the writer retries a batch whose commit
// succeeded but whose answer it never got; the sink finds its rows and
// reports success without duplicating them. Rows of the same stream and
// seq with other bytes are another writer's: the sink stops.
func TestPostgresRetryAfterLostAck(t *testing.T) {
	t.Parallel()
	url := pgtest.Start(t)
	s := openPG(t, url, "gw1")
	defer s.Close()
	var seq uint64
	var prev [32]byte
	b := pgBatch(t, "gw1-a", &seq, &prev, 5, "first")
	for range 2 {
		if err := s.Append(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	if n := rowCount(t, url); n != 5 {
		t.Fatalf("%d rows after a batch of 5 appended twice", n)
	}
	seq, prev = 0, [32]byte{}
	other := pgBatch(t, "gw1-a", &seq, &prev, 5, "other")
	if err := s.Append(context.Background(), other); !errors.Is(err, audit.ErrSinkBroken) {
		t.Fatalf("a batch over rows with other bytes: %v, want ErrSinkBroken", err)
	}
	if err := s.Append(context.Background(), pgBatch(t, "gw1-a", &seq, &prev, 1, "next")); !errors.Is(err, audit.ErrSinkBroken) {
		t.Fatalf("after that: %v, want ErrSinkBroken", err)
	}
}

// TestPostgresOneWriterPerNode: a second process writing as the same
// node is refused while the first holds it, and a process that lost its
// connection while another took over the node stops rather than fork the
// node's chain.
func TestPostgresOneWriterPerNode(t *testing.T) {
	t.Parallel()
	url := pgtest.Start(t)
	a := openPG(t, url, "gw1")
	defer a.Close()
	if _, err := audit.OpenPostgres(context.Background(), url, audit.PostgresOptions{Node: "gw1", Timeout: 500 * time.Millisecond}); !errors.Is(err, audit.ErrLocked) {
		t.Fatalf("second writer of node gw1: %v, want ErrLocked", err)
	}
	other := openPG(t, url, "gw2")
	other.Close()

	var seq uint64
	var prev [32]byte
	if err := a.Append(context.Background(), pgBatch(t, "gw1-a", &seq, &prev, 3, "a")); err != nil {
		t.Fatal(err)
	}
	// The server ends a's session (an idle timeout, a failover…).
	pgExec(t, pgConn(t, url), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'kavach-audit' AND datname = current_database()`)
	// Before anyone else writes as gw1, a reconnects and goes on (the
	// writer retries the same batch).
	b := pgBatch(t, "gw1-a", &seq, &prev, 1, "a")
	waitFor(t, "a reconnects", func() bool { return a.Append(context.Background(), b) == nil })
	pgExec(t, pgConn(t, url), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'kavach-audit' AND datname = current_database()`)
	// Now another process takes gw1 over and writes.
	writePG(t, url, "gw1", "gw1-b", 2, audit.Options{})
	// a's first try fails on its dead connection, the next one looks.
	b = pgBatch(t, "gw1-a", &seq, &prev, 1, "a")
	err := a.Append(context.Background(), b)
	if !errors.Is(err, audit.ErrSinkBroken) {
		err = a.Append(context.Background(), b)
	}
	if !errors.Is(err, audit.ErrSinkBroken) || !strings.Contains(err.Error(), "another process wrote as node gw1") {
		t.Fatalf("append after another process wrote as the node: %v, want ErrSinkBroken", err)
	}
	if rep := verifyPG(t, url, audit.VerifyOptions{}); !rep.OK() {
		t.Fatalf("the node's chain forked:\n%s", text(rep))
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPostgresOpenWaitsForServer: a gateway that starts before its
// database (a deployment coming up together) opens the sink once the
// server is up, within its start deadline.
func TestPostgresOpenWaitsForServer(t *testing.T) {
	t.Parallel()
	srv := pgtest.NewServer(t)
	url := srv.Database(t)
	srv.Stop(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	opened := make(chan error, 1)
	go func() {
		s, err := audit.OpenPostgres(ctx, url, audit.PostgresOptions{Node: "gw1"})
		if err == nil {
			s.Close()
		}
		opened <- err
	}()
	time.Sleep(300 * time.Millisecond)
	srv.Restart(t)
	if err := <-opened; err != nil {
		t.Fatalf("open while the server came up: %v", err)
	}
	// Without a deadline there is one attempt.
	srv.Stop(t)
	if _, err := audit.OpenPostgres(context.Background(), url, audit.PostgresOptions{Node: "gw1"}); err == nil {
		t.Fatal("open with the server down succeeded")
	}
}

// TestPostgresTailInvalid: a gateway does not link a new stream to a last
// record that was changed.
func TestPostgresTailInvalid(t *testing.T) {
	t.Parallel()
	url := pgtest.Start(t)
	writePG(t, url, "gw1", "gw1-a", 4, audit.Options{})
	c := pgConn(t, url)
	pgExec(t, c, `UPDATE kavach_audit SET line = overlay(line placing '7'::bytea from 10 for 1) WHERE stream = 'gw1-a' AND seq = (SELECT max(seq) FROM kavach_audit)`)
	if _, err := audit.OpenPostgres(context.Background(), url, audit.PostgresOptions{Node: "gw1"}); !errors.Is(err, audit.ErrTailInvalid) {
		t.Fatalf("open over a changed tail: %v, want ErrTailInvalid", err)
	}
	// Another node is not concerned.
	openPG(t, url, "gw2").Close()
}

// TestPostgresDown is the fault "PostgreSQL down": the server stops (a
// fast shutdown, then a crash) while a writer appends. The writer refuses
// records (the gateway answers 503) until the server is back, then goes
// on; nothing it acknowledged is lost and the whole trail verifies.
func TestPostgresDown(t *testing.T) {
	t.Parallel()
	srv := pgtest.NewServer(t)
	url := srv.Database(t)
	sink, err := audit.OpenPostgres(context.Background(), url, audit.PostgresOptions{Node: "gw1", Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	w, err := audit.NewWriter(context.Background(), sink, pgKey, audit.Options{Stream: "gw1-a", CheckpointEvery: 100, CloseTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}

	var (
		mu      sync.Mutex
		acked   = map[string]bool{}
		next    atomic.Int64
		refused atomic.Int64
		stop    = make(chan struct{})
		wg      sync.WaitGroup
	)
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				rec := pgRecord("agt_load", 2*int(next.Add(1)))
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				err := w.WriteDurable(ctx, rec)
				cancel()
				if err == nil {
					mu.Lock()
					acked[rec.RequestID] = true
					mu.Unlock()
				} else {
					refused.Add(1)
					time.Sleep(5 * time.Millisecond)
				}
			}
		})
	}
	ackedN := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}
	for round, down := range []func(testing.TB){srv.Stop, srv.Kill} {
		before := ackedN()
		waitFor(t, "200 more records are acknowledged", func() bool { return ackedN() >= before+200 })
		down(t)
		// The writer notices and refuses records: a gateway answers 503.
		waitFor(t, "Write refuses records", func() bool { return errors.Is(w.Write(pgRecord("agt_probe", 0)), audit.ErrSinkFailing) })
		if err := w.WriteDurable(context.Background(), pgRecord("agt_probe", 0)); !errors.Is(err, audit.ErrSinkFailing) {
			t.Fatalf("round %d: WriteDurable while the database is down: %v, want ErrSinkFailing", round, err)
		}
		if st := w.Stats(); !st.Failing || st.Err == nil {
			t.Errorf("round %d: stats while down: %+v", round, st)
		}
		r0 := refused.Load()
		time.Sleep(200 * time.Millisecond)
		if refused.Load() == r0 {
			t.Errorf("round %d: no WriteDurable was refused while the database was down", round)
		}
		srv.Restart(t)
		// Writing resumes.
		during := ackedN()
		waitFor(t, "writing resumes", func() bool { return ackedN() >= during+200 })
	}
	close(stop)
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	rep := verifyPG(t, url, audit.VerifyOptions{RequireGenesis: true})
	if !rep.OK() || rep.Uncovered != 0 || len(rep.Streams) != 1 {
		t.Fatalf("the trail after two outages:\n%s", text(rep))
	}
	found := map[string]int{}
	for e, err := range audit.QueryPostgres(context.Background(), url, audit.Filter{Agent: "agt_load"}) {
		if err != nil {
			t.Fatal(err)
		}
		found[e.Record.RequestID]++
	}
	mu.Lock()
	defer mu.Unlock()
	for id := range acked {
		if found[id] != 1 {
			t.Errorf("acknowledged record %s is in the trail %d times", id, found[id])
		}
	}
	t.Logf("%d records acknowledged, %d in the trail, %d refused while down", len(acked), len(found), refused.Load())
}

// TestPostgresQuery: query reads the rows of every node in the order they
// were written, with the filters of a file.
func TestPostgresQuery(t *testing.T) {
	t.Parallel()
	url := pgtest.Start(t)
	writePG(t, url, "gw1", "gw1-a", 10, audit.Options{})
	writePG(t, url, "gw2", "gw2-a", 6, audit.Options{})
	var got []string
	for e, err := range audit.QueryPostgres(context.Background(), url, audit.Filter{Agent: "agt_gw2"}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s %s", e.Record.Kind, e.Record.RequestID))
	}
	want := []string{"decision agt_gw2-req-0", "outcome agt_gw2-req-0", "decision agt_gw2-req-1", "outcome agt_gw2-req-1", "decision agt_gw2-req-2", "outcome agt_gw2-req-2"}
	if !slices.Equal(got, want) {
		t.Errorf("query --agent agt_gw2 = %q, want %q", got, want)
	}
	n := 0
	for _, err := range audit.QueryPostgres(context.Background(), url, audit.Filter{Since: time.Now().Add(time.Hour)}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 0 {
		t.Errorf("query --since in the future found %d records", n)
	}
	n = 0
	for _, err := range audit.QueryPostgres(context.Background(), url, audit.Filter{Since: time.Now().Add(-time.Hour), Kinds: []audit.Kind{audit.KindCheckpoint}}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 2 {
		t.Errorf("query of checkpoints found %d, want the 2 final ones", n)
	}
}

// TestPostgresURLSecrets: the password of the URL shows up in no error
// and no report.
func TestPostgresURLSecrets(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-pw"
	for _, u := range []string{
		"postgres://kavach:" + secret + "@127.0.0.1:1/audit?sslmode=disable&connect_timeout=2",
		"postgresql://kavach@127.0.0.1:1/audit?sslmode=disable&password=" + secret,
	} {
		if r := audit.RedactURL(u); strings.Contains(r, secret) || !strings.Contains(r, "xxxxx") {
			t.Errorf("RedactURL(%q) = %q", u, r)
		}
		_, err := audit.OpenPostgres(context.Background(), u, audit.PostgresOptions{Node: "gw1", Timeout: 2 * time.Second})
		if err == nil || strings.Contains(err.Error(), secret) || !strings.Contains(err.Error(), "127.0.0.1") {
			t.Errorf("open an unreachable database: %v", err)
		}
		_, err = audit.VerifyPostgres(context.Background(), u, pgPub(), audit.VerifyOptions{})
		if err == nil || strings.Contains(err.Error(), secret) {
			t.Errorf("verify an unreachable database: %v", err)
		}
	}
	for _, bad := range []string{"postgres://kavach:" + secret + "@127.0.0.1:99999/x", "mysql://kavach:" + secret + "@h/x", "postgres://u@h/x?synchronous_commit=off"} {
		err := audit.CheckPostgresURL(bad)
		if err == nil || strings.Contains(err.Error(), secret) {
			t.Errorf("CheckPostgresURL(%q) = %v", bad, err)
		}
	}
	// With the password in the URL (trust authentication ignores it), the
	// report names the database without it.
	url := strings.Replace(pgtest.Start(t), "postgres@", "postgres:"+secret+"@", 1)
	writePG(t, url, "gw1", "gw1-a", 3, audit.Options{})
	rep := verifyPG(t, url, audit.VerifyOptions{})
	if out := text(rep); !rep.OK() || strings.Contains(out, secret) || !strings.Contains(out, "postgres:xxxxx@") {
		t.Errorf("report:\n%s", out)
	}
}
