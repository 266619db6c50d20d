package budgetwriter_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/governor"
	"github.com/nself-org/ai-orchestration/dataplane/handlers"
	"github.com/nself-org/ai-orchestration/dataplane/metrics"
	"github.com/nself-org/ai-orchestration/dataplane/middleware"
	"github.com/nself-org/ai-orchestration/dataplane/money"
	"github.com/nself-org/ai-orchestration/dataplane/providers"
	"github.com/nself-org/ai-orchestration/dataplane/runtime"
	"github.com/nself-org/ai-orchestration/dataplane/store"
	"github.com/nself-org/ai-orchestration/internal/budgetwriter"
	"github.com/nself-org/ai-orchestration/internal/compiler"
)

const adminToken = "standalone-admin-token"

// adminKeySecret is a client key with the admin role, as a manifest in the folder.
const adminKeySecret = `apiVersion: v1
kind: Secret
metadata:
  name: admin
  namespace: default
  labels: {ai.nself.org/api-key: "true"}
  annotations: {ai.nself.org/role: admin}
stringData:
  key: ` + adminToken + "\n"

// loadDir is cmd/dataplane's loader (a package main, so not importable): compile the folder.
func loadDir(dir string) (*config.Snapshot, []string, error) {
	in, err := compiler.LoadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	res := compiler.Compile(in)
	var problems []string
	for _, p := range res.Problems {
		problems = append(problems, p.Name+": "+p.Message)
	}
	return res.Snapshot, problems, nil
}

// TestStandaloneSetBudgetTakesEffectOnTheNextRequest runs the real chain: the budgets handler
// writes a manifest, the folder watcher compiles and loads it, and the governor judges the very
// next request by it.
func TestStandaloneSetBudgetTakesEffectOnTheNextRequest(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "admin-key.yaml"), []byte(adminKeySecret), 0o644))
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	m := metrics.New()
	holder := runtime.NewHolder(runtime.Options{NewProvider: providers.New, HTTPClient: providers.NewHTTPClient(0)}, m, log)
	require.NoError(t, holder.LoadDir(dir, loadDir))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		holder.WatchDir(ctx, dir, 20*time.Millisecond, loadDir)
	}()
	t.Cleanup(func() { cancel(); <-done })

	gov := governor.New(store.NewMemory(store.MemoryOptions{}), governor.Options{Logger: log})
	bh := handlers.NewBudgetHandlers(budgetwriter.NewFiles(dir), gov, holder)
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	api := e.Group("/api/ai", middleware.NewRuntime(holder), middleware.NewAuth())
	api.PUT("/budgets/:scope/:subject", bh.PutBudget)
	api.DELETE("/budgets/:scope/:subject", bh.DeleteBudget)
	call := func(method, path, body string) int {
		req := httptest.NewRequestWithContext(t.Context(), method, path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+adminToken)
		w := httptest.NewRecorder()
		e.ServeHTTP(w, req)
		return w.Code
	}
	admit := func() error {
		req := &governor.Request{Identity: governor.Identity{User: "alice", Org: "acme"}, Endpoint: "chat",
			Provider: "default/mock", Model: "m", WorstCaseCost: money.MustParseUSD("0.01")}
		dec, err := gov.Admit(t.Context(), holder.Load().Snapshot, req)
		if err != nil {
			return err
		}
		require.NoError(t, gov.Settle(t.Context(), req, dec.Ticket, governor.Charge{}))
		return nil
	}

	require.NoError(t, admit(), "no budget yet")
	require.Equal(t, http.StatusCreated, call("PUT", "/api/ai/budgets/user/alice", `{"daily": "0.001"}`))
	var denied *governor.DeniedError
	require.ErrorAs(t, admit(), &denied, "the request right after the PUT is judged by the new budget")
	require.Equal(t, governor.DeniedByBudget, denied.Kind)
	require.Equal(t, "default/api-user-alice", denied.Name)

	require.Equal(t, http.StatusOK, call("PUT", "/api/ai/budgets/user/alice", `{"daily": "1"}`))
	require.NoError(t, admit(), "the raised limit applies at once")

	require.Equal(t, http.StatusOK, call("PUT", "/api/ai/budgets/user/alice", `{"daily": "0.001"}`))
	require.Error(t, admit())
	require.Equal(t, http.StatusNoContent, call("DELETE", "/api/ai/budgets/user/alice", ""))
	require.NoError(t, admit(), "a deleted budget no longer applies")
}
