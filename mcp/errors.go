package mcp

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
)

// Error kinds. Every error this package returns is an *Error whose Kind is
// one of these, so callers map it with errors.Is (HTTPStatus, ErrorCode)
// without parsing text. ErrSyntax and ErrInvalidParams are narrower kinds
// of ErrInvalid: errors.Is(err, ErrInvalid) holds for all three.
var (
	// ErrBatch: the body is a JSON array. Batches were removed from MCP in
	// 2025-06-18 (DESIGN.md §4.1). HTTP 400, JSON-RPC -32600.
	ErrBatch = errors.New("mcp: JSON-RPC batch")
	// ErrInvalid: the body is not one strict JSON-RPC 2.0 message as MCP
	// defines it. HTTP 400. As its own kind: JSON, but not a valid request,
	// notification or response (a wrong or missing member, a case variant
	// of one, a bad id), or an invalid Mcp-Session-Id header; JSON-RPC
	// -32600.
	ErrInvalid = errors.New("mcp: invalid JSON-RPC message")
	// ErrSyntax: the body is not strict JSON (Decode rules 1 and 2: empty,
	// not UTF-8, malformed, trailing data, a duplicate member name, a lone
	// surrogate escape, nesting over MaxDepth). HTTP 400, JSON-RPC -32700.
	ErrSyntax = fmt.Errorf("%w: not strict JSON", ErrInvalid)
	// ErrInvalidParams: a valid request of a known method whose target in
	// params is missing or invalid (Decode rules 6 and 7). HTTP 400,
	// JSON-RPC -32602.
	ErrInvalidParams = fmt.Errorf("%w: invalid params", ErrInvalid)
	// ErrUnknownMethod: a request or notification whose method the gateway
	// does not know for its kind (CheckMethod). HTTP 404, JSON-RPC -32601
	// (MCP 2026-07-28 "Streamable HTTP": a server that does not implement
	// the method answers 404 with -32601).
	ErrUnknownMethod = errors.New("mcp: unknown method")
	// ErrHeaderMismatch: an Mcp-Method or Mcp-Name header disagrees with the
	// body, or an Mcp-* header is repeated. HTTP 400, JSON-RPC -32020
	// (SEP-2243).
	ErrHeaderMismatch = errors.New("mcp: Mcp-* header disagrees with the body")
	// ErrTooLarge: the request body is over the inspection limit. HTTP 413,
	// JSON-RPC -32600 (the body was not read whole, so it is not parsed).
	ErrTooLarge = errors.New("mcp: request body too large")
	// ErrUpstream: a tools/list response the filter cannot parse, or one
	// over its size limit. HTTP 502, JSON-RPC -32603.
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
// client (error_description, caddyhttp.Error, the message of the JSON-RPC
// error body); Detail is for Kavach's own log and never contains more
// than a short, quoted excerpt of the input.
type Error struct {
	Kind   error
	Public string
	Detail string
	// ID is the id of the request refused, for the JSON-RPC error body
	// (ErrorBodyFor). It is set only when the message was a valid JSON-RPC
	// request and the refusal concerns what it asks: ErrInvalidParams,
	// ErrUnknownMethod and ErrHeaderMismatch. Otherwise it is zero, written
	// null: JSON-RPC 2.0 §5 answers a parse error or an invalid request
	// with a null id, as the id could not be trusted.
	ID ID
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
// package: 400, 404, 413, 502 or 503; 500 for any other error.
func HTTPStatus(err error) int {
	switch {
	case errors.Is(err, ErrBatch), errors.Is(err, ErrInvalid), errors.Is(err, ErrHeaderMismatch):
		return http.StatusBadRequest
	case errors.Is(err, ErrUnknownMethod):
		return http.StatusNotFound
	case errors.Is(err, ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrUpstream), errors.Is(err, ErrSessionTaken):
		return http.StatusBadGateway
	case errors.Is(err, ErrSessionStore):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// ErrorCode is the JSON-RPC error code of an error of this package, as
// each kind documents; CodeInternalError for ErrUpstream and any other
// error.
func ErrorCode(err error) int {
	switch {
	case errors.Is(err, ErrSyntax):
		return CodeParseError
	case errors.Is(err, ErrInvalidParams):
		return CodeInvalidParams
	case errors.Is(err, ErrUnknownMethod):
		return CodeMethodNotFound
	case errors.Is(err, ErrHeaderMismatch):
		return CodeHeaderMismatch
	case errors.Is(err, ErrBatch), errors.Is(err, ErrInvalid), errors.Is(err, ErrTooLarge):
		return CodeInvalidRequest
	}
	return CodeInternalError
}

// invalid returns an ErrInvalid error; its public text, one per kind,
// decides which: pubSyntax is ErrSyntax, pubParams ErrInvalidParams.
func invalid(public, detail string) *Error {
	kind := ErrInvalid
	switch public {
	case pubSyntax:
		kind = ErrSyntax
	case pubParams:
		kind = ErrInvalidParams
	}
	return &Error{Kind: kind, Public: public, Detail: detail}
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
