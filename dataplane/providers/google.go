package providers

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// google speaks the Gemini API (generativelanguage.googleapis.com, v1beta).
type google struct {
	base
}

type gemPart struct {
	Text string `json:"text"`
}

type gemContent struct {
	Role  string    `json:"role,omitempty"`
	Parts []gemPart `json:"parts"`
}

type gemGenConfig struct {
	MaxOutputTokens    int64           `json:"maxOutputTokens,omitempty"`
	Temperature        *float64        `json:"temperature,omitempty"`
	TopP               *float64        `json:"topP,omitempty"`
	StopSequences      []string        `json:"stopSequences,omitempty"`
	ResponseMimeType   string          `json:"responseMimeType,omitempty"`
	ResponseJSONSchema json.RawMessage `json:"responseJsonSchema,omitempty"`
}

type gemRequest struct {
	Contents          []gemContent  `json:"contents"`
	SystemInstruction *gemContent   `json:"systemInstruction,omitempty"`
	GenerationConfig  *gemGenConfig `json:"generationConfig,omitempty"`
}

type gemUsage struct {
	PromptTokenCount        int64 `json:"promptTokenCount"`
	CandidatesTokenCount    int64 `json:"candidatesTokenCount"`
	ThoughtsTokenCount      int64 `json:"thoughtsTokenCount"`
	CachedContentTokenCount int64 `json:"cachedContentTokenCount"`
	TotalTokenCount         int64 `json:"totalTokenCount"`
}

// norm counts thinking tokens as completion: Google bills them at the output rate.
func (u *gemUsage) norm() Usage {
	return Usage{PromptTokens: u.PromptTokenCount, CompletionTokens: u.CandidatesTokenCount + u.ThoughtsTokenCount, CachedPromptTokens: u.CachedContentTokenCount}
}

type gemResponse struct {
	Candidates []struct {
		Content      *gemContent `json:"content"`
		FinishReason string      `json:"finishReason"`
	} `json:"candidates"`
	PromptFeedback *struct {
		BlockReason string `json:"blockReason"`
	} `json:"promptFeedback"`
	UsageMetadata *gemUsage `json:"usageMetadata"`
	ModelVersion  string    `json:"modelVersion"`
	ResponseID    string    `json:"responseId"`
	Error         *gemError `json:"error"`
}

type gemError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Status  string `json:"status"`
	Details []struct {
		Type       string `json:"@type"`
		Reason     string `json:"reason"`
		RetryDelay string `json:"retryDelay"`
	} `json:"details"`
}

// parseGoogleError reads {"error":{"code","message","status","details"}}, including the
// RetryInfo detail that carries the retry delay on 429.
func parseGoogleError(body []byte) (string, string, time.Duration, bool) {
	var env struct {
		Error *gemError `json:"error"`
	}
	if json.Unmarshal(body, &env) != nil || env.Error == nil {
		return "", "", 0, false
	}
	var retry time.Duration
	typ := env.Error.Status
	for _, d := range env.Error.Details {
		if strings.HasSuffix(d.Type, "RetryInfo") && d.RetryDelay != "" {
			if v, err := time.ParseDuration(d.RetryDelay); err == nil && v > 0 {
				retry = v
			}
		}
		if d.Reason != "" {
			typ = d.Reason
		}
	}
	return typ, env.Error.Message, retry, true
}

func (g *google) headers() map[string]string {
	return map[string]string{"x-goog-api-key": g.apiKey}
}

func (g *google) modelURL(model, method string) string {
	return g.baseURL + "/v1beta/models/" + url.PathEscape(strings.TrimPrefix(model, "models/")) + ":" + method
}

func (g *google) body(req *ChatRequest) *gemRequest {
	r := &gemRequest{}
	var system []gemPart
	for _, m := range req.Messages {
		switch m.Role {
		case "system":
			system = append(system, gemPart{Text: m.Content})
			continue
		case "assistant":
			r.Contents = append(r.Contents, gemContent{Role: "model", Parts: []gemPart{{Text: m.Content}}})
		default:
			r.Contents = append(r.Contents, gemContent{Role: "user", Parts: []gemPart{{Text: m.Content}}})
		}
	}
	if len(system) > 0 {
		r.SystemInstruction = &gemContent{Parts: system}
	}
	gc := &gemGenConfig{MaxOutputTokens: req.MaxTokens, Temperature: req.Temperature, TopP: req.TopP, StopSequences: req.Stop}
	if rf := req.ResponseFormat; rf != nil && (rf.Type == "json_object" || rf.Type == "json_schema") {
		gc.ResponseMimeType = "application/json"
		gc.ResponseJSONSchema = rf.Schema
	}
	if gc.MaxOutputTokens != 0 || gc.Temperature != nil || gc.TopP != nil || gc.StopSequences != nil || gc.ResponseMimeType != "" {
		r.GenerationConfig = gc
	}
	return r
}

// check turns an in-band error or a blocked prompt into an *Error.
func (g *google) check(r *gemResponse) error {
	if r.Error != nil {
		return &Error{Kind: kindForStatus(r.Error.Code), Provider: g.name, Message: "stream error: " + describe(kindForStatus(r.Error.Code), r.Error.Status, r.Error.Message, g.apiKey, true)}
	}
	if r.PromptFeedback != nil && r.PromptFeedback.BlockReason != "" && len(r.Candidates) == 0 {
		return &Error{Kind: KindBadRequest, Provider: g.name, Message: "prompt blocked by the provider: " + r.PromptFeedback.BlockReason}
	}
	return nil
}

func candidateText(r *gemResponse) (string, string) {
	if len(r.Candidates) == 0 {
		return "", ""
	}
	c := r.Candidates[0]
	var sb strings.Builder
	if c.Content != nil {
		for _, p := range c.Content.Parts {
			sb.WriteString(p.Text)
		}
	}
	return sb.String(), c.FinishReason
}

func (g *google) Chat(ctx context.Context, req *ChatRequest) (*ChatResponse, error) {
	c, err := g.send(ctx, http.MethodPost, g.modelURL(req.Model, "generateContent"), g.body(req), g.headers(), parseGoogleError)
	if err != nil {
		return nil, err
	}
	defer c.close()
	var r gemResponse
	if err := g.decodeBody(c, maxChatBody, &r); err != nil {
		return nil, err
	}
	if err := g.check(&r); err != nil {
		return nil, err
	}
	if len(r.Candidates) == 0 {
		return nil, malformed(g.name, "response has no candidates", nil)
	}
	text, finish := candidateText(&r)
	out := &ChatResponse{ID: r.ResponseID, Model: r.ModelVersion, Content: text, FinishReason: finish}
	if out.Model == "" {
		out.Model = req.Model
	}
	if r.UsageMetadata != nil {
		out.Usage = r.UsageMetadata.norm()
	}
	return out, nil
}

func (g *google) ChatStream(ctx context.Context, req *ChatRequest) (Stream, error) {
	c, err := g.send(ctx, http.MethodPost, g.modelURL(req.Model, "streamGenerateContent")+"?alt=sse", g.body(req), g.headers(), parseGoogleError)
	if err != nil {
		return nil, err
	}
	return g.stream(c), nil
}

// stream decodes an open streamed reply; split from ChatStream so that fuzzing needs no HTTP.
func (g *google) stream(c *call) *httpStream {
	s := &httpStream{b: &g.base, c: c}
	sse := newSSEReaderSize(s.body(), maxLineBytes, relayLineBuffer)
	sse.reuse = true // a chunk's data is decoded (copied) before the next is read
	finished := false
	r := new(gemResponse) // one for the stream, zeroed before each decode (see anthropic's)
	s.next = func() (string, error) {
		ev, err := sse.Next()
		if errors.Is(err, io.EOF) {
			// Gemini has no end sentinel: the stream ends after the chunk with a finishReason.
			if finished {
				return "", io.EOF
			}
			return "", errEarlyEOF
		}
		if err != nil {
			return "", err
		}
		*r = gemResponse{}
		// Decoded by the library, as OpenAI chunks are (fastjson.go); stream_fastjson_test.go
		// holds it to encoding/json on this chunk type.
		if err := unmarshalFast(ev.Data, r); err != nil {
			return "", malformed(g.name, "undecodable stream chunk", err)
		}
		if err := g.check(r); err != nil {
			return "", err
		}
		if r.UsageMetadata != nil {
			s.setUsage(r.UsageMetadata.norm())
		}
		text, finish := candidateText(r)
		if finish != "" {
			finished = true
		}
		return text, nil
	}
	return s
}

type gemEmbedRequest struct {
	Model   string     `json:"model"`
	Content gemContent `json:"content"`
}

func (g *google) Embed(ctx context.Context, req *EmbedRequest) (*EmbedResponse, error) {
	model := "models/" + strings.TrimPrefix(req.Model, "models/")
	out := &EmbedResponse{Model: req.Model}
	if len(req.Input) == 1 {
		c, err := g.send(ctx, http.MethodPost, g.modelURL(req.Model, "embedContent"), &gemEmbedRequest{Model: model, Content: gemContent{Parts: []gemPart{{Text: req.Input[0]}}}}, g.headers(), parseGoogleError)
		if err != nil {
			return nil, err
		}
		defer c.close()
		var r struct {
			Embedding *struct {
				Values []float32 `json:"values"`
			} `json:"embedding"`
		}
		if err := g.decodeBody(c, maxEmbedBody, &r); err != nil {
			return nil, err
		}
		if r.Embedding == nil {
			return nil, malformed(g.name, "response has no embedding", nil)
		}
		out.Embeddings = [][]float32{r.Embedding.Values}
	} else {
		batch := struct {
			Requests []gemEmbedRequest `json:"requests"`
		}{Requests: make([]gemEmbedRequest, len(req.Input))}
		for i, in := range req.Input {
			batch.Requests[i] = gemEmbedRequest{Model: model, Content: gemContent{Parts: []gemPart{{Text: in}}}}
		}
		c, err := g.send(ctx, http.MethodPost, g.modelURL(req.Model, "batchEmbedContents"), &batch, g.headers(), parseGoogleError)
		if err != nil {
			return nil, err
		}
		defer c.close()
		var r struct {
			Embeddings []struct {
				Values []float32 `json:"values"`
			} `json:"embeddings"`
		}
		if err := g.decodeBody(c, maxEmbedBody, &r); err != nil {
			return nil, err
		}
		if len(r.Embeddings) != len(req.Input) {
			return nil, malformed(g.name, "embedding count does not match input count", nil)
		}
		out.Embeddings = make([][]float32, len(r.Embeddings))
		for i, e := range r.Embeddings {
			out.Embeddings[i] = e.Values
		}
	}
	// The embedding endpoints report no token usage; count it so that the call is still priced.
	msgs := make([]Message, len(req.Input))
	for i, in := range req.Input {
		msgs[i] = Message{Role: "user", Content: in}
	}
	out.Usage = Usage{PromptTokens: TokenCounter(req.Model, msgs)}
	return out, nil
}
