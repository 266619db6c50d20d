package providers

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"
)

// ollama speaks Ollama's native API (/api/chat with NDJSON streaming, /api/embed).
type ollama struct {
	base
	// The endpoints, built once by [newOllama].
	chat, embed target
}

func newOllama(b base) *ollama {
	o := &ollama{base: b}
	o.chat = newTarget(http.MethodPost, b.baseURL+"/api/chat", o.headers())
	o.embed = newTarget(http.MethodPost, b.baseURL+"/api/embed", o.headers())
	return o
}

type olOptions struct {
	NumPredict  int64    `json:"num_predict,omitempty"`
	Temperature *float64 `json:"temperature,omitempty"`
	TopP        *float64 `json:"top_p,omitempty"`
	Stop        []string `json:"stop,omitempty"`
}

type olChatRequest struct {
	Model    string          `json:"model"`
	Messages []Message       `json:"messages"`
	Stream   bool            `json:"stream"`
	Format   json.RawMessage `json:"format,omitempty"`
	Options  *olOptions      `json:"options,omitempty"`
}

type olChatResponse struct {
	Model   string `json:"model"`
	Message *struct {
		Content string `json:"content"`
	} `json:"message"`
	Done            bool   `json:"done"`
	DoneReason      string `json:"done_reason"`
	PromptEvalCount *int64 `json:"prompt_eval_count"`
	EvalCount       *int64 `json:"eval_count"`
	Error           string `json:"error"`
}

// usage is nil when the final object carries no counts (some Ollama-compatible servers).
func (r *olChatResponse) usage() (Usage, bool) {
	if r.PromptEvalCount == nil && r.EvalCount == nil {
		return Usage{}, false
	}
	var u Usage
	if r.PromptEvalCount != nil {
		u.PromptTokens = *r.PromptEvalCount
	}
	if r.EvalCount != nil {
		u.CompletionTokens = *r.EvalCount
	}
	return u, true
}

// parseOllamaError reads {"error":"..."}.
func parseOllamaError(body []byte) (string, string, time.Duration, bool) {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil || e.Error == "" {
		return "", "", 0, false
	}
	return "", e.Error, 0, true
}

// headers sends a bearer key only when one is configured (Ollama behind an auth proxy, or
// ollama.com); a local Ollama needs none.
func (o *ollama) headers() map[string]string {
	if o.apiKey == "" {
		return nil
	}
	return map[string]string{"Authorization": "Bearer " + o.apiKey}
}

func (o *ollama) body(req *ChatRequest, stream bool) *olChatRequest {
	r := &olChatRequest{Model: req.Model, Messages: req.Messages, Stream: stream}
	if r.Messages == nil {
		r.Messages = []Message{}
	}
	opts := olOptions{NumPredict: req.MaxTokens, Temperature: req.Temperature, TopP: req.TopP, Stop: req.Stop}
	if opts.NumPredict != 0 || opts.Temperature != nil || opts.TopP != nil || opts.Stop != nil {
		r.Options = &opts
	}
	if rf := req.ResponseFormat; rf != nil {
		switch {
		case rf.Type == "json_schema" && len(rf.Schema) > 0:
			r.Format = rf.Schema
		case rf.Type == "json_object" || rf.Type == "json_schema":
			r.Format = json.RawMessage(`"json"`)
		}
	}
	return r
}

func (o *ollama) Chat(ctx context.Context, req *ChatRequest) (*ChatResponse, error) {
	c, err := o.post(ctx, &o.chat, o.body(req, false), parseOllamaError)
	if err != nil {
		return nil, err
	}
	defer c.close()
	var r olChatResponse
	if err := o.decodeBody(c, maxChatBody, &r); err != nil {
		return nil, err
	}
	if r.Error != "" {
		return nil, &Error{Kind: KindServer, Provider: o.name, Message: describe(KindServer, "", r.Error, o.apiKey, true)}
	}
	if r.Message == nil {
		return nil, malformed(o.name, "response has no message", nil)
	}
	u, _ := r.usage()
	return &ChatResponse{Model: r.Model, Content: r.Message.Content, FinishReason: r.DoneReason, Usage: u}, nil
}

func (o *ollama) ChatStream(ctx context.Context, req *ChatRequest) (Stream, error) {
	c, err := o.post(ctx, &o.chat, o.body(req, true), parseOllamaError)
	if err != nil {
		return nil, err
	}
	return o.stream(c), nil
}

// stream decodes an open streamed reply; split from ChatStream so that fuzzing needs no HTTP.
func (o *ollama) stream(c *call) *httpStream {
	s := &httpStream{b: &o.base, c: c}
	nd := newNDJSONReaderSize(s.body(), maxLineBytes, relayLineBuffer)
	r := new(olChatResponse) // one for the stream, zeroed before each decode (see anthropic's)
	s.next = func() (string, error) {
		line, err := nd.Next()
		if errors.Is(err, io.EOF) {
			return "", errEarlyEOF
		}
		if err != nil {
			return "", err
		}
		*r = olChatResponse{}
		// Decoded by the library, as OpenAI chunks are (fastjson.go); stream_fastjson_test.go
		// holds it to encoding/json on this line type.
		if err := unmarshalFast(line, r); err != nil {
			return "", malformed(o.name, "undecodable stream line", err)
		}
		if r.Error != "" {
			return "", &Error{Kind: KindServer, Provider: o.name, Message: "stream error: " + describe(KindServer, "", r.Error, o.apiKey, true)}
		}
		if r.Done {
			if u, ok := r.usage(); ok {
				s.setUsage(u)
			}
			if r.Message != nil && r.Message.Content != "" {
				// Return the last text now; the next call sees the stream's end.
				s.next = func() (string, error) { return "", io.EOF }
				return r.Message.Content, nil
			}
			return "", io.EOF
		}
		if r.Message == nil {
			return "", nil
		}
		return r.Message.Content, nil
	}
	return s
}

func (o *ollama) Embed(ctx context.Context, req *EmbedRequest) (*EmbedResponse, error) {
	body := map[string]any{"model": req.Model, "input": req.Input}
	c, err := o.post(ctx, &o.embed, body, parseOllamaError)
	if err != nil {
		return nil, err
	}
	defer c.close()
	var r struct {
		Model           string      `json:"model"`
		Embeddings      [][]float32 `json:"embeddings"`
		PromptEvalCount int64       `json:"prompt_eval_count"`
	}
	if err := o.decodeBody(c, maxEmbedBody, &r); err != nil {
		return nil, err
	}
	if len(r.Embeddings) != len(req.Input) {
		return nil, malformed(o.name, "embedding count does not match input count", nil)
	}
	return &EmbedResponse{Model: r.Model, Embeddings: r.Embeddings, Usage: Usage{PromptTokens: r.PromptEvalCount}}, nil
}
