package integration

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kavachgate/kavach/token"
)

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// lockedBuffer collects a child's output while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// childEnv is the environment of every kavach child process: Caddy's data
// and config directories inside dir (autosave, generated admin token), so
// tests never touch the user's, plus extra.
func childEnv(dir string, extra ...string) []string {
	env := make([]string, 0, len(os.Environ())+len(extra)+3)
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "XDG_DATA_HOME", "XDG_CONFIG_HOME", "KAVACH_ADMIN_TOKEN":
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "XDG_DATA_HOME="+filepath.Join(dir, "xdg-data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "xdg-config"))
	return append(env, extra...)
}

// kavachEnv runs the binary with childEnv(dir, env...) and returns its
// stdout, stderr and exit error.
func kavachEnv(dir string, env []string, args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, kavachBin, args...)
	cmd.Dir = dir
	cmd.Env = childEnv(dir, env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	return o.String(), e.String(), err
}

// gatewayProc is a `kavach run` child process.
type gatewayProc struct {
	cmd    *exec.Cmd
	output *lockedBuffer
	exited chan struct{}
}

// startGateway runs `kavach run --config Caddyfile --adapter caddyfile` in
// dir with childEnv(dir, env...), waits until every port in ports accepts
// connections, and kills the process (by its pid) when the test ends,
// printing its output if the test failed.
func startGateway(t *testing.T, dir string, env []string, ports ...int) *gatewayProc {
	t.Helper()
	cmd := exec.Command(kavachBin, "run", "--config", "Caddyfile", "--adapter", "caddyfile")
	cmd.Dir = dir
	cmd.Env = childEnv(dir, env...)
	out := new(lockedBuffer)
	cmd.Stdout, cmd.Stderr = out, out
	setChildAttrs(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting kavach run: %v", err)
	}
	p := &gatewayProc{cmd: cmd, output: out, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			t.Errorf("kavach run (pid %d) did not exit after SIGKILL", cmd.Process.Pid)
		}
		if t.Failed() {
			t.Logf("kavach run output (pid %d):\n%s", cmd.Process.Pid, out.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for _, port := range ports {
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		for {
			c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-p.exited:
				t.Fatalf("kavach run exited before listening on %s:\n%s", addr, out.String())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("kavach run did not listen on %s within 30s:\n%s", addr, out.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return p
}

// seen is one request as the upstream received it.
type seen struct {
	Method     string
	RequestURI string
	Host       string
	Header     http.Header
	Body       []byte
	BodyErr    error // from reading the body to its end
}

// upstream is the protected service: it records every request it gets and
// answers 200 "upstream ok".
type upstream struct {
	srv  *httptest.Server
	mu   sync.Mutex
	reqs []seen
}

func newUpstream(t *testing.T) *upstream { return newUpstreamReplying(t, nil) }

// newUpstreamReplying is newUpstream answering with reply, when not nil,
// after recording the request (body is what was read of it).
func newUpstreamReplying(t *testing.T, reply func(w http.ResponseWriter, r *http.Request, body []byte)) *upstream {
	t.Helper()
	u := &upstream{}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		u.mu.Lock()
		u.reqs = append(u.reqs, seen{Method: r.Method, RequestURI: r.RequestURI, Host: r.Host, Header: r.Header.Clone(), Body: body, BodyErr: err})
		u.mu.Unlock()
		if err != nil {
			return
		}
		if reply != nil {
			reply(w, r, body)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "upstream ok")
	}))
	t.Cleanup(u.srv.Close)
	return u
}

// addr is the upstream's host:port.
func (u *upstream) addr() string { return u.srv.Listener.Addr().String() }

// take returns and forgets the requests recorded so far.
func (u *upstream) take() []seen {
	u.mu.Lock()
	defer u.mu.Unlock()
	r := u.reqs
	u.reqs = nil
	return r
}

// waitTake waits up to d for at least one recorded request, then takes.
func (u *upstream) waitTake(d time.Duration) []seen {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		u.mu.Lock()
		n := len(u.reqs)
		u.mu.Unlock()
		if n > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return u.take()
}

// response is what a client got.
type response struct {
	Status int
	Header http.Header
	Body   string
}

var httpClient = &http.Client{
	Timeout: 15 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
}

// do sends req and reads the whole response.
func do(t *testing.T, req *http.Request) response {
	t.Helper()
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", req.Method, req.URL, err)
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: string(body)}
}

// newReq builds a request; a non-empty bearer is sent as Authorization.
func newReq(t *testing.T, method, url, bearer string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	return req
}

// rawHTTP writes request bytes as they are (no client-side path cleaning)
// to addr and parses the response.
func rawHTTP(t *testing.T, addr, request string) response {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := io.WriteString(c, request); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading response to %q: %v", strings.SplitN(request, "\r\n", 2)[0], err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return response{Status: resp.StatusCode, Header: resp.Header, Body: string(body)}
}

// challenge is a parsed WWW-Authenticate value (RFC 9110 §11.6.1).
type challenge struct {
	Scheme string
	Params map[string]string
}

// parseChallenge parses a single challenge: a scheme, then comma-separated
// name=value parameters whose values are tokens or quoted strings. Any
// duplicate or malformed parameter is an error.
func parseChallenge(s string) (challenge, error) {
	var c challenge
	scheme, rest, _ := strings.Cut(s, " ")
	if scheme == "" {
		return c, errors.New("no scheme")
	}
	c.Scheme, c.Params = scheme, map[string]string{}
	rest = strings.TrimSpace(rest)
	for rest != "" {
		eq := strings.IndexByte(rest, '=')
		if eq <= 0 {
			return c, fmt.Errorf("parameter without '=' in %q", rest)
		}
		name := strings.ToLower(strings.TrimSpace(rest[:eq]))
		rest = strings.TrimLeft(rest[eq+1:], " ")
		var val string
		if strings.HasPrefix(rest, `"`) {
			var b strings.Builder
			i := 1
			for ; i < len(rest) && rest[i] != '"'; i++ {
				if rest[i] == '\\' && i+1 < len(rest) {
					i++
				}
				b.WriteByte(rest[i])
			}
			if i >= len(rest) {
				return c, fmt.Errorf("unterminated quoted value for %s", name)
			}
			val, rest = b.String(), rest[i+1:]
		} else {
			end := strings.IndexByte(rest, ',')
			if end < 0 {
				end = len(rest)
			}
			val, rest = strings.TrimSpace(rest[:end]), rest[end:]
		}
		if _, dup := c.Params[name]; dup {
			return c, fmt.Errorf("duplicate parameter %s", name)
		}
		c.Params[name] = val
		rest = strings.TrimSpace(rest)
		if rest == "" {
			break
		}
		if rest[0] != ',' {
			return c, fmt.Errorf("expected ',' before %q", rest)
		}
		rest = strings.TrimSpace(rest[1:])
	}
	return c, nil
}

// signingKey reads a private key written by `kavach keys generate`.
func signingKey(t *testing.T, path string) *token.SigningKey {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	k, err := token.ParseSigningKey(data)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
