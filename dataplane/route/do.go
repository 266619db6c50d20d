package route

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nself-org/ai-orchestration/dataplane/providers"
)

// retryable is implemented by upstream errors that classify themselves, such as
// *providers.Error (Retryable: 429, 5xx, timeouts and connection failures). Do looks for the
// method rather than the type so that any caller's errors (a guardrail retry, a test) can say
// whether another target may help.
type retryable interface{ Retryable() bool }

// Do runs one request's attempts along plan: it calls fn with each target in turn (wrapping
// around when attempts outnumber targets), skipping targets whose circuit breaker refuses,
// until fn succeeds, fails with an error that is not retryable (errors.As finds no Retryable
// method returning true, as on *providers.Error), or plan.Attempts calls were made. Between
// calls it waits the plan's backoff, or a *providers.Error's RetryAfter when that is longer and
// the same target is tried again. Every outcome is recorded in [Health]: latency on success, a breaker failure on a
// retryable error; an upstream that answers with a non-retryable error counts as alive.
//
// fn is the same for chat, stream opening and embeddings: it returns nil once the target has
// served (for a stream: once the stream is open) and keeps whatever result it produced.
//
// When plan.Gate is set it is asked before each call (after the breaker): a target it refuses
// with a retryable error is skipped like one whose breaker is open, but without touching the
// breaker and without using an attempt, so a full upstream quota sends the request to the next
// target instead of into a certain 429. When every target is refused in a row and the gate
// refused at least one, Do waits once for the smallest positive RetryAfter the gate gave, if it
// is at most the planner's MaxGateWait and ends before ctx's deadline, then tries the plan again
// from its first target; otherwise it returns the gate's refusal with the smallest RetryAfter.
//
// Do returns nil on success, otherwise the last error from fn or the gate, or an error wrapping
// [ErrNoUsableTarget] when every target's breaker refused before any call was made. The
// caller's own cancellation is not held against a target.
func Do(ctx context.Context, plan *Plan, fn func(ctx context.Context, t *Target) error) error {
	n := len(plan.Targets)
	if n == 0 {
		return fmt.Errorf("%w: the route has no targets", ErrNoUsableTarget)
	}
	h := plan.planner.health
	var (
		last       error
		lastKey    string
		retryAfter time.Duration
		calls      int
		skipped    int           // consecutive targets refused by their breaker or the gate
		gated      bool          // the gate refused a target of the current run of skips
		gateWait   time.Duration // the smallest positive RetryAfter the gate gave in that run
		gateErr    error         // the refusal that gave it, returned when Do gives up
		waited     bool          // the one wait for a gated target is spent
	)
	for i := 0; calls < plan.Attempts; i++ {
		t := plan.Targets[i%n]
		att, ok := h.Acquire(t.Key)
		if ok && plan.Gate != nil {
			if err := plan.Gate(ctx, t); err != nil {
				att.Cancel()
				var re retryable
				if !errors.As(err, &re) || !re.Retryable() {
					return err
				}
				ok, last, gated = false, err, true
				if pe, isPE := providers.AsError(err); isPE && pe.RetryAfter > 0 && (gateWait == 0 || pe.RetryAfter < gateWait) {
					gateWait, gateErr = pe.RetryAfter, err
				}
			}
		}
		if !ok {
			if skipped++; skipped < n {
				continue
			}
			if !gated || waited || !plan.mayWaitForGate(ctx, gateWait) {
				if gateErr != nil {
					// Every target is refused: the soonest one to have room says when to retry.
					last = gateErr
				}
				break
			}
			if err := plan.planner.sleep(ctx, gateWait); err != nil {
				return last
			}
			// Start the plan over from its preferred target.
			waited, skipped, gated, gateWait, gateErr, i = true, 0, false, 0, nil, -1
			continue
		}
		skipped, gated, gateWait, gateErr = 0, false, 0, nil
		if calls > 0 {
			wait := plan.backoff(calls)
			if t.Key == lastKey && retryAfter > wait {
				wait = min(retryAfter, plan.planner.maxBackoff)
			}
			if wait > 0 {
				if err := plan.planner.sleep(ctx, wait); err != nil {
					att.Cancel()
					return last
				}
			}
		}
		if err := ctx.Err(); err != nil {
			att.Cancel()
			if last != nil {
				return last
			}
			return err
		}
		calls++
		start := h.now()
		err := fn(ctx, t)
		if err == nil {
			att.Succeed(h.now().Sub(start))
			return nil
		}
		last, lastKey, retryAfter = err, t.Key, 0
		if ctx.Err() != nil {
			// Our deadline passing is the upstream's slowness; the caller leaving is not.
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				att.Fail()
			} else {
				att.Cancel()
			}
			return err
		}
		var re retryable
		isUpstream := errors.As(err, &re)
		switch {
		case isUpstream && re.Retryable():
			att.Fail()
			if pe, ok := providers.AsError(err); ok {
				retryAfter = pe.RetryAfter
			}
		case isUpstream:
			att.Answered()
			return err
		default:
			att.Cancel()
			return err
		}
	}
	if last == nil {
		return fmt.Errorf("%w: every target's circuit breaker is open", ErrNoUsableTarget)
	}
	return last
}

// mayWaitForGate reports whether waiting d for a gated target is worth it: d is known, short
// (at most MaxGateWait) and ends before ctx's deadline.
func (pl *Plan) mayWaitForGate(ctx context.Context, d time.Duration) bool {
	if d <= 0 || d > pl.planner.maxGate {
		return false
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= d {
		return false
	}
	return true
}
