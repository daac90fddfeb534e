package gateway

import (
	"errors"
	"io"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/kavachgate/kavach/policy"
	"github.com/kavachgate/kavach/revocation"
	"github.com/kavachgate/kavach/token"
)

// now is the clock; tests replace it.
var now = time.Now

// Gateway holds what every protected route shares: the token verifier, the
// verified-token cache and the revocation set.
type Gateway struct {
	Verifier *token.Verifier
	Cache    *Cache
	Revoked  revocation.Set
	// OnUnknownKey is called when a token names a kid no trusted issuer
	// publishes (so remote key sets can refresh, rate-limited). Optional.
	OnUnknownKey func()
	// RetryAfter is sent with 503 when the revocation set is not fresh.
	// Default 5 s.
	RetryAfter time.Duration
}

// Outcome classifies a decision for metrics and logs (bounded cardinality).
type Outcome string

const (
	Allowed           Outcome = "allowed"
	Preflight         Outcome = "preflight"
	MissingToken      Outcome = "missing_token"
	InvalidToken      Outcome = "invalid_token"
	WrongAudience     Outcome = "wrong_audience"
	Revoked           Outcome = "revoked"
	Unavailable       Outcome = "unavailable"
	BadRequest        Outcome = "bad_request"
	ConstraintDenied  Outcome = "constraint"
	TooLarge          Outcome = "too_large"
	NoRule            Outcome = "no_rule"
	InsufficientScope Outcome = "insufficient_scope"
)

// Decision is the gateway's verdict on one request. Status is 0 when the
// request may proceed.
type Decision struct {
	Outcome Outcome
	Status  int
	// Error is the RFC 6750 §3.1 error code for the challenge, if any.
	Error string
	// Reason is short and public: error_description and the error message.
	Reason string
	// Detail is for Kavach's own log only.
	Detail string
	// Scope lists the scopes the operation needs (insufficient_scope).
	Scope string
	// Token is the verified token (nil when none verified).
	Token *token.Token
	// Cached is true when the token came from the verify cache.
	Cached bool
	// Verify is the time spent verifying on a cache miss.
	Verify time.Duration
	// RetryAfter, in seconds, for 503.
	RetryAfter int
	// Path is the decoded, cleaned request path the decision used.
	Path string
}

// Allowed reports whether the request may proceed.
func (d *Decision) Allowed() bool { return d.Status == 0 }

// Request is what Decide needs of an HTTP request beyond *http.Request:
// facts the server established (Caddy's client_ip honouring trusted_proxies).
type Request struct {
	HTTP     *http.Request
	ClientIP netip.Addr
}

// Decide runs DESIGN.md §4 steps 1–7 for one request on rt, in order, each
// failing closed. It reads the request and changes nothing; Apply does the
// upstream rewriting once the request is allowed.
func (g *Gateway) Decide(rt *Route, req Request) Decision {
	r := req.HTTP
	// Step 1: the token. A CORS preflight carries none by design.
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		return Decision{Outcome: Preflight}
	}
	raw, d := bearer(r.Header)
	if d.Status != 0 {
		return d
	}

	// Steps 2–3: cache, else full verification.
	var d2 Decision
	k := Key(raw)
	nowT := now()
	t := g.Cache.Get(k, nowT.Unix())
	if t != nil {
		d2.Cached = true
	} else {
		gen := g.Cache.Gen()
		start := time.Now()
		var err error
		t, err = g.Verifier.Verify(raw)
		d2.Verify = time.Since(start)
		if err != nil {
			if errors.Is(err, token.ErrUnknownKey) && g.OnUnknownKey != nil {
				g.OnUnknownKey()
			}
			reason := "invalid token"
			var ve *token.VerifyError
			if errors.As(err, &ve) {
				reason = ve.Public()
			}
			return Decision{Outcome: InvalidToken, Status: http.StatusUnauthorized, Error: "invalid_token", Reason: reason, Detail: err.Error(), Verify: d2.Verify}
		}
		g.Cache.Put(k, t.Compact(), gen)
	}
	d2.Token = t

	// Step 4: audience, against the configured resource, every request.
	if !t.Audience.Contains(rt.Resource) {
		return d2.deny(WrongAudience, http.StatusUnauthorized, "invalid_token", "token is not for this resource", "aud does not contain "+rt.Resource)
	}

	// Step 5: revocation of any link of the chain, and cutoffs.
	if !g.Revoked.Fresh() {
		d2 = d2.deny(Unavailable, http.StatusServiceUnavailable, "", "revocation state unavailable", "revocation set not fresh")
		d2.RetryAfter = int(max(g.RetryAfter, 5*time.Second) / time.Second)
		return d2
	}
	if id, ok := g.revoked(t); ok {
		return d2.deny(Revoked, http.StatusUnauthorized, "invalid_token", "token revoked", "revoked: "+id)
	}

	// Step 6: constraints.
	path, bad := cleanPath(r)
	if bad != "" {
		return d2.deny(BadRequest, http.StatusBadRequest, "", "bad request path", bad)
	}
	d2.Path = path
	if c := t.Constraints(); c != nil {
		if c.CIDRs != nil && r.TLS != nil && !r.TLS.HandshakeComplete {
			// Early data can be replayed from anywhere: an address-bound
			// token waits for the handshake (RFC 8470 §5.2).
			return d2.deny(ConstraintDenied, http.StatusTooEarly, "", "retry after the TLS handshake", "cidrs constraint on early data")
		}
		switch {
		case !c.AllowsIP(req.ClientIP):
			return d2.deny(ConstraintDenied, http.StatusForbidden, "", "client address not allowed by token", "cidrs: "+req.ClientIP.String())
		case !c.AllowsHost(rt.host):
			return d2.deny(ConstraintDenied, http.StatusForbidden, "", "host not allowed by token", "hosts: "+rt.host)
		case !c.AllowsMethod(r.Method):
			return d2.deny(ConstraintDenied, http.StatusForbidden, "", "method not allowed by token", "methods: "+r.Method)
		case !c.AllowsPath(path):
			return d2.deny(ConstraintDenied, http.StatusForbidden, "", "path not allowed by token", "paths")
		case !c.AllowsBody(r.ContentLength):
			return d2.deny(TooLarge, http.StatusRequestEntityTooLarge, "", "request body larger than the token allows", "max_body "+strconv.FormatInt(int64(c.MaxBody), 10))
		}
	}

	// Step 7: the route's scopes and its method/path rules.
	matched := len(rt.Rules) == 0
	for i := range rt.Rules {
		if rt.Rules[i].matches(r.Method, path) {
			matched = true
		}
	}
	if !matched {
		return d2.deny(NoRule, http.StatusForbidden, "", "no rule allows this method and path", "")
	}
	if need, ok := missingScope(rt, r.Method, path, t.Scopes); !ok {
		d2 = d2.deny(InsufficientScope, http.StatusForbidden, "insufficient_scope", "insufficient scope", "missing "+need)
		d2.Scope = requiredScopes(rt, r.Method, path)
		return d2
	}
	d2.Outcome = Allowed
	return d2
}

func (d Decision) deny(o Outcome, status int, code, reason, detail string) Decision {
	d.Outcome, d.Status, d.Error, d.Reason, d.Detail = o, status, code, reason, detail
	return d
}

// bearer extracts the RFC 6750 §2.1 token. Missing, or another scheme, is
// a challenge without an error code (§3.1); a malformed value is
// invalid_token; several Authorization headers are refused.
func bearer(h http.Header) (string, Decision) {
	vals := h.Values("Authorization")
	switch len(vals) {
	case 0:
		return "", Decision{Outcome: MissingToken, Status: http.StatusUnauthorized, Reason: "bearer token required"}
	case 1:
	default:
		return "", Decision{Outcome: BadRequest, Status: http.StatusBadRequest, Error: "invalid_request", Reason: "more than one Authorization header"}
	}
	v := vals[0]
	const scheme = "bearer "
	if len(v) < len(scheme) || !strings.EqualFold(v[:len(scheme)], scheme) {
		return "", Decision{Outcome: MissingToken, Status: http.StatusUnauthorized, Reason: "bearer token required"}
	}
	raw := strings.TrimLeft(v[len(scheme):], " ")
	if raw == "" {
		return "", Decision{Outcome: InvalidToken, Status: http.StatusUnauthorized, Error: "invalid_token", Reason: token.ErrMalformed.Error()}
	}
	return raw, Decision{}
}

// revoked checks the token's id, every grant and agent of its chain, and the
// issued-before cutoffs for its user, client and key.
func (g *Gateway) revoked(t *token.Token) (string, bool) {
	if g.Revoked.IsRevoked(t.ID) {
		return t.ID, true
	}
	if k := t.Kavach; k != nil {
		for _, id := range k.Chain {
			if g.Revoked.IsRevoked(id) {
				return id, true
			}
		}
		for _, id := range k.Agents {
			if g.Revoked.IsRevoked(id) {
				return id, true
			}
		}
	}
	switch {
	case g.Revoked.RevokedBefore(revocation.CutoffSubject, t.Subject, t.IssuedAt):
		return "sub " + t.Subject, true
	case t.ClientID != "" && g.Revoked.RevokedBefore(revocation.CutoffClient, t.ClientID, t.IssuedAt):
		return "client " + t.ClientID, true
	case g.Revoked.RevokedBefore(revocation.CutoffKey, t.KeyID, t.IssuedAt):
		return "kid " + t.KeyID, true
	}
	return "", false
}

// missingScope returns the first required scope the token lacks.
func missingScope(rt *Route, method, path string, have []string) (string, bool) {
	for _, s := range rt.Scopes {
		if !policy.Allows(have, s) {
			return s, false
		}
	}
	for i := range rt.Rules {
		r := &rt.Rules[i]
		if !r.matches(method, path) {
			continue
		}
		for _, s := range r.Scopes {
			if !policy.Allows(have, s) {
				return s, false
			}
		}
	}
	return "", true
}

// requiredScopes lists every scope the operation needs, for the
// insufficient_scope challenge (RFC 6750 §3).
func requiredScopes(rt *Route, method, path string) string {
	need := append([]string(nil), rt.Scopes...)
	for i := range rt.Rules {
		if rt.Rules[i].matches(method, path) {
			for _, s := range rt.Rules[i].Scopes {
				if !slices.Contains(need, s) {
					need = append(need, s)
				}
			}
		}
	}
	return policy.FormatScopes(need)
}

// cleanPath returns the decoded request path, or why it is refused: an
// encoded '/' or '\', a '\', or a dot segment could make the path the
// gateway checks differ from the one the upstream serves.
func cleanPath(r *http.Request) (string, string) {
	p := r.URL.Path
	if raw := r.URL.RawPath; raw != "" && (containsFold(raw, "%2f") || containsFold(raw, "%5c")) {
		return "", "encoded slash or backslash in path"
	}
	if p == "" || p[0] != '/' {
		return "", "path must start with /"
	}
	if strings.IndexByte(p, '\\') >= 0 {
		return "", "backslash in path"
	}
	if HasDotSegment(p) {
		return "", "dot segment in path"
	}
	if strings.Contains(p, "//") {
		// Empty segments are merged so "/api//x" is checked as "/api/x".
		var b strings.Builder
		for i := 0; i < len(p); i++ {
			if p[i] == '/' && i > 0 && p[i-1] == '/' {
				continue
			}
			b.WriteByte(p[i])
		}
		p = b.String()
	}
	return p, ""
}

func containsFold(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}

// Challenge is the WWW-Authenticate value for a denied decision
// (RFC 6750 §3, RFC 9728 §5.1). Every challenge names the metadata URL.
func (d *Decision) Challenge(rt *Route) string {
	// RFC 6750 §3.1: a request without credentials gets no error detail.
	if d.Outcome == MissingToken || (d.Error == "" && d.Reason == "") {
		return rt.challenge
	}
	var b strings.Builder
	b.WriteString("Bearer ")
	if d.Error != "" {
		b.WriteString(`error="` + d.Error + `", `)
	}
	if d.Scope != "" {
		b.WriteString(`scope="` + d.Scope + `", `)
	}
	if d.Reason != "" {
		b.WriteString(`error_description="` + d.Reason + `", `)
	}
	b.WriteString(`resource_metadata="` + rt.metadataURL + `"`)
	return b.String()
}

// Upstream header names set by Apply.
const (
	HeaderSubject = "Kavach-Subject"
	HeaderActor   = "Kavach-Actor"
	HeaderChain   = "Kavach-Chain"
	HeaderScope   = "Kavach-Scope"
)

// Apply rewrites an allowed request for the upstream (DESIGN.md §4 step 9):
// the token never leaves, and no client-sent Kavach-… header (with '_' read
// as '-', as some servers do) survives to be mistaken for ours.
func Apply(r *http.Request, t *token.Token) {
	if t == nil {
		ApplyValues(r, "", "", "", "")
		return
	}
	ApplyValues(r, t.Subject, Actor(t), Chain(t), t.Scope)
}

// ApplyValues is Apply with the values already computed; an empty subject
// strips without adding (a preflight).
func ApplyValues(r *http.Request, subject, actor, chain, scope string) {
	r.Header.Del("Authorization")
	for name := range r.Header {
		if len(name) >= len("kavach-") && isKavachPrefix(name[:len("kavach-")]) {
			delete(r.Header, name)
		}
	}
	if subject == "" {
		return
	}
	// One backing array for the four values: one allocation, not four.
	vals := [...]string{subject, actor, chain, scope}
	all := vals[:]
	r.Header[HeaderSubject] = all[0:1:1]
	if actor != "" {
		r.Header[HeaderActor] = all[1:2:2]
	}
	if chain != "" {
		r.Header[HeaderChain] = all[2:3:3]
	}
	if scope != "" {
		r.Header[HeaderScope] = all[3:4:4]
	}
}

// isKavachPrefix reports whether p reads "kavach-", ignoring case and
// reading '_' as '-', without allocating.
func isKavachPrefix(p string) bool {
	const want = "kavach-"
	for i := 0; i < len(want); i++ {
		c := p[i]
		if c == '_' {
			c = '-'
		}
		if lowerASCII(c) != want[i] {
			return false
		}
	}
	return true
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
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

// BodyLimit cuts a request body at the token's max_body while it streams,
// so the upstream never receives a complete oversized body (a larger
// Content-Length was already refused by Decide).
type BodyLimit struct {
	rc        io.ReadCloser
	limit     int64
	remaining int64
	exceeded  atomic.Bool
}

// LimitBody wraps r.Body when the token limits it; it returns nil when it
// does not.
func LimitBody(r *http.Request, t *token.Token) *BodyLimit {
	c := t.Constraints()
	if c == nil || c.MaxBody <= 0 || r.Body == nil || r.Body == http.NoBody {
		return nil
	}
	b := &BodyLimit{rc: r.Body, limit: int64(c.MaxBody), remaining: int64(c.MaxBody)}
	r.Body = b
	return b
}

// Read passes the body through until one byte past the limit is seen.
func (b *BodyLimit) Read(p []byte) (int, error) {
	if b.remaining < 0 {
		return 0, &http.MaxBytesError{Limit: b.limit}
	}
	if int64(len(p)) > b.remaining+1 {
		p = p[:b.remaining+1]
	}
	n, err := b.rc.Read(p)
	if int64(n) > b.remaining {
		n = int(b.remaining)
		b.remaining = -1
		b.exceeded.Store(true)
		return n, &http.MaxBytesError{Limit: b.limit}
	}
	b.remaining -= int64(n)
	return n, err
}

// Close closes the underlying body.
func (b *BodyLimit) Close() error { return b.rc.Close() }

// Exceeded reports whether the body ran past the limit (safe to call from
// another goroutine than the reader's).
func (b *BodyLimit) Exceeded() bool { return b != nil && b.exceeded.Load() }

// HasDotSegment reports whether a decoded path has a "." or ".." segment.
// Caddy's matchers see such a path cleaned while the upstream may get it
// as sent, so requests carrying one are refused (RFC 3986 §5.2.4 has
// clients remove them).
func HasDotSegment(p string) bool {
	for i := 0; i < len(p); i++ {
		if p[i] != '.' || (i > 0 && p[i-1] != '/') {
			continue
		}
		end := i + 1
		if end < len(p) && p[end] == '.' {
			end++
		}
		if end == len(p) || p[end] == '/' {
			return true
		}
	}
	return false
}
