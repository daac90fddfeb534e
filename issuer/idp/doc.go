// Package idp is the issuer's bridge to the organisation's identity
// provider (DESIGN.md §11, issue 16), without Caddy and without storage:
//
//   - Provider signs people in with an upstream OpenID provider
//     (authorization code + PKCE S256, nonce, state; ID token verified by
//     github.com/coreos/go-oidc/v3 against the discovered JWK set, which
//     is refetched when an unknown kid appears). Pending holds state,
//     nonce and verifier between the redirect and the callback; a Sealer
//     seals it into a cookie (AES-256-GCM) and opens it once.
//   - Rules turn an Identity's groups, roles and claims into per-resource
//     entitlements (Evaluate), and Shrunk/Narrowed tell the issuer when a
//     sign-in took some away, so it can cut that user's agents.
//   - JAGValidator checks Identity Assertion JWT Authorization Grants
//     (draft-ietf-oauth-identity-assertion-authz-grant) presented with the
//     RFC 7523 jwt-bearer grant: typ, alg, signature against a trusted
//     IdP's JWK set, iss, aud, client_id, exp/iat/lifetime, jti replay.
//
// Every refusal is an *Error whose Kind is one of the Err* values, with an
// OAuth error code and a fixed public description; the detail is for logs.
//
// Sign-in, in the issuer:
//
//	prov, _ := idp.NewProvider(cfg, issuerURL+"/oauth/idp/callback", nil)
//	sealer, _ := idp.NewSealer(key, replay) // 32-byte key shared by the issuer nodes
//
//	// the login page's "Sign in with corpsso" button:
//	p, _ := idp.NewPending("corpsso", authorizeRequestID, browserBinding, 0)
//	to, err := prov.AuthURL(ctx, p, idp.AuthOptions{Prompt: prompt, MaxAge: maxAge})
//	// errors.Is(err, idp.ErrIdPUnavailable): the page says the IdP is down
//	cookie, _ := sealer.Seal(p) // Set-Cookie (HttpOnly, SameSite=Lax), then redirect to `to`
//
//	// the callback:
//	p, err := sealer.Open(ctx, cookie, r.FormValue("state"), browserBinding)
//	id, err := prov.Callback(ctx, r.URL.Query(), p)
//	// link the user to (id.Issuer, id.Subject); then
//	ent := rules.Evaluate(id) // resource → scopes
//	if idp.Narrowed(stored, ent) { /* cut the user's tokens and agents */ }
//
// ID-JAG, at the token endpoint after client authentication:
//
//	g, err := jag.Validate(ctx, form.Get("assertion"), idp.Expect{Audience: issuerURL, ClientID: caller.ID})
//	// g.Issuer, g.Subject → the linked user; g.Scope narrowed by their entitlements;
//	// on error: the *idp.Error's Code and Description are the OAuth answer
package idp
