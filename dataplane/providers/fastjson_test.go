package providers

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

// openAIReply is a chat.completion as OpenAI sends it today, with the fields we ignore.
const openAIReply = `{
  "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
  "object": "chat.completion",
  "created": 1741570283,
  "model": "gpt-4o-2024-08-06",
  "choices": [
    {
      "index": 0,
      "message": {
        "role": "assistant",
        "content": "The image shows a wooden boardwalk path running through a lush green field.\n\"Quoted\" \u00e9",
        "refusal": null,
        "annotations": []
      },
      "logprobs": null,
      "finish_reason": "stop"
    }
  ],
  "usage": {
    "prompt_tokens": 1117,
    "completion_tokens": 46,
    "total_tokens": 1163,
    "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
  },
  "service_tier": "default",
  "system_fingerprint": "fp_fc9f1d7035"
}`

// replyCases are reply bodies and whether the fast path must take them. Either way the result
// must be encoding/json's.
var replyCases = map[string]struct {
	body string
	fast bool
}{
	"OpenAI's reply":                  {openAIReply, true},
	"the fake's reply":                {`{"id":"chatcmpl-fake1","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from the fake upstream.","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":5,"total_tokens":8,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0}},"system_fingerprint":"fp_fake"}`, true},
	"null content and usage":          {`{"id":"x","choices":[{"message":{"content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]},"finish_reason":"tool_calls"}],"usage":null}`, true},
	"null everywhere":                 {`{"id":null,"model":null,"choices":[{"message":null,"finish_reason":null}],"usage":{"prompt_tokens":null,"prompt_tokens_details":null}}`, true},
	"no choices":                      {`{"choices":[]}`, true},
	"several choices":                 {`{"choices":[{"message":{"content":"a"}},{"message":{"content":"b"},"finish_reason":"length"}]}`, true},
	"a null choice":                   {`{"choices":[null]}`, false},
	"duplicate key":                   {`{"choices":[{"message":{"content":"a","content":"b"}}]}`, false},
	"key in another case":             {`{"Choices":[]}`, false},
	"fractional tokens":               {`{"usage":{"prompt_tokens":1.5}}`, false},
	"content of the wrong type":       {`{"choices":[{"message":{"content":5}}]}`, false},
	"invalid UTF-8":                   {"{\"id\":\"\xc3\"}", false},
	"truncated":                       {`{"choices":[{"message":{"content":"a"}`, false},
	"an error body with a 200 status": {`{"error":{"message":"boom","type":"server_error"}}`, true},
	"not JSON":                        {`<html>bad gateway</html>`, false},
}

// chunkCases are stream chunks, as replyCases.
var chunkCases = map[string]struct {
	body string
	fast bool
}{
	"the first chunk":      {`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","system_fingerprint":"fp","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}`, true},
	"a delta":              {`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":" wor\u00e9ld\n"},"logprobs":null,"finish_reason":null}]}`, true},
	"the last chunk":       {`{"id":"chatcmpl-1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`, true},
	"the usage chunk":      {`{"id":"chatcmpl-1","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4,"prompt_tokens_details":{"cached_tokens":2}}}`, true},
	"a null error":         {`{"choices":[],"error":null}`, true},
	"an error":             {`{"error":{"message":"boom","type":"server_error","code":null}}`, false},
	"a null finish reason": {`{"choices":[{"delta":{"content":null},"finish_reason":null}]}`, true},
	"a null delta":         {`{"choices":[{"delta":null}]}`, true},
	"a duplicate delta":    {`{"choices":[{"delta":{"content":"a"},"delta":{}}]}`, false},
}

// requireLikeEncodingJSON decodes body with the fast path and with encoding/json and fails
// unless the fast path either declined (leaving the value zero) or agreed exactly.
func requireLikeEncodingJSON[T any, P interface {
	*T
	fastDecoder
}](t *testing.T, body []byte) bool {
	t.Helper()
	var want, got T
	stdErr := json.Unmarshal(body, &want)
	if !P(&got).decodeFast(body) {
		var zero T
		require.Equal(t, zero, got, "a declined fast path must leave the value zero")
		return false
	}
	require.NoError(t, stdErr, "the fast path accepted %q, which encoding/json refuses", body)
	require.Equal(t, want, got, "the fast path decoded %q differently", body)
	return true
}

func TestFastReplyDecodingIsEncodingJSONs(t *testing.T) {
	for name, tc := range replyCases {
		t.Run(name, func(t *testing.T) {
			require.Equal(t, tc.fast, requireLikeEncodingJSON[oaiChatResponse](t, []byte(tc.body)))
		})
	}
	for name, tc := range chunkCases {
		t.Run("chunk "+name, func(t *testing.T) {
			require.Equal(t, tc.fast, requireLikeEncodingJSON[oaiChunk](t, []byte(tc.body)))
		})
	}
}

func FuzzFastReplyDecoding(f *testing.F) {
	for _, tc := range replyCases {
		f.Add([]byte(tc.body))
	}
	for _, tc := range chunkCases {
		f.Add([]byte(tc.body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		requireLikeEncodingJSON[oaiChatResponse](t, body)
		requireLikeEncodingJSON[oaiChunk](t, body)
	})
}

func BenchmarkDecodeChatReply(b *testing.B) {
	body := []byte(openAIReply)
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var r oaiChatResponse
			if err := json.Unmarshal(body, &r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var r oaiChatResponse
			if !r.decodeFast(body) {
				b.Fatal("declined")
			}
		}
	})
}
