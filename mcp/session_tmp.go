package mcp

import (
	"context"
	"errors"
)

// TEMPORARY: replaced by the session store work.
type SessionState uint8

const (
	SessionUnknown SessionState = iota
	SessionOwn
	SessionOther
)

type TmpStore struct{ *Sessions }

func (s TmpStore) Check(_ context.Context, sid, key string) (SessionState, error) {
	if s.Sessions.Check(sid, key) {
		return SessionOwn, nil
	}
	return SessionOther, nil
}

func (s TmpStore) Bind(_ context.Context, sid, key string) error {
	if !s.Sessions.Bind(sid, key) {
		return errors.New("refused")
	}
	return nil
}

func (s TmpStore) Forget(_ context.Context, sid string) { s.Sessions.Forget(sid) }
