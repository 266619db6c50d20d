package providertest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// anthropicErr is Anthropic's error envelope: {"type":"error","error":{"type","message"}}.
func anthropicErr(typ, message string) map[string]any {
	return map[string]any{"type": "error", "error": map[string]any{"type": typ, "message": message}, "request_id": "req_fake"}
}

// anthropicStatusBody is the body Anthropic sends with each status (its documented error types).
func anthropicStatusBody(status int) any {
	switch status {
	case http.StatusBadRequest:
		return anthropicErr("invalid_request_error", "Invalid request.")
	case http.StatusUnauthorized:
		return anthropicErr("authentication_error", "invalid x-api-key")
	case http.StatusForbidden:
		return anthropicErr("permission_error", "Your API key does not have permission to use the specified resource.")
	case http.StatusNotFound:
		return anthropicErr("not_found_error", "model: unknown")
	case http.StatusRequestEntityTooLarge:
		return anthropicErr("request_too_large", "Request exceeds the maximum allowed number of bytes.")
	case http.StatusTooManyRequests:
		return anthropicErr("rate_limit_error", "This request would exceed the rate limit for your organization of 50 requests per minute.")
	case 529:
		return anthropicErr("overloaded_error", "Overloaded")
	}
	return anthropicErr("api_error", "Internal server error")
}

func serveAnthropic(x *exchange) {
	x.w.Header().Set("request-id", "req_fake")
	if x.r.Method != http.MethodPost || x.r.URL.Path != "/v1/messages" {
		x.writeJSON(http.StatusNotFound, anthropicErr("not_found_error", "Not Found"))
		return
	}
	if !x.keyOK(x.r.Header.Get("x-api-key")) {
		x.writeJSON(http.StatusUnauthorized, anthropicErr("authentication_error", "invalid x-api-key"))
		return
	}
	if x.r.Header.Get("anthropic-version") == "" {
		x.writeJSON(http.StatusBadRequest, anthropicErr("invalid_request_error", "anthropic-version: header is required"))
		return
	}
	var req struct {
		Model     *string         `json:"model"`
		MaxTokens *int64          `json:"max_tokens"`
		System    json.RawMessage `json:"system"`
		Messages  *[]struct {
			Role    string          `json:"role"`
			Content json.RawMessage `json:"content"`
		} `json:"messages"`
		Stream bool `json:"stream"`
	}
	bad := func(msg string) { x.writeJSON(http.StatusBadRequest, anthropicErr("invalid_request_error", msg)) }
	if err := json.Unmarshal(x.body, &req); err != nil {
		bad("There was an issue with the JSON body of your request.")
		return
	}
	switch {
	case req.Model == nil:
		bad("model: Field required")
		return
	case req.MaxTokens == nil:
		bad("max_tokens: Field required")
		return
	case *req.MaxTokens < 1:
		bad("max_tokens: Input should be greater than or equal to 1")
		return
	case req.Messages == nil:
		bad("messages: Field required")
		return
	case len(*req.Messages) == 0:
		bad("messages: at least one message is required")
		return
	}
	texts := []string{}
	if len(req.System) > 0 {
		var sys string
		if json.Unmarshal(req.System, &sys) != nil {
			var blocks []struct {
				Text string `json:"text"`
			}
			if json.Unmarshal(req.System, &blocks) != nil {
				bad("system: Input should be a valid string")
				return
			}
			for _, b := range blocks {
				sys += b.Text
			}
		}
		texts = append(texts, sys)
	}
	for i, m := range *req.Messages {
		if m.Role != "user" && m.Role != "assistant" {
			bad(fmt.Sprintf("messages.%d.role: Input should be 'user' or 'assistant'", i))
			return
		}
		var s string
		if json.Unmarshal(m.Content, &s) != nil {
			var blocks []struct {
				Type string `json:"type"`
				Text string `json:"text"`
			}
			if json.Unmarshal(m.Content, &blocks) != nil {
				bad(fmt.Sprintf("messages.%d.content: Input should be a valid list", i))
				return
			}
			for _, b := range blocks {
				s += b.Text
			}
		}
		if strings.TrimSpace(s) == "" && i < len(*req.Messages)-1 {
			bad(fmt.Sprintf("messages: text content blocks must be non-empty (message %d)", i))
			return
		}
		texts = append(texts, s)
	}
	model := *req.Model
	if !x.modelKnown(model) {
		x.writeJSON(http.StatusNotFound, anthropicErr("not_found_error", "model: "+model))
		return
	}
	if x.preFault(req.Stream, anthropicStatusBody, `{"id":"msg_fake","type":"message","content":[{"type":"text",`) {
		return
	}
	prompt, completion := x.usage(texts)
	// Anthropic's input_tokens excludes tokens read from the prompt cache.
	input := prompt - x.o.CachedTokens
	if input < 0 {
		input = 0
	}
	id := fmt.Sprintf("msg_fake%d", time.Now().UnixNano())
	if !req.Stream {
		x.writeJSON(http.StatusOK, map[string]any{
			"id": id, "type": "message", "role": "assistant", "model": model,
			"content":     []any{map[string]any{"type": "text", "text": x.reply()}},
			"stop_reason": "end_turn", "stop_sequence": nil,
			"usage": map[string]any{"input_tokens": input, "output_tokens": completion, "cache_creation_input_tokens": 0, "cache_read_input_tokens": x.o.CachedTokens},
		})
		return
	}
	x.runStream(streamSpec{
		contentType: "text/event-stream; charset=utf-8",
		head: [][]byte{
			sse("message_start", map[string]any{"type": "message_start", "message": map[string]any{
				"id": id, "type": "message", "role": "assistant", "content": []any{}, "model": model,
				"stop_reason": nil, "stop_sequence": nil,
				"usage": map[string]any{"input_tokens": input, "output_tokens": 1, "cache_creation_input_tokens": 0, "cache_read_input_tokens": x.o.CachedTokens},
			}}),
			sse("content_block_start", map[string]any{"type": "content_block_start", "index": 0, "content_block": map[string]any{"type": "text", "text": ""}}),
			sse("ping", map[string]any{"type": "ping"}),
		},
		chunk: func(_ int, text string) []byte {
			return sse("content_block_delta", map[string]any{"type": "content_block_delta", "index": 0, "delta": map[string]any{"type": "text_delta", "text": text}})
		},
		tail: [][]byte{
			sse("content_block_stop", map[string]any{"type": "content_block_stop", "index": 0}),
			sse("message_delta", map[string]any{"type": "message_delta", "delta": map[string]any{"stop_reason": "end_turn", "stop_sequence": nil}, "usage": map[string]any{"output_tokens": completion}}),
			sse("message_stop", map[string]any{"type": "message_stop"}),
		},
		errFrame: sse("error", anthropicErr("overloaded_error", "Overloaded")),
		badFrame: []byte("event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\n\n"),
	})
}
