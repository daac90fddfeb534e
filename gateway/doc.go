// Package gateway is Kavach's request path (DESIGN.md §4, §4.1): what
// happens to one request on a protected route, in one place, with no
// Caddy in sight. package caddymodule only waits until the node is ready,
// calls Admit and Forward, and turns their answers into Caddy's.
//
// # Order
//
// Each step fails closed; cheap checks come before expensive ones; the
// signature is verified before any shared state (revocation set, session
// store) is consulted.
//
//  1. MCP routes: Origin. A request whose Origin is neither the resource's
//     own, a configured one, nor (for a loopback resource) a loopback
//     origin is 403, before anything else: a foreign page learns nothing.
//  2. CORS preflight (OPTIONS with Access-Control-Request-Method): passes
//     without a token, only without a body (else 400) and with a path
//     step 6 would accept; counted in the junk summary; forwarded with
//     Authorization, Kavach-… and method-override headers removed.
//  3. Token from Authorization: Bearer (missing: 401 with
//     WWW-Authenticate naming the route's scopes and RFC 9728 metadata).
//  4. Verified-token cache (key: SHA-256 of the token; exp re-checked on
//     every hit), else full verification (401 invalid_token).
//  5. Audience: the route's resource, fixed at config load (401).
//     Revocation: jti, every chain and agent id, cutoffs for sub,
//     client_id and kid (401); a set that is not fresh: 503.
//  6. Constraints, on the path as the next hops read it: a path whose
//     meaning differs between servers is 400 (PathProblem: `;` unless the
//     route allows path parameters, encoded '/', '\' or '%', NUL and
//     other controls, dot-only or trailing-dot segments); then the token's
//     max_body (Content-Length over it: 413; first, as report-only does not
//     relax it), cidrs (Caddy's client_ip), hosts (the resource's host),
//     methods and paths (case folded as Caddy's path matcher folds it).
//  7. Route rules: the route's scopes, its method/path rules (a request no
//     rule matches is 403: nothing is allowed by omission), then on MCP
//     routes (inspectMCP): only POST, and GET or DELETE without a body
//     (others 405, a body 400); no request Content-Encoding (415); the
//     body read bounded (413) and decoded strictly (400); Mcp-Method and
//     Mcp-Name agreeing with it (400, JSON-RPC -32020); a known method
//     (404, -32601); the session bound to this chain (unknown: 404,
//     another chain's: 403, store unreachable: 503); the tool, resource or
//     prompt rules (403; insufficient_scope names what would help); for
//     tools/call, the arguments (checkArguments): the route's argument
//     rules, the token's kvc.cnst.args, then every URL/host argument
//     against the token's hosts (403 naming the argument and the rule; a
//     case variant of a constrained member: 400). Then the rate limits (the route's `rate` lines and the token's
//     cnst.rate): only a request every earlier check allowed takes a
//     token from its buckets, all of them or none (429 with Retry-After
//     and RateLimit-Policy / RateLimit; buckets in Redis that do not
//     answer in time: 503, or forwarded uncounted with rate_limit_fail
//     open while the store is fresh).
//  8. Audit: the decision record is handed to the trail (Recorder); a
//     trail that cannot take it is 503 and nothing is forwarded. With
//     `audit: required` (token or route) the record is durable first; a
//     token that requires it on a gateway whose trail is off is 403.
//     Denials are recorded too: a decision record when the token verified,
//     else a count in the junk summary, each with a reason that says why
//     (Decision.TrailReason: "insufficient_scope: repository:write",
//     "constraint: methods (GET) do not include POST"). An MCP call's
//     record carries the SHA-256 of params.arguments as forwarded
//     (args_sha256), and on a route that records them the arguments with
//     named members redacted (MCP.RecordArguments).
//  9. Forward: Authorization, every client-sent Kavach-… header ('_' read
//     as '-') and method-override header are removed, Connection may not
//     name them; Kavach-Subject, -Actor, -Chain, -Scope and -Issuer are
//     set (external-issuer identities prefixed "ext:"); the body is cut at
//     max_body while it streams (413); an MCP response is watched (session
//     bound on initialize, forgotten on DELETE, tools/list filtered by the
//     rules that decide tools/call); the outcome record (status, bytes,
//     duration) follows the response, also when the handler panics.
//
// On a report_only route, a denial by authorization policy (the token's
// cidrs, hosts, methods and paths; scopes and rules; MCP tool, resource
// and prompt rules; rate limits) is recorded as `"decision":"deny",
// "enforced":false` and the request goes on through the later steps and
// is forwarded (Admission.Relaxed keeps the denial). Every other denial
// is enforced as usual: no token, a bad, revoked or wrong-audience token,
// stale state, malformed requests, Origin and session binding.
//
// Every denial carries WWW-Authenticate with resource_metadata; on MCP
// routes it also carries a JSON-RPC error body with the request's id
// (Admission.Deny), so SDK clients see a protocol error.
//
// # Use
//
//	var a gateway.Admission
//	gw.Admit(route, gateway.Request{HTTP: r, ClientIP: ip}, &a)
//	if !a.Allowed() {
//		if a.Deny(w, route) {
//			return nil // an MCP route's JSON-RPC error was written
//		}
//		return httpError(a.Status, a.Reason)
//	}
//	return gw.Forward(w, r, &a, next, nil)
package gateway
