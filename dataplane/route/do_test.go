package route

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/providers"
)

// upstreamError classifies itself like *providers.Error does, without being one: Do works
// with any error that has a Retryable method.
type upstreamError struct{ status int }

func (e *upstreamError) Error() string   { return "upstream failed" }
func (e *upstreamError) Retryable() bool { return e.status == 429 || e.status >= 500 }

var (
	errServer     = &upstreamError{status: 500}
	errBadRequest = &upstreamError{status: 400}
)

// rig is a planner with a fake clock and a sleeper that records waits instead of sleeping.
type rig struct {
	clock   *fakeClock
	health  *Health
	planner *Planner
	waits   []time.Duration
}

func newRig(t *testing.T) *rig {
	t.Helper()
	r := &rig{clock: newFakeClock()}
	r.health = NewHealth(HealthOptions{Now: r.clock.Now, FailureThreshold: 3, Cooldown: 30 * time.Second})
	r.planner = NewPlanner(r.health, PlannerOptions{IntN: seeded(), Sleep: func(ctx context.Context, d time.Duration) error {
		r.waits = append(r.waits, d)
		return ctx.Err()
	}})
	return r
}

func failoverRoute(attempts int32) *Resolved {
	res := resolved(config.StrategyFailover,
		Target{Provider: "ns/primary", Model: "m", Priority: 0},
		Target{Provider: "ns/secondary", Model: "m", Priority: 1},
	)
	res.Route.Retries = config.Retries{Attempts: attempts, Backoff: 100 * time.Millisecond}
	return res
}

// upstreams answers per target key; a missing key serves.
func upstreams(calls *[]string, fail map[string]error) func(context.Context, *Target) error {
	return func(_ context.Context, t *Target) error {
		*calls = append(*calls, t.Key)
		return fail[t.Key]
	}
}

func TestDoServesFromTheSecondaryWhenThePrimaryFailsRetryably(t *testing.T) {
	cases := map[string]error{
		"the primary answers 500":                        &providers.Error{Kind: providers.KindServer, Status: 500},
		"the primary answers 429":                        &providers.Error{Kind: providers.KindRateLimited, Status: 429},
		"the primary times out":                          &providers.Error{Kind: providers.KindTimeout},
		"the primary refuses the connection":             fmt.Errorf("failed to chat: %w", &providers.Error{Kind: providers.KindConnection}),
		"a non-provider error that says it is retryable": &upstreamError{status: 502},
	}
	for name, failure := range cases {
		t.Run(name, func(t *testing.T) {
			r := newRig(t)
			var calls []string
			err := Do(t.Context(), r.planner.Plan(failoverRoute(1)), upstreams(&calls, map[string]error{"ns/primary/m": failure}))
			require.NoError(t, err)
			require.Equal(t, []string{"ns/primary/m", "ns/secondary/m"}, calls)
			require.Len(t, r.waits, 1)
		})
	}
}

func TestDoStopsAtANonRetryableError(t *testing.T) {
	cases := map[string]error{
		"a bad request":        &providers.Error{Kind: providers.KindBadRequest, Status: 400},
		"a refused key":        &providers.Error{Kind: providers.KindAuth, Status: 401},
		"an unsupported call":  &providers.Error{Kind: providers.KindUnsupported},
		"a non-provider error": errBadRequest,
	}
	for name, failure := range cases {
		t.Run(name, func(t *testing.T) {
			r := newRig(t)
			var calls []string
			err := Do(t.Context(), r.planner.Plan(failoverRoute(3)), upstreams(&calls, map[string]error{"ns/primary/m": failure}))
			require.ErrorIs(t, err, failure)
			require.Equal(t, []string{"ns/primary/m"}, calls)
		})
	}
}

func TestDoStopsAtAnErrorThatIsNotAnUpstreamError(t *testing.T) {
	r := newRig(t)
	var calls []string
	ours := errors.New("failed to encode request")
	err := Do(t.Context(), r.planner.Plan(failoverRoute(3)), upstreams(&calls, map[string]error{"ns/primary/m": ours}))
	require.ErrorIs(t, err, ours)
	require.Len(t, calls, 1)
}

func TestDoReturnsTheLastErrorWhenAttemptsRunOut(t *testing.T) {
	r := newRig(t)
	var calls []string
	last := &upstreamError{status: 503}
	err := Do(t.Context(), r.planner.Plan(failoverRoute(2)), upstreams(&calls, map[string]error{"ns/primary/m": last, "ns/secondary/m": errServer}))
	require.ErrorIs(t, err, last)
	// Three calls wrap around to the primary again.
	require.Equal(t, []string{"ns/primary/m", "ns/secondary/m", "ns/primary/m"}, calls)
}

func TestDoBacksOffExponentiallyWithJitterAndHonoursRetryAfter(t *testing.T) {
	r := newRig(t)
	r.health = NewHealth(HealthOptions{Now: r.clock.Now, FailureThreshold: 10})
	r.planner.health = r.health
	res := resolved(config.StrategyFailover, Target{Provider: "ns/only", Model: "m"})
	res.Route.Retries = config.Retries{Attempts: 4, Backoff: 100 * time.Millisecond}
	n := 0
	err := Do(t.Context(), r.planner.Plan(res), func(context.Context, *Target) error {
		n++
		if n == 4 {
			return fmt.Errorf("failed to call upstream: %w", &providers.Error{Kind: providers.KindRateLimited, Status: 429, RetryAfter: 7 * time.Second})
		}
		return errServer
	})
	require.ErrorIs(t, err, errServer)
	require.Len(t, r.waits, 4)
	for i, base := range []time.Duration{100, 200, 400} {
		base *= time.Millisecond
		require.GreaterOrEqual(t, r.waits[i], base/2, "wait %d", i)
		require.LessOrEqual(t, r.waits[i], base, "wait %d", i)
	}
	require.Equal(t, 7*time.Second, r.waits[3], "Retry-After beats a shorter backoff on the same target")
}

func TestBackoffIsCappedAtMaxBackoff(t *testing.T) {
	planner := NewPlanner(NewHealth(HealthOptions{}), PlannerOptions{MaxBackoff: time.Second})
	res := resolved(config.StrategyFailover, Target{Provider: "p", Model: "m"})
	res.Route.Retries = config.Retries{Attempts: 50, Backoff: time.Second}
	plan := planner.Plan(res)
	for n := 1; n < 50; n++ {
		require.LessOrEqual(t, plan.backoff(n), time.Second)
	}
}

func TestBreakerOpensSkipsThePrimaryAndAProbeClosesIt(t *testing.T) {
	r := newRig(t)
	primaryDown := true
	var calls []string
	run := func() {
		calls = calls[:0]
		err := Do(t.Context(), r.planner.Plan(failoverRoute(1)), func(_ context.Context, tg *Target) error {
			calls = append(calls, tg.Key)
			if tg.Key == "ns/primary/m" && primaryDown {
				return errServer
			}
			return nil
		})
		require.NoError(t, err)
	}

	// Three consecutive failures (the threshold) open the primary's breaker.
	for range 3 {
		run()
		require.Equal(t, []string{"ns/primary/m", "ns/secondary/m"}, calls)
	}
	require.Equal(t, BreakerOpen, r.health.State("ns/primary/m"))

	// While open, traffic skips the primary without calling it.
	run()
	require.Equal(t, []string{"ns/secondary/m"}, calls)
	r.clock.Advance(29 * time.Second)
	run()
	require.Equal(t, []string{"ns/secondary/m"}, calls)

	// After the cooldown, one probe goes through; it fails, so the breaker re-opens.
	r.clock.Advance(time.Second)
	require.Equal(t, BreakerHalfOpen, r.health.State("ns/primary/m"))
	run()
	require.Equal(t, []string{"ns/primary/m", "ns/secondary/m"}, calls)
	require.Equal(t, BreakerOpen, r.health.State("ns/primary/m"))
	run()
	require.Equal(t, []string{"ns/secondary/m"}, calls)

	// Next cooldown: the primary has recovered, the probe succeeds and closes the breaker.
	primaryDown = false
	r.clock.Advance(30 * time.Second)
	run()
	require.Equal(t, []string{"ns/primary/m"}, calls)
	require.Equal(t, BreakerClosed, r.health.State("ns/primary/m"))
	run()
	require.Equal(t, []string{"ns/primary/m"}, calls)
}

func TestHalfOpenLetsExactlyOneProbeThroughConcurrently(t *testing.T) {
	clock := newFakeClock()
	health := NewHealth(HealthOptions{Now: clock.Now, FailureThreshold: 1, Cooldown: time.Second})
	a, ok := health.Acquire("k")
	require.True(t, ok)
	a.Fail()
	clock.Advance(time.Second)

	var granted atomic.Int32
	var probes []Attempt
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			if att, ok := health.Acquire("k"); ok {
				granted.Add(1)
				mu.Lock()
				probes = append(probes, att)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	require.EqualValues(t, 1, granted.Load())
	require.True(t, probes[0].Probe())

	// A cancelled probe frees the slot for the next caller.
	probes[0].Cancel()
	next, ok := health.Acquire("k")
	require.True(t, ok)
	require.True(t, next.Probe())
}

func TestAnUnansweredProbeIsReplacedAfterACooldown(t *testing.T) {
	clock := newFakeClock()
	health := NewHealth(HealthOptions{Now: clock.Now, FailureThreshold: 1, Cooldown: time.Second})
	a, _ := health.Acquire("k")
	a.Fail()
	clock.Advance(time.Second)
	_, ok := health.Acquire("k") // this probe is never reported
	require.True(t, ok)
	_, ok = health.Acquire("k")
	require.False(t, ok)
	clock.Advance(time.Second)
	_, ok = health.Acquire("k")
	require.True(t, ok)
}

func TestDoReportsNoUsableTargetWhenEveryBreakerIsOpen(t *testing.T) {
	r := newRig(t)
	for _, key := range []string{"ns/primary/m", "ns/secondary/m"} {
		for range 3 {
			a, _ := r.health.Acquire(key)
			a.Fail()
		}
	}
	called := false
	err := Do(t.Context(), r.planner.Plan(failoverRoute(2)), func(context.Context, *Target) error {
		called = true
		return nil
	})
	require.ErrorIs(t, err, ErrNoUsableTarget)
	require.False(t, called)
}

func TestAnAnswerWithANonRetryableErrorKeepsTheBreakerClosed(t *testing.T) {
	r := newRig(t)
	for range 10 {
		var calls []string
		_ = Do(t.Context(), r.planner.Plan(failoverRoute(0)), upstreams(&calls, map[string]error{"ns/primary/m": errBadRequest}))
	}
	require.Equal(t, BreakerClosed, r.health.State("ns/primary/m"))
}

func TestDoDoesNotHoldTheCallersCancellationAgainstTheTarget(t *testing.T) {
	r := newRig(t)
	for range 10 {
		ctx, cancel := context.WithCancel(t.Context())
		err := Do(ctx, r.planner.Plan(failoverRoute(1)), func(ctx context.Context, tg *Target) error {
			cancel()
			return &upstreamError{status: 502}
		})
		require.Error(t, err)
	}
	require.Equal(t, BreakerClosed, r.health.State("ns/primary/m"))
	_, known := r.health.Latency("ns/primary/m")
	require.False(t, known)
}

func TestDoStopsWaitingWhenTheContextEnds(t *testing.T) {
	r := newRig(t)
	ctx, cancel := context.WithCancel(t.Context())
	err := Do(ctx, r.planner.Plan(failoverRoute(3)), func(context.Context, *Target) error {
		cancel() // the client leaves during the first call; the error is still the upstream's
		return errServer
	})
	require.ErrorIs(t, err, errServer)
	require.Empty(t, r.waits)
}

func TestHealthSurvivesASnapshotSwap(t *testing.T) {
	r := newRig(t)
	snap := &config.Snapshot{
		Providers: []config.Provider{provider("ns/primary", "openai", model("m", 1, 1)), provider("ns/secondary", "openai", model("m", 1, 1))},
		Routes: []config.Route{{Name: "ns/r", Strategy: config.StrategyFailover, Retries: config.Retries{Attempts: 1},
			Targets: []config.Target{{Provider: "ns/primary", Model: "m"}, {Provider: "ns/secondary", Model: "m", Priority: 1}}}},
	}
	for range 3 {
		a, _ := r.health.Acquire("ns/primary/m")
		a.Fail()
	}
	// A reload compiles a new table; the planner keeps the same Health.
	res, err := NewTable(snap).Resolve(Request{Model: "m", Endpoint: EndpointChat})
	require.NoError(t, err)
	var calls []string
	require.NoError(t, Do(t.Context(), r.planner.Plan(res), upstreams(&calls, nil)))
	require.Equal(t, []string{"ns/secondary/m"}, calls)
}

func BenchmarkPlanAndDoWeighted(b *testing.B) {
	planner := NewPlanner(NewHealth(HealthOptions{}), PlannerOptions{})
	res := resolved(config.StrategyWeighted, Target{Provider: "p", Model: "a", Weight: 3}, Target{Provider: "p", Model: "b", Weight: 1})
	fn := func(context.Context, *Target) error { return nil }
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		if err := Do(ctx, planner.Plan(res), fn); err != nil {
			b.Fatal(err)
		}
	}
}

func TestDoIsSafeUnderConcurrentRequests(t *testing.T) {
	health := NewHealth(HealthOptions{FailureThreshold: 1_000_000})
	planner := NewPlanner(health, PlannerOptions{Sleep: func(context.Context, time.Duration) error { return nil }})
	res := resolved(config.StrategyWeighted, Target{Provider: "p", Model: "a", Weight: 1}, Target{Provider: "p", Model: "b", Weight: 1})
	res.Route.Retries.Attempts = 1
	var served, failedA atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 200 {
				err := Do(t.Context(), planner.Plan(res), func(_ context.Context, tg *Target) error {
					if tg.Model == "a" {
						failedA.Add(1)
						return &upstreamError{status: 503}
					}
					served.Add(1)
					return nil
				})
				if err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	// Every request is served by b, either first or after a's failure.
	require.EqualValues(t, 1600, served.Load())
	require.Positive(t, failedA.Load())
	_, known := health.Latency("p/a")
	require.False(t, known, "a failing target has no latency samples")
}
