package kavach

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestXcaddyManifestInStep keeps xcaddy.json, go.mod, the Makefile and
// cmd/kavach describing the same build.
func TestXcaddyManifestInStep(t *testing.T) {
	var m struct {
		Caddy  string   `json:"caddy"`
		With   []string `json:"with"`
		Output string   `json:"output"`
	}
	data, err := os.ReadFile("xcaddy.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("xcaddy.json: %v", err)
	}
	gomod := read(t, "go.mod")
	module := regexp.MustCompile(`(?m)^module (\S+)$`).FindStringSubmatch(gomod)
	caddy := regexp.MustCompile(`(?m)^\s*github.com/caddyserver/caddy/v2 (v\S+)`).FindStringSubmatch(gomod)
	if module == nil || caddy == nil {
		t.Fatal("go.mod names no module or no caddy/v2 requirement")
	}
	if m.Caddy != caddy[1] {
		t.Errorf("xcaddy.json pins caddy %s, go.mod requires %s", m.Caddy, caddy[1])
	}
	if !slices.Contains(m.With, module[1]) {
		t.Errorf("xcaddy.json does not build --with %s", module[1])
	}
	if !strings.Contains(read(t, "Makefile"), "-o "+m.Output+" ./cmd/kavach") {
		t.Errorf("Makefile's build does not write %s", m.Output)
	}
	main := read(t, "cmd/kavach/main.go")
	for _, imp := range []string{`"` + module[1] + `"`, `"github.com/caddyserver/caddy/v2/modules/standard"`} {
		if !strings.Contains(main, imp) {
			t.Errorf("cmd/kavach does not import %s", imp)
		}
	}
	if !strings.Contains(read(t, "imports.go"), `"`+module[1]+`/caddymodule"`) {
		t.Error("imports.go does not import caddymodule")
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
