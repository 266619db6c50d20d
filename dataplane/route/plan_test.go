package route

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/config"
)

// fakeClock is a clock tests move by hand; no test sleeps.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func seeded() func(int) int { return rand.New(rand.NewPCG(1, 2)).IntN }

func resolved(strategy string, targets ...Target) *Resolved {
	for i := range targets {
		targets[i].Key = targets[i].Provider + "/" + targets[i].Model
	}
	return &Resolved{Route: &config.Route{Name: "ns/r", Strategy: strategy}, Targets: targets}
}

func keys(p *Plan) []string {
	out := make([]string, len(p.Targets))
	for i, t := range p.Targets {
		out[i] = t.Key
	}
	return out
}

func TestWeightedFirstPicksFollowTheWeightsWithinThreePercent(t *testing.T) {
	planner := NewPlanner(NewHealth(HealthOptions{}), PlannerOptions{IntN: seeded()})
	res := resolved(config.StrategyWeighted,
		Target{Provider: "p", Model: "a", Weight: 70},
		Target{Provider: "p", Model: "b", Weight: 20},
		Target{Provider: "p", Model: "c", Weight: 10},
	)
	const picks = 10_000
	counts := map[string]int{}
	for range picks {
		counts[planner.Plan(res).Targets[0].Key]++
	}
	for key, weight := range map[string]float64{"p/a": 0.70, "p/b": 0.20, "p/c": 0.10} {
		require.InDelta(t, weight, float64(counts[key])/picks, 0.03, "share of %s", key)
	}
}

func TestPlansOrderTargetsByStrategy(t *testing.T) {
	cheap := Target{Provider: "p", Model: "cheap", Weight: 1, Priority: 2, Priced: true, InputPerMillion: 1, OutputPerMillion: 2}
	dear := Target{Provider: "p", Model: "dear", Weight: 5, Priority: 1, Priced: true, InputPerMillion: 10, OutputPerMillion: 20}
	unpriced := Target{Provider: "p", Model: "unpriced", Weight: 3, Priority: 0}
	cases := map[string]struct {
		res  *Resolved
		want []string
	}{
		"failover goes by priority ascending": {
			res: resolved(config.StrategyFailover, cheap, dear, unpriced), want: []string{"p/unpriced", "p/dear", "p/cheap"},
		},
		"failover breaks priority ties by weight descending": {
			res: resolved(config.StrategyFailover,
				Target{Provider: "p", Model: "light", Weight: 1}, Target{Provider: "p", Model: "heavy", Weight: 9}),
			want: []string{"p/heavy", "p/light"},
		},
		"lowest-cost puts the cheaper first and unpriced last": {
			res: resolved(config.StrategyLowestCost, unpriced, dear, cheap), want: []string{"p/cheap", "p/dear", "p/unpriced"},
		},
		"weighted with one heavy target puts the others after it by weight": {
			res: resolved(config.StrategyWeighted,
				Target{Provider: "p", Model: "w0", Weight: 0}, Target{Provider: "p", Model: "w1", Weight: 1}, Target{Provider: "p", Model: "w1000000", Weight: 1_000_000}),
			want: []string{"p/w1000000", "p/w1", "p/w0"},
		},
	}
	planner := NewPlanner(NewHealth(HealthOptions{}), PlannerOptions{IntN: seeded()})
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			require.Equal(t, tc.want, keys(planner.Plan(tc.res)))
		})
	}
}

func TestPlanAllowsOneCallPlusTheRetryAttempts(t *testing.T) {
	res := resolved(config.StrategyFailover, Target{Provider: "p", Model: "a"})
	res.Route.Retries = config.Retries{Attempts: 2, Backoff: time.Second}
	plan := NewPlanner(NewHealth(HealthOptions{}), PlannerOptions{}).Plan(res)
	require.Equal(t, 3, plan.Attempts)
	require.Equal(t, time.Second, plan.Backoff)
}

func TestLeastLatencyExploresUnknownTargetsThenPrefersTheFaster(t *testing.T) {
	clock := newFakeClock()
	health := NewHealth(HealthOptions{Now: clock.Now})
	planner := NewPlanner(health, PlannerOptions{IntN: seeded(), ExploreRate: -1})
	res := resolved(config.StrategyLeastLatency, Target{Provider: "p", Model: "slow"}, Target{Provider: "p", Model: "fast"})
	latency := map[string]time.Duration{"p/slow": 800 * time.Millisecond, "p/fast": 120 * time.Millisecond}
	call := func(plan *Plan) string {
		var served string
		require.NoError(t, Do(t.Context(), plan, func(_ context.Context, tg *Target) error {
			clock.Advance(latency[tg.Key])
			served = tg.Key
			return nil
		}))
		return served
	}

	// Neither is known: policy order, then the still-unknown one is explored.
	require.Equal(t, "p/slow", call(planner.Plan(res)))
	require.Equal(t, "p/fast", call(planner.Plan(res)))
	for range 20 {
		require.Equal(t, "p/fast", call(planner.Plan(res)))
	}
	fast, ok := health.Latency("p/fast")
	require.True(t, ok)
	require.Equal(t, 120*time.Millisecond, fast)

	// The fast one slows down past the other: the EWMA follows and traffic moves.
	latency["p/fast"] = 3 * time.Second
	for range 5 {
		call(planner.Plan(res))
	}
	require.Equal(t, []string{"p/slow", "p/fast"}, keys(planner.Plan(res)))
}

func TestLeastLatencyExplorationSometimesTriesAnotherTarget(t *testing.T) {
	health := NewHealth(HealthOptions{})
	planner := NewPlanner(health, PlannerOptions{IntN: seeded(), ExploreRate: 0.1})
	res := resolved(config.StrategyLeastLatency, Target{Provider: "p", Model: "slow"}, Target{Provider: "p", Model: "fast"})
	a, _ := health.Acquire("p/slow")
	a.Succeed(time.Second)
	a, _ = health.Acquire("p/fast")
	a.Succeed(time.Millisecond)
	slowFirst := 0
	for range 10_000 {
		if planner.Plan(res).Targets[0].Key == "p/slow" {
			slowFirst++
		}
	}
	// Exploration picks uniformly among both, so the slow one leads about 5% of the time.
	require.InDelta(t, 0.05, float64(slowFirst)/10_000, 0.01)
}

// TestPlanOfASmallRouteIsOneAllocation holds the plan of a one- or two-target route (nearly
// every route) to one allocation for the plan and its order, and a larger one to its own order.
func TestPlanOfASmallRouteIsOneAllocation(t *testing.T) {
	planner := NewPlanner(NewHealth(HealthOptions{}), PlannerOptions{})
	a, b, c := Target{Provider: "p", Model: "a"}, Target{Provider: "p", Model: "b", Priority: 1}, Target{Provider: "p", Model: "c"}
	for n, res := range []*Resolved{resolved(config.StrategyFailover, a), resolved(config.StrategyFailover, b, a)} {
		require.Equal(t, 1.0, testing.AllocsPerRun(100, func() { _ = planner.Plan(res) }))
		plan := planner.Plan(res)
		require.Len(t, plan.Targets, n+1)
		require.Equal(t, n+1, cap(plan.Targets), "appending to one plan's order must not write into another's")
	}
	plan := planner.Plan(resolved(config.StrategyFailover, b, a, c))
	require.Equal(t, []string{"p/a", "p/c", "p/b"}, keys(plan))
}
