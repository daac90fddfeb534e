package audit

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestLoadOrCreateKey(t *testing.T) {
	t.Parallel()
	trail := filepath.Join(t.TempDir(), "audit.jsonl")
	key, err := LoadOrCreateKey(trail)
	if err != nil {
		t.Fatal(err)
	}
	keyPath, pubPath := KeyPaths(trail)
	if keyPath != trail+".key" || pubPath != trail+".pub" {
		t.Fatalf("KeyPaths = %s, %s", keyPath, pubPath)
	}
	fi, err := os.Stat(keyPath)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	pemData, _ := os.ReadFile(keyPath)
	if !strings.HasPrefix(string(pemData), "-----BEGIN PRIVATE KEY-----") {
		t.Fatalf("key is not PKCS#8 PEM:\n%s", pemData)
	}
	pub, err := LoadPublicKey(pubPath)
	if err != nil || !pub.Equal(key.Public()) {
		t.Fatalf("public half: %v", err)
	}
	again, err := LoadOrCreateKey(trail)
	if err != nil || !again.Equal(key) {
		t.Fatalf("reloading gave another key: %v", err)
	}
	// A lost .pub is written again.
	os.Remove(pubPath)
	if _, err := LoadOrCreateKey(trail); err != nil {
		t.Fatal(err)
	}
	if pub, err := LoadPublicKey(pubPath); err != nil || !pub.Equal(key.Public()) {
		t.Fatalf("rewritten .pub: %v", err)
	}
	// No temporary files are left behind.
	entries, _ := os.ReadDir(filepath.Dir(trail))
	if len(entries) != 2 {
		t.Fatalf("files beside the trail: %v", entries)
	}
}

func TestLoadOrCreateKeyRefuses(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.jsonl"), filepath.Join(dir, "b.jsonl")
	if _, err := LoadOrCreateKey(a); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateKey(b); err != nil {
		t.Fatal(err)
	}
	// A .pub that is not the key's half.
	bpub, _ := os.ReadFile(b + ".pub")
	os.WriteFile(a+".pub", bpub, 0o644)
	if _, err := LoadOrCreateKey(a); err == nil || !strings.Contains(err.Error(), "not the public half") {
		t.Fatalf("mismatched .pub: %v", err)
	}
	// A key others can read.
	os.Chmod(b+".key", 0o644)
	if _, err := LoadOrCreateKey(b); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable key: %v", err)
	}
	// Not a key.
	c := filepath.Join(dir, "c.jsonl")
	os.WriteFile(c+".key", []byte("junk"), 0o600)
	if _, err := LoadOrCreateKey(c); err == nil {
		t.Fatal("junk key accepted")
	}
	if _, err := ParsePublicKey([]byte("junk")); err == nil {
		t.Fatal("junk public key accepted")
	}
}

// TestLoadOrCreateKeyRace: processes starting together agree on one key.
func TestLoadOrCreateKeyRace(t *testing.T) {
	t.Parallel()
	trail := filepath.Join(t.TempDir(), "audit.jsonl")
	var wg sync.WaitGroup
	keys := make([]string, 8)
	for i := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := LoadOrCreateKey(trail)
			if err != nil {
				t.Error(err)
				return
			}
			keys[i] = string(k)
		}()
	}
	wg.Wait()
	for _, k := range keys[1:] {
		if k != keys[0] {
			t.Fatal("concurrent creation produced different keys")
		}
	}
}
