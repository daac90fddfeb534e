package revocation

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestJournal: what was appended comes back after a "restart" (a new
// Journal on the same file) until it expires; a crash mid-write loses
// only that write; a damaged line stops the load.
func TestJournal(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	path := filepath.Join(t.TempDir(), "kavach", "revocations.jsonl")
	j := NewJournal(path)
	if got, err := j.Load(now); err != nil || got != nil {
		t.Fatalf("missing file: %v %v", got, err)
	}
	id := Entry{ID: "agt_x", Until: now.Add(time.Hour)}
	cut := Entry{ID: "usr_a", Cutoff: CutoffSubject, Before: now.Truncate(time.Second), Until: now.Add(2 * time.Hour)}
	old := Entry{ID: "tok_old", Until: now.Add(time.Minute)}
	for _, e := range []Entry{id, cut, old} {
		if err := j.Append(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Append(Entry{ID: "has space", Until: now.Add(time.Hour)}); err == nil {
		t.Fatal("an invalid entry was journaled")
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("journal file: %v %v", fi, err)
	}

	got, err := NewJournal(path).Load(now)
	if err != nil || len(got) != 3 || got[0] != id || !got[1].Before.Equal(cut.Before) || got[1].Cutoff != CutoffSubject || got[2].ID != "tok_old" {
		t.Fatalf("after a restart: %+v %v", got, err)
	}
	// Two minutes on, tok_old has expired: gone from the answer and the file.
	later := now.Add(2 * time.Minute)
	if got, err = NewJournal(path).Load(later); err != nil || len(got) != 2 {
		t.Fatalf("later: %+v %v", got, err)
	}
	if data, _ := os.ReadFile(path); strings.Contains(string(data), "tok_old") || strings.Count(string(data), "\n") != 2 {
		t.Fatalf("expired entry not compacted away:\n%s", data)
	}

	// A crash mid-Append leaves a line without its newline.
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"id":"agt_torn","until":"2026-12`)
	f.Close()
	if got, err = NewJournal(path).Load(later); err != nil || len(got) != 2 {
		t.Fatalf("torn last line: %+v %v", got, err)
	}
	if err := NewJournal(path).Append(Entry{ID: "agt_after", Until: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if got, err = NewJournal(path).Load(later); err != nil || len(got) != 3 || got[2].ID != "agt_after" {
		t.Fatalf("append after a torn line: %+v %v", got, err)
	}

	// A damaged complete line: the gateway cannot know what was revoked.
	if err := os.WriteFile(path, []byte(`{"id":"agt_x","until":"2027-01-01T00:00:00Z"}`+"\n"+`{"id":"agt_y","until":"soon"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewJournal(path).Load(now); err == nil || !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), "until") {
		t.Fatalf("damaged line: %v", err)
	}
	if err := os.WriteFile(path, []byte(`{"id":"agt_x"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewJournal(path).Load(now); err == nil {
		t.Fatal("an entry without until was loaded")
	}
}
