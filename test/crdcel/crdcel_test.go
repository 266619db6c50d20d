// Package crdcel checks the CRDs' OpenAPI and CEL validation against a real kube-apiserver
// (envtest): every manifest under api/v1alpha1/testdata/<kind>/valid and every sample in
// config/samples must be accepted, and every manifest under .../invalid must be refused with the
// message its "# expect:" lines name.
package crdcel

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"
)

const (
	crdDir      = "../../config/crd/bases"
	casesDir    = "../../api/v1alpha1/testdata"
	samplesDir  = "../../config/samples"
	expectMark  = "# expect:"
	assetsEnv   = "KUBEBUILDER_ASSETS"
	makeTestMsg = "KUBEBUILDER_ASSETS is not set: these tests need a real kube-apiserver and etcd. " +
		"Run `make test` (it builds them with hack/envtest.sh), or " +
		"`KUBEBUILDER_ASSETS=$(hack/envtest.sh) go test ./test/crdcel/`."
)

var (
	// k8s is the client of the one API server every test of this package shares.
	k8s client.Client
	// restCfg reaches the same API server for raw requests (tables, discovery).
	restCfg *rest.Config
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	// Refusing to run is a failure, not a skip: a skipped validation suite looks green in CI.
	if os.Getenv(assetsEnv) == "" {
		fmt.Fprintln(os.Stderr, "FAIL: "+makeTestMsg)
		return 1
	}
	env := &envtest.Environment{CRDDirectoryPaths: []string{crdDir}, ErrorIfCRDPathMissing: true}
	cfg, err := env.Start()
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: failed to start envtest API server: %v\n", err)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "failed to stop envtest: %v\n", err)
		}
	}()
	restCfg = cfg
	k8s, err = client.New(cfg, client.Options{Scheme: scheme.Scheme})
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: failed to create client: %v\n", err)
		return 1
	}
	return m.Run()
}

// testCase is one manifest file of the table.
type testCase struct {
	path    string
	objects []*unstructured.Unstructured
	expects []string
}

// loadCase reads a manifest file: its objects, and the substrings its "# expect:" lines require.
func loadCase(t *testing.T, path string) testCase {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	tc := testCase{path: path}
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), expectMark); ok {
			tc.expects = append(tc.expects, strings.TrimSpace(rest))
		}
	}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err, path)
		u := &unstructured.Unstructured{}
		require.NoError(t, yaml.Unmarshal(doc, &u.Object), path)
		if len(u.Object) == 0 || u.GetKind() == "Kustomization" {
			continue
		}
		tc.objects = append(tc.objects, u)
	}
	require.NotEmpty(t, tc.objects, "%s holds no object", path)
	return tc
}

// newNamespace creates a namespace of its own for one test case, so that cases never collide.
func newNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "crdcel-"}}
	require.NoError(t, k8s.Create(t.Context(), ns))
	return ns.Name
}

// create sends obj to the API server with strict field validation, so that an unknown field (a
// namespace in a Secret reference, a misspelt key) is an error as it is for `kubectl apply`.
func create(t *testing.T, ns string, obj *unstructured.Unstructured) error {
	t.Helper()
	obj = obj.DeepCopy()
	obj.SetNamespace(ns)
	return k8s.Create(t.Context(), obj, client.FieldValidation(metav1.FieldValidationStrict))
}

func casePaths(t *testing.T, kind, validity string) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(casesDir, kind, validity, "*.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, paths, "no %s cases for %s", validity, kind)
	return paths
}

var kinds = []string{"aiprovider", "aibudget", "airoutepolicy"}

func TestValidManifestsAreAccepted(t *testing.T) {
	for _, kind := range kinds {
		for _, path := range casePaths(t, kind, "valid") {
			t.Run(kind+"/"+filepath.Base(path), func(t *testing.T) {
				tc := loadCase(t, path)
				require.Empty(t, tc.expects, "a valid case must not carry %q lines", expectMark)
				ns := newNamespace(t)
				for _, obj := range tc.objects {
					require.NoError(t, create(t, ns, obj))
				}
			})
		}
	}
}

func TestInvalidManifestsAreRefusedWithTheirMessage(t *testing.T) {
	total := 0
	for _, kind := range kinds {
		for _, path := range casePaths(t, kind, "invalid") {
			total++
			t.Run(kind+"/"+filepath.Base(path), func(t *testing.T) {
				tc := loadCase(t, path)
				require.NotEmpty(t, tc.expects, "an invalid case needs at least one %q line", expectMark)
				require.Len(t, tc.objects, 1, "an invalid case holds exactly one object")
				err := create(t, newNamespace(t), tc.objects[0])
				require.Error(t, err, "the API server accepted an invalid manifest")
				for _, want := range tc.expects {
					require.Contains(t, err.Error(), want)
				}
			})
		}
	}
	require.GreaterOrEqual(t, total, 12, "the table must cover every rule")
}

// TestSamplesAreAccepted applies every sample manifest (as `kubectl apply -k config/samples`
// would) into one namespace.
func TestSamplesAreAccepted(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join(samplesDir, "*.yaml"))
	require.NoError(t, err)
	ns := newNamespace(t)
	created := map[string]int{}
	for _, path := range paths {
		if filepath.Base(path) == "kustomization.yaml" {
			continue
		}
		tc := loadCase(t, path)
		for _, obj := range tc.objects {
			require.NoError(t, create(t, ns, obj), "%s: %s %s", path, obj.GetKind(), obj.GetName())
			created[obj.GetKind()]++
		}
	}
	require.Equal(t, 6, created["AIProvider"], "one provider sample per type")
	require.GreaterOrEqual(t, created["AIBudget"], 2)
	require.GreaterOrEqual(t, created["AIRoutePolicy"], 1)
	require.GreaterOrEqual(t, created["Secret"], 2)
}

// TestDefaultsAreApplied checks the CRD defaults that the compiler also assumes.
func TestDefaultsAreApplied(t *testing.T) {
	tc := loadCase(t, filepath.Join(casesDir, "airoutepolicy", "valid", "minimal.yaml"))
	ns := newNamespace(t)
	obj := tc.objects[0].DeepCopy()
	obj.SetNamespace(ns)
	obj.Object["spec"].(map[string]any)["rateLimits"] = []any{map[string]any{"name": "l", "per": "user", "requests": int64(1)}}
	require.NoError(t, k8s.Create(t.Context(), obj))
	spec := obj.Object["spec"].(map[string]any)
	require.Equal(t, "weighted", spec["strategy"])
	require.EqualValues(t, 1, spec["targets"].([]any)[0].(map[string]any)["weight"])
	rl := spec["rateLimits"].([]any)[0].(map[string]any)
	require.Equal(t, "token-bucket", rl["algorithm"])
	require.Equal(t, "1m", rl["window"])
	require.Equal(t, "open", rl["failMode"])
}

// TestKubectlGetShowsTheDocumentedColumns asks the API server for the tables `kubectl get`
// prints, and checks the discovery data behind `kubectl get aip` and `kubectl get ai`.
func TestKubectlGetShowsTheDocumentedColumns(t *testing.T) {
	ns := newNamespace(t)
	for _, path := range []string{"ai_v1alpha1_aiprovider_mock.yaml", "ai_v1alpha1_aibudget_per_user.yaml", "ai_v1alpha1_airoutepolicy.yaml"} {
		tc := loadCase(t, filepath.Join(samplesDir, path))
		require.NoError(t, create(t, ns, tc.objects[0]))
	}
	dc, err := discovery.NewDiscoveryClientForConfig(restCfg)
	require.NoError(t, err)
	tests := map[string][]string{
		"aiproviders":     {"Name", "Type", "Models", "Ready", "Age"},
		"aibudgets":       {"Name", "Scope", "Subject", "Daily", "Monthly", "Spent", "Forecast", "Ready", "Age"},
		"airoutepolicies": {"Name", "Targets", "Strategy", "Ready", "Age"},
	}
	for resource, want := range tests {
		t.Run(resource, func(t *testing.T) {
			body, err := dc.RESTClient().Get().
				AbsPath("/apis/ai.nself.org/v1alpha1/namespaces", ns, resource).
				SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").
				DoRaw(t.Context())
			require.NoError(t, err)
			var table metav1.Table
			require.NoError(t, json.Unmarshal(body, &table))
			var got []string
			for _, c := range table.ColumnDefinitions {
				if c.Priority == 0 {
					got = append(got, c.Name)
				}
			}
			require.Equal(t, want, got)
			require.Len(t, table.Rows, 1)
		})
	}

	list, err := dc.ServerResourcesForGroupVersion("ai.nself.org/v1alpha1")
	require.NoError(t, err)
	shortNames := map[string][]string{}
	for _, r := range list.APIResources {
		if strings.Contains(r.Name, "/") {
			continue // status subresources
		}
		require.True(t, r.Namespaced, r.Name)
		require.Equal(t, []string{"ai"}, r.Categories, r.Name)
		shortNames[r.Name] = r.ShortNames
	}
	require.Equal(t, map[string][]string{
		"aiproviders": {"aip"}, "aibudgets": {"aib"}, "airoutepolicies": {"airp"},
	}, shortNames)
}
