// Package e2e checks the seed's setBudget end to end in a cluster: the budgets API writes an
// AIBudget through a real API server (envtest), the operator's controllers compile it into the
// snapshot Secret, the data plane's Secret watch loads it, and the next request is judged by it
// within 2 s. It lives apart from budgetwriter so that the writer's own tests do not depend on the
// controllers package.
package e2e_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	aiv1alpha1 "github.com/nself-org/ai-orchestration/api/v1alpha1"
	"github.com/nself-org/ai-orchestration/controllers"
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
	"github.com/nself-org/ai-orchestration/internal/kubeclient"
	"github.com/nself-org/ai-orchestration/internal/snapshotsecret"
)

const (
	operatorNS = "ai-orchestration-system"
	budgetNS   = "team-a"
	adminToken = "e2e-admin-token"
	// enforceWithin is the promise: a budget set through the API is enforced this fast.
	enforceWithin = 2 * time.Second
)

func TestClusterSetBudgetIsListedAndEnforcedWithinTwoSeconds(t *testing.T) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Fatal("KUBEBUILDER_ASSETS is not set: this test needs a real kube-apiserver and etcd. " +
			"Run `make test`, or `KUBEBUILDER_ASSETS=$(hack/envtest.sh) go test ./internal/budgetwriter/...`.")
	}
	env := &envtest.Environment{CRDDirectoryPaths: []string{"../../../config/crd/bases"}, ErrorIfCRDPathMissing: true}
	cfg, err := env.Start()
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, env.Stop()) })

	scheme := k8sruntime.NewScheme()
	require.NoError(t, errors.Join(clientgoscheme.AddToScheme(scheme), aiv1alpha1.AddToScheme(scheme)))
	k8s, err := client.New(cfg, client.Options{Scheme: scheme})
	require.NoError(t, err)
	for _, ns := range []string{operatorNS, budgetNS} {
		require.NoError(t, k8s.Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	}
	// The admin client key, as an operator would create it.
	require.NoError(t, k8s.Create(t.Context(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: budgetNS, Name: "admin",
			Labels:      map[string]string{aiv1alpha1.LabelAPIKey: "true"},
			Annotations: map[string]string{aiv1alpha1.AnnotationRole: "admin"}},
		StringData: map[string]string{"key": adminToken},
	}))

	// The operator.
	ctx, cancel := context.WithCancel(t.Context())
	opts := controllers.ManagerOptions()
	opts.Scheme = scheme
	opts.Metrics = metricsserver.Options{BindAddress: "0"}
	opts.HealthProbeBindAddress = "0"
	mgr, err := ctrl.NewManager(cfg, opts)
	require.NoError(t, err)
	_, err = controllers.Setup(ctx, mgr, controllers.Options{Namespace: operatorNS})
	require.NoError(t, err)
	mgrDone := make(chan error, 1)
	go func() { mgrDone <- mgr.Start(ctx) }()

	// The data plane: a Secret watch feeding the holder, the budgets API over the cluster writer.
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	holder := runtime.NewHolder(runtime.Options{NewProvider: providers.New, HTTPClient: providers.NewHTTPClient(0)}, metrics.New(), log)
	// With the data plane's own clients (internal/kubeclient), as cmd/dataplane builds them.
	core, err := kubeclient.NewCore(cfg)
	require.NoError(t, err)
	secrets := kubeclient.NewSecrets(core, operatorNS)
	watchDone := make(chan error, 1)
	go func() {
		watchDone <- snapshotsecret.Watch(ctx, secrets, operatorNS, snapshotsecret.DefaultName,
			func(s *config.Snapshot) { _ = holder.Apply(s) }, holder.Fail)
	}()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-mgrDone)
		require.NoError(t, <-watchDone)
	})
	// Wait for the first snapshot holding the admin key (the data plane's readiness).
	require.Eventually(t, func() bool {
		rt := holder.Load()
		if rt == nil {
			return false
		}
		_, ok := rt.Authenticate(adminToken)
		return ok
	}, 30*time.Second, 20*time.Millisecond)

	gov := governor.New(store.NewMemory(store.MemoryOptions{}), governor.Options{Logger: log})
	budgets, err := budgetwriter.NewClusterFromConfig(cfg, budgetNS)
	require.NoError(t, err)
	bh := handlers.NewBudgetHandlers(budgets, gov, holder)
	bh.AwaitTimeout = enforceWithin
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	api := e.Group("/api/ai", middleware.NewRuntime(holder), middleware.NewAuth())
	api.PUT("/budgets/:scope/:subject", bh.PutBudget)
	api.DELETE("/budgets/:scope/:subject", bh.DeleteBudget)
	call := func(method, path, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequestWithContext(t.Context(), method, path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+adminToken)
		w := httptest.NewRecorder()
		e.ServeHTTP(w, req)
		return w
	}
	admit := func() error {
		req := &governor.Request{Identity: governor.Identity{User: "alice", Org: "acme"}, Endpoint: "chat",
			Provider: "p", Model: "m", WorstCaseCost: money.MustParseUSD("0.01")}
		dec, err := gov.Admit(t.Context(), holder.Load().Snapshot, req)
		if err != nil {
			return err
		}
		require.NoError(t, gov.Settle(t.Context(), req, dec.Ticket, governor.Charge{}))
		return nil
	}
	require.NoError(t, admit(), "no budget yet")

	start := time.Now()
	w := call("PUT", "/api/ai/budgets/user/alice", `{"daily": "0.001"}`)
	require.Equal(t, http.StatusCreated, w.Code, w.Body.String())
	var denied *governor.DeniedError
	require.ErrorAs(t, admit(), &denied, "the request right after the PUT is judged by the new budget")
	took := time.Since(start)
	require.Less(t, took, enforceWithin)
	t.Logf("PUT → enforced by the data plane in %s", took.Round(time.Millisecond))
	require.Equal(t, budgetNS+"/api-user-alice", denied.Name)

	// What `kubectl get aibudgets -n team-a` lists.
	var list aiv1alpha1.AIBudgetList
	require.NoError(t, k8s.List(t.Context(), &list, client.InNamespace(budgetNS)))
	require.Len(t, list.Items, 1)
	require.Equal(t, "api-user-alice", list.Items[0].Name)
	require.Equal(t, "api", list.Items[0].Labels[budgetwriter.LabelManagedBy])

	// GitOps owns the org budget: the API refuses to overwrite it.
	require.NoError(t, k8s.Create(t.Context(), &aiv1alpha1.AIBudget{
		ObjectMeta: metav1.ObjectMeta{Namespace: budgetNS, Name: "acme-monthly"},
		Spec:       aiv1alpha1.AIBudgetSpec{Scope: aiv1alpha1.BudgetScopeOrg, Subject: "acme", Monthly: "100"},
	}))
	w = call("PUT", "/api/ai/budgets/org/acme", `{"monthly": "1"}`)
	require.Equal(t, http.StatusConflict, w.Code, w.Body.String())
	require.Contains(t, w.Body.String(), fmt.Sprintf("budget %s/acme-monthly is managed by GitOps", budgetNS))

	start = time.Now()
	w = call("DELETE", "/api/ai/budgets/user/alice", "")
	require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
	require.NoError(t, admit(), "a deleted budget no longer applies")
	t.Logf("DELETE → lifted by the data plane in %s", time.Since(start).Round(time.Millisecond))
}
