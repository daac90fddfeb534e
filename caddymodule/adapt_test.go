package caddymodule_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/caddytest"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/kavachgate/kavach/caddymodule"
)

// TestCaddyfileAdapt runs every testdata/*.caddyfiletest: a Caddyfile, a
// line of ten dashes, then either the JSON the Caddyfile adapts to or, when
// that part does not start with '{', text the adapter's error must contain
// (Caddyfile errors name the line as "Caddyfile:<n>"). A JSON result may be
// followed by a line "---------- warnings" and the warnings Kavach's
// directives must give, one a line as "Caddyfile:<n>: <text the message
// contains>"; without it they must give none.
func TestCaddyfileAdapt(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.caddyfiletest"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no testdata/*.caddyfiletest files")
	}
	newlines := regexp.MustCompile(`\r?\n`)
	for _, file := range files {
		name := filepath.Base(file)
		t.Run(strings.TrimSuffix(name, ".caddyfiletest"), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			text := newlines.ReplaceAllString(string(data), "\n")
			parts := strings.Split(text, "\n----------\n")
			if len(parts) != 2 {
				t.Fatalf("%s: want one line of ten dashes between the Caddyfile and the expected result, found %d parts", name, len(parts))
			}
			caddyfile, expected := strings.TrimSpace(parts[0])+"\n", strings.TrimSpace(parts[1])
			if expected == "" {
				t.Fatalf("%s: the expected result is empty", name)
			}

			adapter := caddyconfig.GetAdapter("caddyfile")
			if adapter == nil {
				t.Fatal("caddyfile adapter not registered")
			}
			if expected[0] == '{' {
				expected, wantWarnings, _ := strings.Cut(expected, "\n---------- warnings\n")
				if !caddytest.CompareAdapt(t, name, caddyfile, "caddyfile", expected) {
					t.Errorf("%s: adapted JSON differs from the expected JSON (diff above)", name)
				}
				_, warnings, err := adapter.Adapt([]byte(caddyfile), nil)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, w := range warnings {
					if strings.HasPrefix(w.Directive, "kavach") {
						got = append(got, fmt.Sprintf("%s:%d: %s", w.File, w.Line, w.Message))
					}
				}
				var want []string
				if s := strings.TrimSpace(wantWarnings); s != "" {
					want = strings.Split(s, "\n")
				}
				if len(got) != len(want) {
					t.Fatalf("%s: Kavach warnings\n\t%s\nwant %d:\n\t%s", name, strings.Join(got, "\n\t"), len(want), strings.Join(want, "\n\t"))
				}
				for i := range want {
					file, text, _ := strings.Cut(want[i], ": ")
					if !strings.HasPrefix(got[i], file+": ") || !strings.Contains(got[i], text) {
						t.Errorf("%s: warning\n\t%s\ndoes not match\n\t%s", name, got[i], want[i])
					}
				}
				return
			}

			out, _, err := adapter.Adapt([]byte(caddyfile), nil)
			if err == nil {
				t.Fatalf("%s: adapting succeeded, want an error containing %q; got:\n%s", name, expected, out)
			}
			if got := newlines.ReplaceAllString(err.Error(), "\n"); !strings.Contains(got, expected) {
				t.Errorf("%s: error\n\t%s\ndoes not contain\n\t%s", name, got, expected)
			}
		})
	}
}
