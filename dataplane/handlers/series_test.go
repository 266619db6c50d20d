package handlers

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/governor"
	"github.com/nself-org/ai-orchestration/dataplane/metrics"
)

// exposition is the text /metrics serves for the families the request path's cached series
// feed.
func exposition(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	mfs, err := m.Registry.Gather()
	require.NoError(t, err)
	var out bytes.Buffer
	for _, mf := range mfs {
		switch mf.GetName() {
		case "aigw_governor_decisions_total", "aigw_cache_requests_total", "aigw_tokens_total", "aigw_cost_usd_total":
			_, err := expfmt.MetricFamilyToText(&out, mf)
			require.NoError(t, err)
		}
	}
	return out.String()
}

// TestCachedSeriesExportWhatLookingThemUpExports drives the service's cached series and, side
// by side, the per-call lookups they replace (as the code read before), and requires the same
// /metrics text at every step: no series appears earlier (a zero series before its first use)
// or later, and every count and sum is the same.
func TestCachedSeriesExportWhatLookingThemUpExports(t *testing.T) {
	cachedM, directM := metrics.New(), metrics.New()
	s := NewService(Deps{Governor: nil, Metrics: cachedM})
	require.Equal(t, exposition(t, directM), exposition(t, cachedM), "nothing exported before the first request")

	errs := []error{
		nil,
		&governor.DeniedError{Kind: governor.DeniedByBudget},
		fmt.Errorf("wrapped: %w", &governor.DeniedError{Kind: governor.DeniedByBudget}),
		&governor.DeniedError{Kind: governor.DeniedByRateLimit},
		errors.New("store down"),
	}
	oldOutcome := func(err error) string {
		outcome := "admitted"
		var de *governor.DeniedError
		switch {
		case errors.As(err, &de) && de.Kind == governor.DeniedByBudget:
			outcome = "budget_exceeded"
		case errors.As(err, &de):
			outcome = "rate_limited"
		case err != nil:
			outcome = "store_error"
		}
		return outcome
	}
	providers := []string{"openai", "anthropic", "ns/openai"}
	models := []string{"gpt-4o-mini", "claude-3-5-haiku", "m,with\"odd\\chars"}
	for i := range 600 {
		switch i % 5 {
		case 0:
			err := errs[(i/5)%len(errs)]
			s.countDecision(err)
			directM.Decisions.WithLabelValues(oldOutcome(err)).Inc()
		case 1:
			if i%3 == 0 {
				s.series.decision(outcomeProviderQuotaFull)
				directM.Decisions.WithLabelValues("provider_quota_full").Inc()
			} else if i%7 == 0 {
				s.series.decision(outcomeProviderQuotaError)
				directM.Decisions.WithLabelValues("provider_quota_error").Inc()
			}
		case 2:
			r := []int{cacheHit, cacheMiss}[(i/5)%2]
			s.series.cacheLookup(r)
			directM.Cache.WithLabelValues([]string{"hit", "miss"}[r]).Inc()
		default:
			p, m := providers[i%len(providers)], models[(i/7)%len(models)]
			prompt, completion, usd := float64(i%300), float64(i%17), float64(i%13)/1000
			ms := s.series.model(p, m)
			ms.prompt.Add(prompt)
			ms.completion.Add(completion)
			ms.cost.Add(usd)
			directM.Tokens.WithLabelValues("prompt", p, m).Add(prompt)
			directM.Tokens.WithLabelValues("completion", p, m).Add(completion)
			directM.CostUSD.WithLabelValues(p, m).Add(usd)
		}
		if i%50 == 0 || i < 20 {
			require.Equal(t, exposition(t, directM), exposition(t, cachedM), "after step %d", i)
		}
	}
	require.Equal(t, exposition(t, directM), exposition(t, cachedM))
}

func TestCachedSeriesCountEveryCallUnderConcurrency(t *testing.T) {
	m := metrics.New()
	s := NewService(Deps{Metrics: m})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				s.series.model("p"+strconv.Itoa(i%5), "m"+strconv.Itoa(g%3)).prompt.Add(2)
				s.series.decision(outcomeAdmitted)
				s.series.cacheLookup(cacheMiss)
			}
		})
	}
	wg.Wait()
	mfs, err := m.Registry.Gather()
	require.NoError(t, err)
	counts := map[string]float64{}
	for _, mf := range mfs {
		for _, metric := range mf.GetMetric() {
			if c := metric.GetCounter(); c != nil {
				counts[mf.GetName()] += c.GetValue()
			}
		}
	}
	require.Equal(t, 8*500*2.0, counts["aigw_tokens_total"])
	require.Equal(t, 8*500.0, counts["aigw_governor_decisions_total"])
	require.Equal(t, 8*500.0, counts["aigw_cache_requests_total"])
}

func TestCachedSeriesAreANoOpWithoutMetrics(t *testing.T) {
	s := NewService(Deps{})
	require.NotPanics(t, func() {
		s.countDecision(nil)
		s.series.decision(outcomeProviderQuotaFull)
		s.series.cacheLookup(cacheHit)
	})
}
