package runtime_test

import (
	"fmt"
	"log/slog"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/metrics"
	"github.com/nself-org/ai-orchestration/dataplane/money"
	"github.com/nself-org/ai-orchestration/dataplane/providers"
	"github.com/nself-org/ai-orchestration/dataplane/runtime"
)

// largeSnapshot has 1 000 routes over 10 providers and 10 000 budgets: the size the design
// promises to swap in under 100 ms. variant changes one reply so that two snapshots differ.
func largeSnapshot(tb testing.TB, variant string) *config.Snapshot {
	tb.Helper()
	s := &config.Snapshot{APIKeys: []config.APIKey{{Name: "ns/key", SHA256: sum("secret-token"), Role: config.RoleAdmin}}}
	for p := range 10 {
		s.Providers = append(s.Providers, config.Provider{Name: fmt.Sprintf("ns/p%02d", p), Type: config.ProviderMock,
			Mock: &config.Mock{Reply: variant}, Models: []config.Model{{Name: "m", InputPerMillion: money.MustParseUSD("1"), OutputPerMillion: money.MustParseUSD("2")}}})
	}
	for r := range 1000 {
		s.Routes = append(s.Routes, config.Route{Name: fmt.Sprintf("ns/r%04d", r), Strategy: config.StrategyWeighted,
			Match:   config.Match{Models: []string{fmt.Sprintf("alias-%04d", r)}},
			Targets: []config.Target{{Provider: fmt.Sprintf("ns/p%02d", r%10), Model: "m", Weight: 1}},
			RateLimits: []config.RateLimit{{Name: "rpm", Per: config.PerUser, Algorithm: config.AlgorithmSlidingWindow,
				Requests: 60, Window: 60e9, FailMode: config.FailOpen}}})
	}
	for b := range 10000 {
		s.Budgets = append(s.Budgets, config.Budget{Name: fmt.Sprintf("ns/b%05d", b), Scope: config.ScopeUser, Subject: fmt.Sprintf("user-%05d", b),
			Limits: []config.BudgetLimit{{Period: config.PeriodDaily, Limit: money.MustParseUSD("1")}}, Action: config.ActionBlock, TimeZone: "UTC"})
	}
	require.NoError(tb, s.Seal())
	return s
}

// BenchmarkSwapLargeSnapshot measures what a replica does when the snapshot Secret changes:
// decompress and decode it, verify its hash, build the runtime (providers, route table, keys)
// and swap it in. Requests keep using the runtime they loaded, so a swap drops nothing.
func BenchmarkSwapLargeSnapshot(b *testing.B) {
	var wire [2][]byte
	for i, v := range []string{"a", "b"} {
		enc, err := config.Encode(largeSnapshot(b, v))
		require.NoError(b, err)
		wire[i] = enc
	}
	b.Logf("encoded snapshot: %d KiB gzip", len(wire[0])>>10)
	h := runtime.NewHolder(runtime.Options{NewProvider: providers.New, HTTPClient: http.DefaultClient}, metrics.New(), slog.New(slog.DiscardHandler))
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		snap, err := config.Decode(wire[i%2])
		if err != nil {
			b.Fatal(err)
		}
		if err := h.Apply(snap); err != nil {
			b.Fatal(err)
		}
	}
}
