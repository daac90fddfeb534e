package token

import (
	"crypto/rand"
	"encoding/base64"
)

// Id prefixes, one per kind, so no id can be mistaken for another
// (DESIGN.md §2).
const (
	PrefixUser   = "usr_"
	PrefixAgent  = "agt_"
	PrefixGrant  = "dlg_"
	PrefixToken  = "tok_"
	PrefixClient = "cli_"
)

// NewID returns prefix followed by 128 random bits, base64url without
// padding.
func NewID(prefix string) string {
	var b [16]byte
	// crypto/rand.Read never returns an error (Go 1.24+): it aborts the
	// program rather than hand out predictable ids.
	_, _ = rand.Read(b[:])
	return prefix + base64.RawURLEncoding.EncodeToString(b[:])
}
