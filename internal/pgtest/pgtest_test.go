package pgtest

import (
	"context"
	"database/sql"
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
