package providers_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/providers"
)

func mockProvider(t *testing.T, m *config.Mock) providers.Provider {
	t.Helper()
	p, err := providers.New(config.Provider{Name: "dev/mock", Type: config.ProviderMock, Mock: m}, nil)
	require.NoError(t, err)
	return p
}

func TestMockRepliesDeterministically(t *testing.T) {
	cases := map[string]struct {
		mock      *config.Mock
		wantReply string
		wantComp  int64
	}{
		"an empty reply echoes the last user message":    {nil, "Say hello to the world", 5},
		"a configured reply is returned":                 {&config.Mock{Reply: "Fixed answer here"}, "Fixed answer here", 3},
		"configured completion tokens override counting": {&config.Mock{Reply: "x", CompletionTokens: 500}, "x", 500},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			p := mockProvider(t, tc.mock)
			a, err := p.Chat(t.Context(), chatRequest())
			require.NoError(t, err)
			b, err := p.Chat(t.Context(), chatRequest())
			require.NoError(t, err)
			require.Equal(t, tc.wantReply, a.Content)
			require.Equal(t, tc.wantComp, a.Usage.CompletionTokens)
			require.Equal(t, a.Usage, b.Usage, "same request, same usage")
			require.Equal(t, providers.ApproxTokens("test-model", chatRequest().Messages), a.Usage.PromptTokens)

			s, err := p.ChatStream(t.Context(), chatRequest())
			require.NoError(t, err)
			text, _, err := drain(t, s)
			require.NoError(t, err)
			require.Equal(t, tc.wantReply, text)
			u, ok := s.Usage()
			require.True(t, ok)
			require.Equal(t, a.Usage, u)
		})
	}
}

func TestMockUsesThePluggableTokenCounter(t *testing.T) {
	old := providers.TokenCounter
	t.Cleanup(func() { providers.TokenCounter = old })
	providers.TokenCounter = func(string, []providers.Message) int64 { return 42 }
	resp, err := mockProvider(t, nil).Chat(t.Context(), chatRequest())
	require.NoError(t, err)
	require.EqualValues(t, 42, resp.Usage.PromptTokens)
}

func TestMockLatencyIsSpreadAcrossChunksAndHonoursTheContext(t *testing.T) {
	p := mockProvider(t, &config.Mock{Reply: "a b c d", Latency: 200 * time.Millisecond})
	start := time.Now()
	s, err := p.ChatStream(t.Context(), chatRequest())
	require.NoError(t, err)
	first, err := s.Recv()
	require.NoError(t, err)
	require.Equal(t, "a", first)
	ttft := time.Since(start)
	_, _, err = drain(t, s)
	require.NoError(t, err)
	total := time.Since(start)
	require.Less(t, ttft, 150*time.Millisecond, "the first chunk waits one share, not the whole latency")
	require.GreaterOrEqual(t, total, 200*time.Millisecond)

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	_, err = mockProvider(t, &config.Mock{Latency: time.Hour}).Chat(ctx, chatRequest())
	pe := requireKind(t, err, providers.KindTimeout)
	require.Equal(t, "dev/mock", pe.Provider)
}

func TestMockEmbeddingsAreDeterministicUnitVectors(t *testing.T) {
	p := mockProvider(t, nil)
	a, err := p.Embed(t.Context(), &providers.EmbedRequest{Model: "mock-embed", Input: []string{"alpha", "beta", "alpha"}})
	require.NoError(t, err)
	require.Len(t, a.Embeddings, 3)
	require.Equal(t, a.Embeddings[0], a.Embeddings[2])
	require.NotEqual(t, a.Embeddings[0], a.Embeddings[1])
	var norm float64
	for _, x := range a.Embeddings[0] {
		norm += float64(x) * float64(x)
	}
	require.InDelta(t, 1, norm, 1e-5)
	require.Positive(t, a.Usage.PromptTokens)
}

func configMock() config.Mock { return config.Mock{Reply: "Hello from the mock provider."} }
