package providers_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/providers"
	"github.com/nself-org/ai-orchestration/dataplane/providers/providertest"
)

// upstream is one provider under test: how to start its fake and what it can do.
type upstream struct {
	kind       providertest.Kind
	start      func(testing.TB, providertest.Options) *providertest.Server
	embeds     bool
	omitsUsage bool // can stream without usage
	statuses   []int
}

var upstreams = []upstream{
	{kind: providertest.OpenAI, start: providertest.NewOpenAI, embeds: true, omitsUsage: true, statuses: []int{500, 503}},
	{kind: providertest.Anthropic, start: providertest.NewAnthropic, embeds: false, statuses: []int{500, 529}},
	{kind: providertest.Google, start: providertest.NewGoogle, embeds: true, omitsUsage: true, statuses: []int{500, 503}},
	{kind: providertest.Ollama, start: providertest.NewOllama, embeds: true, omitsUsage: true, statuses: []int{500}},
}

func newProvider(t *testing.T, srv *providertest.Server, mutate ...func(*config.Provider)) providers.Provider {
	t.Helper()
	cfg := srv.Provider()
	for _, m := range mutate {
		m(&cfg)
	}
	p, err := providers.New(cfg, providers.NewHTTPClient(0))
	require.NoError(t, err)
	return p
}

func chatRequest() *providers.ChatRequest {
	return &providers.ChatRequest{
		Model: "test-model",
		Messages: []providers.Message{
			{Role: "system", Content: "Be brief."},
			{Role: "user", Content: "Say hello to the world"},
		},
		MaxTokens: 64,
	}
}

func drain(t *testing.T, s providers.Stream) (string, []string, error) {
	t.Helper()
	var sb strings.Builder
	var chunks []string
	for {
		d, err := s.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return sb.String(), chunks, nil
			}
			return sb.String(), chunks, err
		}
		chunks = append(chunks, d)
		sb.WriteString(d)
	}
}

func requireKind(t *testing.T, err error, kind providers.ErrorKind) *providers.Error {
	t.Helper()
	require.Error(t, err)
	pe, ok := providers.AsError(err)
	require.Truef(t, ok, "want *providers.Error, got %T: %v", err, err)
	require.Equalf(t, kind, pe.Kind, "error: %v", err)
	return pe
}

func TestChatReturnsTheReplyAndTheReportedUsage(t *testing.T) {
	for _, u := range upstreams {
		t.Run(string(u.kind), func(t *testing.T) {
			srv := u.start(t, providertest.Options{Reply: "Hello, world!", PromptTokens: 11, CompletionTokens: 4})
			resp, err := newProvider(t, srv).Chat(t.Context(), chatRequest())
			require.NoError(t, err)
			require.Equal(t, "Hello, world!", resp.Content)
			require.Equal(t, providers.Usage{PromptTokens: 11, CompletionTokens: 4}, resp.Usage)
			require.Len(t, srv.Requests(), 1)
		})
	}
}

func TestStreamDeliversEveryChunkAndTheUsage(t *testing.T) {
	for _, u := range upstreams {
		t.Run(string(u.kind), func(t *testing.T) {
			srv := u.start(t, providertest.Options{Reply: "one two three four five", PromptTokens: 9, CompletionTokens: 5})
			s, err := newProvider(t, srv).ChatStream(t.Context(), chatRequest())
			require.NoError(t, err)
			defer s.Close()
			text, chunks, err := drain(t, s)
			require.NoError(t, err)
			require.Equal(t, "one two three four five", text)
			require.Len(t, chunks, 5)
			usage, reported := s.Usage()
			require.True(t, reported)
			require.Equal(t, providers.Usage{PromptTokens: 9, CompletionTokens: 5}, usage)
			_, err = s.Recv()
			require.ErrorIs(t, err, io.EOF, "Recv after the end keeps returning EOF")
		})
	}
}

func TestStreamWithoutUsageSaysSo(t *testing.T) {
	for _, u := range upstreams {
		if !u.omitsUsage {
			continue
		}
		t.Run(string(u.kind), func(t *testing.T) {
			srv := u.start(t, providertest.Options{Reply: "a b", OmitUsage: true})
			s, err := newProvider(t, srv).ChatStream(t.Context(), chatRequest())
			require.NoError(t, err)
			defer s.Close()
			text, _, err := drain(t, s)
			require.NoError(t, err)
			require.Equal(t, "a b", text)
			_, reported := s.Usage()
			require.False(t, reported)
		})
	}
}

func TestEmbedReturnsOneVectorPerInputInOrder(t *testing.T) {
	for _, u := range upstreams {
		t.Run(string(u.kind), func(t *testing.T) {
			srv := u.start(t, providertest.Options{EmbeddingDims: 4})
			p := newProvider(t, srv)
			for _, inputs := range [][]string{{"only one"}, {"first text", "second", "third one here"}} {
				resp, err := p.Embed(t.Context(), &providers.EmbedRequest{Model: "embed-model", Input: inputs})
				if !u.embeds {
					requireKind(t, err, providers.KindUnsupported)
					return
				}
				require.NoError(t, err)
				require.Len(t, resp.Embeddings, len(inputs))
				for _, v := range resp.Embeddings {
					require.Len(t, v, 4)
				}
				if len(inputs) > 1 {
					require.NotEqual(t, resp.Embeddings[0], resp.Embeddings[1])
				}
				require.Positive(t, resp.Usage.PromptTokens)
			}
		})
	}
}

func TestUpstreamErrorStatusesMapToKinds(t *testing.T) {
	for _, u := range upstreams {
		cases := map[string]struct {
			status int
			kind   providers.ErrorKind
		}{
			"unauthorized is an auth error":      {401, providers.KindAuth},
			"forbidden is an auth error":         {403, providers.KindAuth},
			"not found is a not-found error":     {404, providers.KindNotFound},
			"bad request is a bad-request error": {400, providers.KindBadRequest},
			"too many requests is rate limited":  {429, providers.KindRateLimited},
		}
		for _, st := range u.statuses {
			cases["status "+http.StatusText(st)+" is a server error"] = struct {
				status int
				kind   providers.ErrorKind
			}{st, providers.KindServer}
		}
		for name, tc := range cases {
			t.Run(string(u.kind)+"/"+name, func(t *testing.T) {
				srv := u.start(t, providertest.Options{Fault: providertest.FaultStatus, Status: tc.status})
				p := newProvider(t, srv)
				_, err := p.Chat(t.Context(), chatRequest())
				pe := requireKind(t, err, tc.kind)
				require.Equal(t, tc.status, pe.Status)
				require.NotContains(t, pe.Error(), providertest.DefaultAPIKey)
				require.NotContains(t, pe.Error(), "Say hello", "no prompt text in errors")
				_, err = p.ChatStream(t.Context(), chatRequest())
				requireKind(t, err, tc.kind)
			})
		}
	}
}

func TestRateLimitCarriesRetryAfter(t *testing.T) {
	for _, u := range upstreams {
		t.Run(string(u.kind), func(t *testing.T) {
			srv := u.start(t, providertest.Options{Fault: providertest.FaultStatus, Status: 429, RetryAfter: "7"})
			_, err := newProvider(t, srv).Chat(t.Context(), chatRequest())
			pe := requireKind(t, err, providers.KindRateLimited)
			require.Equal(t, 7*time.Second, pe.RetryAfter)
			require.True(t, pe.Retryable())
		})
	}
}

func TestAWrongKeyIsAnAuthErrorThatDoesNotLeakTheKey(t *testing.T) {
	for _, u := range upstreams {
		t.Run(string(u.kind), func(t *testing.T) {
			opts := providertest.Options{}
			if u.kind == providertest.Ollama {
				opts.APIKey = "right-key" // Ollama checks a key only when one is configured
			}
			srv := u.start(t, opts)
			p := newProvider(t, srv, func(c *config.Provider) { c.APIKey = "sk-wrong-secret-key" })
			_, err := p.Chat(t.Context(), chatRequest())
			pe := requireKind(t, err, providers.KindAuth)
			require.NotContains(t, pe.Error(), "sk-wrong-secret-key")
		})
	}
}

func TestUnknownModelIsNotFound(t *testing.T) {
	for _, u := range upstreams {
		t.Run(string(u.kind), func(t *testing.T) {
			srv := u.start(t, providertest.Options{Models: []string{"other-model"}})
			_, err := newProvider(t, srv).Chat(t.Context(), chatRequest())
			requireKind(t, err, providers.KindNotFound)
		})
	}
}

func TestTransportFaultsMapToKinds(t *testing.T) {
	for _, u := range upstreams {
		cases := map[string]struct {
			opts   providertest.Options
			stream bool
			kind   providers.ErrorKind
		}{
			"malformed JSON body is malformed":        {providertest.Options{Fault: providertest.FaultMalformed}, false, providers.KindMalformed},
			"malformed stream chunk is malformed":     {providertest.Options{Fault: providertest.FaultMalformed, FaultAfterChunks: 1}, true, providers.KindMalformed},
			"reset before the reply is a connection":  {providertest.Options{Fault: providertest.FaultReset}, false, providers.KindConnection},
			"reset mid-stream is a connection error":  {providertest.Options{Fault: providertest.FaultReset, FaultAfterChunks: 2}, true, providers.KindConnection},
			"stall before the reply is a timeout":     {providertest.Options{Fault: providertest.FaultStall}, false, providers.KindTimeout},
			"stall mid-stream is a timeout":           {providertest.Options{Fault: providertest.FaultStall, FaultAfterChunks: 2}, true, providers.KindTimeout},
			"in-stream error event is a server error": {providertest.Options{Fault: providertest.FaultStreamError, FaultAfterChunks: 1}, true, providers.KindServer},
		}
		for name, tc := range cases {
			t.Run(string(u.kind)+"/"+name, func(t *testing.T) {
				tc.opts.Reply = "one two three four"
				srv := u.start(t, tc.opts)
				p := newProvider(t, srv, func(c *config.Provider) { c.Timeout = 300 * time.Millisecond })
				if !tc.stream {
					_, err := p.Chat(t.Context(), chatRequest())
					requireKind(t, err, tc.kind)
					return
				}
				s, err := p.ChatStream(t.Context(), chatRequest())
				if err == nil {
					defer s.Close()
					_, _, err = drain(t, s)
				}
				requireKind(t, err, tc.kind)
			})
		}
	}
}

func TestStreamCutWithoutTheEndMarkerIsAConnectionError(t *testing.T) {
	// A proxy that ends the response cleanly after two chunks, with no terminal frame.
	for _, u := range upstreams {
		t.Run(string(u.kind), func(t *testing.T) {
			srv := u.start(t, providertest.Options{Reply: "one two three four", Fault: providertest.FaultReset, FaultAfterChunks: 4})
			s, err := newProvider(t, srv).ChatStream(t.Context(), chatRequest())
			require.NoError(t, err)
			defer s.Close()
			text, _, err := drain(t, s)
			requireKind(t, err, providers.KindConnection)
			require.Equal(t, "one two three four", text, "text before the cut is delivered")
		})
	}
}

func TestConnectionRefusedIsAConnectionError(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	for _, typ := range []string{config.ProviderOpenAI, config.ProviderAnthropic, config.ProviderGoogle, config.ProviderOllama} {
		t.Run(typ, func(t *testing.T) {
			p, err := providers.New(config.Provider{Name: "x", Type: typ, BaseURL: "http://" + addr, APIKey: "k", Timeout: time.Second}, nil)
			require.NoError(t, err)
			_, err = p.Chat(t.Context(), chatRequest())
			pe := requireKind(t, err, providers.KindConnection)
			require.True(t, pe.Retryable())
		})
	}
}

func TestCallerDeadlineIsATimeout(t *testing.T) {
	srv := providertest.NewOpenAI(t, providertest.Options{Latency: 5 * time.Second})
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	_, err := newProvider(t, srv).Chat(ctx, chatRequest())
	requireKind(t, err, providers.KindTimeout)
}

func TestSlowButSteadyStreamIsNotCut(t *testing.T) {
	// Each gap is below the stall timeout, the whole stream is well above it.
	srv := providertest.NewAnthropic(t, providertest.Options{Reply: "a b c d e f", ChunkDelay: 80 * time.Millisecond})
	p := newProvider(t, srv, func(c *config.Provider) { c.Timeout = 250 * time.Millisecond })
	s, err := p.ChatStream(t.Context(), chatRequest())
	require.NoError(t, err)
	defer s.Close()
	text, _, err := drain(t, s)
	require.NoError(t, err)
	require.Equal(t, "a b c d e f", text)
}

func TestClosingAStreamEarlyReleasesIt(t *testing.T) {
	srv := providertest.NewOpenAI(t, providertest.Options{Reply: "a b c d e f", ChunkDelay: 20 * time.Millisecond})
	s, err := newProvider(t, srv).ChatStream(t.Context(), chatRequest())
	require.NoError(t, err)
	d, err := s.Recv()
	require.NoError(t, err)
	require.Equal(t, "a", d)
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "Close is idempotent")
	_, err = s.Recv()
	require.Error(t, err)
}
