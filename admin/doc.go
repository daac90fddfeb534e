// Package admin is the Kavach admin plane as a Go API: the request and
// response types of the admin listener (DESIGN.md §7), its one error shape,
// and a typed Client for them. The CLI (package cli) and tests use the
// Client; the issuer decodes and encodes the same types, so the wire format
// is written down once, here.
//
// The admin listener serves, behind one bearer token:
//
//	the issuer's API   /v1/users…, /v1/agents…, /v1/clients…, /v1/keys…, /v1/reseed
//	the gateway's      /v1/revocations (revocation.NewHandler)
//	without a token    GET /readyz
//
// When a process runs several issuers, the issuer API takes the query
// parameter issuer=<issuer identifier> (Client.Issuer); without it the
// first issuer of the config answers.
//
// Every error answer is {"error": code, "error_description": text}, the
// shape of OAuth errors (RFC 6749 §5.2); the Client returns it as an
// *Error, which callers can switch on:
//
//	c := &admin.Client{BaseURL: "http://127.0.0.1:2021", Token: os.Getenv("KAVACH_ADMIN_TOKEN")}
//	a, err := c.CreateAgent(ctx, admin.AgentCreate{Name: "orchestrator", Owner: "usr_alice", Scopes: []string{"mcp:review"}})
//	var ae *admin.Error
//	if errors.As(err, &ae) && ae.Code == "invalid_scope" { … }
//
// This package imports neither Caddy nor the issuer; the issuer imports it.
package admin
