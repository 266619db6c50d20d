package providers

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"
)

// AnthropicVersion is the API version header every Messages call carries.
const AnthropicVersion = "2023-06-01"

// defaultAnthropicMaxTokens is sent when neither the request nor the model table names a cap;
// the Messages API refuses a request without max_tokens.
const defaultAnthropicMaxTokens = 4096

// anthropic speaks the Messages API.
type anthropic struct {
	base
	caps map[string]int64
	// messages is the Messages endpoint, built once by [newAnthropic].
	messages target
}

func newAnthropic(b base, caps map[string]int64) *anthropic {
	a := &anthropic{base: b, caps: caps}
	a.messages = newTarget(http.MethodPost, b.baseURL+"/v1/messages", a.headers())
	return a
}

type antMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type antRequest struct {
	Model         string       `json:"model"`
	MaxTokens     int64        `json:"max_tokens"`
	System        string       `json:"system,omitempty"`
	Messages      []antMessage `json:"messages"`
	Temperature   *float64     `json:"temperature,omitempty"`
	TopP          *float64     `json:"top_p,omitempty"`
	StopSequences []string     `json:"stop_sequences,omitempty"`
	Stream        bool         `json:"stream,omitempty"`
	Metadata      *antMetadata `json:"metadata,omitempty"`
}

type antMetadata struct {
	UserID string `json:"user_id"`
}

type antUsage struct {
	InputTokens              int64 `json:"input_tokens"`
	OutputTokens             int64 `json:"output_tokens"`
	CacheCreationInputTokens int64 `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int64 `json:"cache_read_input_tokens"`
}

// norm folds cache reads and writes into the prompt count: Anthropic's input_tokens excludes
// them, while every other provider (and our pricing) counts them as prompt.
func (u antUsage) norm() Usage {
	return Usage{
		PromptTokens:       u.InputTokens + u.CacheCreationInputTokens + u.CacheReadInputTokens,
		CompletionTokens:   u.OutputTokens,
		CachedPromptTokens: u.CacheReadInputTokens,
	}
}

type antErrorBody struct {
	Type  string `json:"type"`
	Error *struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"error"`
}

// parseAnthropicError reads {"type":"error","error":{"type","message"}}.
func parseAnthropicError(body []byte) (string, string, time.Duration, bool) {
	var e antErrorBody
	if json.Unmarshal(body, &e) != nil || e.Error == nil {
		return "", "", 0, false
	}
	return e.Error.Type, e.Error.Message, 0, true
}

func (a *anthropic) headers() map[string]string {
	return map[string]string{"x-api-key": a.apiKey, "anthropic-version": AnthropicVersion}
}

// body maps the normalized request: system messages move to the top-level system field and
// consecutive messages of one role are merged, as the Messages API expects alternating turns.
func (a *anthropic) body(req *ChatRequest, stream bool) *antRequest {
	r := &antRequest{Model: req.Model, MaxTokens: req.MaxTokens, Temperature: req.Temperature, TopP: req.TopP, StopSequences: req.Stop, Stream: stream}
	if r.MaxTokens <= 0 {
		r.MaxTokens = a.caps[req.Model]
		if r.MaxTokens <= 0 {
			r.MaxTokens = defaultAnthropicMaxTokens
		}
	}
	var system []string
	for _, m := range req.Messages {
		if m.Role == "system" {
			system = append(system, m.Content)
			continue
		}
		role := "user"
		if m.Role == "assistant" {
			role = "assistant"
		}
		if n := len(r.Messages); n > 0 && r.Messages[n-1].Role == role {
			r.Messages[n-1].Content += "\n\n" + m.Content
			continue
		}
		r.Messages = append(r.Messages, antMessage{Role: role, Content: m.Content})
	}
	if rf := req.ResponseFormat; rf != nil && (rf.Type == "json_object" || rf.Type == "json_schema") {
		// The Messages API has no JSON mode; an instruction is the documented way to ask for it.
		hint := "Respond with a single valid JSON object and nothing else."
		if len(rf.Schema) > 0 {
			hint += " It must conform to this JSON Schema: " + string(rf.Schema)
		}
		system = append(system, hint)
	}
	r.System = strings.Join(system, "\n\n")
	if req.User != "" {
		r.Metadata = &antMetadata{UserID: req.User}
	}
	return r
}

type antResponse struct {
	ID      string `json:"id"`
	Model   string `json:"model"`
	Content []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	} `json:"content"`
	StopReason string   `json:"stop_reason"`
	Usage      antUsage `json:"usage"`
}

func (a *anthropic) Chat(ctx context.Context, req *ChatRequest) (*ChatResponse, error) {
	c, err := a.post(ctx, &a.messages, a.body(req, false), parseAnthropicError)
	if err != nil {
		return nil, err
	}
	defer c.close()
	var r antResponse
	if err := a.decodeBody(c, maxChatBody, &r); err != nil {
		return nil, err
	}
	var sb strings.Builder
	for _, b := range r.Content {
		if b.Type == "text" {
			sb.WriteString(b.Text)
		}
	}
	return &ChatResponse{ID: r.ID, Model: r.Model, Content: sb.String(), FinishReason: r.StopReason, Usage: r.Usage.norm()}, nil
}

type antEvent struct {
	Type    string `json:"type"`
	Message *struct {
		Usage antUsage `json:"usage"`
	} `json:"message"`
	Delta *struct {
		Type string `json:"type"`
		Text string `json:"text"`
	} `json:"delta"`
	Usage *struct {
		OutputTokens int64 `json:"output_tokens"`
		// Newer API versions repeat input counts here; 0 when absent.
		InputTokens              int64 `json:"input_tokens"`
		CacheCreationInputTokens int64 `json:"cache_creation_input_tokens"`
		CacheReadInputTokens     int64 `json:"cache_read_input_tokens"`
	} `json:"usage"`
	Error *struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"error"`
}

func (a *anthropic) ChatStream(ctx context.Context, req *ChatRequest) (Stream, error) {
	c, err := a.post(ctx, &a.messages, a.body(req, true), parseAnthropicError)
	if err != nil {
		return nil, err
	}
	return a.stream(c), nil
}

// stream decodes an open streamed reply; split from ChatStream so that fuzzing needs no HTTP.
func (a *anthropic) stream(c *call) *httpStream {
	s := &httpStream{b: &a.base, c: c}
	sse := newSSEReaderSize(s.body(), maxLineBytes, relayLineBuffer)
	sse.reuse = true // an event's data is decoded (copied) before the next is read
	var usage antUsage
	// One event value for the whole stream, zeroed before each decode (unmarshalFast wants a zero
	// value): a local one escapes, through the decoder's interface, to an allocation per event.
	e := new(antEvent)
	s.next = func() (string, error) {
		ev, err := sse.Next()
		if errors.Is(err, io.EOF) {
			return "", errEarlyEOF
		}
		if err != nil {
			return "", err
		}
		*e = antEvent{}
		// Decoded by the library, as OpenAI chunks are (fastjson.go); stream_fastjson_test.go
		// holds it to encoding/json on this event type.
		if err := unmarshalFast(ev.Data, e); err != nil {
			return "", malformed(a.name, "undecodable stream event", err)
		}
		typ := e.Type
		if typ == "" {
			typ = ev.Event
		}
		switch typ {
		case "message_start":
			if e.Message != nil {
				usage = e.Message.Usage
				s.setUsage(usage.norm())
			}
		case "content_block_delta":
			if e.Delta != nil && e.Delta.Type == "text_delta" {
				return e.Delta.Text, nil
			}
		case "message_delta":
			if e.Usage != nil {
				// output_tokens in message_delta is cumulative for the whole message.
				usage.OutputTokens = e.Usage.OutputTokens
				if e.Usage.InputTokens > 0 {
					usage.InputTokens = e.Usage.InputTokens
				}
				if e.Usage.CacheCreationInputTokens > 0 {
					usage.CacheCreationInputTokens = e.Usage.CacheCreationInputTokens
				}
				if e.Usage.CacheReadInputTokens > 0 {
					usage.CacheReadInputTokens = e.Usage.CacheReadInputTokens
				}
				s.setUsage(usage.norm())
			}
		case "message_stop":
			return "", io.EOF
		case "error":
			kind := KindServer
			etype, msg := "", ""
			if e.Error != nil {
				etype, msg = e.Error.Type, e.Error.Message
				switch etype {
				case "rate_limit_error":
					kind = KindRateLimited
				case "invalid_request_error":
					kind = KindBadRequest
				}
			}
			return "", &Error{Kind: kind, Provider: a.name, Message: "stream error: " + describe(kind, etype, msg, a.apiKey, true)}
		}
		return "", nil // ping, content_block_start/stop and unknown events carry no text
	}
	return s
}

// Embed is not offered by Anthropic (it recommends a third-party embedding provider).
func (a *anthropic) Embed(context.Context, *EmbedRequest) (*EmbedResponse, error) {
	return nil, &Error{Kind: KindUnsupported, Provider: a.name, Message: "anthropic offers no embeddings API"}
}
