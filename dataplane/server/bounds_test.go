package server_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/handlers"
	"github.com/nself-org/ai-orchestration/dataplane/money"
)

func TestTooManyMessagesAreRefusedWith400(t *testing.T) {
	h := newHarness(t, harnessOpts{maxBody: 4 << 20})
	msgs := make([]map[string]string, handlers.MaxMessages+1)
	for i := range msgs {
		msgs[i] = map[string]string{"role": "user", "content": "hi"}
	}
	code, _, body := h.do(http.MethodPost, "/api/ai/chat", adminKey, map[string]any{"model": "gpt-4o-mini", "userId": "u", "messages": msgs})
	require.Equal(t, http.StatusBadRequest, code)
	_, c := errorBody(t, body)
	require.Equal(t, "invalid_request", c)
	require.Contains(t, string(body), "at most 4096")
	require.Empty(t, h.Upstream.Requests())
}

// A caller asking for more output than the model can write is reserved at the model's cap:
// $0.01 covers 1 000 tokens of gpt-4o-mini output but not a billion.
func TestAMaxTokensAboveTheModelsCapIsReservedAtTheCap(t *testing.T) {
	h := newHarness(t, harnessOpts{mutate: []func(*config.Snapshot){func(s *config.Snapshot) {
		s.Budgets = append(s.Budgets, config.Budget{Name: "default/per-user", Scope: config.ScopeUser, Subject: config.AnySubject,
			Limits: []config.BudgetLimit{{Period: config.PeriodDaily, Limit: money.MustParseUSD("0.01")}},
			Action: config.ActionBlock, TimeZone: "UTC"})
	}}})
	b := chatBody("gpt-4o-mini", "hello")
	b["maxTokens"] = 1_000_000_000
	code, _, body := h.do(http.MethodPost, "/api/ai/chat", adminKey, b)
	require.Equal(t, http.StatusOK, code, "%s", body)
}
