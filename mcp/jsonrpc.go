package mcp

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
