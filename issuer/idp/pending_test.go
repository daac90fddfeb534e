package idp

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func TestPendingSealOpen(t *testing.T) {
	s, err := NewSealer(testKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	p, err := NewPending("corpsso", "areq-9", "bind-1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.State) < 43 || len(p.Nonce) < 43 || len(p.Verifier) != 43 || p.State == p.Nonce {
		t.Fatalf("weak pending record %+v", p)
	}
	sealed, err := s.Seal(p)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(sealed, p.State) || strings.Contains(sealed, p.Verifier) {
		t.Fatal("sealed record shows its secrets")
	}

	// Mismatches are refused and do not consume the record.
	if _, err := s.Open(ctx, sealed, "other-state", "bind-1"); !errors.Is(err, ErrStateMismatch) {
		t.Fatalf("wrong state: %v", err)
	}
	if _, err := s.Open(ctx, sealed, p.State, "bind-2"); !errors.Is(err, ErrStateMismatch) {
		t.Fatalf("another browser: %v", err)
	}
	got, err := s.Open(ctx, sealed, p.State, "bind-1")
	if err != nil {
		t.Fatal(err)
	}
	if *got != *p {
		t.Fatalf("opened %+v, sealed %+v", got, p)
	}
	// Single use.
	if _, err := s.Open(ctx, sealed, p.State, "bind-1"); !errors.Is(err, ErrPendingInvalid) {
		t.Fatalf("second use: %v", err)
	}
}

func TestPendingRefused(t *testing.T) {
	s, _ := NewSealer(testKey, nil)
	other, _ := NewSealer([]byte("fedcba9876543210fedcba9876543210"), nil)
	ctx := context.Background()
	p, _ := NewPending("corpsso", "r", "", time.Minute)
	sealed, _ := s.Seal(p)
	raw, _ := base64.RawURLEncoding.DecodeString(sealed)
	raw[len(raw)-1] ^= 1
	tampered := base64.RawURLEncoding.EncodeToString(raw)
	for name, v := range map[string]string{"empty": "", "garbage": "!!!", "tampered": tampered, "huge": strings.Repeat("A", MaxSealedLen+1)} {
		if _, err := s.Open(ctx, v, p.State, ""); !errors.Is(err, ErrPendingInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := other.Open(ctx, sealed, p.State, ""); !errors.Is(err, ErrPendingInvalid) {
		t.Errorf("another key: %v", err)
	}
	// Expired.
	defer func(orig func() time.Time) { now = orig }(now)
	now = func() time.Time { return time.Now().Add(2 * time.Minute) }
	if _, err := s.Open(ctx, sealed, p.State, ""); !errors.Is(err, ErrPendingInvalid) {
		t.Errorf("expired: %v", err)
	}
	if _, err := NewSealer([]byte("short"), nil); err == nil {
		t.Error("short key accepted")
	}
}

// The encoding inside the seal is a format: a change shows as a diff of
// testdata/pending.golden (run with -update to accept it, then follow the
// rules in Pending's doc comment).
func TestPendingEncodingGolden(t *testing.T) {
	p := Pending{Provider: "corpsso", State: "st", Nonce: "no", Verifier: "ve", Request: "areq", Binding: "bi", Prompt: "login", MaxAge: 600, Expires: 1800000000}
	got, err := json.Marshal(&p)
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	const golden = "testdata/pending.golden"
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("Pending encoding changed:\n got %s\nwant %s", got, want)
	}
}
