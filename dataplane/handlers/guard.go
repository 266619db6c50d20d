package handlers

import (
	"context"
	"fmt"

	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/guard"
	"github.com/nself-org/ai-orchestration/dataplane/metrics"
	"github.com/nself-org/ai-orchestration/dataplane/providers"
	"github.com/nself-org/ai-orchestration/dataplane/runtime"
)

// NewGuard adapts the guardrail engine to the request path's [Guard].
func NewGuard(e *guard.Engine) Guard { return &engineGuard{e: e} }

type engineGuard struct{ e *guard.Engine }

// Input checks every message the caller wrote (system and user; assistant turns are earlier
// completions that were checked as output). Redacted content replaces the original.
func (g *engineGuard) Input(ctx context.Context, r *config.Route, msgs []providers.Message) ([]providers.Message, error) {
	if r == nil || (r.Guardrails.PII == nil && r.Guardrails.Toxicity == nil) {
		return msgs, nil
	}
	var out []providers.Message
	e := g.engine(ctx, r)
	for i, m := range msgs {
		if m.Role == "assistant" {
			continue
		}
		res, err := e.CheckInput(ctx, r.Guardrails, m.Content)
		if err != nil {
			return nil, fmt.Errorf("failed to check input: %w", err)
		}
		if res.Blocked {
			return nil, &BlockedError{Reason: res.Reason}
		}
		if res.Redacted != m.Content {
			if out == nil {
				out = append([]providers.Message(nil), msgs...)
			}
			out[i].Content = res.Redacted
		}
	}
	if out == nil {
		return msgs, nil
	}
	return out, nil
}

func (g *engineGuard) Output(ctx context.Context, r *config.Route, content string, requireJSON bool) (string, error) {
	if r == nil || (r.Guardrails.PII == nil && r.Guardrails.Toxicity == nil && r.Guardrails.Output == nil && !requireJSON) {
		return content, nil
	}
	res, err := g.engine(ctx, r).CheckOutput(ctx, r.Guardrails, content, requireJSON)
	if err != nil {
		return "", fmt.Errorf("failed to check output: %w", err)
	}
	if res.Blocked {
		return "", &BlockedError{Reason: res.Reason}
	}
	if res.Invalid != nil {
		return "", &InvalidOutputError{Reason: res.Invalid.Message, RetryPrompt: res.Invalid.RetryPrompt()}
	}
	return res.Redacted, nil
}

func (g *engineGuard) Stream(r *config.Route) StreamFilter {
	if r == nil {
		return nil
	}
	if sr := g.e.OutputStream(r.Guardrails); sr != nil {
		return redactor{sr}
	}
	return nil
}

type redactor struct{ r *guard.StreamRedactor }

func (r redactor) Push(d string) string { return r.r.Write(d) }
func (r redactor) Flush() string        { return r.r.Flush() }

func (g *engineGuard) Moderate(ctx context.Context, input string) (*Moderation, error) {
	res, err := g.e.Moderate(ctx, input)
	if err != nil {
		return nil, fmt.Errorf("failed to moderate: %w", err)
	}
	m := &Moderation{Flagged: res.Flagged, Categories: res.Categories, Scores: res.Scores, PII: make([]PIISpan, len(res.PII))}
	for i, s := range res.PII {
		m.PII[i] = PIISpan{Type: s.Type, Start: s.Start, End: s.End}
	}
	return m, nil
}

// guardEnvKey is the context key of a request's [guardEnv].
type guardEnvKey struct{}

// guardEnv is what a route's provider moderation scorer needs for one request: the runtime
// whose provider clients serve it, and the metrics that count fallbacks.
type guardEnv struct {
	rt *runtime.Runtime
	m  *metrics.Metrics
}

// guardCtx attaches rt to ctx when r's toxicity guard names a moderation provider, so that the
// [Guard] can score with that provider's client; other routes pay nothing.
func (s *Service) guardCtx(ctx context.Context, rt *runtime.Runtime, r *config.Route) context.Context {
	if r == nil || r.Guardrails.Toxicity == nil || r.Guardrails.Toxicity.Provider == "" {
		return ctx
	}
	return context.WithValue(ctx, guardEnvKey{}, guardEnv{rt: rt, m: s.d.Metrics})
}

// engine returns the engine that checks r: one scoring toxicity with the route's moderation
// provider when it names one, else the shared engine. A named provider that is missing or
// offers no moderation model falls back to the shared engine's built-in scorer (counted).
func (g *engineGuard) engine(ctx context.Context, r *config.Route) *guard.Engine {
	t := r.Guardrails.Toxicity
	if t == nil || t.Provider == "" {
		return g.e
	}
	env, _ := ctx.Value(guardEnvKey{}).(guardEnv)
	var mod providers.Moderator
	if env.rt != nil {
		if client, _, ok := env.rt.Provider(t.Provider); ok {
			mod, _ = client.(providers.Moderator)
		}
	}
	if mod == nil {
		countFallback(env.m, "unavailable")
		return g.e
	}
	return g.e.WithScorer(fallbackScorer{primary: guard.ModeratorScorer{Moderator: mod, Model: t.Model}, m: env.m})
}

// fallbackScorer scores with a provider's moderation model and, when that call fails, with the
// built-in lexicon: a moderation outage must neither refuse every request nor let every
// request through unscored.
type fallbackScorer struct {
	primary guard.Scorer
	m       *metrics.Metrics
}

// Score implements [guard.Scorer].
func (f fallbackScorer) Score(ctx context.Context, text string) (map[string]float64, error) {
	scores, err := f.primary.Score(ctx, text)
	if err == nil || ctx.Err() != nil {
		return scores, err
	}
	countFallback(f.m, "error")
	return guard.LexiconScorer{}.Score(ctx, text)
}

func countFallback(m *metrics.Metrics, reason string) {
	if m != nil {
		m.GuardScorerFallbacks.WithLabelValues(reason).Inc()
	}
}
