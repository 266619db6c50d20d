package seedenv

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/cache"
	"github.com/nself-org/ai-orchestration/dataplane/governor"
	"github.com/nself-org/ai-orchestration/dataplane/guard"
	"github.com/nself-org/ai-orchestration/dataplane/handlers"
	"github.com/nself-org/ai-orchestration/dataplane/metrics"
	"github.com/nself-org/ai-orchestration/dataplane/providers"
	"github.com/nself-org/ai-orchestration/dataplane/providers/providertest"
	"github.com/nself-org/ai-orchestration/dataplane/route"
	"github.com/nself-org/ai-orchestration/dataplane/runtime"
	"github.com/nself-org/ai-orchestration/dataplane/server"
	"github.com/nself-org/ai-orchestration/dataplane/store"
	"github.com/nself-org/ai-orchestration/internal/compiler"
)

// serveEnv starts a real data plane (embedded store, every middleware) on the snapshot the
// environment describes, on 127.0.0.1, and returns its URL.
func serveEnv(t *testing.T, kv map[string]string) string {
	t.Helper()
	in, present, err := FromEnv(env(kv))
	require.NoError(t, err)
	require.True(t, present)
	res := compiler.Compile(in)
	require.Empty(t, res.Problems)

	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	m := metrics.New()
	holder := runtime.NewHolder(runtime.Options{NewProvider: providers.New, HTTPClient: providers.NewHTTPClient(0)}, m, log)
	require.NoError(t, holder.Apply(res.Snapshot))
	st := store.NewMemory(store.MemoryOptions{})
	t.Cleanup(func() { _ = st.Close() })
	svc := handlers.NewService(handlers.Deps{
		Governor: governor.New(st, governor.Options{Logger: log, Registerer: m.Registry}),
		Planner:  route.NewPlanner(route.NewHealth(route.HealthOptions{}), route.PlannerOptions{}),
		Guard:    handlers.NewGuard(guard.NewEngine(guard.Options{})),
		Cache:    cache.New(st.Cache(), cache.Options{Logger: log}),
		Metrics:  m,
		Log:      log,
	})
	srv := server.New(server.Config{}, handlers.New(svc, holder, m), holder, m, log)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return "http://" + ln.Addr().String()
}

type chatReply struct {
	Content  string  `json:"content"`
	Model    string  `json:"model"`
	Provider string  `json:"provider"`
	Cost     float64 `json:"cost"`
	Cached   bool    `json:"cached"`
	Error    *struct {
		Code string `json:"code"`
	} `json:"error"`
}

func chat(t *testing.T, url, key string, body map[string]any) (int, chatReply) {
	t.Helper()
	b, err := json.Marshal(body)
	require.NoError(t, err)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url+"/api/ai/chat", bytes.NewReader(b))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out chatReply
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &out), "%s", raw)
	return resp.StatusCode, out
}

func TestTheSeedsSettingsServeTheDefaultModelAndEnforceTheDailyUserLimit(t *testing.T) {
	// Each call is charged 1000 prompt + 1000 completion tokens of gpt-4o-mini: $0.00075. With
	// maxTokens 1000 a call reserves about $0.0006, so a $0.002 day admits two calls and refuses
	// the third (0.002 - 2 * 0.00075 = 0.0005 left).
	up := providertest.NewOpenAI(t, providertest.Options{APIKey: openAIKey, PromptTokens: 1000, CompletionTokens: 1000, Reply: "hi there"})
	url := serveEnv(t, with(seedEnv(), EnvOpenAIBaseURL, up.BaseURL, EnvUserDaily, "0.002"))

	status, _ := chat(t, url, "", map[string]any{"messages": []map[string]string{{"role": "user", "content": "hello"}}, "userId": "u1"})
	require.Equal(t, http.StatusUnauthorized, status, "the client key is required")

	ask := func(user string, n int) (int, chatReply) {
		return chat(t, url, clientKey, map[string]any{
			"messages":  []map[string]string{{"role": "user", "content": fmt.Sprintf("question %d", n)}},
			"userId":    user,
			"maxTokens": 1000,
		})
	}
	for i := range 2 {
		status, r := ask("user-123", i)
		require.Equal(t, http.StatusOK, status, "%+v", r)
		require.Equal(t, "hi there", r.Content)
		require.Equal(t, "gpt-4o-mini", r.Model, "no model in the request: the default route")
		require.Equal(t, "default/openai", r.Provider)
		require.InDelta(t, 0.00075, r.Cost, 1e-9)
		require.False(t, r.Cached)
	}
	status, r := ask("user-123", 2)
	require.Equal(t, http.StatusPaymentRequired, status)
	require.Equal(t, "budget_exceeded", r.Error.Code)

	status, r = ask("user-456", 0)
	require.Equal(t, http.StatusOK, status, "every user has a budget of their own: %+v", r)

	status, r = ask("user-456", 0)
	require.Equal(t, http.StatusOK, status)
	require.True(t, r.Cached, "AI_CACHE_ENABLED: the same question is answered from the cache")
	require.Zero(t, r.Cost)
	require.Len(t, up.Requests(), 3, "two calls for user-123 and one for user-456 reached the upstream")
}
