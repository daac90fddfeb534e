// idjag-flow.mjs: Enterprise-Managed Authorization (SEP-990, ID-JAG) with
// the official MCP TypeScript SDK's client, v2 line
// (@modelcontextprotocol/client), against an MCP server behind the Kavach
// gateway, driven by integration/idp_test.go. Nothing of the flow is
// written here: the SDK's CrossAppAccessProvider reacts to the gateway's
// 401, discovers Kavach from the RFC 9728 metadata, asks the assertion
// callback for an ID-JAG, which gets one with the SDK's
// requestJwtAuthorizationGrant (RFC 8693 token exchange at the enterprise
// IdP's token endpoint, the user's ID token as subject), and redeems it at
// Kavach with the RFC 7523 jwt-bearer grant (client_secret_basic); then
// one tool call.
//
// Usage: node idjag-flow.mjs <MCP endpoint URL>
// Environment (all required):
//   KAVACH_IDJAG_ISSUER          Kavach's issuer (the provider's expectedIssuer)
//   KAVACH_IDJAG_CLIENT_ID, KAVACH_IDJAG_CLIENT_SECRET   the client at Kavach
//   KAVACH_IDJAG_IDP_TOKEN_URL   the IdP's token endpoint (token exchange)
//   KAVACH_IDJAG_IDP_CLIENT_ID   the client at the IdP
//   KAVACH_IDJAG_ID_TOKEN        the user's ID token from the IdP
//   KAVACH_IDJAG_TOOL            the tool to call, with {"path":"README.md"}
//
// Output: one JSON line, {"event":"result", …} or {"event":"error", …}
// (exit status 1).

import { Client, CrossAppAccessProvider, StreamableHTTPClientTransport, requestJwtAuthorizationGrant } from '@modelcontextprotocol/client';

const env = (name) => {
	const v = process.env[name];
	if (!v) {
		console.error(`${name} is required`);
		process.exit(2);
	}
	return v;
};
const endpoint = process.argv[2];
const out = { event: 'result', assertions: [], http: [] };

// recordingFetch notes every request the SDK makes and its status.
const recordingFetch = async (url, init) => {
	const res = await fetch(url, init);
	out.http.push({ method: init?.method ?? 'GET', url: String(url), status: res.status });
	return res;
};

try {
	const provider = new CrossAppAccessProvider({
		assertion: async (ctx) => {
			const r = await requestJwtAuthorizationGrant({
				tokenEndpoint: env('KAVACH_IDJAG_IDP_TOKEN_URL'),
				audience: ctx.authorizationServerUrl,
				resource: ctx.resourceUrl,
				idToken: env('KAVACH_IDJAG_ID_TOKEN'),
				clientId: env('KAVACH_IDJAG_IDP_CLIENT_ID'),
				scope: ctx.scope,
				fetchFn: ctx.fetchFn
			});
			out.assertions.push({ audience: ctx.authorizationServerUrl, resource: ctx.resourceUrl, scope: ctx.scope ?? '' });
			return r.jwtAuthGrant;
		},
		clientId: env('KAVACH_IDJAG_CLIENT_ID'),
		clientSecret: env('KAVACH_IDJAG_CLIENT_SECRET'),
		clientName: 'kavach-idjag-ts',
		expectedIssuer: env('KAVACH_IDJAG_ISSUER'),
		fetchFn: recordingFetch
	});
	const client = new Client({ name: 'kavach-idjag-ts', version: '1.0.0' });
	const transport = new StreamableHTTPClientTransport(new URL(endpoint), { authProvider: provider, fetch: recordingFetch });
	await client.connect(transport);
	const res = await client.callTool({ name: env('KAVACH_IDJAG_TOOL'), arguments: { path: 'README.md' } });
	out.tool = { isError: !!res.isError, structured: res.structuredContent ?? null };
	await client.close();
	console.log(JSON.stringify(out));
} catch (e) {
	console.log(JSON.stringify({ ...out, event: 'error', error: String(e?.stack ?? e) }));
	process.exit(1);
}
