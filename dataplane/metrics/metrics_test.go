package metrics

import (
	"bytes"
	"strconv"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
	"github.com/stretchr/testify/require"
)

// requestFamilies is the text exposition (what /metrics serves) of the request counters and
// latency histograms.
func requestFamilies(t *testing.T, m *Metrics) string {
	t.Helper()
	n, err := testutil.GatherAndCount(m.Registry, "aigw_requests_total", "aigw_request_duration_seconds")
	require.NoError(t, err)
	require.Positive(t, n)
	mfs, err := m.Registry.Gather()
	require.NoError(t, err)
	var out bytes.Buffer
	for _, mf := range mfs {
		if name := mf.GetName(); name == "aigw_requests_total" || name == "aigw_request_duration_seconds" {
			_, err := expfmt.MetricFamilyToText(&out, mf)
			require.NoError(t, err)
		}
	}
	return out.String()
}

func TestObserveRequestExportsWhatLookingTheSeriesUpExports(t *testing.T) {
	cached, direct := New(), New()
	routes := []string{"/api/ai/chat", "/v1/chat/completions", "unmatched", "/api/ai/budgets/:scope/:subject"}
	statuses := []int{200, 200, 201, 400, 401, 402, 429, 499, 502, 504, 99, 600, 1000, 100, 599}
	for i := range 2000 {
		route, status := routes[i%len(routes)], statuses[(i/3)%len(statuses)]
		seconds := float64(i%97) / 1000
		cached.ObserveRequest(route, status, seconds)
		direct.Requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
		direct.Latency.WithLabelValues(route).Observe(seconds)
	}
	require.Equal(t, requestFamilies(t, direct), requestFamilies(t, cached))
}

func TestObserveRequestCountsEveryRequestUnderConcurrency(t *testing.T) {
	m := New()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				m.ObserveRequest("/r"+strconv.Itoa(i%5), 200+g%3, 0.001)
			}
		})
	}
	wg.Wait()
	total := 0.0
	for r := range 5 {
		for code := 200; code < 203; code++ {
			total += testutil.ToFloat64(m.Requests.WithLabelValues("/r"+strconv.Itoa(r), strconv.Itoa(code)))
		}
	}
	require.Equal(t, 8*500.0, total)
}
