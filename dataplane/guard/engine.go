package guard

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/nself-org/ai-orchestration/dataplane/config"
)

// Where a PII guard applies (config.PIIGuard.ApplyTo); an empty list means both.
const (
	ApplyInput  = "input"
	ApplyOutput = "output"
)

// defaultThreshold is the toxicity threshold when a route sets none (0..1).
const defaultThreshold = 0.5

// Options configures an [Engine].
type Options struct {
	// DefaultRegion is the phone-number region for numbers without a country code; default "US".
	DefaultRegion string
	// Scorer scores toxicity; default [LexiconScorer].
	Scorer Scorer
}

// Engine runs a route's guardrails. It is safe for concurrent use and meant to be shared by
// every request (schemas compiled once, detector tables built once).
type Engine struct {
	det    *Detector
	scorer Scorer
	val    *Validator
}

// NewEngine returns an engine.
func NewEngine(opts Options) *Engine {
	e := &Engine{det: NewDetector(DetectorOptions{DefaultRegion: opts.DefaultRegion}), scorer: opts.Scorer, val: &Validator{}}
	if e.scorer == nil {
		e.scorer = LexiconScorer{}
	}
	return e
}

// WithScorer returns an engine sharing this one's detector and schema cache but scoring
// toxicity with s — for a route that names a provider moderation model.
func (e *Engine) WithScorer(s Scorer) *Engine {
	c := *e
	c.scorer = s
	return &c
}

// Detector returns the engine's PII detector.
func (e *Engine) Detector() *Detector { return e.det }

// Validator returns the engine's output validator (and its schema cache).
func (e *Engine) Validator() *Validator { return e.val }

// Result is the outcome of a guardrail check on one text.
type Result struct {
	// Action is the strongest action taken: "" (nothing found), config.GuardFlag,
	// config.GuardRedact or config.GuardBlock.
	Action string
	// Blocked means the request must be refused with 422 content_blocked.
	Blocked bool
	// Flagged means something was found and reported; the text is still served.
	Flagged bool
	// Redacted is the text to forward: with PII replaced by placeholders when the PII action is
	// redact, otherwise the text unchanged.
	Redacted string
	// PII is what the PII guard found (code-point offsets into the checked text).
	PII []Span
	// Categories and Scores are the toxicity verdict; nil when no toxicity guard applies.
	Categories map[string]bool
	Scores     map[string]float64
	// Reason says why the text was blocked or flagged, naming types and categories, never
	// quoting the content.
	Reason string
	// Invalid is set by CheckOutput when the completion fails output validation; the gateway
	// retries once with Invalid.RetryPrompt(), then refuses with 422.
	Invalid *ValidationError
}

// actionRank orders actions so that a result keeps the strongest one.
var actionRank = map[string]int{"": 0, config.GuardFlag: 1, config.GuardRedact: 2, config.GuardBlock: 3}

func (r *Result) escalate(action, reason string) {
	rank := actionRank
	if rank[action] > rank[r.Action] {
		r.Action = action
	}
	switch action {
	case config.GuardBlock:
		r.Blocked = true
	case config.GuardFlag:
		r.Flagged = true
	}
	if r.Reason != "" {
		r.Reason += "; "
	}
	r.Reason += reason
}

// CheckInput runs the PII (when it applies to input) and toxicity guards of g on a prompt.
// The error is only ever a failure of an external scorer.
func (e *Engine) CheckInput(ctx context.Context, g config.Guardrails, text string) (Result, error) {
	return e.check(ctx, g, text, ApplyInput)
}

// CheckOutput runs the PII (when it applies to output), toxicity and output-validation guards
// of g on a completion. requireJSON says the request asked for a JSON response format.
func (e *Engine) CheckOutput(ctx context.Context, g config.Guardrails, text string, requireJSON bool) (Result, error) {
	res, err := e.check(ctx, g, text, ApplyOutput)
	if err != nil {
		return res, err
	}
	if g.Output != nil || requireJSON {
		inv, err := e.val.Validate(g.Output, res.Redacted, requireJSON)
		if err != nil {
			return res, fmt.Errorf("failed to validate output: %w", err)
		}
		res.Invalid = inv
	}
	return res, nil
}

func (e *Engine) check(ctx context.Context, g config.Guardrails, text, direction string) (Result, error) {
	res := Result{Redacted: text}
	if p := g.PII; p != nil && (len(p.ApplyTo) == 0 || slices.Contains(p.ApplyTo, direction)) {
		redacted, spans := e.det.Redact(text, p.Types...)
		res.PII = spans
		if len(spans) > 0 {
			action := p.Action
			if action == "" {
				action = config.GuardRedact
			}
			if action == config.GuardRedact {
				res.Redacted = redacted
			}
			res.escalate(action, "personal data detected: "+strings.Join(spanTypes(spans), ", "))
		}
	}
	if t := g.Toxicity; t != nil {
		scores, err := e.scorer.Score(ctx, text)
		if err != nil {
			return res, fmt.Errorf("failed to score toxicity: %w", err)
		}
		threshold := defaultThreshold
		if t.Threshold > 0 {
			threshold = float64(t.Threshold) / 100
		}
		res.Scores = scores
		res.Categories = categorize(scores, threshold)
		if hit := trueCategories(res.Categories); len(hit) > 0 {
			action := t.Action
			if action == "" || action == config.GuardRedact {
				// There is no safe way to cut toxicity out of a text: redact means block.
				action = config.GuardBlock
			}
			res.escalate(action, "content flagged as "+strings.Join(hit, ", "))
		}
	}
	return res, nil
}

// OutputStream returns a streaming redactor for a route whose PII guard redacts output, and
// nil when streamed output needs no redaction.
func (e *Engine) OutputStream(g config.Guardrails) *StreamRedactor {
	p := g.PII
	if p == nil || (p.Action != config.GuardRedact && p.Action != "") ||
		(len(p.ApplyTo) > 0 && !slices.Contains(p.ApplyTo, ApplyOutput)) {
		return nil
	}
	return NewStreamRedactor(e.det, p.Types)
}

// ModerationResult is the /api/ai/moderate reply.
type ModerationResult struct {
	Flagged    bool               `json:"flagged"`
	Categories map[string]bool    `json:"categories"`
	Scores     map[string]float64 `json:"scores"`
	PII        []Span             `json:"pii"`
}

// Moderate scores text on every category and finds every PII type. It is flagged when any
// category is over the default threshold (0.5) or any PII is found.
func (e *Engine) Moderate(ctx context.Context, text string) (ModerationResult, error) {
	scores, err := e.scorer.Score(ctx, text)
	if err != nil {
		return ModerationResult{}, fmt.Errorf("failed to score toxicity: %w", err)
	}
	res := ModerationResult{
		Categories: categorize(scores, defaultThreshold),
		Scores:     scores,
		PII:        e.det.Detect(text),
	}
	if res.PII == nil {
		res.PII = []Span{}
	}
	res.Flagged = len(res.PII) > 0 || len(trueCategories(res.Categories)) > 0
	return res, nil
}

func categorize(scores map[string]float64, threshold float64) map[string]bool {
	out := make(map[string]bool, len(Categories))
	for _, c := range Categories {
		out[c] = scores[c] >= threshold
	}
	return out
}

func trueCategories(cats map[string]bool) []string {
	var out []string
	for _, c := range Categories {
		if cats[c] {
			out = append(out, c)
		}
	}
	return out
}

func spanTypes(spans []Span) []string {
	var out []string
	for _, s := range spans {
		if !slices.Contains(out, s.Type) {
			out = append(out, s.Type)
		}
	}
	slices.Sort(out)
	return out
}
