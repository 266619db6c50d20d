package server_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/money"
)

// BenchmarkOpenAIChatWithARealisticPrompt is the request hack/bench sends, in process: POST
// /v1/chat/completions with a fixed 1 KiB system message and a unique 512 B user message
// (so neither the response cache nor the token-count cache helps), through the whole chain —
// auth, two rate limits, a per-user and an org budget, PII redaction, cache miss, the
// OpenAI-compatible fake upstream over loopback, settle, metrics and the access log. It is the
// before/after yardstick of the request-path optimisations (ns/op includes the fake upstream).
func BenchmarkOpenAIChatWithARealisticPrompt(b *testing.B) {
	h := newHarness(b, harnessOpts{mutate: []func(*config.Snapshot){func(s *config.Snapshot) {
		r := &s.Routes[0]
		r.RateLimits = []config.RateLimit{
			{Name: "per-user", Per: config.PerUser, Algorithm: config.AlgorithmSlidingWindow, Requests: 1 << 40, Window: time.Minute, FailMode: config.FailOpen},
			{Name: "per-org", Per: config.PerOrg, Algorithm: config.AlgorithmTokenBucket, Tokens: 1 << 50, Window: time.Minute, FailMode: config.FailClosed},
		}
		r.Guardrails = config.Guardrails{PII: &config.PIIGuard{Action: config.GuardRedact, ApplyTo: []string{"input"}}}
		r.Cache = config.Cache{Enabled: true, TTL: time.Minute, Scope: config.CacheScopeUser}
		s.Budgets = []config.Budget{
			{Name: "default/per-user", Scope: config.ScopeUser, Subject: config.AnySubject, Action: config.ActionBlock, TimeZone: "UTC",
				Limits: []config.BudgetLimit{{Period: config.PeriodDaily, Limit: money.MustParseUSD("1000000")}}},
			{Name: "default/org", Scope: config.ScopeOrg, Subject: "acme", Action: config.ActionBlock, TimeZone: "UTC",
				Limits: []config.BudgetLimit{{Period: config.PeriodMonthly, Limit: money.MustParseUSD("1000000")}}},
		}
	}}})
	handler := h.Server.Handler()
	words := strings.Fields("the quarterly report shows revenue growth across all regions while operating costs remained stable please summarize the key findings")
	text := func(n, seed int) string {
		var sb strings.Builder
		for i := seed; sb.Len() < n; i++ {
			sb.WriteString(words[(i*7)%len(words)])
			sb.WriteByte(' ')
		}
		return sb.String()[:n]
	}
	system, filler := text(1024, 0), text(480, 3)
	body := func(i int) []byte {
		return []byte(`{"model":"gpt-4o-mini","user":"bench-user-` + strconv.Itoa(i%1000) + `","messages":[{"role":"system","content":"` +
			system + `"},{"role":"user","content":"Request ` + strconv.Itoa(i) + `: ` + filler + `"}]}`)
	}
	send := func(i int) {
		req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", bytes.NewReader(body(i)))
		req.Header.Set("Authorization", "Bearer "+appKey)
		req.Header.Set("X-AI-Org", "acme")
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d: %s", rec.Code, rec.Body.String())
		}
	}
	send(-1) // the tokenizer's vocabulary and the upstream connection are set up once per process
	b.ReportAllocs()
	for b.Loop() {
		send(int(realisticSeq.Add(1))) // unique across runs too (-count), so no cache ever hits
	}
}

var realisticSeq atomic.Int64
