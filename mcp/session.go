package mcp

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"time"
)

// now is the clock; tests replace it (or run in a synctest bubble).
var now = time.Now

// SessionState is what a SessionStore knows of a session id for a chain.
type SessionState uint8

const (
	// SessionUnknown: the id was never bound, or its binding expired, was
	// evicted, forgotten or lost with a restart. The gateway answers 404
	// and forwards nothing; an MCP client then starts a new session
	// (MCP transport, "Session Management"). Malformed ids are unknown too.
	SessionUnknown SessionState = iota
	// SessionOwn: bound to this chain. The request is forwarded, and the
	// binding's TTL is renewed.
	SessionOwn
	// SessionOther: bound to another chain. The gateway answers 403.
	SessionOther
)

func (s SessionState) String() string {
	switch s {
	case SessionOwn:
		return "own"
	case SessionOther:
		return "other"
	}
	return "unknown"
}

// SessionStore binds each MCP session (Mcp-Session-Id) to the delegation
// chain that created it (DESIGN.md §4.1), so a session id that leaks to
// another agent, or to a child of the agent that opened it, is refused by
// the gateway even though that token is valid for the route.
//
// The gateway calls Bind with the session id the upstream returns on a
// successful initialize response, Check on every later request that
// carries an Mcp-Session-Id (POST, GET and DELETE alike), and Forget once
// the session is closed. The rules, for every implementation:
//
//   - Only SessionOwn is forwardable. An id the store does not know is
//     SessionUnknown (404), never passed to the upstream to decide: a
//     binding that is gone, for whatever reason, protects its session by
//     making it unusable, not by leaving it open to every chain.
//   - Nothing but Forget or expiry (ttl after the last use) ends a
//     binding early: bounding a store's size may evict bindings, and an
//     evicted binding is SessionUnknown, never forwardable.
//   - Bind of an id bound to another live chain fails (ErrSessionTaken),
//     and the gateway then refuses the initialize response (502): the
//     session could not be bound to its creator.
//   - Check and Bind return an error (ErrSessionStore) when the store
//     cannot answer (Redis unreachable); the gateway then answers 503 and
//     forwards nothing.
//
// Session ids are keyed by their SHA-256, so each binding costs the same
// whatever the id's length. The stateless 2026-07-28 transport has no
// sessions; nothing is bound. MemorySessions is the store of a single
// node; RedisSessions, of a cluster of gateways sharing one Redis.
type SessionStore interface {
	// Check tells what sessionID is for chainKey; an error means the
	// store could not tell (the state is then SessionUnknown).
	Check(ctx context.Context, sessionID, chainKey string) (SessionState, error)
	// Bind binds sessionID to chainKey, or renews the binding when it is
	// already bound to chainKey. It fails for a malformed id
	// (ErrInvalid), an id bound to another live chain (ErrSessionTaken)
	// or a store that cannot answer (ErrSessionStore).
	Bind(ctx context.Context, sessionID, chainKey string) error
	// Forget drops sessionID's binding, once the upstream answered the
	// session's DELETE with 2xx or 404 (the session is gone). It is best
	// effort: a binding it could not drop expires.
	Forget(ctx context.Context, sessionID string)
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

// sessionKey is the store key of a session id.
func sessionKey(sessionID string) [32]byte { return sha256.Sum256([]byte(sessionID)) }

func errInvalidSessionID() error {
	return invalid("invalid Mcp-Session-Id", "not 1 to 1024 visible ASCII characters")
}

func errSessionTaken() error {
	return &Error{Kind: ErrSessionTaken, Public: "session id already bound to another delegation chain"}
}

// MemorySessions is the SessionStore of a single gateway: bindings in
// this process's memory. It is bounded: at most max bindings, each living
// ttl after its last use; when full, Bind evicts the least recently used
// binding, whose session then is SessionUnknown (404) everywhere. A
// restart loses every binding, so every session opened before it gets 404
// and its client starts a new one. Check and Bind never return a store
// error. It is safe for concurrent use.
type MemorySessions struct {
	mu  sync.Mutex
	ttl time.Duration
	lru sessionLRU
}

// NewMemorySessions returns a store of at most max bindings
// (DefaultMaxSessions when max ≤ 0), each kept ttl after its last use
// (DefaultSessionTTL when ttl ≤ 0).
func NewMemorySessions(max int, ttl time.Duration) *MemorySessions {
	if max <= 0 {
		max = DefaultMaxSessions
	}
	if ttl <= 0 {
		ttl = DefaultSessionTTL
	}
	return &MemorySessions{ttl: ttl, lru: newSessionLRU(max)}
}

// Bind implements SessionStore.
func (s *MemorySessions) Bind(_ context.Context, sessionID, chainKey string) error {
	if !validSessionID(sessionID) {
		return errInvalidSessionID()
	}
	k := sessionKey(sessionID)
	t := now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if b := s.lru.get(k, t); b != nil && b.chain != chainKey {
		return errSessionTaken()
	}
	s.lru.put(k, chainKey, t.Add(s.ttl))
	return nil
}

// Check implements SessionStore; a binding of this chain is renewed.
func (s *MemorySessions) Check(_ context.Context, sessionID, chainKey string) (SessionState, error) {
	if !validSessionID(sessionID) {
		return SessionUnknown, nil
	}
	k := sessionKey(sessionID)
	t := now()
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.lru.get(k, t)
	switch {
	case b == nil:
		return SessionUnknown, nil
	case b.chain != chainKey:
		return SessionOther, nil
	}
	b.expires = t.Add(s.ttl)
	return SessionOwn, nil
}

// Forget implements SessionStore.
func (s *MemorySessions) Forget(_ context.Context, sessionID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lru.drop(sessionKey(sessionID))
}

// Len is the number of bindings held, expired ones included until they
// are met or evicted.
func (s *MemorySessions) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.lru.m)
}

// sessionLRU is a bounded map of bindings, most recently used first: the
// whole of MemorySessions, and RedisSessions' local cache. Callers hold
// their own lock.
type sessionLRU struct {
	max        int
	m          map[[32]byte]*binding
	head, tail *binding // most recently used first
}

type binding struct {
	key        [32]byte
	chain      string
	expires    time.Time
	renewed    time.Time // RedisSessions: when a renewal was last asked for
	prev, next *binding
}

func newSessionLRU(max int) sessionLRU {
	return sessionLRU{max: max, m: make(map[[32]byte]*binding)}
}

// get returns k's live binding, most recently used from now on, or nil.
// An expired binding met here is dropped.
func (l *sessionLRU) get(k [32]byte, t time.Time) *binding {
	b, ok := l.m[k]
	if !ok {
		return nil
	}
	if !t.Before(b.expires) {
		l.remove(b)
		return nil
	}
	l.toFront(b)
	return b
}

// put sets k's binding, evicting the least recently used ones to stay
// within max.
func (l *sessionLRU) put(k [32]byte, chain string, expires time.Time) *binding {
	b, ok := l.m[k]
	if !ok {
		for len(l.m) >= l.max {
			l.remove(l.tail)
		}
		b = &binding{key: k}
		l.m[k] = b
	}
	b.chain, b.expires = chain, expires
	l.toFront(b)
	return b
}

func (l *sessionLRU) drop(k [32]byte) {
	if b, ok := l.m[k]; ok {
		l.remove(b)
	}
}

func (l *sessionLRU) toFront(b *binding) {
	if l.head == b {
		return
	}
	l.unlink(b)
	b.next = l.head
	if l.head != nil {
		l.head.prev = b
	}
	l.head = b
	if l.tail == nil {
		l.tail = b
	}
}

func (l *sessionLRU) unlink(b *binding) {
	if b.prev != nil {
		b.prev.next = b.next
	} else if l.head == b {
		l.head = b.next
	}
	if b.next != nil {
		b.next.prev = b.prev
	} else if l.tail == b {
		l.tail = b.prev
	}
	b.prev, b.next = nil, nil
}

func (l *sessionLRU) remove(b *binding) {
	l.unlink(b)
	delete(l.m, b.key)
}

// Interface guard
var _ SessionStore = (*MemorySessions)(nil)
