package providertest_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/providers/providertest"
)

func sdkClient(srv *providertest.Server) *openai.Client {
	c := openai.NewClient(option.WithBaseURL(srv.BaseURL+"/"), option.WithAPIKey(providertest.DefaultAPIKey), option.WithMaxRetries(0))
	return &c
}

// The official SDK is the judge of the OpenAI fake's wire format.
func TestTheOfficialOpenAISDKUnderstandsTheFake(t *testing.T) {
	srv := providertest.NewOpenAI(t, providertest.Options{Reply: "Hi there friend", PromptTokens: 12, CompletionTokens: 3, CachedTokens: 4})
	client := sdkClient(srv)
	params := openai.ChatCompletionNewParams{
		Model:    "gpt-4o-mini",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hello")},
	}
	resp, err := client.Chat.Completions.New(t.Context(), params)
	require.NoError(t, err)
	require.Equal(t, "Hi there friend", resp.Choices[0].Message.Content)
	require.EqualValues(t, 12, resp.Usage.PromptTokens)
	require.EqualValues(t, 4, resp.Usage.PromptTokensDetails.CachedTokens)

	params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	stream := client.Chat.Completions.NewStreaming(t.Context(), params)
	acc := openai.ChatCompletionAccumulator{}
	for stream.Next() {
		acc.AddChunk(stream.Current())
	}
	require.NoError(t, stream.Err())
	require.Equal(t, "Hi there friend", acc.Choices[0].Message.Content)
	require.EqualValues(t, 3, acc.Usage.CompletionTokens)

	emb, err := client.Embeddings.New(t.Context(), openai.EmbeddingNewParams{
		Model: "text-embedding-3-small",
		Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"a", "b"}},
	})
	require.NoError(t, err)
	require.Len(t, emb.Data, 2)
	require.Len(t, emb.Data[0].Embedding, 8)
}

func TestTheSDKSeesTheFakesErrorsAsOpenAIErrors(t *testing.T) {
	srv := providertest.NewOpenAI(t, providertest.Options{Fault: providertest.FaultStatus, Status: 429, RetryAfter: "3"})
	_, err := sdkClient(srv).Chat.Completions.New(t.Context(), openai.ChatCompletionNewParams{
		Model: "gpt-4o", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hello")},
	})
	var apiErr *openai.Error
	require.True(t, errors.As(err, &apiErr), "got %v", err)
	require.Equal(t, http.StatusTooManyRequests, apiErr.StatusCode)
	require.Equal(t, "rate_limit_exceeded", apiErr.Code)
	require.Equal(t, "3", apiErr.Response.Header.Get("Retry-After"))
}

func TestAStalledFakeIsReleasedWhenTheClientLeaves(t *testing.T) {
	srv := providertest.NewOpenAI(t, providertest.Options{Fault: providertest.FaultStall})
	client := &http.Client{Timeout: 100 * time.Millisecond}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.BaseURL+"/chat/completions",
		strings.NewReader(`{"model":"m","messages":[{"role":"user","content":"x"}]}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+providertest.DefaultAPIKey)
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	_, err = client.Do(req)
	require.Error(t, err)
	require.Less(t, time.Since(start), 2*time.Second)
	// The server's cleanup (registered by NewOpenAI) must not hang on the stalled handler.
}

func TestOptionsCanChangeBetweenRequestsAndRequestsAreRecorded(t *testing.T) {
	srv := providertest.NewOllama(t, providertest.Options{})
	post := func() int {
		resp, err := http.Post(srv.URL+"/api/chat", "application/json", strings.NewReader(`{"model":"llama3","messages":[{"role":"user","content":"hi"}],"stream":false}`))
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusOK, post())
	srv.SetOptions(providertest.Options{Fault: providertest.FaultStatus, Status: 503})
	require.Equal(t, http.StatusServiceUnavailable, post())
	srv.SetOptions(providertest.Options{Models: []string{"other"}})
	require.Equal(t, http.StatusNotFound, post())
	reqs := srv.Requests()
	require.Len(t, reqs, 3)
	require.Equal(t, "/api/chat", reqs[0].Path)
	var body struct {
		Model string `json:"model"`
	}
	require.NoError(t, reqs[2].JSON(&body))
	require.Equal(t, "llama3", body.Model)
}
