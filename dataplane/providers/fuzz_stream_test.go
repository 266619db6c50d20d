package providers

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"
)

// fuzzStream decodes arbitrary bytes as one provider's stream: it must end (EOF or an *Error)
// within a bounded number of Recv calls and never panic.
func fuzzStream(t *testing.T, data []byte, mk func(b base, c *call) *httpStream) {
	b := base{name: "fuzz", timeout: time.Minute}
	body := io.NopCloser(bytes.NewReader(data))
	c := &call{resp: &http.Response{StatusCode: 200, Body: body}, body: body, cancel: func() {}, ctx: context.Background()}
	s := mk(b, c)
	defer s.Close()
	for i := 0; i < len(data)+2; i++ {
		_, err := s.Recv()
		if err == nil {
			continue
		}
		if errors.Is(err, io.EOF) {
			return
		}
		if _, ok := AsError(err); !ok {
			t.Fatalf("error is not a *providers.Error: %T %v", err, err)
		}
		return
	}
	t.Fatalf("stream did not terminate")
}

func FuzzOpenAIStream(f *testing.F) {
	f.Add([]byte("data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"},\"finish_reason\":\"stop\"}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}\n\ndata: [DONE]\n\n"))
	f.Add([]byte("data: {\"error\":{\"message\":\"boom\",\"type\":\"server_error\"}}\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzStream(t, data, func(b base, c *call) *httpStream { return (&openAI{base: b}).stream(c) })
	})
}

func FuzzAnthropicStream(f *testing.F) {
	f.Add([]byte("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":2}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"))
	f.Add([]byte("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzStream(t, data, func(b base, c *call) *httpStream { return (&anthropic{base: b}).stream(c) })
	})
}

func FuzzGoogleStream(f *testing.F) {
	f.Add([]byte("data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hi\"}],\"role\":\"model\"},\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":3,\"candidatesTokenCount\":1}}\r\n\r\n"))
	f.Add([]byte("data: {\"error\":{\"code\":500,\"message\":\"x\",\"status\":\"INTERNAL\"}}\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzStream(t, data, func(b base, c *call) *httpStream { return (&google{base: b}).stream(c) })
	})
}

func FuzzOllamaStream(f *testing.F) {
	f.Add([]byte("{\"message\":{\"content\":\"Hi\"},\"done\":false}\n{\"message\":{\"content\":\"\"},\"done\":true,\"prompt_eval_count\":5,\"eval_count\":1}\n"))
	f.Add([]byte("{\"error\":\"model not found\"}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzStream(t, data, func(b base, c *call) *httpStream { return (&ollama{base: b}).stream(c) })
	})
}
