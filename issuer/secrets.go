package issuer

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// Password limits. bcrypt reads at most 72 bytes: a longer password
// would be silently truncated, so it is refused instead.
const (
	minPasswordLen = 8
	maxPasswordLen = 72
	bcryptCost     = 12
)

// hashPassword hashes a human password with bcrypt (DESIGN.md §7).
func hashPassword(pw string) (string, error) {
	if len(pw) < minPasswordLen || len(pw) > maxPasswordLen {
		return "", fmt.Errorf("must be %d to %d bytes", minPasswordLen, maxPasswordLen)
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcryptCost)
	if err != nil {
		return "", err
	}
	return string(h), nil
}

// checkPassword compares in bcrypt's constant time. An empty hash (a user
// without a password) never matches.
func checkPassword(hash, pw string) bool {
	if hash == "" || len(pw) > maxPasswordLen {
		return false
	}
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(pw)) == nil
}

// checkRedirectURI accepts a redirect URI a client may register: https, or
// http on a loopback IP literal or localhost (RFC 8252 §7.3, §8.3), or a
// private-use scheme with a dot (RFC 8252 §7.1); never a fragment
// (RFC 6749 §3.1.2).
func checkRedirectURI(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || raw == "" {
		return errors.New("not a URL")
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return errors.New("a redirect URI has no fragment")
	}
	if u.User != nil {
		return errors.New("a redirect URI has no userinfo")
	}
	switch u.Scheme {
	case "https":
		if u.Host == "" {
			return errors.New("https redirect URI without a host")
		}
	case "http":
		if !isLoopbackHost(u.Hostname()) {
			return errors.New("http redirect URIs only on loopback (127.0.0.1, [::1], localhost)")
		}
	default:
		if !strings.Contains(u.Scheme, ".") {
			return errors.New("use https, loopback http, or a reverse-domain private-use scheme")
		}
	}
	return nil
}

// redirectMatches compares a requested redirect_uri with a registered one:
// exactly, except that a loopback IP redirect may use any port
// (RFC 8252 §7.3).
func redirectMatches(registered, requested string) bool {
	if registered == requested {
		return true
	}
	a, err1 := url.Parse(registered)
	b, err2 := url.Parse(requested)
	if err1 != nil || err2 != nil || a.Scheme != "http" || b.Scheme != "http" {
		return false
	}
	ha, hb := a.Hostname(), b.Hostname()
	ipa := net.ParseIP(ha)
	if ipa == nil || !ipa.IsLoopback() || ha != hb {
		return false
	}
	return a.Path == b.Path && a.RawQuery == b.RawQuery && a.Fragment == "" && b.Fragment == "" && b.User == nil
}
