package pgtest

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"testing"
)

func TestMain(m *testing.M) { os.Exit(Run(m)) }

// TestStart: each caller gets its own database on a live server.
func TestStart(t *testing.T) {
	t.Parallel()
	urlA, urlB := Start(t), Start(t)
	if urlA == urlB {
		t.Fatalf("two callers got the same database %s", urlA)
	}
	a, b := open(t, urlA), open(t, urlB)
	if _, err := a.Exec(`CREATE TABLE only_in_a (x int)`); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := b.QueryRow(`SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Error("a table created in one test database is visible in another")
	}
}

// TestStartDropsDatabase: a database is dropped when its test ends, even
// with a connection left open.
func TestStartDropsDatabase(t *testing.T) {
	t.Parallel()
	var url string
	parent := t
	t.Run("user", func(t *testing.T) {
		url = Start(t)
		left, err := sql.Open("pgx", url)
		if err != nil {
			t.Fatal(err)
		}
		conn, err := left.Conn(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		// Closed by the parent, after Start's cleanup has dropped the
		// database under it.
		parent.Cleanup(func() { conn.Close(); left.Close() })
	})
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Ping(); err == nil {
		t.Errorf("database %s still exists after its test", url)
	}
}

func open(t *testing.T, url string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestServerStopRestart: a test's own server goes down (connections fail)
// and comes back on the same URL with what was committed, after a fast
// shutdown and after a crash alike.
func TestServerStopRestart(t *testing.T) {
	t.Parallel()
	srv := NewServer(t)
	url := srv.Database(t)
	db := open(t, url)
	if _, err := db.Exec(`CREATE TABLE kept (x int); INSERT INTO kept VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	for i, down := range []func(testing.TB){srv.Stop, srv.Kill} {
		down(t)
		if err := db.Ping(); err == nil {
			t.Fatalf("round %d: the database answers while the server is stopped", i)
		}
		srv.Restart(t)
		// The server runs with synchronous_commit=off, which a crash may
		// cost the last commits of; this one asks for it.
		if _, err := db.Exec(fmt.Sprintf(`BEGIN; SET LOCAL synchronous_commit TO on; INSERT INTO kept VALUES (%d); COMMIT`, i+2)); err != nil {
			t.Fatalf("round %d: after restart: %v", i, err)
		}
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM kept`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Errorf("%d rows after two restarts, want the 3 committed", n)
	}
}
