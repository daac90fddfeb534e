package mcp

import (
	"encoding/json"
	"io"
	"strconv"
	"sync"
	"unicode/utf8"
)

// Kind is what a JSON-RPC message is, from the members it has.
type Kind uint8

const (
	// KindRequest has "id" and "method".
	KindRequest Kind = iota + 1
	// KindNotification has "method" and no "id".
	KindNotification
	// KindResponse has "id", exactly one of "result" and "error", and no
	// "method": a client's answer to a server request (sampling,
	// elicitation, roots/list, ping).
	KindResponse
)

func (k Kind) String() string {
	switch k {
	case KindRequest:
		return "request"
	case KindNotification:
		return "notification"
	case KindResponse:
		return "response"
	}
	return "invalid"
}

// ID is a JSON-RPC request id. MCP allows a string or an integer, never
// null (MCP 2025-06-18 "Requests"); Kavach also bounds both: a string at
// most MaxIDLen bytes, an integer within int64. IDs compare with ==: a
// string id never equals an integer id ("1" ≠ 1), as JSON-RPC 2.0 §4
// has responses echo the id unchanged. The zero ID is no id.
type ID struct {
	str   string
	num   int64
	isStr bool
	set   bool
}

// StringID and IntID make IDs (tests, callers building expectations).
func StringID(s string) ID { return ID{str: s, isStr: true, set: true} }

// IntID makes an integer ID.
func IntID(n int64) ID { return ID{num: n, set: true} }

// IsZero reports whether id is no id.
func (id ID) IsZero() bool { return !id.set }

// String is the id in JSON form, for logs, audit and error bodies: an
// integer in decimal, a string as a JSON string (appendJSONString's
// escaping: valid JSON whatever the id holds, no HTML escaping); "" for
// the zero ID.
func (id ID) String() string {
	if !id.set {
		return ""
	}
	return string(id.appendJSON(nil))
}

// appendJSON appends the id in JSON form, null for the zero ID.
func (id ID) appendJSON(dst []byte) []byte {
	switch {
	case !id.set:
		return append(dst, "null"...)
	case id.isStr:
		return appendJSONString(dst, id.str)
	}
	return strconv.AppendInt(dst, id.num, 10)
}

// Message is what Decode learned from a body. It holds no reference to the
// body: the caller forwards the body it decoded, byte for byte.
type Message struct {
	Kind Kind
	// Method is the JSON-RPC method of a request or notification, exactly
	// as sent once unescaped (case preserved: "Tools/Call" is unknown, not
	// tools/call). Empty for a response.
	Method string
	// ID is the id of a request or response; zero for a notification.
	ID ID
	// Name is the target of a request, the name or URI its rules match:
	// params.name of tools/call and prompts/get; params.uri of
	// resources/read, resources/subscribe and resources/unsubscribe;
	// params.ref.name (a prompt) or params.ref.uri (a resource URI
	// template) of completion/complete. Empty for every other message.
	// Except for completion/complete, it is the value the SEP-2243 Mcp-Name
	// header mirrors (see CheckHeaders).
	Name string
	// Target says what Name names, and so which rules it meets (Decide):
	// TargetTool for tools/call; TargetResource for resources/read,
	// resources/subscribe, resources/unsubscribe and a completion/complete
	// of a "ref/resource"; TargetPrompt for prompts/get and a
	// completion/complete of a "ref/prompt"; TargetNone for every other
	// message. Decode sets it. Decide reads it only for completion/complete,
	// where the method alone does not say; for the other methods the method
	// decides.
	Target Target
	// Arguments is where params.arguments of a tools/call or prompts/get
	// request lies in the body Decode read: body[Arguments.Start:
	// Arguments.End] are its exact bytes as sent (the value, without the
	// whitespace around it), the bytes the audit digest covers. Zero when
	// the request has none.
	Arguments Span
}

// Span is a range of bytes of a body: [Start, End).
type Span struct{ Start, End int }

// IsZero reports whether s is no span.
func (s Span) IsZero() bool { return s.End == 0 }

// Of returns the bytes of body s covers (nil for the zero span).
func (s Span) Of(body []byte) []byte {
	if s.IsZero() {
		return nil
	}
	return body[s.Start:s.End]
}

// Target is the kind of thing a request names (Message.Target).
type Target uint8

const (
	// TargetNone: the message names nothing; the route rule alone applies.
	TargetNone Target = iota
	// TargetTool: a tool, matched by the tool rules.
	TargetTool
	// TargetResource: a resource URI or URI template, matched by the
	// resource rules.
	TargetResource
	// TargetPrompt: a prompt, matched by the prompt rules.
	TargetPrompt
)

// String is "tool", "resource", "prompt", or "" for TargetNone: the word
// for the target in a denial ("the token does not allow this tool").
func (t Target) String() string {
	switch t {
	case TargetTool:
		return "tool"
	case TargetResource:
		return "resource"
	case TargetPrompt:
		return "prompt"
	}
	return ""
}

// IsToolsList reports whether m is a tools/list request, whose response
// the gateway filters (NewToolsFilter with FilterConfig.Request = m.ID).
func (m *Message) IsToolsList() bool {
	return m.Kind == KindRequest && m.Method == MethodToolsList
}

// Top-level members of a JSON-RPC 2.0 message; no other member is allowed.
const (
	memJSONRPC = 1 << iota
	memID
	memMethod
	memParams
	memResult
	memError
)

func topMember(key []byte) int {
	switch string(key) {
	case "jsonrpc":
		return memJSONRPC
	case "id":
		return memID
	case "method":
		return memMethod
	case "params":
		return memParams
	case "result":
		return memResult
	case "error":
		return memError
	}
	return 0
}

var walkers = sync.Pool{New: func() any { return new(walker) }}

// Decode checks that body is exactly one MCP JSON-RPC 2.0 message, under
// the strict rules of DESIGN.md §4.1, and classifies it. It never changes
// or keeps body: the bytes checked are the bytes the gateway forwards.
//
// Rules, each a refusal with HTTP 400 and the kind noted (ErrSyntax and
// ErrInvalidParams are kinds of ErrInvalid; ErrorCode gives the JSON-RPC
// code):
//
//  1. body is non-empty UTF-8 (RFC 8259 §8.1); a JSON array (a batch) is
//     ErrBatch; anything else that is not one JSON object followed only by
//     whitespace is refused (trailing data included): ErrSyntax, or
//     ErrInvalid for JSON that is not an object ("1", "null").
//  2. Strict JSON at every depth: no duplicate member names (compared
//     unescaped), no unpaired surrogate escape, nesting ≤ MaxDepth
//     (ErrSyntax).
//  3. Member names are case-sensitive (rules 3 to 5: ErrInvalid): the
//     only top-level members are "jsonrpc", "id", "method", "params",
//     "result" and "error", so "Method" or "ID" is refused rather than
//     ignored (Go's encoding/json, which many servers use, would read them
//     as "method" and "id").
//  4. "jsonrpc" is the string "2.0"; "id" a string of at most MaxIDLen
//     bytes or an integer fitting int64 (null, fractions, exponents and
//     larger integers are refused); "method" a string of at most
//     MaxMethodLen bytes; "params", "result" and "error" objects.
//  5. Kind: "method" and "id" make a request, "method" alone a
//     notification (neither may carry "result" or "error"); without
//     "method", "id" and exactly one of "result" and "error" make a
//     response. Anything else is refused.
//  6. For tools/call and prompts/get (rules 6 and 7: ErrInvalidParams,
//     carrying the request's id), params.name; for resources/read,
//     resources/subscribe and resources/unsubscribe, params.uri: a
//     non-empty string of at most MaxNameLen bytes without control
//     characters, and no case variant of that member ("Name") beside it.
//     For tools/call and prompts/get, no case variant of "arguments"
//     ("Arguments"), beside it or alone: servers whose decoders match names
//     case-insensitively would read it as the arguments, which the audit
//     digest would then not cover.
//  7. For completion/complete, params.ref is an object whose "type" is
//     exactly "ref/prompt", with a "name" under rule 6 and no "uri", or
//     exactly "ref/resource", with a "uri" under rule 6 and no "name"
//     (MCP 2025-06-18 "Completion": PromptReference and
//     ResourceTemplateReference); no case variant of "ref", "type", "name"
//     or "uri" beside them. Any other or missing ref is refused: a
//     completion lists values of what it names, so it must name something
//     the rules can match.
//
// An unknown method is not an error here: the message is well-formed, so
// CheckMethod refuses it (HTTP 404) and Decide denies it (HTTP 403).
func Decode(body []byte) (Message, error) {
	var m Message
	if len(body) == 0 {
		return m, invalid(pubSyntax, "empty body")
	}
	if !utf8.Valid(body) {
		return m, invalid(pubSyntax, "body is not UTF-8")
	}
	w := walkers.Get().(*walker)
	defer walkers.Put(w)
	w.reset(body)
	err := w.decode(&m)
	w.reset(nil)
	if err != nil {
		return Message{}, err
	}
	return m, nil
}

func (w *walker) decode(m *Message) error {
	switch w.r.Peek() {
	case '{':
	case '[':
		return &Error{Kind: ErrBatch, Public: "JSON-RPC batches are not supported", Detail: "body is a JSON array"}
	default:
		// JSON-RPC 2.0 §5.1: valid JSON that is not a Request object is an
		// invalid request, anything else a parse error.
		if json.Valid(w.data) {
			return invalid(pubMessage, "body is not a JSON object")
		}
		return invalid(pubSyntax, "body is not a JSON object")
	}
	var (
		seen      int
		method    []byte // the "method" token
		class     methodClass
		target    paramTarget
		jsonrpcOK bool
	)
	for key, err := range w.members(1) {
		if err != nil {
			return err
		}
		bit := topMember(key)
		if bit == 0 {
			return invalid(pubMessage, "unknown member "+excerpt(string(key)))
		}
		seen |= bit // a repeat was already refused by next
		switch bit {
		case memJSONRPC:
			tok, err := w.stringToken()
			if err != nil {
				return invalid(pubMessage, `"jsonrpc" is not a string`)
			}
			jsonrpcOK = string(tok) == `"2.0"` || (len(tok) <= 64 && mustUnquote(tok) == "2.0")
		case memID:
			if m.ID, err = w.id(); err != nil {
				return err
			}
		case memMethod:
			if method, err = w.stringToken(); err != nil {
				return invalid(pubMessage, `"method" is not a string`)
			}
		case memParams:
			if w.r.Peek() != '{' {
				return invalid(pubMessage, `"params" is not an object`)
			}
			if err := w.params(&target); err != nil {
				return err
			}
		case memResult, memError:
			if w.r.Peek() != '{' {
				return invalid(pubMessage, `"result" or "error" is not an object`)
			}
			if err := w.value(1); err != nil {
				return err
			}
		}
	}
	if !w.r.End() {
		return invalid(pubSyntax, "data after the JSON object")
	}
	if !jsonrpcOK {
		return invalid(pubMessage, `"jsonrpc" is not "2.0"`)
	}

	switch {
	case seen&memMethod != 0:
		if seen&(memResult|memError) != 0 {
			return invalid(pubMessage, `"method" with "result" or "error"`)
		}
		name, err := unquoteBytes(method)
		if err != nil {
			return err
		}
		if len(name) > MaxMethodLen {
			return invalid(pubMessage, "method longer than "+strconv.Itoa(MaxMethodLen)+" bytes")
		}
		class, m.Method = classify(name)
		m.Kind = KindNotification
		if seen&memID != 0 {
			m.Kind = KindRequest
		}
	case seen&memID != 0:
		if seen&(memResult|memError) == 0 || seen&(memResult|memError) == memResult|memError {
			return invalid(pubMessage, `a response needs exactly one of "result" and "error"`)
		}
		if seen&memParams != 0 {
			return invalid(pubMessage, `"params" in a response`)
		}
		m.Kind = KindResponse
		return nil
	default:
		return invalid(pubMessage, `neither "method" nor "id"`)
	}

	// A target only means something for the request it belongs to: a
	// notification named tools/call is unknown to Decide, not a tool call.
	if m.Kind != KindRequest {
		return nil
	}
	var (
		ref Target
		err error
	)
	switch class {
	case toolRequest, promptRequest:
		m.Name, err = target.name.text("params.name")
		if err == nil && target.args.variant {
			err = invalid(pubParams, "a case variant of params.arguments")
		}
		if err == nil && target.args.present {
			m.Arguments = target.argsAt
		}
	case resourceRequest:
		m.Name, err = target.uri.text("params.uri")
	case completionRequest:
		m.Name, ref, err = target.ref.target()
	}
	m.Target = class.target(ref)
	// The request is valid but for its params: -32602 names its id.
	if e, ok := err.(*Error); ok && e.Kind == ErrInvalidParams {
		e.ID = m.ID
	}
	return err
}

// mustUnquote unquotes a short, checked token ("" on failure).
func mustUnquote(tok []byte) string {
	s, _ := unquote(tok)
	return s
}

// id reads a JSON-RPC id (Decode rule 4).
func (w *walker) id() (ID, error) {
	switch c := w.r.Peek(); {
	case c == '"':
		tok, err := w.stringToken()
		if err != nil {
			return ID{}, err
		}
		if len(tok) > 6*MaxIDLen+2 { // cheap bound before unescaping
			return ID{}, invalid(pubMessage, "id longer than "+strconv.Itoa(MaxIDLen)+" bytes")
		}
		s, err := unquote(tok)
		if err != nil {
			return ID{}, err
		}
		if len(s) > MaxIDLen {
			return ID{}, invalid(pubMessage, "id longer than "+strconv.Itoa(MaxIDLen)+" bytes")
		}
		return StringID(s), nil
	case c == '-' || ('0' <= c && c <= '9'):
		n, err := w.r.Int()
		if err != nil {
			return ID{}, invalid(pubMessage, "id is not an integer within int64")
		}
		return IntID(n), nil
	}
	return ID{}, invalid(pubMessage, "id is not a string or an integer")
}

// paramTarget collects, while params is read, the members a method may
// name its target with, before the method is known (members come in any
// order).
type paramTarget struct {
	name, uri member
	ref       refTarget
	args      member // params.arguments; tok stays nil
	argsAt    Span   // where its value lies
}

// refTarget is params.ref (completion/complete).
type refTarget struct {
	member         // ref itself; tok stays nil, object tells it is one
	object         bool
	typ, name, uri member
}

type member struct {
	tok     []byte // the string token, if the member is a string
	present bool
	variant bool // a case variant of the name was seen
}

// params reads the params object, noting "name", "uri" and "ref".
func (w *walker) params(t *paramTarget) error {
	for key, err := range w.members(2) {
		if err != nil {
			return err
		}
		if string(key) == "ref" {
			t.ref.present = true
			if w.r.Peek() == '{' {
				t.ref.object = true
				if err := w.ref(&t.ref); err != nil {
					return err
				}
				continue
			}
		} else if foldEqual(key, "ref") {
			t.ref.variant = true
		}
		if string(key) == "arguments" {
			// Peek skips the whitespace before the value: the span is the
			// value's bytes exactly.
			w.r.Peek()
			t.args.present, t.argsAt.Start = true, w.r.Offset()
			if err := w.value(2); err != nil {
				return err
			}
			t.argsAt.End = w.r.Offset()
			continue
		} else if foldEqual(key, "arguments") {
			t.args.variant = true
		}
		if err := w.stringMember(key, 2, "name", &t.name, "uri", &t.uri); err != nil {
			return err
		}
	}
	return nil
}

// ref reads the params.ref object, noting "type", "name" and "uri".
func (w *walker) ref(r *refTarget) error {
	for key, err := range w.members(3) {
		if err != nil {
			return err
		}
		var mem *member
		switch {
		case string(key) == "type":
			mem = &r.typ
		case foldEqual(key, "type"):
			r.typ.variant = true
		}
		if mem != nil {
			mem.present = true
			if w.r.Peek() == '"' {
				if mem.tok, err = w.stringToken(); err != nil {
					return err
				}
				continue
			}
			if err := w.value(3); err != nil {
				return err
			}
			continue
		}
		if err := w.stringMember(key, 3, "name", &r.name, "uri", &r.uri); err != nil {
			return err
		}
	}
	return nil
}

// stringMember reads the value of member key of an object at depth,
// noting it in a (named na) or b (named nb) when key is one of those
// names, and a case variant of them.
func (w *walker) stringMember(key []byte, depth int, na string, a *member, nb string, b *member) error {
	var mem *member
	switch {
	case string(key) == na:
		mem = a
	case string(key) == nb:
		mem = b
	case foldEqual(key, na):
		a.variant = true
	case foldEqual(key, nb):
		b.variant = true
	}
	if mem != nil {
		mem.present = true
		if w.r.Peek() == '"' {
			var err error
			mem.tok, err = w.stringToken()
			return err
		}
	}
	return w.value(depth)
}

// text returns the target in mem, named field in errors (Decode rule 6).
func (mem *member) text(field string) (string, error) {
	switch {
	case mem.variant:
		return "", invalid(pubParams, "a case variant of "+field)
	case !mem.present:
		return "", invalid(pubParams, field+" is missing")
	case mem.tok == nil:
		return "", invalid(pubParams, field+" is not a string")
	}
	s, err := unquote(mem.tok)
	if err != nil {
		return "", err
	}
	if reason := checkName(s); reason != "" {
		return "", invalid(pubParams, field+" "+reason)
	}
	return s, nil
}

// target returns the target of a completion and its kind (Decode rule 7).
func (r *refTarget) target() (string, Target, error) {
	switch {
	case r.variant:
		return "", TargetNone, invalid(pubParams, "a case variant of params.ref")
	case !r.present:
		return "", TargetNone, invalid(pubParams, "params.ref is missing")
	case !r.object:
		return "", TargetNone, invalid(pubParams, "params.ref is not an object")
	case r.typ.variant:
		return "", TargetNone, invalid(pubParams, "a case variant of params.ref.type")
	case r.typ.tok == nil:
		return "", TargetNone, invalid(pubParams, "params.ref.type is missing or not a string")
	}
	switch typ := r.typ.tok; {
	case string(typ) == `"ref/prompt"` || len(typ) <= 64 && mustUnquote(typ) == "ref/prompt":
		if r.uri.present || r.uri.variant {
			return "", TargetNone, invalid(pubParams, "params.ref of type ref/prompt with a uri")
		}
		name, err := r.name.text("params.ref.name")
		return name, TargetPrompt, err
	case string(typ) == `"ref/resource"` || len(typ) <= 64 && mustUnquote(typ) == "ref/resource":
		if r.name.present || r.name.variant {
			return "", TargetNone, invalid(pubParams, "params.ref of type ref/resource with a name")
		}
		uri, err := r.uri.text("params.ref.uri")
		return uri, TargetResource, err
	}
	return "", TargetNone, invalid(pubParams, "params.ref.type is neither ref/prompt nor ref/resource")
}

// checkName is the rule for every target name or URI, in Decode and in
// Decide alike: non-empty, at most MaxNameLen bytes, no C0 or C1 control
// character and no DEL (a NUL or a line break reads differently to
// different servers and logs). It returns why s fails, or "".
func checkName(s string) string {
	if s == "" {
		return "is empty"
	}
	if len(s) > MaxNameLen {
		return "is longer than " + strconv.Itoa(MaxNameLen) + " bytes"
	}
	for _, r := range s {
		if r < 0x20 || (r >= 0x7f && r < 0xa0) {
			return "contains a control character"
		}
	}
	return ""
}

// ReadBody reads a request body for inspection: at most limit bytes
// (DefaultMaxBody when limit ≤ 0). A longer body is ErrTooLarge (HTTP 413);
// the caller forwards the returned bytes, never the original reader.
func ReadBody(r io.Reader, limit int64) ([]byte, error) {
	if limit <= 0 {
		limit = DefaultMaxBody
	}
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, &Error{Kind: ErrTooLarge, Public: "request body too large", Detail: "over " + strconv.FormatInt(limit, 10) + " bytes"}
	}
	return b, nil
}
