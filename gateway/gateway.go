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

	"github.com/kavachgate/kavach/mcp"
	"github.com/kavachgate/kavach/policy"
	"github.com/kavachgate/kavach/ratelimit"
	"github.com/kavachgate/kavach/revocation"
	"github.com/kavachgate/kavach/token"
)

// now is the clock; tests replace it.
var now = time.Now

// Gateway holds what every protected route of a process shares: the token
// verifier, the verified-token cache, the revocation set, and the audit
// trail and metrics the pipeline reports to.
type Gateway struct {
	Verifier *token.Verifier
	Cache    *Cache
	Revoked  revocation.Set
	// Audit takes the request path's audit records; nil when the trail is
	// off (DESIGN.md §6).
	Audit Recorder
	// Metrics sees every decision. Optional.
	Metrics Observer
	// OnUnknownKey is called when a token names a kid no trusted issuer
	// publishes (so remote key sets can refresh, rate-limited). Optional.
	OnUnknownKey func()
	// Limiter keeps the buckets of routes' rate limits: the process's
	// (ratelimit.Memory) or the cluster's (ratelimit.Redis). Routes with
	// limits fail closed (503) without one.
	Limiter ratelimit.Store
	// RetryAfter is sent with 503 when the revocation set is not fresh,
	// rounded up to whole seconds. Default: DefaultRetryAfter (5 s).
	RetryAfter time.Duration
}

// Outcome classifies a decision for metrics, logs and the audit reason
// (bounded cardinality).
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
	BadPath           Outcome = "bad_path"
	ConstraintDenied  Outcome = "constraint"
	TooLarge          Outcome = "too_large"
	NoRule            Outcome = "no_rule"
	InsufficientScope Outcome = "insufficient_scope"
	AuditUnavailable  Outcome = "audit_unavailable"
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
	// Why is the audit trail's account of a denial, after the outcome
	// (TrailReason): what failed, in words a reader understands, naming
	// the scopes missing, the constraint and the value it refused, the MCP
	// rule. Never a secret: no token, no session id. For a request without
	// a verifiable token it is one of a small fixed set (junk is counted
	// per reason).
	Why string
	// Scope lists the scopes the operation needs (insufficient_scope).
	Scope string
	// Token is the verified token (nil when none verified).
	Token *token.Token
	// Identity is the verified token's identity (nil when none verified).
	Identity *Identity
	// Cached is true when the token came from the verify cache.
	Cached bool
	// Verify is the time spent verifying on a cache miss.
	Verify time.Duration
	// RetryAfter, in seconds, for 503.
	RetryAfter int
	// Path is the cleaned request path the decision used.
	Path string
	// Allow is the Allow header of a 405.
	Allow string
	// RPC is the JSON-RPC error an MCP route answers with (RPC.Code 0:
	// none).
	RPC RPCError
	// Limit is the rate limit that refused the request (RateLimited,
	// RateLimitUnavailable), and Rate its bucket's answer.
	Limit *ratelimit.Limit
	Rate  ratelimit.Result
	// WouldDeny, on a report-only route, is the outcome of the denial
	// that was recorded but not enforced (the request was forwarded).
	WouldDeny Outcome

	tokenRate *ratelimit.Limit // the verified token's kvc.cnst.rate
}

// RPCError is the JSON-RPC error of an MCP denial: the request's id (zero
// when the body was not read or not understood) and the error code.
type RPCError struct {
	ID   mcp.ID
	Code int
}

// Allowed reports whether the request may proceed.
func (d *Decision) Allowed() bool { return d.Status == 0 }

// TrailReason is the reason the audit trail records: the outcome, then
// why ("insufficient_scope: repository:write").
func (d *Decision) TrailReason() string {
	if d.Why == "" {
		return string(d.Outcome)
	}
	return string(d.Outcome) + ": " + d.Why
}

// Request is what Decide needs of an HTTP request beyond *http.Request:
// facts the server established (Caddy's client_ip honouring trusted_proxies).
type Request struct {
	HTTP     *http.Request
	ClientIP netip.Addr
}

// Decide runs the token steps of the request path (see the package doc:
// steps 3–7, without MCP inspection), in order, each failing closed. It
// reads the request and changes nothing.
func (g *Gateway) Decide(rt *Route, req Request) Decision {
	r := req.HTTP
	raw, d := bearer(r.Header)
	if d.Status != 0 {
		return d
	}

	// Cache, else full verification.
	var d2 Decision
	k := Key(raw)
	nowT := now()
	v := g.Cache.Get(k, nowT.Unix())
	if v != nil {
		d2.Cached = true
	} else {
		gen := g.Cache.Gen()
		start := time.Now()
		t, err := g.Verifier.Verify(raw)
		d2.Verify = time.Since(start)
		if err != nil {
			if errors.Is(err, token.ErrUnknownKey) && g.OnUnknownKey != nil {
				g.OnUnknownKey()
			}
			reason := "invalid token"
			var ve *token.VerifyError
			if errors.As(err, &ve) {
				reason = ve.Public() // one of token's fixed Err… texts
			}
			return Decision{Outcome: InvalidToken, Status: http.StatusUnauthorized, Error: "invalid_token", Reason: reason, Why: reason, Detail: err.Error(), Verify: d2.Verify}
		}
		t = t.Compact()
		v = &Verified{Token: t, Identity: IdentityOf(t)}
		if c := t.Constraints(); c != nil && c.Rate != "" {
			if v.rate, err = TokenRateLimit(string(c.Rate)); err != nil {
				// The verifier validated cnst: not expected.
				return Decision{Outcome: InvalidToken, Status: http.StatusUnauthorized, Error: "invalid_token", Reason: "invalid token", Why: "cnst.rate: " + err.Error(), Detail: err.Error(), Verify: d2.Verify}
			}
		}
		g.Cache.Put(k, v, gen)
	}
	t := v.Token
	d2.Token, d2.Identity, d2.tokenRate = t, &v.Identity, v.rate

	// Audience, against the configured resource, every request.
	if !t.Audience.Contains(rt.Resource) {
		d2 = d2.deny(WrongAudience, http.StatusUnauthorized, "invalid_token", "token is not for this resource", "aud does not contain "+rt.Resource)
		d2.Why = "the token is not for " + rt.Resource
		return d2
	}

	// Revocation of any link of the chain, and cutoffs.
	if !g.Revoked.Fresh() {
		d2 = d2.deny(Unavailable, http.StatusServiceUnavailable, "", "revocation state unavailable", "revocation set not fresh")
		d2.Why = "the revocation set is not fresh"
		d2.RetryAfter = g.retryAfter()
		return d2
	}
	if id, why, ok := g.revoked(t); ok {
		d2 = d2.deny(Revoked, http.StatusUnauthorized, "invalid_token", "token revoked", "revoked: "+id)
		d2.Why = why
		return d2
	}

	// Constraints, on the path as the next hops read it.
	if why := PathProblem(r, rt.PathOptions); why != "" {
		d2 = d2.deny(BadPath, http.StatusBadRequest, "", "bad request path", why)
		d2.Why = why
		return d2
	}
	path := CleanPath(r.URL.Path)
	d2.Path = path
	if c := t.Constraints(); c != nil {
		if c.CIDRs != nil && r.TLS != nil && !r.TLS.HandshakeComplete {
			// Early data can be replayed from anywhere: an address-bound
			// token waits for the handshake (RFC 8470 §5.2).
			d2 = d2.deny(ConstraintDenied, http.StatusTooEarly, "", "retry after the TLS handshake", "cidrs constraint on early data")
			d2.Why = "cidrs: an address-bound token waits for the end of the TLS handshake (early data)"
			return d2
		}
		// The trail names the constraint, what it allows and what it
		// refused: a reader sees at once whether the token or the request
		// was wrong. The body size first: it is not policy a report-only
		// route relaxes, so a relaxed denial below must not skip it.
		switch {
		case !c.AllowsBody(r.ContentLength):
			d2 = d2.deny(TooLarge, http.StatusRequestEntityTooLarge, "", "request body larger than the token allows", "max_body "+strconv.FormatInt(int64(c.MaxBody), 10))
			d2.Why = "Content-Length " + strconv.FormatInt(r.ContentLength, 10) + " is over the token's max_body " + strconv.FormatInt(int64(c.MaxBody), 10)
			return d2
		case !c.AllowsIP(req.ClientIP):
			d2 = d2.deny(ConstraintDenied, http.StatusForbidden, "", "client address not allowed by token", "cidrs: "+req.ClientIP.String())
			d2.Why = "cidrs (" + joinPrefixes(c.CIDRs) + ") do not include the client address " + addrText(req.ClientIP)
			return d2
		case !c.AllowsHost(rt.host):
			d2 = d2.deny(ConstraintDenied, http.StatusForbidden, "", "host not allowed by token", "hosts: "+rt.host)
			d2.Why = "hosts (" + strings.Join(c.Hosts, " ") + ") do not include " + rt.host
			return d2
		case !c.AllowsMethod(r.Method):
			d2 = d2.deny(ConstraintDenied, http.StatusForbidden, "", "method not allowed by token", "methods: "+r.Method)
			d2.Why = "methods (" + strings.Join(c.Methods, " ") + ") do not include " + r.Method
			return d2
		case !c.AllowsPath(path):
			d2 = d2.deny(ConstraintDenied, http.StatusForbidden, "", "path not allowed by token", "paths")
			d2.Why = "paths (" + strings.Join(c.Paths, " ") + ") do not include " + path
			return d2
		}
	}

	// The route's scopes and its method/path rules.
	matched := len(rt.Rules) == 0
	for i := range rt.Rules {
		if rt.Rules[i].matches(r.Method, path) {
			matched = true
		}
	}
	if !matched {
		d2 = d2.deny(NoRule, http.StatusForbidden, "", "no rule allows this method and path", "")
		d2.Why = "no scope rule matches " + r.Method + " " + path
		return d2
	}
	if need, ok := missingScope(rt, r.Method, path, t.Scopes); !ok {
		d2 = d2.deny(InsufficientScope, http.StatusForbidden, "insufficient_scope", "insufficient scope", "missing "+need)
		d2.Scope = requiredScopes(rt, r.Method, path)
		d2.Why = missingOf(d2.Scope, t.Scopes)
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
		return "", Decision{Outcome: MissingToken, Status: http.StatusUnauthorized, Reason: "bearer token required", Why: whyNoBearer}
	case 1:
	default:
		return "", Decision{Outcome: BadRequest, Status: http.StatusBadRequest, Error: "invalid_request", Reason: "more than one Authorization header", Why: "more than one Authorization header"}
	}
	v := vals[0]
	const scheme = "bearer "
	if len(v) < len(scheme) || !strings.EqualFold(v[:len(scheme)], scheme) {
		return "", Decision{Outcome: MissingToken, Status: http.StatusUnauthorized, Reason: "bearer token required", Why: whyNoBearer}
	}
	raw := strings.TrimLeft(v[len(scheme):], " ")
	if raw == "" {
		return "", Decision{Outcome: InvalidToken, Status: http.StatusUnauthorized, Error: "invalid_token", Reason: token.ErrMalformed.Error(), Why: token.ErrMalformed.Error()}
	}
	return raw, Decision{}
}

// whyNoBearer is the trail's reason for a request without a bearer token.
const whyNoBearer = "no bearer token"

// retryAfter is the Retry-After, in whole seconds (rounded up), of a 503
// while the revocation set is not fresh.
func (g *Gateway) retryAfter() int {
	d := g.RetryAfter
	if d <= 0 {
		d = DefaultRetryAfter
	}
	return int((d + time.Second - 1) / time.Second)
}

// revoked checks the token's id, every grant and agent of its chain, and the
// issued-before cutoffs for its user, client and key. It returns what was
// revoked (for the log) and why, for the trail: ids and cutoffs name no
// secret (a token is named by its jti).
func (g *Gateway) revoked(t *token.Token) (id, why string, ok bool) {
	if g.Revoked.IsRevoked(t.ID) {
		return t.ID, "token " + t.ID + " is revoked", true
	}
	if k := t.Kavach; k != nil {
		for _, id := range k.Chain {
			if g.Revoked.IsRevoked(id) {
				return id, id + " is revoked", true
			}
		}
		for _, id := range k.Agents {
			if g.Revoked.IsRevoked(id) {
				return id, id + " is revoked", true
			}
		}
	}
	switch {
	case g.Revoked.RevokedBefore(revocation.CutoffSubject, t.Subject, t.IssuedAt):
		return "sub " + t.Subject, "tokens of user " + t.Subject + " issued before a cutoff", true
	case t.ClientID != "" && g.Revoked.RevokedBefore(revocation.CutoffClient, t.ClientID, t.IssuedAt):
		return "client " + t.ClientID, "tokens of client " + t.ClientID + " issued before a cutoff", true
	case g.Revoked.RevokedBefore(revocation.CutoffKey, t.KeyID, t.IssuedAt):
		return "kid " + t.KeyID, "tokens signed with key " + t.KeyID + " issued before a cutoff", true
	}
	return "", "", false
}

// missingOf lists the scopes of need (space-separated) that have does not
// allow: what the token lacks, for the trail.
func missingOf(need string, have []string) string {
	var out []string
	for _, s := range strings.Fields(need) {
		if !policy.Allows(have, s) {
			out = append(out, s)
		}
	}
	return strings.Join(out, " ")
}

func joinPrefixes(l policy.PrefixList) string {
	s := make([]string, len(l))
	for i, p := range l {
		s[i] = p.String()
	}
	return strings.Join(s, " ")
}

// addrText is a client address for the trail ("unknown" when Caddy gave
// none).
func addrText(a netip.Addr) string {
	if !a.IsValid() {
		return "unknown"
	}
	return a.String()
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
		b.WriteString(`error_description="` + descriptionText(d.Reason) + `", `)
	}
	b.WriteString(`resource_metadata="` + rt.metadataURL + `"`)
	return b.String()
}

// descriptionText is s as an RFC 6750 §3 error_description may hold it:
// only %x20-21 / %x23-5B / %x5D-7E, so a '"' (argument denials quote the
// argument's name) becomes an apostrophe and any other byte outside the
// set a question mark.
// The JSON-RPC error body keeps the reason as it is.
func descriptionText(s string) string {
	ok := true
	for i := 0; i < len(s) && ok; i++ {
		c := s[i]
		ok = c >= 0x20 && c <= 0x7e && c != '"' && c != '\\'
	}
	if ok {
		return s
	}
	b := []byte(s)
	for i, c := range b {
		switch {
		case c == '"':
			b[i] = '\''
		case c < 0x20 || c > 0x7e || c == '\\':
			b[i] = '?'
		}
	}
	return string(b)
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
