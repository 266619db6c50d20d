package governor_test

import (
	"errors"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/governor"
	"github.com/nself-org/ai-orchestration/dataplane/money"
	"github.com/nself-org/ai-orchestration/dataplane/store"
	"github.com/nself-org/ai-orchestration/dataplane/store/storetest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	storetest.StopRedis()
	os.Exit(code)
}

// stores runs fn against the memory store and a real Redis.
func stores(t *testing.T, fn func(t *testing.T, st store.Store, clock *storetest.FakeClock)) {
	for _, s := range []struct {
		name string
		new  storetest.NewStoreFunc
	}{{"memory", storetest.NewMemoryStore}, {"redis", storetest.NewRedisStore(false)}} {
		t.Run(s.name, func(t *testing.T) {
			st, clock := s.new(t)
			fn(t, st, clock)
		})
	}
}

func newGov(st store.Store, clock store.Clock) (governor.Governor, *governor.Metrics) {
	m := governor.NewMetrics(nil)
	// A generous admit timeout: these tests are about exactness under a burst on a shared machine,
	// not about the fail mode (TestAnUnreachableStoreFollowsEachLimitsFailMode).
	return governor.New(st, governor.Options{Clock: clock, Metrics: m, ReservationTTL: time.Minute,
		AdmitTimeout: 10 * time.Second, Logger: slog.New(slog.DiscardHandler)}), m
}

func usd(s string) money.Nanos { return money.MustParseUSD(s) }

func userBudget(name, daily, action string) config.Budget {
	return config.Budget{Name: "team/" + name, Scope: config.ScopeUser, Subject: config.AnySubject,
		Limits: []config.BudgetLimit{{Period: config.PeriodDaily, Limit: usd(daily)}}, Action: action, TimeZone: "UTC"}
}

func chatReq(user string, cost money.Nanos) *governor.Request {
	return &governor.Request{Identity: governor.Identity{User: user, Org: "o1", APIKey: "team/app"},
		Endpoint: "chat", Provider: "team/mock", Model: "gpt-4o", EstimatedTokens: 100, WorstCaseCost: cost}
}

func charge(cost money.Nanos, prompt, completion int64) governor.Charge {
	var c governor.Charge
	c.Cost = cost
	c.Usage.PromptTokens, c.Usage.CompletionTokens = prompt, completion
	return c
}

func TestParallelRequestsNeverOverspendABudget(t *testing.T) {
	stores(t, func(t *testing.T, st store.Store, clock *storetest.FakeClock) {
		g, m := newGov(st, clock)
		snap := &config.Snapshot{Budgets: []config.Budget{userBudget("daily", "0.05", config.ActionBlock)}}
		var (
			mu      sync.Mutex
			served  int
			denials []*governor.DeniedError
			wg      sync.WaitGroup
		)
		for range 500 {
			wg.Go(func() {
				req := chatReq("u1", usd("0.001"))
				d, err := g.Admit(t.Context(), snap, req)
				mu.Lock()
				defer mu.Unlock()
				var de *governor.DeniedError
				if errors.As(err, &de) {
					denials = append(denials, de)
					return
				}
				if err != nil {
					t.Errorf("admit: %v", err)
					return
				}
				served++
				if err := g.Settle(t.Context(), req, d.Ticket, charge(usd("0.001"), 50, 50)); err != nil {
					t.Errorf("settle: %v", err)
				}
			})
		}
		wg.Wait()
		require.Equal(t, 50, served)
		require.Len(t, denials, 450)
		midnight := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
		for _, de := range denials {
			require.Equal(t, governor.DeniedByBudget, de.Kind)
			require.Equal(t, "team/daily", de.Name)
			require.Equal(t, midnight, de.ResetsAt)
			require.Equal(t, 14*time.Hour, de.RetryAfter)
		}
		rep, err := g.Usage(t.Context(), snap, governor.Query{User: "u1", Org: "o1"})
		require.NoError(t, err)
		require.Equal(t, int64(50), rep.Requests)
		require.Equal(t, int64(5000), rep.Tokens)
		require.Equal(t, money.Nanos(50_000_000), rep.Cost)
		require.Len(t, rep.Budgets, 1)
		b := rep.Budgets[0]
		require.Equal(t, "0.050000000", b.Spent.String())
		require.Equal(t, money.Nanos(0), b.Reserved)
		require.Equal(t, money.Nanos(0), b.Remaining)
		require.Equal(t, clock.Now(), b.RunsOutAt, "already exhausted")
		require.Equal(t, money.Nanos(0), *rep.Remaining)
		require.Equal(t, 450.0, testutil.ToFloat64(m.BudgetDecisions.WithLabelValues("block", "blocked")))

		// The keys follow the documented layout, under the user's hash tag (not the org's).
		states, err := st.Budgets(t.Context(), []string{"aio:budget:{u:u1}:team/daily:u1:daily:2026-11-25"})
		require.NoError(t, err)
		require.Equal(t, int64(50_000_000), states[0].Spent)
	})
}

func TestBudgetsRollOverAtMidnightInTheirTimeZoneAndAtMonthEnd(t *testing.T) {
	stores(t, func(t *testing.T, st store.Store, clock *storetest.FakeClock) {
		g, _ := newGov(st, clock)
		berlin, err := time.LoadLocation("Europe/Berlin")
		require.NoError(t, err)
		tokyo, err := time.LoadLocation("Asia/Tokyo")
		require.NoError(t, err)
		tests := []struct {
			name     string
			period   string
			zone     *time.Location
			before   time.Time // last second of a period
			resetsAt time.Time
		}{
			{"daily in Berlin", config.PeriodDaily, berlin,
				time.Date(2026, 11, 25, 23, 59, 59, 0, berlin), time.Date(2026, 11, 26, 0, 0, 0, 0, berlin)},
			{"daily on the 25-hour day DST ends in Berlin", config.PeriodDaily, berlin,
				time.Date(2026, 10, 25, 23, 59, 59, 0, berlin), time.Date(2026, 10, 26, 0, 0, 0, 0, berlin)},
			{"monthly at the end of February in Tokyo", config.PeriodMonthly, tokyo,
				time.Date(2027, 2, 28, 23, 59, 59, 0, tokyo), time.Date(2027, 3, 1, 0, 0, 0, 0, tokyo)},
			{"monthly at the end of a 31-day month in UTC", config.PeriodMonthly, time.UTC,
				time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC), time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
			{"weekly on Sunday night in Berlin", config.PeriodWeekly, berlin,
				time.Date(2026, 11, 29, 23, 59, 59, 0, berlin), time.Date(2026, 11, 30, 0, 0, 0, 0, berlin)},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				snap := &config.Snapshot{Budgets: []config.Budget{{
					Name: "team/" + tc.name, Scope: config.ScopeOrg, Subject: "o1", Action: config.ActionBlock,
					TimeZone: tc.zone.String(), Limits: []config.BudgetLimit{{Period: tc.period, Limit: usd("0.01")}},
				}}}
				clock.Set(tc.before)
				req := chatReq("u1", usd("0.01"))
				d, err := g.Admit(t.Context(), snap, req)
				require.NoError(t, err)
				require.NoError(t, g.Settle(t.Context(), req, d.Ticket, charge(usd("0.01"), 1, 1)))
				_, err = g.Admit(t.Context(), snap, chatReq("u1", usd("0.01")))
				var de *governor.DeniedError
				require.ErrorAs(t, err, &de)
				require.True(t, tc.resetsAt.Equal(de.ResetsAt), "resets at %s, want %s", de.ResetsAt, tc.resetsAt)
				require.Equal(t, time.Second, de.RetryAfter)

				clock.Set(tc.resetsAt)
				_, err = g.Admit(t.Context(), snap, chatReq("u1", usd("0.01")))
				require.NoError(t, err, "a new period starts at %s", tc.resetsAt)
			})
		}
	})
}

func TestPeriodBoundsFollowCalendarAndDST(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)
	tests := []struct {
		name   string
		at     time.Time
		period string
		loc    *time.Location
		length time.Duration
		label  string
	}{
		{"a spring-forward day lasts 23 hours", time.Date(2026, 3, 29, 12, 0, 0, 0, berlin), config.PeriodDaily, berlin, 23 * time.Hour, "2026-03-29"},
		{"a fall-back day lasts 25 hours", time.Date(2026, 10, 25, 12, 0, 0, 0, berlin), config.PeriodDaily, berlin, 25 * time.Hour, "2026-10-25"},
		{"an ISO week starts on Monday even from a Sunday", time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC), config.PeriodWeekly, time.UTC, 7 * 24 * time.Hour, "2026-11-23"},
		{"a leap February has 29 days", time.Date(2028, 2, 10, 0, 0, 0, 0, time.UTC), config.PeriodMonthly, time.UTC, 29 * 24 * time.Hour, "2028-02-01"},
		{"a UTC instant falls on the zone's local date", time.Date(2026, 11, 25, 23, 30, 0, 0, time.UTC), config.PeriodDaily, berlin, 24 * time.Hour, "2026-11-26"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start, end, label := governor.PeriodBounds(tc.at, tc.loc, tc.period)
			require.Equal(t, tc.length, end.Sub(start))
			require.Equal(t, tc.label, label)
			require.False(t, tc.at.Before(start))
			require.True(t, tc.at.Before(end))
		})
	}
}

func TestAlertAndDowngradeBudgetsServeAndReport(t *testing.T) {
	stores(t, func(t *testing.T, st store.Store, clock *storetest.FakeClock) {
		g, _ := newGov(st, clock)
		alert := userBudget("alert", "0.010", config.ActionAlert)
		alert.AlertThresholds = []int32{50, 80, 100}
		down := userBudget("down", "0.020", config.ActionDowngrade)
		down.DowngradeTo = "gpt-4o-mini"
		snap := &config.Snapshot{Budgets: []config.Budget{alert, down}}
		var thresholds []int32
		var downgrades []string
		for range 12 {
			req := chatReq("u1", usd("0.003"))
			d, err := g.Admit(t.Context(), snap, req)
			require.NoError(t, err, "alert and downgrade budgets never refuse")
			for _, a := range d.Alerts {
				require.Equal(t, "team/alert", a.Budget)
				thresholds = append(thresholds, a.Threshold)
			}
			downgrades = append(downgrades, d.Downgrade)
			require.NoError(t, g.Settle(t.Context(), req, d.Ticket, charge(usd("0.003"), 1, 1)))
		}
		require.Equal(t, []int32{50, 80, 100}, thresholds, "each threshold fires once, when crossed")
		// $0.020 holds six requests of $0.003 ($0.018); the seventh would pass the limit.
		require.Equal(t, []string{"", "", "", "", "", "", "gpt-4o-mini", "gpt-4o-mini", "gpt-4o-mini", "gpt-4o-mini", "gpt-4o-mini", "gpt-4o-mini"}, downgrades)
		rep, err := g.Usage(t.Context(), snap, governor.Query{User: "u1", Org: "o1"})
		require.NoError(t, err)
		require.Equal(t, usd("0.036"), rep.Budgets[0].Spent, "spend past an alert budget is still recorded")
	})
}

func TestRateLimitsAreExactAndSayWhenToRetry(t *testing.T) {
	stores(t, func(t *testing.T, st store.Store, clock *storetest.FakeClock) {
		g, m := newGov(st, clock)
		route := &config.Route{Name: "team/chat", RateLimits: []config.RateLimit{
			{Name: "per-user", Per: config.PerUser, Algorithm: config.AlgorithmSlidingWindow, Requests: 100, Window: time.Minute, FailMode: config.FailOpen},
			{Name: "org", Per: config.PerOrg, Algorithm: config.AlgorithmTokenBucket, Requests: 10_000, Window: time.Minute, FailMode: config.FailOpen},
			{Name: "trial", Per: config.PerUser, Algorithm: config.AlgorithmSlidingWindow, Requests: 10, Window: time.Minute, Shadow: true},
		}}
		var (
			mu      sync.Mutex
			served  int
			limited []*governor.DeniedError
			states  []governor.RateLimitState
			wg      sync.WaitGroup
		)
		for range 1000 {
			wg.Go(func() {
				req := chatReq("u1", 0)
				req.Route = route
				d, err := g.Admit(t.Context(), nil, req)
				mu.Lock()
				defer mu.Unlock()
				var de *governor.DeniedError
				if errors.As(err, &de) {
					limited = append(limited, de)
					return
				}
				if err != nil {
					t.Errorf("admit: %v", err)
					return
				}
				served++
				states = append(states, d.RateLimit)
			})
		}
		wg.Wait()
		require.Equal(t, 100, served)
		require.Len(t, limited, 900)
		seen := map[int64]bool{}
		for _, s := range states {
			require.Equal(t, "per-user", s.Name, "the tightest limit is reported")
			require.Equal(t, int64(100), s.Limit)
			seen[s.Remaining] = true
		}
		require.Len(t, seen, 100, "each served request saw a distinct remaining count")
		for _, de := range limited {
			require.Equal(t, governor.DeniedByRateLimit, de.Kind)
			require.Equal(t, "per-user", de.Name)
			require.Equal(t, time.Minute, de.RetryAfter, "every entry was admitted at the same instant")
			require.Equal(t, int64(0), de.RateLimit.Remaining)
		}
		require.Equal(t, 990.0, testutil.ToFloat64(m.LimiterDecisions.WithLabelValues("team/chat/trial", "shadow_limited")),
			"the shadow limit reports every request it would have refused")
		require.Equal(t, 900.0, testutil.ToFloat64(m.LimiterDecisions.WithLabelValues("team/chat/per-user", "limited")))

		clock.Advance(time.Minute)
		req := chatReq("u1", 0)
		req.Route = route
		d, err := g.Admit(t.Context(), nil, req)
		require.NoError(t, err)
		require.Equal(t, int64(99), d.RateLimit.Remaining)
	})
}

func TestTokenLimitsAdmitOnTheEstimateAndCorrectAtSettle(t *testing.T) {
	stores(t, func(t *testing.T, st store.Store, clock *storetest.FakeClock) {
		g, _ := newGov(st, clock)
		route := &config.Route{Name: "team/chat", RateLimits: []config.RateLimit{
			{Name: "tpm", Per: config.PerUser, Algorithm: config.AlgorithmSlidingWindow, Tokens: 10_000, Window: time.Minute},
		}}
		req := chatReq("u1", 0)
		req.Route, req.EstimatedTokens = route, 8_000
		d, err := g.Admit(t.Context(), nil, req)
		require.NoError(t, err)
		require.Equal(t, int64(2_000), d.RateLimit.Remaining)
		require.NoError(t, g.Settle(t.Context(), req, d.Ticket, charge(0, 1_000, 500)))
		req2 := chatReq("u1", 0)
		req2.Route, req2.EstimatedTokens = route, 8_500
		d, err = g.Admit(t.Context(), nil, req2)
		require.NoError(t, err, "settle gave back 6 500 over-estimated tokens")
		require.Equal(t, int64(0), d.RateLimit.Remaining)
		require.NoError(t, g.Settle(t.Context(), req2, d.Ticket, charge(0, 1, 1)))
		require.ErrorIs(t, g.Settle(t.Context(), req2, d.Ticket, charge(0, 1, 1)), governor.ErrTicketSettled)
	})
}

func TestAnUnreachableStoreFollowsEachLimitsFailMode(t *testing.T) {
	// A real Redis client pointed at a port nobody listens on: every call fails fast.
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 50 * time.Millisecond, MaxRetries: -1,
		DialerRetries: 1, ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = c.Close() })
	clock := storetest.NewFakeClock(storetest.Start)
	reg := prometheus.NewRegistry()
	g := governor.New(store.NewRedis(c, store.RedisOptions{}), governor.Options{Clock: clock, Registerer: reg,
		Logger: slog.New(slog.DiscardHandler)})
	m := governor.NewMetrics(reg) // the same collectors, found on the registry
	open := &config.Route{Name: "team/open", RateLimits: []config.RateLimit{
		{Name: "rpm", Per: config.PerUser, Algorithm: config.AlgorithmTokenBucket, Requests: 1, Window: time.Minute, FailMode: config.FailOpen}}}
	closed := &config.Route{Name: "team/closed", RateLimits: []config.RateLimit{
		{Name: "rpm", Per: config.PerUser, Algorithm: config.AlgorithmTokenBucket, Requests: 1, Window: time.Minute, FailMode: config.FailClosed}}}
	budgeted := &config.Snapshot{Budgets: []config.Budget{userBudget("daily", "1", config.ActionBlock)}}

	tests := []struct {
		name   string
		route  *config.Route
		snap   *config.Snapshot
		admits bool
	}{
		{"a fail-open limit admits", open, nil, true},
		{"a fail-closed limit refuses", closed, nil, false},
		{"a block budget fails closed by default", open, budgeted, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := chatReq("u1", usd("0.01"))
			req.Route = tc.route
			d, err := g.Admit(t.Context(), tc.snap, req)
			if tc.admits {
				require.NoError(t, err)
				require.NotNil(t, d.Ticket)
				require.Error(t, g.Settle(t.Context(), req, d.Ticket, charge(1, 1, 1)), "the store is still down")
				return
			}
			require.ErrorIs(t, err, governor.ErrStoreUnavailable)
		})
	}
	require.Equal(t, 1.0, testutil.ToFloat64(m.FailOpen))
	require.Equal(t, 2.0, testutil.ToFloat64(m.FailClosed))
	require.Equal(t, 3.0, testutil.ToFloat64(m.StoreErrors.WithLabelValues("admit")))
	require.Equal(t, 1.0, testutil.ToFloat64(m.StoreErrors.WithLabelValues("settle")))
}

func TestAHungStoreCostsARequestOnlyTheAdmitTimeout(t *testing.T) {
	// A server that accepts connections and never answers.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { _ = conn.Close() })
		}
	}()
	c := redis.NewClient(&redis.Options{Addr: l.Addr().String(), ContextTimeoutEnabled: true, MaxRetries: -1,
		ReadTimeout: time.Minute, Protocol: 2, DisableIdentity: true})
	t.Cleanup(func() { _ = c.Close() })
	g := governor.New(store.NewRedis(c, store.RedisOptions{}), governor.Options{
		AdmitTimeout: 100 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	req := chatReq("u1", 0)
	req.Route = &config.Route{Name: "team/r", RateLimits: []config.RateLimit{
		{Name: "rpm", Per: config.PerUser, Algorithm: config.AlgorithmTokenBucket, Requests: 1, Window: time.Minute, FailMode: config.FailClosed}}}
	start := time.Now()
	_, err = g.Admit(t.Context(), nil, req)
	require.ErrorIs(t, err, governor.ErrStoreUnavailable)
	require.Less(t, time.Since(start), 2*time.Second, "the admit timeout, not the socket's minute")
}

func TestARequestWithoutUserOrOrgIsRefused(t *testing.T) {
	g, _ := newGov(store.NewMemory(store.MemoryOptions{}), nil)
	_, err := g.Admit(t.Context(), nil, &governor.Request{Identity: governor.Identity{User: "u1"}})
	require.ErrorIs(t, err, governor.ErrIdentityRequired)
}

func TestCostsBreakDownAndForecastTheMonth(t *testing.T) {
	stores(t, func(t *testing.T, st store.Store, clock *storetest.FakeClock) {
		g, _ := newGov(st, clock)
		// $1 per hour for the 48 hours before 2026-11-25 10:00 UTC, alternating users and models.
		clock.Set(storetest.Start.Add(-48 * time.Hour))
		for i := range 48 {
			req := chatReq([]string{"alice", "bob"}[i%2], usd("1"))
			req.Model, req.Provider = []string{"gpt-4o", "claude"}[i%2], []string{"team/openai", "team/anthropic"}[i%2]
			d, err := g.Admit(t.Context(), nil, req)
			require.NoError(t, err)
			require.NoError(t, g.Settle(t.Context(), req, d.Ticket, charge(usd("1"), 10, 10)))
			clock.Advance(time.Hour)
		}
		now := clock.Now()
		tests := []struct {
			name  string
			q     governor.Query
			total money.Nanos
			lines []governor.CostLine
		}{
			{"by model for the org", governor.Query{Org: "o1", GroupBy: "model"}, usd("48"), []governor.CostLine{
				{Key: "claude", Cost: usd("24"), Requests: 24, Tokens: 480}, {Key: "gpt-4o", Cost: usd("24"), Requests: 24, Tokens: 480}}},
			{"by user over the last day", governor.Query{Org: "o1", GroupBy: "user", From: now.Add(-24 * time.Hour)}, usd("24"), []governor.CostLine{
				{Key: "alice", Cost: usd("12"), Requests: 12, Tokens: 240}, {Key: "bob", Cost: usd("12"), Requests: 12, Tokens: 240}}},
			{"by provider for one user across orgs", governor.Query{User: "alice", GroupBy: "provider"}, usd("24"), []governor.CostLine{
				{Key: "team/openai", Cost: usd("24"), Requests: 24, Tokens: 480}}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				rep, err := g.Costs(t.Context(), tc.q)
				require.NoError(t, err)
				require.Equal(t, tc.total, rep.Total)
				require.Equal(t, tc.lines, rep.Breakdown)
				require.Equal(t, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), rep.PeriodEnd)
			})
		}
		// A steady $1/h: whatever the weights, the run rate is about $1/h (the current hour, one
		// minute old by the method's floor and still without usage, pulls it down by 0.2%); 48h of
		// November so far.
		rep, err := g.Costs(t.Context(), governor.Query{Org: "o1"})
		require.NoError(t, err)
		hoursLeft := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC).Sub(now).Hours()
		want := usd("48") + money.Nanos(hoursLeft)*usd("1")
		require.InEpsilon(t, float64(want), float64(rep.Projected), 0.003)
		require.Less(t, rep.Projected, want)

		_, err = g.Costs(t.Context(), governor.Query{Org: "o1", GroupBy: "color"})
		require.ErrorIs(t, err, governor.ErrInvalidQuery)
	})
}

// Org names are free-form: an org called "global" is reported on its own and counted once in
// the totals across orgs.
func TestAnOrgNamedGlobalIsReportedOnItsOwnAndCountedOnce(t *testing.T) {
	stores(t, func(t *testing.T, st store.Store, clock *storetest.FakeClock) {
		g, _ := newGov(st, clock)
		for org, cost := range map[string]string{store.GlobalTag: "2", "o1": "3"} {
			req := chatReq("alice", usd(cost))
			req.Org = org
			d, err := g.Admit(t.Context(), nil, req)
			require.NoError(t, err)
			require.NoError(t, g.Settle(t.Context(), req, d.Ticket, charge(usd(cost), 10, 10)))
		}
		for q, want := range map[governor.Query]money.Nanos{{Org: store.GlobalTag}: usd("2"), {Org: "o1"}: usd("3"), {}: usd("5")} {
			rep, err := g.Costs(t.Context(), q)
			require.NoError(t, err)
			require.Equal(t, want, rep.Total, "costs of org %q", q.Org)
			u, err := g.Usage(t.Context(), nil, q)
			require.NoError(t, err)
			require.Equal(t, want, u.Cost, "usage of org %q", q.Org)
		}
	})
}

func TestLimitsAcrossClusterSlotsRefuseWithoutReservingInTheOtherSlot(t *testing.T) {
	st, clock := storetest.NewRedisStore(true)(t) // one call per hash tag, as on a Redis Cluster
	g, _ := newGov(st, clock)
	snap := &config.Snapshot{Budgets: []config.Budget{userBudget("daily", "1", config.ActionBlock)}}
	route := &config.Route{Name: "team/chat", RateLimits: []config.RateLimit{
		{Name: "model", Per: config.PerModel, Algorithm: config.AlgorithmSlidingWindow, Requests: 1, Window: time.Minute}}}
	req := chatReq("u1", usd("0.25"))
	req.Route = route
	_, err := g.Admit(t.Context(), snap, req) // {global}: model limit; {u:u1}: the user's budget
	require.NoError(t, err)

	req2 := chatReq("u1", usd("0.25"))
	req2.Route = route
	_, err = g.Admit(t.Context(), snap, req2)
	var de *governor.DeniedError
	require.ErrorAs(t, err, &de)
	require.Equal(t, governor.DeniedByRateLimit, de.Kind, "the unevaluated budget is not a budget refusal")
	require.Equal(t, time.Minute, de.RetryAfter)

	rep, err := g.Usage(t.Context(), snap, governor.Query{User: "u1", Org: "o1"})
	require.NoError(t, err)
	require.Equal(t, usd("0.25"), rep.Budgets[0].Reserved, "only the admitted request holds a reservation")
}

func TestBudgetReportsListSubjectsSpendAndWhoIsOver(t *testing.T) {
	stores(t, func(t *testing.T, st store.Store, clock *storetest.FakeClock) {
		g, _ := newGov(st, clock)
		snap := &config.Snapshot{Budgets: []config.Budget{
			userBudget("each-user", "0.002", config.ActionBlock),
			{Name: "team/org", Scope: config.ScopeOrg, Subject: "o1", Action: config.ActionAlert, TimeZone: "UTC",
				Limits: []config.BudgetLimit{{Period: config.PeriodMonthly, Limit: usd("10")}}},
		}}
		spend := func(user, org string, cost string) {
			req := chatReq(user, usd(cost))
			req.Org = org
			d, err := g.Admit(t.Context(), snap, req)
			require.NoError(t, err)
			require.NoError(t, g.Settle(t.Context(), req, d.Ticket, charge(usd(cost), 1, 1)))
		}
		clock.Set(storetest.Start.Add(-24 * time.Hour)) // yesterday's spend is another period
		spend("u3", "o1", "0.002")
		clock.Set(storetest.Start)
		spend("u1", "o1", "0.002")
		spend("u2", "o2", "0.001")

		reports, err := g.(governor.BudgetReporter).BudgetReports(t.Context(), snap)
		require.NoError(t, err)
		require.Len(t, reports, 2)
		users := reports[0]
		require.Equal(t, "team/each-user", users.Name)
		require.Len(t, users.Statuses, 2)
		require.Equal(t, "u1", users.Statuses[0].Subject)
		require.Equal(t, usd("0.002"), users.Statuses[0].Spent)
		require.Equal(t, "u2", users.Statuses[1].Subject)
		require.Equal(t, usd("0.001"), users.Statuses[1].Remaining)
		require.Equal(t, []string{"u1"}, users.OverBudget)

		org := reports[1]
		require.Len(t, org.Statuses, 1)
		require.Equal(t, "o1", org.Statuses[0].Subject)
		require.Equal(t, usd("0.004"), org.Statuses[0].Spent, "the monthly period includes yesterday")
		require.Empty(t, org.OverBudget)
		require.Greater(t, org.Statuses[0].Forecast, org.Statuses[0].Spent, "spend continues at the run rate")
	})
}

func TestProviderQuotasHoldAcrossCallersAndSayWhenThereIsRoom(t *testing.T) {
	stores(t, func(t *testing.T, st store.Store, clock *storetest.FakeClock) {
		g, _ := newGov(st, clock)
		pl := g.(governor.ProviderLimiter)
		p := &config.Provider{Name: "team/openai", Limits: config.ProviderLimits{RequestsPerMinute: 3, TokensPerMinute: 1000}}
		tests := []struct {
			name   string
			tokens int64
			ok     bool
			wait   time.Duration
		}{
			{"a first call fits", 400, true, 0},
			{"a second call fits", 400, true, 0},
			{"a call over the token quota waits for the first to leave the window", 400, false, time.Minute},
			{"a small call still fits", 100, true, 0},
			{"a fourth call is over the request quota", 1, false, time.Minute},
		}
		for _, tc := range tests {
			ok, wait, err := pl.TakeProvider(t.Context(), p, tc.tokens)
			require.NoError(t, err, tc.name)
			require.Equal(t, tc.ok, ok, tc.name)
			require.Equal(t, tc.wait, wait, tc.name)
		}
		ok, _, err := pl.TakeProvider(t.Context(), &config.Provider{Name: "team/local"}, 1<<40)
		require.NoError(t, err)
		require.True(t, ok, "a provider without limits always has room")
		clock.Advance(time.Minute)
		ok, _, err = pl.TakeProvider(t.Context(), p, 1000)
		require.NoError(t, err)
		require.True(t, ok)
	})
}

func TestAUsersBudgetAndLimitHoldWhateverOrgTheRequestNames(t *testing.T) {
	cases := map[string]storetest.NewStoreFunc{
		"memory":                            storetest.NewMemoryStore,
		"one redis, one call":               storetest.NewRedisStore(false),
		"redis split by slot, as a cluster": storetest.NewRedisStore(true),
	}
	for name, newStore := range cases {
		t.Run(name, func(t *testing.T) {
			st, clock := newStore(t)
			g, _ := newGov(st, clock)
			snap := &config.Snapshot{Budgets: []config.Budget{
				userBudget("each-user", "0.002", config.ActionBlock),
				{Name: "team/orgs", Scope: config.ScopeOrg, Subject: config.AnySubject, Action: config.ActionBlock,
					TimeZone: "UTC", Limits: []config.BudgetLimit{{Period: config.PeriodDaily, Limit: usd("1")}}},
			}}
			budgetCall := func(org string) error {
				req := chatReq("dave", usd("0.001"))
				req.Org = org
				d, err := g.Admit(t.Context(), snap, req)
				if err != nil {
					return err
				}
				require.NoError(t, g.Settle(t.Context(), req, d.Ticket, charge(usd("0.001"), 1, 1)))
				return nil
			}
			require.NoError(t, budgetCall("org-0"))
			require.NoError(t, budgetCall("org-1"))
			var de *governor.DeniedError
			require.ErrorAs(t, budgetCall("org-2"), &de, "a third org gives dave no fresh budget")
			require.Equal(t, governor.DeniedByBudget, de.Kind)

			rep, err := g.Usage(t.Context(), snap, governor.Query{User: "dave"})
			require.NoError(t, err)
			require.Len(t, rep.Budgets, 1, "without an org only the user's budget applies")
			require.Equal(t, usd("0.002"), rep.Budgets[0].Spent, "the spend of both orgs")
			reports, err := g.(governor.BudgetReporter).BudgetReports(t.Context(), snap)
			require.NoError(t, err)
			require.Equal(t, []string{"dave"}, reports[0].OverBudget)
			require.Len(t, reports[1].Statuses, 2, "each org still has its own budget")

			route := &config.Route{Name: "team/chat", RateLimits: []config.RateLimit{{Name: "per-user", Per: config.PerUser,
				Algorithm: config.AlgorithmSlidingWindow, Requests: 2, Window: time.Minute, FailMode: config.FailClosed}}}
			limitCall := func(org string) error {
				req := chatReq("erin", 0)
				req.Org, req.Route = org, route
				_, err := g.Admit(t.Context(), nil, req)
				return err
			}
			require.NoError(t, limitCall("org-0"))
			require.NoError(t, limitCall("org-1"))
			require.ErrorAs(t, limitCall("org-2"), &de, "a third org gives erin no fresh limit")
			require.Equal(t, governor.DeniedByRateLimit, de.Kind)
		})
	}
}

func TestCheckpointsChargeAStreamAsItGoesAndSettleChargesOnlyTheRemainder(t *testing.T) {
	stores(t, func(t *testing.T, st store.Store, clock *storetest.FakeClock) {
		g, m := newGov(st, clock)
		snap := &config.Snapshot{Budgets: []config.Budget{userBudget("daily", "1", config.ActionBlock)}}
		req := chatReq("u1", usd("0.4"))
		d, err := g.Admit(t.Context(), snap, req)
		require.NoError(t, err)
		report := func() (*governor.UsageReport, governor.BudgetStatus) {
			rep, err := g.Usage(t.Context(), snap, governor.Query{User: "u1", Org: "o1"})
			require.NoError(t, err)
			require.Len(t, rep.Budgets, 1)
			return rep, rep.Budgets[0]
		}

		require.NoError(t, g.Checkpoint(t.Context(), req, d.Ticket, charge(usd("0.1"), 100, 50)))
		rep, b := report()
		require.Equal(t, int64(1), rep.Requests, "a stream counts as a request from its first checkpoint")
		require.Equal(t, int64(150), rep.Tokens)
		require.Equal(t, usd("0.1"), rep.Cost)
		require.Equal(t, usd("0.1"), b.Spent)
		require.Equal(t, usd("0.3"), b.Reserved, "the reservation shrank by what was charged")
		require.Equal(t, usd("0.6"), b.Remaining)

		clock.Advance(time.Second)
		require.NoError(t, g.Checkpoint(t.Context(), req, d.Ticket, charge(usd("0.25"), 100, 200)))
		// The provider reports slightly less than the tokenizer counted while streaming.
		require.NoError(t, g.Settle(t.Context(), req, d.Ticket, charge(usd("0.23"), 100, 190)))
		rep, b = report()
		require.Equal(t, int64(1), rep.Requests)
		require.Equal(t, int64(290), rep.Tokens, "the ledger holds exactly the reported usage")
		require.Equal(t, usd("0.23"), rep.Cost)
		require.Equal(t, usd("0.23"), b.Spent)
		require.Equal(t, money.Nanos(0), b.Reserved)
		require.Equal(t, usd("0.77"), b.Remaining)

		err = g.Checkpoint(t.Context(), req, d.Ticket, charge(usd("0.3"), 100, 250))
		require.ErrorIs(t, err, governor.ErrTicketSettled)
		rep, _ = report()
		require.Equal(t, usd("0.23"), rep.Cost, "a checkpoint after the settle charges nothing")
		require.Equal(t, 2.0, testutil.ToFloat64(m.Checkpoints.WithLabelValues("ok")))
	})
}

func TestCheckpointsRacingTheSettleNeverChargeTwice(t *testing.T) {
	stores(t, func(t *testing.T, st store.Store, clock *storetest.FakeClock) {
		g, _ := newGov(st, clock)
		snap := &config.Snapshot{Budgets: []config.Budget{userBudget("daily", "10", config.ActionBlock)}}
		const streams = 20
		var wg sync.WaitGroup
		for i := range streams {
			req := chatReq("u1", usd("0.5"))
			d, err := g.Admit(t.Context(), snap, req)
			require.NoError(t, err)
			for j := range 5 {
				wg.Go(func() {
					err := g.Checkpoint(t.Context(), req, d.Ticket, charge(money.Nanos(j+1)*usd("0.01"), 10, int64(j+1)*10))
					if err != nil && !errors.Is(err, governor.ErrTicketSettled) {
						t.Errorf("checkpoint %d/%d: %v", i, j, err)
					}
				})
			}
			wg.Go(func() {
				if err := g.Settle(t.Context(), req, d.Ticket, charge(usd("0.03"), 10, 30)); err != nil {
					t.Errorf("settle %d: %v", i, err)
				}
			})
		}
		wg.Wait()
		rep, err := g.Usage(t.Context(), snap, governor.Query{User: "u1", Org: "o1"})
		require.NoError(t, err)
		require.Equal(t, int64(streams), rep.Requests)
		require.Equal(t, int64(streams*40), rep.Tokens)
		require.Equal(t, money.Nanos(streams)*usd("0.03"), rep.Cost, "whatever ran first, each stream ends at its settled cost")
		require.Equal(t, money.Nanos(streams)*usd("0.03"), rep.Budgets[0].Spent)
		require.Equal(t, money.Nanos(0), rep.Budgets[0].Reserved)
	})
}
