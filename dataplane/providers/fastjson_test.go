package providers

import (
	"bytes"
	"encoding/json"
	"testing"

	gojson "github.com/goccy/go-json"
	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/internal/jsondiff"
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

// replyCases are replies and stream chunks, valid and not, on which the library must behave as
// encoding/json.
var replyCases = []string{
	openAIReply,
	`{"id":"chatcmpl-fake1","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from the fake upstream.","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":5,"total_tokens":8,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0}},"system_fingerprint":"fp_fake"}`,
	`{"id":"x","choices":[{"message":{"content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]},"finish_reason":"tool_calls"}],"usage":null}`,
	`{"id":null,"model":null,"choices":[{"message":null,"finish_reason":null}],"usage":{"prompt_tokens":null,"prompt_tokens_details":null}}`,
	`{"choices":[{"message":{"content":"a"}},{"message":{"content":"b"},"finish_reason":"length"}]}`,
	`{"error":{"message":"boom","type":"server_error"}}`, `{"error":{"message":"boom","type":"server_error","code":null}}`,
	`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","system_fingerprint":"fp","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}`,
	`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":" wor\u00e9ld\n"},"logprobs":null,"finish_reason":null}]}`,
	`{"id":"chatcmpl-1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`,
	`{"id":"chatcmpl-1","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4,"prompt_tokens_details":{"cached_tokens":2}}}`,
	`{"choices":[],"error":null}`, `{"choices":[{"delta":{"content":null},"finish_reason":null}]}`, `{"choices":[{"delta":null}]}`,
	// encoding/json's merge rules: a repeated key decodes into what the first one left.
	`{"id":"a","id":null}`, `{"choices":[{"message":{"content":"a"}}],"choices":[{"finish_reason":"stop"}]}`,
	`{"choices":[{"message":{"content":"a"}},{"message":{"content":"b"}}],"choices":[{}]}`,
	`{"choices":[{"delta":{"content":"a"},"finish_reason":"x"}],"choices":[{"delta":null}]}`, `{"choices":[{"delta":{"content":"a"},"delta":{}}]}`,
	`{"usage":{"prompt_tokens":1,"completion_tokens":2},"usage":{"total_tokens":3}}`, `{"usage":{"prompt_tokens":1},"usage":null}`,
	`{"usage":{"prompt_tokens":1,"prompt_tokens_details":{"cached_tokens":1}},"usage":{"prompt_tokens_details":{}}}`,
	`{"error":{"message":"m","code":"c"},"error":{"type":"t"}}`, `{"error":{"code":{"a" : [1, 2]}}}`, `{"error":{"code" :  null }}`,
	`{"choices":[{"message":{"content":"a","content":null}}]}`, `{"choices":[{"finish_reason":"a","finish_reason":null}]}`,
	// encoding/json's key matching: exact first, then case-insensitive with Unicode folding.
	`{"ID":"a","Id":"b"}`, `{"\u0069d":"a"}`, `{"Choices":[{"Message":{"Content":"x"}}]}`, "{\"\u017fhoices\":[]}", `{"\u017fhoices":[]}`,
	// Invalid documents.
	`{"choices":[{"message":{"content":"a"}`, `<html>bad gateway</html>`, `null`, ``, `{"x":"\0"}`, `{"id":"a"} {}`, "{\"id\":\"\xc3\"}",
}

func replyBodies() []string {
	out := append([]string(nil), replyCases...)
	for _, v := range jsondiff.Values {
		for _, k := range []string{"id", "model", "choices", "usage", "error", "x"} {
			out = append(out, `{"`+k+`":`+v+`}`)
		}
		for _, k := range []string{"message", "delta", "finish_reason", "x"} {
			out = append(out, `{"choices":[{"`+k+`":`+v+`}]}`)
		}
		out = append(out, `{"choices":[{"message":{"content":`+v+`},"delta":{"content":`+v+`}}]}`)
		for _, k := range []string{"prompt_tokens", "completion_tokens", "total_tokens", "prompt_tokens_details", "x"} {
			out = append(out, `{"usage":{"`+k+`":`+v+`}}`)
		}
		out = append(out, `{"usage":{"prompt_tokens_details":{"cached_tokens":`+v+`}}}`)
		for _, k := range []string{"message", "type", "code"} {
			out = append(out, `{"error":{"`+k+`":`+v+`}}`)
		}
	}
	return out
}

// requireLikeEncodingJSON fails unless unmarshalFast accepts body exactly when encoding/json
// does, with the same value (or error), and leaves nothing pointing into body.
func requireLikeEncodingJSON[T any](t *testing.T, body []byte) {
	t.Helper()
	var want, got T
	stdErr := json.Unmarshal(body, &want)
	dup := bytes.Clone(body)
	err := unmarshalFast(dup, &got)
	if stdErr != nil {
		require.Error(t, gojson.Unmarshal(body, new(T)), "the library accepted %q, which encoding/json refuses: %v", body, stdErr)
		require.Equal(t, stdErr.Error(), err.Error(), "a refused body gets encoding/json's error")
		return
	}
	require.NoError(t, gojson.Unmarshal(body, new(T)), "the library refused %q, which encoding/json accepts", body)
	require.NoError(t, err)
	for i := range dup {
		dup[i] = 'x' // the reply buffer is pooled and the stream buffer reused
	}
	jsondiff.RequireSameValue(t, want, got, body)
}

func TestReplyDecodingIsEncodingJSONs(t *testing.T) {
	for _, body := range replyBodies() {
		requireLikeEncodingJSON[oaiChatResponse](t, []byte(body))
		requireLikeEncodingJSON[oaiChunk](t, []byte(body))
	}
}

func FuzzReplyDecodingIsEncodingJSONs(f *testing.F) {
	// The hand-picked cases only: the cross product of the test above makes the baseline
	// coverage run too long for a short fuzzing budget.
	for _, body := range replyCases {
		f.Add([]byte(body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		requireLikeEncodingJSON[oaiChatResponse](t, body)
		requireLikeEncodingJSON[oaiChunk](t, body)
	})
}

func BenchmarkDecodeChatReply(b *testing.B) {
	body := []byte(openAIReply)
	for name, unmarshal := range map[string]func([]byte, any) error{"encoding/json": json.Unmarshal, "go-json": gojson.Unmarshal} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var r oaiChatResponse
				if err := unmarshal(body, &r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
