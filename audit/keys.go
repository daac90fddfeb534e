package audit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// KeyPaths returns where the audit key of the trail at trail lives
// (DESIGN.md §6): the signing key in trail+".key" (PKCS#8 PEM, mode 0600)
// and its public half in trail+".pub" (PKIX PEM), which `kavach audit
// verify --key` pins.
func KeyPaths(trail string) (key, pub string) { return trail + ".key", trail + ".pub" }

// LoadOrCreateKey returns the audit signing key of the trail at trail,
// generating it when absent (see KeyPaths). It refuses a key file that
// group or others can read, and a .pub that is not the key's public half;
// a missing .pub is written again. Creation is atomic and exclusive: two
// processes starting together end up with the same key.
func LoadOrCreateKey(trail string) (ed25519.PrivateKey, error) {
	keyPath, pubPath := KeyPaths(trail)
	key, err := readPrivateKey(keyPath)
	if errors.Is(err, fs.ErrNotExist) {
		_, priv, gerr := ed25519.GenerateKey(rand.Reader)
		if gerr != nil {
			return nil, fmt.Errorf("audit: generate key: %w", gerr)
		}
		der, merr := x509.MarshalPKCS8PrivateKey(priv)
		if merr != nil {
			return nil, fmt.Errorf("audit: %w", merr)
		}
		if werr := createExclusive(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); werr != nil && !errors.Is(werr, fs.ErrExist) {
			return nil, werr
		}
		key, err = readPrivateKey(keyPath) // ours, or the one another process created first
	}
	if err != nil {
		return nil, err
	}
	pub := key.Public().(ed25519.PublicKey)
	have, err := LoadPublicKey(pubPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := writePublicKey(pubPath, pub); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		if have, err = LoadPublicKey(pubPath); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	}
	if !have.Equal(pub) {
		return nil, fmt.Errorf("audit: %s is not the public half of %s", pubPath, keyPath)
	}
	return key, nil
}

func readPrivateKey(path string) (ed25519.PrivateKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("audit: %s is not a regular file", path)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("audit: %s is accessible by group or others (mode %04o); chmod 600 it", path, fi.Mode().Perm())
	}
	data := make([]byte, 0, 256)
	buf := bytes.NewBuffer(data)
	if _, err := buf.ReadFrom(f); err != nil {
		return nil, fmt.Errorf("audit: read %s: %w", path, err)
	}
	block, rest := pem.Decode(buf.Bytes())
	if block == nil || block.Type != "PRIVATE KEY" || len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("audit: %s is not one PKCS#8 PEM private key", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("audit: %s: %w", path, err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("audit: %s is not an Ed25519 key", path)
	}
	return ek, nil
}

// LoadPublicKey reads an audit public key (PKIX PEM, as in <trail>.pub).
func LoadPublicKey(path string) (ed25519.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	return ParsePublicKey(data)
}

// ParsePublicKey decodes one PKIX PEM Ed25519 public key.
func ParsePublicKey(data []byte) (ed25519.PublicKey, error) {
	block, rest := pem.Decode(data)
	if block == nil || block.Type != "PUBLIC KEY" || len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("audit: not one PKIX PEM public key")
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	pk, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, errors.New("audit: not an Ed25519 public key")
	}
	return pk, nil
}

// KeyFingerprint names an audit public key: the SHA-256 of its PKIX DER
// encoding in lowercase hex, what `openssl pkey -pubin -in audit.pub
// -outform DER | sha256sum` prints. The writer records it with the witness
// when a stream begins (Witness.Begin) and `kavach audit verify` prints the
// pinned key's.
func KeyFingerprint(pub ed25519.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// MarshalPublicKey encodes pub as PKIX PEM.
func MarshalPublicKey(pub ed25519.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

func writePublicKey(path string, pub ed25519.PublicKey) error {
	data, err := MarshalPublicKey(pub)
	if err != nil {
		return err
	}
	return createExclusive(path, data, 0o644)
}

// createExclusive writes data to a temporary file beside path, fsyncs it,
// and links it into place, failing with fs.ErrExist when path exists: no
// reader ever sees a half-written file, and the first creator wins.
func createExclusive(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(mode)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("audit: write %s: %w", path, err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fs.ErrExist
		}
		return fmt.Errorf("audit: %w", err)
	}
	return syncDir(dir)
}
