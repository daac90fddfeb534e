package store

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// dialect is what differs between SQLite and PostgreSQL. Queries are
// written once, with ? placeholders and the syntax both databases share
// (ON CONFLICT … DO UPDATE, RETURNING, WITH RECURSIVE); the dialect fills
// in the rest.
type dialect struct {
	name string
	// numbered: placeholders are $1, $2, … instead of ?.
	numbered bool
	// bytesType replaces {{bytes}} in migrations.
	bytesType string
	// greatest is the two-argument maximum function.
	greatest string
	// forShare and forUpdate are row-lock clauses. SQLite has none and needs
	// none: its transactions begin IMMEDIATE on the one writer connection,
	// so they never interleave.
	forShare, forUpdate string
	// migrationLock runs first in the migration transaction so that two
	// processes opening the same database never both apply a migration.
	migrationLock string
	// kind classifies a driver error as a unique or foreign-key violation.
	kind func(error) violation
}

type violation int

const (
	noViolation violation = iota
	uniqueViolation
	foreignKeyViolation
)

var sqliteDialect = &dialect{
	name:      "sqlite",
	bytesType: "BLOB",
	greatest:  "max",
	kind: func(err error) violation {
		var e *sqlite.Error
		if !errors.As(err, &e) {
			return noViolation
		}
		switch e.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return uniqueViolation
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return foreignKeyViolation
		}
		return noViolation
	},
}

// migrationLockKey is an arbitrary constant naming "kavach store
// migrations" among the database's advisory locks.
const migrationLockKey = 0x6b61766163680001

var postgresDialect = &dialect{
	name:          "postgres",
	numbered:      true,
	bytesType:     "BYTEA",
	greatest:      "GREATEST",
	forShare:      " FOR SHARE",
	forUpdate:     " FOR UPDATE",
	migrationLock: "SELECT pg_advisory_xact_lock(" + strconv.FormatInt(migrationLockKey, 10) + ")",
	kind: func(err error) violation {
		var e *pgconn.PgError
		if !errors.As(err, &e) {
			return noViolation
		}
		switch e.Code {
		case "23505": // unique_violation
			return uniqueViolation
		case "23503": // foreign_key_violation
			return foreignKeyViolation
		}
		return noViolation
	},
}

// rebind turns ? placeholders into $n for PostgreSQL. Queries never hold a
// ? inside a string literal.
func (d *dialect) rebind(query string) string {
	if !d.numbered {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 8)
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	return b.String()
}

// mapErr turns constraint violations into the store's errors: a duplicate
// key is ErrExists, a reference to a missing row ErrNotFound.
func (d *dialect) mapErr(err error) error {
	if err == nil {
		return nil
	}
	switch d.kind(err) {
	case uniqueViolation:
		return fmt.Errorf("%w: %w", ErrExists, err)
	case foreignKeyViolation:
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return err
}

// marks returns n placeholders separated by commas, for an IN list.
func marks(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}
