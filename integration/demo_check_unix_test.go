//go:build unix

package integration

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDemoCheckIdP runs `make demo-check IDP=1` as a user does, on free
// ports: the whole demo story (scripts/demo.sh --check), then sign-in
// through the demo's OpenID provider (demo/idp, the real OP of
// internal/oidctest) with its group's entitlements, a user outside the
// group refused, and an ID-JAG exchanged and replayed. Every step is
// checked by the script; the test asserts it passed and that the IdP
// steps ran.
func TestDemoCheckIdP(t *testing.T) {
	for _, tool := range []string{"make", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is not installed: make demo-check needs it", tool)
			}
			t.Skipf("%s is not installed: make demo-check needs it", tool)
		}
	}
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "make", "--no-print-directory", "-C", repo, "demo-check", "IDP=1")
	cmd.Env = append(os.Environ(), "KAVACH_DEMO_WORKDIR="+t.TempDir(),
		fmt.Sprintf("KAVACH_DEMO_GATEWAY_PORT=%d", freePort(t)), fmt.Sprintf("KAVACH_DEMO_ISSUER_PORT=%d", freePort(t)),
		fmt.Sprintf("KAVACH_DEMO_ADMIN_PORT=%d", freePort(t)), fmt.Sprintf("KAVACH_DEMO_UPSTREAM_PORT=%d", freePort(t)),
		fmt.Sprintf("KAVACH_DEMO_IDP_PORT=%d", freePort(t)))
	// Its own process group: on timeout the script gets SIGTERM and stops
	// the processes it started, as after a Ctrl-C.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	log := out.String()
	if err != nil {
		t.Fatalf("make demo-check IDP=1: %v\n%s", err, log)
	}
	for _, want := range []string{
		"ok    8. priya signs in: Kavach login → Sign in with Demo IdP → priya → consent → code → token",
		"ok    8. her token has what group platform-eng is entitled to: mcp:review pullrequest:read repository:read",
		"ok    8. priya's client tools/call read_diff: 200",
		"ok    8. marco (marketing) is refused once back from the IdP",
		"ok    9. the exchanged token: tools/call read_file: 200",
		"ok    9. the same ID-JAG again: 400 invalid_grant (replay)",
		"0 warnings, 0 failed",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("make demo-check IDP=1 did not report %q:\n%s", want, log)
		}
	}
}
