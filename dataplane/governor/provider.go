package governor

import (
	"context"
	"time"

	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/store"
)

// ProviderLimiter keeps the gateway under an upstream account's quota (AIProvider spec.limits:
// requestsPerMinute, tokensPerMinute), counted across replicas in the shared store. It is
// implemented by the Governor that [New] returns; routing asks it before calling a target:
//
//	if pl, ok := g.(governor.ProviderLimiter); ok {
//		ok, wait, _ := pl.TakeProvider(ctx, p, estimatedTokens)
//		// !ok: try the next target, or wait `wait` when it is short, instead of a certain 429
//	}
type ProviderLimiter interface {
	// TakeProvider counts one request of tokens against p's per-minute quotas (exact sliding
	// windows, both decided in one store call). ok is false when either quota is full; retryAfter
	// is then when it will have room. A provider without limits always has room. Token counts are
	// the caller's estimate (an upper bound), so the gateway errs on the side of the quota. When
	// the store is unavailable it answers ok (the upstream's own 429 remains the backstop) and
	// counts a store error.
	TakeProvider(ctx context.Context, p *config.Provider, tokens int64) (ok bool, retryAfter time.Duration, err error)
}

var _ ProviderLimiter = (*gov)(nil)

// TakeProvider implements [ProviderLimiter].
func (g *gov) TakeProvider(ctx context.Context, p *config.Provider, tokens int64) (bool, time.Duration, error) {
	if p == nil {
		return true, 0, nil
	}
	var checks []store.Check
	base := g.opts.KeyPrefix + ":provider:" + tagFor(store.GlobalTag) + ":" + p.Name
	if p.Limits.RequestsPerMinute > 0 {
		checks = append(checks, store.Check{Kind: store.KindSlidingWindow, Key: base + ":rpm",
			Limit: p.Limits.RequestsPerMinute, Window: time.Minute, Cost: 1})
	}
	if p.Limits.TokensPerMinute > 0 {
		checks = append(checks, store.Check{Kind: store.KindSlidingWindow, Key: base + ":tpm",
			Limit: p.Limits.TokensPerMinute, Window: time.Minute, Cost: max(0, tokens)})
	}
	if len(checks) == 0 {
		return true, 0, nil
	}
	sctx, cancel := g.storeCtx(ctx, g.opts.AdmitTimeout)
	res, err := g.st.Admit(sctx, &store.AdmitRequest{ID: g.newID(), Checks: checks})
	cancel()
	if err != nil {
		g.m.StoreErrors.WithLabelValues("provider").Inc()
		g.log.WarnContext(ctx, "limit store unavailable; provider quota not checked", "provider", p.Name, "error", err)
		return true, 0, nil
	}
	if res.Allowed {
		return true, 0, nil
	}
	var wait time.Duration
	for _, r := range res.Results {
		if r.Evaluated && !r.Allowed {
			wait = max(wait, r.RetryAfter)
		}
	}
	return false, wait, nil
}
