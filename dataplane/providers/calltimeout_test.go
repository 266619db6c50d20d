package providers_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/providers"
	"github.com/nself-org/ai-orchestration/dataplane/providers/providertest"
)

// withDeadline and withBound run one Chat under a whole-call bound of d, set the old way (a
// deadline context around the call) and the new way (providers.WithCallTimeout).
func withDeadline(p providers.Provider, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	_, err := p.Chat(ctx, chatRequest())
	return err
}

func withBound(p providers.Provider, d time.Duration) error {
	_, err := p.Chat(providers.WithCallTimeout(context.Background(), &d), chatRequest())
	return err
}

// sameError requires the two ways of bounding a call to fail alike: same kind, message and
// retryability, as the request path maps errors by those.
func sameError(t *testing.T, old, bound error) {
	t.Helper()
	po := requireKind(t, old, providers.KindTimeout)
	pb := requireKind(t, bound, providers.KindTimeout)
	require.Equal(t, po.Message, pb.Message)
	require.Equal(t, po.Retryable(), pb.Retryable())
	require.ErrorIs(t, bound, context.DeadlineExceeded)
}

func TestACallTimeoutEndsAStalledCallAsADeadlineContextDoes(t *testing.T) {
	for _, u := range upstreams {
		cases := map[string]providertest.Options{
			"no headers":    {Latency: 10 * time.Second},
			"stalled reply": {Fault: providertest.FaultStall},
		}
		for name, opts := range cases {
			t.Run(string(u.kind)+"/"+name, func(t *testing.T) {
				srv := u.start(t, opts)
				// The provider's stall timeout is far longer than the bound: only the bound can end
				// the call this soon.
				p := newProvider(t, srv, func(c *config.Provider) { c.Timeout = 20 * time.Second })
				start := time.Now()
				bound := withBound(p, 150*time.Millisecond)
				require.Less(t, time.Since(start), 5*time.Second)
				require.GreaterOrEqual(t, time.Since(start), 150*time.Millisecond)
				sameError(t, withDeadline(p, 150*time.Millisecond), bound)
			})
		}
	}
}

// TestACallTimeoutEndsABodyThatKeepsTrickling is the case a stall timer alone would not end: bytes
// keep arriving (each kicks the watchdog) but the whole call outlasts the bound.
func TestACallTimeoutEndsABodyThatKeepsTrickling(t *testing.T) {
	body := []byte(chatReply)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for _, b := range body {
			select {
			case <-r.Context().Done():
				return
			case <-tick.C:
			}
			_, _ = w.Write([]byte{b})
			w.(http.Flusher).Flush()
		}
	}))
	t.Cleanup(srv.Close)
	p, err := providers.New(config.Provider{Name: "trickle", Type: config.ProviderOpenAICompatible, BaseURL: srv.URL, Timeout: 10 * time.Second}, providers.NewHTTPClient(0))
	require.NoError(t, err)
	start := time.Now()
	bound := withBound(p, 300*time.Millisecond)
	require.Less(t, time.Since(start), 3*time.Second, "the body takes %d × 20ms", len(body))
	sameError(t, withDeadline(p, 300*time.Millisecond), bound)
	require.Contains(t, bound.Error(), "deadline exceeded")
}

func TestTheStallTimeoutStillCutsWithinALongerCallTimeout(t *testing.T) {
	srv := providertest.NewOpenAI(t, providertest.Options{Fault: providertest.FaultStall})
	p := newProvider(t, srv, func(c *config.Provider) { c.Timeout = 100 * time.Millisecond })
	err := withBound(p, 20*time.Second)
	pe := requireKind(t, err, providers.KindTimeout)
	require.Equal(t, "no response from upstream for 100ms", pe.Message)
}

func TestACallWithinItsCallTimeoutSucceeds(t *testing.T) {
	for _, u := range upstreams {
		t.Run(string(u.kind), func(t *testing.T) {
			srv := u.start(t, providertest.Options{Reply: "hello there", Latency: 20 * time.Millisecond})
			p := newProvider(t, srv)
			d := 5 * time.Second
			r, err := p.Chat(providers.WithCallTimeout(t.Context(), &d), chatRequest())
			require.NoError(t, err)
			require.Equal(t, "hello there", r.Content)
		})
	}
}

func TestOnlyTheHTTPAdaptersBoundCalls(t *testing.T) {
	for _, typ := range []string{config.ProviderOpenAI, config.ProviderOpenAICompatible, config.ProviderAnthropic, config.ProviderGoogle, config.ProviderOllama} {
		p, err := providers.New(config.Provider{Name: "x", Type: typ, BaseURL: "http://127.0.0.1:1", APIKey: "k"}, nil)
		require.NoError(t, err)
		require.True(t, providers.BoundsCalls(p), typ)
	}
	m, err := providers.New(config.Provider{Name: "m", Type: config.ProviderMock}, nil)
	require.NoError(t, err)
	require.False(t, providers.BoundsCalls(m))
}
