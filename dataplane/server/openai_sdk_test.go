package server_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/providers/providertest"
)

func sdkClient(h *harness, key string) openai.Client {
	return openai.NewClient(option.WithBaseURL(h.URL+"/v1/"), option.WithAPIKey(key), option.WithMaxRetries(0),
		option.WithHeader("X-AI-User", "sdk-user"))
}

func TestTheOfficialOpenAISDKCompletesAChat(t *testing.T) {
	h := newHarness(t, harnessOpts{upstream: providertest.Options{Reply: "SDK says hi", PromptTokens: 12, CompletionTokens: 4}})
	c := sdkClient(h, adminKey)
	resp, err := c.Chat.Completions.New(t.Context(), openai.ChatCompletionNewParams{
		Model:    "gpt-4o-mini",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("be brief"), openai.UserMessage("hello")},
	})
	require.NoError(t, err)
	require.Len(t, resp.Choices, 1)
	require.Equal(t, "SDK says hi", resp.Choices[0].Message.Content)
	require.Equal(t, "stop", resp.Choices[0].FinishReason)
	require.Equal(t, "chat.completion", string(resp.Object))
	require.Equal(t, int64(16), resp.Usage.TotalTokens)
	s := h.Gov.settles()
	require.Len(t, s, 1)
	require.Equal(t, "sdk-user", s[0].Req.User, "X-AI-User names the user for /v1")
}

func TestTheOfficialOpenAISDKStreamsAChatWithUsage(t *testing.T) {
	h := newHarness(t, harnessOpts{upstream: providertest.Options{Reply: "streamed words arrive here", PromptTokens: 7, CompletionTokens: 4}})
	c := sdkClient(h, adminKey)
	stream := c.Chat.Completions.NewStreaming(t.Context(), openai.ChatCompletionNewParams{
		Model:         "gpt-4o-mini",
		Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage("stream please")},
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
		User:          openai.String("stream-user"),
	})
	acc := openai.ChatCompletionAccumulator{}
	chunks := 0
	for stream.Next() {
		acc.AddChunk(stream.Current())
		chunks++
	}
	require.NoError(t, stream.Err())
	require.NoError(t, stream.Close())
	require.Greater(t, chunks, 3)
	require.Equal(t, "streamed words arrive here", acc.Choices[0].Message.Content)
	require.Equal(t, "stop", acc.Choices[0].FinishReason)
	require.Equal(t, int64(11), acc.Usage.TotalTokens)
	s := h.Gov.settles()
	require.Len(t, s, 1)
	require.Equal(t, "stream-user", s[0].Req.User, "the OpenAI user field names the user")
}

func TestTheOfficialOpenAISDKEmbeds(t *testing.T) {
	h := newHarness(t, harnessOpts{upstream: providertest.Options{EmbeddingDims: 8}})
	c := sdkClient(h, adminKey)
	for _, format := range []openai.EmbeddingNewParamsEncodingFormat{"", openai.EmbeddingNewParamsEncodingFormatBase64} {
		resp, err := c.Embeddings.New(t.Context(), openai.EmbeddingNewParams{
			Model:          "text-embedding-3-small",
			Input:          openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"first", "second"}},
			EncodingFormat: format,
		})
		require.NoError(t, err, "format %q", format)
		require.Len(t, resp.Data, 2)
		require.Len(t, resp.Data[0].Embedding, 8, "format %q", format)
		require.Equal(t, int64(1), resp.Data[1].Index)
		require.Positive(t, resp.Usage.PromptTokens)
	}
}

func TestTheOfficialOpenAISDKSeesContractErrors(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	c := sdkClient(h, "wrong-key")
	_, err := c.Chat.Completions.New(t.Context(), openai.ChatCompletionNewParams{
		Model: "gpt-4o-mini", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("x")},
	})
	var apiErr *openai.Error
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, http.StatusUnauthorized, apiErr.StatusCode)
	require.Equal(t, "invalid_api_key", apiErr.Code)

	c = sdkClient(h, adminKey)
	_, err = c.Chat.Completions.New(t.Context(), openai.ChatCompletionNewParams{
		Model: "no-such-model", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("x")},
	})
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, http.StatusNotFound, apiErr.StatusCode)
	require.Equal(t, "model_not_found", apiErr.Code)
}

func TestV1ModelsListsProviderModelsAndRouteAliases(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	c := sdkClient(h, adminKey)
	page, err := c.Models.List(t.Context())
	require.NoError(t, err)
	var ids []string
	for _, m := range page.Data {
		ids = append(ids, m.ID)
	}
	require.ElementsMatch(t, []string{"default", "gpt-4o-mini", "text-embedding-3-small", "tiny-window"}, ids)
}

func TestV1ModerationsAnswersOpenAIsShape(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	c := sdkClient(h, adminKey)
	resp, err := c.Moderations.New(t.Context(), openai.ModerationNewParams{
		Input: openai.ModerationNewParamsInputUnion{OfStringArray: []string{"hello", "world"}},
	})
	require.NoError(t, err)
	require.Len(t, resp.Results, 2)
	raw := resp.Results[0].RawJSON()
	var m map[string]json.RawMessage
	require.NoError(t, json.Unmarshal([]byte(raw), &m))
	require.Contains(t, m, "categories")
	require.Contains(t, m, "category_scores")
}

func TestV1StreamingChunksEndWithDone(t *testing.T) {
	h := newHarness(t, harnessOpts{upstream: providertest.Options{Reply: "a b"}})
	code, hdr, raw := h.do("POST", "/v1/chat/completions", adminKey, map[string]any{
		"model": "gpt-4o-mini", "stream": true, "messages": []map[string]string{{"role": "user", "content": "x"}},
	})
	require.Equal(t, http.StatusOK, code, string(raw))
	require.Equal(t, "text/event-stream", hdr.Get("Content-Type"))
	events := readSSE(t, raw)
	require.Equal(t, "[DONE]", events[len(events)-1].Data)
	var first struct {
		Object  string
		Choices []struct {
			Delta struct{ Role string }
		}
	}
	require.NoError(t, json.Unmarshal([]byte(events[0].Data), &first))
	require.Equal(t, "chat.completion.chunk", first.Object)
	require.Equal(t, "assistant", first.Choices[0].Delta.Role)
	for _, e := range events[:len(events)-1] {
		require.Empty(t, e.Event, "OpenAI chunks are unnamed events")
		require.False(t, strings.Contains(e.Data, `"usage"`), "no usage chunk without include_usage")
	}
}
