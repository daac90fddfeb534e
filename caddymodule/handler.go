package caddymodule

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/kavachgate/kavach/audit"
	"github.com/kavachgate/kavach/gateway"
	"github.com/kavachgate/kavach/mcp"
	"github.com/kavachgate/kavach/token"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler (`http.handlers.kavach`) lets through only what an agent token
// allows on this route: it verifies the bearer token, checks audience,
// revocation, the token's constraints and the route's scope rules, then
// strips the token and adds Kavach-Subject, Kavach-Actor, Kavach-Chain and
// Kavach-Scope for the upstream. The decision itself is package gateway's.
type Handler struct {
	// Resource is this route's resource indicator (RFC 8707): the audience
	// a token must carry. Fixed here, never taken from the request's Host.
	Resource string `json:"resource"`

	// Scopes are required of every request on the route.
	Scopes []string `json:"scopes,omitempty"`

	// Rules require scopes per method and path. With any rule present, a
	// request that matches none is denied (403).
	Rules []Rule `json:"rules,omitempty"`

	// MatchRaw, when set, limits enforcement to the requests these matcher
	// sets match (any of them); others go on to the next handler. The
	// kavach directive puts its matcher here rather than on a route, so
	// that one matcher-less route per directive guards dot segments for
	// the whole site, serves the metadata and enforces: fewer routes for
	// Caddy to walk on every request.
	MatchRaw caddyhttp.RawMatcherSets `json:"match,omitempty" caddy:"namespace=http.matchers"`

	// MCP makes this an MCP route (DESIGN.md §4.1): every POST is decoded
	// strictly and checked against per-tool, per-resource and per-prompt
	// rules, tools/list answers are filtered by the same rules, Origin is
	// checked and sessions are bound to the chain that opened them.
	MCP *MCPConfig `json:"mcp,omitempty"`

	// Metadata serves the resource's RFC 9728 metadata (authorization
	// servers: the Kavach issuers the app trusts) at its well-known path,
	// /.well-known/oauth-protected-resource plus the resource's path.
	Metadata bool `json:"metadata,omitempty"`

	// AuditRequired makes every allowed request of the route wait until
	// its decision record is durable (fsynced) before it is forwarded, as
	// the token constraint `audit: required` does for one token (DESIGN.md
	// §4 step 8). Caddyfile: `audit required`. A config with the trail
	// off refuses it.
	AuditRequired bool `json:"audit_required,omitempty"`

	// AllowPathParams lets requests whose path has `;` parameters in a
	// segment (matrix parameters: /cars;color=red/list) through on this
	// route; by default the gateway refuses them with 400 (DESIGN.md §11).
	// The risk: Tomcat, Jetty and Spring strip `;params` from a segment
	// before routing and resolve `..;` as `..`, so on such an upstream
	// /api/public/..;/admin reaches /api/admin while the route's rules and
	// the token's `paths` constraint judged a path under /api/public/.
	// Set it only for an API that really uses matrix parameters, whose
	// upstream does not read paths that way. Caddyfile:
	// `allow_path_params`. Default: false.
	AllowPathParams bool `json:"allow_path_params,omitempty"`

	app      *App
	route    gateway.Route
	match    caddyhttp.MatcherSets
	meta     *Metadata
	metaPath string
	logger   *zap.Logger
}

// MCPConfig is the MCP part of a route.
type MCPConfig struct {
	// Tools: `tool <name|*> <scope…>`; every matching rule applies, and a
	// tool no rule matches is denied.
	Tools []mcp.Rule `json:"tools,omitempty"`
	// Resources: `resource_uri <uri|prefix*|*> <scope…>` (resources/read).
	Resources []mcp.Rule `json:"resources,omitempty"`
	// Prompts: `prompt <name|*> <scope…>` (prompts/get).
	Prompts []mcp.Rule `json:"prompts,omitempty"`
	// AllowedOrigins are Origin values accepted besides the resource's own.
	AllowedOrigins []string `json:"allowed_origins,omitempty"`
	// MaxBody bounds a POST body, in bytes. Default: 1 MiB.
	MaxBody int64 `json:"max_body,omitempty"`
}

// Rule is `scope <METHOD> <PATH> <scope…>`.
type Rule struct {
	// Method is an upper-case HTTP method, or "*" for any.
	Method string `json:"method"`
	// Path is exact, or ends in "*" for any suffix; "*" alone is any path.
	Path string `json:"path"`
	// Scopes are all required.
	Scopes []string `json:"scopes"`
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.kavach",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision compiles the route and finds the kavach app.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	appIface, err := ctx.App("kavach")
	if err != nil {
		return err
	}
	h.app = appIface.(*App)
	h.route = gateway.Route{Resource: h.Resource, Scopes: h.Scopes}
	for _, r := range h.Rules {
		h.route.Rules = append(h.route.Rules, gateway.Rule{Method: r.Method, Path: r.Path, Scopes: r.Scopes})
	}
	if c := h.MCP; c != nil {
		h.route.MCP = &gateway.MCP{
			Rules:    mcp.Rules{Tools: c.Tools, Resources: c.Resources, Prompts: c.Prompts},
			MaxBody:  c.MaxBody,
			Origins:  c.AllowedOrigins,
			Sessions: h.app.mcpSessions,
		}
	}
	if err := h.route.Compile(); err != nil {
		return fmt.Errorf("kavach: %w", err)
	}
	if h.MatchRaw != nil {
		mods, err := ctx.LoadModule(h, "MatchRaw")
		if err != nil {
			return fmt.Errorf("kavach: loading matchers: %w", err)
		}
		if err := h.match.FromInterface(mods); err != nil {
			return fmt.Errorf("kavach: %w", err)
		}
	}
	if h.Metadata {
		// scopes_supported: what this route asks for, so clients (MCP's
		// among them) can request no more than they need.
		h.meta = &Metadata{Resource: h.Resource, ScopesSupported: h.route.AllScopes()}
		if err := h.meta.Provision(ctx); err != nil {
			return fmt.Errorf("kavach: metadata: %w", err)
		}
		h.metaPath = gateway.MetadataPath(h.Resource)
	}
	registerMetrics(ctx)
	return nil
}

// Validate refuses a route that could never let anything through, or
// that requires a trail there is not.
func (h *Handler) Validate() error {
	if len(h.app.issuerIDs()) == 0 {
		return errors.New("kavach: no trusted issuer: add trusted_keys, issuer or external_issuer to the global kavach option")
	}
	if h.AuditRequired && h.app.auditOff() {
		return fmt.Errorf("kavach: route %s has `audit required` but the global audit option is off", h.Resource)
	}
	return nil
}

// ServeHTTP answers a path with a dot segment 400 (Caddy's path matchers
// clean such a path, so `/api/../admin` could slip past a matcher while
// the upstream receives it as sent), serves the metadata when asked to,
// and enforces on the requests its matchers (if any) match.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if gateway.HasDotSegment(r.URL.Path) {
		return caddyhttp.Error(http.StatusBadRequest, errors.New("bad request path"))
	}
	if h.meta != nil && r.URL.Path == h.metaPath {
		return h.meta.ServeHTTP(w, r, next)
	}
	if h.match != nil {
		ok, err := h.match.AnyMatchWithError(r)
		if err != nil {
			return caddyhttp.Error(http.StatusBadRequest, err)
		}
		if !ok {
			return next.ServeHTTP(w, r)
		}
	}
	return h.enforce(w, r, next)
}

// enforce decides, then either answers the error with its challenge or
// rewrites the request and calls next. Every decision on a request with a
// verifiable token leaves a decision record in the audit trail, and every
// forwarded request an outcome record after its response; requests
// without one (no token, a bad signature) are only counted (DESIGN.md §6).
func (h *Handler) enforce(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) (err error) {
	ipStr, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	ip, _ := netip.ParseAddr(ipStr) // unparseable: the zero Addr, which no cidrs constraint allows
	h.app.rev.waitFirstLoad(r.Context())
	h.app.waitKeys(r.Context())
	d := h.app.gw.Decide(&h.route, gateway.Request{HTTP: r, ClientIP: ip})
	observe(&d)
	if ce := h.logger.Check(zapcore.DebugLevel, "kavach decision"); ce != nil {
		fields := []zap.Field{zap.String("outcome", string(d.Outcome)), zap.Int("status", d.Status), zap.String("detail", d.Detail), zap.Bool("cached", d.Cached)}
		if d.Token != nil {
			fields = append(fields, zap.String("jti", d.Token.ID), zap.String("actor", gateway.Actor(d.Token)))
		}
		ce.Write(fields...)
	}
	if d.Outcome == gateway.Preflight {
		gateway.Apply(r, nil) // no token, but no spoofed Kavach-… header either
		return next.ServeHTTP(w, r)
	}
	aw := h.app.auditWriter() // nil when the trail is off (or not open)
	if !d.Allowed() {
		h.auditDenial(aw, r, &d, d.Token, nil)
		if d.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(d.RetryAfter))
		}
		w.Header().Set("WWW-Authenticate", d.Challenge(&h.route))
		return caddyhttp.Error(d.Status, errors.New(d.Reason))
	}

	t := d.Token
	var ex *gateway.MCPExchange
	if h.route.MCP != nil {
		var md gateway.Decision
		ex, md = gateway.InspectMCP(&h.route, r, t)
		if md.Status != 0 {
			observe(&md)
			var msg *mcp.Message
			if ex != nil {
				msg = ex.Message
			}
			h.auditDenial(aw, r, &md, t, msg)
			if md.Error != "" {
				w.Header().Set("WWW-Authenticate", md.Challenge(&h.route))
			}
			return caddyhttp.Error(md.Status, errors.New(md.Reason))
		}
	}

	// No proxied request without its decision record: a trail that cannot
	// take it (queue full, sink failing) is a 503; audit: required waits
	// until the record is durable.
	var rec audit.Record
	var rw *auditResponseWriter
	if aw != nil {
		var msg *mcp.Message
		if ex != nil {
			msg = ex.Message
		}
		h.auditFill(&rec, r, t, msg)
		rec.Kind, rec.Decision, rec.Reason = audit.KindDecision, audit.Allow, string(gateway.Allowed)
		var werr error
		if h.AuditRequired || t.Constraints().AuditRequired() {
			werr = aw.WriteDurable(r.Context(), &rec)
		} else {
			werr = aw.Write(&rec)
		}
		if werr != nil {
			if errors.Is(werr, audit.ErrNotDurable) {
				// The allow record may still reach the trail: say that
				// the request was not forwarded.
				refused := outcomeOf(&rec, http.StatusServiceUnavailable)
				if err := aw.Write(&refused); err != nil {
					h.logger.Warn("audit: outcome of a refused request not recorded", zap.Error(err), zap.String("request_id", rec.RequestID))
				}
			}
			return h.auditUnavailable(w, werr, t)
		}
		rw = &auditResponseWriter{ResponseWriter: w}
		w = rw
	} else if !h.app.auditOff() {
		return h.auditUnavailable(w, errors.New("audit trail not open"), t)
	}
	var mw *gateway.MCPWriter
	if ex != nil {
		mw = ex.Wrap(w, r)
		w = mw
	}
	v := logValues{subject: t.Subject, actor: rec.Actor, chain: gateway.Chain(t), scope: t.Scope, jti: t.ID, requestID: rec.RequestID}
	if rec.Actor == "" {
		v.actor = gateway.Actor(t)
	}
	gateway.ApplyValues(r, v.subject, v.actor, v.chain, v.scope)
	limit := gateway.LimitBody(r, t)
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		repl.Map(v.placeholder)
	}
	if extra, ok := r.Context().Value(caddyhttp.ExtraLogFieldsCtxKey).(*caddyhttp.ExtraLogFields); ok && accessLogged(r) {
		// One field (an object) rather than four: each Add costs Caddy a
		// sync.Map reset on the request path.
		extra.Add(zap.Object("kavach", &v))
	}
	if rw != nil {
		// Deferred so that a response cut short (a panic that aborts the
		// handler) still gets its outcome.
		start := time.Now()
		defer func() { h.auditOutcome(aw, &rec, rw, start, err) }()
	}
	err = next.ServeHTTP(w, r)
	if mw != nil {
		if ferr := mw.Finish(); ferr != nil && err == nil {
			h.logger.Warn("MCP response refused", zap.Error(ferr))
		}
	}
	if err != nil && limit.Exceeded() {
		// The proxy reports the cut body as an upstream failure (502); the
		// client sent too much.
		return caddyhttp.Error(http.StatusRequestEntityTooLarge, errors.New("request body larger than the token allows"))
	}
	return err
}

// auditFill sets the members a request's decision record shares with its
// denial or outcome.
func (h *Handler) auditFill(rec *audit.Record, r *http.Request, t *token.Token, msg *mcp.Message) {
	rec.RequestID = newRequestID()
	rec.Sub, rec.Actor, rec.Agents, rec.ClientID, rec.JTI = t.Subject, gateway.Actor(t), t.Agents(), t.ClientID, t.ID
	if t.Kavach != nil {
		rec.Chain = t.Kavach.Chain
	}
	rec.Method, rec.Host, rec.Path = r.Method, r.Host, r.URL.EscapedPath()
	if msg != nil {
		rec.MCPMethod, rec.Tool = msg.Method, msg.Name
	}
}

// auditDenial records a denial: a decision record when the request had a
// verifiable token, else one more count of junk. A record the trail
// cannot take changes nothing (the request is denied anyway).
func (h *Handler) auditDenial(aw *audit.Writer, r *http.Request, d *gateway.Decision, t *token.Token, msg *mcp.Message) {
	if aw == nil {
		return
	}
	if t == nil {
		aw.CountJunk(string(d.Outcome))
		return
	}
	var rec audit.Record
	h.auditFill(&rec, r, t, msg)
	rec.Kind, rec.Decision, rec.Reason, rec.Status = audit.KindDecision, audit.Deny, string(d.Outcome), d.Status
	if err := aw.Write(&rec); err != nil {
		if ce := h.logger.Check(zapcore.WarnLevel, "audit: denial not recorded"); ce != nil {
			ce.Write(zap.Error(err), zap.String("jti", t.ID), zap.String("outcome", string(d.Outcome)))
		}
	}
}

// auditUnavailable answers 503 to an allowed request whose decision record
// the trail did not take.
func (h *Handler) auditUnavailable(w http.ResponseWriter, err error, t *token.Token) error {
	if ce := h.logger.Check(zapcore.WarnLevel, "audit trail unavailable: request refused"); ce != nil {
		ce.Write(zap.Error(err), zap.String("jti", t.ID))
	}
	w.Header().Set("Retry-After", "1")
	return caddyhttp.Error(http.StatusServiceUnavailable, errors.New("audit trail unavailable"))
}

// auditOutcome writes the outcome record of a forwarded request, reusing
// its decision record's members.
func (h *Handler) auditOutcome(aw *audit.Writer, rec *audit.Record, rw *auditResponseWriter, start time.Time, err error) {
	status := rw.status
	if status == 0 {
		status = http.StatusOK
		if err != nil {
			// Not answered yet: Caddy's error handling will, with this status.
			status = http.StatusInternalServerError
			var he caddyhttp.HandlerError
			if errors.As(err, &he) && he.StatusCode != 0 {
				status = he.StatusCode
			}
		}
	}
	*rec = outcomeOf(rec, status)
	rec.Bytes, rec.Duration = rw.bytes, time.Since(start)
	if werr := aw.Write(rec); werr != nil {
		if ce := h.logger.Check(zapcore.WarnLevel, "audit: outcome not recorded"); ce != nil {
			ce.Write(zap.Error(werr), zap.String("request_id", rec.RequestID))
		}
	}
}

// outcomeOf is the outcome record of the request decision recorded.
func outcomeOf(decision *audit.Record, status int) audit.Record {
	return audit.Record{Kind: audit.KindOutcome, RequestID: decision.RequestID, Actor: decision.Actor, Agents: decision.Agents, Status: status}
}

// auditResponseWriter notes the status and body bytes of a response for
// its outcome record. Unwrap keeps http.ResponseController (flushes,
// deadlines, hijacking) working through it.
type auditResponseWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *auditResponseWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *auditResponseWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

// Unwrap is for http.ResponseController.
func (w *auditResponseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// accessLogged reports whether the request's server writes access logs
// (the only reader of these fields besides modules' own slog records):
// without, the fields would cost every request and never be written.
func accessLogged(r *http.Request) bool {
	srv, ok := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	return !ok || srv.Logs != nil
}

// logValues are what an allowed request exposes to placeholders and logs,
// computed once per request.
type logValues struct {
	subject, actor, chain, scope, jti string
	// requestID is the audit trail's request_id (empty with audit off).
	requestID string
}

// placeholder serves {kavach.subject}, {kavach.actor}, {kavach.chain},
// {kavach.scope}, {kavach.jti} and {kavach.request_id}.
func (v *logValues) placeholder(key string) (any, bool) {
	switch key {
	case "kavach.subject":
		return v.subject, true
	case "kavach.actor":
		return v.actor, true
	case "kavach.chain":
		return v.chain, true
	case "kavach.scope":
		return v.scope, true
	case "kavach.jti":
		return v.jti, true
	case "kavach.request_id":
		return v.requestID, true
	}
	return nil, false
}

// MarshalLogObject writes the access-log fields (never the token).
func (v *logValues) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("subject", v.subject)
	enc.AddString("actor", v.actor)
	enc.AddString("chain", v.chain)
	enc.AddString("jti", v.jti)
	if v.requestID != "" {
		enc.AddString("request_id", v.requestID)
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
	_ caddyfile.Unmarshaler       = (*Handler)(nil)
)
