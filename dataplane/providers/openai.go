package providers

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/nself-org/ai-orchestration/internal/jsonenc"
)

// openAI speaks the Chat Completions, Embeddings and Moderations APIs of OpenAI and of any
// server that copies them (vLLM, LM Studio, llama.cpp). official is false for
// openai-compatible servers, which get the older max_tokens field and no moderation.
type openAI struct {
	base
	official bool
	// The endpoints, built once by [newOpenAI].
	chat, embed, moderate target
}

func newOpenAI(b base, official bool) *openAI {
	o := &openAI{base: b, official: official}
	o.chat = newTarget(http.MethodPost, b.baseURL+"/chat/completions", o.headers())
	o.embed = newTarget(http.MethodPost, b.baseURL+"/embeddings", o.headers())
	o.moderate = newTarget(http.MethodPost, b.baseURL+"/moderations", o.headers())
	return o
}

// openAIModerator is the official OpenAI type, the only one that offers /moderations.
type openAIModerator struct{ openAI }

type oaiResponseFormat struct {
	Type       string         `json:"type"`
	JSONSchema *oaiJSONSchema `json:"json_schema,omitempty"`
}

type oaiJSONSchema struct {
	Name   string          `json:"name"`
	Schema json.RawMessage `json:"schema,omitempty"`
}

type oaiChatRequest struct {
	Model               string             `json:"model"`
	Messages            []Message          `json:"messages"` // the same wire shape, so sent as is
	MaxTokens           int64              `json:"max_tokens,omitempty"`
	MaxCompletionTokens int64              `json:"max_completion_tokens,omitempty"`
	Temperature         *float64           `json:"temperature,omitempty"`
	TopP                *float64           `json:"top_p,omitempty"`
	Stop                []string           `json:"stop,omitempty"`
	ResponseFormat      *oaiResponseFormat `json:"response_format,omitempty"`
	User                string             `json:"user,omitempty"`
	Stream              bool               `json:"stream,omitempty"`
	StreamOptions       *oaiStreamOptions  `json:"stream_options,omitempty"`
}

type oaiStreamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

type oaiUsage struct {
	PromptTokens        int64                `json:"prompt_tokens"`
	CompletionTokens    int64                `json:"completion_tokens"`
	TotalTokens         int64                `json:"total_tokens"`
	PromptTokensDetails *oaiPromptTokensInfo `json:"prompt_tokens_details,omitempty"`
}

type oaiPromptTokensInfo struct {
	CachedTokens int64 `json:"cached_tokens"`
}

func (u *oaiUsage) norm() Usage {
	out := Usage{PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens}
	if u.PromptTokensDetails != nil {
		out.CachedPromptTokens = u.PromptTokensDetails.CachedTokens
	}
	return out
}

type oaiError struct {
	Message string          `json:"message"`
	Type    string          `json:"type"`
	Code    json.RawMessage `json:"code"`
}

type oaiChatResponse struct {
	ID      string          `json:"id"`
	Model   string          `json:"model"`
	Choices []oaiChatChoice `json:"choices"`
	Usage   *oaiUsage       `json:"usage"`
}

type oaiChatChoice struct {
	Message struct {
		Content *string `json:"content"`
	} `json:"message"`
	FinishReason string `json:"finish_reason"`
}

type oaiChunk struct {
	ID      string           `json:"id"`
	Model   string           `json:"model"`
	Choices []oaiChunkChoice `json:"choices"`
	Usage   *oaiUsage        `json:"usage"`
	Error   *oaiError        `json:"error"`
}

type oaiChunkChoice struct {
	Delta struct {
		Content *string `json:"content"`
	} `json:"delta"`
	FinishReason *string `json:"finish_reason"`
}

// parseOpenAIError reads {"error":{"message","type","param","code"}}.
func parseOpenAIError(body []byte) (string, string, time.Duration, bool) {
	var env struct {
		Error *oaiError `json:"error"`
	}
	if json.Unmarshal(body, &env) != nil || env.Error == nil {
		return "", "", 0, false
	}
	return env.Error.kind(), env.Error.Message, 0, true
}

// kind prefers the specific code ("invalid_api_key") over the broad type.
func (e *oaiError) kind() string {
	var code string
	if json.Unmarshal(e.Code, &code) == nil && code != "" {
		return code
	}
	return e.Type
}

func (o *openAI) headers() map[string]string {
	if o.apiKey == "" {
		return nil
	}
	return map[string]string{"Authorization": "Bearer " + o.apiKey}
}

func (o *openAI) chatBody(req *ChatRequest, stream bool) *oaiChatRequest {
	body := &oaiChatRequest{
		Model: req.Model, Temperature: req.Temperature, TopP: req.TopP, Stop: req.Stop, User: req.User,
		Messages: req.Messages,
	}
	if body.Messages == nil {
		body.Messages = []Message{} // "messages":[] as before, never null
	}
	if req.MaxTokens > 0 {
		if o.official {
			body.MaxCompletionTokens = req.MaxTokens // required by the o-series, accepted by all
		} else {
			body.MaxTokens = req.MaxTokens
		}
	}
	if rf := req.ResponseFormat; rf != nil && rf.Type != "" && rf.Type != "text" {
		body.ResponseFormat = &oaiResponseFormat{Type: rf.Type}
		if rf.Type == "json_schema" {
			name := rf.Name
			if name == "" {
				name = "response"
			}
			body.ResponseFormat.JSONSchema = &oaiJSONSchema{Name: name, Schema: rf.Schema}
		}
	}
	if stream {
		body.Stream = true
		body.StreamOptions = &oaiStreamOptions{IncludeUsage: true}
	}
	return body
}

// encodeChat is json.Marshal(o.chatBody(req, stream)), byte for byte (openai_encode_test.go
// holds it to that), without reflection or the intermediate struct when [appendChat] can write
// it. A body that fits a pooled buffer is written into one, returned as sp for [base.sendTo] to
// recycle once the transport is done with it; a larger one gets a buffer of its own, sized
// once, which the call drops then (sp nil): a burst of long prompts would otherwise leave the
// pool holding a prompt-sized buffer per request until two GCs have passed. sp is nil as well
// when encoding/json wrote the body.
func (o *openAI) encodeChat(req *ChatRequest, stream bool) (body []byte, sp *[]byte, err error) {
	if n := chatSize(req); n > pooledScratchSize {
		if b, ok := o.appendChat(make([]byte, 0, n), req, stream); ok {
			return b, nil, nil
		}
		return o.marshalChat(req, stream)
	}
	sp = scratchPool.Get().(*[]byte)
	if b, ok := o.appendChat((*sp)[:0], req, stream); ok {
		*sp = b
		return b, sp, nil
	}
	putScratch(sp)
	return o.marshalChat(req, stream)
}

func (o *openAI) marshalChat(req *ChatRequest, stream bool) ([]byte, *[]byte, error) {
	body, err := o.marshal(o.chatBody(req, stream))
	return body, nil, err
}

// chatSize is about the size of req's body: its texts, the JSON around them and a margin for
// escapes.
func chatSize(req *ChatRequest) int {
	n := 160 + len(req.Model) + len(req.User)
	for i := range req.Messages {
		n += 32 + len(req.Messages[i].Role) + len(req.Messages[i].Content)
	}
	for _, s := range req.Stop {
		n += 4 + len(s)
	}
	return n + n/16
}

// appendChat appends the body chatBody describes; ok is false when encoding/json must write it:
// a JSON schema (which it validates and compacts) or a float JSON cannot hold (which it refuses).
func (o *openAI) appendChat(b []byte, req *ChatRequest, stream bool) (_ []byte, ok bool) {
	rf := req.ResponseFormat
	if rf != nil && (rf.Type == "" || rf.Type == "text") {
		rf = nil
	}
	if rf != nil && rf.Type == "json_schema" && len(rf.Schema) > 0 {
		return b, false
	}
	b = append(b, `{"model":`...)
	b = jsonenc.AppendString(b, req.Model)
	b = append(b, `,"messages":[`...)
	for i := range req.Messages {
		m := &req.Messages[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"role":`...)
		b = jsonenc.AppendString(b, m.Role)
		b = append(b, `,"content":`...)
		b = jsonenc.AppendString(b, m.Content)
		b = append(b, '}')
	}
	b = append(b, ']')
	if req.MaxTokens > 0 {
		if o.official {
			b = append(b, `,"max_completion_tokens":`...)
		} else {
			b = append(b, `,"max_tokens":`...)
		}
		b = jsonenc.AppendInt(b, req.MaxTokens)
	}
	if req.Temperature != nil {
		if b, ok = jsonenc.AppendFloat(append(b, `,"temperature":`...), *req.Temperature); !ok {
			return b, false
		}
	}
	if req.TopP != nil {
		if b, ok = jsonenc.AppendFloat(append(b, `,"top_p":`...), *req.TopP); !ok {
			return b, false
		}
	}
	if len(req.Stop) > 0 {
		b = append(b, `,"stop":[`...)
		for i, s := range req.Stop {
			if i > 0 {
				b = append(b, ',')
			}
			b = jsonenc.AppendString(b, s)
		}
		b = append(b, ']')
	}
	if rf != nil {
		b = append(b, `,"response_format":{"type":`...)
		b = jsonenc.AppendString(b, rf.Type)
		if rf.Type == "json_schema" {
			name := rf.Name
			if name == "" {
				name = "response"
			}
			b = append(b, `,"json_schema":{"name":`...)
			b = jsonenc.AppendString(b, name)
			b = append(b, '}')
		}
		b = append(b, '}')
	}
	if req.User != "" {
		b = append(b, `,"user":`...)
		b = jsonenc.AppendString(b, req.User)
	}
	if stream {
		b = append(b, `,"stream":true,"stream_options":{"include_usage":true}`...)
	}
	return append(b, '}'), true
}

func (o *openAI) Chat(ctx context.Context, req *ChatRequest) (*ChatResponse, error) {
	body, sp, err := o.encodeChat(req, false)
	if err != nil {
		return nil, err
	}
	c, err := o.sendTo(ctx, &o.chat, body, sp, parseOpenAIError)
	if err != nil {
		return nil, err
	}
	defer c.close()
	var r oaiChatResponse
	if err := o.decodeBodyFast(c, maxChatBody, &r); err != nil {
		return nil, err
	}
	if len(r.Choices) == 0 {
		return nil, malformed(o.name, "response has no choices", nil)
	}
	out := &ChatResponse{ID: r.ID, Model: r.Model, FinishReason: r.Choices[0].FinishReason}
	if r.Choices[0].Message.Content != nil {
		out.Content = *r.Choices[0].Message.Content
	}
	if r.Usage != nil {
		out.Usage = r.Usage.norm()
	}
	return out, nil
}

func (o *openAI) ChatStream(ctx context.Context, req *ChatRequest) (Stream, error) {
	body, sp, err := o.encodeChat(req, true)
	if err != nil {
		return nil, err
	}
	c, err := o.sendTo(ctx, &o.chat, body, sp, parseOpenAIError)
	if err != nil {
		return nil, err
	}
	return o.stream(c), nil
}

// stream decodes an open streamed reply; split from ChatStream so that fuzzing needs no HTTP.
//
// One chunk value serves the whole stream (as anthropic's), with its choices' array kept from
// chunk to chunk: a fresh value per chunk allocated both every time, ~130 B and 2 allocations a
// chunk, a third of the garbage 1 000 held streams made (~0.35 of ~1 MiB/s, which walks the heap
// up to the GC's goal while they are open). The array's elements are cleared before each decode:
// the decoder, as encoding/json, decodes into them, and a field a chunk omits must read as unset.
func (o *openAI) stream(c *call) *httpStream {
	return o.streamDecoding(c, new(reusedChunk))
}

// chunkDecoder turns a stream chunk's data into the chunk it reads.
type chunkDecoder interface {
	decode(data []byte) (*oaiChunk, error)
}

// reusedChunk decodes every chunk into the one value it holds (see [openAI.stream]).
type reusedChunk struct{ ch oaiChunk }

func (r *reusedChunk) decode(data []byte) (*oaiChunk, error) {
	choices := r.ch.Choices[:cap(r.ch.Choices)]
	clear(choices)
	r.ch = oaiChunk{Choices: choices[:0]}
	return &r.ch, unmarshalFast(data, &r.ch)
}

// streamDecoding is stream with dec decoding each chunk (tests hold stream's reused value to a
// fresh one per chunk through it).
func (o *openAI) streamDecoding(c *call, dec chunkDecoder) *httpStream {
	s := &httpStream{b: &o.base, c: c}
	sse := newSSEReaderSize(s.body(), maxLineBytes, relayLineBuffer)
	sse.reuse = true // a chunk's data is decoded (copied) before the next is read
	finished := false
	s.next = func() (string, error) {
		ev, err := sse.Next()
		if errors.Is(err, io.EOF) {
			if finished { // some compatible servers omit [DONE]
				return "", io.EOF
			}
			return "", errEarlyEOF
		}
		if err != nil {
			return "", err
		}
		if string(ev.Data) == "[DONE]" {
			return "", io.EOF
		}
		ch, err := dec.decode(ev.Data)
		if err != nil {
			return "", malformed(o.name, "undecodable stream chunk", err)
		}
		if ch.Error != nil {
			return "", &Error{Kind: KindServer, Provider: o.name, Message: "stream error: " + describe(KindServer, ch.Error.kind(), ch.Error.Message, o.apiKey, true)}
		}
		if ch.Usage != nil {
			s.setUsage(ch.Usage.norm())
		}
		var text string
		for _, choice := range ch.Choices {
			if choice.Delta.Content != nil {
				text += *choice.Delta.Content
			}
			if choice.FinishReason != nil && *choice.FinishReason != "" {
				finished = true
			}
		}
		return text, nil
	}
	return s
}

type oaiEmbedRequest struct {
	Model          string   `json:"model"`
	Input          []string `json:"input"`
	EncodingFormat string   `json:"encoding_format"`
	User           string   `json:"user,omitempty"`
}

type oaiEmbedResponse struct {
	Data []struct {
		Index     int       `json:"index"`
		Embedding []float32 `json:"embedding"`
	} `json:"data"`
	Model string    `json:"model"`
	Usage *oaiUsage `json:"usage"`
}

func (o *openAI) Embed(ctx context.Context, req *EmbedRequest) (*EmbedResponse, error) {
	body, err := o.marshal(&oaiEmbedRequest{Model: req.Model, Input: req.Input, EncodingFormat: "float", User: req.User})
	if err != nil {
		return nil, err
	}
	c, err := o.sendTo(ctx, &o.embed, body, nil, parseOpenAIError)
	if err != nil {
		return nil, err
	}
	defer c.close()
	var r oaiEmbedResponse
	if err := o.decodeBody(c, maxEmbedBody, &r); err != nil {
		return nil, err
	}
	if len(r.Data) != len(req.Input) {
		return nil, malformed(o.name, "embedding count does not match input count", nil)
	}
	slices.SortFunc(r.Data, func(a, b struct {
		Index     int       `json:"index"`
		Embedding []float32 `json:"embedding"`
	}) int {
		return a.Index - b.Index
	})
	out := &EmbedResponse{Model: r.Model, Embeddings: make([][]float32, len(r.Data))}
	for i, d := range r.Data {
		out.Embeddings[i] = d.Embedding
	}
	if r.Usage != nil {
		out.Usage = Usage{PromptTokens: r.Usage.PromptTokens}
	}
	return out, nil
}

// Moderate calls /moderations; model "" lets OpenAI pick (omni-moderation-latest).
func (o *openAIModerator) Moderate(ctx context.Context, model string, input []string) ([]ModerationResult, error) {
	body := map[string]any{"input": input}
	if model != "" {
		body["model"] = model
	}
	enc, err := o.marshal(body)
	if err != nil {
		return nil, err
	}
	c, err := o.sendTo(ctx, &o.moderate, enc, nil, parseOpenAIError)
	if err != nil {
		return nil, err
	}
	defer c.close()
	var r struct {
		Results []struct {
			Flagged        bool               `json:"flagged"`
			Categories     map[string]bool    `json:"categories"`
			CategoryScores map[string]float64 `json:"category_scores"`
		} `json:"results"`
	}
	if err := o.decodeBody(c, maxChatBody, &r); err != nil {
		return nil, err
	}
	if len(r.Results) != len(input) {
		return nil, malformed(o.name, "moderation result count does not match input count", nil)
	}
	out := make([]ModerationResult, len(r.Results))
	for i, res := range r.Results {
		out[i] = ModerationResult{Flagged: res.Flagged, Categories: res.Categories, Scores: res.CategoryScores}
	}
	return out, nil
}
