package integration

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// chromiumPath finds the headless browser the browser tests drive
// (Debian's `chromium`, installed by scripts/deps.sh). Without it the test
// skips, except under CI=true, where a missing component fails the run.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"chromium", "/usr/bin/chromium"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed (scripts/deps.sh installs it)")
	}
	t.Skip("chromium is not installed; run scripts/deps.sh")
	return ""
}

// browser is one headless Chromium, started for one test and driven over
// the Chrome DevTools Protocol on its browser websocket. Only what the
// tests need: commands and their results, no event subscriptions.
type browser struct {
	conn   *websocket.Conn
	output *lockedBuffer

	mu      sync.Mutex
	nextID  int64
	pending map[int64]chan cdpMessage
	readErr error
	closed  chan struct{} // closed when the read loop ends
}

// cdpMessage is a CDP frame: a command, its response, or an event.
type cdpMessage struct {
	ID        int64           `json:"id,omitempty"`
	SessionID string          `json:"sessionId,omitempty"`
	Method    string          `json:"method,omitempty"`
	Params    any             `json:"params,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error,omitempty"`
}

// startBrowser runs chromium headless with a fresh profile and an
// ephemeral DevTools port (read from DevToolsActivePort in the profile),
// and stops it, by its pid, when the test ends.
func startBrowser(t *testing.T) *browser {
	t.Helper()
	bin := chromiumPath(t)
	profile := t.TempDir() // registered first, so removed after the browser is gone
	cmd := exec.Command(bin,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--remote-debugging-port=0", // loopback only; the port is in DevToolsActivePort
		"--user-data-dir="+profile,
		"--no-first-run", "--no-default-browser-check", "--disable-extensions",
		"--disable-sync", "--password-store=basic", "--window-size=900,1000",
		"about:blank")
	out := new(lockedBuffer)
	cmd.Stdout, cmd.Stderr = out, out
	setChildAttrs(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	b := &browser{output: out, pending: map[int64]chan cdpMessage{}, closed: make(chan struct{})}
	t.Cleanup(func() {
		if b.conn != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = b.call(ctx, "", "Browser.close", nil, nil)
			cancel()
		}
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				t.Errorf("chromium (pid %d) did not exit after SIGKILL", cmd.Process.Pid)
			}
		}
		if b.conn != nil {
			_ = b.conn.CloseNow()
		}
		if t.Failed() {
			t.Logf("chromium output (pid %d):\n%s", cmd.Process.Pid, out.String())
		}
	})

	// Chromium writes "<port>\n<browser websocket path>" once it listens.
	var port, path string
	deadline := time.Now().Add(30 * time.Second)
	for {
		data, err := os.ReadFile(filepath.Join(profile, "DevToolsActivePort"))
		if lines := strings.Split(strings.TrimSpace(string(data)), "\n"); err == nil && len(lines) == 2 {
			port, path = strings.TrimSpace(lines[0]), strings.TrimSpace(lines[1])
			break
		}
		select {
		case <-exited:
			t.Fatalf("chromium exited before opening its DevTools port:\n%s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("chromium did not open its DevTools port within 30s:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := strconv.Atoi(port); err != nil || !strings.HasPrefix(path, "/devtools/browser/") {
		t.Fatalf("unexpected DevToolsActivePort content: %q %q", port, path)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws://127.0.0.1:"+port+path, nil)
	if err != nil {
		t.Fatalf("connecting to chromium's DevTools websocket: %v", err)
	}
	conn.SetReadLimit(64 << 20) // screenshots arrive as one base64 message
	b.conn = conn
	go b.readLoop()
	return b
}

// readLoop hands each response to the call waiting for it; events are
// dropped.
func (b *browser) readLoop() {
	defer close(b.closed)
	for {
		_, data, err := b.conn.Read(context.Background())
		if err != nil {
			b.mu.Lock()
			b.readErr = err
			b.mu.Unlock()
			return
		}
		var m cdpMessage
		if json.Unmarshal(data, &m) != nil || m.ID == 0 {
			continue
		}
		b.mu.Lock()
		ch := b.pending[m.ID]
		delete(b.pending, m.ID)
		b.mu.Unlock()
		if ch != nil {
			ch <- m
		}
	}
}

// call sends one command (to a page when session is set) and decodes its
// result into result, if not nil.
func (b *browser) call(ctx context.Context, session, method string, params, result any) error {
	ch := make(chan cdpMessage, 1)
	b.mu.Lock()
	if b.readErr != nil {
		err := b.readErr
		b.mu.Unlock()
		return fmt.Errorf("%s: connection closed: %w", method, err)
	}
	b.nextID++
	id := b.nextID
	b.pending[id] = ch
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.pending, id)
		b.mu.Unlock()
	}()
	msg, err := json.Marshal(cdpMessage{ID: id, SessionID: session, Method: method, Params: params})
	if err != nil {
		return err
	}
	if err := b.conn.Write(ctx, websocket.MessageText, msg); err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	select {
	case m := <-ch:
		if m.Error != nil {
			return fmt.Errorf("%s: %s (%d)", method, m.Error.Message, m.Error.Code)
		}
		if result != nil {
			return json.Unmarshal(m.Result, result)
		}
		return nil
	case <-b.closed:
		return fmt.Errorf("%s: the DevTools connection closed", method)
	case <-ctx.Done():
		return fmt.Errorf("%s: %w", method, ctx.Err())
	}
}

// page is one browser tab, attached with a flat session.
type page struct {
	t       *testing.T
	b       *browser
	session string
}

// newPage opens a blank tab.
func (b *browser) newPage(t *testing.T) *page {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var target struct {
		TargetID string `json:"targetId"`
	}
	if err := b.call(ctx, "", "Target.createTarget", map[string]any{"url": "about:blank"}, &target); err != nil {
		t.Fatal(err)
	}
	var att struct {
		SessionID string `json:"sessionId"`
	}
	if err := b.call(ctx, "", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &att); err != nil {
		t.Fatal(err)
	}
	return &page{t: t, b: b, session: att.SessionID}
}

func (p *page) call(method string, params, result any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return p.b.call(ctx, p.session, method, params, result)
}

// navigate loads url in the tab; the page may still be loading when it
// returns (use waitFor).
func (p *page) navigate(url string) {
	p.t.Helper()
	var res struct {
		ErrorText string `json:"errorText"`
	}
	if err := p.call("Page.navigate", map[string]any{"url": url}, &res); err != nil {
		p.t.Fatal(err)
	}
	if res.ErrorText != "" {
		p.t.Fatalf("navigating to %s: %s", url, res.ErrorText)
	}
}

// eval runs a JavaScript expression in the page and decodes its value.
// DevTools evaluation is not subject to the page's CSP, which stays in
// force for everything the page itself does.
func (p *page) eval(expr string, out any) error {
	var res struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	if err := p.call("Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}, &res); err != nil {
		return err
	}
	if e := res.ExceptionDetails; e != nil {
		return fmt.Errorf("evaluating %q: %s %s", expr, e.Text, e.Exception.Description)
	}
	if out == nil {
		return nil
	}
	if len(res.Result.Value) == 0 {
		return errors.New("evaluation returned no value")
	}
	return json.Unmarshal(res.Result.Value, out)
}

// mustEval is eval failing the test on error.
func (p *page) mustEval(expr string, out any) {
	p.t.Helper()
	if err := p.eval(expr, out); err != nil {
		p.t.Fatal(err)
	}
}

// waitFor polls a boolean expression until it is true, for at most d.
// Evaluation errors count as "not yet" (the page may be navigating).
func (p *page) waitFor(what, expr string, d time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(d)
	var lastErr error
	for {
		var ok bool
		if lastErr = p.eval(expr, &ok); lastErr == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			var state struct{ URL, Text string }
			_ = p.eval(`({URL: location.href, Text: document.body ? document.body.innerText.slice(0, 600) : ""})`, &state)
			p.t.Fatalf("waiting for %s: not after %v (last error: %v)\nat %s\n%s", what, d, lastErr, state.URL, state.Text)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// fill focuses the input matching selector, clears it and types text as
// keyboard input.
func (p *page) fill(selector, text string) {
	p.t.Helper()
	var found bool
	p.mustEval(fmt.Sprintf(`(() => { const e = document.querySelector(%s); if (!e) return false; e.focus(); e.value = ""; return document.activeElement === e; })()`, jsString(selector)), &found)
	if !found {
		p.t.Fatalf("no focusable %s on the page", selector)
	}
	if err := p.call("Input.insertText", map[string]any{"text": text}, nil); err != nil {
		p.t.Fatal(err)
	}
}

// click presses and releases the left mouse button over the middle of the
// element matching selector, as a user would.
func (p *page) click(selector string) {
	p.t.Helper()
	var box struct {
		X, Y  float64
		Found bool
	}
	p.mustEval(fmt.Sprintf(`(() => { const e = document.querySelector(%s); if (!e) return {Found: false};
		e.scrollIntoView({block: "center"}); const r = e.getBoundingClientRect();
		return {Found: true, X: r.left + r.width / 2, Y: r.top + r.height / 2}; })()`, jsString(selector)), &box)
	if !box.Found {
		p.t.Fatalf("no %s on the page to click", selector)
	}
	for _, typ := range []string{"mouseMoved", "mousePressed", "mouseReleased"} {
		ev := map[string]any{"type": typ, "x": box.X, "y": box.Y}
		if typ != "mouseMoved" {
			ev["button"], ev["clickCount"] = "left", 1
		}
		if err := p.call("Input.dispatchMouseEvent", ev, nil); err != nil {
			p.t.Fatal(err)
		}
	}
}

// screenshot captures the viewport as PNG.
func (p *page) screenshot() []byte {
	p.t.Helper()
	var res struct {
		Data string `json:"data"`
	}
	if err := p.call("Page.captureScreenshot", map[string]any{"format": "png"}, &res); err != nil {
		p.t.Fatal(err)
	}
	png, err := base64.StdEncoding.DecodeString(res.Data)
	if err != nil {
		p.t.Fatalf("screenshot: %v", err)
	}
	return png
}
