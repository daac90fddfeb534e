package caddymodule

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"go.uber.org/zap"

	"github.com/kavachgate/kavach/audit"
)

// TestAuditFileKeyOption: `audit file <path> { key <file>.key }` signs the
// trail with a key outside the trail's directory; none is put beside it.
func TestAuditFileKeyOption(t *testing.T) {
	t.Parallel()
	trailDir, keyDir := t.TempDir(), t.TempDir()
	trail, keyFile := filepath.Join(trailDir, "audit.jsonl"), filepath.Join(keyDir, "gw.key")
	a := &App{logger: zap.NewNop(), auditW: new(atomic.Pointer[audit.Writer]),
		Audit: &AuditConfig{Sink: auditSinkFile, Path: trail, Key: keyFile}}
	if err := a.Audit.validate(); err != nil {
		t.Fatal(err)
	}
	if err := a.startAudit(); err != nil {
		t.Fatal(err)
	}
	rec := audit.Record{Kind: audit.KindDecision, Decision: audit.Allow, RequestID: "r1", Sub: "usr_alice", Method: "GET", Host: "api.internal", Path: "/x"}
	if err := a.auditWriter().WriteDurable(context.Background(), &rec); err != nil {
		t.Fatal(err)
	}
	if err := a.stopAudit(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the key file: %v %v", fi, err)
	}
	for _, beside := range []string{trail + ".key", trail + ".pub"} {
		if _, err := os.Stat(beside); err == nil {
			t.Errorf("%s was written beside the trail", beside)
		}
	}
	pub, err := audit.LoadPublicKey(filepath.Join(keyDir, "gw.pub"))
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := audit.VerifyTrail(context.Background(), trail, pub, audit.VerifyOptions{}); err != nil || !rep.Complete() {
		t.Fatalf("verify with the key's .pub: %v %+v", err, rep)
	}
}
