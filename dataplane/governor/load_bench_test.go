//go:build unix

package governor_test

import (
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/governor"
	"github.com/nself-org/ai-orchestration/dataplane/store"
	"github.com/nself-org/ai-orchestration/dataplane/store/storetest"
)

// loadSnapshot is the configuration the load benchmark (hack/bench/manifests) runs: a per-user
// sliding window of requests and a per-org token bucket on the route, a daily budget for every
// user (alerts at 80 and 100 %) and the org's monthly budget.
func loadSnapshot() (*config.Snapshot, *config.Route) {
	snap := &config.Snapshot{Budgets: []config.Budget{
		{Name: "bench/per-user", Scope: config.ScopeUser, Subject: config.AnySubject, Action: config.ActionBlock,
			TimeZone: "UTC", AlertThresholds: []int32{80, 100},
			Limits: []config.BudgetLimit{{Period: config.PeriodDaily, Limit: usd("1000")}}},
		{Name: "bench/org-bench", Scope: config.ScopeOrg, Subject: "bench", Action: config.ActionBlock, TimeZone: "UTC",
			Limits: []config.BudgetLimit{{Period: config.PeriodMonthly, Limit: usd("10000000")}}},
	}}
	route := &config.Route{Name: "bench/bench-chat", RateLimits: []config.RateLimit{
		{Name: "per-user", Per: config.PerUser, Algorithm: config.AlgorithmSlidingWindow, Requests: 100_000_000, Window: time.Minute},
		{Name: "per-org-tokens", Per: config.PerOrg, Algorithm: config.AlgorithmTokenBucket, Tokens: 100_000_000_000,
			Burst: 100_000_000_000, Window: time.Minute},
	}}
	return snap, route
}

// BenchmarkGovernorLoad is one request of the load benchmark through the governor on the
// in-memory store: admitted with a cache peek (a miss), settled with its usage and a cache put,
// spread over 1 000 users. It runs in parallel (one goroutine per -cpu), as the store's one mutex
// is shared by every request.
func BenchmarkGovernorLoad(b *testing.B) {
	st := store.NewMemory(store.MemoryOptions{})
	g := governor.New(st, governor.Options{Logger: slog.New(slog.DiscardHandler)})
	snap, route := loadSnapshot()
	users := make([]string, 1000)
	for i := range users {
		users[i] = fmt.Sprintf("user-%04d", i)
	}
	value := make([]byte, 600) // a chat completion's cached response
	worst, cost := usd("0.01"), usd("0.0001")
	var seq atomic.Uint64
	ctx := b.Context()
	b.ReportAllocs()
	cpu0 := storetest.CPUTime()
	b.RunParallel(func(pb *testing.PB) {
		var keyBuf []byte
		for pb.Next() {
			n := seq.Add(1)
			// The cache key is a digest in hex; every request's differs (the load's prompts do).
			keyBuf = append(keyBuf[:0], "aio:cache:0000000000000000000000000000000000000000000000000000"...)
			keyBuf = strconv.AppendUint(keyBuf, n, 16)
			key := string(keyBuf)
			req := &governor.Request{Identity: governor.Identity{User: users[n%uint64(len(users))], Org: "bench", APIKey: "bench/bench-app"},
				Endpoint: "chat", Provider: "bench/mock-openai", Model: "gpt-4o-mini", EstimatedTokens: 150,
				WorstCaseCost: worst, Route: route, CachePeek: key}
			d, err := g.Admit(ctx, snap, req)
			if err != nil {
				b.Error(err)
				return
			}
			c := charge(cost, 120, 40)
			c.CachePut = &store.KVPut{Key: key, Value: value, TTL: 10 * time.Minute}
			if err := g.Settle(ctx, req, d.Ticket, c); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(storetest.CPUTime()-cpu0)/float64(b.N), "cpu-ns/op")
}
