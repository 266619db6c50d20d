package server_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/money"
)

// BenchmarkChatThroughTheWholeChain measures one /api/ai/chat request through every middleware
// and the full service path — auth, route, rate limit + budget reservation (in-memory store),
// PII guardrail on input, cache lookup (miss), the in-process mock provider, cost, settle and
// metrics — without a network hop, so it is the gateway's own cost.
func BenchmarkChatThroughTheWholeChain(b *testing.B) {
	h := newHarness(b, harnessOpts{mutate: []func(*config.Snapshot){func(s *config.Snapshot) {
		s.Routes = append(s.Routes, config.Route{
			Name:     "default/mock",
			Match:    config.Match{Models: []string{"mock-chat"}},
			Targets:  []config.Target{{Provider: "default/mock", Model: "tiny-window", Weight: 1}},
			Strategy: config.StrategyFailover,
			RateLimits: []config.RateLimit{{Name: "per-user", Per: config.PerUser, Algorithm: config.AlgorithmTokenBucket,
				Requests: 1 << 40, Window: time.Second, FailMode: config.FailOpen}},
			Guardrails: config.Guardrails{PII: &config.PIIGuard{Action: config.GuardRedact, ApplyTo: []string{"input"}}},
			Cache:      config.Cache{Enabled: true, TTL: time.Minute},
		})
		s.Budgets = []config.Budget{{Name: "default/per-user", Scope: config.ScopeUser, Subject: config.AnySubject,
			Limits: []config.BudgetLimit{{Period: config.PeriodDaily, Limit: money.MustParseUSD("1000000")}},
			Action: config.ActionBlock, TimeZone: "UTC"}}
	}}})
	handler := h.Server.Handler()
	body := []byte(`{"model":"mock-chat","userId":"bench-user","orgId":"acme","messages":[{"role":"user","content":"What is the capital of France? Answer in one word."}]}`)
	// Vary nothing but the body bytes' identity: the cache misses because each request is made
	// unique by the sequence number below, as real traffic mostly is.
	// Warm up: the tokenizer's vocabulary is loaded once per process, not per request.
	warm := httptest.NewRequest(http.MethodPost, "/api/ai/chat", bytes.NewReader(body))
	warm.Header.Set("Authorization", "Bearer "+adminKey)
	handler.ServeHTTP(httptest.NewRecorder(), warm)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		bb := append(bytes.Clone(body[:len(body)-4]), byte('a'+i%26), byte('a'+(i/26)%26), '"', '}', ']', '}')
		req := httptest.NewRequest(http.MethodPost, "/api/ai/chat", bytes.NewReader(bb))
		req.Header.Set("Authorization", "Bearer "+adminKey)
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d: %s", rec.Code, rec.Body.String())
		}
	}
}
