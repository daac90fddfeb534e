package caddymodule

import (
	"errors"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kavachgate/kavach/gateway"
	"github.com/kavachgate/kavach/node"
	"github.com/kavachgate/kavach/revocation"
)

// The request path's collectors are created once and registered into each
// config's registry (as Caddy's reverse proxy does): counters of the
// process, not configuration state. Labels never carry ids, tokens or
// paths.
var (
	metricDecisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "kavach",
		Name:      "decisions_total",
		Help:      "Gateway decisions by outcome.",
	}, []string{"outcome"})
	metricVerify = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "kavach",
		Name:      "verify_seconds",
		Help:      "Time to verify a token on a cache miss.",
		Buckets:   []float64{25e-6, 50e-6, 75e-6, 100e-6, 250e-6, 500e-6, 1e-3, 5e-3},
	})
	metricCache = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "kavach",
		Name:      "verify_cache_total",
		Help:      "Verified-token cache lookups by result (hit or miss).",
	}, []string{"result"})
	// The limit label is the limit as configured ("5/m per agent burst
	// 5"), or "token" for every token-carried limit: bounded by the
	// configuration, never a principal or a token's choice.
	metricRateLimited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "kavach",
		Name:      "rate_limited_total",
		Help:      "Requests refused by a rate limit (result limited: 429 or, on a report_only route, forwarded; unavailable: the Redis of the buckets did not answer), by limit.",
	}, []string{"limit", "result"})
	metricWouldDeny = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "kavach",
		Name:      "report_only_would_deny_total",
		Help:      "Requests a report_only route forwarded that enforcement would have denied, by the outcome they would have had.",
	}, []string{"outcome"})
)

// revocationGauges report the revocation set of one config's node. They
// are made per config and registered into that config's registry (each
// config has its own), so a scrape reads the running config's set and no
// package variable has to say which one that is.
func revocationGauges(rt *node.Runtime) []prometheus.Collector {
	gauge := func(name, help string, value func(revocation.Status) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "kavach", Name: name, Help: help}, func() float64 {
			return value(rt.RevocationStatus())
		})
	}
	return []prometheus.Collector{
		gauge("revocation_fresh", "1 when the revocation set is fresh (requests are decided), 0 when they get 503.", func(s revocation.Status) float64 {
			return boolValue(s.Fresh)
		}),
		gauge("revocation_entries", "Live entries in the revocation set.", func(s revocation.Status) float64 { return float64(s.Entries) }),
		gauge("revocation_last_sync_age_seconds", "Seconds since Redis last answered (cluster mode).", func(s revocation.Status) float64 {
			if s.LastPong.IsZero() {
				return 0
			}
			return time.Since(s.LastPong).Seconds()
		}),
		gauge("revocation_epoch_missing", "1 when Redis lost its revocation data (epoch key missing) and awaits a re-seed.", func(s revocation.Status) float64 {
			return boolValue(s.EpochMissing)
		}),
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// registerMetrics registers the request counters (created once, shared by
// every config as Caddy's reverse proxy does) and the node's gauges into
// the config's registry.
func registerMetrics(ctx caddy.Context, rt *node.Runtime) {
	reg := ctx.GetMetricsRegistry()
	if reg == nil {
		return
	}
	for _, c := range append([]prometheus.Collector{metricDecisions, metricVerify, metricCache, metricRateLimited, metricWouldDeny}, revocationGauges(rt)...) {
		if err := reg.Register(c); err != nil {
			var already prometheus.AlreadyRegisteredError
			if !errors.As(err, &already) {
				ctx.Slogger().Warn("metrics not registered", "error", err)
			}
		}
	}
}

// Label values resolved once, so the request path does no label hashing.
var (
	cacheHit  = metricCache.WithLabelValues("hit")
	cacheMiss = metricCache.WithLabelValues("miss")
	outcomes  sync.Map // gateway.Outcome → prometheus.Counter
)

// decisionMetrics is the gateway's Observer.
type decisionMetrics struct{}

func (decisionMetrics) Observe(d *gateway.Decision) {
	c, ok := outcomes.Load(d.Outcome)
	if !ok {
		c, _ = outcomes.LoadOrStore(d.Outcome, metricDecisions.WithLabelValues(string(d.Outcome)))
	}
	c.(prometheus.Counter).Inc()
	if d.WouldDeny != "" {
		metricWouldDeny.WithLabelValues(string(d.WouldDeny)).Inc()
	}
	if d.Limit != nil {
		result := "limited"
		if d.Outcome == gateway.RateLimitUnavailable {
			result = "unavailable"
		}
		metricRateLimited.WithLabelValues(gateway.LimitLabel(d.Limit), result).Inc()
	}
	switch {
	case d.Cached:
		cacheHit.Inc()
	case d.Verify > 0:
		cacheMiss.Inc()
		metricVerify.Observe(d.Verify.Seconds())
	}
}
