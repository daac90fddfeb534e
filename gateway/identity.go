package gateway

import (
	"net/http"
	"strings"

	"github.com/kavachgate/kavach/token"
)

// Upstream header names set for an allowed request (DESIGN.md §4 step 9).
const (
	HeaderSubject = "Kavach-Subject"
	HeaderActor   = "Kavach-Actor"
	HeaderChain   = "Kavach-Chain"
	HeaderScope   = "Kavach-Scope"
	// HeaderIssuer names the issuer of the token, so an upstream can always
	// tell a Kavach identity from one of an external_issuer.
	HeaderIssuer = "Kavach-Issuer"
)

// ExternalPrefix starts the subject, actor and chain an upstream receives
// for a token of an external_issuer (Okta, Entra, Keycloak): Kavach ids
// are base64url after a kind prefix (`usr_`, `agt_`) and never contain ':',
// so `ext:agt_x` can never be read as a Kavach agent, whatever client_id
// the external issuer chose.
const ExternalPrefix = "ext:"

// Identity is what an allowed request tells the upstream, placeholders and
// logs about its caller. It is derived once per verified token (and cached
// with it), never from the request.
type Identity struct {
	Issuer  string // iss
	Subject string // the user the chain acts for
	Actor   string // the current actor: the last agent, or the client
	Chain   string // the agents, root first, comma-separated
	// Scope is the scopes the gateway honours, space-separated: for an
	// external token its concrete scopes only (wildcards are ignored).
	Scope    string
	External bool
}

// IdentityOf derives the identity of a verified token.
func IdentityOf(t *token.Token) Identity {
	id := Identity{Issuer: t.Issuer, Subject: t.Subject, Actor: Actor(t), Chain: Chain(t), Scope: t.Scope, External: t.External}
	if t.External {
		id.Subject = ExternalPrefix + t.Subject
		id.Actor = ExternalPrefix + t.ClientID
		id.Chain = id.Actor
		id.Scope = strings.Join(t.Scopes, " ")
	}
	return id
}

// Actor is the agent making the call: act.sub for Kavach tokens, else the
// client.
func Actor(t *token.Token) string {
	if a := t.CurrentActor(); a != "" && !t.External {
		return a
	}
	return t.ClientID
}

// Chain is the agents of the delegation chain, root first, comma-separated.
func Chain(t *token.Token) string {
	return strings.Join(t.Agents(), ",")
}

// Method-override headers: frameworks (Express's method-override, Rails,
// Symfony, ASP.NET) read them as the request's real method, which would let
// a GET pass the gateway's method rules and constraints and act as a
// DELETE upstream. They never reach an upstream.
var methodOverrideHeaders = [...]string{"X-Http-Method-Override", "X-Http-Method", "X-Method-Override"}

// rewrite readies a request for the upstream (DESIGN.md §4 step 9): the
// token never leaves, no client-sent Kavach-… header (with '_' read as
// '-', as CGI and WSGI servers do) or method override survives, the
// Connection header cannot make the next hop drop what the gateway set,
// and, when id is not nil, the identity headers are added.
func rewrite(h http.Header, id *Identity) {
	delete(h, "Authorization")
	for name := range h {
		if len(name) >= len("kavach-") && isKavachPrefix(name[:len("kavach-")]) || isOverrideSpelling(name) {
			delete(h, name)
		}
	}
	if c, ok := h["Connection"]; ok {
		h["Connection"] = connectionTokens(c)
	}
	if id == nil {
		return
	}
	// One backing array for the values: one allocation, not five.
	vals := [...]string{id.Subject, id.Actor, id.Chain, id.Scope, id.Issuer}
	all := vals[:]
	h[HeaderSubject] = all[0:1:1]
	h[HeaderActor] = all[1:2:2]
	h[HeaderChain] = all[2:3:3]
	h[HeaderScope] = all[3:4:4]
	h[HeaderIssuer] = all[4:5:5]
}

// connectionTokens drops from Connection header values every token naming
// a header the gateway sets or removes (RFC 9110 §7.6.1: a proxy removes
// the fields a Connection header names, so `Connection: Kavach-Actor`
// would make Caddy's reverse_proxy delete the identity the gateway set).
// Values without such a token are returned as they are.
func connectionTokens(vals []string) []string {
	bad := false
	for _, v := range vals {
		for t := range strings.SplitSeq(v, ",") {
			if protectedField(strings.TrimSpace(t)) {
				bad = true
			}
		}
	}
	if !bad {
		return vals
	}
	var keep []string
	for _, v := range vals {
		for t := range strings.SplitSeq(v, ",") {
			if t = strings.TrimSpace(t); t != "" && !protectedField(t) {
				keep = append(keep, t)
			}
		}
	}
	if len(keep) == 0 {
		return []string{"keep-alive"}
	}
	return []string{strings.Join(keep, ", ")}
}

// protectedField reports whether a header name is one the gateway sets or
// must keep from the upstream: Authorization, any Kavach-…, a method
// override; '_' is read as '-'.
func protectedField(name string) bool {
	switch {
	case len(name) >= len("kavach-") && isKavachPrefix(name[:len("kavach-")]):
		return true
	case sameFold(name, "authorization"):
		return true
	}
	return isOverrideSpelling(name)
}

// isOverrideSpelling reports whether name is one of the method-override
// headers, ignoring case and reading '_' as '-'.
func isOverrideSpelling(name string) bool {
	for _, o := range methodOverrideHeaders {
		if sameFold(name, o) {
			return true
		}
	}
	return false
}

// sameFold compares header names ignoring ASCII case, '_' read as '-'.
func sameFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := lowerASCII(a[i]), lowerASCII(b[i])
		if x == '_' {
			x = '-'
		}
		if y == '_' {
			y = '-'
		}
		if x != y {
			return false
		}
	}
	return true
}

// isKavachPrefix reports whether p reads "kavach-", ignoring case and
// reading '_' as '-', without allocating.
func isKavachPrefix(p string) bool { return sameFold(p, "kavach-") }

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
