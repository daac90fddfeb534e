package issuer

import (
	"os"
	"testing"

	"github.com/kavachgate/kavach/internal/pgtest"
)

// TestMain stops the PostgreSQL server the agent tests start (pgtest.Start)
// when the test binary is done.
func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }
