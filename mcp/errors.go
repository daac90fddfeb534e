package mcp

import (
	"errors"
	"net/http"
	"strconv"
)

// Error kinds. Every error this package returns is an *Error whose Kind is
// one of these, so callers map it with errors.Is (or HTTPStatus) without
// parsing text.
var (
	// ErrBatch: the body is a JSON array. Batches were removed from MCP in
	// 2025-06-18 (DESIGN.md §4.1). HTTP 400.
	ErrBatch = errors.New("mcp: JSON-RPC batch")
	// ErrInvalid: the body is not one strict JSON-RPC 2.0 message as MCP
	// defines it. HTTP 400.
	ErrInvalid = errors.New("mcp: invalid JSON-RPC message")
	// ErrHeaderMismatch: an Mcp-Method or Mcp-Name header disagrees with the
	// body, or an Mcp-* header is repeated. HTTP 400.
	ErrHeaderMismatch = errors.New("mcp: Mcp-* header disagrees with the body")
	// ErrTooLarge: the request body is over the inspection limit. HTTP 413.
	ErrTooLarge = errors.New("mcp: request body too large")
	// ErrUpstream: a tools/list response the filter cannot parse, or one
	// over its size limit. HTTP 502.
	ErrUpstream = errors.New("mcp: unacceptable upstream response")
	// ErrSessionTaken: Bind of a session id bound to another live chain;
	// the gateway refuses the initialize response that carried it. HTTP
	// 502.
	ErrSessionTaken = errors.New("mcp: session id bound to another chain")
	// ErrSessionStore: the session store could not answer (Redis
	// unreachable, or slower than its lookup timeout). Nothing is
	// forwarded. HTTP 503.
	ErrSessionStore = errors.New("mcp: session store unavailable")
)

// Error is a refusal. Public is short, fixed text that is safe to show the
// client (error_description, caddyhttp.Error); Detail is for Kavach's own
// log and never contains more than a short, quoted excerpt of the input.
type Error struct {
	Kind   error
	Public string
	Detail string
}

func (e *Error) Error() string {
	if e.Detail == "" {
		return e.Public
	}
	return e.Public + ": " + e.Detail
}

// Unwrap returns Kind, for errors.Is.
func (e *Error) Unwrap() error { return e.Kind }

// HTTPStatus is the status the gateway answers for an error of this
// package: 400, 413, 502 or 503; 500 for any other error.
func HTTPStatus(err error) int {
	switch {
	case errors.Is(err, ErrBatch), errors.Is(err, ErrInvalid), errors.Is(err, ErrHeaderMismatch):
		return http.StatusBadRequest
	case errors.Is(err, ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrUpstream), errors.Is(err, ErrSessionTaken):
		return http.StatusBadGateway
	case errors.Is(err, ErrSessionStore):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

func invalid(public, detail string) *Error {
	return &Error{Kind: ErrInvalid, Public: public, Detail: detail}
}

func upstream(detail string) *Error {
	return &Error{Kind: ErrUpstream, Public: "unacceptable tools/list response from upstream", Detail: detail}
}

// Public texts of ErrInvalid, fixed so no input is echoed to the client.
const (
	pubSyntax  = "malformed JSON-RPC message"
	pubMessage = "not a valid MCP JSON-RPC message"
	pubParams  = "invalid params for this method"
)

// excerpt quotes at most 64 bytes of s for a log detail.
func excerpt(s string) string {
	const maxLen = 64
	if len(s) <= maxLen {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:maxLen]) + "..."
}
