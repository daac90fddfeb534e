// Package mcp is Kavach's MCP inspection (DESIGN.md §4.1): strict decoding
// of the JSON-RPC 2.0 messages clients POST to an MCP route, per-tool,
// per-resource and per-prompt rules, the SEP-2243 header agreement check,
// tools/list response filtering, and the binding of MCP sessions to the
// delegation chain that opened them. It is pure net/http and knows nothing
// of Caddy or of tokens: the gateway gives it a body, a header, the
// token's scopes and a chain key.
//
// # Order of checks for a POST
//
// The gateway, after the token checks of DESIGN.md §4 steps 1–6:
//
//  1. refuses a request Content-Encoding (415) and reads the body with
//     ReadBody (413 beyond the limit);
//  2. Decode (400 for a batch or anything not strictly one MCP message);
//  3. CheckHeaders (400 when Mcp-Method or Mcp-Name disagrees);
//  4. SessionID, then Sessions.Check (403 for another chain's session);
//  5. the route's scopes, then Decide (403; insufficient_scope with
//     RequiredScopes when more scope would help);
//  6. forwards the very bytes it decoded; for a tools/list request,
//     PrepareToolsListRequest upstream, PrepareToolsListResponse and a
//     ToolsFilter on the way back (502 on anything unparseable); for an
//     initialize response, Sessions.Bind of the returned Mcp-Session-Id.
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
