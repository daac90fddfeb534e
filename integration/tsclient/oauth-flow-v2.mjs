// oauth-flow-v2.mjs: the official MCP TypeScript SDK's client, v2 line
// (@modelcontextprotocol/client), on protocol revision 2026-07-28, against
// an MCP server behind the Kavach gateway, driven by
// integration/mcp_ts_test.go. The flow is oauth-flow.mjs's; what differs is
// the SDK's:
//
//   - The client negotiates the revision (versionNegotiation mode 'auto':
//     a server/discover probe, falling back to initialize only when the
//     server shows no 2026-07-28). The probe is the first request, so it
//     meets the gateway's 401; discovery, registration and authorization
//     (code + PKCE, the user's part done by signIn in headless.mjs) follow
//     as in v1.
//   - The provider also keeps the SDK's discovery state across the
//     redirect (v2 checks that the code goes back to the authorization
//     server it came from), and the app completes each authorization with
//     the callback's whole query (transport.finishAuth(URLSearchParams)),
//     which v2 checks against RFC 9207's iss before it reads a code or an
//     error.
//   - On a 403 insufficient_scope the transport steps up by itself: it
//     asks for the union of the scope it held and the scope the challenge
//     names, in a new authorization request (a refresh cannot widen a
//     grant), and the app completes it. Before the test entitles the user,
//     that request shows her the challenged scope as beyond her access and
//     she denies it; after, she allows it and the call goes through.
//
// Usage, environment and output: headless.mjs.

import { Client, LATEST_PROTOCOL_VERSION, StreamableHTTPClientTransport, SUPPORTED_PROTOCOL_VERSIONS, UnauthorizedError } from '@modelcontextprotocol/client';

import { HeadlessProvider, awaitTest, config, describeError, out, packageVersion, recordingFetch, run, setStep, toolNames, toolResult } from './headless.mjs';

const { endpoint, allowedTool, forbiddenTool, forbiddenArgs } = config;
out.sdk = {
	package: '@modelcontextprotocol/client',
	version: packageVersion('@modelcontextprotocol/client'),
	// The initialize (pre-2026) revisions; 2026-07-28 is offered through
	// server/discover when versionNegotiation asks for it.
	latest_protocol_version: LATEST_PROTOCOL_VERSION,
	supported_protocol_versions: SUPPORTED_PROTOCOL_VERSIONS
};

// Provider is HeadlessProvider plus the discovery state v2 persists
// alongside the code verifier.
class Provider extends HeadlessProvider {
	discoveryState() {
		return this._discovery;
	}
	saveDiscoveryState(state) {
		this._discovery = state;
	}
	invalidateCredentials(what) {
		super.invalidateCredentials(what);
		if (what === 'all' || what === 'discovery') this._discovery = undefined;
	}
}

// ---------------------------------------------------------------- the app

const provider = new Provider();
const newTransport = () => new StreamableHTTPClientTransport(new URL(endpoint), { authProvider: provider, fetch: recordingFetch });
const newClient = () => new Client({ name: 'kavach-ts-v2-it-client', version: '1.0.0' }, { versionNegotiation: { mode: 'auto' } });

// withAuthorization runs op; when the SDK stops for the user's
// authorization (UnauthorizedError after redirectToAuthorization), it
// hands the SDK what the redirect brought (finishAuth: a code to redeem,
// or the user's refusal, thrown as an OAuthError) and runs op once more.
async function withAuthorization(transport, op) {
	try {
		return await op();
	} catch (e) {
		if (!(e instanceof UnauthorizedError)) throw e;
	}
	await transport.finishAuth(provider.takeCallback());
	return await op();
}

async function main() {
	// 1. Connect with nothing but the URL: the probe meets the 401;
	// discovery, registration, authorization; then connect again with the
	// token (the failed connect closed its transport).
	let transport = newTransport();
	let client = newClient();
	try {
		await client.connect(transport);
	} catch (e) {
		if (!(e instanceof UnauthorizedError)) throw e;
		await transport.finishAuth(provider.takeCallback());
		transport = newTransport();
		client = newClient();
		await client.connect(transport);
	}
	out.steps.connect = {
		protocol_version: client.getNegotiatedProtocolVersion(),
		header_version: transport.protocolVersion,
		discover_versions: client.getDiscoverResult()?.supportedVersions,
		session: !!transport.sessionId,
		server: client.getServerVersion()
	};

	// 2. The tools the user granted.
	setStep('list');
	out.steps.tools_before = toolNames(await client.listTools());

	// 3. An allowed tool.
	setStep('allowed');
	out.steps.allowed = { tool: allowedTool, ...toolResult(await client.callTool({ name: allowedTool, arguments: {} })) };

	// 4. A forbidden tool: the gateway answers 403 insufficient_scope; the
	// SDK steps up; the user, not entitled yet, denies.
	setStep('denied');
	provider.decision = 'deny';
	try {
		const r = await withAuthorization(transport, () => client.callTool({ name: forbiddenTool, arguments: forbiddenArgs }));
		out.steps.denied = { tool: forbiddenTool, allowed_anyway: true, ...toolResult(r) };
	} catch (e) {
		out.steps.denied = { tool: forbiddenTool, error: describeError(e) };
	}
	provider.decision = 'approve';

	// 5. The user is given the extra scope (by the test, meanwhile).
	await awaitTest('entitlement', { tool: forbiddenTool });

	// 6. The same call: the SDK steps up again, the user allows.
	setStep('stepup');
	try {
		const r = await withAuthorization(transport, () => client.callTool({ name: forbiddenTool, arguments: forbiddenArgs }));
		out.steps.stepup = { tool: forbiddenTool, ...toolResult(r) };
	} catch (e) {
		out.steps.stepup = { tool: forbiddenTool, error: describeError(e) };
	}
	setStep('after');
	out.steps.tools_after = toolNames(await client.listTools());
	await client.close();
}

run(main);
