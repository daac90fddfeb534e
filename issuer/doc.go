// Package issuer is Kavach's OAuth 2.1 authorization server (DESIGN.md §7):
// a Caddy-free http.Handler that turns people, agents and clients into
// short-lived, scoped access tokens the gateways verify offline.
//
// New(Config) returns a Server with two handlers:
//
//   - Handler, the public side, mounted by Caddy as `kavach_issuer`:
//     RFC 8414 metadata (/.well-known/oauth-authorization-server, also
//     path-inserted), the JWK set (/oauth/jwks), /oauth/authorize with the
//     sign-in and consent pages, /oauth/token, /oauth/register (RFC 7591),
//     /oauth/revoke (RFC 7009) and /oauth/introspect (RFC 7662).
//   - AdminHandler, the agent admin API (/v1/users, /v1/agents, /v1/clients,
//     /v1/keys, /v1/reseed), served only on the gateway's loopback admin
//     listener behind the admin token.
//
// Only /oauth/token mints tokens (mint.go), and every mint goes through
// the same checks: the chain is alive, no cutoff covers it, the grant is
// within the owner's entitlements on the one resource (RFC 8707) and the
// agent's scopes, and nothing outlives the grant. Its grants:
//
//   - authorization_code with PKCE S256, for OAuth clients acting for a
//     signed-in person (code.go; consent recorded as a root grant);
//   - refresh_token with rotation: a reused token revokes its family,
//     after an idempotent grace window for retries;
//   - client_credentials for agents, by secret or private_key_jwt
//     (clientauth.go; the assertion's alg must be its key's, its jti is
//     used once);
//   - token exchange (RFC 8693) for delegation at run time: the result is
//     attenuated by policy.Attenuate and names the extended chain;
//   - jwt-bearer (RFC 7523) with an ID-JAG from a trusted IdP
//     (Config.TrustIDJAG, idjag.go): enterprise-managed authorization,
//     an ordinary access token for the user linked to the assertion's
//     (iss, sub), whose root grant records the IdP.
//
// People sign in with a local password (Config.LocalUsers, on by default)
// or through the organisation's OpenID providers (Config.Login, login.go,
// package idp): a button per provider, authorization code + PKCE with the
// IdP, a user linked by (iss, sub), created just in time if the provider
// allows it. The entitle rules (Config.Entitle) turn the IdP's groups,
// roles and claims into entitlements at every such sign-in. Which wins:
// for a user linked to an IdP, the rules, replacing what the admin API
// set at the next sign-in; for a local user, the admin API. When a
// sign-in takes entitlements away, an issued-before cutoff on the user
// stops every token issued before, their agents' included; later tokens
// are minted within the new entitlements. The browser session lasts
// Config.SessionTTL, and no longer than the IdP's ID token; prompt=login
// and max_age ask for a new sign-in and are passed on to the IdP.
//
// Clients are registered by the operator, dynamically (RFC 7591), or
// identified by a client ID metadata document URL (cimd.go, fetched with
// the resolved address checked at dial time). Errors for a client the
// signed-in user has not approved stay on the issuer's own page
// (RFC 9700 §4.11.2).
//
// State lives in a store.Store (SQLite by default, PostgreSQL for high
// availability); it is the source of truth for revocations, which are
// also published to the gateways' revocation.Set and re-seeded from the
// store when that set has lost them.
package issuer
