package server_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/providers/providertest"
)

// TestNoPromptCompletionOrKeyLeaksIntoAnyOutput runs served, streamed, refused and failed
// requests carrying recognisable prompts, completions and keys, then scans everything the data
// plane exposes besides the reply content itself: logs, /metrics, /readyz, error bodies and
// every response header.
func TestNoPromptCompletionOrKeyLeaksIntoAnyOutput(t *testing.T) {
	const (
		prompt     = "PROMPT-LEAK-4417"
		completion = "COMPLETION-LEAK-8823"
		badKey     = "KEY-LEAK-3391"
	)
	var logs syncBuffer
	h := newHarness(t, harnessOpts{logs: &logs, upstream: providertest.Options{Reply: completion}})
	var exposed strings.Builder
	record := func(code int, hdr http.Header, body []byte, isReply bool) {
		for k, v := range hdr {
			exposed.WriteString(k + ": " + strings.Join(v, ",") + "\n")
		}
		if !isReply || code != http.StatusOK {
			exposed.Write(body)
		}
	}

	// Served: JSON and stream, on both APIs (the reply body legitimately holds the completion).
	for _, stream := range []bool{false, true} {
		b := chatBody("gpt-4o-mini", prompt)
		b["stream"] = stream
		code, hdr, body := h.do(http.MethodPost, "/api/ai/chat", adminKey, b)
		require.Equal(t, http.StatusOK, code)
		record(code, hdr, body, true)
		code, hdr, body = h.do(http.MethodPost, "/v1/chat/completions", adminKey, map[string]any{
			"model": "gpt-4o-mini", "stream": stream, "messages": []map[string]string{{"role": "user", "content": prompt}}})
		require.Equal(t, http.StatusOK, code)
		record(code, hdr, body, true)
	}
	// Refused before the provider: bad key, unknown model, malformed body, forbidden org.
	for _, r := range []struct {
		key  string
		body any
	}{
		{badKey, chatBody("gpt-4o-mini", prompt)},
		{adminKey, chatBody("no-such-model", prompt)},
		{adminKey, `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"` + prompt + `"}],"userId":`},
		{appKey, map[string]any{"model": "gpt-4o-mini", "userId": "u", "orgId": "globex", "messages": []map[string]string{{"role": "user", "content": prompt}}}},
	} {
		code, hdr, body := h.do(http.MethodPost, "/api/ai/chat", r.key, r.body)
		require.NotEqual(t, http.StatusOK, code)
		record(code, hdr, body, false)
	}
	// Failed upstream: our key refused, the request refused, a server error, a broken stream.
	for _, o := range []providertest.Options{
		{Fault: providertest.FaultStatus, Status: http.StatusUnauthorized},
		{Fault: providertest.FaultStatus, Status: http.StatusBadRequest},
		{Fault: providertest.FaultStatus, Status: http.StatusInternalServerError},
		{Fault: providertest.FaultMalformed},
	} {
		h.Upstream.SetOptions(o)
		code, hdr, body := h.do(http.MethodPost, "/api/ai/chat", adminKey, chatBody("gpt-4o-mini", prompt))
		require.NotEqual(t, http.StatusOK, code)
		record(code, hdr, body, false)
	}
	for _, path := range []string{"/metrics", "/readyz", "/healthz"} {
		resp, err := http.Get(h.URL + path)
		require.NoError(t, err)
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		_ = resp.Body.Close()
		exposed.Write(b)
	}

	out := exposed.String() + logs.String()
	require.Contains(t, out, "aigw_requests_total", "the scan covers the metrics")
	require.Contains(t, out, `"request_id"`, "the scan covers the logs")
	for _, secret := range []string{prompt, completion, badKey, adminKey, appKey, providertest.DefaultAPIKey} {
		require.NotContains(t, out, secret)
	}
}
