package gateway

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"sync/atomic"
)

// Request ids link a request's decision record to its outcome record in
// the audit trail, and name the request in the access log (the kavach
// object's request_id) and to placeholders ({kavach.request_id}). They are
// a random prefix drawn once per process and a counter: unique across
// processes and restarts with overwhelming probability, and a few
// nanoseconds each, where Caddy's {http.request.uuid} costs a request a
// crypto/rand read and a log-field update (DESIGN.md §9: the trail must
// cost the request path almost nothing).
var (
	requestIDPrefix = newRequestIDPrefix()
	requestIDSeq    atomic.Uint64
)

func newRequestIDPrefix() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("kavach: no randomness for request ids: " + err.Error())
	}
	return hex.EncodeToString(b[:]) + "-"
}

// NewRequestID returns the next request id, e.g. "9f86d081884c7d65-1a".
func NewRequestID() string {
	var buf [16 + 1 + 13]byte
	b := append(buf[:0], requestIDPrefix...)
	return string(strconv.AppendUint(b, requestIDSeq.Add(1), 36))
}
