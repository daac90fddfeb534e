package kavach

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
)

// TestXcaddyBuild builds Caddy with this checkout as a plugin, as the
// README says (`xcaddy build <caddy> --with
// github.com/kavachgate/kavach@v0.0.0=<checkout>`), and checks that the
// result has every Kavach module and every CLI subcommand: the proof that
// they are registered from an imported package, not from cmd/kavach's main.
//
// The version in --with matters while the module is unpublished: without
// one, xcaddy's `go get` asks the module proxy (then git) for the
// module's latest version, and uses the local replacement only if the
// answer is a clean "not found", which a proxy answering 403, or no
// network, is not. For an exact version go falls back to the replacement
// whatever the lookup answers.
//
// It needs xcaddy (scripts/deps.sh installs it): without it the test skips,
// except under CI=true, where it fails. The build takes minutes with a cold
// cache; it uses the Makefile's BUILDFLAGS and the go command's cgo
// setting, so it reuses what `make build` compiled.
func TestXcaddyBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping a full xcaddy build")
	}
	t.Parallel()
	xcaddy := findXcaddy(t)

	var m struct {
		Caddy string `json:"caddy"`
	}
	if err := json.Unmarshal([]byte(read(t, "xcaddy.json")), &m); err != nil {
		t.Fatalf("xcaddy.json: %v", err)
	}
	root, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "caddy")

	ctx := t.Context()
	if d, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.Add(-30*time.Second))
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, xcaddy, "build", m.Caddy,
		"--with", "github.com/kavachgate/kavach@v0.0.0="+root, "--output", bin)
	cmd.Dir = dir
	cmd.Env = xcaddyEnv(t)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("xcaddy build: %v\n%s", err, log.String())
	}
	t.Logf("xcaddy build %s took %s", m.Caddy, time.Since(start).Round(time.Second))

	run := func(args ...string) string {
		t.Helper()
		c := exec.CommandContext(ctx, bin, args...)
		c.Dir = dir
		var o, e bytes.Buffer
		c.Stdout, c.Stderr = &o, &e
		if err := c.Run(); err != nil {
			t.Fatalf("%s %v: %v\nstderr: %s", filepath.Base(bin), args, err, e.String())
		}
		return o.String()
	}

	if v := run("version"); !strings.HasPrefix(v, m.Caddy+" ") && strings.TrimSpace(v) != m.Caddy {
		t.Errorf("version = %q, want Caddy %s (xcaddy.json)", strings.TrimSpace(v), m.Caddy)
	}

	// Modules: the three the README names, and every Kavach module this
	// checkout registers (this test binary imports the same packages).
	mods := fields(run("list-modules"))
	want := []string{"kavach", "http.handlers.kavach", "http.handlers.kavach_issuer"}
	for _, id := range caddy.Modules() {
		if strings.Contains(id, "kavach") && !slices.Contains(want, id) {
			want = append(want, id)
		}
	}
	for _, id := range want {
		if !slices.Contains(mods, id) {
			t.Errorf("list-modules of the xcaddy build lacks %s", id)
		}
	}
	if !slices.Contains(mods, "http.handlers.reverse_proxy") {
		t.Error("list-modules of the xcaddy build lacks Caddy's standard modules (http.handlers.reverse_proxy)")
	}

	// Subcommands: Kavach's, and every command registered in this test
	// binary (Caddy's own and Kavach's), in `help`.
	help := fields(run("help"))
	cmds := []string{"keys", "token", "audit", "revoke", "agent", "user"}
	for name := range caddycmd.Commands() {
		if !slices.Contains(cmds, name) {
			cmds = append(cmds, name)
		}
	}
	for _, name := range cmds {
		if !slices.Contains(help, name) {
			t.Errorf("help of the xcaddy build does not list %q", name)
		}
	}
	// A nested verb (CobraFunc) runs, not only the listing.
	run("keys", "generate", "--out", "key.jwk")
	if _, err := os.Stat(filepath.Join(dir, "key.jwk")); err != nil {
		t.Errorf("keys generate in the xcaddy build wrote no key: %v", err)
	}
}

// fields is the first word of every line of out (module ids of
// list-modules, command names of help).
func fields(out string) []string {
	var f []string
	for l := range strings.Lines(out) {
		if w := strings.Fields(l); len(w) > 0 {
			f = append(f, w[0])
		}
	}
	return f
}

// findXcaddy finds xcaddy on PATH or where `go install` puts it (GOBIN,
// else GOPATH/bin, which need not be on PATH). Missing, the test skips,
// or fails under CI=true.
func findXcaddy(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("xcaddy"); err == nil {
		return p
	}
	var dirs []string
	for _, v := range []string{"GOBIN", "GOPATH"} {
		out, err := exec.Command("go", "env", v).Output()
		if err != nil {
			continue
		}
		for _, d := range filepath.SplitList(strings.TrimSpace(string(out))) {
			if v == "GOPATH" {
				d = filepath.Join(d, "bin")
			}
			dirs = append(dirs, d)
		}
	}
	for _, d := range dirs {
		p := filepath.Join(d, "xcaddy")
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	msg := "xcaddy is not installed (not on PATH, nor in " + strings.Join(dirs, ", ") + "): run scripts/deps.sh"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// xcaddyEnv is the environment of the xcaddy build: the Makefile's
// BUILDFLAGS and the go command's own CGO_ENABLED (xcaddy turns cgo off
// unless CGO_ENABLED=1, which would change every package's build key), so
// packages `make build` compiled come from the build cache; no workspace,
// and no -mod flag in GOFLAGS, since xcaddy runs `go get` and `go mod
// tidy` in a module of its own.
func xcaddyEnv(t *testing.T) []string {
	t.Helper()
	cgo, err := exec.Command("go", "env", "CGO_ENABLED").Output()
	if err != nil {
		t.Fatalf("go env CGO_ENABLED: %v", err)
	}
	var goflags []string
	for _, f := range strings.Fields(os.Getenv("GOFLAGS")) {
		if !strings.HasPrefix(f, "-mod=") && !strings.HasPrefix(f, "--mod=") {
			goflags = append(goflags, f)
		}
	}
	set := map[string]string{
		"XCADDY_GO_BUILD_FLAGS": makeVar(t, "BUILDFLAGS"),
		"CGO_ENABLED":           strings.TrimSpace(string(cgo)),
		"GOWORK":                "off",
		"GOFLAGS":               strings.Join(goflags, " "),
	}
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		_, ours := set[k]
		return ours || strings.HasPrefix(k, "XCADDY_") || k == "CADDY_VERSION"
	})
	for k, v := range set {
		env = append(env, k+"="+v)
	}
	return env
}

// makeVar is the default value of a `VAR ?= value` line of the Makefile.
func makeVar(t *testing.T, name string) string {
	t.Helper()
	for l := range strings.Lines(read(t, "Makefile")) {
		k, v, ok := strings.Cut(l, "?=")
		if ok && strings.TrimSpace(k) == name {
			return strings.TrimSpace(v)
		}
	}
	t.Fatal(errors.New("the Makefile sets no " + name + " ?= …"))
	return ""
}
