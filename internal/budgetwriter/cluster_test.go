package budgetwriter_test

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	aiv1alpha1 "github.com/nself-org/ai-orchestration/api/v1alpha1"
	"github.com/nself-org/ai-orchestration/dataplane/handlers"
	"github.com/nself-org/ai-orchestration/internal/budgetwriter"
)

const assetsHelp = "KUBEBUILDER_ASSETS is not set: the cluster writer's tests need a real kube-apiserver and etcd. " +
	"Run `make test`, or `KUBEBUILDER_ASSETS=$(hack/envtest.sh) go test ./internal/budgetwriter/`."

// The API server starts on first use, so that the folder writer's tests run without one; it is
// shared by every cluster test and stopped by TestMain.
var (
	envMu   sync.Mutex
	env     *envtest.Environment
	k8s     client.Client
	restCfg *rest.Config
	envErr  error
	// nsCounter names each test's namespace.
	nsCounter atomic.Int64
)

func TestMain(m *testing.M) {
	code := m.Run()
	envMu.Lock()
	if env != nil {
		if err := env.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "failed to stop envtest: %v\n", err)
		}
	}
	envMu.Unlock()
	os.Exit(code)
}

// apiServer returns a client of the shared envtest API server, failing (never skipping) the test
// when it cannot run: a skipped suite looks green in CI.
func apiServer(t *testing.T) client.Client {
	t.Helper()
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Fatal(assetsHelp)
	}
	envMu.Lock()
	defer envMu.Unlock()
	if env == nil && envErr == nil {
		env = &envtest.Environment{CRDDirectoryPaths: []string{"../../config/crd/bases"}, ErrorIfCRDPathMissing: true}
		cfg, err := env.Start()
		if err != nil {
			envErr = fmt.Errorf("failed to start envtest: %w", err)
			env = nil
		} else {
			restCfg = cfg
			scheme := k8sruntime.NewScheme()
			if err := errors.Join(aiv1alpha1.AddToScheme(scheme), corev1.AddToScheme(scheme)); err != nil {
				envErr = err
			} else if k8s, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
				envErr = err
			}
		}
	}
	require.NoError(t, envErr)
	return k8s
}

// namespace creates a fresh namespace for one test.
func namespace(t *testing.T, c client.Client) string {
	t.Helper()
	ns := fmt.Sprintf("budgetwriter-%d", nsCounter.Add(1))
	require.NoError(t, c.Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	return ns
}

func getBudget(t *testing.T, c client.Client, ns, name string) *aiv1alpha1.AIBudget {
	t.Helper()
	var b aiv1alpha1.AIBudget
	require.NoError(t, c.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: name}, &b))
	return &b
}

// clusterWriter returns the cluster writer over restCfg, built as cmd/dataplane builds it.
func clusterWriter(t *testing.T, ns string) *budgetwriter.Cluster {
	t.Helper()
	w, err := budgetwriter.NewClusterFromConfig(restCfg, ns)
	require.NoError(t, err)
	return w
}

func TestClusterWriterCreatesAndUpdatesALabelledAIBudget(t *testing.T) {
	c := apiServer(t)
	ns := namespace(t, c)
	w := clusterWriter(t, ns)

	v, created, err := w.Put(t.Context(), handlers.BudgetSpec{Scope: "user", Subject: "user-123", Daily: "1.00", Monthly: "25"})
	require.NoError(t, err)
	require.True(t, created)
	require.Equal(t, ns+"/api-user-user-123", v.Name)
	b := getBudget(t, c, ns, "api-user-user-123")
	require.Equal(t, "api", b.Labels[budgetwriter.LabelManagedBy])
	require.Equal(t, aiv1alpha1.USD("1.00"), b.Spec.Daily)
	require.Equal(t, aiv1alpha1.BudgetActionBlock, b.Spec.Action, "the CRD's default applies")

	_, created, err = w.Put(t.Context(), handlers.BudgetSpec{Scope: "user", Subject: "user-123", Daily: "2"})
	require.NoError(t, err)
	require.False(t, created)
	b = getBudget(t, c, ns, "api-user-user-123")
	require.Equal(t, aiv1alpha1.USD("2"), b.Spec.Daily)
	require.Empty(t, b.Spec.Monthly)

	got, err := w.Get(t.Context(), "user", "user-123")
	require.NoError(t, err)
	require.Equal(t, handlers.ManagedByAPI, got.ManagedBy)
	require.Equal(t, "2", got.Spec.Daily)

	list, err := w.List(t.Context(), "user", "user-123")
	require.NoError(t, err)
	require.Contains(t, list, got)

	require.NoError(t, w.Delete(t.Context(), "user", "user-123"))
	_, err = w.Get(t.Context(), "user", "user-123")
	require.ErrorIs(t, err, handlers.ErrBudgetNotFound)
	require.ErrorIs(t, w.Delete(t.Context(), "user", "user-123"), handlers.ErrBudgetNotFound)
}

func TestClusterWriterNeverTouchesAGitOpsOwnedAIBudget(t *testing.T) {
	c := apiServer(t)
	ns := namespace(t, c)
	other := namespace(t, c)
	// Committed to Git and synced into another namespace: it still applies to org "gitops-org".
	owned := &aiv1alpha1.AIBudget{
		ObjectMeta: metav1.ObjectMeta{Namespace: other, Name: "gitops-org"},
		Spec:       aiv1alpha1.AIBudgetSpec{Scope: aiv1alpha1.BudgetScopeOrg, Subject: "gitops-org", Monthly: "100"},
	}
	require.NoError(t, c.Create(t.Context(), owned))
	w := clusterWriter(t, ns)

	_, _, err := w.Put(t.Context(), handlers.BudgetSpec{Scope: "org", Subject: "gitops-org", Monthly: "1"})
	require.ErrorIs(t, err, handlers.ErrBudgetConflict)
	require.Contains(t, err.Error(), other+"/gitops-org is managed by GitOps")
	require.ErrorIs(t, w.Delete(t.Context(), "org", "gitops-org"), handlers.ErrBudgetConflict)

	after := getBudget(t, c, other, "gitops-org")
	require.Equal(t, aiv1alpha1.USD("100"), after.Spec.Monthly)
	var list aiv1alpha1.AIBudgetList
	require.NoError(t, c.List(t.Context(), &list, client.InNamespace(ns)))
	require.Empty(t, list.Items, "nothing was written")

	// An object that merely holds the API's name (unlabelled, another subject) is not ours either.
	squatter := &aiv1alpha1.AIBudget{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: budgetwriter.ObjectName("org", "acme")},
		Spec:       aiv1alpha1.AIBudgetSpec{Scope: aiv1alpha1.BudgetScopeOrg, Subject: "someone-else", Daily: "1"},
	}
	require.NoError(t, c.Create(t.Context(), squatter))
	_, _, err = w.Put(t.Context(), handlers.BudgetSpec{Scope: "org", Subject: "acme", Daily: "5"})
	require.ErrorIs(t, err, handlers.ErrBudgetConflict)
}

// TestClusterWritersRacingOnOneBudgetAllSucceed has several replicas set the same budget at once:
// the creates that lose see AlreadyExists and the updates that lose see Conflict, and each goes
// round again on the current object instead of failing the caller.
func TestClusterWritersRacingOnOneBudgetAllSucceed(t *testing.T) {
	c := apiServer(t)
	ns := namespace(t, c)
	// Each round of conflicts has one winner, so a writer loses at most writers-1 times: 4 stays
	// within retry.DefaultRetry's 5 attempts, whatever the interleaving.
	const writers = 4
	errs := make(chan error, writers)
	var wg sync.WaitGroup
	for i := range writers {
		w := clusterWriter(t, ns) // one client per replica
		wg.Go(func() {
			_, _, err := w.Put(t.Context(), handlers.BudgetSpec{Scope: "org", Subject: "race", Daily: strconv.Itoa(i + 1)})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	b := getBudget(t, c, ns, "api-org-race")
	daily, err := strconv.Atoi(string(b.Spec.Daily))
	require.NoError(t, err)
	require.True(t, daily >= 1 && daily <= writers, "the budget holds one writer's value, got %q", b.Spec.Daily)
	var list aiv1alpha1.AIBudgetList
	require.NoError(t, c.List(t.Context(), &list, client.InNamespace(ns)))
	require.Len(t, list.Items, 1)
}

func TestClusterWriterPassesTheAPIServersRefusalThrough(t *testing.T) {
	c := apiServer(t)
	ns := namespace(t, c)
	w := clusterWriter(t, ns)
	_, _, err := w.Put(t.Context(), handlers.BudgetSpec{Scope: "org", Subject: "acme", Daily: "1"})
	require.NoError(t, err)

	cases := map[string]struct {
		spec handlers.BudgetSpec
		want string // as kubectl apply prints it (see api/v1alpha1/testdata/aibudget/invalid)
	}{
		"CEL: no limit on create": {handlers.BudgetSpec{Scope: "user", Subject: "u"},
			`set at least one of spec.daily, spec.weekly or spec.monthly`},
		"CEL: downgrade without a model": {handlers.BudgetSpec{Scope: "user", Subject: "u", Daily: "1", Action: "downgrade"},
			`spec.downgradeTo (a model name) is required when spec.action is downgrade`},
		"OpenAPI: an unknown action": {handlers.BudgetSpec{Scope: "user", Subject: "u", Daily: "1", Action: "throttle"},
			`spec.action: Unsupported value: "throttle"`},
		"OpenAPI: a threshold over 100": {handlers.BudgetSpec{Scope: "user", Subject: "u", Daily: "1", AlertThresholds: []int32{150}},
			`spec.alertThresholds[0]: Invalid value: 150: spec.alertThresholds[0] in body should be less than or equal to 100`},
		"CEL on update: no limit": {handlers.BudgetSpec{Scope: "org", Subject: "acme"},
			`set at least one of spec.daily, spec.weekly or spec.monthly`},
		"compiler: a time zone that does not exist": {handlers.BudgetSpec{Scope: "org", Subject: "acme", Daily: "1", TimeZone: "Mars/Olympus"},
			`spec.timeZone "Mars/Olympus" is not a known IANA time zone`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, _, err := w.Put(t.Context(), tc.spec)
			var inv *handlers.BudgetInvalidError
			require.True(t, errors.As(err, &inv), "got %v", err)
			require.Contains(t, inv.Message, tc.want)
		})
	}
	b := getBudget(t, c, ns, "api-org-acme")
	require.Equal(t, aiv1alpha1.USD("1"), b.Spec.Daily, "a refused update leaves the budget as it was")
	require.Empty(t, b.Spec.TimeZone)
	var list aiv1alpha1.AIBudgetList
	require.NoError(t, c.List(t.Context(), &list, client.InNamespace(ns)))
	require.Len(t, list.Items, 1, "no refused budget was created")
}
