package providertest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

func ollamaErr(msg string) map[string]any { return map[string]any{"error": msg} }

func ollamaStatusBody(status int) any {
	switch status {
	case http.StatusNotFound:
		return ollamaErr(`model "unknown" not found, try pulling it first`)
	case http.StatusBadRequest:
		return ollamaErr("invalid request")
	case http.StatusUnauthorized:
		return ollamaErr("unauthorized")
	case http.StatusTooManyRequests:
		return ollamaErr("server busy, please try again.  maximum pending requests exceeded")
	}
	return ollamaErr("llama runner process has terminated: exit status 2")
}

func serveOllama(x *exchange) {
	if key, _ := strings.CutPrefix(x.r.Header.Get("Authorization"), "Bearer "); !x.keyOK(key) {
		x.writeJSON(http.StatusUnauthorized, ollamaErr("unauthorized"))
		return
	}
	if x.r.Method != http.MethodPost {
		x.writeJSON(http.StatusMethodNotAllowed, ollamaErr("method not allowed"))
		return
	}
	switch x.r.URL.Path {
	case "/api/chat":
		ollamaChat(x)
	case "/api/embed":
		ollamaEmbed(x)
	default:
		x.w.WriteHeader(http.StatusNotFound)
		_, _ = x.w.Write([]byte("404 page not found"))
	}
}

func ollamaChat(x *exchange) {
	var req struct {
		Model    string `json:"model"`
		Messages []struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"messages"`
		Stream *bool `json:"stream"`
	}
	if err := json.Unmarshal(x.body, &req); err != nil {
		x.writeJSON(http.StatusBadRequest, ollamaErr("invalid character in request body"))
		return
	}
	if req.Model == "" {
		x.writeJSON(http.StatusBadRequest, ollamaErr("model is required"))
		return
	}
	texts := make([]string, 0, len(req.Messages))
	for _, m := range req.Messages {
		switch m.Role {
		case "system", "user", "assistant", "tool":
		default:
			x.writeJSON(http.StatusBadRequest, ollamaErr(fmt.Sprintf("invalid role: %s", m.Role)))
			return
		}
		texts = append(texts, m.Content)
	}
	if !x.modelKnown(req.Model) {
		x.writeJSON(http.StatusNotFound, ollamaErr(fmt.Sprintf("model %q not found, try pulling it first", req.Model)))
		return
	}
	stream := req.Stream == nil || *req.Stream // Ollama streams unless told otherwise
	if x.preFault(stream, ollamaStatusBody, `{"model":"x","message":{"role":"assistant","content":`) {
		return
	}
	prompt, completion := x.usage(texts)
	created := time.Now().UTC().Format(time.RFC3339Nano)
	final := func(content string) map[string]any {
		f := map[string]any{
			"model": req.Model, "created_at": created, "message": map[string]any{"role": "assistant", "content": content},
			"done_reason": "stop", "done": true, "total_duration": 1_000_000, "load_duration": 100_000,
			"prompt_eval_duration": 200_000, "eval_duration": 700_000,
		}
		if !x.o.OmitUsage {
			f["prompt_eval_count"], f["eval_count"] = prompt, completion
		}
		return f
	}
	if !stream {
		x.writeJSON(http.StatusOK, final(x.reply()))
		return
	}
	line := func(v any) []byte {
		b, _ := json.Marshal(v)
		return append(b, '\n')
	}
	x.runStream(streamSpec{
		contentType: "application/x-ndjson",
		chunk: func(_ int, text string) []byte {
			return line(map[string]any{"model": req.Model, "created_at": created, "message": map[string]any{"role": "assistant", "content": text}, "done": false})
		},
		tail:     [][]byte{line(final(""))},
		errFrame: line(ollamaErr("an error was encountered while running the model")),
		badFrame: []byte("{\"model\":\"x\",\"message\":{\n"),
	})
}

func ollamaEmbed(x *exchange) {
	var req struct {
		Model string          `json:"model"`
		Input json.RawMessage `json:"input"`
	}
	if err := json.Unmarshal(x.body, &req); err != nil {
		x.writeJSON(http.StatusBadRequest, ollamaErr("invalid character in request body"))
		return
	}
	if req.Model == "" {
		x.writeJSON(http.StatusBadRequest, ollamaErr("model is required"))
		return
	}
	inputs, ok := stringOrList(req.Input)
	if !ok {
		x.writeJSON(http.StatusBadRequest, ollamaErr("invalid input type"))
		return
	}
	if !x.modelKnown(req.Model) {
		x.writeJSON(http.StatusNotFound, ollamaErr(fmt.Sprintf("model %q not found, try pulling it first", req.Model)))
		return
	}
	if x.preFault(false, ollamaStatusBody, `{"model":"x","embeddings":[[0.1,`) {
		return
	}
	out := make([][]float32, len(inputs))
	for i, in := range inputs {
		out[i] = embedding(in, x.o.EmbeddingDims)
	}
	tokens := x.o.PromptTokens
	if tokens == 0 {
		tokens = wordCount(inputs)
	}
	x.writeJSON(http.StatusOK, map[string]any{"model": req.Model, "embeddings": out, "total_duration": 1_000_000, "load_duration": 100_000, "prompt_eval_count": tokens})
}
