// oauth-flow.mjs: the official MCP TypeScript SDK's client, v1 line
// (@modelcontextprotocol/sdk, protocol revision 2025-11-25), against an MCP
// server behind the Kavach gateway, driven by integration/mcp_ts_test.go.
//
// The client is given nothing but the MCP endpoint URL. The SDK's
// StreamableHTTPClientTransport meets the gateway's 401, reads the RFC 9728
// metadata the challenge names and the issuer's RFC 8414 metadata,
// registers the client (RFC 7591 DCR, or a client ID metadata document
// when KAVACH_TS_CLIENT_METADATA_URL is set and the issuer supports it),
// and runs authorization code + PKCE. The user's part (login and consent
// pages) is done here over HTTP by a user agent without a browser
// (signIn in headless.mjs): what a browser would do, on the issuer's real
// forms.
//
// Then it lists tools, calls an allowed one, is denied a forbidden one,
// prints {"event":"await", …} and waits for a line on stdin (the test
// entitles the user to the extra scope meanwhile), steps up to the scope
// the gateway's 403 names, and calls the forbidden tool again.
//
// Usage, environment and output: headless.mjs (shared with
// oauth-flow-v2.mjs, the same flow on the SDK's v2 line).

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { LATEST_PROTOCOL_VERSION, SUPPORTED_PROTOCOL_VERSIONS } from '@modelcontextprotocol/sdk/types.js';

import { HeadlessProvider, awaitTest, config, describeError, out, packageVersion, recordingFetch, run, setStep, toolNames, toolResult } from './headless.mjs';

const { endpoint, allowedTool, forbiddenTool, forbiddenArgs } = config;
out.sdk = {
	package: '@modelcontextprotocol/sdk',
	version: packageVersion('@modelcontextprotocol/sdk'),
	latest_protocol_version: LATEST_PROTOCOL_VERSION,
	supported_protocol_versions: SUPPORTED_PROTOCOL_VERSIONS
};

// HeadlessProvider (headless.mjs) plus what this script's step-up needs.
class Provider extends HeadlessProvider {
	dropRefreshToken() {
		if (this._tokens) this._tokens = { ...this._tokens, refresh_token: undefined };
	}
}

// ---------------------------------------------------------------- the app

const provider = new Provider();
const newTransport = () => new StreamableHTTPClientTransport(new URL(endpoint), { authProvider: provider, fetch: recordingFetch });
const newClient = () => new Client({ name: 'kavach-ts-it-client', version: '1.0.0' });

// withAuthorization runs op; when the SDK stops for the user's
// authorization (UnauthorizedError after redirectToAuthorization), it
// completes it with the code (transport.finishAuth, as the SDK's own
// examples do) and runs op once more.
async function withAuthorization(transport, op) {
	try {
		return await op();
	} catch (e) {
		if (!(e instanceof UnauthorizedError)) throw e;
	}
	await transport.finishAuth(provider.takeCode());
	return await op();
}

async function main() {
	// 1. Connect with nothing but the URL: 401, discovery, registration,
	// authorization; then connect again with the token (a client whose
	// transport stopped for authorization starts over, as the SDK's
	// examples do).
	let transport = newTransport();
	let client = newClient();
	try {
		await client.connect(transport);
	} catch (e) {
		if (!(e instanceof UnauthorizedError)) throw e;
		await transport.finishAuth(provider.takeCode());
		await transport.close().catch(() => {});
		transport = newTransport();
		client = newClient();
		await client.connect(transport);
	}
	out.steps.connect = { protocol_version: transport.protocolVersion, session: !!transport.sessionId, server: client.getServerVersion() };

	// 2. The tools the user granted.
	setStep('list');
	out.steps.tools_before = toolNames(await client.listTools());

	// 3. An allowed tool.
	setStep('allowed');
	out.steps.allowed = { tool: allowedTool, ...toolResult(await client.callTool({ name: allowedTool, arguments: {} })) };

	// 4. A forbidden tool: the gateway answers 403 insufficient_scope. The
	// SDK tries to step up by itself; what it does is in http/tokens.
	setStep('denied');
	try {
		const r = await withAuthorization(transport, () => client.callTool({ name: forbiddenTool, arguments: forbiddenArgs }));
		out.steps.denied = { tool: forbiddenTool, allowed_anyway: true, ...toolResult(r) };
	} catch (e) {
		out.steps.denied = { tool: forbiddenTool, error: describeError(e) };
	}

	// 5. The user is given the extra scope (by the test, meanwhile).
	await awaitTest('entitlement', { tool: forbiddenTool });

	// 6. Step up. On a 403 this SDK refreshes when it holds a refresh
	// token, and a refresh cannot widen a grant (RFC 6749 §6), so the app
	// drops its refresh token: the SDK's 403 handling then asks the user
	// for the challenged scope. The SDK does not try a challenge it has
	// tried again until a request succeeds: hence tools/list first.
	setStep('stepup');
	provider.dropRefreshToken();
	await client.listTools();
	const session = transport.sessionId;
	try {
		const r = await withAuthorization(transport, () => client.callTool({ name: forbiddenTool, arguments: forbiddenArgs }));
		out.steps.stepup = { tool: forbiddenTool, ...toolResult(r) };
	} catch (e) {
		out.steps.stepup = { tool: forbiddenTool, error: describeError(e) };
	}
	// The MCP session outlives the new token (same user, same client).
	out.steps.stepup.session_kept = !!session && transport.sessionId === session;
	setStep('after');
	out.steps.tools_after = toolNames(await client.listTools());
	await transport.terminateSession().catch(() => {});
	await client.close();
}

run(main);
