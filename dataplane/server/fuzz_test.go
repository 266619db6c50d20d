package server_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

// FuzzRequestDecoding sends arbitrary bodies to every JSON endpoint through the whole chain and
// checks that each is answered with a contract status and, when refused, the JSON error body:
// hostile input never panics, never answers 500 and never hangs.
func FuzzRequestDecoding(f *testing.F) {
	h := newHarness(f, harnessOpts{})
	paths := []string{"/api/ai/chat", "/api/ai/embed", "/api/ai/moderate", "/api/ai/summarize", "/v1/chat/completions", "/v1/embeddings", "/v1/moderations"}
	for i, seed := range []string{
		`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"userId":"u"}`,
		`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"userId":"u","stream":true}`,
		`{"input":["a","b"],"userId":"u","model":"text-embedding-3-small"}`,
		`{"text":"a long text","userId":"u","maxWords":-1}`,
		`{"messages":[{"role":"system"}],"maxTokens":1e99}`,
		`[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]`,
		`{"model":null,"messages":"x"}`,
		"\x00\xff{",
	} {
		f.Add(uint8(i), []byte(seed))
	}
	allowed := map[int]bool{200: true, 400: true, 402: true, 403: true, 404: true, 413: true, 422: true, 429: true, 502: true, 503: true, 504: true}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		path := paths[int(which)%len(paths)]
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+adminKey)
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.Server.Handler().ServeHTTP(rec, req)
		if !allowed[rec.Code] {
			t.Fatalf("POST %s %q: status %d is not a contract status; body %s", path, body, rec.Code, rec.Body.Bytes())
		}
		if rec.Code == http.StatusOK {
			return
		}
		var e struct {
			Error struct{ Type, Code, Message string } `json:"error"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error.Type == "" || e.Error.Code == "" {
			t.Fatalf("POST %s %q: status %d without the JSON error body: %s", path, body, rec.Code, rec.Body.Bytes())
		}
	})
}
