package mcp

import (
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"time"
)

// now is the clock; tests replace it.
var now = time.Now

// Sessions binds each MCP session (Mcp-Session-Id) to the delegation chain
// that created it (DESIGN.md §4.1), so a session id that leaks to another
// agent, or to a child of the agent that opened it, is refused by the
// gateway even though that token is valid for the route.
//
// The gateway calls Bind with the session id the upstream returns on a
// successful initialize response, and Check on every later request that
// carries an Mcp-Session-Id (POST, GET and DELETE alike). Check is:
//
//   - false when the id is bound to another chain (the gateway answers
//     403), or malformed (SessionID refuses it first);
//   - true when it is bound to this chain, which also renews the binding;
//   - true when the id is unknown: the request passes to the upstream,
//     which rejects a session it does not have (404, MCP "Session
//     Management"). Refusing unknown ids instead would break every session
//     on a gateway restart, and every session of a cluster whose requests
//     reach another node than the one that saw the initialize. The cost:
//     a binding that has expired or been evicted no longer protects its
//     session, so the TTL is renewed on use and eviction takes the least
//     recently used binding.
//
// The store is bounded: at most max bindings, each living ttl after its
// last use; when full, Bind evicts the least recently used binding. It is
// safe for concurrent use. Session ids are kept as SHA-256 hashes, so each
// binding costs the same whatever the id's length.
//
// The stateless 2026-07-28 transport has no sessions; nothing is bound.
type Sessions struct {
	mu         sync.Mutex
	max        int
	ttl        time.Duration
	m          map[[32]byte]*binding
	head, tail *binding // most recently used first
}

type binding struct {
	key        [32]byte
	chain      string
	expires    time.Time
	prev, next *binding
}

// NewSessions returns a store of at most max bindings (DefaultMaxSessions
// when max ≤ 0), each kept ttl after its last use (DefaultSessionTTL when
// ttl ≤ 0).
func NewSessions(max int, ttl time.Duration) *Sessions {
	if max <= 0 {
		max = DefaultMaxSessions
	}
	if ttl <= 0 {
		ttl = DefaultSessionTTL
	}
	return &Sessions{max: max, ttl: ttl, m: make(map[[32]byte]*binding)}
}

// ChainKey is the binding key of a delegation chain: a fixed-size digest
// of parts, each length-prefixed so that no two lists of parts share a
// key. The gateway passes what identifies the chain of a token, stable
// across the chain's refreshed tokens and different for any other chain:
// the issuer, the subject, the chain's root actor (kvc.agents[0], stable
// across the user's re-consents to one client, as an MCP step-up makes)
// and the kvc.chain grant ids after the root, in order (for a token
// without kvc, the issuer, subject and client_id). A child agent's
// chain is longer than its parent's, so their keys differ.
func ChainKey(parts ...string) string {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	for _, p := range parts {
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(p)))])
		h.Write([]byte(p))
	}
	return string(h.Sum(nil))
}

// Bind binds sessionID to chainKey, or renews the binding when it already
// is. It returns false, binding nothing, when sessionID is malformed or
// bound to another chain: the gateway then must not deliver the initialize
// response (502), since the session could not be bound to its creator.
func (s *Sessions) Bind(sessionID, chainKey string) bool {
	if !validSessionID(sessionID) {
		return false
	}
	k := sha256.Sum256([]byte(sessionID))
	t := now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if b, ok := s.m[k]; ok {
		if t.Before(b.expires) && b.chain != chainKey {
			return false
		}
		b.chain = chainKey
		b.expires = t.Add(s.ttl)
		s.toFront(b)
		return true
	}
	for len(s.m) >= s.max {
		s.remove(s.tail)
	}
	b := &binding{key: k, chain: chainKey, expires: t.Add(s.ttl)}
	s.m[k] = b
	s.toFront(b)
	return true
}

// Check reports whether a request of chainKey may use sessionID; see
// Sessions for the rules.
func (s *Sessions) Check(sessionID, chainKey string) bool {
	if !validSessionID(sessionID) {
		return false
	}
	k := sha256.Sum256([]byte(sessionID))
	t := now()
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.m[k]
	switch {
	case !ok:
		return true
	case !t.Before(b.expires):
		s.remove(b)
		return true
	case b.chain != chainKey:
		return false
	}
	b.expires = t.Add(s.ttl)
	s.toFront(b)
	return true
}

// Forget drops sessionID's binding: after the session's DELETE succeeded,
// or when the upstream answered 404 for it (the session is gone).
func (s *Sessions) Forget(sessionID string) {
	k := sha256.Sum256([]byte(sessionID))
	s.mu.Lock()
	defer s.mu.Unlock()
	if b, ok := s.m[k]; ok {
		s.remove(b)
	}
}

// Len is the number of bindings held, expired ones included until they
// are met or evicted.
func (s *Sessions) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

func (s *Sessions) toFront(b *binding) {
	if s.head == b {
		return
	}
	s.unlink(b)
	b.next = s.head
	if s.head != nil {
		s.head.prev = b
	}
	s.head = b
	if s.tail == nil {
		s.tail = b
	}
}

func (s *Sessions) unlink(b *binding) {
	if b.prev != nil {
		b.prev.next = b.next
	} else if s.head == b {
		s.head = b.next
	}
	if b.next != nil {
		b.next.prev = b.prev
	} else if s.tail == b {
		s.tail = b.prev
	}
	b.prev, b.next = nil, nil
}

func (s *Sessions) remove(b *binding) {
	s.unlink(b)
	delete(s.m, b.key)
}
