package providers_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/providers"
	"github.com/nself-org/ai-orchestration/dataplane/providers/providertest"
)

// jsonBody decodes a recorded request body into a generic map.
func jsonBody(t *testing.T, r providertest.Request) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, r.JSON(&m))
	return m
}

func TestOpenAIRequestsUseTheDocumentedShape(t *testing.T) {
	srv := providertest.NewOpenAI(t, providertest.Options{})
	p := newProvider(t, srv)
	temp := 0.2
	req := chatRequest()
	req.Temperature, req.User = &temp, "user-1"
	req.ResponseFormat = &providers.ResponseFormat{Type: "json_schema", Name: "answer", Schema: json.RawMessage(`{"type":"object"}`)}
	_, err := p.Chat(t.Context(), req)
	require.NoError(t, err)
	s, err := p.ChatStream(t.Context(), chatRequest())
	require.NoError(t, err)
	_, _, err = drain(t, s)
	require.NoError(t, err)

	reqs := srv.Requests()
	require.Len(t, reqs, 2)
	require.Equal(t, "/v1/chat/completions", reqs[0].Path)
	require.Equal(t, "Bearer "+providertest.DefaultAPIKey, reqs[0].Header.Get("Authorization"))
	body := jsonBody(t, reqs[0])
	require.Equal(t, "test-model", body["model"])
	require.EqualValues(t, 64, body["max_completion_tokens"], "official OpenAI gets max_completion_tokens (o-series need it)")
	require.NotContains(t, body, "max_tokens")
	require.NotContains(t, body, "stream_options", "stream_options only with stream")
	require.Equal(t, "user-1", body["user"])
	require.Equal(t, map[string]any{"type": "json_schema", "json_schema": map[string]any{"name": "answer", "schema": map[string]any{"type": "object"}}}, body["response_format"])
	require.Equal(t, []any{
		map[string]any{"role": "system", "content": "Be brief."},
		map[string]any{"role": "user", "content": "Say hello to the world"},
	}, body["messages"])

	stream := jsonBody(t, reqs[1])
	require.Equal(t, true, stream["stream"])
	require.Equal(t, map[string]any{"include_usage": true}, stream["stream_options"])
}

func TestOpenAICompatibleSendsMaxTokensAndNoKeyWhenNoneIsSet(t *testing.T) {
	srv := providertest.NewOpenAI(t, providertest.Options{})
	p, err := providers.New(config.Provider{Name: "vllm", Type: config.ProviderOpenAICompatible, BaseURL: srv.BaseURL, APIKey: providertest.DefaultAPIKey}, nil)
	require.NoError(t, err)
	_, err = p.Chat(t.Context(), chatRequest())
	require.NoError(t, err)
	last, _ := srv.LastRequest()
	body := jsonBody(t, last)
	require.EqualValues(t, 64, body["max_tokens"])
	require.NotContains(t, body, "max_completion_tokens")
	_, isModerator := p.(providers.Moderator)
	require.False(t, isModerator, "openai-compatible servers are not assumed to moderate")

	_, err = providers.New(config.Provider{Name: "vllm", Type: config.ProviderOpenAICompatible}, nil)
	require.Error(t, err, "openai-compatible without a baseURL is refused")
}

func TestOpenAIModerationFlagsAndScores(t *testing.T) {
	srv := providertest.NewOpenAI(t, providertest.Options{})
	p := newProvider(t, srv)
	m, ok := p.(providers.Moderator)
	require.True(t, ok)
	res, err := m.Moderate(t.Context(), "omni-moderation-latest", []string{"a nice day", "I will kill it"})
	require.NoError(t, err)
	require.Len(t, res, 2)
	require.False(t, res[0].Flagged)
	require.True(t, res[1].Flagged)
	require.True(t, res[1].Categories["violence"])
	require.InDelta(t, 0.92, res[1].Scores["violence"], 1e-9)
	last, _ := srv.LastRequest()
	require.Equal(t, "/v1/moderations", last.Path)
}

func TestAnthropicRequestsMoveSystemToTopLevelAndAlwaysSendMaxTokens(t *testing.T) {
	srv := providertest.NewAnthropic(t, providertest.Options{})
	cases := map[string]struct {
		maxTokens int64
		models    []config.Model
		want      float64
	}{
		"the request's maxTokens wins":             {64, nil, 64},
		"the snapshot's model cap is the fallback": {0, []config.Model{{Name: "test-model", MaxOutputTokens: 1234}}, 1234},
		"a default applies when nothing is known":  {0, nil, 4096},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			p := newProvider(t, srv, func(c *config.Provider) { c.Models = tc.models })
			req := chatRequest()
			req.MaxTokens, req.User = tc.maxTokens, "user-1"
			req.Messages = append(req.Messages, providers.Message{Role: "user", Content: "and again"})
			_, err := p.Chat(t.Context(), req)
			require.NoError(t, err)
			last, _ := srv.LastRequest()
			require.Equal(t, "/v1/messages", last.Path)
			require.Equal(t, providertest.DefaultAPIKey, last.Header.Get("x-api-key"))
			require.Equal(t, "2023-06-01", last.Header.Get("anthropic-version"))
			require.Empty(t, last.Header.Get("Authorization"))
			body := jsonBody(t, last)
			require.Equal(t, tc.want, body["max_tokens"])
			require.Equal(t, "Be brief.", body["system"])
			require.Equal(t, []any{map[string]any{"role": "user", "content": "Say hello to the world\n\nand again"}}, body["messages"],
				"consecutive user turns are merged")
			require.Equal(t, map[string]any{"user_id": "user-1"}, body["metadata"])
		})
	}
}

func TestAnthropicUsageCountsCachedPromptTokens(t *testing.T) {
	srv := providertest.NewAnthropic(t, providertest.Options{PromptTokens: 100, CachedTokens: 60, CompletionTokens: 5})
	p := newProvider(t, srv)
	resp, err := p.Chat(t.Context(), chatRequest())
	require.NoError(t, err)
	require.Equal(t, providers.Usage{PromptTokens: 100, CompletionTokens: 5, CachedPromptTokens: 60}, resp.Usage)
	s, err := p.ChatStream(t.Context(), chatRequest())
	require.NoError(t, err)
	_, _, err = drain(t, s)
	require.NoError(t, err)
	u, ok := s.Usage()
	require.True(t, ok)
	require.Equal(t, providers.Usage{PromptTokens: 100, CompletionTokens: 5, CachedPromptTokens: 60}, u)
}

func TestAnthropicFakeRefusesWhatTheRealAPIRefuses(t *testing.T) {
	srv := providertest.NewAnthropic(t, providertest.Options{})
	cases := map[string]struct {
		body    string
		version string
		want    string
	}{
		"missing max_tokens":        {`{"model":"m","messages":[{"role":"user","content":"hi"}]}`, "2023-06-01", "max_tokens: Field required"},
		"system as a message role":  {`{"model":"m","max_tokens":5,"messages":[{"role":"system","content":"hi"}]}`, "2023-06-01", "role"},
		"missing anthropic-version": {`{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`, "", "anthropic-version"},
		"not JSON":                  {`{`, "2023-06-01", "JSON"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/v1/messages", stringsReader(tc.body))
			require.NoError(t, err)
			req.Header.Set("x-api-key", providertest.DefaultAPIKey)
			if tc.version != "" {
				req.Header.Set("anthropic-version", tc.version)
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			require.Equal(t, http.StatusBadRequest, resp.StatusCode)
			var e struct {
				Type  string `json:"type"`
				Error struct {
					Type    string `json:"type"`
					Message string `json:"message"`
				} `json:"error"`
			}
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&e))
			require.Equal(t, "error", e.Type)
			require.Equal(t, "invalid_request_error", e.Error.Type)
			require.Contains(t, e.Error.Message, tc.want)
		})
	}
}

func TestGoogleRequestsUseModelPathsRolesAndSystemInstruction(t *testing.T) {
	srv := providertest.NewGoogle(t, providertest.Options{})
	p := newProvider(t, srv)
	req := chatRequest()
	req.Messages = append(req.Messages, providers.Message{Role: "assistant", Content: "Hello!"}, providers.Message{Role: "user", Content: "Again"})
	req.ResponseFormat = &providers.ResponseFormat{Type: "json_object"}
	_, err := p.Chat(t.Context(), req)
	require.NoError(t, err)
	s, err := p.ChatStream(t.Context(), chatRequest())
	require.NoError(t, err)
	_, _, err = drain(t, s)
	require.NoError(t, err)
	_, err = p.Embed(t.Context(), &providers.EmbedRequest{Model: "gemini-embedding-001", Input: []string{"a", "b"}})
	require.NoError(t, err)

	reqs := srv.Requests()
	require.Len(t, reqs, 3)
	require.Equal(t, "/v1beta/models/test-model:generateContent", reqs[0].Path)
	require.Equal(t, providertest.DefaultAPIKey, reqs[0].Header.Get("x-goog-api-key"))
	require.Empty(t, reqs[0].RawQuery, "the key travels in a header, never in the URL")
	body := jsonBody(t, reqs[0])
	require.Equal(t, map[string]any{"parts": []any{map[string]any{"text": "Be brief."}}}, body["systemInstruction"])
	require.Equal(t, []any{
		map[string]any{"role": "user", "parts": []any{map[string]any{"text": "Say hello to the world"}}},
		map[string]any{"role": "model", "parts": []any{map[string]any{"text": "Hello!"}}},
		map[string]any{"role": "user", "parts": []any{map[string]any{"text": "Again"}}},
	}, body["contents"])
	require.Equal(t, map[string]any{"maxOutputTokens": float64(64), "responseMimeType": "application/json"}, body["generationConfig"])

	require.Equal(t, "/v1beta/models/test-model:streamGenerateContent", reqs[1].Path)
	require.Equal(t, "alt=sse", reqs[1].RawQuery)
	require.Equal(t, "/v1beta/models/gemini-embedding-001:batchEmbedContents", reqs[2].Path)
}

func TestGoogleRetryInfoDetailSetsRetryAfter(t *testing.T) {
	// The Gemini fake puts the delay into a google.rpc.RetryInfo detail, not a header.
	srv := providertest.NewGoogle(t, providertest.Options{Fault: providertest.FaultStatus, Status: 429, RetryAfter: "31"})
	_, err := newProvider(t, srv).Chat(t.Context(), chatRequest())
	pe := requireKind(t, err, providers.KindRateLimited)
	require.Equal(t, 31*time.Second, pe.RetryAfter)
	last, _ := srv.LastRequest()
	_ = last
}

func TestOllamaRequestsSetStreamExplicitlyAndOptions(t *testing.T) {
	srv := providertest.NewOllama(t, providertest.Options{})
	p := newProvider(t, srv)
	_, err := p.Chat(t.Context(), chatRequest())
	require.NoError(t, err)
	last, _ := srv.LastRequest()
	require.Equal(t, "/api/chat", last.Path)
	body := jsonBody(t, last)
	require.Equal(t, false, body["stream"], "Ollama streams by default, so false must be sent")
	require.Equal(t, map[string]any{"num_predict": float64(64)}, body["options"])
	require.Empty(t, last.Header.Get("Authorization"), "no key, no header")
}

func TestFactoryRefusesAnUnknownTypeAndDefaultsBaseURLs(t *testing.T) {
	_, err := providers.New(config.Provider{Name: "x", Type: "bogus"}, nil)
	require.ErrorContains(t, err, "unknown type")
	for _, typ := range []string{config.ProviderOpenAI, config.ProviderAnthropic, config.ProviderGoogle, config.ProviderOllama, config.ProviderMock} {
		p, err := providers.New(config.Provider{Name: "x", Type: typ}, nil)
		require.NoError(t, err, typ)
		require.NotNil(t, p)
	}
}

func stringsReader(s string) *strings.Reader { return strings.NewReader(s) }
