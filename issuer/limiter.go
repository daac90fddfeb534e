package issuer

import (
	"net/netip"
	"sync"
	"time"
)

// loginLimiter counts failed logins per user name and per client address.
// Memory is bounded (loginMaxKeys per table) and sweep drops windows that
// have ended.
type loginLimiter struct {
	mu    sync.Mutex
	users map[string]*loginWindowState
	ips   map[string]*loginWindowState
}

type loginWindowState struct {
	failures int
	ends     time.Time // end of the window opened by the first failure
}

func newLoginLimiter() *loginLimiter {
	return &loginLimiter{users: map[string]*loginWindowState{}, ips: map[string]*loginWindowState{}}
}

// attempt reserves one login attempt for user from ip: it reports whether
// the password may be checked at all (when not, retry is how long until
// it may) and counts the attempt as a failure up front, so concurrent
// guesses cannot all slip in before the first failure is recorded.
// succeed takes the count back for a good password.
func (l *loginLimiter) attempt(user, ip string, at time.Time) (retry time.Duration, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r1, ok1 := allowKey(l.users, user, loginUserFailures, at)
	r2, ok2 := allowKey(l.ips, ip, loginIPFailures, at)
	if !ok1 || !ok2 {
		return max(r1, r2), false
	}
	failKey(l.users, user, at)
	failKey(l.ips, ip, at)
	return 0, true
}

func allowKey(table map[string]*loginWindowState, key string, limit int, at time.Time) (time.Duration, bool) {
	st, found := table[key]
	if !found {
		if len(table) >= loginMaxKeys {
			sweepTable(table, at)
			if len(table) >= loginMaxKeys {
				return loginWindow, false
			}
		}
		return 0, true
	}
	if !at.Before(st.ends) {
		delete(table, key)
		return 0, true
	}
	if st.failures >= limit {
		return st.ends.Sub(at), false
	}
	return 0, true
}

func failKey(table map[string]*loginWindowState, key string, at time.Time) {
	st, found := table[key]
	if !found || !at.Before(st.ends) {
		// allowKey made room for it, or refused.
		st = &loginWindowState{ends: at.Add(loginWindow)}
		table[key] = st
	}
	st.failures++
}

// succeed ends the user's window (a good password resets the user's
// count) and takes back the address's reservation, leaving the failures
// made from there for other users counted.
func (l *loginLimiter) succeed(user, ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.users, user)
	if st, ok := l.ips[ip]; ok && st.failures > 0 {
		st.failures--
	}
}

// sweep drops the state of windows that ended before at.
func (l *loginLimiter) sweep(at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	sweepTable(l.users, at)
	sweepTable(l.ips, at)
}

func sweepTable(table map[string]*loginWindowState, at time.Time) {
	for k, st := range table {
		if !at.Before(st.ends) {
			delete(table, k)
		}
	}
}

// limiterAddr is the key of a client address: the IP, and for IPv6 its
// /64, since one subscriber usually holds a whole /64.
func limiterAddr(remoteAddr string) string {
	ap, err := netip.ParseAddrPort(remoteAddr)
	var ip netip.Addr
	if err == nil {
		ip = ap.Addr()
	} else if ip, err = netip.ParseAddr(remoteAddr); err != nil {
		return remoteAddr
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}
