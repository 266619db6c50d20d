package route

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/providers"
)

// quotaGate refuses the targets whose key is in full, as a provider account quota would,
// and records every target it was asked about. When a wait is slept, freeAfterWait empties
// full (the quota's window moved on).
type quotaGate struct {
	full          map[string]time.Duration // key → RetryAfter of the refusal
	freeAfterWait bool
	asked         []string
}

func (g *quotaGate) gate(_ context.Context, t *Target) error {
	g.asked = append(g.asked, t.Key)
	if ra, ok := g.full[t.Key]; ok {
		return &providers.Error{Kind: providers.KindRateLimited, Provider: t.Provider, Message: "account quota is full", RetryAfter: ra}
	}
	return nil
}

// gateRig is a rig whose sleeper also lets time pass for the gate.
func gateRig(t *testing.T, g *quotaGate, maxGateWait time.Duration) *rig {
	t.Helper()
	r := &rig{clock: newFakeClock()}
	r.health = NewHealth(HealthOptions{Now: r.clock.Now, FailureThreshold: 3, Cooldown: 30 * time.Second})
	r.planner = NewPlanner(r.health, PlannerOptions{IntN: seeded(), MaxGateWait: maxGateWait,
		Sleep: func(ctx context.Context, d time.Duration) error {
			r.waits = append(r.waits, d)
			r.clock.Advance(d)
			if g.freeAfterWait {
				clear(g.full)
			}
			return ctx.Err()
		}})
	return r
}

func TestAGatedTargetIsSkippedWithoutACallAnAttemptOrABreakerFailure(t *testing.T) {
	g := &quotaGate{full: map[string]time.Duration{"ns/primary/m": 20 * time.Second}}
	r := gateRig(t, g, 0)
	// Ten requests with no retries at all (attempts 1): a gated primary must not use the only
	// attempt, and skipping it ten times must not open its breaker (threshold 3).
	for range 10 {
		var calls []string
		plan := r.planner.Plan(failoverRoute(0))
		plan.Gate = g.gate
		require.NoError(t, Do(t.Context(), plan, upstreams(&calls, nil)))
		require.Equal(t, []string{"ns/secondary/m"}, calls)
	}
	require.Equal(t, BreakerClosed, r.health.State("ns/primary/m"))
	require.Empty(t, r.waits, "a target with room was available: no reason to wait")
	require.Len(t, g.asked, 20)
}

func TestWhenEveryTargetIsGatedDoWaitsOnceOnlyForAShortRetryAfter(t *testing.T) {
	cases := map[string]struct {
		full          map[string]time.Duration
		freeAfterWait bool
		maxGateWait   time.Duration
		deadline      time.Duration // 0: none
		wantWaits     []time.Duration
		wantCalls     []string
		wantRetry     time.Duration // RetryAfter of the returned gate error; 0 = success
	}{
		"room within the bound: wait the smallest RetryAfter and serve from the first target": {
			full:          map[string]time.Duration{"ns/primary/m": 700 * time.Millisecond, "ns/secondary/m": 300 * time.Millisecond},
			freeAfterWait: true,
			wantWaits:     []time.Duration{300 * time.Millisecond},
			wantCalls:     []string{"ns/primary/m"},
		},
		"room only past the bound: refuse at once without a call": {
			full:      map[string]time.Duration{"ns/primary/m": 5 * time.Second, "ns/secondary/m": 2 * time.Second},
			wantRetry: 2 * time.Second,
		},
		"still full after the one wait: refuse": {
			full:      map[string]time.Duration{"ns/primary/m": 400 * time.Millisecond, "ns/secondary/m": 900 * time.Millisecond},
			wantWaits: []time.Duration{400 * time.Millisecond},
			wantRetry: 400 * time.Millisecond,
		},
		"a negative MaxGateWait never waits": {
			full:        map[string]time.Duration{"ns/primary/m": 10 * time.Millisecond, "ns/secondary/m": 10 * time.Millisecond},
			maxGateWait: -1,
			wantRetry:   10 * time.Millisecond,
		},
		"the wait would outlast the request's deadline: refuse": {
			full:      map[string]time.Duration{"ns/primary/m": 800 * time.Millisecond, "ns/secondary/m": 800 * time.Millisecond},
			deadline:  200 * time.Millisecond,
			wantRetry: 800 * time.Millisecond,
		},
		"a refusal without a RetryAfter is not waited for": {
			full:      map[string]time.Duration{"ns/primary/m": 0, "ns/secondary/m": 0},
			wantRetry: 0,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			g := &quotaGate{full: tc.full, freeAfterWait: tc.freeAfterWait}
			r := gateRig(t, g, tc.maxGateWait)
			ctx := t.Context()
			if tc.deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.deadline)
				defer cancel()
			}
			plan := r.planner.Plan(failoverRoute(2))
			plan.Gate = g.gate
			var calls []string
			err := Do(ctx, plan, upstreams(&calls, nil))
			require.Equal(t, tc.wantWaits, r.waits)
			require.Equal(t, tc.wantCalls, calls)
			if tc.wantCalls != nil {
				require.NoError(t, err)
				return
			}
			pe, ok := providers.AsError(err)
			require.True(t, ok, "the gate's own error is returned: %v", err)
			require.Equal(t, providers.KindRateLimited, pe.Kind)
			require.Equal(t, tc.wantRetry, pe.RetryAfter)
			require.Equal(t, BreakerClosed, r.health.State("ns/primary/m"))
			require.Equal(t, BreakerClosed, r.health.State("ns/secondary/m"))
		})
	}
}

func TestAGateErrorThatIsNotRetryableEndsDoWithoutACall(t *testing.T) {
	r := newRig(t)
	errOurs := errors.New("quota check misconfigured")
	plan := r.planner.Plan(failoverRoute(2))
	plan.Gate = func(context.Context, *Target) error { return errOurs }
	var calls []string
	err := Do(t.Context(), plan, upstreams(&calls, nil))
	require.ErrorIs(t, err, errOurs)
	require.Empty(t, calls)
}

func TestTheGateIsNotAskedForATargetWhoseBreakerIsOpen(t *testing.T) {
	g := &quotaGate{}
	r := gateRig(t, g, 0)
	for range 3 {
		a, _ := r.health.Acquire("ns/primary/m")
		a.Fail()
	}
	plan := r.planner.Plan(failoverRoute(1))
	plan.Gate = g.gate
	var calls []string
	require.NoError(t, Do(t.Context(), plan, upstreams(&calls, nil)))
	require.Equal(t, []string{"ns/secondary/m"}, calls)
	require.Equal(t, []string{"ns/secondary/m"}, g.asked, "an open breaker must not take from the primary's quota")
}

func TestAGatedTargetAndAFailingTargetReturnTheLastError(t *testing.T) {
	g := &quotaGate{full: map[string]time.Duration{"ns/primary/m": 30 * time.Second}}
	r := gateRig(t, g, 0)
	plan := r.planner.Plan(failoverRoute(1))
	plan.Gate = g.gate
	var calls []string
	err := Do(t.Context(), plan, upstreams(&calls, map[string]error{"ns/secondary/m": errServer}))
	require.Error(t, err)
	// Primary gated, secondary failed (attempt 1), primary gated, secondary failed (attempt 2).
	require.Equal(t, []string{"ns/secondary/m", "ns/secondary/m"}, calls)
	require.ErrorIs(t, err, errServer)
	require.Equal(t, []string{"ns/primary/m", "ns/secondary/m", "ns/primary/m", "ns/secondary/m"}, g.asked)
}
