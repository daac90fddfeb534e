package store_test

import (
	"context"
	"database/sql"
	"os"
	"testing"

	"github.com/kavachgate/kavach/internal/pgtest"
	"github.com/kavachgate/kavach/issuer/store"
	"github.com/kavachgate/kavach/issuer/store/storetest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

func TestPostgres(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := store.Open(context.Background(), "postgres", pgtest.Start(t))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestPostgresConcurrentOpen: issuers starting together on a new database
// all open it, and each migration is applied once.
func TestPostgresConcurrentOpen(t *testing.T) {
	t.Parallel()
	url := pgtest.Start(t)
	const n = 8
	errs := make(chan error, n)
	for range n {
		go func() {
			s, err := store.OpenPostgres(context.Background(), url)
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
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	checkMigrations(t, db)
}
