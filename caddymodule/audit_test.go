package caddymodule

import (
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/kavachgate/kavach/audit"
)

// TestAuditOpenLogsRealPath: the start-up line names the file the default
// trail really writes (it said "stdout").
func TestAuditOpenLogsRealPath(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_DATA_HOME", dir)
	core, logs := observer.New(zap.InfoLevel)
	a := &App{logger: zap.New(core), auditW: new(atomic.Pointer[audit.Writer])}
	if err := a.startAudit(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := a.stopAudit(); err != nil {
			t.Error(err)
		}
	}()
	opened := logs.FilterMessage("audit trail open").All()
	if len(opened) != 1 {
		t.Fatalf("%d \"audit trail open\" lines, want 1", len(opened))
	}
	f := opened[0].ContextMap()
	path, _ := f["path"].(string)
	if f["sink"] != "file" || !strings.HasPrefix(path, filepath.Join(dir, "caddy", "kavach", "audit")+string(filepath.Separator)) || !strings.HasSuffix(path, ".jsonl") {
		t.Fatalf("audit trail open %v, want sink file and the path of the trail under %s", f, dir)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the logged trail: %v", err)
	}
}
