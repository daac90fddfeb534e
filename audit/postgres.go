package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// PostgresTable is the table of the PostgreSQL sink, in the first schema of
// the connection's search_path (set one with ?search_path=… in the URL).
const PostgresTable = "kavach_audit"

// DefaultPostgresTimeout bounds one connection attempt and one Append of
// the PostgreSQL sink.
const DefaultPostgresTimeout = 10 * time.Second

// postgresSchema creates the table (see PostgresSink). line holds the
// exact bytes the hash covers (the line without its '\n'); the other
// columns repeat what the line says, to order and find rows with SQL.
var postgresSchema = []string{
	`CREATE TABLE ` + PostgresTable + ` (
	id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	node   text NOT NULL,
	stream text NOT NULL,
	seq    bigint NOT NULL CHECK (seq > 0),
	kind   text NOT NULL,
	time   timestamptz NOT NULL,
	line   bytea NOT NULL,
	CONSTRAINT ` + PostgresTable + `_stream_seq UNIQUE (stream, seq)
)`,
	`CREATE INDEX ` + PostgresTable + `_node ON ` + PostgresTable + ` (node, id)`,
	`CREATE INDEX ` + PostgresTable + `_time ON ` + PostgresTable + ` (time)`,
}

// Advisory lock keys (pg_advisory_lock's one 64-bit space per database):
// one for creating the table, one per node for its writer.
var postgresSchemaLock = lockKey("kavach audit schema")

func nodeLockKey(node string) int64 { return lockKey("kavach audit node\x00" + node) }

func lockKey(s string) int64 {
	h := sha256.Sum256([]byte(s))
	return int64(binary.BigEndian.Uint64(h[:8]))
}

// PostgresOptions configure OpenPostgres.
type PostgresOptions struct {
	// Node names this process's chain of streams in the shared table: the
	// node column of every row it writes. Tail is the node's last record,
	// so each new stream of a node links to the one before it, and verify
	// checks each node's chain on its own. One process writes as a node at
	// a time (OpenPostgres fails with ErrLocked for a second one): give
	// every gateway process that shares a database its own node name.
	// [A-Za-z0-9._-]{1,128}. Default: the hostname, its other bytes
	// replaced by '_' (as in StreamID).
	Node string
	// Timeout bounds one connection attempt and one Append. Default
	// DefaultPostgresTimeout.
	Timeout time.Duration
	// Logger, when set, hears about each failed attempt while
	// OpenPostgres waits for the database (the URL without its password).
	Logger *slog.Logger
}

// PostgresSink is the PostgreSQL sink (DESIGN.md §6): a central trail that
// many gateways write to and that SQL can query. Every line, checkpoints
// included, is one row of the table kavach_audit:
//
//	id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY  -- insertion order
//	node   text NOT NULL         -- PostgresOptions.Node of the writer
//	stream text NOT NULL         -- the line's stream
//	seq    bigint NOT NULL       -- the line's seq; UNIQUE (stream, seq)
//	kind   text NOT NULL         -- the line's kind
//	time   timestamptz NOT NULL  -- the line's time (microseconds)
//	line   bytea NOT NULL        -- the line, byte for byte, without '\n'
//
// with indexes on (node, id) and (time). The hash covers line's bytes, so
// they are stored as bytea, never re-encoded; convert_from(line, 'UTF8')
// ::jsonb reads a record in SQL. Verify checks the other columns against
// the line.
//
//   - OpenPostgres creates the table when it is missing, under an advisory
//     lock, so gateways starting together on a new database create it
//     once; a role that may only SELECT and INSERT works once it exists.
//   - One writer per node: the sink holds a session advisory lock on its
//     node (released when its connection ends), the database's counterpart
//     of the file sink's flock. OpenPostgres waits for the lock while its
//     ctx allows (Timeout without a deadline), then fails with ErrLocked.
//     The session asks the server for TCP keepalives, so a writer whose
//     host died loses its session, and the lock, within some 20 s. Connect
//     directly or through a pooler in session mode: transaction pooling
//     would lose the lock.
//   - Tail is the node's last record (the last row the node inserted, the
//     highest seq of that stream), checked like the file sink's: it must
//     decode and chain from the row before it, else ErrTailInvalid.
//   - Append inserts the batch with one INSERT statement, a transaction of
//     its own: all rows or none. The session runs with synchronous_commit
//     on, so an acknowledged batch survives a crash of the server. A retry
//     of a batch whose commit succeeded but whose answer was lost hits
//     UNIQUE (stream, seq); the sink then reads those rows back and, when
//     they hold the batch's bytes exactly, reports success without
//     duplicating them. After any other error it drops the connection; the
//     next Append reconnects, takes the node's lock again and checks that
//     the node's last row is still its own last one (or the batch it is
//     retrying). When another process wrote as the node in between, rows
//     it was told were durable are gone (a failover to a replica that had
//     not received them), or the rows of its stream hold other bytes, the
//     sink fails for good with ErrSinkBroken rather than fork or hide a
//     gap in the node's chain; the gateway answers 503 until it restarts
//     with a new stream.
//   - Errors never show the URL's password (RedactURL).
type PostgresSink struct {
	cfg     *pgx.ConnConfig
	where   string // redacted URL, for messages
	secrets []string
	node    string
	timeout time.Duration
	log     *slog.Logger

	conn   *pgx.Conn // nil while disconnected
	tail   Tail      // found when the sink opened
	last   Tail      // the node's last durable record
	broken error
	closed bool

	// Reused by Append.
	seqs  []int64
	kinds []string
	times []time.Time
	lines [][]byte
}

// IsPostgresURL reports whether s is a PostgreSQL connection URL
// (postgres:// or postgresql://), the form the PostgreSQL sink, verify
// and query accept.
func IsPostgresURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// CheckPostgresURL reports whether rawURL is a PostgreSQL connection URL
// that the driver accepts, without connecting. Its error never holds the
// password.
func CheckPostgresURL(rawURL string) error {
	_, _, err := parsePostgresURL(rawURL)
	return err
}

func parsePostgresURL(rawURL string) (*pgx.ConnConfig, []string, error) {
	where := RedactURL(rawURL)
	if !IsPostgresURL(rawURL) {
		return nil, nil, fmt.Errorf("audit: postgres: %s: want a postgres:// or postgresql:// URL", where)
	}
	if _, err := url.Parse(rawURL); err != nil {
		return nil, nil, fmt.Errorf("audit: postgres: %s is not a valid URL", where)
	}
	cfg, err := pgx.ParseConfig(rawURL)
	if err != nil {
		// pgx's message quotes the URL (redacted, on a best-effort basis);
		// say less rather than risk it.
		return nil, nil, fmt.Errorf("audit: postgres: %s is not a valid connection URL", where)
	}
	switch sc := cfg.RuntimeParams["synchronous_commit"]; sc {
	case "":
		// Append promises durability, whatever the server's default.
		cfg.RuntimeParams["synchronous_commit"] = "on"
	case "off":
		return nil, nil, fmt.Errorf("audit: postgres: %s: synchronous_commit=off would acknowledge records before they are durable", where)
	}
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = "kavach-audit"
	}
	// The server ends the session of a writer whose host died within some
	// 20 s (5 s idle, then 3 probes 5 s apart), releasing the node's lock
	// for its successor.
	for k, v := range map[string]string{"tcp_keepalives_idle": "5", "tcp_keepalives_interval": "5", "tcp_keepalives_count": "3"} {
		if _, ok := cfg.RuntimeParams[k]; !ok {
			cfg.RuntimeParams[k] = v
		}
	}
	var secrets []string
	if cfg.Password != "" {
		secrets = append(secrets, cfg.Password)
	}
	if u, err := url.Parse(rawURL); err == nil {
		if p, ok := u.User.Password(); ok && p != "" {
			secrets = append(secrets, p, url.QueryEscape(p), url.PathEscape(p))
		}
		for k, vs := range u.Query() {
			if secretParam(k) {
				for _, v := range vs {
					if v != "" {
						secrets = append(secrets, v, url.QueryEscape(v))
					}
				}
			}
		}
	}
	return cfg, secrets, nil
}

func secretParam(k string) bool {
	k = strings.ToLower(k)
	return k == "password" || k == "sslpassword"
}

// RedactURL returns rawURL with its password (in the user info, or as a
// password or sslpassword parameter) replaced by xxxxx, for messages and
// reports. A string that does not parse as a URL is not shown at all.
func RedactURL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme == "" {
		return "(a database URL that does not parse)"
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	if u.RawQuery != "" {
		q := u.Query()
		changed := false
		for k := range q {
			if secretParam(k) {
				q.Set(k, "xxxxx")
				changed = true
			}
		}
		if changed {
			u.RawQuery = q.Encode()
		}
	}
	return u.String()
}

// redactedError is an error whose message had secrets taken out.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// scrub replaces any of secrets in err's message with xxxxx.
func scrub(err error, secrets []string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	out := msg
	for _, s := range secrets {
		out = strings.ReplaceAll(out, s, "xxxxx")
	}
	if out == msg {
		return err
	}
	return &redactedError{msg: out, err: err}
}

// OpenPostgres connects to the database at rawURL (postgres:// or
// postgresql://), creates the table when it is missing, takes the node's
// lock and reads the node's tail (see PostgresSink). While ctx allows it
// retries a server it cannot reach or that is starting up; a refusal
// (authentication, no such database) fails at once.
func OpenPostgres(ctx context.Context, rawURL string, opts PostgresOptions) (*PostgresSink, error) {
	cfg, secrets, err := parsePostgresURL(rawURL)
	if err != nil {
		return nil, err
	}
	if opts.Node == "" {
		host, _ := os.Hostname()
		opts.Node = nodeName(host)
	}
	if err := CheckPostgresNode(opts.Node); err != nil {
		return nil, err
	}
	setDefault(&opts.Timeout, DefaultPostgresTimeout)
	s := &PostgresSink{cfg: cfg, where: RedactURL(rawURL), secrets: secrets, node: opts.Node, timeout: opts.Timeout, log: opts.Logger}
	if err := s.open(ctx); err != nil {
		if s.conn != nil {
			s.dropConn()
		}
		return nil, err
	}
	return s, nil
}

// CheckPostgresNode reports whether node can name a node of the
// PostgreSQL sink (PostgresOptions.Node).
func CheckPostgresNode(node string) error {
	if !validStream(node) {
		return fmt.Errorf("audit: postgres: node %q is not 1–%d bytes of [A-Za-z0-9._-]", node, MaxStreamBytes)
	}
	return nil
}

// nodeName is the default node: the hostname in the stream alphabet.
func nodeName(host string) string { return string(appendNode(nil, host, MaxStreamBytes)) }

func (s *PostgresSink) open(ctx context.Context) error {
	if err := s.connectRetry(ctx); err != nil {
		return err
	}
	if err := s.ensureSchema(ctx); err != nil {
		return err
	}
	lctx, cancel := ctx, context.CancelFunc(func() {})
	if _, ok := ctx.Deadline(); !ok {
		lctx, cancel = context.WithTimeout(ctx, s.timeout)
	}
	err := s.lock(lctx)
	cancel()
	if err != nil {
		return err
	}
	tctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	t, err := readNodeTail(tctx, s.conn, s.node, s.where)
	if err != nil {
		return s.errorf(err, "read the tail of node %s", s.node)
	}
	s.tail, s.last = t, t
	return nil
}

// errorf wraps err with where and what, its secrets scrubbed.
func (s *PostgresSink) errorf(err error, format string, a ...any) error {
	if errors.Is(err, ErrTailInvalid) || errors.Is(err, ErrLocked) || errors.Is(err, ErrSinkBroken) {
		return scrub(err, s.secrets)
	}
	return scrub(fmt.Errorf("audit: postgres %s: %s: %w", s.where, fmt.Sprintf(format, a...), err), s.secrets)
}

// connectRetry connects, retrying transient failures until ctx is done
// (once when ctx has no deadline).
func (s *PostgresSink) connectRetry(ctx context.Context) error {
	_, retry := ctx.Deadline()
	backoff := RetryMin
	for {
		err := s.connect(ctx)
		if err == nil {
			return nil
		}
		if !retry || !transient(err) {
			return err
		}
		if s.log != nil {
			s.log.Warn("audit: waiting for the PostgreSQL trail", "error", err.Error(), "retry_in", backoff.String())
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		backoff = min(2*backoff, RetryMax)
	}
}

// transient: the server could not be reached or is not ready; anything it
// refused (a wrong password, no such database) is not.
func transient(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return true
	}
	switch pe.Code[:2] {
	case "08", "53", "57": // connection exception, insufficient resources, operator intervention (starting up)
		return true
	}
	return false
}

func (s *PostgresSink) connect(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, s.cfg)
	if err != nil {
		return s.errorf(err, "connect")
	}
	s.conn = conn
	return nil
}

func (s *PostgresSink) dropConn() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = s.conn.Close(ctx)
	s.conn = nil
}

// ensureSchema creates the table when it is missing. The check comes
// first so that a role without CREATE can use an existing table. Creators
// queue on a session advisory lock, and each checks again in a
// transaction begun after it holds the lock (one begun before would not
// see the table the previous holder committed).
func (s *PostgresSink) ensureSchema(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	exists := func() (bool, error) {
		var ok bool
		err := s.conn.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, PostgresTable).Scan(&ok)
		return ok, err
	}
	ok, err := exists()
	if err != nil {
		return s.errorf(err, "look for table %s", PostgresTable)
	}
	if ok {
		return nil
	}
	if _, err := s.conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, postgresSchemaLock); err != nil {
		return s.errorf(err, "create table %s", PostgresTable)
	}
	if ok, err = exists(); err == nil && !ok {
		err = pgx.BeginFunc(ctx, s.conn, func(tx pgx.Tx) error {
			for _, q := range postgresSchema {
				if _, err := tx.Exec(ctx, q); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if _, uerr := s.conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, postgresSchemaLock); err == nil {
		err = uerr
	}
	if err != nil {
		return s.errorf(err, "create table %s", PostgresTable)
	}
	return nil
}

// lock takes the node's session advisory lock on the current connection,
// waiting for it while ctx allows: a previous holder's session may take a
// moment to end after it closed its connection, and some 20 s after its
// host died (see the keepalive settings in parsePostgresURL).
func (s *PostgresSink) lock(ctx context.Context) error {
	for {
		var ok bool
		err := s.conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, nodeLockKey(s.node)).Scan(&ok)
		switch {
		case ok:
			return nil
		case err != nil && ctx.Err() == nil:
			return s.errorf(err, "lock node %s", s.node)
		}
		t := time.NewTimer(lockPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w: node %s of %s is held by another connection: one gateway process per node (give each its own node name)", ErrLocked, s.node, s.where)
		case <-t.C:
		}
	}
}

// lockPoll is how often lock asks again for a node held by another.
const lockPoll = 50 * time.Millisecond

// readNodeTail reads and checks the node's last record: the highest seq of
// the stream of the node's last inserted row, which must decode, agree
// with its columns, and chain from the row before it.
func readNodeTail(ctx context.Context, conn *pgx.Conn, node, where string) (Tail, error) {
	invalid := func(format string, a ...any) (Tail, error) {
		return Tail{}, fmt.Errorf("%w: %s node %s: %s", ErrTailInvalid, where, node, fmt.Sprintf(format, a...))
	}
	// One statement: one snapshot.
	rows, err := conn.Query(ctx, `SELECT stream, seq, line FROM `+PostgresTable+` WHERE node = $1 AND stream =
	(SELECT stream FROM `+PostgresTable+` WHERE node = $1 ORDER BY id DESC LIMIT 1) ORDER BY seq DESC LIMIT 2`, node)
	if err != nil {
		return Tail{}, err
	}
	var stream string
	var seqs []int64
	var lines [][]byte
	for rows.Next() {
		var seq int64
		var line []byte
		if err := rows.Scan(&stream, &seq, &line); err != nil {
			rows.Close()
			return Tail{}, err
		}
		seqs, lines = append(seqs, seq), append(lines, line)
	}
	if err := rows.Err(); err != nil {
		return Tail{}, err
	}
	if len(lines) == 0 {
		return Tail{}, nil
	}
	var v view
	if err := decodeLine(lines[0], &v, nil); err != nil {
		return invalid("its last record (stream %s seq %d) is not a record: %v", stream, seqs[0], err)
	}
	if string(v.stream) != stream || v.seq != uint64(seqs[0]) {
		return invalid("the row of stream %s seq %d holds the line of stream %s seq %d", stream, seqs[0], v.stream, v.seq)
	}
	var prev [32]byte
	switch {
	case len(lines) == 2:
		var pv view
		if err := decodeLine(lines[1], &pv, nil); err != nil {
			return invalid("the record before its last (stream %s seq %d) is not a record: %v", stream, seqs[1], err)
		}
		if pv.seq+1 != v.seq || string(pv.stream) != stream {
			return invalid("its last record (stream %s seq %d) does not follow the one before it", stream, v.seq)
		}
		prev = pv.hash
		if v.prev != nil && string(v.prev) != hex.EncodeToString(prev[:]) {
			return invalid("the last record (stream %s seq %d) does not link to the one before it", stream, v.seq)
		}
	case v.seq != 1:
		return invalid("its last stream %s holds only seq %d", stream, v.seq)
	case v.prev != nil:
		decodeHex(prev[:], v.prev)
	}
	if hashOf(prev, v.body) != v.hash {
		return invalid("the last record (stream %s seq %d) was changed: its hash does not match", stream, v.seq)
	}
	return Tail{Found: true, Stream: stream, Seq: v.seq, Hash: v.hash}, nil
}

// Node is the sink's node name.
func (s *PostgresSink) Node() string { return s.node }

// Tail returns the node's tail found when the sink opened.
func (s *PostgresSink) Tail(context.Context) (Tail, error) { return s.tail, nil }

const postgresInsert = `INSERT INTO ` + PostgresTable + ` (node, stream, seq, kind, time, line)
SELECT $1, $2, u.seq, u.kind, u.time, u.line
FROM unnest($3::bigint[], $4::text[], $5::timestamptz[], $6::bytea[]) WITH ORDINALITY AS u(seq, kind, time, line, n)
ORDER BY u.n`

// Append inserts the batch in one statement (see PostgresSink).
func (s *PostgresSink) Append(ctx context.Context, b *Batch) error {
	switch {
	case s.closed:
		return fmt.Errorf("audit: append to postgres %s: sink closed", s.where)
	case s.broken != nil:
		return fmt.Errorf("%w: %v", ErrSinkBroken, s.broken)
	case b.Len() == 0:
		return nil
	}
	if err := s.columns(b); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if s.conn == nil {
		if err := s.reconnect(ctx, b); err != nil {
			return err
		}
	}
	tag, err := s.conn.Exec(ctx, postgresInsert, s.node, b.Stream, s.seqs, s.kinds, s.times, s.lines)
	if err == nil && tag.RowsAffected() != int64(b.Len()) {
		err = fmt.Errorf("inserted %d rows of %d", tag.RowsAffected(), b.Len())
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" && pe.ConstraintName == PostgresTable+"_stream_seq" {
		// Nothing was inserted. A retry of a batch that did commit finds
		// its own rows; anything else is another writer's.
		err = s.alreadyThere(ctx, b)
		if errors.Is(err, ErrSinkBroken) {
			s.broken = err
			return err
		}
	}
	if err != nil {
		// The outcome may be unknown (the answer lost with the
		// connection): the next try reconnects and checks the node's tail.
		s.dropConn()
		return s.errorf(err, "append stream %s seq %d–%d", b.Stream, b.Lines[0].Seq, b.Lines[b.Len()-1].Seq)
	}
	l := b.Lines[b.Len()-1]
	s.last = Tail{Found: true, Stream: b.Stream, Seq: l.Seq, Hash: l.Hash}
	return nil
}

// columns fills the column arrays of b's rows; each line must start with
// its own seq and stream, so the columns agree with the bytes.
func (s *PostgresSink) columns(b *Batch) error {
	s.seqs, s.kinds, s.times, s.lines = s.seqs[:0], s.kinds[:0], s.times[:0], s.lines[:0]
	var head []byte
	for i, l := range b.Lines {
		line := b.Line(i)
		line = line[:len(line)-1]
		head = append(head[:0], `{"seq":`...)
		head = strconv.AppendUint(head, l.Seq, 10)
		head = append(head, `,"stream":"`...)
		head = append(head, b.Stream...)
		head = append(head, `","time":"`...)
		if l.Seq > 1<<63-1 || !bytes.HasPrefix(line, head) || len(line) < len(head)+timeLen {
			return fmt.Errorf("%w: line %d of the batch is not stream %s seq %d", ErrInvalidRecord, i, b.Stream, l.Seq)
		}
		t, ok := parseTime(line[len(head) : len(head)+timeLen])
		if !ok {
			return fmt.Errorf("%w: line %d of the batch has no valid time", ErrInvalidRecord, i)
		}
		s.seqs = append(s.seqs, int64(l.Seq))
		s.kinds = append(s.kinds, string(l.Kind))
		s.times = append(s.times, t)
		s.lines = append(s.lines, line)
	}
	return nil
}

// reconnect connects again, takes the node's lock, and checks that the
// node's chain ends where this sink left it, or with the batch b (a
// commit whose answer was lost).
func (s *PostgresSink) reconnect(ctx context.Context, b *Batch) error {
	if err := s.connect(ctx); err != nil {
		return err
	}
	if err := s.lock(ctx); err != nil {
		s.dropConn()
		return err
	}
	t, err := readNodeTail(ctx, s.conn, s.node, s.where)
	if err != nil {
		s.dropConn()
		return s.errorf(err, "read the tail of node %s", s.node)
	}
	l := b.Lines[b.Len()-1]
	if t == s.last || t == (Tail{Found: true, Stream: b.Stream, Seq: l.Seq, Hash: l.Hash}) {
		return nil
	}
	last := "no record"
	if t.Found {
		last = fmt.Sprintf("stream %s seq %d", t.Stream, t.Seq)
	}
	s.broken = fmt.Errorf("postgres %s: node %s now ends with %s, not this writer's last record: another process wrote as node %s", s.where, s.node, last, s.node)
	s.dropConn()
	return fmt.Errorf("%w: %v", ErrSinkBroken, s.broken)
}

// alreadyThere checks that the rows of b's stream and seqs hold exactly
// b's lines (a batch that committed before); an error wrapping
// ErrSinkBroken when they hold anything else.
func (s *PostgresSink) alreadyThere(ctx context.Context, b *Batch) error {
	first, last := b.Lines[0].Seq, b.Lines[b.Len()-1].Seq
	rows, err := s.conn.Query(ctx, `SELECT node, seq, line FROM `+PostgresTable+` WHERE stream = $1 AND seq BETWEEN $2 AND $3 ORDER BY seq`,
		b.Stream, int64(first), int64(last))
	if err != nil {
		return err
	}
	defer rows.Close()
	i := 0
	for rows.Next() {
		var node string
		var seq int64
		var line []byte
		if err := rows.Scan(&node, &seq, &line); err != nil {
			return err
		}
		if i >= b.Len() || uint64(seq) != b.Lines[i].Seq || node != s.node || !bytes.Equal(line, s.lines[i]) {
			return fmt.Errorf("%w: postgres %s: stream %s seq %d is already in the table with other bytes: another writer uses this stream", ErrSinkBroken, s.where, b.Stream, seq)
		}
		i++
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if i != b.Len() {
		return fmt.Errorf("%w: postgres %s: stream %s holds %d of the %d rows of seq %d–%d: another writer uses this stream", ErrSinkBroken, s.where, b.Stream, i, b.Len(), first, last)
	}
	return nil
}

// Close ends the connection, which releases the node's lock.
func (s *PostgresSink) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	if s.conn != nil {
		s.dropConn()
	}
	return nil
}

// Interface guards
var _ Sink = (*PostgresSink)(nil)
