package caddymodule

import (
	"errors"
	"sync"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kavachgate/kavach/gateway"
)

// Collectors are created once and registered into each config's registry
// (as Caddy's reverse proxy does). Labels never carry ids, tokens or paths.
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
)

// activeRevocation is the set the revocation gauges read: the one of the
// most recently started config.
var activeRevocation atomic.Pointer[sharedRevocation]

func revocationGauge(name, help string, value func(revocationStatus) float64) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "kavach", Name: name, Help: help}, func() float64 {
		s := activeRevocation.Load()
		if s == nil {
			return 0
		}
		return value(s.status())
	})
}

var revocationGauges = []prometheus.Collector{
	revocationGauge("revocation_fresh", "1 when the revocation set is fresh (requests are decided), 0 when they get 503.", func(s revocationStatus) float64 {
		if s.Fresh {
			return 1
		}
		return 0
	}),
	revocationGauge("revocation_entries", "Live entries in the revocation set.", func(s revocationStatus) float64 { return float64(s.Entries) }),
	revocationGauge("revocation_last_sync_age_seconds", "Seconds since Redis last answered (cluster mode).", func(s revocationStatus) float64 { return s.LastSyncAge }),
	revocationGauge("revocation_epoch_missing", "1 when Redis lost its revocation data (epoch key missing) and awaits a re-seed.", func(s revocationStatus) float64 {
		if s.EpochMissing {
			return 1
		}
		return 0
	}),
}

func registerMetrics(ctx caddy.Context) {
	reg := ctx.GetMetricsRegistry()
	if reg == nil {
		return
	}
	for _, c := range append([]prometheus.Collector{metricDecisions, metricVerify, metricCache}, revocationGauges...) {
		if err := reg.Register(c); err != nil {
			var already prometheus.AlreadyRegisteredError
			if !errors.As(err, &already) {
				caddy.Log().Named("kavach").Warn("metrics not registered: " + err.Error())
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
	switch {
	case d.Cached:
		cacheHit.Inc()
	case d.Verify > 0:
		cacheMiss.Inc()
		metricVerify.Observe(d.Verify.Seconds())
	}
}
