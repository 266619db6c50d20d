package handlers

import (
	"context"

	"github.com/nself-org/ai-orchestration/dataplane/governor"
	"github.com/nself-org/ai-orchestration/dataplane/providers"
	"github.com/nself-org/ai-orchestration/dataplane/route"
)

// takeProvider is the gate of c's plan (route.Plan.Gate): before each upstream call it takes
// one request and the call's estimated tokens from the target provider's account quota
// (AIProvider spec.limits), so that a full quota sends the request to the next target, or
// makes it wait briefly, instead of into a certain upstream 429. Providers without limits,
// and governors that do not implement [governor.ProviderLimiter], are not gated.
//
// A refusal is a *providers.Error of KindRateLimited, as if the upstream had said 429: route.Do
// skips the target without counting it against the breaker, and when every target is full the
// reply is the same as for an upstream 429 (503 no_usable_provider with Retry-After). A quota
// check that fails lets the call through: the upstream's own 429 remains the backstop.
func (c *call) takeProvider(ctx context.Context, t *route.Target) error {
	pl, ok := c.s.d.Governor.(governor.ProviderLimiter)
	if !ok {
		return nil
	}
	_, p, ok := c.rt.Provider(t.Provider)
	if !ok || (p.Limits.RequestsPerMinute <= 0 && p.Limits.TokensPerMinute <= 0) {
		return nil
	}
	var estimated int64
	if c.greq != nil {
		// The admission's estimate: prompt tokens plus the output cap, the largest over the
		// plan's targets — an upper bound, so the gateway errs on the side of the quota.
		estimated = c.greq.EstimatedTokens
	}
	room, wait, err := pl.TakeProvider(ctx, p, estimated)
	if err != nil {
		c.s.series.decision(outcomeProviderQuotaError)
		c.s.d.Log.WarnContext(ctx, "failed to check a provider quota; calling the provider anyway", "provider", p.Name, "error", err)
		return nil
	}
	if room {
		return nil
	}
	c.s.series.decision(outcomeProviderQuotaFull)
	c.s.d.Log.DebugContext(ctx, "provider quota full; skipping the target", "provider", p.Name, "model", t.Model, "retryAfter", wait)
	return &providers.Error{Kind: providers.KindRateLimited, Provider: p.Name,
		Message: "the provider account's quota (requests or tokens per minute) is full", RetryAfter: wait}
}
