// Package redistest runs a real redis-server for tests (CONVENTIONS.md
// "Tests that count"): one process per caller, on a free loopback port,
// without persistence, killed (by its own pid) when the test ends.
//
//	srv := redistest.Start(t)
//	store := NewThing(srv.URL()) // redis://127.0.0.1:<port>/0
//	…
//	srv.Stop()    // Redis is down: see how the code fails
//	srv.Restart() // the same port, empty
//
// Without redis-server on PATH, Start skips the test, or fails it when
// CI=true (`make test` installs it).
package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is a redis-server process of one test.
type Server struct {
	t    testing.TB
	bin  string
	port int
	dir  string
	args []string // extra arguments of every start
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// Start starts redis-server on a free loopback port with args added to
// its command line, and stops it at cleanup.
func Start(t testing.TB, args ...string) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("redis-server missing: make test installs it")
		}
		t.Skip("redis-server missing: make test installs it")
	}
	s := &Server{t: t, bin: bin, dir: t.TempDir(), args: args}
	t.Cleanup(s.Stop)
	// A free port can be taken between our probe and redis' bind.
	for try := 0; ; try++ {
		s.port = freePort(t)
		err := s.tryStart()
		if err == nil {
			return s
		}
		if try == 2 {
			t.Fatalf("redis-server did not start: %v", err)
		}
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Restart starts the server again on the same port, empty, with extra
// arguments for this start only. Stop it first.
func (s *Server) Restart(extra ...string) {
	s.t.Helper()
	if err := s.tryStart(extra...); err != nil {
		s.t.Fatalf("redis-server did not restart on port %d: %v", s.port, err)
	}
}

func (s *Server) tryStart(extra ...string) error {
	args := []string{
		"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--enable-debug-command", "local",
		"--dir", s.dir, "--logfile", filepath.Join(s.dir, "redis.log"),
	}
	args = append(append(args, s.args...), extra...)
	cmd := exec.Command(s.bin, args...)
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.cmd, s.done = cmd, done

	c := redis.NewClient(&redis.Options{Addr: s.Addr(), Protocol: 2, DialTimeout: 200 * time.Millisecond, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := c.Ping(context.Background()).Err()
		// NOAUTH: up, with a password.
		if err == nil || redis.HasErrorPrefix(err, "NOAUTH") {
			return nil
		}
		select {
		case <-done:
			log, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
			s.cmd = nil
			return fmt.Errorf("exited: %s", lastLines(string(log), 5))
		default:
		}
		if time.Now().After(deadline) {
			s.Stop()
			return fmt.Errorf("no PONG within 10 s: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// Stop kills the server (by its own pid) and waits for it. Stopping a
// stopped server does nothing.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// URL is the server's redis:// URL, database 0.
func (s *Server) URL() string { return "redis://" + s.Addr() + "/0" }

// Client is a plain client for the test's own commands, closed when the
// test ends.
func (s *Server) Client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), Protocol: 2})
	s.t.Cleanup(func() { _ = c.Close() })
	return c
}
