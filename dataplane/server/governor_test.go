package server_test

import (
	"context"
	"sync"
	"testing"

	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/governor"
	"github.com/nself-org/ai-orchestration/dataplane/money"
)

// newTestGovernor returns the governor the server tests run against.
// TEMPORARY: a ledger-only governor until dataplane/governor's implementation lands.
func newTestGovernor(t testing.TB) governor.Governor { return &ledgerGovernor{} }

type ledgerGovernor struct {
	mu       sync.Mutex
	requests int64
	tokens   int64
	cost     money.Nanos
}

func (g *ledgerGovernor) Admit(context.Context, *config.Snapshot, *governor.Request) (*governor.Decision, error) {
	return &governor.Decision{Ticket: &governor.Ticket{ID: "t"}}, nil
}

func (g *ledgerGovernor) Settle(_ context.Context, _ *governor.Request, _ *governor.Ticket, c governor.Charge) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.requests++
	g.tokens += c.Usage.PromptTokens + c.Usage.CompletionTokens
	g.cost += c.Cost
	return nil
}

func (g *ledgerGovernor) Usage(context.Context, *config.Snapshot, governor.Query) (*governor.UsageReport, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return &governor.UsageReport{Requests: g.requests, Tokens: g.tokens, Cost: g.cost}, nil
}

func (g *ledgerGovernor) Costs(context.Context, governor.Query) (*governor.CostReport, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return &governor.CostReport{Total: g.cost, Breakdown: []governor.CostLine{{Key: "gpt-4o-mini", Cost: g.cost, Requests: g.requests, Tokens: g.tokens}}}, nil
}
