package gateway

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/kavachgate/kavach/mcp"
	"github.com/kavachgate/kavach/ratelimit"
	"github.com/kavachgate/kavach/token"
)

// Outcomes of rate limiting.
const (
	// RateLimited: a bucket of the route's limits is empty (429).
	RateLimited Outcome = "rate_limited"
	// RateLimitUnavailable: the store of the buckets (Redis) did not
	// answer in time and the route fails closed (503).
	RateLimitUnavailable Outcome = "rate_limit_unavailable"
)

// rpcRateLimited is the JSON-RPC error code of a 429 on an MCP route:
// JSON-RPC 2.0 §5.1 leaves -32000 to -32099 to implementation-defined
// server errors, and defines none for "too many requests".
const rpcRateLimited = -32029

// freshStore is a store that can tell whether it answered lately (Redis).
type freshStore interface{ Fresh() bool }

// rateLimit takes a token from every limit of the route for the request's
// principals, after every other check allowed the request (so denials
// spend no budget). It returns a denial, or a zero Decision when the
// request may go on. One call to the store: in Redis mode one round trip.
func (g *Gateway) rateLimit(rt *Route, r *http.Request, a *Admission) (Decision, bool) {
	t, id := a.Token, a.Identity
	var tool string
	if ex := a.ex; ex != nil && ex.Message != nil && ex.Message.Method == "tools/call" {
		tool = ex.Message.Name
	}
	n := 0
	for _, l := range rt.Limits {
		if l.Tool != "" && l.Tool != tool {
			continue // a limit on another tool
		}
		a.checks[n] = ratelimit.Check{Limit: l, Issuer: id.Issuer, Principal: principalOf(l.Per, t, id)}
		n++
	}
	if l := a.tokenRate; l != nil {
		// The token's own limit: per agent, on every route of every
		// gateway (its ID does not depend on the route).
		a.checks[n] = ratelimit.Check{Limit: l, Issuer: id.Issuer, Principal: principalOf(ratelimit.PerAgent, t, id)}
		n++
	}
	if n == 0 {
		return Decision{}, false
	}
	checks, res := a.checks[:n], a.results[:n]
	var err error
	if g.Limiter == nil {
		err = errors.New("no rate limit store")
	} else {
		err = g.Limiter.Take(r.Context(), checks, res)
	}
	if err != nil {
		fs, ok := g.Limiter.(freshStore)
		if rt.RateLimitFailOpen && ok && fs.Fresh() {
			return Decision{}, false // fail open, within the store's freshness
		}
		d := a.deny(RateLimitUnavailable, http.StatusServiceUnavailable, "", "rate limit state unavailable", err.Error())
		d.Why = "the rate limit store did not answer"
		d.RetryAfter = transientRetryAfter
		d.Limit = checks[0].Limit
		d.RPC = RPCError{ID: a.rpcID(), Code: rpcInternal}
		return d, true
	}
	for i := range res {
		if res[i].Allowed {
			continue
		}
		l := checks[i].Limit
		d := a.deny(RateLimited, http.StatusTooManyRequests, "", "rate limit exceeded", l.String())
		d.Why = l.String() + " exceeded by " + checks[i].Principal
		d.Limit, d.Rate = l, res[i]
		d.RetryAfter = ceilSeconds(res[i].RetryAfter)
		d.RPC = RPCError{ID: a.rpcID(), Code: rpcRateLimited}
		return d, true
	}
	return Decision{}, false
}

// rpcID is the JSON-RPC id of the request's message (zero without one).
func (a *Admission) rpcID() mcp.ID {
	if a.ex != nil && a.ex.Message != nil {
		return a.ex.Message.ID
	}
	return mcp.ID{}
}

// tokenRateScope is the scope of every token-carried limit: the same
// limit ID on every route and gateway, so an agent's cnst.rate counts all
// its requests wherever they go.
const tokenRateScope = "kvc.cnst.rate"

// TokenRateLimit compiles a token's cnst.rate ("<n>/<s|m|h>"): a bucket
// per agent, named "token" in the RateLimit fields.
func TokenRateLimit(rate string) (*ratelimit.Limit, error) {
	l, err := ratelimit.NewLimit(rate, ratelimit.PerAgent, 0, tokenRateScope)
	if err != nil {
		return nil, err
	}
	l.Name = "token"
	return l, nil
}

// LimitLabel names a limit where the set of names must stay bounded
// (metric labels, the trail's summary reasons): a route's limit as
// configured, every token-carried limit as one ("token"), since tokens
// may carry any rate their issuer grants.
func LimitLabel(l *ratelimit.Limit) string {
	if l.Name == "token" {
		return "token"
	}
	return l.String()
}

// principalOf is whom a limit counts a request against.
func principalOf(per ratelimit.Per, t *token.Token, id *Identity) string {
	switch per {
	case ratelimit.PerRoot:
		if ag := t.Agents(); len(ag) > 0 {
			return ag[0]
		}
	case ratelimit.PerUser:
		return id.Subject
	}
	if id.Actor == "" || id.Actor == ExternalPrefix {
		return id.Subject // a token without actor or client
	}
	return id.Actor
}

// ceilSeconds is d in whole seconds, rounded up, at least 1 (Retry-After).
func ceilSeconds(d time.Duration) int {
	s := int((d + time.Second - 1) / time.Second)
	return max(s, 1)
}

// setRateLimitHeaders writes the RateLimit-Policy and RateLimit fields of
// the limit that refused the request (draft-ietf-httpapi-ratelimit-headers-11
// §3, §4: structured-field lists whose item is the policy's name as a
// string; q quota units per w seconds, r remaining and t seconds until
// the bucket is full again). Only on 429: allowed responses carry none, so
// a request under its limit costs no header work.
func setRateLimitHeaders(h http.Header, l *ratelimit.Limit, res ratelimit.Result) {
	name := `"` + l.Name + `"`
	h.Set("RateLimit-Policy", name+";q="+strconv.FormatInt(l.Count, 10)+";w="+strconv.FormatInt(l.WindowSeconds(), 10))
	h.Set("RateLimit", name+";r="+strconv.FormatInt(res.Remaining, 10)+";t="+strconv.Itoa(ceilSeconds(res.Reset)))
}
