package audit

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// pgBrowser browses the PostgreSQL sink's table. A page is one indexed
// query: the rows before the cursor's id (the primary key, newest first),
// at most MaxScan ids back, with the filter in SQL over the line as
// jsonb (the line is the exact JSON the hash covers); the rows it returns
// are decoded strictly and filtered again. Outcomes are joined by a
// second query over the ids just after the page's decisions.
type pgBrowser struct {
	url   string
	where string
	opts  BrowseOptions

	mu   sync.Mutex // one query at a time on conn
	conn *pgx.Conn
	*statusCache
}

func openPostgresBrowser(ctx context.Context, rawURL string, o BrowseOptions) (Browser, error) {
	if _, _, err := parsePostgresURL(rawURL); err != nil {
		return nil, err
	}
	b := &pgBrowser{url: rawURL, where: RedactURL(rawURL), opts: o}
	pv := &pgVerifier{url: rawURL, opts: o, nodes: map[string]*nodeState{}}
	b.statusCache = newStatusCache(o, pv.pass, TrailStatus{Source: "postgres", KeyFingerprint: "sha256 " + KeyFingerprint(o.Pub)})
	return b, nil
}

func (b *pgBrowser) Close() error {
	err := b.statusCache.Close()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.conn != nil {
		closeReader(b.conn)
		b.conn = nil
	}
	return err
}

func (b *pgBrowser) Browse(ctx context.Context, f Filter, limit int) ([]BrowseEntry, error) {
	p, err := b.BrowsePage(ctx, f, limit, "")
	return p.Entries, err
}

// pgLine is the line as jsonb, for the filter.
const pgLine = `(convert_from(line, 'UTF8')::jsonb)`

// pgWhere is the filter in SQL: what it cannot say (names) it widens to,
// and the decoded records are filtered again.
func pgWhere(f *Filter, args []any) ([]string, []any) {
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	conds := []string{`kind <> 'outcome'`, `kind <> 'checkpoint'`}
	if len(f.Kinds) > 0 {
		kinds := make([]string, len(f.Kinds))
		for i, k := range f.Kinds {
			kinds[i] = string(k)
		}
		conds = append(conds, `kind = ANY(`+arg(kinds)+`)`)
	}
	if !f.Since.IsZero() {
		conds = append(conds, `time >= `+arg(f.Since.Truncate(time.Microsecond)))
	}
	if !f.Until.IsZero() {
		conds = append(conds, `time <= `+arg(f.Until))
	}
	for _, c := range []struct{ member, v string }{{"decision", string(f.Decision)}, {"tool", f.Tool}, {"request_id", f.RequestID}} {
		if c.v != "" {
			conds = append(conds, pgLine+`->>'`+c.member+`' = `+arg(c.v))
		}
	}
	if f.Chain != "" {
		conds = append(conds, pgLine+`->'chain' ? `+arg(f.Chain))
	}
	if f.Agent != "" {
		ids := arg(namedIDs(f.Agent, f.Names.agentMap()))
		conds = append(conds, `(`+pgLine+`->>'actor' = ANY(`+ids+`) OR `+pgLine+`->>'client_id' = ANY(`+ids+`) OR `+pgLine+`->'agents' ?| `+ids+`)`)
	}
	var who []string
	if f.Sub != "" {
		who = append(who, pgLine+`->>'sub' = ANY(`+arg(namedIDs(f.Sub, f.Names.userMap()))+`)`)
	}
	if len(f.Roots) > 0 {
		who = append(who, pgLine+`->'chain'->>0 = ANY(`+arg(f.Roots)+`)`)
	}
	if len(who) > 0 {
		conds = append(conds, `(`+strings.Join(who, " OR ")+`)`)
	}
	return conds, args
}

func (n *Names) agentMap() map[string]string {
	if n == nil {
		return nil
	}
	return n.Agents
}

func (n *Names) userMap() map[string]string {
	if n == nil {
		return nil
	}
	return n.Users
}

// namedIDs are the ids a filter value names: itself, and the ids of that
// name.
func namedIDs(v string, names map[string]string) []string {
	ids := []string{v}
	for id, name := range names {
		if name == v {
			ids = append(ids, id)
		}
	}
	return ids
}

func parseRowCursor(s string) (int64, error) {
	rest, ok := strings.CutPrefix(s, "r")
	n, err := strconv.ParseInt(rest, 10, 64)
	if !ok || err != nil || n < 1 || strconv.FormatInt(n, 10) != rest {
		return 0, ErrBadCursor
	}
	return n, nil
}

func (b *pgBrowser) BrowsePage(ctx context.Context, f Filter, limit int, cursor string) (Page, error) {
	var page Page
	limit = limitOf(limit)
	var upper int64
	if cursor != "" {
		var err error
		if upper, err = parseRowCursor(cursor); err != nil {
			return page, err
		}
	}
	if err := CheckStatusFilter(f.Status); err != nil {
		return page, err
	}
	if _, _, err := b.kick(); err != nil {
		return page, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	page, err := b.page(ctx, &f, limit, upper)
	if err != nil && b.conn != nil && b.conn.IsClosed() {
		b.conn = nil
	}
	return page, err
}

func (b *pgBrowser) page(ctx context.Context, f *Filter, limit int, upper int64) (Page, error) {
	var page Page
	if b.conn == nil {
		conn, _, _, err := openReader(ctx, b.url)
		if err != nil {
			return page, err
		}
		b.conn = conn
	}
	fail := func(err error) (Page, error) {
		_, secrets, _ := parsePostgresURL(b.url)
		return page, scrub(fmt.Errorf("audit: postgres %s: browse %s: %w", b.where, PostgresTable, err), secrets)
	}
	if upper == 0 {
		err := b.conn.QueryRow(ctx, `SELECT coalesce(max(id), 0) + 1 FROM `+PostgresTable).Scan(&upper)
		if noTable(err) {
			return page, nil // no writer created the table yet: nothing written
		}
		if err != nil {
			return fail(err)
		}
	}
	floor := max(upper-int64(b.opts.MaxScan), 1)
	conds, args := pgWhere(f, []any{upper, floor})
	conds = append(conds, `id < $1`, `id >= $2`)
	q := `SELECT id, line FROM ` + PostgresTable + ` WHERE ` + strings.Join(conds, " AND ") + ` ORDER BY id DESC`
	sqlLimit := 0
	if f.Status == "" {
		// Without a status filter the SQL filter is exact up to names.
		sqlLimit = limit
		q += ` LIMIT ` + strconv.Itoa(limit)
	}
	rows, err := b.conn.Query(ctx, q, args...)
	if err != nil {
		return fail(err)
	}
	type cand struct {
		id  int64
		rec *Record
	}
	var cands []cand
	var lastID int64
	n := 0
	for rows.Next() {
		var id int64
		var line []byte
		if err := rows.Scan(&id, &line); err != nil {
			rows.Close()
			return fail(err)
		}
		n++
		lastID = id
		rec := new(Record)
		var v view
		if decodeLine(line, &v, rec) != nil {
			page.Skipped++
			continue
		}
		cands = append(cands, cand{id, rec})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fail(err)
	}
	// Outcomes come after their decisions: look in the ids after the
	// page's, up to MaxScan past its newest.
	outcomes := map[string]*Record{}
	var reqs []string
	for _, c := range cands {
		if c.rec.RequestID != "" {
			reqs = append(reqs, c.rec.RequestID)
		}
	}
	if len(reqs) > 0 {
		lo, hi := cands[len(cands)-1].id, cands[0].id+int64(b.opts.MaxScan)
		rows, err := b.conn.Query(ctx, `SELECT line FROM `+PostgresTable+` WHERE kind = 'outcome' AND id > $1 AND id <= $2 AND `+pgLine+`->>'request_id' = ANY($3) ORDER BY id DESC`, lo, hi, reqs)
		if err != nil {
			return fail(err)
		}
		for rows.Next() {
			var line []byte
			if err := rows.Scan(&line); err != nil {
				rows.Close()
				return fail(err)
			}
			rec := new(Record)
			var v view
			if decodeLine(line, &v, rec) == nil && rec.Kind == KindOutcome {
				remember(outcomes, rec)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fail(err)
		}
	}
	cov := b.coverage()
	for _, c := range cands {
		out := outcomes[c.rec.RequestID]
		if c.rec.RequestID == "" {
			out = nil
		}
		if !f.selectEntry(c.rec, out) {
			continue
		}
		page.Entries = append(page.Entries, BrowseEntry{Decision: *c.rec, Outcome: out, Seq: c.rec.Seq, Stream: c.rec.Stream, Covered: cov.covers(c.rec.Stream, c.rec.Seq)})
		if len(page.Entries) == limit {
			page.Next = "r" + strconv.FormatInt(c.id, 10)
			page.Scanned = int(upper - c.id)
			return page, nil
		}
	}
	switch {
	case sqlLimit > 0 && n == sqlLimit:
		page.Next, page.Scanned = "r"+strconv.FormatInt(lastID, 10), int(upper-lastID)
	case floor > 1:
		page.Next, page.Scanned = "r"+strconv.FormatInt(floor, 10), int(upper-floor)
	default:
		page.Scanned = int(upper - 1)
	}
	return page, nil
}

// pgVerifier verifies the PostgreSQL trail incrementally, node by node:
// each node's rows are its chain in id order (one writer per node at a
// time), so a pass feeds each node's Verifier the rows after the last id
// it verified. A node whose first row changed, whose last verified row is
// gone, or FullEvery after its last full pass, is verified from its first
// row again. (Unlike VerifyPostgres, a stream id repeated in two nodes is
// not looked for.)
type pgVerifier struct {
	url   string
	opts  BrowseOptions
	conn  *pgx.Conn
	nodes map[string]*nodeState
}

type nodeState struct {
	v      *Verifier
	prog   chainProgress
	first  int64 // the node's first id
	last   int64 // the last id verified
	fullAt time.Time
}

// pgNodes lists the nodes with their first ids, in the order they first
// wrote, walking the (node, id) index: a skip scan rather than a scan of
// the table.
const pgNodes = `WITH RECURSIVE n(node) AS (
	SELECT min(node) FROM ` + PostgresTable + `
	UNION ALL
	SELECT (SELECT min(node) FROM ` + PostgresTable + ` WHERE node > n.node) FROM n WHERE n.node IS NOT NULL
)
SELECT node, (SELECT min(id) FROM ` + PostgresTable + ` a WHERE a.node = n.node) AS first FROM n WHERE node IS NOT NULL ORDER BY first`

func (pv *pgVerifier) pass(ctx context.Context) (TrailStatus, coverage) {
	st := TrailStatus{Source: "postgres", KeyFingerprint: "sha256 " + KeyFingerprint(pv.opts.Pub)}
	_, secrets, _ := parsePostgresURL(pv.url)
	problem := func(err error) (TrailStatus, coverage) {
		if pv.conn != nil && pv.conn.IsClosed() {
			pv.conn = nil
		}
		st.Problem = scrub(fmt.Errorf("audit: postgres %s: verify: %w", RedactURL(pv.url), err), secrets).Error()
		return st, coverage{}
	}
	if pv.conn == nil {
		conn, _, _, err := openReader(ctx, pv.url)
		if err != nil {
			st.Problem = err.Error()
			return st, coverage{}
		}
		pv.conn = conn
	}
	type nodeRow struct {
		node  string
		first int64
	}
	var nodes []nodeRow
	rows, err := pv.conn.Query(ctx, pgNodes)
	if noTable(err) {
		st.Source = "postgres (0 nodes)"
		return st, coverage{} // no writer created the table yet
	}
	if err != nil {
		return problem(err)
	}
	for rows.Next() {
		var n nodeRow
		if err := rows.Scan(&n.node, &n.first); err != nil {
			rows.Close()
			return problem(err)
		}
		nodes = append(nodes, n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return problem(err)
	}
	st.Source = "postgres (" + count(len(nodes), "node") + ")"
	var vs []*Verifier
	var newest chainProgress
	for _, n := range nodes {
		ns := pv.nodes[n.node]
		reset := ns == nil || ns.first != n.first || time.Since(ns.fullAt) >= pv.opts.FullEvery
		if !reset && ns.last > 0 {
			var ok bool
			if err := pv.conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+PostgresTable+` WHERE id = $1 AND node = $2)`, ns.last, n.node).Scan(&ok); err != nil {
				return problem(err)
			}
			reset = !ok
		}
		if reset {
			ns = &nodeState{v: NewVerifier(ctx, pv.opts.Pub, VerifyOptions{}), first: n.first, fullAt: time.Now()}
			ns.v.BeginSource(fmt.Sprintf("postgres (node %s)", n.node))
			pv.nodes[n.node] = ns
		}
		if !ns.v.stopped {
			if err := pv.feed(ctx, n.node, ns); err != nil {
				return problem(err)
			}
		}
		vs = append(vs, ns.v)
		if ns.prog.ckpt.Stream != "" && !ns.prog.ckptAt.Before(newest.ckptAt) {
			newest = ns.prog
		}
	}
	for name := range pv.nodes {
		if !containsNode(nodes, func(n nodeRow) bool { return n.node == name }) {
			delete(pv.nodes, name)
		}
	}
	cov := statusOf(&st, &newest, vs...)
	return st, cov
}

func containsNode[T any](s []T, f func(T) bool) bool {
	for _, v := range s {
		if f(v) {
			return true
		}
	}
	return false
}

// feed verifies the node's rows after the last one verified.
func (pv *pgVerifier) feed(ctx context.Context, node string, ns *nodeState) error {
	rows, err := pv.conn.Query(ctx, `SELECT id, stream, seq, kind, time, line FROM `+PostgresTable+` WHERE node = $1 AND id > $2 ORDER BY id`, node, ns.last)
	if err != nil {
		return err
	}
	defer rows.Close()
	var (
		r    pgRow
		id   int64
		line []byte
		lv   view
	)
	for rows.Next() {
		if err := rows.Scan(&id, &r.stream, &r.seqCol, &r.kind, &r.time, &line); err != nil {
			return err
		}
		if !ns.prog.line(ns.v, line) {
			break
		}
		ns.last = id
		if ns.v.diag != nil {
			continue
		}
		if decodeLine(line, &lv, nil) == nil {
			if col, got, want := r.disagrees(&lv); col != "" {
				ns.v.fail(FaultEdited, r.stream, r.seq(), fmt.Sprintf("the row's %s column says %s but its line says %s: the row was changed", col, got, want))
				break
			}
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

// noTable reports whether err says the table does not exist (42P01).
func noTable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "42P01"
}
