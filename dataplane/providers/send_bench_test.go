package providers_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptrace"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/providers"
)

// realisticChat is the request hack/bench sends, as it reaches the adapter: a 1 KiB system
// message and a ~500 B user message with a few newlines and quotes, a temperature and a user.
func realisticChat() *providers.ChatRequest {
	words := strings.Fields(`the quarterly report shows "revenue" growth across all regions while operating costs remained stable please summarize the key findings`)
	text := func(n, seed int) string {
		var sb strings.Builder
		for i := seed; sb.Len() < n; i++ {
			sb.WriteString(words[(i*7)%len(words)])
			if i%17 == 0 {
				sb.WriteByte('\n')
			} else {
				sb.WriteByte(' ')
			}
		}
		return sb.String()[:n]
	}
	temp := 0.7
	return &providers.ChatRequest{
		Model: "gpt-4o-mini",
		Messages: []providers.Message{
			{Role: "system", Content: text(1024, 0)},
			{Role: "user", Content: "Request 1234: " + text(480, 3)},
		},
		MaxTokens: 256, Temperature: &temp, User: "bench-user-42",
	}
}

// benchChatReply is the chat completion the benchmarks' upstreams answer.
const benchChatReply = `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Revenue grew in every region while costs held steady."},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":300,"completion_tokens":12,"total_tokens":312,"prompt_tokens_details":{"cached_tokens":0}}}`

// benchChatCalls measures p.Chat(req), one call per iteration.
func benchChatCalls(b *testing.B, p providers.Provider, req *providers.ChatRequest) {
	b.Helper()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Chat(b.Context(), req); err != nil {
			b.Fatal(err)
		}
	}
}

// cannedUpstream answers every request with one fixed chat completion after reading the whole
// request body, without a network: what remains is the adapter's and net/http's client work.
type cannedUpstream struct{ reply []byte }

func (u cannedUpstream) RoundTrip(req *http.Request) (*http.Response, error) {
	if _, err := io.Copy(io.Discard, req.Body); err != nil {
		return nil, err
	}
	_ = req.Body.Close()
	// The request is written: say so as net/http's transport does, so that the call lets go of
	// (and recycles) its body as it would with a real upstream.
	if tr := httptrace.ContextClientTrace(req.Context()); tr != nil && tr.WroteRequest != nil {
		tr.WroteRequest(httptrace.WroteRequestInfo{})
	}
	return &http.Response{
		StatusCode: http.StatusOK, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"application/json"}},
		ContentLength: int64(len(u.reply)), Body: io.NopCloser(bytes.NewReader(u.reply)), Request: req,
	}, nil
}

// BenchmarkOpenAIChatThroughTheClient is one non-streamed chat call with the upstream replaced
// by an in-memory RoundTripper: encoding the body, building the request, http.Client.Do and
// decoding the reply.
func BenchmarkOpenAIChatThroughTheClient(b *testing.B) {
	hc := &http.Client{Transport: cannedUpstream{reply: []byte(benchChatReply)}}
	p, err := providers.New(config.Provider{Name: "bench/openai", Type: config.ProviderOpenAI, BaseURL: "http://127.0.0.1:1/v1", APIKey: "sk-bench"}, hc)
	require.NoError(b, err)
	benchChatCalls(b, p, realisticChat())
}

// BenchmarkOpenAIChatWithinARouteTimeout is BenchmarkOpenAIChatThroughTheClient under a route's
// timeout, bounded as the request path bounded it before (a deadline context per attempt) and as
// it does now for the HTTP adapters (providers.WithCallTimeout, enforced by the call's watchdog).
func BenchmarkOpenAIChatWithinARouteTimeout(b *testing.B) {
	hc := &http.Client{Transport: cannedUpstream{reply: []byte(benchChatReply)}}
	p, err := providers.New(config.Provider{Name: "bench/openai", Type: config.ProviderOpenAI, BaseURL: "http://127.0.0.1:1/v1", APIKey: "sk-bench"}, hc)
	require.NoError(b, err)
	req := realisticChat()
	timeout := 30 * time.Second
	b.Run("deadline-context", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			ctx, cancel := context.WithTimeout(b.Context(), timeout)
			_, err := p.Chat(ctx, req)
			cancel()
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("call-timeout", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := p.Chat(providers.WithCallTimeout(b.Context(), &timeout), req); err != nil {
				b.Fatal(err)
			}
		}
	})
}
