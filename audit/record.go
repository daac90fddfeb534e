package audit

import (
	"errors"
	"time"
)

// Kind is what a record says happened.
type Kind string

// Record kinds (DESIGN.md §6). Decision and Outcome come from the gateway,
// linked by request_id so a long SSE stream never holds the log; Summary and
// Checkpoint are written by the Writer itself; the rest are issuer events.
const (
	KindDecision    Kind = "decision"   // at forward or deny time
	KindOutcome     Kind = "outcome"    // after the response: status, bytes, duration
	KindSummary     Kind = "summary"    // counted junk of one interval: reason, count
	KindCheckpoint  Kind = "checkpoint" // signed chain head
	KindIssued      Kind = "issued"
	KindDelegated   Kind = "delegated"
	KindRefreshed   Kind = "refreshed"
	KindRevoked     Kind = "revoked"
	KindLoginFailed Kind = "login_failed"
)

// callerKind reports whether a caller may Write records of kind k: every
// kind but the two the Writer produces itself.
func callerKind(k Kind) bool {
	switch k {
	case KindDecision, KindOutcome, KindIssued, KindDelegated, KindRefreshed, KindRevoked, KindLoginFailed:
		return true
	}
	return false
}

func knownKind(k Kind) bool { return callerKind(k) || k == KindSummary || k == KindCheckpoint }

// Decision is the gateway's verdict on a request.
type Decision string

// Decisions.
const (
	Allow Decision = "allow"
	Deny  Decision = "deny"
)

// Record is one line of the audit trail (DESIGN.md §6).
//
// # Encoding
//
// A record is encoded once, as one line of JSON, with its members in exactly
// this order, each omitted when empty (zero, "", false, or an empty list; enforced is written only as false):
//
//	seq stream time prev kind decision enforced reason request_id sub actor agents
//	chain client_id jti method host path mcp_method tool args_sha256 args
//	status bytes duration_ms count ids sig hash
//
// No whitespace; no HTML escaping. Strings escape only '"', '\\' and control
// characters (\n, \r, \t, else \u00xx with lowercase hex); invalid UTF-8 is
// replaced by U+FFFD; strings longer than MaxStringBytes are truncated (see
// limits.go). Integers are plain decimal. time is RFC 3339 in UTC with
// exactly six fractional digits ("2026-03-01T12:00:00.000000Z").
// duration_ms is milliseconds with exactly three decimals (microsecond
// resolution, "12.345"). prev, hash and args_sha256 are 64 lowercase hex
// digits; sig is unpadded base64url (RFC 4648 §5). Since empty values are
// omitted, a present member is never empty or zero; the decoder refuses any
// other form, so every accepted line is the one encoding of its record.
//
// # Changing the format
//
// A new member is optional (omitted when empty) and takes a fixed place in
// the order above, here and in DESIGN.md §6: every line written before it
// keeps its bytes and so its hash, and the verifier, which hashes the bytes
// it reads, needs nothing else. The decoder refuses members it does not
// know, so a trail with a new member needs a reader at least as new as its
// writer: upgrade where trails are verified before the gateways. Never
// reuse a name, change a member's encoding or move it.
//
// # Hash chain
//
// Let body be the line up to but without its closing '}'. Then
//
//	hash = SHA-256(prev_raw || body)
//
// where prev_raw is the hash of the record before it in the trail, as 32 raw
// bytes (32 zero bytes for the very first record of a trail), and the line
// written is body + `,"hash":"<hex>"}` + "\n". The verifier recomputes the
// hash over the bytes it reads, never over a re-encoding.
//
// seq counts from 1 within a stream (one stream per Writer, see StreamID).
// prev, when present, repeats the hash of the record before; the writer
// writes it on the first record of a stream (linking it to the previous
// stream's last record), on the first record of a file after rotation (so a
// file verifies on its own), and on every checkpoint (the head it signs).
//
// # Limits
//
// MaxLineBytes, MaxStringBytes, MaxListLen and MaxStreamBytes (limits.go).
type Record struct {
	// Seq, Stream, Prev, Sig and Hash are set by the Writer; a record given
	// to Write must leave them empty. They are filled in by ParseLine.
	Seq    uint64
	Stream string
	// Time is when it happened; Write uses the current time when it is
	// zero. Stored in UTC at microsecond resolution.
	Time time.Time
	Prev string // hex SHA-256 of the record before (see above)
	Kind Kind

	Decision  Decision // decision records (and summaries: deny)
	Reason    string   // public reason of a denial; summary: what was counted
	RequestID string   // links a decision to its outcome

	// Unenforced marks a denial that was decided and recorded but not
	// enforced: the route is report-only, and the request was forwarded
	// (its outcome record follows). Encoded as `"enforced":false` right
	// after decision, only on decision records that deny; an enforced
	// decision omits the member.
	Unenforced bool

	Sub      string   // the user the chain acts for (usr_…)
	Actor    string   // the current actor: last of Agents
	Agents   []string // kvc.agents, root first
	Chain    []string // kvc.chain, the grants, root first
	ClientID string
	JTI      string // token id; never the token

	Method    string // HTTP method
	Host      string
	Path      string // as requested, truncated at MaxStringBytes
	MCPMethod string // JSON-RPC method of an MCP request
	Tool      string // tool, resource or prompt name

	// ArgsSHA256 is the hex SHA-256 of the exact bytes of an MCP call's
	// params.arguments as the gateway forwarded them (tools/call,
	// prompts/get): proof of which call was made, without its content.
	ArgsSHA256 string
	// Args are the call's arguments themselves, when the route records
	// them (audit_arguments): compact JSON with the members the route
	// names redacted, cut at MaxArgsBytes (then ending in "…").
	Args string

	Status   int           // outcome: HTTP status (0–999)
	Bytes    int64         // outcome: response body bytes
	Duration time.Duration // outcome: encoded as duration_ms

	Count uint64   // summary: how many were counted
	IDs   []string // revoked ids

	Sig  string // checkpoint: base64url Ed25519 signature (see Checkpoint)
	Hash string // hex SHA-256 of this record (see above)
}

// Errors of Write and WriteDurable. Compare with errors.Is.
var (
	// ErrQueueFull: the bounded queue is full. The record was not taken;
	// the gateway answers 503.
	ErrQueueFull = errors.New("audit: queue full")
	// ErrSinkFailing: the sink failed its last append and the writer is
	// retrying. New records are refused until it recovers; the gateway
	// answers 503. From WriteDurable it means the record is not known to
	// be durable (it stays queued and may still be written).
	ErrSinkFailing = errors.New("audit: sink failing")
	// ErrNotDurable, from WriteDurable only, wraps what ended the wait
	// (ErrSinkFailing, ErrClosed, the context's error): the record was
	// queued and is not known to be durable. It may still be written, so
	// a caller that does not go on (the gateway: no forwarding) writes a
	// record saying so (an outcome with status 503).
	ErrNotDurable = errors.New("audit: record queued, not known to be durable")
	// ErrClosed: the writer is closed.
	ErrClosed = errors.New("audit: writer closed")
	// ErrInvalidRecord: the record breaks a rule of the format (the error
	// wrapping it says which).
	ErrInvalidRecord = errors.New("audit: invalid record")
	// ErrRecordTooLarge: a list is longer than MaxListLen or the line
	// would exceed MaxLineBytes.
	ErrRecordTooLarge = errors.New("audit: record too large")
)
