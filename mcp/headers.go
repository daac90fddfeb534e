package mcp

import (
	"encoding/base64"
	"mime"
	"net/http"
	"strings"
)

// MCP HTTP header names.
const (
	// HeaderMethod and HeaderName are SEP-2243's standard request headers
	// (MCP 2026-07-28): the JSON-RPC method, and the target (Message.Name).
	HeaderMethod = "Mcp-Method"
	HeaderName   = "Mcp-Name"
	// HeaderSessionID is the Streamable HTTP session header (2025-06-18,
	// 2025-11-25 "Session Management").
	HeaderSessionID = "Mcp-Session-Id"
)

// SEP-2243 encodes a header value that is not plain printable ASCII as
// "=?base64?" + base64(UTF-8 value) + "?=" (standard alphabet, padded; the
// markers are case-sensitive).
const (
	sentinelPrefix = "=?base64?"
	sentinelSuffix = "?="
)

// CheckHeaders enforces DESIGN.md §4.1: when the SEP-2243 Mcp-Method or
// Mcp-Name request header is present it must agree with the decoded body
// exactly, else ErrHeaderMismatch (HTTP 400). Infrastructure behind the
// gateway may route or log by these headers, so a disagreement would let a
// request be checked as one thing and treated as another.
//
//   - Mcp-Method must equal m.Method, byte for byte (so a response, which
//     has no method, may not carry it).
//   - Mcp-Name, after decoding the base64 sentinel form if it has one, must
//     equal m.Name. Only the requests whose target is params.name or
//     params.uri may carry it: tools/call, prompts/get, resources/read
//     (SEP-2243's list), and resources/subscribe and resources/unsubscribe
//     (which name their resource in params.uri too, and which some SDKs
//     mirror). Every other message may not, completion/complete included:
//     SEP-2243 defines the header as a mirror of params.name or params.uri,
//     which a completion does not have (its target is in params.ref), so a
//     conforming client sends none, and infrastructure that routed on one
//     would be acting on a value the specification does not give it.
//   - Each header may appear once. A header whose name matches one of these
//     only with '_' read as '-' ("Mcp_Name") counts as another occurrence,
//     since some servers (CGI, WSGI) merge the two spellings.
//
// An absent header is not an error: only 2026-07-28 clients send them, and
// MCP servers that require them reject their absence themselves.
func CheckHeaders(h http.Header, m *Message) error {
	method, nMethod := headerValue(h, HeaderMethod)
	name, nName := headerValue(h, HeaderName)
	switch {
	case nMethod > 1 || nName > 1:
		return mismatch(m, "repeated Mcp-Method or Mcp-Name header")
	case nMethod == 1 && (m.Kind == KindResponse || method != m.Method):
		return mismatch(m, "Mcp-Method "+excerpt(method)+", body method "+excerpt(m.Method))
	case nName == 1:
		v, ok := decodeSentinel(name)
		if !ok {
			return mismatch(m, "Mcp-Name is not valid base64 sentinel form")
		}
		if want := mirroredName(m); want == "" || v != want {
			return mismatch(m, "Mcp-Name "+excerpt(v)+", body target "+excerpt(want))
		}
	}
	return nil
}

// mirroredName is the body value SEP-2243's Mcp-Name mirrors: m.Name for
// a request whose target is params.name or params.uri, else "".
func mirroredName(m *Message) string {
	if m.Kind != KindRequest || classOf(m.Method).targetMember() == "" {
		return ""
	}
	return m.Name
}

// mismatch is ErrHeaderMismatch for m, carrying its id (a request's; a
// response's id is not the id of anything the client asked, so it is not
// echoed).
func mismatch(m *Message, detail string) *Error {
	e := &Error{Kind: ErrHeaderMismatch, Public: "Mcp-Method or Mcp-Name header does not match the body", Detail: detail}
	if m.Kind == KindRequest {
		e.ID = m.ID
	}
	return e
}

// headerValue returns the value of header name and how many values it has
// across every spelling of the name, '_' read as '-' and case ignored.
func headerValue(h http.Header, name string) (string, int) {
	vals := h[name]
	n := len(vals)
	v := ""
	if n > 0 {
		v = vals[0]
	}
	for k, vs := range h {
		if k != name && len(k) == len(name) && sameHeaderName(k, name) {
			n += len(vs)
			if v == "" && len(vs) > 0 {
				v = vs[0]
			}
		}
	}
	return v, n
}

// sameHeaderName compares header names ignoring ASCII case, with '_' read
// as '-'.
func sameHeaderName(a, b string) bool {
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if x == '_' {
			x = '-'
		}
		if y == '_' {
			y = '-'
		}
		if lowerASCII(x) != lowerASCII(y) {
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

// decodeSentinel decodes SEP-2243's "=?base64?…?=" form; any other value
// is returned as is.
func decodeSentinel(v string) (string, bool) {
	inner, ok := strings.CutPrefix(v, sentinelPrefix)
	if !ok {
		return v, true
	}
	inner, ok = strings.CutSuffix(inner, sentinelSuffix)
	if !ok {
		return v, true
	}
	b, err := base64.StdEncoding.Strict().DecodeString(inner)
	if err != nil {
		return "", false
	}
	return string(b), true
}

// SessionID returns the request's Mcp-Session-Id, "" when it has none. It
// is ErrInvalid (HTTP 400) when the header is repeated (under any spelling,
// as for CheckHeaders) or not 1 to MaxSessionIDLen visible ASCII
// characters (0x21–0x7E, MCP "Session Management").
func SessionID(h http.Header) (string, error) {
	v, n := headerValue(h, HeaderSessionID)
	switch {
	case n == 0:
		return "", nil
	case n > 1:
		return "", invalid("invalid Mcp-Session-Id header", "repeated")
	case !validSessionID(v):
		return "", invalid("invalid Mcp-Session-Id header", "not 1 to 1024 visible ASCII characters")
	}
	return v, nil
}

func validSessionID(id string) bool {
	if id == "" || len(id) > MaxSessionIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return false
		}
	}
	return true
}

// PrepareToolsListRequest readies the upstream request of a tools/list
// call for filtering: it asks for the response without content coding
// ("Accept-Encoding: identity", RFC 9110 §12.5.3), so the filter reads
// JSON, not gzip. Deleting the header would not do: with no
// Accept-Encoding, Go's HTTP transport (Caddy's reverse_proxy) adds its own
// "gzip". A response that is encoded anyway is refused by
// PrepareToolsListResponse.
func PrepareToolsListRequest(h http.Header) {
	h.Set("Accept-Encoding", "identity")
}

// Format is how a tools/list response body is framed.
type Format uint8

const (
	// FormatNone: the response is not filtered (see PrepareToolsListResponse).
	FormatNone Format = iota
	// FormatJSON: one JSON-RPC message, Content-Type application/json.
	FormatJSON
	// FormatSSE: a Server-Sent Events stream, Content-Type text/event-stream.
	FormatSSE
)

// PrepareToolsListResponse inspects the upstream response to a tools/list
// request (or a GET stream, see FilterConfig.Request) and readies its
// header for a filtered body. The caller calls it before any header
// reaches the client, then, unless it returns FormatNone or an error,
// passes the body through a ToolsFilter of that format.
//
//   - Every response is marked private (MarkPrivate): a filtered list is
//     for one token, no shared cache may keep it.
//   - A status other than 2xx, 202 or 204 gives FormatNone: no tool list
//     to filter (MCP clients treat a non-2xx response as an error).
//   - Content-Encoding other than identity is ErrUpstream (HTTP 502): the
//     filter would have to parse what it cannot read.
//   - Content-Type application/json gives FormatJSON, text/event-stream
//     FormatSSE, anything else is ErrUpstream.
//   - Content-Length is removed: the filtered body is shorter.
func PrepareToolsListResponse(status int, h http.Header) (Format, error) {
	MarkPrivate(h)
	if status < 200 || status > 299 || status == http.StatusAccepted || status == http.StatusNoContent {
		return FormatNone, nil
	}
	if ce := h.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		return FormatNone, upstream("Content-Encoding " + excerpt(ce))
	}
	mt, _, err := mime.ParseMediaType(h.Get("Content-Type"))
	var f Format
	switch {
	case err != nil:
	case mt == "application/json":
		f = FormatJSON
	case mt == "text/event-stream":
		f = FormatSSE
	}
	if f == FormatNone {
		return FormatNone, upstream("Content-Type " + excerpt(h.Get("Content-Type")))
	}
	h.Del("Content-Length")
	return f, nil
}

// MarkPrivate marks a response as for its caller alone:
// "Cache-Control: private, no-store" (RFC 9111 §5.2.2.7, §5.2.2.5), so no
// shared cache stores one token's view and serves it to another.
func MarkPrivate(h http.Header) {
	h.Set("Cache-Control", "private, no-store")
}
