package providers_test

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/providers"
	"github.com/nself-org/ai-orchestration/dataplane/providers/providertest"
)

func TestSequentialCallsReuseOneConnection(t *testing.T) {
	for _, u := range upstreams {
		t.Run(string(u.kind), func(t *testing.T) {
			srv := u.start(t, providertest.Options{})
			p := newProvider(t, srv)
			for range 20 {
				_, err := p.Chat(t.Context(), chatRequest())
				require.NoError(t, err)
				s, err := p.ChatStream(t.Context(), chatRequest())
				require.NoError(t, err)
				_, _, err = drain(t, s)
				require.NoError(t, err)
			}
			// Error replies are drained too, so they do not cost a connection either.
			srv.SetOptions(providertest.Options{Fault: providertest.FaultStatus, Status: 429})
			for range 5 {
				_, err := p.Chat(t.Context(), chatRequest())
				requireKind(t, err, providers.KindRateLimited)
			}
			require.EqualValues(t, 1, srv.Connections())
		})
	}
}

func TestParallelCallsAreSafeAndPooled(t *testing.T) {
	srv := providertest.NewOpenAI(t, providertest.Options{})
	p := newProvider(t, srv)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 8 {
		wg.Go(func() {
			for range 8 {
				_, err := p.Chat(t.Context(), chatRequest())
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	// The transport may dial a spare while a connection is being returned, so allow some slack;
	// without pooling this would be 64.
	require.LessOrEqual(t, srv.Connections(), int64(16))
}

func TestEmbedErrorsMapLikeChatErrors(t *testing.T) {
	for _, u := range upstreams {
		if !u.embeds {
			continue
		}
		t.Run(string(u.kind), func(t *testing.T) {
			srv := u.start(t, providertest.Options{Fault: providertest.FaultStatus, Status: 429, RetryAfter: "2"})
			p := newProvider(t, srv)
			for _, in := range [][]string{{"one"}, {"one", "two"}} {
				_, err := p.Embed(t.Context(), &providers.EmbedRequest{Model: "e", Input: in})
				pe := requireKind(t, err, providers.KindRateLimited)
				require.Positive(t, pe.RetryAfter)
			}
			srv.SetOptions(providertest.Options{Fault: providertest.FaultMalformed})
			_, err := p.Embed(t.Context(), &providers.EmbedRequest{Model: "e", Input: []string{"x"}})
			requireKind(t, err, providers.KindMalformed)
		})
	}
}

func TestModerationErrorsAreMapped(t *testing.T) {
	srv := providertest.NewOpenAI(t, providertest.Options{Fault: providertest.FaultStatus, Status: 401})
	m, ok := newProvider(t, srv).(providers.Moderator)
	require.True(t, ok)
	_, err := m.Moderate(t.Context(), "", []string{"x"})
	requireKind(t, err, providers.KindAuth)
}

func BenchmarkOpenAIChatAgainstTheFake(b *testing.B) {
	srv := providertest.NewOpenAI(b, providertest.Options{DisableRecording: true})
	cfg := srv.Provider()
	p, err := providers.New(cfg, providers.NewHTTPClient(0))
	require.NoError(b, err)
	benchChatCalls(b, p, chatRequest())
}

func BenchmarkMockChat(b *testing.B) {
	p := providers.NewMock("bench/mock", configMock())
	req := chatRequest()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Chat(b.Context(), req); err != nil {
			b.Fatal(err)
		}
	}
}
