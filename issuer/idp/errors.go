package idp

import "errors"

// The kinds of refusal. Every error the package returns for bad input is
// an *Error whose Kind is one of these, so callers switch with errors.Is.
var (
	// ErrIdPUnavailable: discovery, JWKS, token or userinfo request failed
	// (network, HTTP status, or a discovery document for another issuer).
	// The login page says the IdP is down.
	ErrIdPUnavailable = errors.New("idp: identity provider unavailable")
	// ErrIdPRefused: the IdP answered the authorization request with an
	// error (error=access_denied, …) or refused the code at its token
	// endpoint. Error.IdPCode has its OAuth error code.
	ErrIdPRefused = errors.New("idp: identity provider refused")
	// ErrStateMismatch: the callback's state is not the pending record's,
	// or the record belongs to another browser.
	ErrStateMismatch = errors.New("idp: state mismatch")
	// ErrPendingInvalid: the sealed pending record is missing, damaged,
	// expired, or was already used.
	ErrPendingInvalid = errors.New("idp: sign-in expired or already used")
	// ErrBadSignature: the JWT's signature does not verify with the
	// issuer's keys, or its alg is not allowed.
	ErrBadSignature = errors.New("idp: bad signature")
	// ErrWrongIssuer: iss is not the configured IdP (ID token), or not a
	// trusted IdP (ID-JAG).
	ErrWrongIssuer = errors.New("idp: wrong issuer")
	// ErrWrongAudience: the ID token is not for our client id (aud, azp),
	// or the ID-JAG is not for this issuer.
	ErrWrongAudience = errors.New("idp: wrong audience")
	// ErrBadNonce: the ID token's nonce is not the pending record's.
	ErrBadNonce = errors.New("idp: bad nonce")
	// ErrExpired: exp has passed, iat is in the future, or auth_time is
	// older than max_age.
	ErrExpired = errors.New("idp: expired")
	// ErrTooLongLived: the ID-JAG's exp − iat exceeds the allowed lifetime.
	ErrTooLongLived = errors.New("idp: lifetime too long")
	// ErrWrongType: the ID-JAG's typ header is not oauth-id-jag+jwt.
	ErrWrongType = errors.New("idp: wrong typ")
	// ErrWrongClient: the ID-JAG's client_id claim is not the client that
	// authenticated at the token endpoint.
	ErrWrongClient = errors.New("idp: wrong client")
	// ErrReplayed: the ID-JAG's jti was already used.
	ErrReplayed = errors.New("idp: replayed")
	// ErrMalformed: not a well-formed token, or a required claim is
	// missing or of the wrong type.
	ErrMalformed = errors.New("idp: malformed")
	// ErrUnavailable: a store the check depends on (the replay store)
	// cannot answer; the check fails closed.
	ErrUnavailable = errors.New("idp: temporarily unavailable")
)

// Error is a refusal: a public part for the client or the login page, and
// a detail for the log only.
//
// Code is the OAuth error code to answer with ("invalid_grant" for every
// ID-JAG refusal, RFC 6749 §5.2; "access_denied" for a failed sign-in,
// "temporarily_unavailable" when an IdP or store is down). Description is
// short, fixed text that never echoes input, fit for error_description or
// the login page. Detail may contain input: log it, never show it.
type Error struct {
	Kind        error
	Code        string
	Description string
	Detail      string
	// IdPCode is the OAuth error the IdP itself answered with, for
	// ErrIdPRefused ("access_denied", "invalid_grant", …).
	IdPCode string
	// Err is the underlying error, if any (network, library).
	Err error
}

func (e *Error) Error() string {
	s := e.Description
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the kind and the cause, so errors.Is(err, ErrExpired) and
// errors.As on the cause both work.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

// signInError is a refusal of the sign-in flow.
func signInError(kind error, desc, detail string, cause error) *Error {
	code := "access_denied"
	if kind == ErrIdPUnavailable || kind == ErrUnavailable {
		code = "temporarily_unavailable"
	}
	return &Error{Kind: kind, Code: code, Description: desc, Detail: detail, Err: cause}
}

// grantError is a refusal of an ID-JAG: invalid_grant (RFC 7523 §3.1),
// except a replay store that cannot answer.
func grantError(kind error, desc, detail string) *Error {
	code := "invalid_grant"
	if kind == ErrUnavailable {
		code = "temporarily_unavailable"
	}
	return &Error{Kind: kind, Code: code, Description: desc, Detail: detail}
}
