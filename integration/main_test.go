// Package integration runs the built kavach binary and, as later issues add
// them, real Redis, PostgreSQL and MCP clients, all on loopback.
package integration

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/kavachgate/kavach/internal/pgtest"
)

// kavachBin is the binary under test, built once by TestMain with the flags
// `make build` uses so the build cache is shared.
var kavachBin string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "kavach-it-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	kavachBin = filepath.Join(dir, "kavach")

	build := exec.Command("go", "build", "-trimpath", "-o", kavachBin, "../cmd/kavach")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building kavach:", err)
		return 1
	}
	// pgtest.Run stops the PostgreSQL server a test may have started.
	return pgtest.Run(m)
}

// postgresURL is a new, empty database on a real PostgreSQL server (one per
// test binary, started on first use).
func postgresURL(t *testing.T) string { return pgtest.Start(t) }

// kavach runs the binary and returns stdout; a non-zero exit fails the test.
func kavach(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, errOut, err := kavachRun(dir, args...)
	if err != nil {
		t.Fatalf("kavach %v: %v\nstderr: %s", args, err, errOut)
	}
	return out
}

func kavachRun(dir string, args ...string) (stdout, stderr string, err error) {
	cmd := exec.Command(kavachBin, args...)
	cmd.Dir = dir
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}
