package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kavachgate/kavach/issuer/store"
	"github.com/kavachgate/kavach/issuer/store/storetest"
)

func TestSQLite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return openSQLite(t, filepath.Join(t.TempDir(), "kavach.db"))
	})
}

func openSQLite(t *testing.T, path string) store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), "sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSQLiteFile: the file is private and in WAL mode, and reopening it
// keeps the data without applying a migration twice.
func TestSQLiteFile(t *testing.T) {
	t.Parallel()
	// ? and # in the path must stay part of the file name (in a file: URI
	// they would start SQLite's query and fragment: "mode=memory" would
	// lose every write).
	path := filepath.Join(t.TempDir(), "kavach?mode=memory#x.db")
	s := openSQLite(t, path)
	u := &store.User{ID: "usr_a", Name: "alice", CreatedAt: time.UnixMilli(1_750_000_000_000).UTC()}
	if err := s.CreateUser(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + "-wal"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatalf("%v (not in WAL mode?)", err)
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s: mode %o, want 600", filepath.Base(p), perm)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openSQLite(t, path)
	defer s.Close()
	if _, err := s.GetUser(context.Background(), "usr_a"); err != nil {
		t.Errorf("after reopening: %v", err)
	}
	db, err := sql.Open("sqlite", "file:"+strings.NewReplacer("?", "%3f", "#", "%23").Replace(path)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	checkMigrations(t, db)
}

// checkMigrations: every version is recorded once, from 1 up.
func checkMigrations(t *testing.T, db *sql.DB) {
	t.Helper()
	var rows, latest int
	if err := db.QueryRow(`SELECT count(*), max(version) FROM schema_migrations`).Scan(&rows, &latest); err != nil {
		t.Fatal(err)
	}
	if latest < 1 || rows != latest {
		t.Errorf("schema_migrations has %d rows up to version %d, want one per version", rows, latest)
	}
}

// TestSQLiteTwoStores: two stores on one file, as two processes would
// open it, write at once without SQLITE_BUSY.
func TestSQLiteTwoStores(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "kavach.db")
	stores := []store.Store{openSQLite(t, path), openSQLite(t, path)}
	defer stores[0].Close()
	defer stores[1].Close()
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Go(func() {
			id := fmt.Sprint("usr_", i)
			s := stores[i%2]
			if err := s.CreateUser(context.Background(), &store.User{ID: id, Name: id}); err != nil {
				errs <- err
				return
			}
			if _, err := stores[(i+1)%2].GetUser(context.Background(), id); err != nil {
				errs <- fmt.Errorf("%s written by one store, read by the other: %w", id, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestOpenUnknownKind(t *testing.T) {
	if _, err := store.Open(context.Background(), "mysql", "x"); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Errorf("Open(mysql): %v, want an unknown-kind error", err)
	}
}
