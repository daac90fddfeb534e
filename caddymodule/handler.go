package caddymodule

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/kavachgate/kavach/gateway"
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
	// The route: resource, scopes, rules, mcp, metadata, audit_required,
	// allow_path_params (gateway.RouteConfig documents each).
	gateway.RouteConfig

	// MatchRaw, when set, limits enforcement to the requests these matcher
	// sets match (any of them); others go on to the next handler. The
	// kavach directive puts its matcher here rather than on a route, so
	// that one matcher-less route per directive guards dot segments for
	// the whole site, serves the metadata and enforces: fewer routes for
	// Caddy to walk on every request.
	MatchRaw caddyhttp.RawMatcherSets `json:"match,omitempty" caddy:"namespace=http.matchers"`

	app      *App
	route    *gateway.Route
	match    caddyhttp.MatcherSets
	meta     *Metadata
	metaPath string
	logger   *slog.Logger
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
	h.logger = ctx.Slogger()
	appIface, err := ctx.App("kavach")
	if err != nil {
		return err
	}
	h.app = appIface.(*App)
	if h.route, err = gateway.NewRoute(&h.RouteConfig, h.app.rt.Sessions()); err != nil {
		return err
	}
	if h.MatchRaw != nil {
		mods, err := ctx.LoadModule(h, "MatchRaw")
		if err != nil {
			return fmt.Errorf("loading matchers: %w", err)
		}
		if err := h.match.FromInterface(mods); err != nil {
			return err
		}
	}
	if h.Metadata {
		// scopes_supported: what this route asks for, so clients (MCP's
		// among them) can request no more than they need.
		h.meta = &Metadata{Resource: h.Resource, ScopesSupported: h.route.AllScopes()}
		if err := h.meta.Provision(ctx); err != nil {
			return fmt.Errorf("metadata: %w", err)
		}
		h.metaPath = gateway.MetadataPath(h.Resource)
	}
	return nil
}

// Validate refuses a route that could never let anything through, or
// that requires a trail there is not.
func (h *Handler) Validate() error {
	if len(h.app.IssuerIDs()) == 0 {
		return errors.New("no trusted issuer: add trusted_keys, issuer or external_issuer to the global kavach option")
	}
	if h.AuditRequired && h.app.AuditOff() {
		return fmt.Errorf("route %s has `audit required` but the global audit option is off", h.Resource)
	}
	if h.ReportOnly && h.app.AuditOff() {
		return fmt.Errorf("route %s is report_only, which records would-be denials in the audit trail, but the global audit option is off", h.Resource)
	}
	return nil
}

// ServeHTTP guards the whole site's paths (a path whose meaning differs
// between servers is 400 wherever it points: Caddy's matchers would not see
// `/api;x/admin` as under `/api/*`, while a Tomcat upstream serves it as
// `/api/admin`), serves the metadata when asked to, and enforces on the
// requests its matchers (if any) match.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if h.meta != nil && r.URL.Path == h.metaPath {
		return h.meta.ServeHTTP(w, r, next)
	}
	if h.match != nil {
		ok, err := h.match.AnyMatchWithError(r)
		if err != nil {
			return caddyhttp.Error(http.StatusBadRequest, err)
		}
		if !ok {
			// A request another kavach route admitted met that route's
			// own path rules (allow_path_params).
			if !admitted(r) && gateway.PathProblem(r, gateway.PathOptions{}) != "" {
				return caddyhttp.Error(http.StatusBadRequest, errors.New("bad request path"))
			}
			return next.ServeHTTP(w, r)
		}
	}
	return h.enforce(w, r, next)
}

// enforce is the pipeline of package gateway with Caddy around it: wait
// until the node is ready, admit, answer a denial (its headers, then the
// JSON-RPC body of an MCP route or a caddyhttp.Error with the public
// reason), or expose the identity to placeholders and logs and forward.
func (h *Handler) enforce(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	h.app.rt.Ready(r.Context())
	ipStr, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	ip, _ := netip.ParseAddr(ipStr) // unparseable: the zero Addr, which no cidrs constraint allows
	var a gateway.Admission
	h.app.rt.Gateway().Admit(h.route, gateway.Request{HTTP: r, ClientIP: ip}, &a)
	if h.logger.Enabled(r.Context(), slog.LevelDebug) {
		h.logger.LogAttrs(r.Context(), slog.LevelDebug, "kavach decision", decisionAttrs(&a)...)
	}
	if a.WouldDeny != "" {
		// report_only: the denial the trail records as not enforced.
		h.logger.LogAttrs(r.Context(), slog.LevelInfo, "kavach would deny (report_only: forwarded)", wouldDenyAttrs(&a)...)
	}
	if !a.Allowed() {
		if a.Deny(w, h.route) {
			return nil
		}
		return caddyhttp.Error(a.Status, errors.New(a.Reason))
	}
	caddyhttp.SetVar(r.Context(), admittedVar, true)
	if id := a.Identity; id != nil {
		v := &logValues{Identity: id, jti: a.Token.ID, requestID: a.RequestID}
		if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
			repl.Map(v.placeholder)
		}
		if extra, ok := r.Context().Value(caddyhttp.ExtraLogFieldsCtxKey).(*caddyhttp.ExtraLogFields); ok && accessLogged(r) {
			// One field (an object) rather than several: each Add costs
			// Caddy a sync.Map reset on the request path. A zap field:
			// Caddy's access log takes no other.
			extra.Add(zap.Object("kavach", v))
		}
	}
	err := h.app.rt.Gateway().Forward(w, r, &a, next.ServeHTTP, handlerErrorStatus)
	var se *gateway.StatusError
	if errors.As(err, &se) {
		return caddyhttp.Error(se.Status, errors.New(se.Reason))
	}
	return err
}

// admittedVar marks a request a kavach route admitted, so the site-wide
// path guard of the site's other kavach routes leaves it to that route's
// own path rules (allow_path_params).
const admittedVar = "kavach.admitted"

func admitted(r *http.Request) bool {
	v, _ := caddyhttp.GetVar(r.Context(), admittedVar).(bool)
	return v
}

// handlerErrorStatus is the status Caddy's error handling answers for an
// error of the next handler.
func handlerErrorStatus(err error) int {
	var he caddyhttp.HandlerError
	if errors.As(err, &he) {
		return he.StatusCode
	}
	return 0
}

// decisionAttrs are the debug log's view of an admission: the outcome of
// every step, MCP inspection included, and the detail of a denial (never
// the token).
func decisionAttrs(a *gateway.Admission) []slog.Attr {
	attrs := []slog.Attr{slog.String("outcome", string(a.Outcome)), slog.Int("status", a.Status), slog.String("detail", a.Detail), slog.Bool("cached", a.Cached)}
	if a.Identity != nil {
		attrs = append(attrs, slog.String("jti", a.Token.ID), slog.String("actor", a.Identity.Actor))
	}
	if a.RequestID != "" {
		attrs = append(attrs, slog.String("request_id", a.RequestID))
	}
	return attrs
}

// wouldDenyAttrs are the log's view of a denial report_only forwarded.
func wouldDenyAttrs(a *gateway.Admission) []slog.Attr {
	d := &a.Relaxed
	return []slog.Attr{slog.String("would_deny", string(d.Outcome)), slog.Int("would_status", d.Status),
		slog.String("reason", d.TrailReason()), slog.String("jti", a.Token.ID), slog.String("actor", a.Identity.Actor),
		slog.String("request_id", a.RequestID)}
}

// accessLogged reports whether the request's server writes access logs
// (the only reader of these fields besides modules' own slog records):
// without, the fields would cost every request and never be written.
func accessLogged(r *http.Request) bool {
	srv, ok := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	return !ok || srv.Logs != nil
}

// logValues are what an allowed request exposes to placeholders and logs.
type logValues struct {
	*gateway.Identity
	jti string
	// requestID is the audit trail's request_id (empty with audit off).
	requestID string
}

// placeholder serves {kavach.subject}, {kavach.actor}, {kavach.chain},
// {kavach.scope}, {kavach.issuer}, {kavach.jti} and {kavach.request_id}.
func (v *logValues) placeholder(key string) (any, bool) {
	switch key {
	case "kavach.subject":
		return v.Subject, true
	case "kavach.actor":
		return v.Actor, true
	case "kavach.chain":
		return v.Chain, true
	case "kavach.scope":
		return v.Scope, true
	case "kavach.issuer":
		return v.Issuer, true
	case "kavach.jti":
		return v.jti, true
	case "kavach.request_id":
		return v.requestID, true
	}
	return nil, false
}

// MarshalLogObject writes the access-log fields (never the token).
func (v *logValues) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("subject", v.Subject)
	enc.AddString("actor", v.Actor)
	enc.AddString("chain", v.Chain)
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
