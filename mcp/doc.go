// Package mcp is Kavach's MCP inspection (DESIGN.md §4.1): strict decoding
// of the JSON-RPC 2.0 messages clients POST to an MCP route, per-tool,
// per-resource and per-prompt rules, the SEP-2243 header agreement check,
// tools/list response filtering, and the binding of MCP sessions to the
// delegation chain that opened them. It is pure net/http and knows nothing
// of Caddy or of tokens: the gateway gives it a body, a header, the
// token's scopes and a chain key.
//
// # Order of checks
//
// The order is package gateway's (its package doc, step 7); this package
// supplies the pieces. After the Origin check (first of all on an MCP
// route) and the token checks, for a request on an MCP route:
//
//  1. the method: POST, or GET and DELETE without a body (405, 400);
//  2. for a POST: a request Content-Encoding is refused (415); ReadBody
//     (413 beyond the limit); Decode (400 for a batch or anything not
//     strictly one MCP message); CheckHeaders (400, -32020 when Mcp-Method
//     or Mcp-Name disagrees); CheckMethod (404, -32601 for an unknown or
//     case-variant method);
//  3. SessionID, then SessionStore.Check: an id no store knows is 404
//     (-32001: the client starts a new session), another chain's is 403,
//     a store that cannot answer is 503; never forwarded;
//  4. Decide, after the route's scopes (403 with -32010;
//     insufficient_scope with RequiredScopes when more scope would help);
//  5. forwards the very bytes it decoded; for a tools/list request,
//     PrepareToolsListRequest upstream, PrepareToolsListResponse and a
//     ToolsFilter on the way back (502 on anything unparseable); for an
//     initialize response, SessionStore.Bind of the returned
//     Mcp-Session-Id (502 when it cannot be bound).
//
// Every refusal is answered with ErrorBody or ErrorBodyFor: a JSON-RPC
// error with the request's id.
//
// For the audit trail, Message.Arguments locates params.arguments of a
// call in the body (the digest covers those exact bytes), and
// RecordArguments makes the redacted, bounded copy a route may record.
//
// GET streams (2025-11-25) may replay earlier responses on resumption: the
// gateway passes them through a ToolsFilter with a zero FilterConfig.Request.
//
// # Use
//
//	rules := &mcp.Rules{Tools: []mcp.Rule{
//		{Pattern: "read_file", Scopes: []string{"repository:read"}},
//		{Pattern: "write_file", Scopes: []string{"repository:write"}},
//	}}
//	if err := rules.Compile(); err != nil { … } // at config load
//
//	msg, err := mcp.Decode(body)
//	if err != nil {
//		// mcp.HTTPStatus(err): 400; err.(*mcp.Error).Public for the client
//	}
//	if err := mcp.CheckHeaders(r.Header, &msg); err != nil { … } // 400
//	if ok, missing := mcp.Decide(rules, tokenScopes, &msg); !ok {
//		// 403; insufficient_scope when missing != ""
//	}
package mcp
