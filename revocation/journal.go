package revocation

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Journal keeps revocation entries in a file, one JSON object per line,
// so that a gateway without an issuer store does not forget what an
// operator revoked when it restarts. (With an issuer, its store is the
// record; with Redis, Redis holds the set and the journal re-seeds it
// when Redis has lost its data.)
//
// Append writes a line and syncs the file before it returns; Load reads
// every entry still live and rewrites the file without the expired ones.
// A last line cut short by a crash is dropped (its Append never
// returned); any other line that is not a valid entry is an error, since
// a gateway that cannot read what was revoked must not start as if
// nothing had been.
type Journal struct {
	mu   sync.Mutex
	path string
}

// NewJournal returns the journal at path. Nothing is opened until Append
// or Load; the directory is created (0700) on the first Append.
func NewJournal(path string) *Journal { return &Journal{path: path} }

// Path is the journal's file.
func (j *Journal) Path() string { return j.path }

// Append validates e and adds it to the file, synced to disk.
func (j *Journal) Append(e Entry) error {
	if err := e.Validate(); err != nil {
		return err
	}
	line, err := json.Marshal(e)
	if err != nil {
		return err
	}
	line = append(line, '\n')
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(j.path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(j.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(line); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Load returns the entries whose Until is after now, in the order they
// were written, and rewrites the file with only those when some have
// expired (or a torn last line was dropped). A missing file holds none.
func (j *Journal) Load(now time.Time) ([]Entry, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	data, err := os.ReadFile(j.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var live []Entry
	rewrite := false
	for n := 1; len(data) > 0; n++ {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			rewrite = true // torn by a crash mid-Append: that Append failed
			break
		}
		line := data[:i]
		data = data[i+1:]
		e, hasUntil, fe := decodeEntry(line)
		if fe == nil && !hasUntil {
			fe = &FieldError{"until", "is required"}
		}
		if fe == nil {
			if err := e.Validate(); err != nil {
				fe, _ = err.(*FieldError)
			}
		}
		if fe != nil {
			return nil, fmt.Errorf("revocation journal %s line %d: %w", j.path, n, fe)
		}
		if !e.Until.After(now) {
			rewrite = true
			continue
		}
		live = append(live, e)
	}
	if rewrite {
		if err := j.rewrite(live); err != nil {
			return nil, err
		}
	}
	return live, nil
}

// rewrite replaces the file with entries, atomically (temp file, sync,
// rename).
func (j *Journal) rewrite(entries []Entry) error {
	var buf bytes.Buffer
	for _, e := range entries {
		line, err := json.Marshal(e)
		if err != nil {
			return err
		}
		buf.Write(line)
		buf.WriteByte('\n')
	}
	tmp, err := os.CreateTemp(filepath.Dir(j.path), filepath.Base(j.path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(buf.Bytes()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), j.path)
}
