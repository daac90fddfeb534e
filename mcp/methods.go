package mcp

import "strings"

// MCP methods a client may send (DESIGN.md §4.1). The table is closed: a
// method not listed here, including a case variant of one that is
// ("Tools/Call"), is unknown and Decide denies it. Sources: the MCP
// 2025-06-18 and 2025-11-25 schemas (ClientRequest, ClientNotification)
// and, for the stateless 2026-07-28 revision that DESIGN.md §4.1 requires
// to work through the gateway, SEP-2575's server/discover and
// subscriptions/listen.
//
// Deliberately absent: the experimental tasks/* methods of 2025-11-25 (a
// task's result would be fetched by task id alone, outside any tool rule)
// and methods only servers send (sampling/createMessage, elicitation/create,
// roots/list: a client answers those with a response, which passes on the
// route rule).
const (
	MethodInitialize             = "initialize"
	MethodPing                   = "ping"
	MethodToolsList              = "tools/list"
	MethodToolsCall              = "tools/call"
	MethodResourcesList          = "resources/list"
	MethodResourcesTemplatesList = "resources/templates/list"
	MethodResourcesRead          = "resources/read"
	MethodResourcesSubscribe     = "resources/subscribe"
	MethodResourcesUnsubscribe   = "resources/unsubscribe"
	MethodPromptsList            = "prompts/list"
	MethodPromptsGet             = "prompts/get"
	MethodCompletionComplete     = "completion/complete"
	MethodLoggingSetLevel        = "logging/setLevel"
	MethodServerDiscover         = "server/discover"      // 2026-07-28 (SEP-2575)
	MethodSubscriptionsListen    = "subscriptions/listen" // 2026-07-28 (SEP-2575)

	NotificationInitialized      = "notifications/initialized"
	NotificationCancelled        = "notifications/cancelled"
	NotificationProgress         = "notifications/progress"
	NotificationRootsListChanged = "notifications/roots/list_changed"
)

// methodClass says what a known method is and which params member names
// its target (the SEP-2243 Mcp-Name value).
type methodClass uint8

const (
	unknownMethod     methodClass = iota
	plainRequest                  // allowed on the route rule alone
	toolRequest                   // tools/call: params.name, tool rules
	resourceRequest               // resources/read, resources/(un)subscribe: params.uri, resource rules
	promptRequest                 // prompts/get: params.name, prompt rules
	completionRequest             // completion/complete: params.ref, prompt or resource rules
	notification                  // a client notification: route rule
)

type methodEntry struct {
	class methodClass
	name  string
}

var methods = map[string]methodEntry{}

func init() {
	for class, names := range map[methodClass][]string{
		plainRequest: {MethodInitialize, MethodPing, MethodToolsList, MethodResourcesList,
			MethodResourcesTemplatesList, MethodPromptsList, MethodLoggingSetLevel,
			MethodServerDiscover, MethodSubscriptionsListen},
		toolRequest: {MethodToolsCall},
		// A subscription delivers the resource's updates (its content, or
		// the news that it changed): it needs what reading it needs.
		resourceRequest: {MethodResourcesRead, MethodResourcesSubscribe, MethodResourcesUnsubscribe},
		promptRequest:   {MethodPromptsGet},
		// A completion lists values of a prompt's argument or of a
		// resource template's variable: it needs what the prompt or the
		// resources of the template need.
		completionRequest: {MethodCompletionComplete},
		notification: {NotificationInitialized, NotificationCancelled, NotificationProgress,
			NotificationRootsListChanged},
	} {
		for _, n := range names {
			methods[n] = methodEntry{class, n}
		}
	}
}

// classify returns the class of method b and its canonical string: the
// constant for a known method (no allocation), else a copy of b.
func classify(b []byte) (methodClass, string) {
	if e, ok := methods[string(b)]; ok {
		return e.class, e.name
	}
	return unknownMethod, string(b)
}

// classOf is classify for a string.
func classOf(method string) methodClass {
	return methods[method].class
}

// KnownMethod reports whether method is in the table above: a request
// method when request is true, else a client notification method. Decide
// denies everything else; the gateway uses this to word the denial.
func KnownMethod(method string, request bool) bool {
	c := classOf(method)
	if request {
		return c != unknownMethod && c != notification
	}
	return c == notification
}

// target returns which rules a request of class c meets. The method
// decides, except for completion/complete, whose params.ref does (ref, as
// Decode recorded it in Message.Target).
func (c methodClass) target(ref Target) Target {
	switch c {
	case toolRequest:
		return TargetTool
	case resourceRequest:
		return TargetResource
	case promptRequest:
		return TargetPrompt
	case completionRequest:
		if ref == TargetPrompt || ref == TargetResource {
			return ref
		}
	}
	return TargetNone
}

// CheckMethod refuses a request or notification whose method is not in
// the table above for its kind, with ErrUnknownMethod (HTTP 404, JSON-RPC
// -32601 "Method not found"; MCP 2026-07-28 "Streamable HTTP", Request
// Metadata): an unknown, removed or server-only method, a case variant of
// a known one ("Tools/Call"; the Detail names the method it varies), a
// notification's method sent as a request, or the reverse. A response
// passes. The error carries m.ID (zero for a notification), and its Detail
// a quoted excerpt of the method.
//
// Decide denies the same messages (403); the gateway calls CheckMethod
// after Decode and CheckHeaders, before Decide, so a client learns that
// the method does not exist here rather than that it is forbidden, and a
// 2026-07-28 client can tell this gateway from a legacy HTTP+SSE server's
// bare 404 by the JSON-RPC body.
func CheckMethod(m *Message) error {
	if m == nil {
		return invalid(pubMessage, "no message")
	}
	var c methodClass
	switch m.Kind {
	case KindResponse:
		return nil
	case KindRequest:
		if c = classOf(m.Method); c != unknownMethod && c != notification {
			return nil
		}
	case KindNotification:
		if c = classOf(m.Method); c == notification {
			return nil
		}
	default:
		return invalid(pubMessage, "kind "+m.Kind.String())
	}
	detail := "method " + excerpt(m.Method)
	switch {
	case c == notification:
		detail += ", a notification method sent as a request"
	case c != unknownMethod:
		detail += ", a request method sent as a notification"
	default:
		for name := range methods {
			if strings.EqualFold(name, m.Method) {
				detail += ", a case variant of " + name
				break
			}
		}
	}
	return &Error{Kind: ErrUnknownMethod, Public: "method not found", Detail: detail, ID: m.ID}
}

// targetMember is the params member naming the target of a method of class
// c ("name" or "uri"), the member SEP-2243's Mcp-Name mirrors, or "" when
// the method has none (completion/complete names its target in params.ref).
func (c methodClass) targetMember() string {
	switch c {
	case toolRequest, promptRequest:
		return "name"
	case resourceRequest:
		return "uri"
	}
	return ""
}
