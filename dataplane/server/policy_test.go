package server_test

import (
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/money"
	"github.com/nself-org/ai-orchestration/dataplane/providers/providertest"
)

func TestABudgetThatCannotCoverTheWorstCaseAnswers402(t *testing.T) {
	h := newHarness(t, harnessOpts{
		upstream: providertest.Options{PromptTokens: 10, CompletionTokens: 10},
		mutate: []func(*config.Snapshot){func(s *config.Snapshot) {
			// Worst case of one call: ~10 prompt tokens + 1000 output tokens × $0.60/M ≈ $0.0006.
			s.Budgets = []config.Budget{{Name: "default/per-user", Scope: config.ScopeUser, Subject: config.AnySubject,
				Limits: []config.BudgetLimit{{Period: config.PeriodDaily, Limit: money.MustParseUSD("0.0001")}},
				Action: config.ActionBlock, TimeZone: "UTC"}}
		}},
	})
	code, hdr, body := h.do("POST", "/api/ai/chat", adminKey, chatBody("gpt-4o-mini", "x"))
	require.Equal(t, http.StatusPaymentRequired, code, string(body))
	_, c := errorBody(t, body)
	require.Equal(t, "budget_exceeded", c)
	require.NotEmpty(t, hdr.Get("X-Request-ID"))
	require.Empty(t, h.Upstream.Requests(), "a refused request never reaches the provider")

	// With maxTokens small enough, the worst case fits and the call is served.
	b := chatBody("gpt-4o-mini", "x")
	b["maxTokens"] = 10
	code, _, body = h.do("POST", "/api/ai/chat", adminKey, b)
	require.Equal(t, http.StatusOK, code, string(body))
}

func TestARateLimitAnswers429WithRetryAfterAndRateLimitHeaders(t *testing.T) {
	h := newHarness(t, harnessOpts{mutate: []func(*config.Snapshot){func(s *config.Snapshot) {
		s.Routes[0].RateLimits = []config.RateLimit{{Name: "per-user", Per: config.PerUser, Algorithm: config.AlgorithmSlidingWindow,
			Requests: 2, Window: time.Minute, FailMode: config.FailClosed}}
	}}})
	for i := range 2 {
		code, hdr, body := h.do("POST", "/api/ai/chat", adminKey, chatBody("gpt-4o-mini", "x"))
		require.Equal(t, http.StatusOK, code, string(body))
		require.Equal(t, "2", hdr.Get("X-RateLimit-Limit"))
		require.Equal(t, strconv.Itoa(1-i), hdr.Get("X-RateLimit-Remaining"))
		require.NotEmpty(t, hdr.Get("X-RateLimit-Reset"))
	}
	code, hdr, body := h.do("POST", "/api/ai/chat", adminKey, chatBody("gpt-4o-mini", "x"))
	require.Equal(t, http.StatusTooManyRequests, code, string(body))
	_, c := errorBody(t, body)
	require.Equal(t, "rate_limited", c)
	ra, err := strconv.Atoi(hdr.Get("Retry-After"))
	require.NoError(t, err)
	require.Positive(t, ra)
	require.Equal(t, "0", hdr.Get("X-RateLimit-Remaining"))
}

func TestAnInputGuardrailThatBlocksAnswers422(t *testing.T) {
	h := newHarness(t, harnessOpts{mutate: []func(*config.Snapshot){func(s *config.Snapshot) {
		s.Routes[0].Guardrails.PII = &config.PIIGuard{Action: config.GuardBlock, Types: []string{"email"}}
	}}})
	code, _, body := h.do("POST", "/api/ai/chat", adminKey, chatBody("gpt-4o-mini", "mail me at jane.doe@example.com"))
	require.Equal(t, http.StatusUnprocessableEntity, code, string(body))
	_, c := errorBody(t, body)
	require.Equal(t, "content_blocked", c)
	require.NotContains(t, string(body), "jane.doe", "the refusal never quotes the content")
	require.Empty(t, h.Upstream.Requests())
	s := h.Gov.settles()
	require.Len(t, s, 1, "the reservation is released")
	require.Zero(t, s[0].Charge.Cost)
}

func TestARedactingGuardrailSendsPlaceholdersUpstream(t *testing.T) {
	h := newHarness(t, harnessOpts{mutate: []func(*config.Snapshot){func(s *config.Snapshot) {
		s.Routes[0].Guardrails.PII = &config.PIIGuard{Action: config.GuardRedact, ApplyTo: []string{"input"}}
	}}})
	code, _, body := h.do("POST", "/api/ai/chat", adminKey, chatBody("gpt-4o-mini", "mail me at jane.doe@example.com"))
	require.Equal(t, http.StatusOK, code, string(body))
	req, ok := h.Upstream.LastRequest()
	require.True(t, ok)
	require.NotContains(t, string(req.Body), "jane.doe@example.com")
}

func TestACachedReplyIsFreeSaysCachedAndStaysWithinItsTenant(t *testing.T) {
	h := newHarness(t, harnessOpts{
		upstream: providertest.Options{Reply: "cached answer", PromptTokens: 100, CompletionTokens: 100},
		mutate: []func(*config.Snapshot){func(s *config.Snapshot) {
			s.Routes[0].Cache = config.Cache{Enabled: true, TTL: time.Minute, Scope: config.CacheScopeOrg}
		}},
	})
	ask := func(org string, stream bool) (int, http.Header, []byte) {
		b := chatBody("gpt-4o-mini", "same question")
		b["orgId"] = org
		b["stream"] = stream
		return h.do("POST", "/api/ai/chat", adminKey, b)
	}
	code, hdr, body := ask("acme", false)
	require.Equal(t, http.StatusOK, code, string(body))
	require.Equal(t, "miss", hdr.Get("X-AI-Cache"))

	code, hdr, body = ask("acme", false)
	require.Equal(t, http.StatusOK, code, string(body))
	require.Equal(t, "hit", hdr.Get("X-AI-Cache"))
	require.Equal(t, "0", hdr.Get("X-AI-Cost"))
	var r struct {
		Content string
		Cost    float64
		Cached  bool
	}
	require.NoError(t, json.Unmarshal(body, &r))
	require.True(t, r.Cached)
	require.Zero(t, r.Cost)
	require.Equal(t, "cached answer", r.Content)

	code, _, raw := ask("acme", true)
	require.Equal(t, http.StatusOK, code)
	events := readSSE(t, raw)
	require.Equal(t, "done", events[len(events)-1].Event)
	require.Contains(t, events[len(events)-1].Data, `"cached":true`, "a hit replays as a stream too")

	code, hdr, _ = ask("globex", false)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "miss", hdr.Get("X-AI-Cache"), "another org never receives acme's cached reply")
	require.Len(t, h.Upstream.Requests(), 2)
}

func TestABudgetInDowngradeModeSendsTheRequestToTheCheaperModel(t *testing.T) {
	h := newHarness(t, harnessOpts{mutate: []func(*config.Snapshot){func(s *config.Snapshot) {
		s.Budgets = []config.Budget{{Name: "default/per-user", Scope: config.ScopeUser, Subject: config.AnySubject,
			Limits: []config.BudgetLimit{{Period: config.PeriodDaily, Limit: money.MustParseUSD("0.000000001")}},
			Action: config.ActionDowngrade, DowngradeTo: "tiny-window", TimeZone: "UTC"}}
	}}})
	code, hdr, body := h.do("POST", "/api/ai/chat", adminKey, chatBody("gpt-4o-mini", "x"))
	require.Equal(t, http.StatusOK, code, string(body))
	require.Equal(t, "default/mock", hdr.Get("X-AI-Provider"))
	var r struct{ Model string }
	require.NoError(t, json.Unmarshal(body, &r))
	require.Equal(t, "tiny-window", r.Model)
	require.Empty(t, h.Upstream.Requests(), "the expensive upstream was not called")
}

func TestAnInvalidJSONReplyIsRetriedOnceThenRefusedAndBothCallsAreCharged(t *testing.T) {
	h := newHarness(t, harnessOpts{upstream: providertest.Options{Reply: "this is not JSON", PromptTokens: 10, CompletionTokens: 10}})
	b := chatBody("gpt-4o-mini", "give me json")
	b["responseFormat"] = "json"
	code, _, body := h.do("POST", "/api/ai/chat", adminKey, b)
	require.Equal(t, http.StatusUnprocessableEntity, code, string(body))
	_, c := errorBody(t, body)
	require.Equal(t, "content_blocked", c)
	require.Len(t, h.Upstream.Requests(), 2, "one retry with the validation error fed back")
	s := h.Gov.settles()
	require.Len(t, s, 1)
	require.Equal(t, int64(20), s[0].Charge.Usage.PromptTokens, "both calls were billed by the provider")
	require.Positive(t, s[0].Charge.Cost)

	h.Upstream.SetOptions(providertest.Options{Reply: `{"ok":true}`})
	code, _, body = h.do("POST", "/api/ai/chat", adminKey, b)
	require.Equal(t, http.StatusOK, code, string(body))
}
