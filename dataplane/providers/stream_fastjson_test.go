package providers

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/internal/jsondiff"
	"github.com/nself-org/ai-orchestration/dataplane/providers/providertest"
)

// The Anthropic, Gemini and Ollama stream frames are decoded by unmarshalFast, as the OpenAI
// chunks are: these tables and the fuzz target hold the library to encoding/json on each
// adapter's frame type, as TestReplyDecodingIsEncodingJSONs does for OpenAI's.

// streamFrameCases are frames as the providers send them, and broken or odd ones.
var streamFrameCases = []string{
	// Anthropic, as the Messages API streams today.
	`{"type":"message_start","message":{"id":"msg_01","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"cache_creation_input_tokens":0,"cache_read_input_tokens":10,"output_tokens":1,"service_tier":"standard"}}}`,
	`{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`, `{"type": "ping"}`,
	`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" wor\u00e9ld\n<&>"}}`,
	`{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"a\":"}}`,
	`{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}}`,
	`{"type":"message_delta","delta":{"stop_reason":"max_tokens"},"usage":{"input_tokens":3,"cache_creation_input_tokens":2,"cache_read_input_tokens":1,"output_tokens":9}}`,
	`{"type":"message_stop"}`, `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`,
	`{"type":"message_start","message":null}`, `{"type":"content_block_delta","delta":null,"usage":null,"error":null}`,
	`{"Type":"MESSAGE_STOP"}`, `{"type":"content_block_delta","delta":{"text":"a"},"delta":{"type":"text_delta"}}`,
	`{"type":"message_delta","usage":{"output_tokens":1},"usage":{"input_tokens":2}}`, `{"message":{"usage":{"input_tokens":1}},"message":{}}`,
	// Gemini, as streamGenerateContent?alt=sse sends it.
	`{"candidates":[{"content":{"parts":[{"text":"Hello"}],"role":"model"},"index":0}],"usageMetadata":{"promptTokenCount":8,"totalTokenCount":8},"modelVersion":"gemini-2.5-flash","responseId":"abc"}`,
	`{"candidates":[{"content":{"parts":[{"text":" world"},{"text":"!","thought":true}],"role":"model"},"finishReason":"STOP","index":0,"safetyRatings":[{"category":"HARM_CATEGORY_HATE_SPEECH","probability":"NEGLIGIBLE"}]}],"usageMetadata":{"promptTokenCount":8,"candidatesTokenCount":3,"totalTokenCount":31,"thoughtsTokenCount":20,"cachedContentTokenCount":4,"promptTokensDetails":[{"modality":"TEXT","tokenCount":8}]},"modelVersion":"gemini-2.5-flash","responseId":"abc"}`,
	`{"promptFeedback":{"blockReason":"SAFETY","safetyRatings":[]},"usageMetadata":{"promptTokenCount":3}}`,
	`{"error":{"code":429,"message":"Resource exhausted","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"7s"},{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"RATE_LIMIT_EXCEEDED"}]}}`,
	`{"candidates":[]}`, `{"candidates":[{"content":null,"finishReason":null}]}`, `{"candidates":[{"content":{"parts":null}}]}`,
	`{"candidates":[{"content":{"parts":[{"text":"a"}]}}],"candidates":[{"finishReason":"STOP"}]}`, `{"usageMetadata":{"promptTokenCount":1},"usageMetadata":null}`,
	`{"error":{"code":1.5}}`, `{"error":{"details":[{"@type":1}]}}`,
	// Ollama, as /api/chat streams it.
	`{"model":"llama3.2","created_at":"2025-01-01T00:00:00.000000Z","message":{"role":"assistant","content":"Hel"},"done":false}`,
	`{"model":"llama3.2","created_at":"2025-01-01T00:00:01Z","message":{"role":"assistant","content":""},"done_reason":"stop","done":true,"total_duration":1000000,"load_duration":100000,"prompt_eval_count":26,"prompt_eval_duration":200000,"eval_count":290,"eval_duration":700000}`,
	`{"error":"an error was encountered while running the model"}`, `{"error":{"message":"x"}}`, `{"done":"true"}`, `{"done":1}`,
	`{"message":{"content":"a","tool_calls":[{"function":{"name":"f","arguments":{}}}]},"done":false}`,
	`{"message":null,"done":true,"prompt_eval_count":null,"eval_count":3}`, `{"message":{"content":"a"},"message":{"role":"x"}}`,
	// encoding/json's key matching and broken documents.
	`{"TYPE":"ping","Message":{"Usage":{"Input_Tokens":1}}}`, "{\"\u017fype\":\"x\"}", `{"DONE":true,"Eval_Count":2}`,
	`{"type":"message_stop"`, `event: ping`, `null`, ``, `[]`, `{"type":"a"} {}`, "{\"type\":\"\xc3\"}", `{"x":"\0"}`,
}

// streamFrameBodies are the cases above, each field of the three frame types set to every value
// of jsondiff.Values, and every frame the providertest fakes stream.
func streamFrameBodies(t *testing.T) []string {
	out := append([]string(nil), streamFrameCases...)
	for _, v := range jsondiff.Values {
		for _, k := range []string{"type", "message", "delta", "usage", "error", "candidates", "promptFeedback", "usageMetadata",
			"model", "done", "done_reason", "prompt_eval_count", "eval_count", "x"} {
			out = append(out, `{"`+k+`":`+v+`}`)
		}
		for _, k := range []string{"type", "text"} {
			out = append(out, `{"delta":{"`+k+`":`+v+`}}`)
		}
		for _, k := range []string{"input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"} {
			out = append(out, `{"usage":{"`+k+`":`+v+`}}`, `{"message":{"usage":{"`+k+`":`+v+`}}}`)
		}
		for _, k := range []string{"type", "message"} {
			out = append(out, `{"error":{"`+k+`":`+v+`}}`)
		}
		for _, k := range []string{"content", "finishReason"} {
			out = append(out, `{"candidates":[{"`+k+`":`+v+`}]}`)
		}
		out = append(out, `{"candidates":[{"content":{"parts":[{"text":`+v+`}]}}]}`, `{"candidates":[{"content":{"parts":`+v+`}}]}`,
			`{"promptFeedback":{"blockReason":`+v+`}}`, `{"message":{"content":`+v+`}}`)
		for _, k := range []string{"promptTokenCount", "candidatesTokenCount", "thoughtsTokenCount", "cachedContentTokenCount", "totalTokenCount"} {
			out = append(out, `{"usageMetadata":{"`+k+`":`+v+`}}`)
		}
		for _, k := range []string{"code", "message", "status", "details"} {
			out = append(out, `{"error":{"`+k+`":`+v+`}}`)
		}
		out = append(out, `{"error":{"details":[{"@type":`+v+`,"reason":`+v+`,"retryDelay":`+v+`}]}}`)
	}
	for _, a := range streamAdapters {
		for _, frame := range fakeStreamFrames(t, a.kind) {
			out = append(out, string(frame))
		}
	}
	return out
}

// fakeStreamFrames are the JSON frames of a providertest fake's stream: the data of each SSE
// event, or each NDJSON line.
func fakeStreamFrames(t testing.TB, kind providertest.Kind) [][]byte {
	body := fakeStreamBody(t, kind)
	var frames [][]byte
	if kind == providertest.Ollama {
		nd := NewNDJSONReader(bytes.NewReader(body), 0)
		for {
			line, err := nd.Next()
			if err != nil {
				return frames
			}
			frames = append(frames, append([]byte(nil), line...))
		}
	}
	sse := NewSSEReader(bytes.NewReader(body), 0)
	for {
		ev, err := sse.Next()
		if err != nil {
			return frames
		}
		frames = append(frames, ev.Data)
	}
}

func requireStreamFramesLikeEncodingJSON(t *testing.T, body []byte) {
	t.Helper()
	requireLikeEncodingJSON[antEvent](t, body)
	requireLikeEncodingJSON[gemResponse](t, body)
	requireLikeEncodingJSON[olChatResponse](t, body)
}

func TestStreamFrameDecodingIsEncodingJSONs(t *testing.T) {
	bodies := streamFrameBodies(t)
	if len(bodies) < 1000 {
		t.Fatalf("only %d bodies", len(bodies))
	}
	for _, body := range bodies {
		requireStreamFramesLikeEncodingJSON(t, []byte(body))
	}
}

func FuzzStreamFrameDecodingIsEncodingJSONs(f *testing.F) {
	for _, body := range streamFrameCases {
		f.Add([]byte(body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		requireStreamFramesLikeEncodingJSON(t, body)
	})
}

// Each adapter yields the fake's reply and usage whatever sizes the upstream's reads come in:
// the relay's line buffer, reused between events, never leaves a delta pointing into bytes read
// over later. Deltas are checked after the whole stream is read, when the buffer has been
// overwritten many times.
func TestRelayedStreamsDecodeTheSameWhateverTheReads(t *testing.T) {
	for _, a := range streamAdapters {
		data := fakeStreamBody(t, a.kind)
		for _, n := range []int{1, 2, 7, 100, 511, 4096, len(data)} {
			var r io.Reader = bytes.NewReader(data)
			if n < len(data) {
				r = &smallReads{r: r, n: n}
			}
			body := io.NopCloser(r)
			c := &call{resp: &http.Response{StatusCode: 200, Body: body}, body: body, cancel: func() {}, ctx: context.Background()}
			s := a.mk(base{name: "t", timeout: time.Minute}, c)
			var deltas []string
			for {
				d, err := s.Recv()
				if errors.Is(err, io.EOF) {
					break
				}
				require.NoError(t, err, "%s, reads of %d", a.kind, n)
				deltas = append(deltas, d)
			}
			require.Len(t, deltas, 16, "%s, reads of %d", a.kind, n)
			require.Equal(t, benchStreamReply, strings.Join(deltas, ""), "%s, reads of %d", a.kind, n)
			u, ok := s.Usage()
			require.True(t, ok)
			require.Equal(t, int64(len(strings.Fields(benchStreamReply))), u.CompletionTokens, "%s, reads of %d", a.kind, n)
			require.Positive(t, u.PromptTokens)
		}
	}
}

func TestEventNamesAreTheirBytes(t *testing.T) {
	for _, name := range []string{"content_block_delta", "content_block_start", "content_block_stop", "message_start",
		"message_delta", "message_stop", "ping", "error", "", "Ping", "message_stop ", "\xff"} {
		require.Equal(t, name, eventName([]byte(name)))
	}
}
