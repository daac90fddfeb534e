package token

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/kavachgate/kavach/internal/strictjson"
	"github.com/kavachgate/kavach/policy"
)

// The JOSE header and the claims are decoded by hand-rolled readers rather
// than encoding/json (package internal/strictjson says why): on the uncached
// path the whole token check must cost at most 1.35× one Ed25519
// verification (DESIGN.md §9), and reflection-based decoding alone took a
// fifth of it. The readers are stricter than
// encoding/json (member names are case-sensitive and a case variant of a
// known name is refused, known members may not repeat, null is not a value
// for any known member) and FuzzDecodeClaims checks that whatever they
// accept, encoding/json decodes to the same Claims.

// header is the part of the JOSE header (RFC 7515 §4.1) the verifier reads.
type header struct {
	alg, kid, typ string
	crit, b64     bool // present: both are refused
}

var headerNames = []string{"alg", "kid", "typ", "crit", "b64"}

func decodeHeader(data []byte) (header, error) {
	var h header
	var seen uint32
	r := strictjson.NewReader(data)
	err := r.Object(func(key []byte) error {
		i, err := member(key, headerNames, &seen)
		if err != nil || i < 0 {
			return skipUnknown(err, r)
		}
		switch i {
		case 0:
			h.alg, err = r.String()
		case 1:
			h.kid, err = r.String()
		case 2:
			h.typ, err = r.String()
		case 3:
			h.crit = true
			err = r.Skip()
		case 4:
			h.b64 = true
			err = r.Skip()
		}
		return err
	})
	if err == nil && !r.End() {
		err = strictjson.ErrSyntax
	}
	return h, err
}

var claimNames = []string{"iss", "sub", "act", "client_id", "aud", "scope", "jti", "iat", "nbf", "exp", "kvc", "cnf"}

// decodeClaims decodes a claims set into c, which must be zero.
func decodeClaims(data []byte, c *Claims) error {
	var seen uint32
	r := strictjson.NewReader(data)
	err := r.Object(func(key []byte) error {
		i, err := member(key, claimNames, &seen)
		if err != nil || i < 0 {
			return skipUnknown(err, r)
		}
		switch i {
		case 0:
			c.Issuer, err = r.String()
		case 1:
			c.Subject, err = r.String()
		case 2:
			c.Actor, err = decodeActor(r, 0)
		case 3:
			c.ClientID, err = r.String()
		case 4:
			c.Audience, err = decodeAudience(r)
		case 5:
			c.Scope, err = r.String()
		case 6:
			c.ID, err = r.String()
		case 7:
			c.IssuedAt, err = r.Int()
		case 8:
			c.NotBefore, err = r.Int()
		case 9:
			c.Expiry, err = r.Int()
		case 10:
			c.Kavach, err = decodeKavach(r)
		case 11:
			var raw []byte
			if raw, err = r.Raw(); err == nil {
				c.Confirmation = append(json.RawMessage(nil), raw...)
			}
		}
		if err != nil {
			return fmt.Errorf("claim %s: %w", claimNames[i], err)
		}
		return nil
	})
	if err == nil && !r.End() {
		err = errors.New("data after the claims object")
	}
	return err
}

func decodeAudience(r *strictjson.Reader) (Audience, error) {
	if r.Peek() == '"' {
		s, err := r.String()
		return Audience{s}, err
	}
	l, err := r.Strings()
	return Audience(l), err
}

var actorNames = []string{"sub", "act"}

func decodeActor(r *strictjson.Reader, depth int) (*Actor, error) {
	if depth > MaxChainLen {
		return nil, errors.New("act nested too deeply")
	}
	a := &Actor{}
	var seen uint32
	err := r.Object(func(key []byte) error {
		i, err := member(key, actorNames, &seen)
		if err != nil || i < 0 {
			return skipUnknown(err, r)
		}
		if i == 0 {
			a.Subject, err = r.String()
		} else {
			a.Actor, err = decodeActor(r, depth+1)
		}
		return err
	})
	return a, err
}

var kavachNames = []string{"v", "chain", "agents", "cnst"}

func decodeKavach(r *strictjson.Reader) (*Kavach, error) {
	k := &Kavach{}
	var seen uint32
	err := r.Object(func(key []byte) error {
		i, err := member(key, kavachNames, &seen)
		if err != nil || i < 0 {
			return skipUnknown(err, r)
		}
		switch i {
		case 0:
			var v int64
			v, err = r.Int()
			k.Version = int(v)
			if int64(k.Version) != v {
				err = strictjson.ErrSyntax
			}
		case 1:
			k.Chain, err = r.Strings()
		case 2:
			k.Agents, err = r.Strings()
		case 3:
			var raw []byte
			if raw, err = r.Raw(); err == nil {
				k.Constraints = &policy.Constraints{}
				err = k.Constraints.UnmarshalJSON(raw)
			}
		}
		return err
	})
	return k, err
}

// skipUnknown returns err, or, for an unknown member (err nil), skips its
// value.
func skipUnknown(err error, r *strictjson.Reader) error {
	if err != nil {
		return err
	}
	return r.Skip()
}

// member resolves an object member name against names: the index of a
// known member seen for the first time, or -1 for an unknown member to skip.
// A repeated known member, or a case variant of one (encoding/json would
// read it as the known member), is an error.
func member(key []byte, names []string, seen *uint32) (int, error) {
	for i, n := range names {
		if string(key) == n {
			if *seen&(1<<i) != 0 {
				return 0, fmt.Errorf("member %q repeated", n)
			}
			*seen |= 1 << i
			return i, nil
		}
	}
	for _, n := range names {
		if len(key) == len(n) && strings.EqualFold(string(key), n) {
			return 0, fmt.Errorf("member %q is a case variant of %q", key, n)
		}
	}
	return -1, nil
}
