package providertest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// openAIErr is OpenAI's error envelope: {"error":{"message","type","param","code"}}.
func openAIErr(message, typ string, code any) map[string]any {
	return map[string]any{"error": map[string]any{"message": message, "type": typ, "param": nil, "code": code}}
}

// openAIStatusBody is the body OpenAI sends with each status.
func openAIStatusBody(status int) any {
	switch status {
	case http.StatusBadRequest:
		return openAIErr("Invalid request.", "invalid_request_error", nil)
	case http.StatusUnauthorized:
		return openAIErr("Incorrect API key provided: sk-te****-key. You can find your API key at https://platform.openai.com/account/api-keys.", "invalid_request_error", "invalid_api_key")
	case http.StatusForbidden:
		return openAIErr("Country, region, or territory not supported", "request_forbidden", "unsupported_country_region_territory")
	case http.StatusNotFound:
		return openAIErr("The model `unknown` does not exist or you do not have access to it.", "invalid_request_error", "model_not_found")
	case http.StatusTooManyRequests:
		return openAIErr("Rate limit reached for requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 20s.", "requests", "rate_limit_exceeded")
	case http.StatusServiceUnavailable:
		return openAIErr("The engine is currently overloaded, please try again later.", "server_error", nil)
	}
	return openAIErr("The server had an error while processing your request. Sorry about that!", "server_error", nil)
}

type openAIChatReq struct {
	Model         *string         `json:"model"`
	Messages      []openAIMessage `json:"messages"`
	Stream        bool            `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	MaxTokens           *int64 `json:"max_tokens"`
	MaxCompletionTokens *int64 `json:"max_completion_tokens"`
	ResponseFormat      *struct {
		Type string `json:"type"`
	} `json:"response_format"`
}

type openAIMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

// text returns a message's content, a string or an array of text parts.
func (m openAIMessage) text() (string, bool) {
	var s string
	if json.Unmarshal(m.Content, &s) == nil {
		return s, true
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if json.Unmarshal(m.Content, &parts) != nil {
		return "", false
	}
	var sb strings.Builder
	for _, p := range parts {
		sb.WriteString(p.Text)
	}
	return sb.String(), true
}

func serveOpenAI(x *exchange) {
	if x.r.Method == http.MethodGet && x.r.URL.Path == "/v1/models" {
		if !openAIAuth(x) {
			return
		}
		data := []map[string]any{}
		for _, m := range x.o.Models {
			data = append(data, map[string]any{"id": m, "object": "model", "created": 1700000000, "owned_by": "system"})
		}
		x.writeJSON(http.StatusOK, map[string]any{"object": "list", "data": data})
		return
	}
	if x.r.Method != http.MethodPost {
		x.writeJSON(http.StatusMethodNotAllowed, openAIErr("Method not allowed.", "invalid_request_error", nil))
		return
	}
	switch x.r.URL.Path {
	case "/v1/chat/completions":
		openAIChat(x)
	case "/v1/embeddings":
		openAIEmbeddings(x)
	case "/v1/moderations":
		openAIModerations(x)
	default:
		x.writeJSON(http.StatusNotFound, openAIErr(fmt.Sprintf("Invalid URL (POST %s)", x.r.URL.Path), "invalid_request_error", nil))
	}
}

func openAIAuth(x *exchange) bool {
	auth := x.r.Header.Get("Authorization")
	if auth == "" {
		x.writeJSON(http.StatusUnauthorized, openAIErr("You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).", "invalid_request_error", nil))
		return false
	}
	if key, ok := strings.CutPrefix(auth, "Bearer "); !ok || !x.keyOK(key) {
		x.writeJSON(http.StatusUnauthorized, openAIStatusBody(http.StatusUnauthorized))
		return false
	}
	return true
}

// openAIDecode authenticates and decodes the JSON body; false means it answered.
func openAIDecode(x *exchange, v any) bool {
	if !openAIAuth(x) {
		return false
	}
	if !strings.HasPrefix(x.r.Header.Get("Content-Type"), "application/json") {
		x.writeJSON(http.StatusBadRequest, openAIErr("Unsupported content type: expected application/json.", "invalid_request_error", nil))
		return false
	}
	if err := json.Unmarshal(x.body, v); err != nil {
		x.writeJSON(http.StatusBadRequest, openAIErr("We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly.)", "invalid_request_error", nil))
		return false
	}
	return true
}

func openAIChat(x *exchange) {
	var req openAIChatReq
	if !openAIDecode(x, &req) {
		return
	}
	bad := func(msg string) { x.writeJSON(http.StatusBadRequest, openAIErr(msg, "invalid_request_error", nil)) }
	switch {
	case req.Model == nil || *req.Model == "":
		bad("you must provide a model parameter")
		return
	case len(req.Messages) == 0:
		bad("[] is too short - 'messages'")
		return
	case req.StreamOptions != nil && !req.Stream:
		bad("The 'stream_options' parameter is only allowed when 'stream' is enabled.")
		return
	case req.MaxTokens != nil && req.MaxCompletionTokens != nil:
		bad("max_tokens and max_completion_tokens cannot both be set")
		return
	}
	var texts []string
	for _, m := range req.Messages {
		switch m.Role {
		case "system", "developer", "user", "assistant", "tool":
		default:
			bad(fmt.Sprintf("Invalid value: '%s'. Supported values are: 'system', 'assistant', 'user', 'function', 'tool', and 'developer'.", m.Role))
			return
		}
		t, ok := m.text()
		if !ok || !validUTF8(t) {
			bad("Invalid type for 'messages.content'.")
			return
		}
		texts = append(texts, t)
	}
	model := *req.Model
	if !x.modelKnown(model) {
		x.writeJSON(http.StatusNotFound, openAIErr(fmt.Sprintf("The model `%s` does not exist or you do not have access to it.", model), "invalid_request_error", "model_not_found"))
		return
	}
	if x.preFault(req.Stream, openAIStatusBody, `{"id":"chatcmpl-fake","object":"chat.completion","choices":[{"index":0,`) {
		return
	}
	prompt, completion := x.usage(texts)
	usage := map[string]any{
		"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
		"prompt_tokens_details":     map[string]any{"cached_tokens": x.o.CachedTokens, "audio_tokens": 0},
		"completion_tokens_details": map[string]any{"reasoning_tokens": 0, "audio_tokens": 0},
	}
	id, created := "chatcmpl-fake"+fmt.Sprint(time.Now().UnixNano()), time.Now().Unix()
	if !req.Stream {
		x.writeJSON(http.StatusOK, map[string]any{
			"id": id, "object": "chat.completion", "created": created, "model": model,
			"choices": []any{map[string]any{
				"index": 0, "message": map[string]any{"role": "assistant", "content": x.reply(), "refusal": nil},
				"logprobs": nil, "finish_reason": "stop",
			}},
			"usage": usage, "system_fingerprint": "fp_fake",
		})
		return
	}
	includeUsage := req.StreamOptions != nil && req.StreamOptions.IncludeUsage && !x.o.OmitUsage
	chunk := func(delta map[string]any, finish any) map[string]any {
		c := map[string]any{
			"id": id, "object": "chat.completion.chunk", "created": created, "model": model, "system_fingerprint": "fp_fake",
			"choices": []any{map[string]any{"index": 0, "delta": delta, "logprobs": nil, "finish_reason": finish}},
		}
		if includeUsage {
			c["usage"] = nil
		}
		return c
	}
	tail := [][]byte{sse("", chunk(map[string]any{}, "stop"))}
	if includeUsage {
		tail = append(tail, sse("", map[string]any{
			"id": id, "object": "chat.completion.chunk", "created": created, "model": model, "system_fingerprint": "fp_fake",
			"choices": []any{}, "usage": usage,
		}))
	}
	tail = append(tail, []byte("data: [DONE]\n\n"))
	x.runStream(streamSpec{
		contentType: "text/event-stream; charset=utf-8",
		head:        [][]byte{sse("", chunk(map[string]any{"role": "assistant", "content": "", "refusal": nil}, nil))},
		chunk:       func(_ int, text string) []byte { return sse("", chunk(map[string]any{"content": text}, nil)) },
		tail:        tail,
		errFrame:    sse("", openAIErr("The server had an error while processing your request. Sorry about that!", "server_error", nil)),
		badFrame:    []byte("data: {\"id\":\"chatcmpl-fake\",\"choices\":[{\n\n"),
	})
}

func stringOrList(raw json.RawMessage) ([]string, bool) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []string{s}, true
	}
	var l []string
	if json.Unmarshal(raw, &l) == nil {
		return l, true
	}
	return nil, false
}

func openAIEmbeddings(x *exchange) {
	var req struct {
		Model          string          `json:"model"`
		Input          json.RawMessage `json:"input"`
		EncodingFormat string          `json:"encoding_format"`
	}
	if !openAIDecode(x, &req) {
		return
	}
	inputs, ok := stringOrList(req.Input)
	switch {
	case req.Model == "":
		x.writeJSON(http.StatusBadRequest, openAIErr("you must provide a model parameter", "invalid_request_error", nil))
		return
	case !ok || len(inputs) == 0:
		x.writeJSON(http.StatusBadRequest, openAIErr("'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.", "invalid_request_error", nil))
		return
	case req.EncodingFormat != "" && req.EncodingFormat != "float" && req.EncodingFormat != "base64":
		x.writeJSON(http.StatusBadRequest, openAIErr("Invalid value for 'encoding_format'.", "invalid_request_error", nil))
		return
	}
	if !x.modelKnown(req.Model) {
		x.writeJSON(http.StatusNotFound, openAIErr(fmt.Sprintf("The model `%s` does not exist or you do not have access to it.", req.Model), "invalid_request_error", "model_not_found"))
		return
	}
	if x.preFault(false, openAIStatusBody, `{"object":"list","data":[{"object":"embedding","embedding":[0.1,`) {
		return
	}
	data := make([]any, len(inputs))
	for i, in := range inputs {
		data[i] = map[string]any{"object": "embedding", "index": i, "embedding": embedding(in, x.o.EmbeddingDims)}
	}
	tokens := x.o.PromptTokens
	if tokens == 0 {
		tokens = wordCount(inputs)
	}
	x.writeJSON(http.StatusOK, map[string]any{"object": "list", "data": data, "model": req.Model, "usage": map[string]any{"prompt_tokens": tokens, "total_tokens": tokens}})
}

// moderationCategories are the categories of omni-moderation-latest.
var moderationCategories = []string{
	"harassment", "harassment/threatening", "hate", "hate/threatening", "illicit", "illicit/violent",
	"self-harm", "self-harm/intent", "self-harm/instructions", "sexual", "sexual/minors", "violence", "violence/graphic",
}

func openAIModerations(x *exchange) {
	var req struct {
		Model string          `json:"model"`
		Input json.RawMessage `json:"input"`
	}
	if !openAIDecode(x, &req) {
		return
	}
	inputs, ok := stringOrList(req.Input)
	if !ok || len(inputs) == 0 {
		x.writeJSON(http.StatusBadRequest, openAIErr("'$.input' is invalid.", "invalid_request_error", nil))
		return
	}
	if x.preFault(false, openAIStatusBody, `{"id":"modr-fake","results":[`) {
		return
	}
	terms := x.o.FlagTerms
	if terms == nil {
		terms = []string{"kill"}
	}
	model := req.Model
	if model == "" {
		model = "omni-moderation-latest"
	}
	results := make([]any, len(inputs))
	for i, in := range inputs {
		flagged := false
		for _, t := range terms {
			if t != "" && strings.Contains(strings.ToLower(in), strings.ToLower(t)) {
				flagged = true
			}
		}
		cats, scores := map[string]bool{}, map[string]float64{}
		for _, c := range moderationCategories {
			cats[c], scores[c] = false, 0.0001
		}
		if flagged {
			cats["violence"], scores["violence"] = true, 0.92
		}
		results[i] = map[string]any{"flagged": flagged, "categories": cats, "category_scores": scores}
	}
	x.writeJSON(http.StatusOK, map[string]any{"id": "modr-fake", "model": model, "results": results})
}
