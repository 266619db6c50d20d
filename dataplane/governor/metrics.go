package governor

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the governor's Prometheus counters. They work unregistered (Options.Registerer nil),
// so tests and embedders can read them directly.
type Metrics struct {
	// BudgetDecisions counts budget checks by action and result (admitted, blocked, downgraded,
	// over_alert = served beyond an alert-only budget).
	BudgetDecisions *prometheus.CounterVec
	// BudgetAlerts counts alert-threshold crossings by budget and threshold.
	BudgetAlerts *prometheus.CounterVec
	// LimiterDecisions counts rate-limit checks by limit ("route/name") and result (allowed,
	// limited, shadow_limited).
	LimiterDecisions *prometheus.CounterVec
	// StoreErrors counts failed store calls by operation (admit, settle, read).
	StoreErrors *prometheus.CounterVec
	// FailOpen counts requests admitted without a decision because the store was unavailable and
	// every applicable limit fails open.
	FailOpen prometheus.Counter
	// FailClosed counts requests refused because the store was unavailable.
	FailClosed prometheus.Counter
	// UsageEstimated counts settled requests whose usage was counted by the tokenizer.
	UsageEstimated prometheus.Counter
	// UsageUnpriced counts settled requests of a model without a price (charged $0).
	UsageUnpriced prometheus.Counter
	// Checkpoints counts checkpoints of running streams by result (ok, error).
	Checkpoints *prometheus.CounterVec
}

// NewMetrics creates the counters and registers them on reg when it is not nil (reusing any
// already registered there).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		BudgetDecisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aio_budget_decisions_total", Help: "Budget checks by action and result.",
		}, []string{"action", "result"}),
		BudgetAlerts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aio_budget_alerts_total", Help: "Budget alert thresholds crossed.",
		}, []string{"budget", "threshold"}),
		LimiterDecisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aio_ratelimit_decisions_total", Help: "Rate-limit checks by limit and result.",
		}, []string{"limit", "result"}),
		StoreErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aio_store_errors_total", Help: "Failed limit-store calls by operation.",
		}, []string{"op"}),
		FailOpen: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "aio_store_fail_open_total", Help: "Requests admitted unchecked because the store was unavailable (fail open).",
		}),
		FailClosed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "aio_store_fail_closed_total", Help: "Requests refused because the store was unavailable (fail closed).",
		}),
		UsageEstimated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "aio_usage_estimated_total", Help: "Requests whose usage was counted by the tokenizer (the provider sent none).",
		}),
		UsageUnpriced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "aio_usage_unpriced_total", Help: "Requests served by a model without a price.",
		}),
		Checkpoints: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aio_stream_checkpoints_total", Help: "Checkpoints charging running streams as they go, by result.",
		}, []string{"result"}),
	}
	if reg != nil {
		m.BudgetDecisions = register(reg, m.BudgetDecisions)
		m.BudgetAlerts = register(reg, m.BudgetAlerts)
		m.LimiterDecisions = register(reg, m.LimiterDecisions)
		m.StoreErrors = register(reg, m.StoreErrors)
		m.FailOpen = register(reg, m.FailOpen)
		m.FailClosed = register(reg, m.FailClosed)
		m.UsageEstimated = register(reg, m.UsageEstimated)
		m.UsageUnpriced = register(reg, m.UsageUnpriced)
		m.Checkpoints = register(reg, m.Checkpoints)
	}
	return m
}

// register registers c, or returns the collector already registered under its name, so that
// several governors (tests, a rebuilt server) can share one registry.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
	}
	return c
}
