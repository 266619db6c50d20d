package kubeclient

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"

	aiv1alpha1 "github.com/nself-org/ai-orchestration/api/v1alpha1"
)

const kubeconfig = `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:6443", insecure-skip-tls-verify: true}
users:
- name: u
  user: {token: "t0ken"}
contexts:
- name: ctx
  context: {cluster: c, user: u}
current-context: ctx
`

func TestLoadConfigReadsTheKubeconfigsCurrentContext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kubeconfig")
	require.NoError(t, os.WriteFile(path, []byte(kubeconfig), 0o600))
	cfg, err := LoadConfig(path)
	require.NoError(t, err)
	require.Equal(t, "https://127.0.0.1:6443", cfg.Host)
	require.Equal(t, "t0ken", cfg.BearerToken)
}

func TestLoadConfigOutsideAPodWithoutAKubeconfigFails(t *testing.T) {
	// rest.InClusterConfig needs these and the service account's token file.
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("KUBERNETES_SERVICE_PORT", "")
	_, err := LoadConfig("")
	require.ErrorContains(t, err, "failed to load the cluster config")
	_, err = LoadConfig(filepath.Join(t.TempDir(), "missing"))
	require.ErrorContains(t, err, "failed to load the cluster config")
}

func TestForGroupVersionAddressesCoreAndNamedGroups(t *testing.T) {
	cfg := &rest.Config{Host: "https://127.0.0.1:6443"}
	core, err := NewCore(cfg)
	require.NoError(t, err)
	require.Equal(t, "/api/v1/namespaces/ns/secrets/s",
		core.Get().Namespace("ns").Resource("secrets").Name("s").URL().Path)
	require.Equal(t, corev1.SchemeGroupVersion, core.APIVersion())

	ai, err := ForGroupVersion(cfg, aiv1alpha1.GroupVersion, aiv1alpha1.AddToScheme)
	require.NoError(t, err)
	require.Equal(t, "/apis/ai.nself.org/v1alpha1/aibudgets", ai.Get().Resource("aibudgets").URL().Path)
	require.Empty(t, cfg.GroupVersion, "the caller's config is copied, not changed")
}
