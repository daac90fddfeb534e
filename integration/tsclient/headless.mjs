// headless.mjs: what oauth-flow.mjs (@modelcontextprotocol/sdk, v1) and
// oauth-flow-v2.mjs (@modelcontextprotocol/client, v2) share: the run's
// settings, the record of what the SDK did (printed as the last line), the
// user at a "browser" that is a user agent over HTTP on the issuer's real
// login and consent pages, the app's OAuthClientProvider, and the wait for
// the test's entitlement.
//
// Usage: node <script> <MCP endpoint URL>
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

const env = (name, def) => process.env[name] || def;

// config is the run's settings (argv and environment).
export const config = {
	endpoint: process.argv[2],
	user: env('KAVACH_TS_USER'),
	password: env('KAVACH_TS_PASSWORD'),
	redirectUrl: env('KAVACH_TS_REDIRECT_URL', 'http://127.0.0.1:53682/callback'),
	clientMetadataUrl: env('KAVACH_TS_CLIENT_METADATA_URL'),
	allowedTool: env('KAVACH_TS_ALLOWED', 'read_diff'),
	forbiddenTool: env('KAVACH_TS_FORBIDDEN', 'write_file'),
	forbiddenArgs: JSON.parse(env('KAVACH_TS_FORBIDDEN_ARGS', '{}'))
};
if (!config.endpoint || !config.user || !config.password) {
	console.error(`usage: KAVACH_TS_USER=… KAVACH_TS_PASSWORD=… node ${process.argv[1]} <MCP endpoint URL>`);
	process.exit(2);
}

// packageVersion reads an installed package's version (the SDKs' exports
// maps do not export their package.json).
export const packageVersion = name =>
	JSON.parse(readFileSync(new URL(`./node_modules/${name}/package.json`, import.meta.url), 'utf8')).version;

// out is the record printed last; step names the part of the flow that is
// running (setStep), so that each request and authorization is filed under it.
export const out = {
	event: 'result',
	sdk: {},
	http: [], // every request the SDK (not the user agent) made: method, url, status, WWW-Authenticate, MCP headers
	registrations: [], // client information the SDK saved
	authorizations: [], // each authorization request and what the user saw and did
	tokens: [], // each token response the SDK saved (scope, refresh token or not)
	steps: {}
};
let step = 'connect';
export const setStep = s => {
	step = s;
};
const emit = obj => process.stdout.write(JSON.stringify(obj) + '\n');

// recordingFetch is the fetch the SDK uses for everything (MCP requests,
// discovery, registration, token requests): it logs each exchange.
export async function recordingFetch(input, init) {
	const res = await fetch(input, init);
	const method = (init?.method ?? (input instanceof Request ? input.method : 'GET')).toUpperCase();
	const url = String(input instanceof Request ? input.url : input);
	const e = { step, method, url, status: res.status };
	const www = res.headers.get('www-authenticate');
	if (www) e.www_authenticate = www;
	const sent = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined));
	for (const h of ['mcp-protocol-version', 'mcp-method', 'mcp-name']) {
		if (sent.has(h)) e[h.replaceAll('-', '_')] = sent.get(h);
	}
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
		if (loc.startsWith(config.redirectUrl) || n >= 10) return { res, url, body: '', location: loc };
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
// on the login form, answers the consent form (decision: approve or
// deny), and hands back the query of the redirect to the client.
async function signIn(authorizationUrl, decision) {
	const au = new URL(authorizationUrl);
	const rec = { step, params: Object.fromEntries(au.searchParams), decision };
	delete rec.params.code_challenge;
	out.authorizations.push(rec);
	cookies.clear(); // a fresh browser: the user signs in every time
	let p = await page(au.href);
	if (p.res.status !== 200) throw new Error(`authorization page: ${p.res.status} ${p.body.slice(0, 300)}`);
	const login = parseForm(p.body, p.url);
	login.fields.set('username', config.user);
	login.fields.set('password', config.password);
	p = await page(login.action, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: login.fields });
	if (p.res.status !== 200) throw new Error(`signing in: ${p.res.status} ${p.body.slice(0, 300)}`);
	const consent = parseForm(p.body, p.url);
	if (!consent.buttons.includes(`action=${decision}`)) throw new Error(`no ${decision} button after signing in: ${p.body.slice(0, 500)}`);
	rec.consent = { granted: listAfter(p.body, 'with these permissions'), refused: listAfter(p.body, 'not granted') };
	consent.fields.set('action', decision);
	p = await page(consent.action, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: consent.fields });
	if (!p.location?.startsWith(config.redirectUrl)) throw new Error(`answering consent: ${p.res.status}, Location ${p.location}, want the redirect URI`);
	const q = new URL(p.location).searchParams;
	rec.response = { status: p.res.status, state_matches: q.get('state') === rec.params.state, iss: q.get('iss'), error: q.get('error') ?? undefined };
	return q;
}

// ------------------------------------------------------------ the provider

// HeadlessProvider is the app's OAuthClientProvider (the interface is the
// same in both SDK lines) for an app whose "browser" is signIn:
// redirectToAuthorization runs the user's part at once and keeps what the
// redirect brought (the callback's query), as an app's redirect listener
// would. decision is what the user will answer on the consent page.
export class HeadlessProvider {
	constructor() {
		this.clientMetadataUrl = config.clientMetadataUrl || undefined;
		this.decision = 'approve';
		this._client = undefined;
		this._tokens = undefined;
		this._verifier = undefined;
		this._callback = undefined;
	}
	get redirectUrl() {
		return config.redirectUrl;
	}
	get clientMetadata() {
		return {
			client_name: 'Kavach MCP TypeScript SDK test app',
			redirect_uris: [config.redirectUrl],
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
		this._callback = await signIn(url, this.decision);
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
	// takeCallback: the query of the last redirect to the app, once.
	takeCallback() {
		const q = this._callback;
		this._callback = undefined;
		if (!q) throw new Error('the SDK asked for authorization but the user was not sent to the issuer');
		return q;
	}
	// takeCode: the authorization code of the last redirect, once.
	takeCode() {
		const q = this.takeCallback();
		if (q.get('error')) throw new Error(`authorization error ${q.get('error')}: ${q.get('error_description')}`);
		if (!q.get('code')) throw new Error('the redirect to the app carried no code');
		return q.get('code');
	}
}

// ----------------------------------------------------------------- helpers

export const describeError = e => ({ name: e?.constructor?.name, code: e?.code, message: String(e?.message ?? e) });
export const toolResult = r => ({
	is_error: !!r.isError,
	text: (r.content ?? []).filter(c => c.type === 'text').map(c => c.text).join('\n'),
	structured: r.structuredContent
});
export const toolNames = r => r.tools.map(t => t.name).sort();

// awaitTest prints {"event":"await","what":what,…} and waits for the test
// to answer "continue" on stdin (it changes something meanwhile, e.g. the
// user's entitlements).
export async function awaitTest(what, extra = {}) {
	emit({ event: 'await', what, ...extra });
	const line = await new Promise(resolve => {
		const rl = createInterface({ input: process.stdin });
		rl.once('line', l => {
			resolve(l);
			rl.close();
		});
		rl.once('close', () => resolve(''));
	});
	if (line.trim() !== 'continue') throw new Error(`stdin said ${JSON.stringify(line)}, want "continue"`);
}

// run runs main and prints the record: {"event":"result"} and exit 0, or
// {"event":"error"} with the step that failed and exit 1.
export function run(main) {
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
}
