package token

import "errors"

// Reasons a token is rejected. Each is short and safe to show a client (the
// gateway puts it in error_description); the detail of a *VerifyError goes
// to the log only. Compare with errors.Is.
var (
	ErrTooLarge     = errors.New("token too large")
	ErrMalformed    = errors.New("malformed token")
	ErrAlgorithm    = errors.New("signing algorithm not allowed")
	ErrUnknownKey   = errors.New("unknown signing key")
	ErrSignature    = errors.New("invalid signature")
	ErrType         = errors.New("wrong token type")
	ErrIssuer       = errors.New("untrusted issuer")
	ErrExpired      = errors.New("token expired")
	ErrNotYetValid  = errors.New("token not yet valid")
	ErrLifetime     = errors.New("token lifetime too long")
	ErrClaims       = errors.New("invalid token claims")
	ErrConfirmation = errors.New("sender-constrained tokens are not supported")
)

// VerifyError is a rejection: Reason is one of the Err… values above, Detail
// says more for the operator's log. Detail never contains the token.
type VerifyError struct {
	Reason error
	Detail string
}

func (e *VerifyError) Error() string {
	if e.Detail == "" {
		return e.Reason.Error()
	}
	return e.Reason.Error() + ": " + e.Detail
}

// Unwrap lets errors.Is match the reason.
func (e *VerifyError) Unwrap() error { return e.Reason }

// Public is the short reason to show a client.
func (e *VerifyError) Public() string { return e.Reason.Error() }

func reject(reason error, detail string) *VerifyError {
	return &VerifyError{Reason: reason, Detail: detail}
}
