// Package pgtest runs a real PostgreSQL server for tests (CONVENTIONS.md
// "Tests that count"): one server per test binary, started on first use on
// a free loopback port, and a fresh database for every caller of Start.
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }
//
//	func TestStore(t *testing.T) {
//		url := pgtest.Start(t) // postgres://postgres@127.0.0.1:<port>/test_1?sslmode=disable
//		…
//	}
//
// The binaries are found under /usr/lib/postgresql/<version>/bin (the
// highest version; Debian's layout) or on PATH. initdb and postgres refuse
// to run as root, so as root they run as the postgres user through
// `runuser -u postgres --`, on a temporary directory it owns. Without
// PostgreSQL, Start skips the test, or fails it when CI=true.
//
// A test that takes the server down (to see how its code fails and
// recovers) gets one of its own from NewServer, so the other tests of the
// binary keep theirs:
//
//	srv := pgtest.NewServer(t)
//	url := srv.Database(t)
//	…
//	srv.Stop(t)    // or srv.Kill(t): an immediate shutdown, a crash
//	…
//	srv.Restart(t) // the same port and data
package pgtest

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
)

// The server is per test binary, so its state is too.
var (
	mu      sync.Mutex
	running bool    // Run is running the tests
	srv     *server // started by the first Start
	srvErr  error   // why it could not start
	dbs     int     // databases created
)

// errNotInstalled: the test is skipped (or fails under CI=true).
var errNotInstalled = errors.New("PostgreSQL is not installed (scripts/deps.sh installs it)")

// Run runs the tests and then stops the server if one was started. Call it
// from TestMain: Start refuses to run without it, as the server would
// outlive the test binary.
func Run(m *testing.M) int { return RunFunc(m.Run) }

// RunFunc is Run for a TestMain that runs the tests its own way (several
// passes of m.Run, say).
func RunFunc(run func() int) int {
	mu.Lock()
	running = true
	mu.Unlock()
	code := run()
	mu.Lock()
	defer mu.Unlock()
	if srv != nil {
		if err := srv.stop(); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest:", err)
			if code == 0 {
				code = 1
			}
		}
		srv = nil
	}
	return code
}

// Start returns the URL of a new, empty database on the test binary's
// server, dropped when the test ends.
func Start(t testing.TB) string {
	t.Helper()
	mu.Lock()
	if !running {
		mu.Unlock()
		t.Fatal("pgtest: call pgtest.Run from TestMain, so the server stops with the test binary")
	}
	if srv == nil && srvErr == nil {
		srv, srvErr = start()
	}
	s, err := srv, srvErr
	dbs++
	name := fmt.Sprintf("test_%d", dbs)
	mu.Unlock()

	switch {
	case errors.Is(err, errNotInstalled) && os.Getenv("CI") == "true":
		t.Fatal(err)
	case errors.Is(err, errNotInstalled):
		t.Skip(err)
	case err != nil:
		t.Fatalf("pgtest: %v", err)
	}
	if _, err := s.admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		// FORCE: a test that failed may have left connections open.
		if _, err := s.admin.Exec("DROP DATABASE " + name + " WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return s.url(name)
}

type server struct {
	bin     string // directory of initdb and postgres
	dir     string // temporary: data/, the socket, postgres.log
	asUser  bool   // run the binaries as the postgres user
	port    int
	cmd     *exec.Cmd
	done    chan struct{} // closed when cmd has exited
	admin   *sql.DB       // to the postgres database, for CREATE DATABASE
	logPath string
}

func (s *server) url(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, db)
}

func start() (_ *server, err error) {
	bin, err := findBin()
	if err != nil {
		return nil, err
	}
	s := &server{bin: bin, asUser: os.Geteuid() == 0}
	s.dir, err = os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, err
	}
	s.logPath = filepath.Join(s.dir, "postgres.log")
	defer func() {
		if err != nil {
			os.RemoveAll(s.dir)
		}
	}()
	if s.asUser {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root, PostgreSQL needs the postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(s.dir, uid, gid); err != nil {
			return nil, err
		}
	}
	// Trust on loopback only: the server listens nowhere else. --no-sync
	// and fsync=off below: a test database need not survive a power loss.
	initdb := s.command("initdb", "-D", filepath.Join(s.dir, "data"), "-U", "postgres", "--auth=trust",
		"--encoding=UTF8", "--locale=C", "--no-sync")
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	// A port found free can be taken before postgres binds it; try again.
	for try := 0; ; try++ {
		if s.port, err = freePort(); err != nil {
			return nil, err
		}
		err = s.run()
		switch {
		case err == nil:
			return s, nil
		case try == 2:
			return nil, err
		}
	}
}

// findBin returns the directory holding initdb and postgres: the highest
// version under /usr/lib/postgresql, else the one on PATH.
func findBin() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	best, bestVersion := "", []int(nil)
	for _, d := range dirs {
		if !isFile(filepath.Join(d, "initdb")) || !isFile(filepath.Join(d, "postgres")) {
			continue
		}
		v := version(filepath.Base(filepath.Dir(d)))
		if best == "" || compareVersions(v, bestVersion) > 0 {
			best, bestVersion = d, v
		}
	}
	if best != "" {
		return best, nil
	}
	if p, err := exec.LookPath("initdb"); err == nil && isFile(filepath.Join(filepath.Dir(p), "postgres")) {
		return filepath.Dir(p), nil
	}
	return "", errNotInstalled
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// version parses "15" or "9.6" (non-numbers count as 0).
func version(s string) []int {
	var v []int
	for _, f := range strings.Split(s, ".") {
		n, _ := strconv.Atoi(f)
		v = append(v, n)
	}
	return v
}

func compareVersions(a, b []int) int {
	for i := 0; i < len(a) || i < len(b); i++ {
		var x, y int
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if x != y {
			return x - y
		}
	}
	return 0
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// command runs a PostgreSQL binary, as the postgres user when we are root.
func (s *server) command(name string, args ...string) *exec.Cmd {
	path := filepath.Join(s.bin, name)
	var cmd *exec.Cmd
	if s.asUser {
		cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	// initdb and postgres change into their directory and complain when
	// they cannot return to a working directory they may not read.
	cmd.Dir = s.dir
	return cmd
}

// run starts postgres in the foreground (so its process is ours to track
// and stop) and waits until it accepts connections.
func (s *server) run() error {
	// Appended to, so a restarted server's log follows what came before.
	log, err := os.OpenFile(s.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close() // the child has its own descriptor
	cmd := s.command("postgres", "-D", filepath.Join(s.dir, "data"),
		"-h", "127.0.0.1", "-p", strconv.Itoa(s.port), "-k", s.dir,
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=300")
	cmd.Stdout, cmd.Stderr = log, log
	// If the test binary dies without Run's cleanup (a panic, a timeout),
	// the kernel sends the server (or runuser, which passes it on) SIGTERM.
	// Pdeathsig fires when the thread that started the child exits
	// (go.dev/issue/27505), so that thread stays locked to a goroutine
	// that lives as long as the child.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	started := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		cmd.Wait()
		close(done)
	}()
	if err := <-started; err != nil {
		return err
	}
	s.cmd, s.done = cmd, done

	admin, err := sql.Open("pgx", s.url("postgres"))
	if err != nil {
		s.shutdown()
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err = admin.PingContext(ctx)
		cancel()
		if err == nil {
			s.admin = admin
			return nil
		}
		select {
		case <-done:
			admin.Close()
			return fmt.Errorf("postgres exited: %s", s.logTail())
		default:
		}
		if time.Now().After(deadline) {
			admin.Close()
			s.shutdown()
			return fmt.Errorf("postgres not ready within 30 s: %v\n%s", err, s.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *server) logTail() string {
	b, _ := os.ReadFile(s.logPath)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-10):], "\n")
}

// stop shuts the server down and removes its directory.
func (s *server) stop() error {
	var err error
	if s.cmd != nil {
		s.admin.Close()
		err = s.shutdown()
	}
	return errors.Join(err, os.RemoveAll(s.dir))
}

// shutdown stops postgres with a fast shutdown (SIGINT to the postmaster:
// clients are disconnected, nothing waits for them), or an immediate one
// when that takes too long.
func (s *server) shutdown() error { return s.shutdownWith(syscall.SIGINT) }

// shutdownWith stops postgres with sig: SIGINT for a fast shutdown, SIGQUIT
// for an immediate one (no checkpoint: the next start recovers from the
// WAL, as after a crash).
func (s *server) shutdownWith(sig syscall.Signal) error {
	err := s.signal(sig)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		err = errors.Join(err, s.signal(syscall.SIGQUIT), errors.New("postgres did not stop within 30 s"))
		<-s.done
	}
	s.cmd = nil
	return err
}

// signal signals the postmaster we started. As root our child is runuser,
// which would turn SIGINT into a smart shutdown (SIGTERM); the postmaster's
// pid is in its pid file, valid while our child runs (runuser waits for
// it).
func (s *server) signal(sig syscall.Signal) error {
	if !s.asUser {
		return s.cmd.Process.Signal(sig)
	}
	b, err := os.ReadFile(filepath.Join(s.dir, "data", "postmaster.pid"))
	if err != nil {
		return err
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	pid, err := strconv.Atoi(string(line))
	if err != nil {
		return fmt.Errorf("postmaster.pid: %w", err)
	}
	select {
	case <-s.done:
		return nil // already gone: the pid may be someone else's now
	default:
	}
	return syscall.Kill(pid, sig)
}

// Server is a PostgreSQL server of one test's own (NewServer), which the
// test may stop and restart.
type Server struct {
	mu sync.Mutex
	s  *server
}

// NewServer starts a server for t alone, removed when t ends. Without
// PostgreSQL it skips t, or fails it when CI=true. Unlike Start it needs no
// Run in TestMain: the test's cleanup stops it.
func NewServer(t testing.TB) *Server {
	t.Helper()
	s, err := start()
	switch {
	case errors.Is(err, errNotInstalled) && os.Getenv("CI") == "true":
		t.Fatal(err)
	case errors.Is(err, errNotInstalled):
		t.Skip(err)
	case err != nil:
		t.Fatalf("pgtest: %v", err)
	}
	srv := &Server{s: s}
	t.Cleanup(func() {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		if err := srv.s.stop(); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return srv
}

// Database creates a new, empty database on the server and returns its
// URL. It is not dropped: the server goes with the test.
func (srv *Server) Database(t testing.TB) string {
	t.Helper()
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.s.cmd == nil {
		t.Fatal("pgtest: Database on a stopped server")
	}
	mu.Lock()
	dbs++
	name := fmt.Sprintf("test_%d", dbs)
	mu.Unlock()
	if _, err := srv.s.admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return srv.s.url(name)
}

// Port is the server's TCP port on 127.0.0.1; it stays the same across
// restarts.
func (srv *Server) Port() int { return srv.s.port }

// Stop stops the server with a fast shutdown: every connection is cut,
// transactions in progress are rolled back, committed ones are kept.
func (srv *Server) Stop(t testing.TB) { srv.down(t, syscall.SIGINT) }

// Kill stops the server with an immediate shutdown, as a crash would:
// no checkpoint is written and Restart recovers from the WAL. The server
// runs with synchronous_commit=off, so a crash may lose the last commits of
// sessions that did not set it on (fsync=off only matters for a power
// loss, which a test cannot have).
func (srv *Server) Kill(t testing.TB) { srv.down(t, syscall.SIGQUIT) }

func (srv *Server) down(t testing.TB, sig syscall.Signal) {
	t.Helper()
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.s.cmd == nil {
		t.Fatal("pgtest: the server is already stopped")
	}
	srv.s.admin.Close()
	if err := srv.s.shutdownWith(sig); err != nil {
		t.Fatalf("pgtest: stop: %v", err)
	}
}

// Restart starts the stopped server again on the same port with the same
// data, and waits until it accepts connections.
func (srv *Server) Restart(t testing.TB) {
	t.Helper()
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.s.cmd != nil {
		t.Fatal("pgtest: Restart of a running server")
	}
	if err := srv.s.run(); err != nil {
		t.Fatalf("pgtest: restart: %v", err)
	}
}
