package route

import (
	"cmp"
	"context"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/nself-org/ai-orchestration/dataplane/config"
)

// Defaults of [PlannerOptions].
const (
	DefaultMaxBackoff  = 10 * time.Second
	DefaultExploreRate = 0.02
	// DefaultMaxGateWait is the longest [Do] waits for a gated target to have room again.
	DefaultMaxGateWait = time.Second
)

// PlannerOptions tunes a [Planner]. Zero fields take defaults.
type PlannerOptions struct {
	// IntN returns a uniform int in [0, n); default math/rand/v2.IntN (safe for concurrent use).
	// Tests inject a seeded source.
	IntN func(n int) int
	// ExploreRate is the probability that least-latency puts a random target first, so that a
	// target that was slow once is measured again. Default [DefaultExploreRate]; negative
	// disables exploration.
	ExploreRate float64
	// MaxBackoff caps the wait between attempts. Default [DefaultMaxBackoff].
	MaxBackoff time.Duration
	// Sleep waits d or until ctx ends (then returns ctx's error). Default: a timer. Tests inject
	// one that records the waits and returns at once.
	Sleep func(ctx context.Context, d time.Duration) error
	// MaxGateWait is the longest [Do] waits, once per request, when every target is refused by
	// the plan's Gate: a quota with room within this long is worth a short wait rather than a
	// refusal. Default [DefaultMaxGateWait]; negative never waits.
	MaxGateWait time.Duration
}

// Planner orders the targets of a resolved route for one request. One Planner serves every
// request and every snapshot; it is safe for concurrent use if IntN is.
type Planner struct {
	health     *Health
	intN       func(int) int
	explore    float64
	maxBackoff time.Duration
	sleep      func(context.Context, time.Duration) error
	maxGate    time.Duration
}

// NewPlanner returns a Planner that consults and feeds h (a fresh [Health] when nil).
func NewPlanner(h *Health, opts PlannerOptions) *Planner {
	if h == nil {
		h = NewHealth(HealthOptions{})
	}
	p := &Planner{health: h, intN: opts.IntN, explore: opts.ExploreRate, maxBackoff: opts.MaxBackoff, sleep: opts.Sleep,
		maxGate: opts.MaxGateWait}
	if p.intN == nil {
		p.intN = rand.IntN
	}
	if p.explore == 0 {
		p.explore = DefaultExploreRate
	}
	if p.maxBackoff <= 0 {
		p.maxBackoff = DefaultMaxBackoff
	}
	if p.sleep == nil {
		p.sleep = sleepCtx
	}
	if p.maxGate == 0 {
		p.maxGate = DefaultMaxGateWait
	}
	return p
}

// Health returns the Health the planner uses.
func (p *Planner) Health() *Health { return p.health }

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Plan is the order in which one request tries targets, and its retry budget. Run it with [Do].
type Plan struct {
	// Targets in the order to try; [Do] wraps around when attempts outnumber targets.
	Targets []*Target
	// Attempts is the total number of calls allowed: 1 + the route's retries.attempts.
	Attempts int
	// Backoff is the base wait before a retry; it doubles per retry (with jitter, capped).
	Backoff time.Duration
	// Gate, when set, is asked by [Do] before each call whether target t may be called now
	// (e.g. whether the upstream account's quota has room, taking one request from it when
	// it does). A retryable error (a Retryable method returning true, such as a
	// *providers.Error of KindRateLimited with RetryAfter) skips the target without a call,
	// without counting against its breaker or the plan's Attempts; any other error ends Do
	// with it. Gate must be safe to call again for the same target.
	Gate func(ctx context.Context, t *Target) error

	planner *Planner
}

// Plan orders res's targets by the route's strategy:
//   - weighted (also the default for an empty strategy): the first target is drawn at random
//     with probability weight/Σweights (all weights 0 = equal chances); the others follow by
//     weight, highest first, as fallbacks;
//   - failover: priority ascending, ties by weight descending;
//   - least-latency: targets never observed first (exploration), then by latency EWMA
//     ascending; with probability ExploreRate a random target is moved to the front;
//   - lowest-cost: by input+output price per million ascending, ties by priority; targets
//     whose model has no price in the snapshot go last.
//
// Remaining ties keep policy order, so plans are deterministic given the random source.
func (p *Planner) Plan(res *Resolved) *Plan {
	n := len(res.Targets)
	var (
		pl    *Plan
		order []*Target
	)
	if n <= len(inlinePlan{}.order) {
		// Most routes have a target or two: the plan and its order then take one allocation.
		ip := new(inlinePlan)
		pl, order = &ip.plan, ip.order[:n:n]
	} else {
		pl, order = new(Plan), make([]*Target, n)
	}
	for i := range res.Targets {
		order[i] = &res.Targets[i]
	}
	switch res.Route.Strategy {
	case config.StrategyFailover:
		slices.SortStableFunc(order, byPriority)
	case config.StrategyLeastLatency:
		p.orderLeastLatency(order)
	case config.StrategyLowestCost:
		slices.SortStableFunc(order, byCost)
	default:
		p.orderWeighted(order)
	}
	attempts := 1 + int(max(res.Route.Retries.Attempts, 0))
	*pl = Plan{Targets: order, Attempts: attempts, Backoff: res.Route.Retries.Backoff, planner: p}
	return pl
}

// inlinePlan is a plan with room for its order.
type inlinePlan struct {
	plan  Plan
	order [2]*Target
}

func byPriority(a, b *Target) int {
	if c := cmp.Compare(a.Priority, b.Priority); c != 0 {
		return c
	}
	return cmp.Compare(b.Weight, a.Weight)
}

func byWeightDesc(a, b *Target) int { return cmp.Compare(b.Weight, a.Weight) }

func byCost(a, b *Target) int {
	if a.Priced != b.Priced {
		if a.Priced {
			return -1
		}
		return 1
	}
	if c := cmp.Compare(a.InputPerMillion+a.OutputPerMillion, b.InputPerMillion+b.OutputPerMillion); c != 0 {
		return c
	}
	return cmp.Compare(a.Priority, b.Priority)
}

func (p *Planner) orderWeighted(order []*Target) {
	if len(order) < 2 {
		return
	}
	var total int
	for _, t := range order {
		total += int(max(t.Weight, 0))
	}
	pick := 0
	if total == 0 {
		pick = p.intN(len(order))
	} else {
		r := p.intN(total)
		for i, t := range order {
			r -= int(max(t.Weight, 0))
			if r < 0 {
				pick = i
				break
			}
		}
	}
	// Move the pick to the front, keep the rest in policy order, then sort them by weight.
	first := order[pick]
	copy(order[1:pick+1], order[:pick])
	order[0] = first
	slices.SortStableFunc(order[1:], byWeightDesc)
}

func (p *Planner) orderLeastLatency(order []*Target) {
	type keyed struct {
		t     *Target
		lat   time.Duration
		known bool
	}
	ks := make([]keyed, len(order))
	for i, t := range order {
		lat, known := p.health.Latency(t.Key)
		ks[i] = keyed{t, lat, known}
	}
	slices.SortStableFunc(ks, func(a, b keyed) int {
		if a.known != b.known {
			if !a.known {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.lat, b.lat)
	})
	for i := range ks {
		order[i] = ks[i].t
	}
	if len(order) > 1 && p.explore > 0 && p.intN(1_000_000) < int(p.explore*1_000_000) {
		pick := p.intN(len(order))
		first := order[pick]
		copy(order[1:pick+1], order[:pick])
		order[0] = first
	}
}

// backoff returns the wait before retry number n (1 for the first retry): Backoff·2^(n−1),
// capped at MaxBackoff, with "equal jitter" (half fixed, half random) so that replicas that
// failed together do not retry together.
func (pl *Plan) backoff(n int) time.Duration {
	if pl.Backoff <= 0 {
		return 0
	}
	d := pl.Backoff
	for i := 1; i < n && d < pl.planner.maxBackoff; i++ {
		d *= 2
	}
	d = min(d, pl.planner.maxBackoff)
	half := d / 2
	return half + time.Duration(pl.planner.intN(int(half)+1))
}
