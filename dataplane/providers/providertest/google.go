package providertest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

var googleStatus = map[int]string{
	400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
	409: "ABORTED", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED",
}

// googleErr is Google's error envelope: {"error":{"code","message","status","details"?}}.
func googleErr(code int, message string, details ...any) map[string]any {
	status := googleStatus[code]
	if status == "" {
		status = "UNKNOWN"
	}
	e := map[string]any{"code": code, "message": message, "status": status}
	if len(details) > 0 {
		e["details"] = details
	}
	return map[string]any{"error": e}
}

func googleStatusBody(o Options) func(int) any {
	return func(status int) any {
		switch status {
		case http.StatusTooManyRequests:
			var details []any
			if s, err := strconv.Atoi(o.RetryAfter); err == nil {
				details = append(details, map[string]any{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": fmt.Sprintf("%ds", s)})
			}
			return googleErr(status, "You exceeded your current quota, please check your plan and billing details.", details...)
		case http.StatusUnauthorized:
			return googleErr(status, "Request had invalid authentication credentials.")
		case http.StatusForbidden:
			return googleErr(status, "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.")
		case http.StatusNotFound:
			return googleErr(status, "models/unknown is not found for API version v1beta, or is not supported for generateContent.")
		case http.StatusBadRequest:
			return googleErr(status, "Request contains an invalid argument.")
		case http.StatusServiceUnavailable:
			return googleErr(status, "The model is overloaded. Please try again later.")
		}
		return googleErr(http.StatusInternalServerError, "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting")
	}
}

type googleContent struct {
	Role  string `json:"role"`
	Parts []struct {
		Text *string `json:"text"`
	} `json:"parts"`
}

func (c googleContent) text() string {
	var sb strings.Builder
	for _, p := range c.Parts {
		if p.Text != nil {
			sb.WriteString(*p.Text)
		}
	}
	return sb.String()
}

func serveGoogle(x *exchange) {
	rest, ok := strings.CutPrefix(x.r.URL.Path, "/v1beta/models/")
	i := strings.LastIndexByte(rest, ':')
	if !ok || i <= 0 || x.r.Method != http.MethodPost {
		x.writeJSON(http.StatusNotFound, googleErr(404, "Not Found"))
		return
	}
	model, method := rest[:i], rest[i+1:]
	key := x.r.Header.Get("x-goog-api-key")
	if key == "" {
		key = x.r.URL.Query().Get("key")
	}
	if key == "" {
		x.writeJSON(http.StatusForbidden, googleStatusBody(x.o)(http.StatusForbidden))
		return
	}
	if !x.keyOK(key) {
		x.writeJSON(http.StatusBadRequest, googleErr(400, "API key not valid. Please pass a valid API key.",
			map[string]any{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com"}))
		return
	}
	switch method {
	case "generateContent", "streamGenerateContent":
		googleGenerate(x, model, method == "streamGenerateContent")
	case "embedContent", "batchEmbedContents":
		googleEmbed(x, model, method == "batchEmbedContents")
	default:
		x.writeJSON(http.StatusNotFound, googleErr(404, "Method not found."))
	}
}

func googleGenerate(x *exchange, model string, stream bool) {
	var req struct {
		Contents          []googleContent `json:"contents"`
		SystemInstruction *googleContent  `json:"systemInstruction"`
		GenerationConfig  *struct {
			MaxOutputTokens *int64 `json:"maxOutputTokens"`
		} `json:"generationConfig"`
	}
	bad := func(msg string) { x.writeJSON(http.StatusBadRequest, googleErr(400, msg)) }
	if err := json.Unmarshal(x.body, &req); err != nil {
		bad("Invalid JSON payload received.")
		return
	}
	if stream && x.r.URL.Query().Get("alt") != "sse" {
		bad("this fake serves streamGenerateContent only with alt=sse")
		return
	}
	if len(req.Contents) == 0 {
		bad("* GenerateContentRequest.contents: contents is not specified")
		return
	}
	var texts []string
	if req.SystemInstruction != nil {
		texts = append(texts, req.SystemInstruction.text())
	}
	for _, c := range req.Contents {
		if c.Role != "user" && c.Role != "model" && c.Role != "" {
			bad("Please use a valid role: user, model.")
			return
		}
		if len(c.Parts) == 0 {
			bad("* GenerateContentRequest.contents.parts: contents.parts must not be empty.")
			return
		}
		texts = append(texts, c.text())
	}
	if req.GenerationConfig != nil && req.GenerationConfig.MaxOutputTokens != nil && *req.GenerationConfig.MaxOutputTokens < 1 {
		bad("* GenerateContentRequest.generation_config.max_output_tokens: must be positive")
		return
	}
	if !x.modelKnown(model) {
		x.writeJSON(http.StatusNotFound, googleErr(404, fmt.Sprintf("models/%s is not found for API version v1beta, or is not supported for generateContent.", model)))
		return
	}
	if x.preFault(stream, googleStatusBody(x.o), `{"candidates":[{"content":{"parts":[{"text":`) {
		return
	}
	prompt, completion := x.usage(texts)
	usage := map[string]any{"promptTokenCount": prompt, "candidatesTokenCount": completion, "totalTokenCount": prompt + completion}
	if x.o.CachedTokens > 0 {
		usage["cachedContentTokenCount"] = x.o.CachedTokens
	}
	id := fmt.Sprintf("fake%d", time.Now().UnixNano())
	cand := func(text string, finish string) map[string]any {
		c := map[string]any{"content": map[string]any{"parts": []any{map[string]any{"text": text}}, "role": "model"}, "index": 0}
		if finish != "" {
			c["finishReason"] = finish
		}
		return c
	}
	if !stream {
		x.writeJSON(http.StatusOK, map[string]any{"candidates": []any{cand(x.reply(), "STOP")}, "usageMetadata": usage, "modelVersion": model, "responseId": id})
		return
	}
	chunks := x.chunks()
	// Gemini frames SSE with CRLF; every chunk carries running usage, the last the final one.
	frame := func(v any) []byte {
		data, _ := json.Marshal(v)
		return []byte("data: " + string(data) + "\r\n\r\n")
	}
	x.runStream(streamSpec{
		contentType: "text/event-stream",
		chunk: func(i int, text string) []byte {
			finish := ""
			if i == len(chunks)-1 {
				finish = "STOP"
			}
			resp := map[string]any{"candidates": []any{cand(text, finish)}, "modelVersion": model, "responseId": id}
			if !x.o.OmitUsage {
				if finish != "" {
					resp["usageMetadata"] = usage
				} else {
					resp["usageMetadata"] = map[string]any{"promptTokenCount": prompt, "totalTokenCount": prompt}
				}
			}
			return frame(resp)
		},
		errFrame: frame(googleErr(500, "An internal error has occurred.")),
		badFrame: []byte("data: {\"candidates\":[{\"content\":\r\n\r\n"),
	})
}

func googleEmbed(x *exchange, model string, batch bool) {
	type embedReq struct {
		Model   string         `json:"model"`
		Content *googleContent `json:"content"`
	}
	var reqs []embedReq
	bad := func(msg string) { x.writeJSON(http.StatusBadRequest, googleErr(400, msg)) }
	if batch {
		var b struct {
			Requests []embedReq `json:"requests"`
		}
		if json.Unmarshal(x.body, &b) != nil {
			bad("Invalid JSON payload received.")
			return
		}
		if len(b.Requests) == 0 {
			bad("* BatchEmbedContentsRequest.requests: requests is not specified")
			return
		}
		for i, r := range b.Requests {
			if r.Model != "models/"+model {
				bad(fmt.Sprintf("* BatchEmbedContentsRequest.requests[%d].model: model must match the batch model models/%s", i, model))
				return
			}
		}
		reqs = b.Requests
	} else {
		var r embedReq
		if json.Unmarshal(x.body, &r) != nil {
			bad("Invalid JSON payload received.")
			return
		}
		reqs = []embedReq{r}
	}
	texts := make([]string, len(reqs))
	for i, r := range reqs {
		if r.Content == nil || len(r.Content.Parts) == 0 {
			bad("* EmbedContentRequest.content: content is not specified")
			return
		}
		texts[i] = r.Content.text()
	}
	if !x.modelKnown(model) {
		x.writeJSON(http.StatusNotFound, googleErr(404, fmt.Sprintf("models/%s is not found for API version v1beta, or is not supported for embedContent.", model)))
		return
	}
	if x.preFault(false, googleStatusBody(x.o), `{"embedding":{"values":[0.1,`) {
		return
	}
	if !batch {
		x.writeJSON(http.StatusOK, map[string]any{"embedding": map[string]any{"values": embedding(texts[0], x.o.EmbeddingDims)}})
		return
	}
	out := make([]any, len(texts))
	for i, t := range texts {
		out[i] = map[string]any{"values": embedding(t, x.o.EmbeddingDims)}
	}
	x.writeJSON(http.StatusOK, map[string]any{"embeddings": out})
}
