// oauth-flow.mjs: the official MCP TypeScript SDK's client against an MCP
// server behind the Kavach gateway, driven by integration/mcp_ts_test.go.
//
// The client is given nothing but the MCP endpoint URL. The SDK's
// StreamableHTTPClientTransport meets the gateway's 401, reads the RFC 9728
// metadata the challenge names and the issuer's RFC 8414 metadata,
// registers the client (RFC 7591 DCR, or a client ID metadata document
// when KAVACH_TS_CLIENT_METADATA_URL is set and the issuer supports it),
// and runs authorization code + PKCE. The user's part (login and consent
// pages) is done here over HTTP by a user agent without a browser
// (signIn): what a browser would do, on the issuer's real forms.
//
// Then it lists tools, calls an allowed one, is denied a forbidden one,
// prints {"event":"await", …} and waits for a line on stdin (the test
// entitles the user to the extra scope meanwhile), steps up to the scope
// the gateway's 403 names, and calls the forbidden tool again.
//
// Usage: node oauth-flow.mjs <MCP endpoint URL>
// Environment:
//   KAVACH_TS_USER, KAVACH_TS_PASSWORD   the user who signs in (required)
//   KAVACH_TS_REDIRECT_URL     loopback redirect URI (default: a fixed
//                              127.0.0.1 one; nothing needs to listen: the
//                              user agent stops at the redirect)
//   KAVACH_TS_CLIENT_METADATA_URL   https URL of a client ID metadata
//                              document (CIMD); empty: DCR
//   KAVACH_TS_ALLOWED, KAVACH_TS_FORBIDDEN   tool names (read_diff, write_file)
//   KAVACH_TS_FORBIDDEN_ARGS   JSON arguments of the forbidden tool
//
// Output: JSON lines on stdout; the last is {"event":"result", …} (or
// {"event":"error", …} with exit status 1). Diagnostics on stderr.

import { createInterface } from 'node:readline';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { LATEST_PROTOCOL_VERSION, SUPPORTED_PROTOCOL_VERSIONS } from '@modelcontextprotocol/sdk/types.js';

// The SDK's exports map does not export its package.json.
const sdkVersion = JSON.parse(readFileSync(new URL('./node_modules/@modelcontextprotocol/sdk/package.json', import.meta.url), 'utf8')).version;

const endpoint = process.argv[2];
const env = (name, def) => process.env[name] || def;
const user = env('KAVACH_TS_USER');
const password = env('KAVACH_TS_PASSWORD');
if (!endpoint || !user || !password) {
	console.error('usage: KAVACH_TS_USER=… KAVACH_TS_PASSWORD=… node oauth-flow.mjs <MCP endpoint URL>');
	process.exit(2);
}
const redirectUrl = env('KAVACH_TS_REDIRECT_URL', 'http://127.0.0.1:53682/callback');
const clientMetadataUrl = env('KAVACH_TS_CLIENT_METADATA_URL');
const allowedTool = env('KAVACH_TS_ALLOWED', 'read_diff');
const forbiddenTool = env('KAVACH_TS_FORBIDDEN', 'write_file');
const forbiddenArgs = JSON.parse(env('KAVACH_TS_FORBIDDEN_ARGS', '{}'));

const out = {
	event: 'result',
	sdk: { package: '@modelcontextprotocol/sdk', version: sdkVersion, latest_protocol_version: LATEST_PROTOCOL_VERSION, supported_protocol_versions: SUPPORTED_PROTOCOL_VERSIONS },
	http: [], // every request the SDK (not the user agent) made: method, url, status, WWW-Authenticate
	registrations: [], // client information the SDK saved
	authorizations: [], // each authorization request and what the user saw and got
	tokens: [], // each token response the SDK saved (scope, refresh token or not)
	steps: {}
};
let step = 'connect';
const emit = obj => process.stdout.write(JSON.stringify(obj) + '\n');

// recordingFetch is the fetch the SDK uses for everything (MCP requests,
// discovery, registration, token requests): it logs each exchange.
async function recordingFetch(input, init) {
	const res = await fetch(input, init);
	const method = (init?.method ?? (input instanceof Request ? input.method : 'GET')).toUpperCase();
	const url = String(input instanceof Request ? input.url : input);
	const e = { step, method, url, status: res.status };
	const www = res.headers.get('www-authenticate');
	if (www) e.www_authenticate = www;
	out.http.push(e);
	return res;
}

// ---------------------------------------------------------------- the user

const cookies = new Map();
const decodeEntities = s =>
	s.replace(/&(#\d+|#x[0-9a-f]+|amp|lt|gt|quot|apos);/gi, (_, e) => {
		const named = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" }[e.toLowerCase()];
		if (named) return named;
		return String.fromCodePoint(e[1].toLowerCase() === 'x' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10));
	});

// uaFetch is the user agent's request: its own cookie jar, no redirects
// followed by fetch (the caller decides, and must not follow the one to
// the redirect URI).
async function uaFetch(url, init = {}) {
	const headers = new Headers(init.headers);
	if (cookies.size) headers.set('cookie', [...cookies].map(([k, v]) => `${k}=${v}`).join('; '));
	const res = await fetch(url, { ...init, headers, redirect: 'manual' });
	for (const c of res.headers.getSetCookie()) {
		const [pair] = c.split(';');
		const i = pair.indexOf('=');
		if (i > 0) cookies.set(pair.slice(0, i).trim(), pair.slice(i + 1).trim());
	}
	return res;
}

// page GETs url, following redirects that stay away from the redirect
// URI, and returns the final response with its body.
async function page(url, init) {
	let res = await uaFetch(url, init);
	for (let n = 0; res.status >= 300 && res.status < 400; n++) {
		const loc = new URL(res.headers.get('location'), url).href;
		if (loc.startsWith(redirectUrl) || n >= 10) return { res, url, body: '', location: loc };
		url = loc;
		res = await uaFetch(url);
	}
	return { res, url, body: await res.text() };
}

// parseForm: the page's first form: its absolute action and hidden fields.
function parseForm(html, base) {
	const form = /<form\b([^>]*)>([\s\S]*?)<\/form>/i.exec(html);
	if (!form) throw new Error(`no form on ${base}: ${html.slice(0, 300)}`);
	const attr = (tag, name) => {
		const m = new RegExp(`\\b${name}="([^"]*)"`, 'i').exec(tag);
		return m ? decodeEntities(m[1]) : undefined;
	};
	const fields = new URLSearchParams();
	for (const [input] of form[2].matchAll(/<input\b[^>]*>/gi)) {
		if (attr(input, 'type') === 'hidden') fields.set(attr(input, 'name'), attr(input, 'value') ?? '');
	}
	const buttons = [...form[2].matchAll(/<button\b[^>]*>/gi)].map(([b]) => `${attr(b, 'name')}=${attr(b, 'value')}`);
	return { action: new URL(attr(form[1], 'action') ?? '', base).href, fields, buttons };
}

// codes in the list after `marker` on the consent page (granted or refused scopes).
function listAfter(html, marker) {
	const i = html.indexOf(marker);
	if (i < 0) return [];
	const ul = /<ul\b[^>]*>([\s\S]*?)<\/ul>/i.exec(html.slice(i));
	return ul ? [...ul[1].matchAll(/<code>([^<]*)<\/code>/g)].map(m => decodeEntities(m[1])) : [];
}

// signIn is the user at a browser: opens the authorization URL, signs in
// on the login form, approves on the consent form, and hands back what
// the redirect to the client carries.
async function signIn(authorizationUrl) {
	const au = new URL(authorizationUrl);
	const rec = { step, params: Object.fromEntries(au.searchParams) };
	delete rec.params.code_challenge;
	out.authorizations.push(rec);
	cookies.clear(); // a fresh browser: the user signs in every time
	let p = await page(au.href);
	if (p.res.status !== 200) throw new Error(`authorization page: ${p.res.status} ${p.body.slice(0, 300)}`);
	const login = parseForm(p.body, p.url);
	login.fields.set('username', user);
	login.fields.set('password', password);
	p = await page(login.action, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: login.fields });
	if (p.res.status !== 200) throw new Error(`signing in: ${p.res.status} ${p.body.slice(0, 300)}`);
	const consent = parseForm(p.body, p.url);
	if (!consent.buttons.includes('action=approve')) throw new Error(`no approve button after signing in: ${p.body.slice(0, 500)}`);
	rec.consent = { granted: listAfter(p.body, 'with these permissions'), refused: listAfter(p.body, 'not granted') };
	consent.fields.set('action', 'approve');
	p = await page(consent.action, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: consent.fields });
	if (!p.location?.startsWith(redirectUrl)) throw new Error(`approving: ${p.res.status}, Location ${p.location}, want the redirect URI`);
	const q = new URL(p.location).searchParams;
	rec.response = { status: p.res.status, state_matches: q.get('state') === rec.params.state, iss: q.get('iss'), error: q.get('error') ?? undefined };
	if (q.get('error')) throw new Error(`authorization error ${q.get('error')}: ${q.get('error_description')}`);
	return q.get('code');
}

// ------------------------------------------------------------ the provider

// HeadlessProvider is the SDK's OAuthClientProvider for an app whose
// "browser" is signIn: redirectToAuthorization runs the user's part at
// once and keeps the code for finishAuth, as an app's redirect listener
// would.
class HeadlessProvider {
	constructor() {
		this.clientMetadataUrl = clientMetadataUrl || undefined;
		this._client = undefined;
		this._tokens = undefined;
		this._verifier = undefined;
		this.code = undefined;
	}
	get redirectUrl() {
		return redirectUrl;
	}
	get clientMetadata() {
		return {
			client_name: 'Kavach MCP TypeScript SDK test app',
			redirect_uris: [redirectUrl],
			token_endpoint_auth_method: 'none',
			grant_types: ['authorization_code', 'refresh_token'],
			response_types: ['code']
		};
	}
	state() {
		return randomBytes(16).toString('base64url');
	}
	clientInformation() {
		return this._client;
	}
	saveClientInformation(info) {
		out.registrations.push({ step, client_id: info.client_id, has_secret: !!info.client_secret, issuer: info.issuer });
		this._client = info;
	}
	tokens() {
		return this._tokens;
	}
	saveTokens(tokens) {
		out.tokens.push({ step, scope: tokens.scope, token_type: tokens.token_type, refresh_token: !!tokens.refresh_token, expires_in: tokens.expires_in });
		this._tokens = tokens;
	}
	async redirectToAuthorization(url) {
		this.code = await signIn(url);
	}
	saveCodeVerifier(v) {
		this._verifier = v;
	}
	codeVerifier() {
		if (!this._verifier) throw new Error('no code verifier saved');
		return this._verifier;
	}
	invalidateCredentials(what) {
		if (what === 'all' || what === 'client') this._client = undefined;
		if (what === 'all' || what === 'tokens') this._tokens = undefined;
		if (what === 'all' || what === 'verifier') this._verifier = undefined;
	}
	dropRefreshToken() {
		if (this._tokens) this._tokens = { ...this._tokens, refresh_token: undefined };
	}
	takeCode() {
		const c = this.code;
		this.code = undefined;
		if (!c) throw new Error('the SDK asked for authorization but no code came back');
		return c;
	}
}

// ---------------------------------------------------------------- the app

const provider = new HeadlessProvider();
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

const describeError = e => ({ name: e?.constructor?.name, code: e?.code, message: String(e?.message ?? e) });
const toolResult = r => ({ is_error: !!r.isError, text: (r.content ?? []).filter(c => c.type === 'text').map(c => c.text).join('\n'), structured: r.structuredContent });

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
	step = 'list';
	out.steps.tools_before = (await client.listTools()).tools.map(t => t.name).sort();

	// 3. An allowed tool.
	step = 'allowed';
	out.steps.allowed = { tool: allowedTool, ...toolResult(await client.callTool({ name: allowedTool, arguments: {} })) };

	// 4. A forbidden tool: the gateway answers 403 insufficient_scope. The
	// SDK tries to step up by itself; what it does is in http/tokens.
	step = 'denied';
	try {
		const r = await withAuthorization(transport, () => client.callTool({ name: forbiddenTool, arguments: forbiddenArgs }));
		out.steps.denied = { tool: forbiddenTool, allowed_anyway: true, ...toolResult(r) };
	} catch (e) {
		out.steps.denied = { tool: forbiddenTool, error: describeError(e) };
	}

	// 5. The user is given the extra scope (by the test, meanwhile).
	emit({ event: 'await', what: 'entitlement', tool: forbiddenTool });
	const line = await new Promise(resolve => {
		const rl = createInterface({ input: process.stdin });
		rl.once('line', l => {
			resolve(l);
			rl.close();
		});
		rl.once('close', () => resolve(''));
	});
	if (line.trim() !== 'continue') throw new Error(`stdin said ${JSON.stringify(line)}, want "continue"`);

	// 6. Step up. On a 403 this SDK refreshes when it holds a refresh
	// token, and a refresh cannot widen a grant (RFC 6749 §6), so the app
	// drops its refresh token: the SDK's 403 handling then asks the user
	// for the challenged scope. The SDK does not try a challenge it has
	// tried again until a request succeeds: hence tools/list first.
	step = 'stepup';
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
	step = 'after';
	out.steps.tools_after = (await client.listTools()).tools.map(t => t.name).sort();
	await transport.terminateSession().catch(() => {});
	await client.close();
}

main().then(
	() => {
		emit(out);
		process.exit(0);
	},
	e => {
		emit({ ...out, event: 'error', step, error: describeError(e), stack: e?.stack });
		process.exit(1);
	}
);
