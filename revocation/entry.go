package revocation

import (
	"context"
	"errors"
	"strconv"
	"time"
)

// Kind of an issued-before cutoff: which token claim it applies to.
type Kind string

// The cutoff kinds (DESIGN.md §4 step 5).
const (
	CutoffSubject Kind = "sub"       // every token of this user issued before Before
	CutoffClient  Kind = "client_id" // every token obtained by this OAuth client issued before Before
	CutoffKey     Kind = "kid"       // every token signed with this key issued before Before
)

// index is the kind's slot in a hashed key; 0 is an id revocation, so a
// cutoff and an id revocation of the same string are different keys.
func (k Kind) index() (uint8, bool) {
	switch k {
	case CutoffSubject:
		return 1, true
	case CutoffClient:
		return 2, true
	case CutoffKey:
		return 3, true
	}
	return 0, false
}

// Entry is one revocation.
//
// For an id revocation Cutoff is "" and ID is a jti, grant, agent (or any
// chain) id: every token carrying it is revoked. For a cutoff, ID is the
// value of the Cutoff claim and a token with that value and iat < Before
// (whole seconds: Before.Unix()) is revoked.
//
// Until is when the entry may be forgotten, because no token it revokes can
// still be valid: by default revoked_at + max_token_lifetime + 2 × leeway
// (DESIGN.md §5, DefaultUntil).
//
// In JSON the members are "id", "cutoff" (omitted for an id revocation),
// "before" (omitted when zero) and "until"; times are RFC 3339.
type Entry struct {
	ID     string    `json:"id"`
	Cutoff Kind      `json:"cutoff,omitempty"`
	Before time.Time `json:"before,omitzero"`
	Until  time.Time `json:"until"`
}

// ErrInvalidEntry is matched (errors.Is) by every error Validate returns.
var ErrInvalidEntry = errors.New("invalid revocation entry")

// FieldError names the field of an Entry that is invalid. Reason never
// contains the field's value, so the error is safe to show a client.
type FieldError struct {
	Field  string // "id", "cutoff", "before" or "until"
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// Is makes errors.Is(err, ErrInvalidEntry) true.
func (e *FieldError) Is(target error) bool { return target == ErrInvalidEntry }

// Validate checks, in this order: ID is non-empty, at most MaxIDLen bytes
// and printable ASCII without space, '"', '\' or ',' (the characters that
// would make an id ambiguous in a header list or a log line); Cutoff is ""
// or a known Kind; Before is set exactly when Cutoff is; Until is set and
// after Before. The error is a *FieldError.
func (e Entry) Validate() error {
	switch {
	case e.ID == "":
		return &FieldError{"id", "is required"}
	case len(e.ID) > MaxIDLen:
		return &FieldError{"id", "must be at most " + strconv.Itoa(MaxIDLen) + " bytes"}
	}
	for i := 0; i < len(e.ID); i++ {
		if !idByte(e.ID[i]) {
			return &FieldError{"id", `must be printable ASCII without space, '"', '\' or ','`}
		}
	}
	if e.Cutoff != "" {
		if _, ok := e.Cutoff.index(); !ok {
			return &FieldError{"cutoff", `must be "sub", "client_id" or "kid"`}
		}
	}
	switch {
	case e.Cutoff != "" && e.Before.IsZero():
		return &FieldError{"before", "is required with cutoff"}
	case e.Cutoff == "" && !e.Before.IsZero():
		return &FieldError{"before", "is only allowed with cutoff"}
	case e.Until.IsZero():
		return &FieldError{"until", "is required"}
	case !e.Until.After(e.Before):
		return &FieldError{"until", "must be after before"}
	}
	return nil
}

func idByte(c byte) bool {
	return '!' <= c && c <= '~' && c != '"' && c != '\\' && c != ','
}

// DefaultUntil is now + maxLifetime + 2 × leeway: by then every token issued
// up to now has expired even on a gateway whose clock is leeway behind
// (DESIGN.md §5).
func DefaultUntil(now time.Time, maxLifetime, leeway time.Duration) time.Time {
	return now.Add(maxLifetime).Add(2 * leeway)
}

// Set is what the gateway consults on every request. Lookups are local (no
// I/O), allocation-free and take nanoseconds; writes may do I/O.
type Set interface {
	// Revoke adds e, which must be valid. An existing revocation of the
	// same key is never shortened.
	Revoke(ctx context.Context, e Entry) error

	// IsRevoked reports whether id (a jti, grant, agent or any chain id)
	// is revoked.
	IsRevoked(id string) bool

	// RevokedBefore reports whether a cutoff for (kind, value) exists with
	// iat < its Before.Unix().
	RevokedBefore(kind Kind, value string, iat int64) bool

	// Fresh reports whether the set can be trusted; when it is false the
	// gateway answers 503 (DESIGN.md §5).
	Fresh() bool
}
