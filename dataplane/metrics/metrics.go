// Package metrics holds the data plane's Prometheus collectors. Every label has a bounded set
// of values (route templates, status codes, model and provider names from the snapshot) so that
// no caller can blow up cardinality with user input.
package metrics

import (
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is the set of collectors of one data-plane process. Each server owns its registry so
// that tests can build many servers in one process.
type Metrics struct {
	Registry *prometheus.Registry

	// Requests counts replies by route template and status code. [Metrics.ObserveRequest]
	// caches its children: never Reset or Delete from it (nor from Latency).
	Requests *prometheus.CounterVec
	// Latency observes handling time by route template.
	Latency *prometheus.HistogramVec
	// Tokens counts provider tokens by kind (prompt|completion), provider and model.
	Tokens *prometheus.CounterVec
	// CostUSD sums charged cost by provider and model (a float view; the ledger is exact).
	CostUSD *prometheus.CounterVec
	// Errors counts error replies by contract code.
	Errors *prometheus.CounterVec
	// Cache counts cache lookups by result (hit|miss).
	Cache *prometheus.CounterVec
	// Decisions counts governor outcomes (admitted|rate_limited|budget_exceeded|store_error).
	Decisions *prometheus.CounterVec
	// ConfigInfo is 1 for the loaded snapshot's version and hash.
	ConfigInfo *prometheus.GaugeVec
	// ConfigReloads counts successful snapshot swaps.
	ConfigReloads prometheus.Counter
	// ConfigLoadErrors counts refused snapshots (the last good one kept serving).
	ConfigLoadErrors prometheus.Counter
	// ConfigLoadedAt is the Unix time of the last successful swap.
	ConfigLoadedAt prometheus.Gauge
	// EstimatedUsage counts settles whose usage was counted by the tokenizer (no provider usage).
	EstimatedUsage prometheus.Counter
	// SettleErrors counts settles the governor refused or failed.
	SettleErrors prometheus.Counter
	// StreamsOpen is the number of streamed replies in flight.
	StreamsOpen prometheus.Gauge
	// PromptTokensSaved counts prompt tokens removed by prompt optimization (whitespace
	// normalization and history trimming) before the provider call.
	PromptTokensSaved prometheus.Counter
	// GuardScorerFallbacks counts toxicity checks scored by the built-in lexicon because the
	// route's moderation provider was unavailable (reason unavailable|error).
	GuardScorerFallbacks *prometheus.CounterVec

	// routes maps a route template to its request series; copied on write, so that the
	// per-request lookup takes no lock.
	routes   atomic.Pointer[map[string]*routeSeries]
	routesMu sync.Mutex
}

// routeSeries are the Requests and Latency children of one route template, looked up once
// instead of hashing the label values on every request.
type routeSeries struct {
	latency prometheus.Observer
	// codes holds the Requests child of each status code from 100 to 599, filled on first use.
	codes [500]atomic.Pointer[prometheus.Counter]
}

// New builds and registers every collector in a fresh registry (with Go and process collectors).
func New() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aigw_requests_total", Help: "HTTP replies by route template and status code.",
		}, []string{"route", "code"}),
		Latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "aigw_request_duration_seconds", Help: "Time to handle a request (whole stream for streams).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"route"}),
		Tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aigw_tokens_total", Help: "Tokens by kind (prompt|completion), provider and model.",
		}, []string{"kind", "provider", "model"}),
		CostUSD: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aigw_cost_usd_total", Help: "Charged cost in USD by provider and model.",
		}, []string{"provider", "model"}),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aigw_errors_total", Help: "Error replies by contract code.",
		}, []string{"code"}),
		Cache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aigw_cache_requests_total", Help: "Response cache lookups by result (hit|miss).",
		}, []string{"result"}),
		Decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aigw_governor_decisions_total", Help: "Rate-limit and budget decisions by outcome.",
		}, []string{"outcome"}),
		ConfigInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "aigw_config_info", Help: "1 for the loaded snapshot's version and hash.",
		}, []string{"version", "hash"}),
		ConfigReloads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "aigw_config_reloads_total", Help: "Snapshots swapped in.",
		}),
		ConfigLoadErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "aigw_config_load_errors_total", Help: "Snapshots refused; the last good one kept serving.",
		}),
		ConfigLoadedAt: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "aigw_config_last_reload_timestamp_seconds", Help: "Unix time of the last snapshot swap.",
		}),
		EstimatedUsage: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "aigw_usage_estimated_total", Help: "Calls settled from the tokenizer because the provider reported no usage.",
		}),
		SettleErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "aigw_settle_errors_total", Help: "Settles that failed.",
		}),
		StreamsOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "aigw_streams_open", Help: "Streamed replies in flight.",
		}),
		PromptTokensSaved: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "aigw_prompt_tokens_saved_total", Help: "Prompt tokens removed by prompt optimization.",
		}),
		GuardScorerFallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aigw_guard_scorer_fallbacks_total", Help: "Toxicity checks scored by the built-in lexicon instead of the route's moderation provider, by reason (unavailable|error).",
		}, []string{"reason"}),
	}
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.Requests, m.Latency, m.Tokens, m.CostUSD, m.Errors, m.Cache, m.Decisions,
		m.ConfigInfo, m.ConfigReloads, m.ConfigLoadErrors, m.ConfigLoadedAt,
		m.EstimatedUsage, m.SettleErrors, m.StreamsOpen, m.PromptTokensSaved,
		m.GuardScorerFallbacks,
	)
	return m
}

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// SetConfig records the loaded snapshot; the previous version/hash series is removed so that
// exactly one series is 1.
func (m *Metrics) SetConfig(version, hash string) {
	m.ConfigInfo.Reset()
	m.ConfigInfo.WithLabelValues(version, hash).Set(1)
	m.ConfigReloads.Inc()
}

// ObserveRequest counts one reply of route (a route template, never a raw path) with status
// and observes its handling time, as Requests.WithLabelValues(route, status).Inc() and
// Latency.WithLabelValues(route).Observe(seconds) do.
func (m *Metrics) ObserveRequest(route string, status int, seconds float64) {
	rs := m.route(route)
	rs.latency.Observe(seconds)
	i := status - 100
	if i < 0 || i >= len(rs.codes) {
		m.Requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
		return
	}
	c := rs.codes[i].Load()
	if c == nil {
		// Two first requests may both look the child up; they get the same one.
		child := m.Requests.WithLabelValues(route, strconv.Itoa(status))
		c = &child
		rs.codes[i].Store(c)
	}
	(*c).Inc()
}

func (m *Metrics) route(route string) *routeSeries {
	if p := m.routes.Load(); p != nil {
		if rs, ok := (*p)[route]; ok {
			return rs
		}
	}
	m.routesMu.Lock()
	defer m.routesMu.Unlock()
	old := m.routes.Load()
	if old != nil {
		if rs, ok := (*old)[route]; ok {
			return rs
		}
	}
	next := make(map[string]*routeSeries, 1+len(mapOrNil(old)))
	for k, v := range mapOrNil(old) {
		next[k] = v
	}
	rs := &routeSeries{latency: m.Latency.WithLabelValues(route)}
	next[route] = rs
	m.routes.Store(&next)
	return rs
}

func mapOrNil(p *map[string]*routeSeries) map[string]*routeSeries {
	if p == nil {
		return nil
	}
	return *p
}
