package server_test

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/config"
)

// tokensSavedMetric scrapes /metrics for aigw_prompt_tokens_saved_total.
func tokensSavedMetric(t *testing.T, h *harness) int64 {
	t.Helper()
	code, _, body := h.do("GET", "/metrics", "", nil)
	require.Equal(t, http.StatusOK, code)
	m := regexp.MustCompile(`(?m)^aigw_prompt_tokens_saved_total (\S+)$`).FindSubmatch(body)
	require.NotNil(t, m, "the counter is exported")
	v, err := strconv.ParseFloat(string(m[1]), 64)
	require.NoError(t, err)
	return int64(v)
}

func TestPromptOptimizationReportsTokensSavedInTheReplyAndMetrics(t *testing.T) {
	spaced := "please    summarize\t\t\tthis:      " + strings.Repeat("word    ", 40) + "\n\n\n\n\n\nthanks    "
	var history []map[string]string
	for i := range 20 {
		history = append(history, map[string]string{"role": "user", "content": "old question number " + strconv.Itoa(i) + " " + strings.Repeat("filler ", 30)},
			map[string]string{"role": "assistant", "content": "old answer " + strconv.Itoa(i)})
	}
	history = append(history, map[string]string{"role": "user", "content": "the latest question"})
	tests := []struct {
		name     string
		po       config.PromptOptimization
		path     string
		body     map[string]any
		saves    bool
		upstream func(t *testing.T, msgs []map[string]string)
	}{
		{
			name: "whitespace normalization saves tokens on /api/ai/chat",
			po:   config.PromptOptimization{NormalizeWhitespace: true},
			path: "/api/ai/chat", saves: true,
			body: map[string]any{"model": "gpt-4o-mini", "messages": []map[string]string{{"role": "user", "content": spaced}}},
			upstream: func(t *testing.T, msgs []map[string]string) {
				require.NotContains(t, msgs[0]["content"], "    ", "runs of spaces were collapsed upstream")
			},
		},
		{
			name: "history trimming saves tokens on /v1/chat/completions",
			po:   config.PromptOptimization{MaxInputTokens: 200},
			path: "/v1/chat/completions", saves: true,
			body: map[string]any{"model": "gpt-4o-mini", "messages": history},
			upstream: func(t *testing.T, msgs []map[string]string) {
				require.Less(t, len(msgs), len(history), "old turns were dropped")
				require.Equal(t, "the latest question", msgs[len(msgs)-1]["content"])
			},
		},
		{
			name: "a streamed reply carries the header too",
			po:   config.PromptOptimization{NormalizeWhitespace: true},
			path: "/api/ai/chat", saves: true,
			body: map[string]any{"model": "gpt-4o-mini", "stream": true, "messages": []map[string]string{{"role": "user", "content": spaced}}},
		},
		{
			name: "an already tidy prompt saves nothing and has no header",
			po:   config.PromptOptimization{NormalizeWhitespace: true, MaxInputTokens: 10000},
			path: "/api/ai/chat",
			body: map[string]any{"model": "gpt-4o-mini", "messages": []map[string]string{{"role": "user", "content": "a tidy prompt"}}},
		},
		{
			name: "without prompt optimization nothing is reported",
			path: "/api/ai/chat",
			body: map[string]any{"model": "gpt-4o-mini", "messages": []map[string]string{{"role": "user", "content": spaced}}},
			upstream: func(t *testing.T, msgs []map[string]string) {
				require.Equal(t, spaced, msgs[0]["content"], "the prompt is sent as written")
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, harnessOpts{mutate: []func(*config.Snapshot){func(s *config.Snapshot) {
				s.Routes[0].PromptOptimization = tc.po
			}}})
			tc.body["userId"] = "user-1"
			code, hdr, body := h.do("POST", tc.path, adminKey, tc.body)
			require.Equal(t, http.StatusOK, code, string(body))
			metric := tokensSavedMetric(t, h)
			if !tc.saves {
				require.Empty(t, hdr.Values("X-AI-Tokens-Saved"))
				require.Zero(t, metric)
			} else {
				saved, err := strconv.ParseInt(hdr.Get("X-AI-Tokens-Saved"), 10, 64)
				require.NoError(t, err, "X-AI-Tokens-Saved is an integer")
				require.Positive(t, saved)
				require.Equal(t, saved, metric, "the counter adds what the reply reports")
			}
			if tc.upstream != nil {
				r, ok := h.Upstream.LastRequest()
				require.True(t, ok)
				var sent struct {
					Messages []map[string]string `json:"messages"`
				}
				require.NoError(t, r.JSON(&sent))
				tc.upstream(t, sent.Messages)
			}
		})
	}
}
