package audit

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"iter"
	"time"

	"github.com/jackc/pgx/v5"
)

// postgresChainOrder reads every row in chain order: node by node (in the
// order the nodes first wrote), each node's streams in the order they
// began, each stream by seq. One statement, so one snapshot of a trail
// that gateways keep writing to.
const postgresChainOrder = `WITH streams AS (
	SELECT node, stream, min(id) AS first FROM ` + PostgresTable + ` GROUP BY node, stream
), nodes AS (
	SELECT node, min(first) AS first FROM streams GROUP BY node
)
SELECT a.node, a.stream, a.seq, a.kind, a.time, a.line
FROM ` + PostgresTable + ` a JOIN streams s USING (node, stream) JOIN nodes n USING (node)
ORDER BY n.first, s.first, a.seq, a.id`

// openReader connects for reading (verify, query).
func openReader(ctx context.Context, rawURL string) (*pgx.Conn, string, []string, error) {
	cfg, secrets, err := parsePostgresURL(rawURL)
	if err != nil {
		return nil, "", nil, err
	}
	where := RedactURL(rawURL)
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, "", nil, scrub(fmt.Errorf("audit: postgres %s: connect: %w", where, err), secrets)
	}
	return conn, where, secrets, nil
}

func closeReader(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = conn.Close(ctx)
}

// VerifyPostgres verifies the trail in the PostgreSQL database at rawURL
// (the PostgresSink's table) with the same Verifier as a file: each node's
// chain of streams is one source, named "<redacted URL> (node <node>)",
// whose line numbers count its rows in chain order (node by node in the
// order they first wrote, streams in the order they began, rows by seq).
// Within a chain, every stream after the first links to the one before;
// RequireGenesis applies to each chain. Besides the lines, every row's
// stream, seq, kind and time columns must agree with its line. The error is
// for the database; a trail that does not verify is a Report with a
// Problem.
func VerifyPostgres(ctx context.Context, rawURL string, pub ed25519.PublicKey, opts VerifyOptions) (*Report, error) {
	conn, where, secrets, err := openReader(ctx, rawURL)
	if err != nil {
		return nil, err
	}
	defer closeReader(conn)
	rows, err := conn.Query(ctx, postgresChainOrder)
	if err != nil {
		return nil, scrub(fmt.Errorf("audit: postgres %s: read %s: %w", where, PostgresTable, err), secrets)
	}
	defer rows.Close()
	v := NewVerifier(ctx, pub, opts)
	node, nodes := "", 0
	var (
		r    pgRow
		line []byte
		lv   view
	)
	for rows.Next() {
		if err := rows.Scan(&r.node, &r.stream, &r.seqCol, &r.kind, &r.time, &line); err != nil {
			return nil, scrub(fmt.Errorf("audit: postgres %s: read %s: %w", where, PostgresTable, err), secrets)
		}
		if nodes == 0 || r.node != node {
			if nodes > 0 && !v.beginChain() {
				break
			}
			node = r.node
			nodes++
			v.BeginSource(fmt.Sprintf("%s (node %s)", where, node))
		}
		if !v.Line(line) {
			break
		}
		if v.diag != nil {
			continue // classifying a seq that jumped ahead; its verdict stands
		}
		if decodeLine(line, &lv, nil) == nil {
			if col, got, want := r.disagrees(&lv); col != "" {
				v.fail(FaultEdited, r.stream, r.seq(), fmt.Sprintf("the row's %s column says %s but its line says %s: the row was changed", col, got, want))
				break
			}
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, scrub(fmt.Errorf("audit: postgres %s: read %s: %w", where, PostgresTable, err), secrets)
	}
	if nodes == 0 {
		v.BeginSource(where)
	}
	return v.Finish(), nil
}

// pgRow is a row's columns besides its line.
type pgRow struct {
	node, stream, kind string
	seqCol             int64
	time               time.Time
}

func (r *pgRow) seq() uint64 { return uint64(r.seqCol) }

// disagrees names the first column that says something other than the
// line, with both values.
func (r *pgRow) disagrees(lv *view) (col, got, want string) {
	switch {
	case r.stream != string(lv.stream):
		return "stream", r.stream, string(lv.stream)
	case r.seqCol < 1 || r.seq() != lv.seq:
		return "seq", fmt.Sprint(r.seqCol), fmt.Sprint(lv.seq)
	case r.kind != string(lv.kind):
		return "kind", r.kind, string(lv.kind)
	}
	if t, ok := parseTime(lv.time); ok && !t.Equal(r.time) {
		return "time", r.time.UTC().Format(timeLayout), string(lv.time)
	}
	return "", "", ""
}

// QueryPostgres is Query over the trail in the PostgreSQL database at
// rawURL: the records that match f, in the order they were inserted (all
// nodes together, each stream in seq order). Entry.Source is the redacted
// URL and Entry.LineNo the row's id. Like Query it decodes strictly but
// does not verify: run VerifyPostgres for that.
func QueryPostgres(ctx context.Context, rawURL string, f Filter) iter.Seq2[*Entry, error] {
	return func(yield func(*Entry, error) bool) {
		conn, where, secrets, err := openReader(ctx, rawURL)
		if err != nil {
			yield(nil, err)
			return
		}
		defer closeReader(conn)
		q, args := `SELECT id, line FROM `+PostgresTable, []any(nil)
		if !f.Since.IsZero() {
			// The filter below decides; this only spares the rows before.
			q += ` WHERE time >= $1`
			args = append(args, f.Since.Truncate(time.Microsecond))
		}
		rows, err := conn.Query(ctx, q+` ORDER BY id`, args...)
		if err != nil {
			yield(nil, scrub(fmt.Errorf("audit: postgres %s: read %s: %w", where, PostgresTable, err), secrets))
			return
		}
		defer rows.Close()
		sel := newSelector(f)
		e := Entry{Source: where}
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id, &e.Line); err != nil {
				yield(nil, scrub(fmt.Errorf("audit: postgres %s: read %s: %w", where, PostgresTable, err), secrets))
				return
			}
			e.LineNo = int(id)
			e.Record = Record{}
			var v view
			if err := decodeLine(e.Line, &v, &e.Record); err != nil {
				yield(nil, fmt.Errorf("audit: postgres %s: row id %d: not a record: %w", where, id, err))
				return
			}
			if sel.keep(&e.Record) && !yield(&e, nil) {
				return
			}
		}
		if err := rows.Err(); err != nil {
			yield(nil, scrub(fmt.Errorf("audit: postgres %s: read %s: %w", where, PostgresTable, err), secrets))
		}
	}
}
