package main

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	aiv1alpha1 "github.com/nself-org/ai-orchestration/api/v1alpha1"
	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/governor"
	"github.com/nself-org/ai-orchestration/dataplane/money"
	"github.com/nself-org/ai-orchestration/dataplane/store"
	"github.com/nself-org/ai-orchestration/internal/compiler"
)

func TestSmokeManagerWithRedis(t *testing.T) {
	env := &envtest.Environment{CRDDirectoryPaths: []string{filepath.Join("..", "..", "config", "crd", "bases")}, ErrorIfCRDPathMissing: true}
	cfg, err := env.Start()
	require.NoError(t, err)
	defer env.Stop()
	c, err := client.New(cfg, client.Options{Scheme: Scheme()})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	require.NoError(t, c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ops"}}))
	b := &aiv1alpha1.AIBudget{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "g"},
		Spec: aiv1alpha1.AIBudgetSpec{Scope: aiv1alpha1.BudgetScopeGlobal, Monthly: "10"}}
	require.NoError(t, c.Create(ctx, b))
	var wg sync.WaitGroup
	wg.Go(func() {
		err := RunWithConfig(ctx, cfg, Settings{MetricsAddr: "0", ProbeAddr: "0", Namespace: "ops", SnapshotName: "snap",
			RedisURL: os.Getenv("REDIS_URL"), BudgetStatusInterval: time.Second})
		t.Log("run:", err)
	})
	st, err := store.DialRedis(ctx, os.Getenv("REDIS_URL"), store.RedisOptions{})
	require.NoError(t, err)
	g := governor.New(st, governor.Options{})
	snap := compiler.Compile(compiler.Input{Budgets: []aiv1alpha1.AIBudget{*b}}).Snapshot
	req := &governor.Request{Identity: governor.Identity{User: "u", Org: "o"}, WorstCaseCost: money.MustParseUSD("0.25")}
	d, err := g.Admit(ctx, (*config.Snapshot)(snap), req)
	require.NoError(t, err)
	require.NoError(t, g.Settle(ctx, req, d.Ticket, governor.Charge{Cost: money.MustParseUSD("0.25")}))
	require.Eventually(t, func() bool {
		_ = c.Get(ctx, client.ObjectKeyFromObject(b), b)
		return b.Status.Spent != nil && b.Status.Spent.Monthly == "0.25"
	}, 20*time.Second, 50*time.Millisecond)
	t.Logf("status: spent=%s forecast=%s remaining=%s conds=%v", b.Status.Spent.Monthly, b.Status.Forecast.Monthly, b.Status.Remaining.Monthly, b.Status.Conditions)
	cancel()
	wg.Wait()
}
