package compiler

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	aiv1alpha1 "github.com/nself-org/ai-orchestration/api/v1alpha1"
)

// celCasesDir is the CEL test table that test/crdcel runs against a real API server.
const celCasesDir = "../../api/v1alpha1/testdata"

// TestStandaloneRefusesWhatTheAPIServerRefuses runs the CEL table through the compiler: standalone
// mode has no API server, so every manifest the API server refuses must be refused here too
// (InvalidSpec, or a strict-decoding error), and every manifest it accepts must pass validation.
func TestStandaloneRefusesWhatTheAPIServerRefuses(t *testing.T) {
	for _, kind := range []string{"aiprovider", "aibudget", "airoutepolicy"} {
		for _, validity := range []string{"valid", "invalid"} {
			paths, err := filepath.Glob(filepath.Join(celCasesDir, kind, validity, "*.yaml"))
			require.NoError(t, err)
			require.NotEmpty(t, paths)
			for _, path := range paths {
				t.Run(kind+"/"+validity+"/"+filepath.Base(path), func(t *testing.T) {
					data, err := os.ReadFile(path)
					require.NoError(t, err)
					var in Input
					decodeErr := decodeInto(&in, path, data)
					var invalid []Problem
					if decodeErr == nil {
						invalid = slices.DeleteFunc(Compile(in).Problems, func(p Problem) bool {
							return p.Reason != aiv1alpha1.ReasonInvalidSpec
						})
					}
					if validity == "valid" {
						require.NoError(t, decodeErr)
						require.Empty(t, invalid)
						return
					}
					require.True(t, decodeErr != nil || len(invalid) == 1,
						"the compiler accepted a manifest the API server refuses")
				})
			}
		}
	}
}

// TestSamplesKustomizationListsEverySample keeps `kubectl apply -k config/samples` complete.
func TestSamplesKustomizationListsEverySample(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(samplesDir, "kustomization.yaml"))
	require.NoError(t, err)
	var k struct {
		Resources []string `json:"resources"`
	}
	require.NoError(t, yaml.Unmarshal(data, &k))
	paths, err := filepath.Glob(filepath.Join(samplesDir, "*.yaml"))
	require.NoError(t, err)
	var files []string
	for _, p := range paths {
		if b := filepath.Base(p); b != "kustomization.yaml" {
			files = append(files, b)
		}
	}
	slices.Sort(k.Resources)
	require.Equal(t, files, k.Resources)
	for _, r := range k.Resources {
		require.False(t, strings.Contains(r, "/"), "samples/dev is not part of the samples kustomization")
	}
}
