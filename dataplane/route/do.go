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
// Do returns nil on success, otherwise the last error from fn, or an error wrapping
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
		skipped    int // consecutive targets refused by their breaker
	)
	for i := 0; calls < plan.Attempts; i++ {
		t := plan.Targets[i%n]
		att, ok := h.Acquire(t.Key)
		if !ok {
			if skipped++; skipped >= n {
				break
			}
			continue
		}
		skipped = 0
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
