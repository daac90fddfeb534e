package mcp

import (
	"errors"
	"strconv"
)

// JSON-RPC error codes of the bodies the gateway answers an MCP denial
// with (DESIGN.md §4.1: every MCP denial carries a JSON-RPC error body).
//
// JSON-RPC 2.0 §5.1 defines -32700 to -32603 and leaves -32000 to -32099
// to implementations; MCP 2026-07-28 splits that range: -32000 to -32019
// stay implementation-defined (no cross-implementation meaning), -32020 to
// -32099 are allocated by the MCP specification itself, and -32002 and
// -32042, allocated by earlier revisions, stay reserved.
const (
	// CodeParseError: the body is not (strict) JSON (JSON-RPC 2.0 §5.1).
	CodeParseError = -32700
	// CodeInvalidRequest: JSON, but not a valid Request object (§5.1);
	// also a batch, and a body over the size limit.
	CodeInvalidRequest = -32600
	// CodeMethodNotFound: the method does not exist here (§5.1); MCP
	// 2026-07-28 answers it with HTTP 404.
	CodeMethodNotFound = -32601
	// CodeInvalidParams: invalid method parameters (§5.1).
	CodeInvalidParams = -32602
	// CodeInternalError: the gateway could not answer otherwise (§5.1),
	// e.g. a tools/list response it cannot filter (HTTP 502).
	CodeInternalError = -32603
	// CodeHeaderMismatch: an Mcp-Method or Mcp-Name header disagrees with
	// the body (SEP-2243, MCP 2026-07-28 "HeaderMismatch"; HTTP 400).
	CodeHeaderMismatch = -32020
	// CodeSessionNotFound: an Mcp-Session-Id the server does not know
	// (HTTP 404). Not in the MCP specification, which asks only for the
	// 404 (2025-11-25 "Session Management"): it is what the TypeScript
	// SDK's servers answer ("Session not found"), so SDK clients already
	// recognise it, and the 404 makes them start a new session.
	CodeSessionNotFound = -32001
	// CodeAccessDenied: the gateway's authorization refused the message
	// (a tool, resource or prompt rule, or the route's scopes: HTTP 403,
	// with WWW-Authenticate). Kavach's own code, from the
	// implementation-defined -32000 to -32019, chosen to clash with no
	// code MCP SDKs give a meaning to: not -32000 (the SDKs' generic
	// transport errors, "Connection closed"), -32001 (session not found,
	// request timeout), -32002 (resource not found before 2026-07-28, kept
	// reserved), nor -32003 (used by drafts and SDKs for authentication or
	// capability errors). A client acts on the HTTP status and
	// WWW-Authenticate challenge; the code only says "refused by policy,
	// not failed".
	CodeAccessDenied = -32010
)

// ErrorBody returns the JSON-RPC 2.0 error response (§5, §5.1) the
// gateway answers an MCP denial with, as Content-Type application/json:
//
//	{"jsonrpc":"2.0","id":<id>,"error":{"code":<code>,"message":"<message>"}}
//
// exactly, members in that order, no whitespace, no trailing newline. id
// is the request's id in JSON form (ID.String), or null for the zero ID:
// JSON-RPC 2.0 §5 requires null when the id could not be determined, and
// the SDKs answer a notification or an unknown session with null too
// (MCP 2026-07-28's schema makes the member optional). message is the
// public text, a JSON string escaped as appendJSONString does: quotes,
// backslashes, controls and U+2028/U+2029 escaped, invalid UTF-8 as
// U+FFFD, and no HTML escaping ('<', '>', '&' and non-ASCII as they are).
// The format is fixed by testdata/errorbody.golden.
func ErrorBody(id ID, code int, message string) []byte {
	b := make([]byte, 0, 64+len(message)+len(id.str))
	b = append(b, `{"jsonrpc":"2.0","id":`...)
	b = id.appendJSON(b)
	b = append(b, `,"error":{"code":`...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, `,"message":`...)
	b = appendJSONString(b, message)
	return append(b, "}}"...)
}

// ErrorBodyFor returns the error body for err: for an error of this
// package, ErrorBody(e.ID, ErrorCode(err), e.Public); for any other error
// (an I/O error reading the body), a null id, CodeInternalError and
// "internal error", since its text is for the log, not the client. Send
// it with HTTPStatus(err).
func ErrorBodyFor(err error) []byte {
	var e *Error
	if errors.As(err, &e) && e.Public != "" {
		return ErrorBody(e.ID, ErrorCode(err), e.Public)
	}
	return ErrorBody(ID{}, CodeInternalError, "internal error")
}
