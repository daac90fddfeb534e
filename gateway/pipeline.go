package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kavachgate/kavach/audit"
	"github.com/kavachgate/kavach/mcp"
	"github.com/kavachgate/kavach/ratelimit"
	"github.com/kavachgate/kavach/token"
)

// Recorder is the audit trail as the request path sees it; *audit.Writer
// has these methods. Write and WriteDurable fail when the trail cannot take
// a record (queue full, sink failing, not open): the request is then
// refused with 503, never forwarded unrecorded.
type Recorder interface {
	Write(rec *audit.Record) error
	WriteDurable(ctx context.Context, rec *audit.Record) error
	// CountJunk counts a request without a verifiable token into the
	// periodic summary record (DESIGN.md §6).
	CountJunk(reason string)
}

// Observer sees every decision once, after admission (metrics).
type Observer interface {
	Observe(d *Decision)
}

// Next is the rest of the server's handler chain.
type Next func(http.ResponseWriter, *http.Request) error

// Admission is what Admit decided about one request, and for an allowed
// request the plan Forward applies: the identity to send, the audit
// record to complete, the MCP exchange whose response must be watched.
type Admission struct {
	Decision
	// RequestID links the request's decision and outcome records (empty
	// when the trail is off or the request was not recorded).
	RequestID string

	preflight bool
	ex        *MCPExchange
	rec       audit.Record // the decision record; the outcome reuses it
	recorded  bool
	guard     streamGuard // in the Admission, so watching costs no allocation

	// Relaxed is, on a report-only route, the denial that was recorded
	// (enforced: false) but not enforced; its Outcome is empty otherwise.
	Relaxed Decision

	// The rate limit checks of the request, in the Admission so that
	// counting costs no allocation.
	checks  [ratelimit.MaxLimitsPerRoute + 1]ratelimit.Check // + the token's own
	results [ratelimit.MaxLimitsPerRoute + 1]ratelimit.Result
}

// StatusError is an answer Forward asks the server to give after the next
// handler failed in a way that is the client's fault (a body cut at the
// token's max_body: 413, not the proxy's 502).
type StatusError struct {
	Status int
	Reason string
}

func (e *StatusError) Error() string { return e.Reason }

// Admit runs steps 1–8 of the package doc on one request: it decides, and
// records the decision (a decision record for a request with a verifiable
// token, a junk count otherwise). It fills a; a.Allowed() tells whether
// Forward may be called.
func (g *Gateway) Admit(rt *Route, req Request, a *Admission) {
	*a = Admission{}
	r := req.HTTP
	defer g.observe(a)

	// Step 1: on MCP routes, the Origin check comes before anything else:
	// a browser page of another origin learns nothing, not even whether a
	// token would do (MCP transport: servers must validate Origin).
	if m := rt.MCP; m != nil {
		if o := r.Header.Get("Origin"); o != "" && !m.originAllowed(o) {
			a.Decision = Decision{Outcome: BadOrigin, Status: http.StatusForbidden, Reason: "origin not allowed", Detail: "Origin " + o,
				Why: "Origin not allowed on this MCP route"} // junk reasons are a fixed set: the origin is not named
			g.denied(rt, r, a)
			return
		}
	}

	// Step 2: a CORS preflight carries no token by design. It is forwarded
	// only as what it is: no body, a path as strict as any other.
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		switch {
		case hasBody(r):
			a.Decision = Decision{Outcome: BadRequest, Status: http.StatusBadRequest, Reason: "a CORS preflight has no body", Why: "a CORS preflight with a body"}
		case PathProblem(r, rt.PathOptions) != "":
			why := PathProblem(r, rt.PathOptions)
			a.Decision = Decision{Outcome: BadPath, Status: http.StatusBadRequest, Reason: "bad request path", Detail: why, Why: why}
		default:
			a.Outcome, a.preflight = Preflight, true
			if g.Audit != nil {
				g.Audit.CountJunk(string(Preflight))
			}
			return
		}
		g.denied(rt, r, a)
		return
	}

	// Steps 3–7: the token, its audience, revocation, constraints, the
	// route's rules.
	a.Decision = g.Decide(rt, req)
	if !a.Allowed() && !a.relax(rt) {
		g.denied(rt, r, a)
		return
	}
	t := a.Token

	// Step 7, MCP: method, body, message, headers, session, tool rules.
	if rt.MCP != nil {
		ex, d := inspectMCP(rt, r, a.Decision)
		a.ex = ex
		if !d.Allowed() {
			a.Decision = d
			if !a.relax(rt) {
				g.denied(rt, r, a)
				return
			}
		}
	}

	// Step 7, rate limits: only a request every other check allowed takes
	// a token (a would-be denial of a report-only route takes none).
	if (len(rt.Limits) > 0 || a.tokenRate != nil) && a.WouldDeny == "" {
		if d, limited := g.rateLimit(rt, r, a); limited {
			a.Decision = d
			if !a.relax(rt) {
				g.denied(rt, r, a)
				return
			}
		}
	}

	// Step 8: no forwarded request without its decision record.
	if g.Audit == nil {
		if t.Constraints().AuditRequired() {
			a.Decision = a.deny(ConstraintDenied, http.StatusForbidden, "", "token requires an audit trail", "audit: required with the trail off")
			a.Why = "audit: required, and this gateway's trail is off"
			g.denied(rt, r, a)
		}
		return
	}
	fillRecord(&a.rec, r, a.Identity, t, rt, a.ex)
	a.rec.Kind, a.rec.Decision, a.rec.Reason = audit.KindDecision, audit.Allow, string(Allowed)
	if a.WouldDeny != "" {
		// Report-only: the denial as it would have been, marked not
		// enforced; the outcome record that follows says what happened.
		a.rec.Decision, a.rec.Unenforced, a.rec.Reason, a.rec.Status = audit.Deny, true, a.Relaxed.TrailReason(), a.Relaxed.Status
	}
	a.RequestID = a.rec.RequestID
	var err error
	if rt.AuditRequired || t.Constraints().AuditRequired() {
		err = g.Audit.WriteDurable(r.Context(), &a.rec)
	} else {
		err = g.Audit.Write(&a.rec)
	}
	if err != nil {
		if errors.Is(err, audit.ErrNotDurable) {
			// The allow record may still reach the trail: say that the
			// request was not forwarded.
			refused := outcomeOf(&a.rec, http.StatusServiceUnavailable)
			_ = g.Audit.Write(&refused)
		}
		a.Decision = a.deny(AuditUnavailable, http.StatusServiceUnavailable, "", "audit trail unavailable", err.Error())
		a.RetryAfter = transientRetryAfter
		a.rpcDefault(rt)
		return
	}
	a.recorded = true
}

// relax decides, on a report-only route, whether the denial in
// a.Decision is one report-only forwards: then it keeps the denial in
// a.Relaxed (the first one, when several steps would deny), makes the
// decision an allowed one for the same token, and reports true. A
// request whose token is missing, invalid, revoked or for another
// resource never gets here allowed (reportOnlyRelaxes).
func (a *Admission) relax(rt *Route) bool {
	if !rt.ReportOnly || a.Token == nil || !reportOnlyRelaxes(&a.Decision) {
		return false
	}
	if a.WouldDeny == "" {
		a.Relaxed = a.Decision
	}
	d := a.Decision
	a.Decision = Decision{Outcome: Allowed, Token: d.Token, Identity: d.Identity, Cached: d.Cached, Verify: d.Verify, Path: d.Path, tokenRate: d.tokenRate,
		WouldDeny: a.Relaxed.Outcome, Limit: a.Relaxed.Limit}
	return true
}

// reportOnlyRelaxes lists the denials a report-only route records and
// forwards: authorization policy (what the token may do) and rate
// limits. Everything else stays enforced: who is asking (401: no token,
// invalid, expired, revoked, wrong audience), state the gateway cannot
// vouch for (503: revocation set, session store, trail), well-formedness
// (400 bad path or message, 404 unknown method or session, 405, 413,
// 415, 425), DNS-rebinding protection (403 Origin) and session binding
// (403: another chain's session).
func reportOnlyRelaxes(d *Decision) bool {
	switch d.Outcome {
	case ConstraintDenied, NoRule, InsufficientScope, ToolDenied, ArgumentDenied:
		return d.Status == http.StatusForbidden
	case RateLimited, RateLimitUnavailable:
		return true
	}
	return false
}

// denied records a denial: a decision record when the request had a
// verifiable token, else one more count of junk. Either way the reason
// says why (Decision.TrailReason). A record the trail cannot take changes
// nothing (the request is denied anyway). On MCP routes the denial gets
// its JSON-RPC error code.
func (g *Gateway) denied(rt *Route, r *http.Request, a *Admission) {
	a.rpcDefault(rt)
	if g.Audit == nil {
		return
	}
	if a.Token == nil {
		g.Audit.CountJunk(a.TrailReason())
		return
	}
	if a.Outcome == RateLimited && !a.Rate.FirstDenial {
		// A flood must not flood the trail: the first refusal of a bucket
		// after its last allowed request is a decision record naming the
		// principal; the refusals that follow are counted per limit in
		// the periodic summary. At most one record per allowed request.
		g.Audit.CountJunk(string(RateLimited) + ": " + LimitLabel(a.Limit))
		return
	}
	fillRecord(&a.rec, r, a.Identity, a.Token, rt, a.ex)
	a.rec.Kind, a.rec.Decision, a.rec.Reason, a.rec.Status = audit.KindDecision, audit.Deny, a.TrailReason(), a.Status
	a.RequestID = a.rec.RequestID
	_ = g.Audit.Write(&a.rec)
}

func (g *Gateway) observe(a *Admission) {
	if g.Metrics != nil {
		g.Metrics.Observe(&a.Decision)
	}
}

// rpcDefault gives a denial on an MCP route the JSON-RPC code of its
// status when inspection did not choose one.
func (a *Admission) rpcDefault(rt *Route) {
	if rt.MCP == nil || a.RPC.Code != 0 {
		return
	}
	switch a.Status {
	case http.StatusUnauthorized, http.StatusForbidden:
		a.RPC.Code = rpcForbidden
	case http.StatusServiceUnavailable, http.StatusTooEarly:
		a.RPC.Code = rpcInternal
	case http.StatusTooManyRequests:
		a.RPC.Code = rpcRateLimited
	default:
		a.RPC.Code = rpcInvalidRequest
	}
}

// fillRecord sets the members of a request's decision record, allowed or
// denied: who, what was asked, and for an MCP call the digest of its
// arguments (and the arguments, on a route that records them).
func fillRecord(rec *audit.Record, r *http.Request, id *Identity, tok *token.Token, rt *Route, ex *MCPExchange) {
	rec.RequestID = NewRequestID()
	rec.Sub, rec.Actor, rec.Agents, rec.ClientID, rec.JTI = tok.Subject, Actor(tok), tok.Agents(), tok.ClientID, tok.ID
	if id != nil && id.External {
		rec.Sub, rec.Actor = id.Subject, id.Actor
	}
	if tok.Kavach != nil {
		rec.Chain = tok.Kavach.Chain
	}
	rec.Method, rec.Host, rec.Path = r.Method, r.Host, r.URL.EscapedPath()
	if ex == nil || ex.Message == nil {
		return
	}
	rec.MCPMethod, rec.Tool = ex.Message.Method, ex.Message.Name
	if ex.args == nil {
		return
	}
	// DESIGN.md §6: the digest of the arguments bytes exactly as
	// forwarded (the body is forwarded unchanged), never a re-encoding.
	sum := sha256.Sum256(ex.args)
	rec.ArgsSHA256 = hex.EncodeToString(sum[:])
	if m := rt.MCP; m != nil && m.RecordArguments {
		b, err := mcp.RecordArguments(nil, ex.args, m.Redact, audit.MaxArgsBytes)
		if err != nil {
			b = []byte("[unreadable]") // Decode accepted them: not expected
		}
		rec.Args = string(b)
	}
}

// outcomeOf is the outcome record of the request decision recorded. It
// repeats who acts (the actor, the chain's agents, the user it acts for),
// so an outcome read alone still says it.
func outcomeOf(decision *audit.Record, status int) audit.Record {
	return audit.Record{Kind: audit.KindOutcome, RequestID: decision.RequestID, Sub: decision.Sub, Actor: decision.Actor, Agents: decision.Agents, Status: status}
}

// hasBody reports whether a request carries a body (a Content-Length
// above zero, or a chunked one of unknown length).
func hasBody(r *http.Request) bool {
	return r.ContentLength > 0 || len(r.TransferEncoding) > 0 ||
		r.ContentLength < 0 && r.Body != nil && r.Body != http.NoBody
}

// Forward is step 9: it rewrites the admitted request for the upstream
// (token and spoofable headers out, identity in), bounds its body by the
// token's max_body, calls next, filters an MCP response, and writes the
// outcome record, also when next panics. errStatus tells the status of an
// error next returned before answering (the server's error handling will
// answer it); nil means 500.
func (g *Gateway) Forward(w http.ResponseWriter, r *http.Request, a *Admission, next Next, errStatus func(error) int) (err error) {
	if a.preflight {
		rewrite(r.Header, nil)
		return next(w, r)
	}
	rewrite(r.Header, a.Identity)
	limit := LimitBody(r, a.Token)
	if a.recorded {
		rw := &recordingWriter{ResponseWriter: w}
		w = rw
		start := time.Now()
		defer func() {
			p := recover()
			g.outcome(a, rw, start, err, p != nil, errStatus)
			if p != nil {
				panic(p)
			}
		}()
	}
	var mw *MCPWriter
	if a.ex != nil {
		mw = a.ex.wrap(w, r)
		w = mw
	}
	a.guard = streamGuard{ResponseWriter: w, g: g, tok: a.Token}
	err = next(&a.guard, r)
	if mw != nil {
		if ferr := mw.Finish(); ferr != nil && err == nil {
			err = ferr
		}
	}
	if err != nil && limit.Exceeded() {
		// The proxy reports the cut body as an upstream failure (502); the
		// client sent too much.
		return &StatusError{Status: http.StatusRequestEntityTooLarge, Reason: "request body larger than the token allows"}
	}
	return err
}

// outcome writes the outcome record of a forwarded request.
func (g *Gateway) outcome(a *Admission, rw *recordingWriter, start time.Time, err error, panicked bool, errStatus func(error) int) {
	status := rw.status
	if status == 0 {
		switch {
		case panicked:
			status = http.StatusInternalServerError
		case err != nil:
			status = http.StatusInternalServerError
			var se *StatusError
			if errors.As(err, &se) {
				status = se.Status
			} else if errStatus != nil {
				if s := errStatus(err); s != 0 {
					status = s
				}
			}
		default:
			status = http.StatusOK
		}
	}
	rec := outcomeOf(&a.rec, status)
	rec.Bytes, rec.Duration = rw.bytes, time.Since(start)
	_ = g.Audit.Write(&rec)
}

// recordingWriter notes the status and body bytes of a response for its
// outcome record. Unwrap keeps http.ResponseController (flushes,
// deadlines, hijacking) working through it.
type recordingWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *recordingWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recordingWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

// Unwrap is for http.ResponseController.
func (w *recordingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// ErrStreamRevoked is what a write to a response stream answers once the
// stream's token, a link of its chain, or its user, client or key was
// revoked after the stream began.
var ErrStreamRevoked = errors.New("gateway: the stream's token was revoked")

// streamGuard ends a response stream (text/event-stream: an MCP GET
// stream, a long tools/call answer) at its first write after the token
// that opened it is revoked. Admission decides once, at the start; a
// stream can outlive that by hours, and revoking a chain must stop what
// it is doing everywhere (DESIGN.md §5). Plain responses are not watched:
// they end on their own.
type streamGuard struct {
	http.ResponseWriter
	g       *Gateway
	tok     *token.Token
	checked bool // the response's headers were looked at
	stream  bool
	cut     bool
}

func (s *streamGuard) look() {
	if !s.checked {
		s.checked = true
		ct := s.Header().Get("Content-Type")
		s.stream = s.tok != nil && len(ct) >= 17 && strings.EqualFold(ct[:17], "text/event-stream")
	}
}

func (s *streamGuard) WriteHeader(code int) {
	if code >= 200 {
		s.look()
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *streamGuard) Write(p []byte) (int, error) {
	s.look()
	if s.stream && !s.cut {
		if _, _, revoked := s.g.revoked(s.tok); revoked {
			s.cut = true
		}
	}
	if s.cut {
		return 0, ErrStreamRevoked
	}
	return s.ResponseWriter.Write(p)
}

// Unwrap is for http.ResponseController.
func (s *streamGuard) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Deny answers a denied admission's headers: WWW-Authenticate (every
// denial names the metadata URL), Retry-After, Allow. On an MCP route it
// also writes the JSON-RPC error body with the request's id and returns
// true: the response is complete. Otherwise the server answers the status
// with the public reason (caddyhttp.Error, so handle_errors can show it).
func (a *Admission) Deny(w http.ResponseWriter, rt *Route) (written bool) {
	h := w.Header()
	h.Set("WWW-Authenticate", a.Challenge(rt))
	if a.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(a.RetryAfter))
	}
	if a.Allow != "" {
		h.Set("Allow", a.Allow)
	}
	if a.Outcome == RateLimited {
		setRateLimitHeaders(h, a.Limit, a.Rate)
	}
	if rt.MCP == nil || a.RPC.Code == 0 {
		return false
	}
	body := rpcErrorBody(a.RPC.ID, a.RPC.Code, a.Reason)
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(a.Status)
	_, _ = w.Write(body)
	return true
}
