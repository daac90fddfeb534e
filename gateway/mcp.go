package gateway

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/kavachgate/kavach/mcp"
	"github.com/kavachgate/kavach/policy"
	"github.com/kavachgate/kavach/token"
)

// MCP is a route's MCP inspection (DESIGN.md §4.1): per-tool, per-resource
// and per-prompt rules, strict decoding of every POST, Origin checks,
// tools/list filtering and sessions bound to the chain that opened them.
type MCP struct {
	// Rules are the tool, resource and prompt rules; a route scope and a
	// tool scope both apply.
	Rules mcp.Rules
	// MaxBody bounds a POST body. Default mcp.DefaultMaxBody (1 MiB).
	MaxBody int64
	// Origins are allowed Origin header values besides the resource's own
	// origin (DNS-rebinding protection: a browser page of another origin
	// never reaches the MCP server). When the resource is on loopback,
	// loopback origins are allowed too.
	Origins []string
	// Sessions binds Mcp-Session-Id values to chains; shared by the
	// routes of a process (mcp.MemorySessions), or by the gateways of a
	// cluster (mcp.RedisSessions). Required.
	Sessions mcp.SessionStore
	// RecordArguments puts each call's params.arguments (tools/call,
	// prompts/get) in its decision record (args), the members named in
	// Redact replaced by "[redacted]" at any depth, cut at
	// audit.MaxArgsBytes. Off, the record carries only their digest
	// (args_sha256), which it always does.
	RecordArguments bool
	// Redact names the members whose values are never recorded, compared
	// without regard to case once unescaped ("Password", "pass\u0077ord").
	Redact []string
	// Args are the route's rules on tools/call arguments, by tool name
	// (each a tool with a rule of that exact name). Optional.
	Args policy.Args

	origin   string // the resource's scheme://host[:port]
	loopback bool   // the resource is on a loopback host
}

// Additional outcomes of MCP inspection.
const (
	BadOrigin       Outcome = "bad_origin"
	BadEncoding     Outcome = "unsupported_encoding"
	BadMethod       Outcome = "method_not_allowed"
	UnknownMethod   Outcome = "mcp_unknown_method"
	ToolDenied      Outcome = "mcp_denied"
	ArgumentDenied  Outcome = "mcp_argument"
	SessionMismatch Outcome = "session_mismatch"
	SessionUnknown  Outcome = "session_unknown"
)

// mcpAllow is the Allow header of a 405 on an MCP route.
const mcpAllow = "GET, POST, DELETE, OPTIONS"

func (m *MCP) compile(resource string) error {
	if err := m.Rules.Compile(); err != nil {
		return err
	}
	u, err := url.Parse(resource)
	if err != nil {
		return err
	}
	m.origin = strings.ToLower(u.Scheme + "://" + u.Host)
	m.loopback = isLoopbackHost(u.Hostname())
	for _, o := range m.Origins {
		if _, err := url.Parse(o); err != nil || !strings.Contains(o, "://") || strings.Count(o, "/") != 2 {
			return errors.New("allowed origin " + quoteValue(o) + " must be scheme://host[:port]")
		}
	}
	if m.MaxBody <= 0 {
		m.MaxBody = mcp.DefaultMaxBody
	}
	if m.Sessions == nil {
		return errors.New("mcp: no session store")
	}
	if m.Args != nil {
		if err := (&policy.Constraints{Args: m.Args}).Validate(); err != nil {
			return err
		}
		for tool := range m.Args {
			if !slices.ContainsFunc(m.Rules.Tools, func(r mcp.Rule) bool { return r.Pattern == tool }) {
				return errors.New("args: tool " + quoteValue(tool) + " has argument rules but no tool rule of that name")
			}
		}
	}
	return nil
}

// originAllowed reports whether a request's Origin may reach the MCP
// server: the resource's own origin, a configured one, or, for a resource
// on loopback, any loopback origin (a local client's page on another port).
func (m *MCP) originAllowed(o string) bool {
	if strings.EqualFold(o, m.origin) || slices.Contains(m.Origins, o) {
		return true
	}
	if !m.loopback {
		return false
	}
	u, err := url.Parse(o)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && isLoopbackHost(u.Hostname())
}

func isLoopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(h)
	return err == nil && ip.IsLoopback()
}

func quoteValue(s string) string { return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"` }

// MCPExchange is one request's MCP state, from inspection to the end of
// the response.
type MCPExchange struct {
	route    *Route
	Message  *mcp.Message // the decoded POST body; nil for GET and DELETE
	token    *token.Token
	chainKey string // ChainKeyOf(token), computed when a session needs it
	scopes   []string
	filter   bool   // the response may carry a tools/list result
	args     []byte // params.arguments of a call, as in the body forwarded
	request  mcp.ID // the tools/list request id (zero for GET streams)
	ctx      context.Context

	reqHeader http.Header
}

// key is the exchange's ChainKeyOf, computed once and only for requests
// that touch a session (a stateless request never pays for it).
func (ex *MCPExchange) key() string {
	if ex.chainKey == "" {
		ex.chainKey = ChainKeyOf(ex.token)
	}
	return ex.chainKey
}

// ChainKeyOf is the identity a session is bound to: issuer, user and the
// delegation chain (or the client for tokens without one). The chain's
// root is named by its actor (agents[0]: the root agent, or the OAuth
// client the user consented to), not by its grant id: each consent is a
// new grant, and an MCP client that steps up (403 insufficient_scope, a
// new authorization with more scope) retries on the same session with a
// token of the new grant. Every later link is its grant id, as before, so
// a child agent's key still differs from its parent's.
func ChainKeyOf(t *token.Token) string {
	if k := t.Kavach; k != nil && len(k.Agents) > 0 && len(k.Chain) == len(k.Agents) {
		return mcp.ChainKey(append([]string{t.Issuer, t.Subject, k.Agents[0]}, k.Chain[1:]...)...)
	}
	if t.Kavach != nil {
		return mcp.ChainKey(append([]string{t.Issuer, t.Subject}, t.Kavach.Chain...)...)
	}
	return mcp.ChainKey(t.Issuer, t.Subject, t.ClientID)
}

// inspectMCP is step 7's MCP part (DESIGN.md §4.1), on a request whose
// token the earlier steps allowed (d), in this order: the method (POST,
// GET and DELETE without a body; others 405); for a POST, no request
// Content-Encoding (415), the body bounded (413) and decoded strictly
// (400), Mcp-Method/Mcp-Name agreeing with it (400, -32020), a known
// method (404, -32601); the session belonging to this chain (unknown:
// 404; another chain's: 403; store unreachable: 503); the tool, resource
// or prompt rules (403, insufficient_scope naming what would help). The
// body forwarded is exactly the bytes checked. On a denial the exchange
// is nil, or carries only the Message (the audit record names the
// target).
func inspectMCP(rt *Route, r *http.Request, d Decision) (*MCPExchange, Decision) {
	m := rt.MCP
	t := d.Token
	ex := &MCPExchange{route: rt, token: t, scopes: t.Scopes, reqHeader: r.Header, ctx: r.Context()}
	switch r.Method {
	case http.MethodPost:
	case http.MethodGet, http.MethodDelete:
		if hasBody(r) {
			d = d.deny(BadRequest, http.StatusBadRequest, "", "a "+r.Method+" request on an MCP route has no body", "")
			d.Why = "a " + r.Method + " request with a body on an MCP route"
			return nil, d
		}
	default:
		d = d.deny(BadMethod, http.StatusMethodNotAllowed, "", "method not allowed on an MCP route", r.Method)
		d.Allow = mcpAllow
		d.Why = r.Method + " on an MCP route"
		return nil, d
	}
	if r.Method == http.MethodPost {
		if ce := r.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
			d = d.deny(BadEncoding, http.StatusUnsupportedMediaType, "", "request Content-Encoding is not supported on MCP routes", "")
			d.Why = "request Content-Encoding " + clip(ce, maxEcho)
			return nil, d
		}
		body, err := mcp.ReadBody(r.Body, m.MaxBody)
		if err != nil {
			return nil, mcpDenial(d, err, mcp.ID{})
		}
		msg, err := mcp.Decode(body)
		if err != nil {
			return nil, mcpDenial(d, err, mcp.ID{})
		}
		ex.Message = &msg
		ex.args = msg.Arguments.Of(body)
		if err := mcp.CheckHeaders(r.Header, &msg); err != nil {
			return ex, mcpDenial(d, err, msg.ID)
		}
		if err := mcp.CheckMethod(&msg); err != nil {
			d = mcpDenial(d, err, msg.ID)
			d.Outcome = UnknownMethod
			return ex, d
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		r.Header.Set("Content-Length", strconv.Itoa(len(body)))
		r.Header.Del("Transfer-Encoding")
		r.TransferEncoding = nil
	}
	var id mcp.ID
	if ex.Message != nil {
		id = ex.Message.ID
	}
	sid, err := mcp.SessionID(r.Header)
	if err != nil {
		return ex, mcpDenial(d, err, id)
	}
	if sid != "" {
		state, err := m.Sessions.Check(r.Context(), sid, ex.key())
		switch {
		case err != nil:
			d = d.deny(Unavailable, http.StatusServiceUnavailable, "", "session state unavailable", err.Error())
			d.Why = "the session store is unreachable"
			d.RetryAfter = transientRetryAfter
			d.RPC = RPCError{ID: id, Code: rpcInternal}
			return ex, d
		case state == mcp.SessionOther:
			d = d.deny(SessionMismatch, http.StatusForbidden, "", "session belongs to another delegation chain", "")
			d.Why = "the session belongs to another delegation chain"
			d.RPC = RPCError{ID: id, Code: rpcForbidden}
			return ex, d
		case state != mcp.SessionOwn:
			// MCP transport, Session Management: 404 makes the client
			// start a new session.
			d = d.deny(SessionUnknown, http.StatusNotFound, "", "session not found", "")
			d.Why = "no session with this id is bound here (expired, or opened through another gateway)"
			d.RPC = RPCError{ID: id, Code: rpcSessionNotFound}
			return ex, d
		}
	}
	if r.Method == http.MethodGet {
		// A GET stream may replay earlier responses (Last-Event-ID), a
		// tools/list result among them: filter it too.
		ex.filter = true
		mcp.PrepareToolsListRequest(r.Header)
		return ex, d
	}
	msg := ex.Message
	if msg == nil {
		return ex, d // DELETE
	}
	if ok, missing := mcp.Decide(&m.Rules, t.Scopes, msg); !ok {
		d = d.deny(ToolDenied, http.StatusForbidden, "", "the token does not allow this "+targetKind(msg), "")
		d.RPC = RPCError{ID: msg.ID, Code: rpcForbidden}
		d.Why = whyDenied(msg)
		if missing != "" {
			// RFC 6750 §3.1 insufficient_scope with every scope the call
			// needs, so a client can step up (MCP authorization spec).
			d.Error = "insufficient_scope"
			d.Scope = strings.Join(unique(append(slices.Clone(rt.Scopes), mcp.RequiredScopes(&m.Rules, msg)...)), " ")
			d.Reason = "insufficient scope"
			d.Outcome = InsufficientScope
			d.Why = missingOf(d.Scope, t.Scopes)
		}
		return ex, d
	}
	if msg.Method == mcp.MethodToolsCall {
		if d2, ok := checkArguments(rt, t, msg, ex.args, d); !ok {
			return ex, d2
		}
	}
	if msg.IsToolsList() {
		ex.filter, ex.request = true, msg.ID
		mcp.PrepareToolsListRequest(r.Header)
	}
	return ex, d
}

// checkArguments is the argument step of a tools/call (after its scope
// rules): the route's rules for the tool, then the token's kvc.cnst.args,
// then every network target a rule of either names against the token's
// hosts constraint. The arguments are read once, for every name a rule
// of either has. A denial is 403 with the JSON-RPC error naming the
// argument and the rule; a case variant of a constrained name is 400.
func checkArguments(rt *Route, t *token.Token, msg *mcp.Message, args []byte, d Decision) (Decision, bool) {
	routeArgs := rt.MCP.Args.For(msg.Name)
	c := t.Constraints()
	var tokenArgs policy.ToolArgs
	if c != nil {
		tokenArgs = c.Args.For(msg.Name)
	}
	if routeArgs == nil && tokenArgs == nil {
		return d, true
	}
	names := make([]string, 0, len(routeArgs)+len(tokenArgs))
	for n := range routeArgs {
		names = append(names, n)
	}
	for n := range tokenArgs {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	values := make([]policy.ArgValue, len(names))
	if err := mcp.ArgumentValues(args, names, values); err != nil {
		return mcpDenial(d, err, msg.ID), false
	}
	value := func(n string) policy.ArgValue { return values[slices.Index(names, n)] }
	deny := func(fe *policy.FieldError, whose string) (Decision, bool) {
		d = d.deny(ArgumentDenied, http.StatusForbidden, "", fe.Reason, "")
		d.RPC = RPCError{ID: msg.ID, Code: rpcForbidden}
		d.Why = "tool " + clip(msg.Name, maxEcho) + ": " + fe.Reason + " (" + whose + ")"
		return d, false
	}
	for _, n := range names {
		r, ok := routeArgs[n]
		if !ok {
			continue
		}
		host, ip, fe := r.Check(n, value(n))
		if fe != nil {
			return deny(fe, "route rule")
		}
		if host != "" && !c.AllowsTarget(host, ip) {
			return deny(&policy.FieldError{Field: "args", Reason: "argument " + strconv.Quote(n) + " names a host outside the token's hosts"}, "token hosts")
		}
	}
	if tokenArgs != nil {
		if fe := c.PermitsArgs(msg.Name, value); fe != nil {
			return deny(fe, "token args")
		}
	}
	return d, true
}

// whyDenied says, for the trail, why mcp.Decide refused m without a
// missing scope: no rule names its target, or a method the client may not
// send this way.
func whyDenied(m *mcp.Message) string {
	switch {
	case m.Kind == mcp.KindNotification:
		return "a client may not send the notification " + m.Method
	case m.Target != mcp.TargetNone && m.Name != "":
		return "no " + m.Target.String() + " rule matches " + m.Name
	}
	return "no rule allows " + m.Method
}

// clip cuts s to at most n bytes for the trail.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func targetKind(m *mcp.Message) string {
	if k := m.Target.String(); k != "" {
		return k
	}
	return "method"
}

func unique(in []string) []string {
	var out []string
	for _, s := range in {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// mcpDenial maps an mcp error to its answer (400, 413 or 502) and
// JSON-RPC error.
func mcpDenial(d Decision, err error, id mcp.ID) Decision {
	status := mcp.HTTPStatus(err)
	reason := "bad MCP request"
	var me *mcp.Error
	if errors.As(err, &me) && me.Public != "" {
		reason = me.Public
	}
	out := BadRequest
	switch status {
	case http.StatusRequestEntityTooLarge:
		out = TooLarge
	case http.StatusNotFound:
		out = UnknownMethod
	}
	d = d.deny(out, status, "", reason, err.Error())
	d.RPC = RPCError{ID: id, Code: rpcCodeOf(err)}
	// The trail says what was wrong with the message: mcp's details are
	// about its shape (member names, a method, quoted and bounded), never
	// its arguments' values.
	switch {
	case me == nil:
		d.Why = "the request body could not be read"
	case me.Detail != "":
		d.Why = me.Public + " (" + me.Detail + ")"
	default:
		d.Why = me.Public
	}
	return d
}

// Wrap returns the ResponseWriter the upstream's answer goes through:
// it binds a new session to the chain (initialize) or forgets a closed one
// (DELETE), and filters tools/list results by the same rules that decide
// tools/call. Call Finish after the upstream returned.
func (ex *MCPExchange) wrap(w http.ResponseWriter, r *http.Request) *MCPWriter {
	return &MCPWriter{ResponseWriter: w, ex: ex, method: r.Method}
}

// MCPWriter is the response side of an MCPExchange.
type MCPWriter struct {
	http.ResponseWriter
	ex          *MCPExchange
	method      string
	wroteHeader bool
	code        int
	filter      *mcp.ToolsFilter
	held        bool // a JSON tools/list answer: the header waits for the filtered body
	out         *lazyHeader
	err         error
}

// WriteHeader applies the session rules and sets up filtering before the
// header goes out.
func (w *MCPWriter) WriteHeader(code int) {
	if w.wroteHeader {
		return
	}
	w.wroteHeader, w.code = true, code
	h := w.Header()
	m := w.ex.route.MCP
	if sid := h.Get(mcp.HeaderSessionID); sid != "" && code/100 == 2 && w.ex.Message != nil && w.ex.Message.Method == mcp.MethodInitialize {
		if err := m.Sessions.Bind(w.ex.ctx, sid, w.ex.key()); err != nil {
			w.fail(errors.New("upstream session id refused"))
			return
		}
	}
	if w.method == http.MethodDelete && (code/100 == 2 || code == http.StatusNotFound) {
		if sid, _ := mcp.SessionID(w.ex.requestHeaderSession()); sid != "" {
			m.Sessions.Forget(w.ex.ctx, sid)
		}
	}
	if w.ex.filter {
		format, err := mcp.PrepareToolsListResponse(code, h)
		if err != nil {
			w.fail(err)
			return
		}
		if format != mcp.FormatNone {
			w.out = &lazyHeader{w: w.ResponseWriter, code: code}
			w.filter = mcp.NewToolsFilter(w.out, mcp.FilterConfig{Format: format, Request: w.ex.request, Rules: &m.Rules, Scopes: w.ex.scopes})
			w.held = format == mcp.FormatJSON
			if !w.held {
				w.out.send()
			}
			return
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (ex *MCPExchange) requestHeaderSession() http.Header { return ex.reqHeader }

func (w *MCPWriter) fail(err error) {
	w.err = err
	w.filter = nil
	h := w.ResponseWriter.Header()
	for k := range h {
		delete(h, k)
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	w.ResponseWriter.WriteHeader(http.StatusBadGateway)
	_, _ = io.WriteString(w.ResponseWriter, "bad gateway: unusable MCP response from the upstream\n")
}

// Write sends body bytes through the filter when there is one.
func (w *MCPWriter) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return 0, w.err
	}
	if w.filter != nil {
		n, err := w.filter.Write(p)
		if err != nil {
			w.abort(err)
		}
		return n, err
	}
	return w.ResponseWriter.Write(p)
}

// abort ends a response the filter cannot pass: a 502 when nothing went
// out yet, else the stream is cut.
func (w *MCPWriter) abort(err error) {
	w.filter = nil
	if w.out != nil && !w.out.sent {
		w.fail(err)
		return
	}
	w.err = err
	panic(http.ErrAbortHandler)
}

// Finish flushes what the filter holds (a JSON tools/list answer is
// written here). It returns the error that made the answer a 502.
func (w *MCPWriter) Finish() error {
	if w.filter != nil {
		if err := w.filter.Close(); err != nil {
			w.abort(err)
		} else if w.out != nil {
			w.out.send()
		}
	}
	return w.err
}

// Unwrap lets http.ResponseController reach the connection (flushes of SSE
// events, deadlines).
func (w *MCPWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush passes a flush on (the filter flushes after every event itself).
func (w *MCPWriter) Flush() {
	if w.filter == nil {
		_ = http.NewResponseController(w.ResponseWriter).Flush()
	}
}

// lazyHeader sends the held status line with the first byte (or at send).
type lazyHeader struct {
	w    http.ResponseWriter
	code int
	sent bool
}

func (l *lazyHeader) send() {
	if !l.sent {
		l.sent = true
		l.w.WriteHeader(l.code)
	}
}

func (l *lazyHeader) Write(p []byte) (int, error) {
	l.send()
	return l.w.Write(p)
}

func (l *lazyHeader) FlushError() error {
	l.send()
	return http.NewResponseController(l.w).Flush()
}
