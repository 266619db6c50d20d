package handlers

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/nself-org/ai-orchestration/dataplane/apierror"
	"github.com/nself-org/ai-orchestration/dataplane/middleware"
	"github.com/nself-org/ai-orchestration/dataplane/providers"
	"github.com/nself-org/ai-orchestration/dataplane/route"
)

// Identity headers of the OpenAI-compatible API (its bodies have only `user`).
const (
	HeaderUser = "X-AI-User"
	HeaderOrg  = "X-AI-Org"
)

// The identity headers in canonical form: net/http stores request headers under that form, and
// looking one up by another spelling (as gin's GetHeader(HeaderOrg) did) allocates the canonical
// key again on every request.
var (
	headerUserKey = http.CanonicalHeaderKey(HeaderUser)
	headerOrgKey  = http.CanonicalHeaderKey(HeaderOrg)
)

// header is c.GetHeader(key) for a key already in canonical form.
func header(c *gin.Context, key string) string { return c.Request.Header.Get(key) }

// v1User is who a /v1 request acts for: the OpenAI `user` field, else X-AI-User, else the
// API key itself (OpenAI SDK callers often send no user; budgets per user then apply per key).
func v1User(c *gin.Context, bodyUser string) string {
	if bodyUser != "" {
		return bodyUser
	}
	if u := header(c, headerUserKey); u != "" {
		return u
	}
	if k := middleware.APIKey(c); k != nil {
		return "apikey:" + k.Name
	}
	return ""
}

// oaContent is an OpenAI message content: a string, null, or a list of parts of which only
// text parts are supported.
type oaContent string

// UnmarshalJSON implements json.Unmarshaler.
func (c *oaContent) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*c = ""
		return nil
	}
	// Fast path for the common case, a string without escapes: the decoder has validated the
	// literal already, so its bytes between the quotes are the value (when valid UTF-8, which
	// json would otherwise repair with U+FFFD).
	if n := len(b); n >= 2 && b[0] == '"' && b[n-1] == '"' && bytes.IndexByte(b, '\\') < 0 && utf8.Valid(b[1:n-1]) {
		*c = oaContent(b[1 : n-1])
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*c = oaContent(s)
		return nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(b, &parts); err != nil {
		return errors.New("content must be a string or a list of content parts")
	}
	var sb strings.Builder
	for _, p := range parts {
		if p.Type != "text" {
			return errors.New("only text content parts are supported")
		}
		sb.WriteString(p.Text)
	}
	*c = oaContent(sb.String())
	return nil
}

// OAChatRequest is the body of POST /v1/chat/completions (the fields the gateway uses; others
// are accepted and ignored, as OpenAI-compatible servers do).
type OAChatRequest struct {
	Messages []oaMessage `json:"messages"`
	oaChatParams
}

// oaChatParams are the fields of a chat request besides its messages, shared by
// [OAChatRequest] and the shape it is decoded through ([oaChatStrings]).
type oaChatParams struct {
	Model               string            `json:"model"`
	Stream              bool              `json:"stream"`
	StreamOptions       *oaStreamOptions  `json:"stream_options"`
	MaxTokens           *int64            `json:"max_tokens"`
	MaxCompletionTokens *int64            `json:"max_completion_tokens"`
	Temperature         *float64          `json:"temperature"`
	TopP                *float64          `json:"top_p"`
	N                   *int              `json:"n"`
	Stop                json.RawMessage   `json:"stop"`
	ResponseFormat      *oaResponseFormat `json:"response_format"`
	User                string            `json:"user"`
}

type oaMessage struct {
	Role    string    `json:"role"`
	Content oaContent `json:"content"`
}

type oaStreamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

type oaResponseFormat struct {
	Type       string        `json:"type"`
	JSONSchema *oaJSONSchema `json:"json_schema"`
}

type oaJSONSchema struct {
	Name   string          `json:"name"`
	Schema json.RawMessage `json:"schema"`
}

// OAUsage is OpenAI's usage object.
type OAUsage struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
	TotalTokens      int64 `json:"total_tokens"`
}

// OAChatCompletion is OpenAI's chat.completion object.
type OAChatCompletion struct {
	ID      string         `json:"id"`
	Object  string         `json:"object"`
	Created int64          `json:"created"`
	Model   string         `json:"model"`
	Choices []OAChatChoice `json:"choices"`
	Usage   OAUsage        `json:"usage"`
}

// OAChatChoice is one choice of a completion.
type OAChatChoice struct {
	Index        int             `json:"index"`
	Message      OAChatMessage   `json:"message"`
	Logprobs     json.RawMessage `json:"logprobs"`
	FinishReason string          `json:"finish_reason"`
}

// OAChatMessage is the assistant message of a choice.
type OAChatMessage struct {
	Role    string  `json:"role"`
	Content string  `json:"content"`
	Refusal *string `json:"refusal"`
}

// OAChunk is OpenAI's chat.completion.chunk object.
type OAChunk struct {
	ID      string          `json:"id"`
	Object  string          `json:"object"`
	Created int64           `json:"created"`
	Model   string          `json:"model"`
	Choices []OAChunkChoice `json:"choices"`
	Usage   *OAUsage        `json:"usage,omitempty"`
}

// OAChunkChoice is one choice of a chunk.
type OAChunkChoice struct {
	Index        int             `json:"index"`
	Delta        OAChunkDelta    `json:"delta"`
	Logprobs     json.RawMessage `json:"logprobs"`
	FinishReason *string         `json:"finish_reason"`
}

// OAChunkDelta is the delta of a chunk choice.
type OAChunkDelta struct {
	Role    string  `json:"role,omitempty"`
	Content *string `json:"content,omitempty"`
}

var jsonNull = json.RawMessage("null")

func oaUsage(u providers.Usage) OAUsage {
	return OAUsage{PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens, TotalTokens: u.Total()}
}

func (r *OAChatRequest) input(c *gin.Context) (*ChatInput, bool) {
	if r.N != nil && *r.N != 1 {
		apierror.Abort(c, apierror.BadRequest("n must be 1"))
		return nil, false
	}
	msgs := make([]providers.Message, len(r.Messages))
	for i, m := range r.Messages {
		role := m.Role
		if role == "developer" {
			role = "system" // OpenAI's newer name for system instructions
		}
		msgs[i] = providers.Message{Role: role, Content: string(m.Content)}
	}
	if err := validMessages(msgs); err != nil {
		abort(c, err)
		return nil, false
	}
	in := &ChatInput{Endpoint: route.EndpointChat, Model: r.Model, Messages: msgs, Temperature: r.Temperature, TopP: r.TopP}
	switch {
	case r.MaxCompletionTokens != nil:
		in.MaxTokens = *r.MaxCompletionTokens
	case r.MaxTokens != nil:
		in.MaxTokens = *r.MaxTokens
	}
	if in.MaxTokens < 0 {
		apierror.Abort(c, apierror.BadRequest("max_tokens must not be negative"))
		return nil, false
	}
	if len(r.Stop) > 0 && string(r.Stop) != "null" {
		var stop stringList
		if err := json.Unmarshal(r.Stop, &stop); err != nil {
			apierror.Abort(c, apierror.BadRequest("stop %s", err.Error()))
			return nil, false
		}
		in.Stop = stop
	}
	if rf := r.ResponseFormat; rf != nil {
		switch rf.Type {
		case "", "text":
		case "json_object":
			in.ResponseFormat = &providers.ResponseFormat{Type: "json_object"}
		case "json_schema":
			if rf.JSONSchema == nil || len(rf.JSONSchema.Schema) == 0 {
				apierror.Abort(c, apierror.BadRequest("response_format json_schema needs json_schema.schema"))
				return nil, false
			}
			in.ResponseFormat = &providers.ResponseFormat{Type: "json_schema", Name: rf.JSONSchema.Name, Schema: rf.JSONSchema.Schema}
		default:
			apierror.Abort(c, apierror.BadRequest("response_format type %q is not supported", rf.Type))
			return nil, false
		}
	}
	id, ok := identity(c, v1User(c, r.User), header(c, headerOrgKey))
	if !ok {
		return nil, false
	}
	in.Identity = id
	return in, true
}

// ChatCompletions serves POST /v1/chat/completions in OpenAI's exact shapes, streaming included.
func (h *Handlers) ChatCompletions(c *gin.Context) {
	var req OAChatRequest
	if !bindJSON(c, &req) {
		return
	}
	in, ok := req.input(c)
	if !ok {
		return
	}
	rt := middleware.Runtime(c)
	if !req.Stream {
		res, err := h.svc.Chat(c.Request.Context(), rt, in)
		if err != nil {
			abort(c, err)
			return
		}
		served(c, res.Provider, res.Cost, res.Cached, res.RateLimit)
		tokensSaved(c, res.TokensSaved)
		id := res.ID
		if !strings.HasPrefix(id, "chatcmpl-") { // an OpenAI-compatible upstream's own ID already has it
			id = "chatcmpl-" + id
		}
		writeCompletion(c, &completionReply{ID: id, Created: time.Now().Unix(), Model: res.Model,
			Content: res.Content, FinishReason: res.FinishReason, Usage: oaUsage(res.Usage)})
		return
	}
	st, err := h.svc.StartChatStream(c.Request.Context(), rt, in)
	if err != nil {
		abort(c, err)
		return
	}
	includeUsage := req.StreamOptions != nil && req.StreamOptions.IncludeUsage
	h.streamOpenAI(c, st, includeUsage)
}

// streamOpenAI writes `data: {chunk}` lines and `data: [DONE]`, as OpenAI does: a first chunk
// with the role, one per delta, a last one with finish_reason, and (include_usage) a final
// chunk with empty choices and the usage. Each chunk is the [OAChunk] json.Encoder would write
// (chunk.go); [streamOut] says when they are flushed.
func (h *Handlers) streamOpenAI(c *gin.Context, st *ChatStream, includeUsage bool) {
	out := openStream(c, st)
	defer out.close(st)
	head := chunkHead("chatcmpl-"+newID("chat"), time.Now().Unix(), st.Model())
	// One buffer for the whole stream: a chunk costs no allocation of its own.
	buf := make([]byte, 0, 2*len(head)+256)
	gone := out.write(appendRoleChunk(buf[:0], head)) != nil
	var streamErr error
	for !gone {
		d, err := st.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			streamErr = err
			break
		}
		buf = appendDeltaChunk(buf[:0], head, d)
		gone = out.write(buf) != nil
	}
	res := st.Finish()
	c.Writer.Header().Set("X-AI-Cost", usd(res.Cost).String())
	if gone {
		return
	}
	if streamErr != nil {
		writeStreamError(c, "", streamErr) // flushes the deltas before it too
		return
	}
	stop := "stop"
	if res.FinishReason != "" {
		stop = res.FinishReason
	}
	// The last events are known together, so they go out in one write.
	buf = appendFinishChunk(buf[:0], head, stop)
	if includeUsage {
		buf = appendUsageChunk(buf, head, oaUsage(res.Usage))
	}
	buf = append(buf, "data: [DONE]\n\n"...)
	if out.write(buf) == nil {
		out.flush()
	}
}

// OAEmbeddingsRequest is the body of POST /v1/embeddings.
type OAEmbeddingsRequest struct {
	Model          string          `json:"model"`
	Input          json.RawMessage `json:"input"`
	EncodingFormat string          `json:"encoding_format"`
	User           string          `json:"user"`
}

// OAEmbedding is one item of an embeddings reply; Embedding is []float32 or a base64 string.
type OAEmbedding struct {
	Object    string `json:"object"`
	Index     int    `json:"index"`
	Embedding any    `json:"embedding"`
}

// OAEmbeddingsReply is OpenAI's embeddings list.
type OAEmbeddingsReply struct {
	Object string        `json:"object"`
	Data   []OAEmbedding `json:"data"`
	Model  string        `json:"model"`
	Usage  struct {
		PromptTokens int64 `json:"prompt_tokens"`
		TotalTokens  int64 `json:"total_tokens"`
	} `json:"usage"`
}

// Embeddings serves POST /v1/embeddings (float or base64 encoding; token-array input is refused).
func (h *Handlers) Embeddings(c *gin.Context) {
	var req OAEmbeddingsRequest
	if !bindJSON(c, &req) {
		return
	}
	var input stringList
	if err := json.Unmarshal(req.Input, &input); err != nil || len(input) == 0 {
		apierror.Abort(c, apierror.BadRequest("input must be a non-empty string or list of strings"))
		return
	}
	switch req.EncodingFormat {
	case "", "float", "base64":
	default:
		apierror.Abort(c, apierror.BadRequest("encoding_format %q is not float or base64", req.EncodingFormat))
		return
	}
	id, ok := identity(c, v1User(c, req.User), header(c, headerOrgKey))
	if !ok {
		return
	}
	res, err := h.svc.Embed(c.Request.Context(), middleware.Runtime(c), &EmbedInput{Model: req.Model, Input: input, Identity: id})
	if err != nil {
		abort(c, err)
		return
	}
	out := OAEmbeddingsReply{Object: "list", Model: res.Model, Data: make([]OAEmbedding, len(res.Embeddings))}
	for i, e := range res.Embeddings {
		var v any = e
		if req.EncodingFormat == "base64" {
			b := make([]byte, 4*len(e))
			for j, f := range e {
				binary.LittleEndian.PutUint32(b[4*j:], math.Float32bits(f))
			}
			v = base64.StdEncoding.EncodeToString(b)
		}
		out.Data[i] = OAEmbedding{Object: "embedding", Index: i, Embedding: v}
	}
	out.Usage.PromptTokens, out.Usage.TotalTokens = res.Usage.PromptTokens, res.Usage.Total()
	served(c, res.Provider, res.Cost, false, res.RateLimit)
	replyNow(c, out)
}

// OAModerationsRequest is the body of POST /v1/moderations.
type OAModerationsRequest struct {
	Input json.RawMessage `json:"input"`
	Model string          `json:"model"`
}

// openAICategories are the categories OpenAI's moderation objects always carry; the SDKs
// expect every one of them.
var openAICategories = []string{"harassment", "harassment/threatening", "hate", "hate/threatening", "illicit",
	"illicit/violent", "self-harm", "self-harm/intent", "self-harm/instructions", "sexual", "sexual/minors",
	"violence", "violence/graphic"}

// Moderations serves POST /v1/moderations with the built-in guardrail engine.
func (h *Handlers) Moderations(c *gin.Context) {
	var req OAModerationsRequest
	if !bindJSON(c, &req) {
		return
	}
	var input stringList
	if err := json.Unmarshal(req.Input, &input); err != nil || len(input) == 0 {
		apierror.Abort(c, apierror.BadRequest("input must be a non-empty string or list of strings"))
		return
	}
	if _, ok := identity(c, header(c, headerUserKey), header(c, headerOrgKey)); !ok {
		return
	}
	type result struct {
		Flagged        bool               `json:"flagged"`
		Categories     map[string]bool    `json:"categories"`
		CategoryScores map[string]float64 `json:"category_scores"`
		PII            []PIISpan          `json:"pii"`
	}
	results := make([]result, 0, len(input))
	for _, in := range input {
		m, err := h.svc.Moderate(c.Request.Context(), in)
		if err != nil {
			abort(c, err)
			return
		}
		a := apiModeration(m)
		r := result{Flagged: a.Flagged, Categories: map[string]bool{}, CategoryScores: map[string]float64{}, PII: a.PII}
		for _, k := range openAICategories {
			r.Categories[k], r.CategoryScores[k] = a.Categories[k], a.Scores[k]
		}
		for k, v := range a.Categories {
			r.Categories[k], r.CategoryScores[k] = v, a.Scores[k]
		}
		results = append(results, r)
	}
	model := req.Model
	if model == "" {
		model = "aigw-moderation"
	}
	replyNow(c, gin.H{"id": "modr-" + newID("mod"), "model": model, "results": results})
}

// Models serves GET /v1/models: every provider model and route alias of the snapshot.
func (h *Handlers) Models(c *gin.Context) {
	type model struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Created int64  `json:"created"`
		OwnedBy string `json:"owned_by"`
	}
	rt := middleware.Runtime(c)
	names := rt.ModelNames()
	out := make([]model, 0, len(names))
	created := rt.LoadedAt.Unix()
	for _, n := range names {
		out = append(out, model{ID: n.Name, Object: "model", Created: created, OwnedBy: n.OwnedBy})
	}
	c.JSON(http.StatusOK, gin.H{"object": "list", "data": out})
}
