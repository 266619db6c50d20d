// Package governor decides, for every request, whether its rate limits and budgets let it
// through, and records what it cost. Budgets and rate limits share one store and one round trip:
// [Governor.Admit] checks every limit and reserves the worst-case cost against every applicable
// budget atomically; [Governor.Settle] replaces the reservation with the real cost and writes the
// usage ledger.
package governor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/money"
	"github.com/nself-org/ai-orchestration/dataplane/store"
)

// Identity is who a request acts for. APIKey is the client key's name (config.APIKey.Name).
type Identity struct {
	User   string
	Org    string
	APIKey string
}

// Request describes one call about to be made.
type Request struct {
	Identity
	// Route is the matched policy (its rate limits apply); nil when no policy matched.
	Route *config.Route
	// Endpoint is "chat", "embed", "summarize", …
	Endpoint string
	// Provider ("namespace/name") and Model are the chosen target.
	Provider string
	Model    string
	// EstimatedTokens is what token limits admit on: prompt tokens counted with the tokenizer plus
	// the output cap. Corrected to the real usage at settle.
	EstimatedTokens int64
	// WorstCaseCost is reserved against every applicable budget.
	WorstCaseCost money.Nanos
	// CachePeek, when set, is a response-cache key ([store.Store.Cache]) read in the admission's
	// own store round trip; the value comes back in [Decision.Cached].
	CachePeek string
}

// Decision is a successful admission.
type Decision struct {
	// Ticket must be passed to Settle exactly once (also when the call failed, with zero usage).
	Ticket *Ticket
	// Downgrade names the model to use instead, when a budget with action downgrade is over.
	Downgrade string
	// RateLimit describes the tightest limit that applied, for X-RateLimit-* headers; zero when
	// no limit applied.
	RateLimit RateLimitState
	// Alerts lists budgets that crossed an alert threshold with this request.
	Alerts []Alert
	// Cached is the value under Request.CachePeek when CacheFound; CacheErr is a failed read
	// (the store down and failing open included), to be treated as a miss.
	Cached     []byte
	CacheFound bool
	CacheErr   error
}

// RateLimitState is the state of one limit after a decision.
type RateLimitState struct {
	Name      string
	Limit     int64
	Remaining int64
	Reset     time.Duration
}

// Alert reports a budget crossing one of its alert thresholds.
type Alert struct {
	Budget    string
	Subject   string
	Period    string
	Threshold int32
	Spent     money.Nanos
	Limit     money.Nanos
}

// Ticket is an admitted request's reservations: budget amounts, concurrency slots and token
// estimates, with the keys they were made under. Opaque to callers.
type Ticket struct {
	// ID is unique per admission; reservations are stored under it so that they can expire.
	ID    string
	state any
}

// Charge is what a finished call actually cost.
type Charge struct {
	Usage struct {
		PromptTokens       int64
		CompletionTokens   int64
		CachedPromptTokens int64
	}
	Cost   money.Nanos
	Cached bool
	// Estimated is true when usage was counted by the tokenizer because the provider sent none.
	Estimated bool
	// Unpriced is true when the model has no price (served and charged $0, counted by a metric).
	Unpriced bool
	// CachePut, when set, is a response-cache write carried by the settle's own round trip; its
	// Err says how the write went (a failed settle fails it too).
	CachePut *store.KVPut
}

// Query selects ledger entries. Empty fields match everything; From/To bound the window.
type Query struct {
	User    string
	Org     string
	APIKey  string
	From    time.Time
	To      time.Time
	GroupBy string // "", "model", "provider", "user"
}

// UsageReport answers /api/ai/usage.
type UsageReport struct {
	Requests int64
	Tokens   int64
	Cost     money.Nanos
	Budgets  []BudgetStatus
	// Remaining is the smallest remaining amount over Budgets; nil when no budget applies.
	Remaining *money.Nanos
}

// BudgetStatus is one budget period as seen by one subject.
type BudgetStatus struct {
	Name      string
	Subject   string
	Period    string
	Limit     money.Nanos
	Spent     money.Nanos
	Reserved  money.Nanos
	Remaining money.Nanos
	ResetsAt  time.Time
	// Forecast is the projected spend at period end at the current rate.
	Forecast money.Nanos
	// RunsOutAt is when the budget is exhausted at the current rate; zero when never.
	RunsOutAt time.Time
}

// CostReport answers /api/ai/costs.
type CostReport struct {
	Total     money.Nanos
	Breakdown []CostLine
	PeriodEnd time.Time
	Projected money.Nanos
}

// CostLine is one group of a cost breakdown.
type CostLine struct {
	Key      string
	Cost     money.Nanos
	Requests int64
	Tokens   int64
}

// Governor is implemented over a store (in-memory or Redis).
type Governor interface {
	// Admit checks every limit and reserves every budget that applies, all or nothing, in one
	// store round trip. It returns a *DeniedError when a limit or budget refuses.
	Admit(ctx context.Context, snap *config.Snapshot, req *Request) (*Decision, error)
	// Settle releases the ticket's reservations, charges the real cost to every budget, corrects
	// token limits and appends the usage to the ledger. Safe to call with a cancelled ctx's values
	// (callers pass a fresh context so a disconnected client still gets charged).
	Settle(ctx context.Context, req *Request, t *Ticket, c Charge) error
	// Checkpoint charges a call that is still running (a stream) with what it has cost so far: c
	// holds totals since admission (prompt tokens, output tokens counted so far, their cost). Every
	// budget's spend and the ledger get what changed since the last checkpoint, in one store round
	// trip, and each reservation shrinks by as much (see store.Store.Checkpoint). The call counts as
	// one request from its first checkpoint. A later Settle with the call's final usage charges only
	// the remainder, so the totals end equal to that usage however many checkpoints ran. Checkpoint
	// and Settle of one ticket are serialized; after Settle, Checkpoint returns ErrTicketSettled.
	// Like Settle, it runs on a context detached from ctx's cancellation, bounded by SettleTimeout.
	Checkpoint(ctx context.Context, req *Request, t *Ticket, c Charge) error
	// Usage reports one subject's usage over q's window and its budgets' state.
	Usage(ctx context.Context, snap *config.Snapshot, q Query) (*UsageReport, error)
	// Costs reports spend over q's window grouped by q.GroupBy, with a forecast.
	Costs(ctx context.Context, q Query) (*CostReport, error)
}

// DenialKind says what refused a request.
type DenialKind int

const (
	DeniedByRateLimit DenialKind = iota + 1
	DeniedByBudget
)

// DeniedError is a refusal: 429 rate_limited or 402 budget_exceeded.
type DeniedError struct {
	Kind DenialKind
	// Name is the rate limit's name or the budget's "namespace/name".
	Name   string
	Period string
	// RetryAfter is when a retry may succeed (rate limits) or when the budget period resets.
	RetryAfter time.Duration
	ResetsAt   time.Time
	RateLimit  RateLimitState
}

func (e *DeniedError) Error() string {
	if e.Kind == DeniedByBudget {
		return fmt.Sprintf("budget %s (%s) exceeded; resets at %s", e.Name, e.Period, e.ResetsAt.UTC().Format(time.RFC3339))
	}
	return fmt.Sprintf("rate limit %s exceeded; retry after %s", e.Name, e.RetryAfter.Round(time.Second))
}

// ErrStoreUnavailable is returned (wrapped) when the store cannot be reached and a fail-closed
// limit applies.
var ErrStoreUnavailable = errors.New("limit store unavailable")
