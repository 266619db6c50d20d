// Package handlers holds the data plane's HTTP handlers and the one service they share. A
// handler binds and validates its body, calls one [Service] method and renders the result in
// its API's shape (/api/ai or OpenAI's /v1). The service runs the request path in the
// documented order: route resolution → rate limits and budget reservation (one governor call)
// → input guardrails → cache lookup → provider call (retries, failover) → output guardrails →
// settle (with a context that survives the client) → cache store.
package handlers

import (
	"context"
	"log/slog"
	"time"

	"github.com/nself-org/ai-orchestration/dataplane/cache"
	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/governor"
	"github.com/nself-org/ai-orchestration/dataplane/metrics"
	"github.com/nself-org/ai-orchestration/dataplane/providers"
	"github.com/nself-org/ai-orchestration/dataplane/route"
)

// Guard is the guardrail engine as the request path needs it. The server adapts
// dataplane/guard to it; a nil Guard means no guardrails (and /moderate reports nothing).
type Guard interface {
	// Input checks (and may redact) the messages of a request under route's guardrails. A
	// refusal is an error for which [IsBlocked] is true.
	Input(ctx context.Context, r *config.Route, msgs []providers.Message) ([]providers.Message, error)
	// Output checks (and may redact) a complete reply; requireJSON says the request asked for
	// JSON. A reply that fails output validation is an [*InvalidOutputError] (retried once).
	Output(ctx context.Context, r *config.Route, content string, requireJSON bool) (string, error)
	// Stream returns a filter for streamed output, nil when the route needs none.
	Stream(r *config.Route) StreamFilter
	// Moderate scores one input (categories, scores, PII spans).
	Moderate(ctx context.Context, input string) (*Moderation, error)
}

// StreamFilter redacts streamed output; it may hold back text that could be the start of a
// match and releases it with a later Push or with Flush.
type StreamFilter interface {
	Push(delta string) string
	Flush() string
}

// Moderation is a moderation verdict.
type Moderation struct {
	Flagged    bool
	Categories map[string]bool
	Scores     map[string]float64
	PII        []PIISpan
}

// PIISpan locates personal data in code points of the input, End exclusive.
type PIISpan struct {
	Type  string `json:"type"`
	Start int    `json:"start"`
	End   int    `json:"end"`
}

// BlockedError is a guardrail refusal (422 content_blocked).
type BlockedError struct{ Reason string }

func (e *BlockedError) Error() string { return "content blocked: " + e.Reason }

// InvalidOutputError is a completion that failed output validation; RetryPrompt tells the model
// what to fix. After one retry it becomes 422 content_blocked.
type InvalidOutputError struct {
	Reason      string
	RetryPrompt string
}

func (e *InvalidOutputError) Error() string { return "output validation failed: " + e.Reason }

// Deps are the service's collaborators. Governor is required; a nil Planner gets a fresh one
// (pass one Planner for the process so that breaker state outlives snapshots).
type Deps struct {
	Governor governor.Governor
	Planner  *route.Planner
	Guard    Guard
	// Cache is the tenant-scoped response cache; nil disables caching.
	Cache   *cache.Cache
	Metrics *metrics.Metrics
	Log     *slog.Logger
	// StreamCheckpointInterval is how often, at most, a running stream charges what it has cost
	// so far (governor.Governor.Checkpoint), so that a replica killed mid-stream has already
	// recorded all but the last interval of it [DefaultStreamCheckpointInterval]; negative turns
	// checkpoints off (the stream is charged once, when it ends).
	StreamCheckpointInterval time.Duration
	// DefaultMaxOutput is reserved when neither the request nor the model caps the output.
	DefaultMaxOutput int64
	// Now is the clock for usage windows; default time.Now.
	Now func() time.Time
}
