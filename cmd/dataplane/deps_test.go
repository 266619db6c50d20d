package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// forbiddenDeps are packages the data plane binary must not link, with why. Together they made
// the binary ~40 MB larger and its idle resident memory 8–11 MiB higher, for two resources that
// internal/kubeclient reaches with client-go's REST client alone.
var forbiddenDeps = map[string]string{
	"k8s.io/client-go/kubernetes":               "the generated clientset: a typed client of every API group",
	"k8s.io/client-go/informers":                "generated informers take the whole clientset",
	"k8s.io/client-go/applyconfigurations":      "apply configurations of every kind, pulled in by the typed clients",
	"sigs.k8s.io/controller-runtime/pkg/client": "controller-runtime's client: the manager's, with its REST mapper and caches",
}

// TestTheDataPlaneLinksNoHeavyKubernetesClient lists the packages linked into the data plane
// (without its tests) and fails when one of forbiddenDeps, or a package below it, is among them.
func TestTheDataPlaneLinksNoHeavyKubernetesClient(t *testing.T) {
	// go test puts the running toolchain's bin directory first on PATH.
	goTool, err := exec.LookPath("go")
	require.NoError(t, err, "the go command is needed to list the data plane's dependencies")
	out, err := exec.CommandContext(t.Context(), goTool, "list", "-deps", ".").CombinedOutput()
	require.NoError(t, err, "go list -deps failed:\n%s", out)
	deps := strings.Fields(string(out))
	require.Contains(t, deps, "k8s.io/client-go/rest", "the list must hold the data plane's dependencies")
	for forbidden, why := range forbiddenDeps {
		var linked []string
		for _, dep := range deps {
			if dep == forbidden || strings.HasPrefix(dep, forbidden+"/") {
				linked = append(linked, dep)
			}
		}
		if len(linked) > 0 {
			t.Errorf("cmd/dataplane links %d package(s) of %s (%s), first %s; reach the API server through "+
				"internal/kubeclient instead (`go list -deps -f '{{.ImportPath}}: {{.Imports}}' ./cmd/dataplane` "+
				"shows who imports it)", len(linked), forbidden, why, linked[0])
		}
	}
}
