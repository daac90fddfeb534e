package caddymodule

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/kavachgate/kavach/gateway"
	"github.com/kavachgate/kavach/mcp"
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
	// AuditArguments, when present, records each call's arguments
	// (tools/call, prompts/get) in its decision record, the members it
	// names redacted; at most audit.MaxArgsBytes (2 KiB) are kept. Every
	// MCP decision record carries the SHA-256 of the arguments as
	// forwarded (args_sha256) whether or not this is set.
	// Default: absent (the digest only).
	AuditArguments *AuditArguments `json:"audit_arguments,omitempty"`
}

// AuditArguments is `audit_arguments [redact <name…>]`.
type AuditArguments struct {
	// Redact names the members whose values are written as "[redacted]",
	// at any depth of the arguments; names compare without regard to
	// case. Default: none.
	Redact []string `json:"redact,omitempty"`
}

func (a *AuditArguments) validate() error {
	for _, n := range a.Redact {
		if n == "" {
			return errors.New("an empty name")
		}
	}
	return nil
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
	h.route = gateway.Route{Resource: h.Resource, Scopes: h.Scopes, AuditRequired: h.AuditRequired, PathOptions: gateway.PathOptions{AllowParams: h.AllowPathParams}}
	for _, r := range h.Rules {
		h.route.Rules = append(h.route.Rules, gateway.Rule{Method: r.Method, Path: r.Path, Scopes: r.Scopes})
	}
	if c := h.MCP; c != nil {
		h.route.MCP = &gateway.MCP{
			Rules:    mcp.Rules{Tools: c.Tools, Resources: c.Resources, Prompts: c.Prompts},
			MaxBody:  c.MaxBody,
			Origins:  c.AllowedOrigins,
			Sessions: h.app.rt.Sessions(),
		}
		if a := c.AuditArguments; a != nil {
			if err := a.validate(); err != nil {
				return fmt.Errorf("kavach: audit_arguments redact: %w", err)
			}
			h.route.MCP.RecordArguments, h.route.MCP.Redact = true, a.Redact
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
	return nil
}

// Validate refuses a route that could never let anything through, or
// that requires a trail there is not.
func (h *Handler) Validate() error {
	if len(h.app.IssuerIDs()) == 0 {
		return errors.New("kavach: no trusted issuer: add trusted_keys, issuer or external_issuer to the global kavach option")
	}
	if h.AuditRequired && h.app.AuditOff() {
		return fmt.Errorf("kavach: route %s has `audit required` but the global audit option is off", h.Resource)
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
	h.app.rt.Gateway().Admit(&h.route, gateway.Request{HTTP: r, ClientIP: ip}, &a)
	if ce := h.logger.Check(zapcore.DebugLevel, "kavach decision"); ce != nil {
		ce.Write(decisionFields(&a)...)
	}
	if !a.Allowed() {
		if a.Deny(w, &h.route) {
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
			// Caddy a sync.Map reset on the request path.
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

// decisionFields are the debug log's view of an admission: the outcome of
// every step, MCP inspection included, and the detail of a denial (never
// the token).
func decisionFields(a *gateway.Admission) []zap.Field {
	fields := []zap.Field{zap.String("outcome", string(a.Outcome)), zap.Int("status", a.Status), zap.String("detail", a.Detail), zap.Bool("cached", a.Cached)}
	if a.Identity != nil {
		fields = append(fields, zap.String("jti", a.Token.ID), zap.String("actor", a.Identity.Actor))
	}
	if a.RequestID != "" {
		fields = append(fields, zap.String("request_id", a.RequestID))
	}
	return fields
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
