package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
	_ "modernc.org/sqlite"             // registers "sqlite"
)

// Open opens the store of the given kind: "sqlite" with a file path, or
// "postgres" with a connection URL.
func Open(ctx context.Context, kind, dsn string) (Store, error) {
	switch kind {
	case "sqlite":
		return OpenSQLite(ctx, dsn)
	case "postgres":
		return OpenPostgres(ctx, dsn)
	}
	return nil, fmt.Errorf(`store: unknown kind %q (want "sqlite" or "postgres")`, kind)
}

// sqliteBusyTimeoutMS is how long a connection waits for a lock another
// process holds (another kavach, or the sqlite3 shell) before failing.
const sqliteBusyTimeoutMS = 10000

// OpenSQLite opens (creating it 0600 when absent) the SQLite database at
// path and brings its schema up to date.
//
// The database runs in WAL mode with synchronous=NORMAL (a commit survives
// a crash of the process; a power loss may lose the last ones, never
// corrupt the file). Writes go through one connection whose transactions
// begin IMMEDIATE, so they queue in database/sql instead of failing with
// SQLITE_BUSY; reads go through a pool of read-only connections, which WAL
// lets run beside the writer.
func OpenSQLite(ctx context.Context, path string) (Store, error) {
	if path == "" {
		return nil, errors.New("store: sqlite: empty path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("store: sqlite: %w", err)
	}
	// SQLite would create the file with the umask's permissions; the store
	// holds password and secret hashes, so it is created private. The -wal
	// and -shm files take the database file's permissions.
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: sqlite: %w", err)
	}
	f.Close()

	// A file: URI, so that a path containing ? or # stays a path.
	uri := "file:" + strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(abs) +
		fmt.Sprintf("?_pragma=busy_timeout(%d)&_pragma=foreign_keys(1)", sqliteBusyTimeoutMS)
	w, err := sql.Open("sqlite", uri+"&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("store: sqlite: %w", err)
	}
	w.SetMaxOpenConns(1)
	// WAL is set (persistently) by the writer, so migrate before any
	// reader connects.
	if err := migrate(ctx, w, sqliteDialect); err != nil {
		w.Close()
		return nil, err
	}
	r, err := sql.Open("sqlite", uri+"&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("store: sqlite: %w", err)
	}
	readers := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(readers)
	r.SetMaxIdleConns(readers)
	if err := r.PingContext(ctx); err != nil {
		w.Close()
		r.Close()
		return nil, fmt.Errorf("store: sqlite: %w", err)
	}
	return &sqlStore{d: sqliteDialect, w: w, r: r}, nil
}

// postgresMaxConns bounds the pool so that a burst of requests queues in
// the issuer instead of exhausting the server's max_connections.
const postgresMaxConns = 16

// OpenPostgres connects to the PostgreSQL database at url (a libpq URL or
// key=value string, as pgx accepts) and brings its schema up to date.
// Concurrent opens of one database are safe: migrations run under an
// advisory lock.
func OpenPostgres(ctx context.Context, url string) (Store, error) {
	db, err := sql.Open("pgx", url)
	if err != nil {
		return nil, fmt.Errorf("store: postgres: %w", err)
	}
	db.SetMaxOpenConns(postgresMaxConns)
	db.SetMaxIdleConns(postgresMaxConns)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: postgres: %w", err)
	}
	if err := migrate(ctx, db, postgresDialect); err != nil {
		db.Close()
		return nil, err
	}
	return &sqlStore{d: postgresDialect, w: db, r: db}, nil
}
