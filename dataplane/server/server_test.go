package server_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/money"
	"github.com/nself-org/ai-orchestration/dataplane/providers/providertest"
)

func chatBody(model, content string) map[string]any {
	return map[string]any{"model": model, "userId": "user-1", "messages": []map[string]string{{"role": "user", "content": content}}}
}

func TestEveryAIRouteAnswers401WithoutAValidKey(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	n := 0
	for _, r := range h.Server.Routes() {
		if !strings.HasPrefix(r.Path, "/api/ai/") && !strings.HasPrefix(r.Path, "/v1/") {
			require.False(t, r.Auth, "%s %s: only /api/ai and /v1 routes are authenticated", r.Method, r.Path)
			continue
		}
		n++
		require.True(t, r.Auth, "%s %s must require auth", r.Method, r.Path)
		for _, key := range []string{"", "not-a-key"} {
			code, hdr, body := h.do(r.Method, r.Path, key, chatBody("gpt-4o-mini", "hi"))
			require.Equal(t, http.StatusUnauthorized, code, "%s %s key=%q", r.Method, r.Path, key)
			require.NotEmpty(t, hdr.Get("X-Request-ID"))
			_, c := errorBody(t, body)
			require.Equal(t, "invalid_api_key", c)
		}
	}
	require.GreaterOrEqual(t, n, 10, "the route table lists every /api/ai and /v1 endpoint")
	require.Empty(t, h.Upstream.Requests(), "an unauthenticated request never reaches a provider")
}

func TestHealthReadinessAndMetricsNeedNoKey(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	code, _, _ := h.do("GET", "/healthz", "", nil)
	require.Equal(t, http.StatusOK, code)

	code, _, body := h.do("GET", "/readyz", "", nil)
	require.Equal(t, http.StatusOK, code)
	var rz struct {
		Ready  bool
		Config struct{ Hash, Version string }
	}
	require.NoError(t, json.Unmarshal(body, &rz))
	require.True(t, rz.Ready)
	require.Equal(t, h.Holder.Load().Snapshot.Hash, rz.Config.Hash)
	require.Equal(t, config.SchemaVersion, rz.Config.Version)

	code, _, _ = h.do("POST", "/api/ai/chat", adminKey, chatBody("gpt-4o-mini", "hello"))
	require.Equal(t, http.StatusOK, code)
	code, _, body = h.do("GET", "/metrics", "", nil)
	require.Equal(t, http.StatusOK, code)
	for _, want := range []string{
		`aigw_requests_total{code="200",route="/api/ai/chat"} 1`,
		`aigw_config_info{hash="` + h.Holder.Load().Snapshot.Hash + `"`,
		`aigw_tokens_total{kind="completion",model="gpt-4o-mini",provider="default/openai"}`,
		`aigw_cost_usd_total{model="gpt-4o-mini",provider="default/openai"}`,
		`aigw_request_duration_seconds_bucket{route="/api/ai/chat"`,
		`aigw_config_reloads_total 1`,
	} {
		require.Contains(t, string(body), want)
	}
}

func TestChatReplyCarriesContentUsageCostAndHeaders(t *testing.T) {
	h := newHarness(t, harnessOpts{upstream: providertest.Options{Reply: "Hi there", PromptTokens: 1000, CompletionTokens: 2000}})
	code, hdr, body := h.do("POST", "/api/ai/chat", adminKey, chatBody("gpt-4o-mini", "hello"), "X-Request-ID", "req-abc")
	require.Equal(t, http.StatusOK, code, string(body))
	var r struct {
		ID, Content, Model, Provider string
		Usage                        struct{ PromptTokens, CompletionTokens, TotalTokens int64 }
		Cost                         json.Number
		Cached                       bool
	}
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	require.NoError(t, d.Decode(&r))
	require.Equal(t, "Hi there", r.Content)
	require.Equal(t, "gpt-4o-mini", r.Model)
	require.Equal(t, "default/openai", r.Provider)
	require.Equal(t, int64(1000), r.Usage.PromptTokens)
	require.Equal(t, int64(2000), r.Usage.CompletionTokens)
	require.Equal(t, int64(3000), r.Usage.TotalTokens)
	// 1000 × $0.15/M + 2000 × $0.60/M = $0.00015 + $0.0012
	require.Equal(t, "0.00135", r.Cost.String())
	require.False(t, r.Cached)
	require.Equal(t, "req-abc", hdr.Get("X-Request-ID"))
	require.Equal(t, "0.00135", hdr.Get("X-AI-Cost"))
	require.Equal(t, "miss", hdr.Get("X-AI-Cache"))
	require.Equal(t, "default/openai", hdr.Get("X-AI-Provider"))

	s := h.Gov.settles()
	require.Len(t, s, 1)
	require.Equal(t, money.MustParseUSD("0.00135"), s[0].Charge.Cost)
	require.Equal(t, "user-1", s[0].Req.User)
	require.Equal(t, "default/admin", s[0].Req.APIKey)
}

func TestChatErrorsFollowTheContract(t *testing.T) {
	cases := map[string]struct {
		upstream providertest.Options
		key      string
		body     any
		status   int
		code     string
		retry    bool
	}{
		"malformed JSON is a 400": {key: adminKey, body: "{", status: 400, code: "invalid_request"},
		"a missing userId is a 400": {key: adminKey, body: map[string]any{"messages": []map[string]string{{"role": "user", "content": "x"}}},
			status: 400, code: "invalid_request"},
		"empty messages are a 400":       {key: adminKey, body: map[string]any{"userId": "u", "messages": []any{}}, status: 400, code: "invalid_request"},
		"an unknown role is a 400":       {key: adminKey, body: map[string]any{"userId": "u", "messages": []map[string]string{{"role": "wizard", "content": "x"}}}, status: 400, code: "invalid_request"},
		"an unknown model is a 404":      {key: adminKey, body: chatBody("no-such-model", "x"), status: 404, code: "model_not_found"},
		"a body over the limit is a 413": {key: adminKey, body: chatBody("gpt-4o-mini", strings.Repeat("x", 70<<10)), status: 413, code: "request_too_large"},
		"an app key acting for another org is a 403": {key: appKey,
			body: map[string]any{"userId": "u", "orgId": "globex", "messages": []map[string]string{{"role": "user", "content": "x"}}}, status: 403, code: "forbidden"},
		"an upstream 500 is a 502": {upstream: providertest.Options{Fault: providertest.FaultStatus, Status: 500}, key: adminKey,
			body: chatBody("gpt-4o-mini", "x"), status: 502, code: "provider_error"},
		"an upstream 401 (our provider key) is a 502": {upstream: providertest.Options{Fault: providertest.FaultStatus, Status: 401}, key: adminKey,
			body: chatBody("gpt-4o-mini", "x"), status: 502, code: "provider_error"},
		"an upstream 429 is a 503 with Retry-After": {upstream: providertest.Options{Fault: providertest.FaultStatus, Status: 429, RetryAfter: "7"}, key: adminKey,
			body: chatBody("gpt-4o-mini", "x"), status: 503, code: "no_usable_provider", retry: true},
		"malformed upstream JSON is a 502": {upstream: providertest.Options{Fault: providertest.FaultMalformed}, key: adminKey,
			body: chatBody("gpt-4o-mini", "x"), status: 502, code: "provider_error"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, harnessOpts{upstream: tc.upstream})
			code, hdr, body := h.do("POST", "/api/ai/chat", tc.key, tc.body)
			require.Equal(t, tc.status, code, string(body))
			_, c := errorBody(t, body)
			require.Equal(t, tc.code, c)
			require.NotEmpty(t, hdr.Get("X-Request-ID"))
			if tc.retry {
				require.Equal(t, "7", hdr.Get("Retry-After"))
			}
			for _, s := range h.Gov.settles() {
				require.Zero(t, s.Charge.Cost, "a failed call charges nothing")
			}
		})
	}
}

func TestAStalledUpstreamIsA504(t *testing.T) {
	h := newHarness(t, harnessOpts{
		upstream: providertest.Options{Fault: providertest.FaultStall},
		mutate:   []func(*config.Snapshot){func(s *config.Snapshot) { s.Routes[0].Timeout = 200 * time.Millisecond }},
	})
	code, _, body := h.do("POST", "/api/ai/chat", adminKey, chatBody("gpt-4o-mini", "x"))
	require.Equal(t, http.StatusGatewayTimeout, code, string(body))
	_, c := errorBody(t, body)
	require.Equal(t, "provider_timeout", c)
}

func TestAppKeyWithOneOrgActsForItsOrg(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	code, _, body := h.do("POST", "/api/ai/chat", appKey, chatBody("gpt-4o-mini", "x"))
	require.Equal(t, http.StatusOK, code, string(body))
	s := h.Gov.settles()
	require.Len(t, s, 1)
	require.Equal(t, "acme", s[0].Req.Org)
}

// sseEvent is one Server-Sent Event.
type sseEvent struct {
	Event string
	Data  string
}

func readSSE(t testing.TB, b []byte) []sseEvent {
	t.Helper()
	var out []sseEvent
	var cur sseEvent
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.Data != "" || cur.Event != "" {
				out = append(out, cur)
			}
			cur = sseEvent{}
		case strings.HasPrefix(line, "event: "):
			cur.Event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			cur.Data = strings.TrimPrefix(line, "data: ")
		default:
			t.Fatalf("unexpected SSE line %q", line)
		}
	}
	return out
}

func TestStreamedChatSendsDeltasThenOneDoneEvent(t *testing.T) {
	h := newHarness(t, harnessOpts{upstream: providertest.Options{Reply: "one two three", PromptTokens: 10, CompletionTokens: 3}})
	body := chatBody("gpt-4o-mini", "count")
	body["stream"] = true
	code, hdr, raw := h.do("POST", "/api/ai/chat", adminKey, body)
	require.Equal(t, http.StatusOK, code, string(raw))
	require.Equal(t, "text/event-stream", hdr.Get("Content-Type"))
	require.Equal(t, "default/openai", hdr.Get("X-AI-Provider"))
	events := readSSE(t, raw)
	require.GreaterOrEqual(t, len(events), 2)
	var text strings.Builder
	for _, e := range events[:len(events)-1] {
		require.Equal(t, "delta", e.Event)
		var d struct{ Content string }
		require.NoError(t, json.Unmarshal([]byte(e.Data), &d))
		text.WriteString(d.Content)
	}
	require.Equal(t, "one two three", text.String())
	last := events[len(events)-1]
	require.Equal(t, "done", last.Event)
	var done struct {
		Content  string
		Model    string
		Provider string
		Usage    struct{ PromptTokens, CompletionTokens, TotalTokens int64 }
		Cost     float64
		Cached   bool
	}
	require.NoError(t, json.Unmarshal([]byte(last.Data), &done))
	require.Equal(t, "one two three", done.Content)
	require.Equal(t, int64(13), done.Usage.TotalTokens)
	require.InDelta(t, 10*0.15e-6+3*0.60e-6, done.Cost, 1e-12)
	require.Equal(t, "0.0000033", hdr.Get("X-AI-Cost"), "the cost follows the stream as a trailer")
	s := h.Gov.settles()
	require.Len(t, s, 1)
	require.False(t, s[0].Charge.Estimated)
}

func TestAStreamWithoutProviderUsageIsSettledFromTheTokenizer(t *testing.T) {
	h := newHarness(t, harnessOpts{upstream: providertest.Options{Reply: "alpha beta gamma", OmitUsage: true}})
	body := chatBody("gpt-4o-mini", "count")
	body["stream"] = true
	code, _, raw := h.do("POST", "/api/ai/chat", adminKey, body)
	require.Equal(t, http.StatusOK, code, string(raw))
	s := h.Gov.settles()
	require.Len(t, s, 1)
	require.True(t, s[0].Charge.Estimated)
	require.Positive(t, s[0].Charge.Usage.PromptTokens)
	require.Positive(t, s[0].Charge.Usage.CompletionTokens)
	require.Positive(t, s[0].Charge.Cost)
}

func TestAClientThatDisconnectsMidStreamIsStillCharged(t *testing.T) {
	h := newHarness(t, harnessOpts{upstream: providertest.Options{
		Reply: strings.Repeat("word ", 200), ChunkDelay: 20 * time.Millisecond, PromptTokens: 50, CompletionTokens: 200,
	}})
	h.Gov.notify = make(chan struct{}, 1)
	body := chatBody("gpt-4o-mini", "talk")
	body["stream"] = true
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(t.Context(), "POST", h.URL+"/api/ai/chat", bytes.NewReader(b))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+adminKey)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	// Read the first delta, then hang up.
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "event: delta\n", line)
	require.NoError(t, resp.Body.Close())

	select {
	case <-h.Gov.notify:
	case <-time.After(10 * time.Second):
		t.Fatal("the cut stream was never settled")
	}
	s := h.Gov.settles()
	require.Len(t, s, 1)
	require.NoError(t, s[0].CtxErr, "settle runs on a context that outlives the client")
	require.Positive(t, s[0].Charge.Cost)
	require.Equal(t, "default/openai", s[0].Req.Provider)
}

func TestEmbedReturnsOneVectorPerInputWithCost(t *testing.T) {
	h := newHarness(t, harnessOpts{upstream: providertest.Options{EmbeddingDims: 4, PromptTokens: 1000}})
	code, hdr, body := h.do("POST", "/api/ai/embed", adminKey, map[string]any{"model": "text-embedding-3-small", "input": []string{"a", "b"}, "userId": "u"})
	require.Equal(t, http.StatusOK, code, string(body))
	var r struct {
		Embeddings [][]float64
		Model      string
		Usage      struct{ PromptTokens int64 }
		Cost       float64
		Cached     bool
	}
	require.NoError(t, json.Unmarshal(body, &r))
	require.Len(t, r.Embeddings, 2)
	require.Len(t, r.Embeddings[0], 4)
	require.Equal(t, "text-embedding-3-small", r.Model)
	require.Equal(t, int64(1000), r.Usage.PromptTokens)
	require.InDelta(t, 0.00002, r.Cost, 1e-12)
	require.Equal(t, "0.00002", hdr.Get("X-AI-Cost"))

	code, _, body = h.do("POST", "/api/ai/embed", adminKey, map[string]any{"model": "text-embedding-3-small", "input": "single", "userId": "u"})
	require.Equal(t, http.StatusOK, code, string(body))
	require.NoError(t, json.Unmarshal(body, &r))
	require.Len(t, r.Embeddings, 1)
}

func TestModerateAnswersTheContractShape(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	code, _, body := h.do("POST", "/api/ai/moderate", adminKey, map[string]any{"input": "hello", "userId": "u"})
	require.Equal(t, http.StatusOK, code, string(body))
	var r struct {
		Flagged    *bool
		Categories map[string]bool
		Scores     map[string]float64
		PII        []any
	}
	require.NoError(t, json.Unmarshal(body, &r))
	require.NotNil(t, r.Flagged)
	for _, c := range []string{"harassment", "hate", "sexual", "violence", "self-harm"} {
		require.Contains(t, r.Categories, c)
		require.Contains(t, r.Scores, c)
	}
	require.NotNil(t, r.PII)
}

func TestSummarizeSplitsTextLongerThanTheContextWindow(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	long := strings.Repeat("The quick brown fox jumps over the lazy dog. ", 120) // ~1 100 tokens > 600 window
	code, hdr, body := h.do("POST", "/api/ai/summarize", adminKey, map[string]any{"model": "tiny-window", "text": long, "userId": "u", "maxWords": 20})
	require.Equal(t, http.StatusOK, code, string(body))
	var r struct {
		Summary, Model string
		Usage          struct{ PromptTokens, TotalTokens int64 }
		Cost           float64
		Parts          int
	}
	require.NoError(t, json.Unmarshal(body, &r))
	require.Equal(t, "short summary", r.Summary)
	require.Equal(t, "tiny-window", r.Model)
	require.GreaterOrEqual(t, r.Parts, 3, "two or more part summaries and one combining call")
	require.Positive(t, r.Cost)
	require.Equal(t, "default/mock", hdr.Get("X-AI-Provider"))
	require.Len(t, h.Gov.settles(), r.Parts, "every part call is admitted and settled")

	code, _, body = h.do("POST", "/api/ai/summarize", adminKey, map[string]any{"model": "tiny-window", "text": "short text", "userId": "u"})
	require.Equal(t, http.StatusOK, code, string(body))
	require.NoError(t, json.Unmarshal(body, &r))
	require.Equal(t, 1, r.Parts)
}

func TestUsageAndCostsAnswerFromTheGovernor(t *testing.T) {
	h := newHarness(t, harnessOpts{upstream: providertest.Options{PromptTokens: 100, CompletionTokens: 100}})
	code, _, _ := h.do("POST", "/api/ai/chat", adminKey, chatBody("gpt-4o-mini", "x"))
	require.Equal(t, http.StatusOK, code)

	code, _, body := h.do("GET", "/api/ai/usage?userId=user-1&window=7d", adminKey, nil)
	require.Equal(t, http.StatusOK, code, string(body))
	var u struct {
		Requests, Tokens int64
		Cost             float64
		Budgets          []any
	}
	require.NoError(t, json.Unmarshal(body, &u))
	require.Equal(t, int64(1), u.Requests)
	require.Equal(t, int64(200), u.Tokens)
	require.InDelta(t, 100*0.15e-6+100*0.60e-6, u.Cost, 1e-12)
	require.NotNil(t, u.Budgets)

	code, _, body = h.do("GET", "/api/ai/costs?window=30d&groupBy=model", adminKey, nil)
	require.Equal(t, http.StatusOK, code, string(body))
	var c struct {
		Total     float64
		Breakdown []struct {
			Key      string
			Cost     float64
			Requests int64
		}
		Forecast struct {
			PeriodEnd string
			Projected float64
		}
	}
	require.NoError(t, json.Unmarshal(body, &c))
	require.InDelta(t, u.Cost, c.Total, 1e-12)
	require.NotEmpty(t, c.Breakdown)

	for name, path := range map[string]string{
		"a bad window":  "/api/ai/usage?userId=u&window=soon",
		"a bad groupBy": "/api/ai/costs?groupBy=color",
	} {
		code, _, body = h.do("GET", path, adminKey, nil)
		require.Equal(t, http.StatusBadRequest, code, name+": "+string(body))
	}
	code, _, _ = h.do("GET", "/api/ai/costs?orgId=globex", appKey, nil)
	require.Equal(t, http.StatusForbidden, code, "an app key cannot read another org's costs")
}

func TestNotFoundAndMethodNotAllowedUseTheErrorBody(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	code, _, body := h.do("GET", "/nope", "", nil)
	require.Equal(t, http.StatusNotFound, code)
	errorBody(t, body)
	code, _, body = h.do("GET", "/api/ai/chat", adminKey, nil)
	require.Equal(t, http.StatusMethodNotAllowed, code)
	errorBody(t, body)
}

func TestShutdownLetsAnInFlightStreamFinishAndRefusesNewConnections(t *testing.T) {
	h := newHarness(t, harnessOpts{upstream: providertest.Options{
		Reply: "slow words keep coming until the end", ChunkDelay: 40 * time.Millisecond,
	}})
	body := chatBody("gpt-4o-mini", "talk")
	body["stream"] = true
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(t.Context(), "POST", h.URL+"/api/ai/chat", bytes.NewReader(b))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+adminKey)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	first, err := br.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "event: delta\n", first)

	stopped := make(chan error, 1)
	go func() { stopped <- h.Stop() }()
	rest, err := io.ReadAll(br)
	require.NoError(t, err, "the stream is not cut by the shutdown")
	events := readSSE(t, rest)
	require.Equal(t, "done", events[len(events)-1].Event)
	require.NoError(t, <-stopped)
	require.Len(t, h.Gov.settles(), 1)

	_, err = http.Get(h.URL + "/healthz")
	require.Error(t, err, "the listener is closed after shutdown")
}

// syncBuffer is a bytes.Buffer safe for the server's concurrent log writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestLogsNeverContainPromptsCompletionsOrKeys(t *testing.T) {
	var logs syncBuffer
	h := newHarness(t, harnessOpts{logs: &logs, upstream: providertest.Options{Reply: "COMPLETION-MARKER-93"}})
	for _, stream := range []bool{false, true} {
		b := chatBody("gpt-4o-mini", "PROMPT-MARKER-17")
		b["stream"] = stream
		code, _, _ := h.do("POST", "/api/ai/chat", adminKey, b)
		require.Equal(t, http.StatusOK, code)
	}
	code, _, _ := h.do("POST", "/api/ai/chat", "KEY-MARKER-55", chatBody("gpt-4o-mini", "PROMPT-MARKER-17"))
	require.Equal(t, http.StatusUnauthorized, code)
	out := logs.String()
	require.Contains(t, out, `"route":"/api/ai/chat"`, "requests are logged")
	require.Contains(t, out, `"request_id"`)
	for _, secret := range []string{"PROMPT-MARKER-17", "COMPLETION-MARKER-93", "KEY-MARKER-55", adminKey, providertest.DefaultAPIKey} {
		require.NotContains(t, out, secret)
	}
}

func TestAStreamLongerThanTheReadTimeoutIsNotCut(t *testing.T) {
	h := newHarness(t, harnessOpts{
		readTimeout: 150 * time.Millisecond,
		upstream:    providertest.Options{Reply: "one two three four five six", ChunkDelay: 80 * time.Millisecond},
	})
	body := chatBody("gpt-4o-mini", "slow")
	body["stream"] = true
	code, _, raw := h.do("POST", "/api/ai/chat", adminKey, body)
	require.Equal(t, http.StatusOK, code)
	events := readSSE(t, raw)
	last := events[len(events)-1]
	require.Equal(t, "done", last.Event, "the stream ran ~500 ms, past the 150 ms body read timeout")
	require.Contains(t, last.Data, "one two three four five six")
}
