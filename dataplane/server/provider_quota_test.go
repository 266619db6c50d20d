package server_test

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/governor"
	"github.com/nself-org/ai-orchestration/dataplane/money"
	"github.com/nself-org/ai-orchestration/dataplane/providers/providertest"
)

// TakeProvider lets the provider quotas of the governor under test through the recording
// wrapper (an embedded interface hides the optional [governor.ProviderLimiter]).
func (g *recordingGovernor) TakeProvider(ctx context.Context, p *config.Provider, tokens int64) (bool, time.Duration, error) {
	if pl, ok := g.Governor.(governor.ProviderLimiter); ok {
		return pl.TakeProvider(ctx, p, tokens)
	}
	return true, 0, nil
}

// quotaHarness serves gpt-4o-mini from a failover route over two OpenAI fakes: the harness's
// upstream as "default/openai" (priority 0) with primary limits, and a second fake as
// "default/backup" (priority 1) with backup limits.
func quotaHarness(t *testing.T, primary, backup config.ProviderLimits) (*harness, *providertest.Server) {
	t.Helper()
	second := providertest.NewOpenAI(t, providertest.Options{PromptTokens: 10, CompletionTokens: 10})
	h := newHarness(t, harnessOpts{
		upstream: providertest.Options{PromptTokens: 10, CompletionTokens: 10},
		mutate: []func(*config.Snapshot){func(s *config.Snapshot) {
			s.Providers[1].Limits = primary
			s.Providers = append(s.Providers, config.Provider{
				Name: "default/backup", Type: config.ProviderOpenAI, BaseURL: second.BaseURL,
				APIKey: config.Secret(providertest.DefaultAPIKey), Limits: backup,
				Models: []config.Model{{Name: "gpt-4o-mini", InputPerMillion: money.MustParseUSD("0.15"),
					OutputPerMillion: money.MustParseUSD("0.60"), ContextWindow: 128000, MaxOutputTokens: 1000}},
			})
			s.Routes[0].Targets = []config.Target{
				{Provider: "default/openai", Model: "gpt-4o-mini", Priority: 0},
				{Provider: "default/backup", Model: "gpt-4o-mini", Priority: 1},
			}
		}},
	})
	return h, second
}

func TestAFullProviderQuotaSendsTheRestToTheNextTargetNeverToThePrimary(t *testing.T) {
	const n = 5
	cases := map[string]struct {
		requests int
		parallel bool
		stream   bool
	}{
		"sequential requests":        {requests: 3 * n},
		"parallel requests":          {requests: 40, parallel: true},
		"parallel streamed requests": {requests: 20, parallel: true, stream: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			h, backup := quotaHarness(t, config.ProviderLimits{RequestsPerMinute: n}, config.ProviderLimits{})
			served := map[string]int{}
			var mu sync.Mutex
			send := func() {
				b := chatBody("gpt-4o-mini", "hello there")
				b["stream"] = tc.stream
				code, hdr, body := h.do("POST", "/api/ai/chat", adminKey, b)
				require.Equal(t, http.StatusOK, code, string(body))
				mu.Lock()
				served[hdr.Get("X-AI-Provider")]++
				mu.Unlock()
			}
			if tc.parallel {
				var wg sync.WaitGroup
				for range tc.requests {
					wg.Go(send)
				}
				wg.Wait()
			} else {
				for range tc.requests {
					send()
				}
			}
			t.Logf("%d requests, primary limit %d/min: primary fake received %d, backup fake %d (replies by provider %v)",
				tc.requests, n, len(h.Upstream.Requests()), len(backup.Requests()), served)
			require.Equal(t, n, len(h.Upstream.Requests()), "the primary gets exactly its quota, never a request past it")
			require.Equal(t, tc.requests-n, len(backup.Requests()))
			require.Equal(t, map[string]int{"default/openai": n, "default/backup": tc.requests - n}, served)
		})
	}
}

func TestAFullTokenQuotaSkipsThePrimaryOnTheRequestsEstimate(t *testing.T) {
	// Each request is estimated at its prompt plus maxTokens 1000 (> 1000 tokens): a quota of
	// 2500 tokens a minute has room for two.
	h, backup := quotaHarness(t, config.ProviderLimits{TokensPerMinute: 2500}, config.ProviderLimits{})
	for range 6 {
		b := chatBody("gpt-4o-mini", "hello there")
		b["maxTokens"] = 1000
		code, _, body := h.do("POST", "/api/ai/chat", adminKey, b)
		require.Equal(t, http.StatusOK, code, string(body))
	}
	require.Equal(t, 2, len(h.Upstream.Requests()))
	require.Equal(t, 4, len(backup.Requests()))
}

func TestWhenEveryTargetsQuotaIsFullTheGatewayAnswers503WithRetryAfterWithoutCallingThem(t *testing.T) {
	h, backup := quotaHarness(t, config.ProviderLimits{RequestsPerMinute: 2}, config.ProviderLimits{RequestsPerMinute: 1})
	for range 3 {
		code, _, body := h.do("POST", "/api/ai/chat", adminKey, chatBody("gpt-4o-mini", "hello there"))
		require.Equal(t, http.StatusOK, code, string(body))
	}
	start := time.Now()
	code, hdr, body := h.do("POST", "/api/ai/chat", adminKey, chatBody("gpt-4o-mini", "hello there"))
	require.Equal(t, http.StatusServiceUnavailable, code, string(body))
	_, c := errorBody(t, body)
	require.Equal(t, "no_usable_provider", c)
	ra, err := strconv.Atoi(hdr.Get("Retry-After"))
	require.NoError(t, err)
	require.Greater(t, ra, 1, "a minute window frees its first slot in about a minute")
	require.LessOrEqual(t, ra, 60)
	require.Less(t, time.Since(start), 5*time.Second, "a wait longer than MaxGateWait is not waited")
	require.Equal(t, 2, len(h.Upstream.Requests()))
	require.Equal(t, 1, len(backup.Requests()))
	// The request was released: one settle per request, the refused one charging nothing.
	settles := h.Gov.settles()
	require.Len(t, settles, 4)
	require.Zero(t, settles[3].Charge.Cost)
}
