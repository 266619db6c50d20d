package route

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of [HealthOptions].
const (
	DefaultFailureThreshold = 5
	DefaultCooldown         = 30 * time.Second
	DefaultEWMAAlpha        = 0.3
)

// HealthOptions tunes [Health]. Zero fields take the Default* constants.
type HealthOptions struct {
	// FailureThreshold is the number of consecutive retryable failures that opens a breaker.
	FailureThreshold int
	// Cooldown is how long an open breaker refuses calls before it lets one probe through; it
	// is also how long a probe may stay unanswered before another one is allowed.
	Cooldown time.Duration
	// EWMAAlpha is the weight of the newest latency sample (0 < alpha ≤ 1).
	EWMAAlpha float64
	// Now is the clock; tests inject a fake one. Default time.Now.
	Now func() time.Time
}

// BreakerState is the state of one target's circuit breaker.
type BreakerState int

// Breaker states.
const (
	BreakerClosed BreakerState = iota
	BreakerOpen
	BreakerHalfOpen
)

// String returns "closed", "open" or "half-open", the label used in metrics.
func (s BreakerState) String() string {
	switch s {
	case BreakerOpen:
		return "open"
	case BreakerHalfOpen:
		return "half-open"
	}
	return "closed"
}

// Health holds per-target latency and circuit-breaker state keyed by "provider/model". One
// Health lives for the whole process and is shared by every snapshot's [Table], so a reload
// keeps what was learned. It is safe for concurrent use; the hot path is one sync.Map load and
// a few atomic operations.
type Health struct {
	threshold int32
	cooldown  int64
	alpha     float64
	now       func() time.Time
	targets   sync.Map // string → *targetState
}

type targetState struct {
	failures atomic.Int32
	// openedAt is the clock (unix nanos, never 0) at which the breaker opened; 0 = closed.
	openedAt atomic.Int64
	// probeAt is when the single half-open probe was let through; 0 = none in flight.
	probeAt atomic.Int64
	// ewma is the float64 bits of the latency average in nanoseconds.
	ewma    atomic.Uint64
	samples atomic.Int64
}

// NewHealth returns an empty Health.
func NewHealth(opts HealthOptions) *Health {
	h := &Health{
		threshold: int32(opts.FailureThreshold),
		cooldown:  int64(opts.Cooldown),
		alpha:     opts.EWMAAlpha,
		now:       opts.Now,
	}
	if h.threshold <= 0 {
		h.threshold = DefaultFailureThreshold
	}
	if h.cooldown <= 0 {
		h.cooldown = int64(DefaultCooldown)
	}
	if h.alpha <= 0 || h.alpha > 1 {
		h.alpha = DefaultEWMAAlpha
	}
	if h.now == nil {
		h.now = time.Now
	}
	return h
}

func (h *Health) state(key string) *targetState {
	if s, ok := h.targets.Load(key); ok {
		return s.(*targetState)
	}
	s, _ := h.targets.LoadOrStore(key, &targetState{})
	return s.(*targetState)
}

func (h *Health) clock() int64 {
	n := h.now().UnixNano()
	if n == 0 {
		n = 1 // 0 means "closed"/"no probe"; a fake clock at the epoch must not look like that
	}
	return n
}

// Attempt is permission to call one target, from [Health.Acquire]. Exactly one of Succeed,
// Answered, Fail or Cancel must be called when the call ends, so that a half-open probe is
// never leaked.
type Attempt struct {
	h     *Health
	s     *targetState
	probe int64 // probeAt value this attempt holds; 0 when not the probe
}

// Acquire asks whether target key may be called now. A closed breaker always allows; an open
// one refuses until Cooldown has passed, then allows exactly one probe at a time.
func (h *Health) Acquire(key string) (Attempt, bool) {
	s := h.state(key)
	opened := s.openedAt.Load()
	if opened == 0 {
		return Attempt{h: h, s: s}, true
	}
	now := h.clock()
	if now-opened < h.cooldown {
		return Attempt{}, false
	}
	p := s.probeAt.Load()
	if p != 0 && now-p < h.cooldown {
		return Attempt{}, false
	}
	if !s.probeAt.CompareAndSwap(p, now) {
		return Attempt{}, false
	}
	return Attempt{h: h, s: s, probe: now}, true
}

// Probe reports whether this attempt is the half-open probe.
func (a Attempt) Probe() bool { return a.probe != 0 }

// Succeed records a served call and its latency: the breaker closes and the EWMA moves.
func (a Attempt) Succeed(latency time.Duration) {
	a.Answered()
	a.h.observe(a.s, latency)
}

// Answered records that the upstream answered but refused the request itself (e.g. 400): the
// upstream is alive, so the breaker closes, but the latency says nothing about serving.
func (a Attempt) Answered() {
	if a.s == nil {
		return
	}
	a.s.failures.Store(0)
	if a.s.openedAt.Load() != 0 {
		a.s.openedAt.Store(0)
		a.s.probeAt.Store(0)
	}
}

// Fail records a retryable failure: a failed probe re-opens the breaker for another cooldown;
// otherwise the breaker opens after FailureThreshold consecutive failures.
func (a Attempt) Fail() {
	if a.s == nil {
		return
	}
	n := a.s.failures.Add(1)
	if a.probe != 0 {
		a.s.openedAt.Store(a.h.clock())
		a.s.probeAt.CompareAndSwap(a.probe, 0)
		return
	}
	if n >= a.h.threshold {
		a.s.openedAt.CompareAndSwap(0, a.h.clock())
	}
}

// Cancel records nothing (the caller gave up, or the error was ours); it frees the probe slot.
func (a Attempt) Cancel() {
	if a.s != nil && a.probe != 0 {
		a.s.probeAt.CompareAndSwap(a.probe, 0)
	}
}

func (h *Health) observe(s *targetState, latency time.Duration) {
	sample := float64(latency)
	first := s.samples.Add(1) == 1
	for {
		old := s.ewma.Load()
		next := sample
		if !first {
			next = h.alpha*sample + (1-h.alpha)*math.Float64frombits(old)
		}
		if s.ewma.CompareAndSwap(old, math.Float64bits(next)) {
			return
		}
		first = false
	}
}

// Latency returns the EWMA latency of a target and whether any call was observed.
func (h *Health) Latency(key string) (time.Duration, bool) {
	s, ok := h.targets.Load(key)
	if !ok {
		return 0, false
	}
	return h.latency(s.(*targetState))
}

func (h *Health) latency(s *targetState) (time.Duration, bool) {
	if s.samples.Load() == 0 {
		return 0, false
	}
	return time.Duration(math.Float64frombits(s.ewma.Load())), true
}

// State returns a target's breaker state at the current clock, for metrics and tests.
func (h *Health) State(key string) BreakerState {
	v, ok := h.targets.Load(key)
	if !ok {
		return BreakerClosed
	}
	s := v.(*targetState)
	opened := s.openedAt.Load()
	switch {
	case opened == 0:
		return BreakerClosed
	case h.clock()-opened < h.cooldown:
		return BreakerOpen
	}
	return BreakerHalfOpen
}
