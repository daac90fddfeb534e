package node

import (
	"errors"
	"sync"
)

// Shared holds the parts the gateway nodes of one process share across
// configuration reloads, each counted by the runtimes holding it and
// closed when the last one lets go: the revocation set (one per process
// in memory mode; per Redis URL and settings in cluster mode), the MCP
// session store, one Redis client per URL, each audit writer (one per
// trail) and each issuer store. A runtime that asks for a part another
// runtime holds with the same settings gets that part, so a reload keeps
// the revocations, the sessions, the trail's stream and the store's
// connections; a part whose settings changed is made anew, and the old
// one closes with the last runtime that used it.
//
// A program keeps one Shared per process (Caddy's glue: in its one
// caddy.UsagePool entry). Its methods are safe for concurrent use.
type Shared struct {
	mu    sync.Mutex
	parts map[string]*part
}

type part struct {
	refs  int
	ready chan struct{} // closed once val, close and err are set
	val   any
	close func() error
	err   error
}

// NewShared returns an empty Shared.
func NewShared() *Shared { return &Shared{parts: map[string]*part{}} }

// acquire returns the part under key, made by open when nobody holds one
// (open runs without the lock, so it may acquire other parts), and whether
// it already existed. Each successful acquire needs one release.
func (s *Shared) acquire(key string, open func() (any, func() error, error)) (any, bool, error) {
	s.mu.Lock()
	p := s.parts[key]
	if p != nil {
		p.refs++
		s.mu.Unlock()
		<-p.ready
		if p.err != nil {
			return nil, false, p.err
		}
		return p.val, true, nil
	}
	p = &part{refs: 1, ready: make(chan struct{})}
	s.parts[key] = p
	s.mu.Unlock()
	p.val, p.close, p.err = open()
	if p.err != nil {
		s.mu.Lock()
		delete(s.parts, key)
		s.mu.Unlock()
	}
	close(p.ready)
	return p.val, false, p.err
}

// release lets go of the part under key, closing it when nobody else
// holds it.
func (s *Shared) release(key string) error {
	s.mu.Lock()
	p := s.parts[key]
	if p == nil {
		s.mu.Unlock()
		return nil
	}
	p.refs--
	if p.refs > 0 {
		s.mu.Unlock()
		return nil
	}
	delete(s.parts, key)
	s.mu.Unlock()
	if p.close == nil {
		return nil
	}
	return p.close()
}

// Close closes every part still held (a program ending, or a runtime
// that was never released).
func (s *Shared) Close() error {
	s.mu.Lock()
	parts := s.parts
	s.parts = map[string]*part{}
	s.mu.Unlock()
	var errs []error
	for _, p := range parts {
		<-p.ready
		if p.close != nil {
			errs = append(errs, p.close())
		}
	}
	return errors.Join(errs...)
}

// len is the number of parts held (for tests).
func (s *Shared) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.parts)
}
