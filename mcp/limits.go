package mcp

import "time"

// Every limit of MCP inspection, in one place (DESIGN.md §4.1).
const (
	// DefaultMaxBody is how many bytes of a POST body the gateway reads for
	// inspection unless the route sets another limit; a longer body is
	// refused with 413 (ReadBody). The body is read whole because the bytes
	// checked are the bytes forwarded.
	DefaultMaxBody = 1 << 20

	// MaxDepth bounds the nesting of objects and arrays in any message
	// Decode or the tools/list filter accepts (the message itself is depth 1).
	MaxDepth = 64

	// MaxMethodLen bounds a JSON-RPC method name, in bytes once decoded. No
	// MCP method comes close; a longer one is malformed, not merely unknown.
	MaxMethodLen = 128

	// MaxIDLen bounds a string JSON-RPC id, in bytes once decoded. Integer
	// ids must fit in an int64.
	MaxIDLen = 256

	// MaxNameLen bounds a tool or prompt name or a resource URI, in bytes
	// once decoded, and a rule pattern. 8 KiB is the usual limit of one
	// HTTP header line, which the SEP-2243 Mcp-Name header must carry.
	MaxNameLen = 8 << 10

	// DefaultMaxResponse bounds what the tools/list filter buffers: the
	// whole body of an application/json response, or one event of an SSE
	// stream. Anything larger fails closed (the gateway answers 502).
	DefaultMaxResponse = 4 << 20

	// MaxSessionIDLen bounds an Mcp-Session-Id. The store keeps a SHA-256 of
	// the id, so the limit bounds hashing work, not memory.
	MaxSessionIDLen = 1024

	// DefaultMaxSessions bounds MemorySessions (entries). An evicted
	// binding makes its session SessionUnknown (404), never forwardable.
	DefaultMaxSessions = 65536

	// DefaultSessionTTL is how long a session binding lives after its last
	// use.
	DefaultSessionTTL = 24 * time.Hour

	// DefaultSessionCacheSize bounds RedisSessions' local cache (entries):
	// the sessions this node serves without a Redis round trip. A session
	// evicted from it is looked up in Redis again.
	DefaultSessionCacheSize = 8192

	// DefaultSessionLookupTimeout bounds each Redis command RedisSessions
	// makes on the request path (a local miss, Bind, Forget); past it the
	// gateway answers 503 rather than wait.
	DefaultSessionLookupTimeout = 500 * time.Millisecond

	// SessionRenewInterval: RedisSessions renews a binding's TTL in Redis
	// at most once per interval per session, off the request path, and
	// learns then whether the binding is still there (a Forget on another
	// node, a Redis that lost its data).
	SessionRenewInterval = time.Minute

	// sessionRenewTimeout bounds one batch of renewals; a failed renewal
	// is retried sessionRenewRetry later, on the session's next use.
	sessionRenewTimeout = 5 * time.Second
	sessionRenewRetry   = 10 * time.Second
)
