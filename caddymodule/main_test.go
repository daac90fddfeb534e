package caddymodule_test

import (
	"os"
	"testing"

	"github.com/kavachgate/kavach/internal/pgtest"
)

// TestMain stops the PostgreSQL server of the tests that use one
// (pgtest.Start) when the tests end.
func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }
