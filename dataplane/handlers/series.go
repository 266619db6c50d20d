package handlers

import (
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nself-org/ai-orchestration/dataplane/metrics"
)

// series holds the children of the labelled counters the request path bumps on every call
// (governor decisions, cache lookups, tokens and cost per provider and model), looked up once
// instead of hashing the label values under the vector's lock on every request. A child is
// looked up on its first use, never before, so /metrics shows exactly the series it showed when
// each call looked its own up. The vectors' children must then never be Reset or Deleted (no
// code does).
type series struct {
	m *metrics.Metrics
	// decisions and cache hold one child per fixed label value, by index in their name lists.
	decisions [len(decisionOutcomes)]atomic.Pointer[prometheus.Counter]
	cache     [len(cacheResults)]atomic.Pointer[prometheus.Counter]
	// models maps a provider and model to their token and cost children; copied on write, so
	// that the per-request lookup takes no lock.
	models   atomic.Pointer[map[modelKey]*modelSeries]
	modelsMu sync.Mutex
}

// Governor outcomes (aigw_governor_decisions_total's outcome label) and cache results
// (aigw_cache_requests_total's result label), by index into series' arrays.
const (
	outcomeAdmitted = iota
	outcomeBudgetExceeded
	outcomeRateLimited
	outcomeStoreError
	outcomeProviderQuotaError
	outcomeProviderQuotaFull
)

var decisionOutcomes = [...]string{"admitted", "budget_exceeded", "rate_limited", "store_error", "provider_quota_error", "provider_quota_full"}

const (
	cacheHit = iota
	cacheMiss
)

var cacheResults = [...]string{"hit", "miss"}

type modelKey struct{ provider, model string }

// modelSeries are the Tokens and CostUSD children of one provider and model.
type modelSeries struct {
	prompt, completion, cost prometheus.Counter
}

// child returns slot's counter, looking it up in vec by label on first use. Two first callers
// may both look it up; they get the same child.
func child(slot *atomic.Pointer[prometheus.Counter], vec *prometheus.CounterVec, label string) prometheus.Counter {
	if c := slot.Load(); c != nil {
		return *c
	}
	c := vec.WithLabelValues(label)
	slot.Store(&c)
	return c
}

// decision counts one governor outcome; a no-op without metrics.
func (s *series) decision(outcome int) {
	if s.m != nil {
		child(&s.decisions[outcome], s.m.Decisions, decisionOutcomes[outcome]).Inc()
	}
}

// cacheLookup counts one cache lookup result; a no-op without metrics.
func (s *series) cacheLookup(result int) {
	if s.m != nil {
		child(&s.cache[result], s.m.Cache, cacheResults[result]).Inc()
	}
}

// model returns the token and cost children of provider and model. s.m must not be nil.
func (s *series) model(provider, model string) *modelSeries {
	k := modelKey{provider, model}
	if p := s.models.Load(); p != nil {
		if ms, ok := (*p)[k]; ok {
			return ms
		}
	}
	s.modelsMu.Lock()
	defer s.modelsMu.Unlock()
	var old map[modelKey]*modelSeries
	if p := s.models.Load(); p != nil {
		old = *p
		if ms, ok := old[k]; ok {
			return ms
		}
	}
	next := make(map[modelKey]*modelSeries, len(old)+1)
	for key, v := range old {
		next[key] = v
	}
	ms := &modelSeries{
		prompt:     s.m.Tokens.WithLabelValues("prompt", provider, model),
		completion: s.m.Tokens.WithLabelValues("completion", provider, model),
		cost:       s.m.CostUSD.WithLabelValues(provider, model),
	}
	next[k] = ms
	s.models.Store(&next)
	return ms
}
