package compiler

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/config"
)

var update = flag.Bool("update", false, "rewrite testdata/*.out.json from the compiler's current output")

const samplesDir = "../../config/samples"

// golden is what a <case>.out.json file holds.
type golden struct {
	Snapshot *config.Snapshot `json:"snapshot"`
	Problems []Problem        `json:"problems"`
}

// TestGolden compiles each testdata/<case>.in.yaml and compares the snapshot and problems with
// <case>.out.json. Run `go test ./internal/compiler -update` after an intended change and review
// the diff; never edit the .out.json files by hand.
func TestGolden(t *testing.T) {
	inputs, err := filepath.Glob("testdata/*.in.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, inputs)
	for _, inPath := range inputs {
		name := strings.TrimSuffix(filepath.Base(inPath), ".in.yaml")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(inPath)
			require.NoError(t, err)
			var in Input
			require.NoError(t, decodeInto(&in, inPath, data))
			res := Compile(in)
			problems := res.Problems
			if problems == nil {
				problems = []Problem{}
			}
			got, err := json.MarshalIndent(golden{Snapshot: res.Snapshot, Problems: problems}, "", "  ")
			require.NoError(t, err)
			got = append(got, '\n')
			outPath := filepath.Join("testdata", name+".out.json")
			if *update {
				require.NoError(t, os.WriteFile(outPath, got, 0o644))
			}
			want, err := os.ReadFile(outPath)
			require.NoError(t, err, "missing golden file: run go test ./internal/compiler -update")
			require.Equal(t, string(want), string(got), "run go test ./internal/compiler -update and review the diff")
		})
	}
}

func TestSamplesCompileWithoutProblems(t *testing.T) {
	in, err := LoadDir(samplesDir)
	require.NoError(t, err)
	res := Compile(in)
	require.Empty(t, res.Problems)
	s := res.Snapshot
	types := map[string]bool{}
	for _, p := range s.Providers {
		types[p.Type] = true
	}
	require.Equal(t, map[string]bool{
		config.ProviderOpenAI: true, config.ProviderAnthropic: true, config.ProviderGoogle: true,
		config.ProviderOllama: true, config.ProviderOpenAICompatible: true, config.ProviderMock: true,
	}, types, "one sample per provider type")
	require.Len(t, s.Budgets, 2)
	require.Len(t, s.Routes, 2)
	require.Len(t, s.APIKeys, 2)
	for _, r := range s.Routes {
		require.NotEmpty(t, r.Targets)
	}
}

func TestLoadDir(t *testing.T) {
	tests := map[string]struct {
		files   map[string]string
		wantErr string
		check   func(t *testing.T, in Input)
	}{
		"multi-document files are split, other kinds and files are ignored": {
			files: map[string]string{
				"a.yaml":             "# comment only\n---\n" + mockProvider + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
				"b.yml":              "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: team}\ndata: {a: eA==}\nstringData: {b: bee, a: z}\n",
				"c.txt":              "not yaml at all: [",
				"kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [a.yaml]\n",
			},
			check: func(t *testing.T, in Input) {
				require.Len(t, in.Providers, 1)
				require.Equal(t, "default", in.Providers[0].Namespace, "a manifest without namespace lands in default")
				require.Len(t, in.Secrets, 1)
				require.Equal(t, map[string][]byte{"a": []byte("z"), "b": []byte("bee")}, in.Secrets[0].Data, "stringData is merged over data")
				require.Nil(t, in.Secrets[0].StringData)
			},
		},
		"an unknown field is an error naming the file and document": {
			files:   map[string]string{"p.yaml": mockProvider + "---\n" + strings.Replace(mockProvider, "type: mock", "type: mock\n  colour: red", 1)},
			wantErr: `p.yaml:document 2: failed to decode: error unmarshaling JSON: while decoding JSON: json: unknown field "colour"`,
		},
		"an unsupported version of one of our kinds is an error": {
			files:   map[string]string{"p.yaml": strings.Replace(mockProvider, "v1alpha1", "v1", 1)},
			wantErr: `AIProvider apiVersion "ai.nself.org/v1" is not supported: use ai.nself.org/v1alpha1`,
		},
		"an unknown kind of our group is an error": {
			files:   map[string]string{"p.yaml": strings.Replace(mockProvider, "AIProvider", "AIProviders", 1)},
			wantErr: `kind "AIProviders" is not a kind of ai.nself.org/v1alpha1`,
		},
		"malformed YAML is an error": {
			files:   map[string]string{"p.yaml": "apiVersion: [\n"},
			wantErr: "p.yaml:document 1: failed to parse YAML",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			for f, content := range tc.files {
				require.NoError(t, os.WriteFile(filepath.Join(dir, f), []byte(content), 0o600))
			}
			in, err := LoadDir(dir)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			tc.check(t, in)
		})
	}
}

func TestLoadDirRefusesAMissingFolder(t *testing.T) {
	_, err := LoadDir(filepath.Join(t.TempDir(), "nope"))
	require.ErrorContains(t, err, "failed to read manifest folder")
}

// A file listed but gone when read (removed while the folder is edited or synced) is not part of
// the folder any more: the load goes on without it. A dangling link is listed and cannot be opened,
// which is that moment held still.
func TestLoadDirSkipsAFileRemovedWhileLoading(t *testing.T) {
	dir := t.TempDir()
	src, err := os.ReadFile(filepath.Join(samplesDir, "ai_v1alpha1_aiprovider_mock.yaml"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "provider.yaml"), src, 0o600))
	require.NoError(t, os.Symlink(filepath.Join(dir, "gone.yaml"), filepath.Join(dir, "route.yaml")))
	in, err := LoadDir(dir)
	require.NoError(t, err)
	require.Len(t, in.Providers, 1)
}

// FuzzCompileYAML feeds arbitrary manifest text through decoding and compilation: neither may
// panic, and whatever compiles must compile to the same sealed snapshot twice.
func FuzzCompileYAML(f *testing.F) {
	seeds, err := filepath.Glob(filepath.Join(samplesDir, "*.yaml"))
	require.NoError(f, err)
	tdSeeds, err := filepath.Glob("testdata/*.in.yaml")
	require.NoError(f, err)
	for _, p := range append(seeds, tdSeeds...) {
		b, err := os.ReadFile(p)
		require.NoError(f, err)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var in Input
		if err := decodeInto(&in, "fuzz.yaml", data); err != nil {
			return
		}
		a, b := Compile(in), Compile(in)
		require.Equal(t, a.Snapshot.Hash, b.Snapshot.Hash)
		if _, err := config.Decode(mustEncode(t, a.Snapshot)); err != nil {
			t.Fatalf("compiled snapshot does not decode: %v", err)
		}
	})
}

func mustEncode(t *testing.T, s *config.Snapshot) []byte {
	t.Helper()
	b, err := config.Encode(s)
	require.NoError(t, err)
	return b
}

// TestGoldenSamples pins the snapshot of config/samples (testdata/samples.out.json), so that a
// change to a sample or to the compiler shows up as a reviewed diff.
func TestGoldenSamples(t *testing.T) {
	in, err := LoadDir(samplesDir)
	require.NoError(t, err)
	res := Compile(in)
	got, err := json.MarshalIndent(golden{Snapshot: res.Snapshot, Problems: append([]Problem{}, res.Problems...)}, "", "  ")
	require.NoError(t, err)
	got = append(got, '\n')
	outPath := filepath.Join("testdata", "samples.out.json")
	if *update {
		require.NoError(t, os.WriteFile(outPath, got, 0o644))
	}
	want, err := os.ReadFile(outPath)
	require.NoError(t, err, "missing golden file: run go test ./internal/compiler -update")
	require.Equal(t, string(want), string(got), "run go test ./internal/compiler -update and review the diff")
}
