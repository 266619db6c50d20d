package server_test

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/money"
	"github.com/nself-org/ai-orchestration/dataplane/providers/providertest"
	"github.com/nself-org/ai-orchestration/dataplane/route"
)

// The primary target is the harness's upstream ("default/openai"); the secondary is a second
// OpenAI fake registered as "default/secondary" serving the same model.
const (
	primaryName   = "default/openai"
	secondaryName = "default/secondary"
)

// twoTargets routes gpt-4o-mini to the primary (priority 0) and then the secondary (priority 1)
// with the given strategy and one retry.
func twoTargets(secondary *providertest.Server, strategy string) func(*config.Snapshot) {
	return func(s *config.Snapshot) {
		s.Providers = append(s.Providers, config.Provider{
			Name: secondaryName, Type: config.ProviderOpenAI, BaseURL: secondary.BaseURL,
			APIKey: config.Secret(providertest.DefaultAPIKey),
			Models: []config.Model{{Name: "gpt-4o-mini", InputPerMillion: money.MustParseUSD("0.15"),
				OutputPerMillion: money.MustParseUSD("0.60"), ContextWindow: 128000, MaxOutputTokens: 1000}},
		})
		s.Routes[0].Targets = []config.Target{
			{Provider: primaryName, Model: "gpt-4o-mini", Weight: 1, Priority: 0},
			{Provider: secondaryName, Model: "gpt-4o-mini", Weight: 1, Priority: 1},
		}
		s.Routes[0].Strategy = strategy
		s.Routes[0].Retries = config.Retries{Attempts: 1}
	}
}

// fakeClock is a settable clock for the breaker's cooldown; safe for concurrent use.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// chatVia sends one chat and returns the provider that served it, requiring a 200.
func chatVia(t *testing.T, h *harness) string {
	t.Helper()
	code, hdr, body := h.do("POST", "/api/ai/chat", adminKey, chatBody("gpt-4o-mini", "hello there"))
	require.Equal(t, http.StatusOK, code, string(body))
	return hdr.Get("X-AI-Provider")
}

func TestAFailingPrimaryIsServedByTheSecondaryWithinTheSameCall(t *testing.T) {
	tests := []struct {
		name    string
		primary providertest.Options
	}{
		{name: "primary answers 500", primary: providertest.Options{Fault: providertest.FaultStatus, Status: http.StatusInternalServerError}},
		{name: "primary answers 503", primary: providertest.Options{Fault: providertest.FaultStatus, Status: http.StatusServiceUnavailable}},
		{name: "primary stalls past the provider timeout", primary: providertest.Options{Fault: providertest.FaultStall}},
		{name: "primary resets the connection", primary: providertest.Options{Fault: providertest.FaultReset}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			secondary := providertest.NewOpenAI(t, providertest.Options{})
			h := newHarness(t, harnessOpts{upstream: tc.primary, mutate: []func(*config.Snapshot){
				twoTargets(secondary, config.StrategyFailover),
				func(s *config.Snapshot) {
					// A stall is cut by the primary's own timeout, leaving time for the retry.
					s.Providers[1].Timeout = 300 * time.Millisecond
				},
			}})
			require.Equal(t, secondaryName, chatVia(t, h))
			require.Len(t, h.Upstream.Requests(), 1, "the primary was tried first")
			require.Len(t, secondary.Requests(), 1, "the secondary served the same call")
		})
	}
}

func TestAnOpenBreakerSkipsThePrimaryUntilAHalfOpenProbeSucceeds(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	secondary := providertest.NewOpenAI(t, providertest.Options{})
	h := newHarness(t, harnessOpts{
		upstream: providertest.Options{Fault: providertest.FaultStatus, Status: http.StatusInternalServerError},
		health:   route.HealthOptions{FailureThreshold: 2, Cooldown: time.Minute, Now: clock.Now},
		mutate:   []func(*config.Snapshot){twoTargets(secondary, config.StrategyFailover)},
	})

	// Two consecutive failures open the primary's breaker; both calls are still served.
	for range 2 {
		require.Equal(t, secondaryName, chatVia(t, h))
	}
	require.Len(t, h.Upstream.Requests(), 2)

	// While open, the primary gets no traffic at all.
	for range 5 {
		require.Equal(t, secondaryName, chatVia(t, h))
	}
	require.Len(t, h.Upstream.Requests(), 2, "an open breaker skips the primary")
	require.Len(t, secondary.Requests(), 7)

	// After the cooldown one probe goes through; it fails, so the breaker re-opens.
	clock.Advance(time.Minute + time.Second)
	require.Equal(t, secondaryName, chatVia(t, h))
	require.Len(t, h.Upstream.Requests(), 3, "exactly one probe reached the primary")
	require.Equal(t, secondaryName, chatVia(t, h))
	require.Len(t, h.Upstream.Requests(), 3, "a failed probe re-opens the breaker")

	// The primary recovers; the next probe succeeds, closes the breaker and it serves again.
	h.Upstream.SetOptions(providertest.Options{})
	clock.Advance(time.Minute + time.Second)
	require.Equal(t, primaryName, chatVia(t, h), "the successful probe is served by the primary")
	for range 3 {
		require.Equal(t, primaryName, chatVia(t, h))
	}
	require.Len(t, h.Upstream.Requests(), 7)
	require.Len(t, secondary.Requests(), 9, "the secondary got nothing once the primary recovered")
}

func TestLeastLatencyPrefersTheFasterOfTwoUpstreams(t *testing.T) {
	// The slow upstream is listed first, so a preference for it would be mere policy order.
	fast := providertest.NewOpenAI(t, providertest.Options{Latency: time.Millisecond})
	h := newHarness(t, harnessOpts{
		upstream: providertest.Options{Latency: 40 * time.Millisecond},
		mutate:   []func(*config.Snapshot){twoTargets(fast, config.StrategyLeastLatency)},
	})
	const warmUp, n = 4, 40
	for range warmUp {
		chatVia(t, h)
	}
	slowBefore, fastBefore := len(h.Upstream.Requests()), len(fast.Requests())
	require.Positive(t, slowBefore, "warm-up measured the slow upstream")
	require.Positive(t, fastBefore, "warm-up measured the fast upstream")
	byProvider := map[string]int{}
	for range n {
		byProvider[chatVia(t, h)]++
	}
	slow, quick := len(h.Upstream.Requests())-slowBefore, len(fast.Requests())-fastBefore
	require.Equal(t, n, slow+quick)
	require.Equal(t, quick, byProvider[secondaryName], "X-AI-Provider agrees with the fakes' counts")
	// Only exploration (2% of picks by default) sends traffic to the slow upstream.
	require.GreaterOrEqual(t, quick, n*9/10, "fast=%d slow=%d", quick, slow)
}
