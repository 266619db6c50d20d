package server_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/nself-org/ai-orchestration/dataplane/providers/providertest"
)

// BenchmarkOpenAIStream is the load bench's stream cell in process: POST /v1/chat/completions
// with "stream": true and include_usage, relayed from the OpenAI-compatible fake upstream (16
// chunks per reply, as hack/bench streams) through the whole chain to a recorder. ns/op and
// allocs/op include the fake upstream's own work, the same before and after a change.
func BenchmarkOpenAIStream(b *testing.B) {
	h := newHarness(b, harnessOpts{upstream: providertest.Options{Chunks: 16,
		Reply: "The quarterly report shows revenue growth across all regions while operating costs remained stable, and the outlook is <good> & \"steady\"."}})
	handler := h.Server.Handler()
	send := func(i int) {
		body := []byte(`{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Request ` +
			strconv.Itoa(i) + `: summarize the quarterly report"}]}`)
		req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+appKey)
		req.Header.Set("X-AI-Org", "acme")
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK || !bytes.HasSuffix(rec.Body.Bytes(), []byte("data: [DONE]\n\n")) {
			b.Fatalf("status %d: %s", rec.Code, rec.Body.String())
		}
	}
	send(-1)
	b.ReportAllocs()
	for b.Loop() {
		send(int(realisticSeq.Add(1)))
	}
}

// BenchmarkOpenAIStreamOverLoopback is BenchmarkOpenAIStream with the client on a real
// connection, so that the writes and flushes to the client cost their system calls.
func BenchmarkOpenAIStreamOverLoopback(b *testing.B) {
	h := newHarness(b, harnessOpts{upstream: providertest.Options{Chunks: 16,
		Reply: "The quarterly report shows revenue growth across all regions while operating costs remained stable, and the outlook is <good> & \"steady\"."}})
	send := func(i int) {
		body := []byte(`{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Request ` +
			strconv.Itoa(i) + `: summarize the quarterly report"}]}`)
		req, err := http.NewRequest(http.MethodPost, h.URL+"/v1/chat/completions", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+appKey)
		req.Header.Set("X-AI-Org", "acme")
		resp, err := h.client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		out, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || !bytes.HasSuffix(out, []byte("data: [DONE]\n\n")) {
			b.Fatalf("status %d, %v: %s", resp.StatusCode, err, out)
		}
	}
	send(-1)
	b.ReportAllocs()
	for b.Loop() {
		send(int(realisticSeq.Add(1)))
	}
}
