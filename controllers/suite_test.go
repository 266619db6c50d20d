package controllers_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	aiv1alpha1 "github.com/nself-org/ai-orchestration/api/v1alpha1"
	"github.com/nself-org/ai-orchestration/controllers"
	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/internal/compiler"
	"github.com/nself-org/ai-orchestration/internal/kubeclient"
	"github.com/nself-org/ai-orchestration/internal/snapshotpublish"
	"github.com/nself-org/ai-orchestration/internal/snapshotsecret"
)

var update = flag.Bool("update", false, "rewrite testdata/snapshot.golden.json from the current output")

const (
	// operatorNS is where the snapshot Secret lives, as in config/default.
	operatorNS = "ai-orchestration-system"
	// managerUser is the identity the manager runs as, with exactly the RBAC of config/rbac.
	managerUser = "ai-orchestration-manager"
	// waitFor bounds every wait for the controllers; they react in milliseconds.
	waitFor = 20 * time.Second
	tick    = 20 * time.Millisecond
)

var (
	testEnv *envtest.Environment
	// adminCfg and k8sClient act as the cluster admin (kubectl in the tests).
	adminCfg  *rest.Config
	k8sClient client.Client
	// ctrls are the reconcilers the running manager uses, for driving a pass by hand.
	ctrls *controllers.Controllers
)

func TestMain(m *testing.M) { os.Exit(runSuite(m)) }

// runSuite starts a real API server with the CRDs of config/crd/bases, runs the manager with all
// reconcilers under the RBAC of config/rbac, runs the tests and checks that nothing leaked.
func runSuite(m *testing.M) int {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		fmt.Fprintln(os.Stderr, "controllers: KUBEBUILDER_ASSETS is not set, so there is no API server to test against.\n"+
			"Run `make test` (it builds kube-apiserver and etcd with hack/envtest.sh), or\n"+
			"  KUBEBUILDER_ASSETS=$(hack/envtest.sh) go test ./controllers/")
		return 1
	}
	leaks := goleak.IgnoreCurrent()
	if os.Getenv("CONTROLLERS_TEST_LOG") != "" {
		ctrl.SetLogger(zap.New(zap.UseDevMode(true), zap.WriteTo(os.Stderr)))
	} else {
		ctrl.SetLogger(logr.Discard())
	}

	testEnv = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	var err error
	adminCfg, err = testEnv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "controllers: failed to start envtest:", err)
		return 1
	}
	code, err := runWithManager(m)
	if stopErr := testEnv.Stop(); stopErr != nil {
		err = errors.Join(err, fmt.Errorf("failed to stop envtest: %w", stopErr))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "controllers:", err)
		return 1
	}
	if code == 0 {
		if err := goleak.Find(leaks,
			// klog's flush daemon and the apimachinery cache reaper start once per process.
			goleak.IgnoreTopFunction("k8s.io/klog/v2.(*flushDaemon).run.func1"),
			goleak.IgnoreAnyFunction("k8s.io/apimachinery/pkg/util/wait.BackoffUntilWithContext.func1"),
			// client-go's event broadcaster does not stop the filter of its log watcher when shut down.
			goleak.IgnoreTopFunction("k8s.io/apimachinery/pkg/watch.(*filteredWatch).loop"),
		); err != nil {
			fmt.Fprintln(os.Stderr, "controllers: goroutines leaked:", err)
			return 1
		}
	}
	return code
}

func runWithManager(m *testing.M) (int, error) {
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(aiv1alpha1.AddToScheme(scheme))

	var err error
	k8sClient, err = client.New(adminCfg, client.Options{Scheme: scheme})
	if err != nil {
		return 0, fmt.Errorf("failed to create the test client: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: operatorNS}}); err != nil {
		return 0, fmt.Errorf("failed to create the operator namespace: %w", err)
	}
	mgrCfg, err := managerConfig(ctx)
	if err != nil {
		return 0, err
	}

	opts := controllers.ManagerOptions()
	opts.Scheme = scheme
	opts.Metrics = metricsserver.Options{BindAddress: "0"}
	mgr, err := ctrl.NewManager(mgrCfg, opts)
	if err != nil {
		return 0, fmt.Errorf("failed to create the manager: %w", err)
	}
	spend, closeSpend, err := startSpendReader(ctx, mgr)
	if err != nil {
		return 0, err
	}
	defer func() { _ = closeSpend() }()
	ctrls, err = controllers.Setup(ctx, mgr, controllers.Options{Namespace: operatorNS, Spend: spend, SpendInterval: spendInterval})
	if err != nil {
		return 0, err
	}
	var wg sync.WaitGroup
	var mgrErr error
	wg.Go(func() { mgrErr = mgr.Start(ctx) })

	code := m.Run()
	cancel()
	wg.Wait()
	if mgrErr != nil {
		return code, fmt.Errorf("the manager failed: %w", mgrErr)
	}
	return code, nil
}

// managerConfig returns a config for a user that holds exactly the generated RBAC of
// config/rbac/role.yaml (the ClusterRole and the Role in the operator namespace), so that a
// missing +kubebuilder:rbac marker fails the suite as it would fail in a cluster.
func managerConfig(ctx context.Context) (*rest.Config, error) {
	user, err := testEnv.AddUser(envtest.User{Name: managerUser}, adminCfg)
	if err != nil {
		return nil, fmt.Errorf("failed to add the manager user: %w", err)
	}
	docs, err := readYAMLDocs(filepath.Join("..", "config", "rbac", "role.yaml"))
	if err != nil {
		return nil, err
	}
	subject := []rbacv1.Subject{{Kind: rbacv1.UserKind, Name: managerUser, APIGroup: rbacv1.GroupName}}
	for _, doc := range docs {
		var tm metav1.TypeMeta
		if err := json.Unmarshal(doc, &tm); err != nil {
			return nil, fmt.Errorf("failed to read config/rbac/role.yaml: %w", err)
		}
		var objs []client.Object
		switch tm.Kind {
		case "ClusterRole":
			var r rbacv1.ClusterRole
			if err := json.Unmarshal(doc, &r); err != nil {
				return nil, err
			}
			objs = append(objs, &r, &rbacv1.ClusterRoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: r.Name},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: r.Name},
				Subjects:   subject,
			})
		case "Role":
			var r rbacv1.Role
			if err := json.Unmarshal(doc, &r); err != nil {
				return nil, err
			}
			r.Namespace = operatorNS
			objs = append(objs, &r, &rbacv1.RoleBinding{
				ObjectMeta: metav1.ObjectMeta{Namespace: operatorNS, Name: r.Name},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: r.Name},
				Subjects:   subject,
			})
		}
		for _, o := range objs {
			if err := k8sClient.Create(ctx, o); err != nil {
				return nil, fmt.Errorf("failed to create %T %s: %w", o, o.GetName(), err)
			}
		}
	}
	return user.Config(), nil
}

// readYAMLDocs splits a multi-document YAML file into JSON documents.
func readYAMLDocs(path string) ([][]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("failed to read %s: %w", path, err)
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out [][]byte
	for {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("failed to decode %s: %w", path, err)
		}
		if len(raw) > 0 && string(raw) != "null" {
			out = append(out, raw)
		}
	}
}

// --- helpers ---------------------------------------------------------------------------------

// sampleObjects loads config/samples into namespace ns. Client API-key Secrets are included only
// when withAPIKeys is set: two namespaces holding the same token would be a (reported) conflict.
func sampleObjects(t *testing.T, ns string, withAPIKeys bool) []client.Object {
	t.Helper()
	in, err := compiler.LoadDir(filepath.Join("..", "config", "samples"))
	require.NoError(t, err)
	var objs []client.Object
	for i := range in.Secrets {
		if in.Secrets[i].Labels[aiv1alpha1.LabelAPIKey] == "true" && !withAPIKeys {
			continue
		}
		objs = append(objs, &in.Secrets[i])
	}
	for i := range in.Providers {
		objs = append(objs, &in.Providers[i])
	}
	for i := range in.Budgets {
		objs = append(objs, &in.Budgets[i])
	}
	for i := range in.Routes {
		objs = append(objs, &in.Routes[i])
	}
	require.NotEmpty(t, objs)
	for _, o := range objs {
		o.SetNamespace(ns)
		o.SetResourceVersion("")
	}
	return objs
}

// createAll creates objs (and the namespace) and, at cleanup, deletes them and waits until the
// snapshot no longer mentions the namespace, so that every test starts from the same snapshot.
func createAll(t *testing.T, ns string, objs []client.Object) {
	t.Helper()
	ctx := t.Context()
	if ns != "default" {
		require.NoError(t, client.IgnoreAlreadyExists(k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})))
	}
	for _, o := range objs {
		require.NoError(t, k8sClient.Create(ctx, o), "create %T %s", o, o.GetName())
	}
	t.Cleanup(func() {
		ctx := context.Background()
		for _, o := range objs {
			require.NoError(t, client.IgnoreNotFound(k8sClient.Delete(ctx, o)))
		}
		require.Eventually(t, func() bool {
			snap, err := snapshotpublish.Read(ctx, k8sClient, operatorNS, snapshotsecret.DefaultName)
			return err == nil && !snapshotMentions(snap, ns)
		}, waitFor, tick, "the snapshot still holds objects of namespace %s", ns)
	})
}

func snapshotMentions(s *config.Snapshot, ns string) bool {
	prefix := ns + "/"
	has := func(name string) bool { return len(name) > len(prefix) && name[:len(prefix)] == prefix }
	return slices.ContainsFunc(s.Providers, func(p config.Provider) bool { return has(p.Name) }) ||
		slices.ContainsFunc(s.Budgets, func(b config.Budget) bool { return has(b.Name) }) ||
		slices.ContainsFunc(s.Routes, func(r config.Route) bool { return has(r.Name) }) ||
		slices.ContainsFunc(s.APIKeys, func(k config.APIKey) bool { return has(k.Name) })
}

// conditionsOf returns an object's conditions and whether its status is current.
func conditionsOf(o client.Object) ([]metav1.Condition, bool) {
	switch v := o.(type) {
	case *aiv1alpha1.AIProvider:
		return v.Status.Conditions, v.Status.ObservedGeneration == v.Generation
	case *aiv1alpha1.AIBudget:
		return v.Status.Conditions, v.Status.ObservedGeneration == v.Generation
	case *aiv1alpha1.AIRoutePolicy:
		return v.Status.Conditions, v.Status.ObservedGeneration == v.Generation
	}
	return nil, false
}

// waitForReady waits until obj has Ready with the given status and reason for its current
// generation; obj is left holding the fresh object.
func waitForReady(t *testing.T, obj client.Object, status metav1.ConditionStatus, reason string) {
	t.Helper()
	var last *metav1.Condition
	require.Eventually(t, func() bool {
		if err := k8sClient.Get(t.Context(), client.ObjectKeyFromObject(obj), obj); err != nil {
			return false
		}
		conds, current := conditionsOf(obj)
		last = meta.FindStatusCondition(conds, aiv1alpha1.ConditionReady)
		return current && last != nil && last.Status == status && last.Reason == reason
	}, waitFor, tick, "%T %s never got Ready=%s/%s (last: %v)", obj, obj.GetName(), status, reason, last)
}

func isCR(o client.Object) bool {
	switch o.(type) {
	case *aiv1alpha1.AIProvider, *aiv1alpha1.AIBudget, *aiv1alpha1.AIRoutePolicy:
		return true
	}
	return false
}

func readSnapshot(t *testing.T) *config.Snapshot {
	t.Helper()
	snap, err := snapshotpublish.Read(t.Context(), k8sClient, operatorNS, snapshotsecret.DefaultName)
	require.NoError(t, err)
	return snap
}

func findProvider(s *config.Snapshot, name string) *config.Provider {
	for i := range s.Providers {
		if s.Providers[i].Name == name {
			return &s.Providers[i]
		}
	}
	return nil
}

func findRoute(s *config.Snapshot, name string) *config.Route {
	for i := range s.Routes {
		if s.Routes[i].Name == name {
			return &s.Routes[i]
		}
	}
	return nil
}

// --- tests -----------------------------------------------------------------------------------

func TestSamplesBecomeReadyAndPublishTheGoldenSnapshot(t *testing.T) {
	objs := sampleObjects(t, "default", true)
	createAll(t, "default", objs)
	for _, o := range objs {
		if isCR(o) {
			waitForReady(t, o, metav1.ConditionTrue, aiv1alpha1.ReasonReady)
		}
	}
	// Every object is Ready; the snapshot holding them all is the last one written.
	var snap *config.Snapshot
	require.Eventually(t, func() bool {
		s, err := snapshotpublish.Read(t.Context(), k8sClient, operatorNS, snapshotsecret.DefaultName)
		if err != nil {
			return false
		}
		snap = s
		return len(s.Providers) == 6 && len(s.Routes) == 2 && len(s.Budgets) == 2 && len(s.APIKeys) == 2
	}, waitFor, tick)

	got, err := json.MarshalIndent(snap, "", "  ")
	require.NoError(t, err)
	got = append(got, '\n')
	golden := filepath.Join("testdata", "snapshot.golden.json")
	if *update {
		require.NoError(t, os.WriteFile(golden, got, 0o644))
	}
	want, err := os.ReadFile(golden)
	require.NoError(t, err, "run `go test ./controllers/ -run TestSamples -update` to create the golden file")
	require.JSONEq(t, string(want), string(got))
	require.Equal(t, string(want), string(got), "the snapshot is byte-identical to the golden file")

	t.Run("reconciling everything again changes nothing", func(t *testing.T) {
		head := &corev1.Secret{}
		require.NoError(t, k8sClient.Get(t.Context(), client.ObjectKey{Namespace: operatorNS, Name: snapshotsecret.DefaultName}, head))
		versions := map[string]string{}
		for _, o := range objs {
			require.NoError(t, k8sClient.Get(t.Context(), client.ObjectKeyFromObject(o), o))
			versions[fmt.Sprintf("%T/%s", o, o.GetName())] = o.GetResourceVersion()
		}

		_, err := ctrls.Publisher.Reconcile(t.Context(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(head)})
		require.NoError(t, err)
		for _, o := range objs {
			req := ctrl.Request{NamespacedName: client.ObjectKeyFromObject(o)}
			switch o.(type) {
			case *aiv1alpha1.AIProvider:
				_, err = ctrls.Providers.Reconcile(t.Context(), req)
			case *aiv1alpha1.AIBudget:
				_, err = ctrls.Budgets.Reconcile(t.Context(), req)
			case *aiv1alpha1.AIRoutePolicy:
				_, err = ctrls.Routes.Reconcile(t.Context(), req)
			}
			require.NoError(t, err)
		}

		after := &corev1.Secret{}
		require.NoError(t, k8sClient.Get(t.Context(), client.ObjectKeyFromObject(head), after))
		require.Equal(t, head.ResourceVersion, after.ResourceVersion, "the snapshot Secret was rewritten")
		for _, o := range objs {
			require.NoError(t, k8sClient.Get(t.Context(), client.ObjectKeyFromObject(o), o))
			require.Equal(t, versions[fmt.Sprintf("%T/%s", o, o.GetName())], o.GetResourceVersion(),
				"%T %s was written by a pass that had nothing to do", o, o.GetName())
		}
	})
}

func TestDeletingAProviderDropsItsTargetsAndMarksThePolicyNotReady(t *testing.T) {
	const ns = "delete-provider"
	objs := sampleObjects(t, ns, false)
	createAll(t, ns, objs)
	route := &aiv1alpha1.AIRoutePolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "default-chat"}}
	waitForReady(t, route, metav1.ConditionTrue, aiv1alpha1.ReasonReady)
	require.EqualValues(t, 2, route.Status.Targets)

	openai := &aiv1alpha1.AIProvider{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "openai"}}
	require.NoError(t, k8sClient.Delete(t.Context(), openai))

	waitForReady(t, route, metav1.ConditionFalse, aiv1alpha1.ReasonProviderNotFound)
	require.EqualValues(t, 1, route.Status.Targets)
	require.Contains(t, meta.FindStatusCondition(route.Status.Conditions, aiv1alpha1.ConditionReady).Message, `"openai"`)

	snap := readSnapshot(t)
	require.Nil(t, findProvider(snap, ns+"/openai"), "the deleted provider is gone from the snapshot")
	r := findRoute(snap, ns+"/default-chat")
	require.NotNil(t, r, "the policy keeps serving through its remaining target")
	require.Equal(t, []config.Target{{Provider: ns + "/anthropic", Model: "claude-haiku-4-5", Weight: 1}}, r.Targets)

	// The transition is announced once, as an event on the policy.
	require.Eventually(t, func() bool {
		var evs eventsv1.EventList
		if err := k8sClient.List(t.Context(), &evs, client.InNamespace(ns)); err != nil {
			return false
		}
		return slices.ContainsFunc(evs.Items, func(e eventsv1.Event) bool {
			return e.Regarding.Kind == "AIRoutePolicy" && e.Regarding.Name == "default-chat" &&
				e.Reason == aiv1alpha1.ReasonProviderNotFound && e.Type == corev1.EventTypeWarning
		})
	}, waitFor, tick, "no ProviderNotFound event on the policy")
}

func TestRotatingAReferencedSecretChangesTheSnapshot(t *testing.T) {
	const ns = "rotate-key"
	objs := sampleObjects(t, ns, false)
	createAll(t, ns, objs)
	provider := &aiv1alpha1.AIProvider{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "openai"}}
	waitForReady(t, provider, metav1.ConditionTrue, aiv1alpha1.ReasonReady)
	generation := provider.Generation
	require.Eventually(t, func() bool {
		p := findProvider(readSnapshot(t), ns+"/openai")
		return p != nil && p.APIKey.Reveal() == "sk-replace-me"
	}, waitFor, tick)

	sec := &corev1.Secret{}
	require.NoError(t, k8sClient.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "openai-api-key"}, sec))
	sec.Data["apiKey"] = []byte("sk-rotated\n")
	require.NoError(t, k8sClient.Update(t.Context(), sec))

	require.Eventually(t, func() bool {
		p := findProvider(readSnapshot(t), ns+"/openai")
		return p != nil && p.APIKey.Reveal() == "sk-rotated"
	}, waitFor, tick, "the rotated key never reached the snapshot")
	require.NoError(t, k8sClient.Get(t.Context(), client.ObjectKeyFromObject(provider), provider))
	require.Equal(t, generation, provider.Generation, "nobody touched the AIProvider")

	// Removing the key leaves the provider out, with a reason, and its policies lose it.
	delete(sec.Data, "apiKey")
	require.NoError(t, k8sClient.Update(t.Context(), sec))
	waitForReady(t, provider, metav1.ConditionFalse, aiv1alpha1.ReasonSecretKeyMissing)
	require.Nil(t, findProvider(readSnapshot(t), ns+"/openai"))
	route := &aiv1alpha1.AIRoutePolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "default-chat"}}
	waitForReady(t, route, metav1.ConditionFalse, aiv1alpha1.ReasonProviderNotReady)
}

// TestSnapshotFollowsACRChangeWithinTwoSeconds measures, through the data plane's own Watch,
// the time from a spec update to the snapshot that carries it.
func TestSnapshotFollowsACRChangeWithinTwoSeconds(t *testing.T) {
	const ns = "latency"
	objs := sampleObjects(t, ns, false)
	createAll(t, ns, objs)
	route := &aiv1alpha1.AIRoutePolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "default-chat"}}
	waitForReady(t, route, metav1.ConditionTrue, aiv1alpha1.ReasonReady)

	snapshots := make(chan *config.Snapshot, 64)
	stop := startWatch(t, dataplaneSecrets(t, adminCfg, operatorNS), snapshots)
	defer stop()

	const rounds = 5
	var worst time.Duration
	for i := range rounds {
		attempts := int32(5 + i) // the sample has 2; the API allows up to 10
		require.NoError(t, k8sClient.Get(t.Context(), client.ObjectKeyFromObject(route), route))
		base := route.DeepCopy()
		route.Spec.Retries = &aiv1alpha1.RouteRetries{Attempts: attempts, Backoff: "200ms"}
		start := time.Now()
		// A merge patch: the controllers write the status concurrently.
		require.NoError(t, k8sClient.Patch(t.Context(), route, client.MergeFrom(base)))
		for done := false; !done; {
			select {
			case s := <-snapshots:
				r := findRoute(s, ns+"/default-chat")
				done = r != nil && r.Retries.Attempts == attempts
			case <-time.After(waitFor):
				require.FailNow(t, "the change never reached the snapshot")
			}
		}
		took := time.Since(start)
		worst = max(worst, took)
		t.Logf("round %d: CR update → snapshot delivered to a watcher in %v", i+1, took)
		require.Less(t, took, 2*time.Second)
	}
	t.Logf("worst of %d rounds: %v", rounds, worst)
}

// dataplaneSecrets returns the Secrets of namespace ns read with the data plane's own client
// (internal/kubeclient, as cmd/dataplane builds it) acting with cfg's credentials.
func dataplaneSecrets(t *testing.T, cfg *rest.Config, ns string) *kubeclient.Secrets {
	t.Helper()
	core, err := kubeclient.NewCore(cfg)
	require.NoError(t, err)
	return kubeclient.NewSecrets(core, ns)
}

// startWatch runs snapshotsecret.Watch (as the data plane does) until the returned stop is called.
func startWatch(t *testing.T, secrets snapshotsecret.Secrets, out chan<- *config.Snapshot) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() {
		err := snapshotsecret.Watch(ctx, secrets, operatorNS, snapshotsecret.DefaultName,
			func(s *config.Snapshot) { out <- s }, func(error) {})
		if err != nil {
			t.Errorf("Watch failed: %v", err)
		}
	})
	return func() { cancel(); wg.Wait() }
}

// TestTheDataPlaneRoleReadsOnlyTheSnapshot binds config/dataplane/role.yaml to a user and shows
// that Watch works with it, while every other Secret stays out of reach.
func TestTheDataPlaneRoleReadsOnlyTheSnapshot(t *testing.T) {
	const user = "ai-orchestration-dataplane"
	docs, err := readYAMLDocs(filepath.Join("..", "config", "dataplane", "role.yaml"))
	require.NoError(t, err)
	require.Len(t, docs, 1)
	var role rbacv1.Role
	require.NoError(t, json.Unmarshal(docs[0], &role))
	require.Equal(t, snapshotsecret.PartNames(snapshotsecret.DefaultName), role.Rules[0].ResourceNames,
		"the Role lists exactly the names the snapshot may use")
	role.Namespace = operatorNS
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: operatorNS, Name: role.Name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, Name: user, APIGroup: rbacv1.GroupName}},
	}
	require.NoError(t, k8sClient.Create(t.Context(), &role))
	require.NoError(t, k8sClient.Create(t.Context(), binding))
	t.Cleanup(func() {
		_ = k8sClient.Delete(context.Background(), binding)
		_ = k8sClient.Delete(context.Background(), &role)
	})
	other := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: operatorNS, Name: "not-the-snapshot"},
		Data: map[string][]byte{"x": []byte("y")}}
	require.NoError(t, k8sClient.Create(t.Context(), other))
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), other) })

	au, err := testEnv.AddUser(envtest.User{Name: user}, adminCfg)
	require.NoError(t, err)
	secrets := dataplaneSecrets(t, au.Config(), operatorNS)

	snapshots := make(chan *config.Snapshot, 8)
	stop := startWatch(t, secrets, snapshots)
	defer stop()
	select {
	case s := <-snapshots:
		require.Equal(t, readSnapshot(t).Hash, s.Hash)
	case <-time.After(waitFor):
		require.FailNow(t, "the data plane's Role could not watch the snapshot")
	}

	_, err = secrets.Get(t.Context(), other.Name, metav1.GetOptions{})
	require.True(t, apierrors.IsForbidden(err), "get of another Secret: %v", err)
	_, err = secrets.List(t.Context(), metav1.ListOptions{})
	require.True(t, apierrors.IsForbidden(err), "list of every Secret: %v", err)
	_, err = dataplaneSecrets(t, au.Config(), "default").List(t.Context(), metav1.ListOptions{})
	require.True(t, apierrors.IsForbidden(err), "list of another namespace: %v", err)
}

// TestALargeSnapshotIsShardedAcrossSecretsTheAPIServerAccepts writes a snapshot of several MiB
// (incompressible keys) to a real API server, whose etcd refuses objects over ~1.5 MiB, and reads
// it back whole, both with Read and with the data plane's Watch.
func TestALargeSnapshotIsShardedAcrossSecretsTheAPIServerAccepts(t *testing.T) {
	const name = "large-snapshot"
	snap := &config.Snapshot{Budgets: []config.Budget{}, Routes: []config.Route{}, APIKeys: []config.APIKey{}}
	rng := rand.New(rand.NewPCG(1, 2)) // seeded: the same snapshot on every run
	for i := range 40 {
		raw := make([]byte, 32<<10)
		for j := range raw {
			raw[j] = byte(rng.Uint32())
		}
		key := hex.EncodeToString(raw) // random hex: gzip can only halve it
		snap.Providers = append(snap.Providers, config.Provider{
			Name: fmt.Sprintf("big/p%02d", i), Type: config.ProviderOpenAI, BaseURL: "https://api.openai.com/v1",
			APIKey: config.Secret(key), Models: []config.Model{{Name: "gpt-4o-mini"}},
		})
	}
	require.NoError(t, snap.Seal())
	encoded, err := config.Encode(snap)
	require.NoError(t, err)
	t.Logf("encoded snapshot: %d bytes", len(encoded))
	require.Greater(t, len(encoded), snapshotsecret.MaxPartBytes, "the test snapshot must need parts")

	changed, err := snapshotpublish.Write(t.Context(), k8sClient, operatorNS, name, snap)
	require.NoError(t, err)
	require.True(t, changed)
	t.Cleanup(func() {
		for _, n := range snapshotsecret.PartNames(name) {
			_ = k8sClient.Delete(context.Background(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: operatorNS, Name: n}})
		}
	})
	got, err := snapshotpublish.Read(t.Context(), k8sClient, operatorNS, name)
	require.NoError(t, err)
	require.Equal(t, snap.Hash, got.Hash)
	require.Equal(t, snap.Providers, got.Providers)

	secrets := dataplaneSecrets(t, adminCfg, operatorNS)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	delivered := make(chan *config.Snapshot, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() {
		_ = snapshotsecret.Watch(ctx, secrets, operatorNS, name, func(s *config.Snapshot) {
			select {
			case delivered <- s:
			default:
			}
		}, func(error) {})
	})
	select {
	case s := <-delivered:
		require.Equal(t, snap.Hash, s.Hash)
	case <-time.After(waitFor):
		require.FailNow(t, "Watch never delivered the sharded snapshot")
	}
}
