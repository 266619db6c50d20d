package governor_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/governor"
	"github.com/nself-org/ai-orchestration/dataplane/store"
	"github.com/nself-org/ai-orchestration/dataplane/store/storetest"
)

type countHook struct{ n atomic.Int64 }

func (h *countHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { h.n.Add(1); return next(ctx, cmd) }
}
func (h *countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { h.n.Add(1); return next(ctx, cmds) }
}

// benchSnapshot has 10 000 budgets, of which three apply to the benchmark's caller (a user's daily,
// the org's monthly and weekly), and a route with three limits.
func benchSnapshot() (*config.Snapshot, *config.Route) {
	snap := &config.Snapshot{}
	for i := range 10_000 {
		snap.Budgets = append(snap.Budgets, config.Budget{Name: fmt.Sprintf("team/b%05d", i), Scope: config.ScopeUser,
			Subject: fmt.Sprintf("user%d", i), Action: config.ActionBlock, TimeZone: "UTC",
			Limits: []config.BudgetLimit{{Period: config.PeriodDaily, Limit: usd("1")}}})
	}
	snap.Budgets = append(snap.Budgets,
		userBudget("each-user", "1000", config.ActionBlock),
		config.Budget{Name: "team/org", Scope: config.ScopeOrg, Subject: "o1", Action: config.ActionBlock, TimeZone: "Europe/Berlin",
			Limits: []config.BudgetLimit{{Period: config.PeriodWeekly, Limit: usd("100000")}, {Period: config.PeriodMonthly, Limit: usd("100000")}}})
	route := &config.Route{Name: "team/chat", RateLimits: []config.RateLimit{
		{Name: "rpm", Per: config.PerUser, Algorithm: config.AlgorithmTokenBucket, Requests: 1 << 40, Window: time.Minute},
		{Name: "tpm", Per: config.PerOrg, Algorithm: config.AlgorithmSlidingWindow, Tokens: 1 << 40, Window: time.Second},
		{Name: "conc", Per: config.PerUser, Algorithm: config.AlgorithmConcurrency, Requests: 1 << 20},
	}}
	return snap, route
}

func benchGovernor(b *testing.B, st store.Store) {
	g := governor.New(st, governor.Options{Logger: slog.New(slog.DiscardHandler), AdmitTimeout: 10 * time.Second})
	snap, route := benchSnapshot()
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		req := chatReq("u1", usd("0.001"))
		req.Route = route
		d, err := g.Admit(ctx, snap, req)
		if err != nil {
			b.Fatal(err)
		}
		if err := g.Settle(ctx, req, d.Ticket, charge(usd("0.0009"), 60, 40)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGovernorAdmitSettle is the governor's cost per request: three rate limits and three
// budget periods decided, reserved and settled, with a ledger entry.
func BenchmarkGovernorAdmitSettle(b *testing.B) {
	b.Run("memory", func(b *testing.B) { benchGovernor(b, store.NewMemory(store.MemoryOptions{})) })
	b.Run("redis", func(b *testing.B) {
		c := storetest.NewRedisClient(b, storetest.RedisURL(b))
		hook := &countHook{}
		c.AddHook(hook)
		st := store.NewRedis(c, store.RedisOptions{Prefix: fmt.Sprintf("gbench%d:", time.Now().UnixNano())})
		hook.n.Store(0)
		benchGovernor(b, st)
		b.ReportMetric(float64(hook.n.Load())/float64(b.N), "roundtrips/op")
	})
	// redis-dial is the production client: DialRedis's options (context deadlines on the socket,
	// pool size, protocol and dialer), which NewRedisClient does not share.
	b.Run("redis-dial", func(b *testing.B) {
		st, err := store.DialRedis(b.Context(), storetest.RedisURL(b), store.RedisOptions{Prefix: fmt.Sprintf("gbench%d:", time.Now().UnixNano())})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = st.Close() })
		hook := &countHook{}
		st.Client().AddHook(hook)
		benchGovernor(b, st)
		b.ReportMetric(float64(hook.n.Load())/float64(b.N), "roundtrips/op")
	})
	b.Run("redis-ping-baseline", func(b *testing.B) {
		c := storetest.NewRedisClient(b, storetest.RedisURL(b))
		for b.Loop() {
			if err := c.Ping(b.Context()).Err(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
