package handlers

import (
	"context"
	"fmt"

	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/guard"
	"github.com/nself-org/ai-orchestration/dataplane/providers"
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
	for i, m := range msgs {
		if m.Role == "assistant" {
			continue
		}
		res, err := g.e.CheckInput(ctx, r.Guardrails, m.Content)
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
	res, err := g.e.CheckOutput(ctx, r.Guardrails, content, requireJSON)
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
