package compiler

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	aiv1alpha1 "github.com/nself-org/ai-orchestration/api/v1alpha1"
)

// maxFileSize bounds one manifest file, so that a stray huge file in the folder cannot exhaust
// memory; real manifests are kilobytes.
const maxFileSize = 8 << 20

// DefaultNamespace is the namespace of a manifest that names none, as kubectl would apply it.
const DefaultNamespace = "default"

// LoadDir reads every *.yaml and *.yml file directly in dir (not its subfolders), in name order,
// each possibly holding several documents separated by "---". It decodes AIProvider, AIBudget,
// AIRoutePolicy (ai.nself.org/v1alpha1) and Secret (v1) documents strictly: unknown or repeated
// fields are errors, reported as "file:document N: ...". Other kinds (a kustomization.yaml, a
// ConfigMap) are ignored. A Secret's stringData is merged into data, as the API server would.
//
// LoadDir checks syntax only; [Compile] judges the objects, so a semantically broken manifest is
// reported as a [Problem] rather than failing the whole folder.
func LoadDir(dir string) (Input, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return Input{}, fmt.Errorf("failed to read manifest folder: %w", err)
	}
	var in Input
	for _, e := range entries {
		ext := strings.ToLower(filepath.Ext(e.Name()))
		if e.IsDir() || (ext != ".yaml" && ext != ".yml") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		data, err := readBounded(path)
		if errors.Is(err, fs.ErrNotExist) {
			// Removed between the listing and the read (a folder being edited, a GitOps sync
			// swapping files): the folder no longer holds it, so neither does the snapshot.
			continue
		}
		if err != nil {
			return Input{}, err
		}
		if err := decodeInto(&in, path, data); err != nil {
			return Input{}, err
		}
	}
	return in, nil
}

func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("failed to open manifest: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("failed to read %s: %w", path, err)
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("%s: larger than %d bytes; manifests are expected to be small", path, maxFileSize)
	}
	return data, nil
}

// typeMeta is decoded first to pick the Go type of a document.
type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
}

// decodeInto appends the objects of one multi-document YAML file to in. name prefixes errors.
func decodeInto(in *Input, name string, data []byte) error {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for doc := 1; ; doc++ {
		raw, err := r.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s:document %d: failed to split YAML: %w", name, doc, err)
		}
		if err := decodeDoc(in, raw); err != nil {
			return fmt.Errorf("%s:document %d: %w", name, doc, err)
		}
	}
}

func decodeDoc(in *Input, raw []byte) error {
	var tm typeMeta
	if err := yaml.Unmarshal(raw, &tm); err != nil {
		return fmt.Errorf("failed to parse YAML: %w", err)
	}
	if tm.APIVersion == "" && tm.Kind == "" {
		return nil // empty or comment-only document, or not a Kubernetes object
	}
	group, _, _ := strings.Cut(tm.APIVersion, "/")
	switch {
	case tm.APIVersion == aiv1alpha1.GroupVersion.String():
	case tm.APIVersion == "v1" && tm.Kind == "Secret":
	case group == aiv1alpha1.GroupVersion.Group && slices.Contains([]string{KindAIProvider, KindAIBudget, KindAIRoutePolicy}, tm.Kind):
		return fmt.Errorf("%s apiVersion %q is not supported: use %s", tm.Kind, tm.APIVersion, aiv1alpha1.GroupVersion)
	default:
		return nil
	}
	switch tm.Kind {
	case KindAIProvider:
		var o aiv1alpha1.AIProvider
		if err := strictDecode(raw, &o); err != nil {
			return err
		}
		o.Namespace = defaultNS(o.Namespace)
		in.Providers = append(in.Providers, o)
	case KindAIBudget:
		var o aiv1alpha1.AIBudget
		if err := strictDecode(raw, &o); err != nil {
			return err
		}
		o.Namespace = defaultNS(o.Namespace)
		in.Budgets = append(in.Budgets, o)
	case KindAIRoutePolicy:
		var o aiv1alpha1.AIRoutePolicy
		if err := strictDecode(raw, &o); err != nil {
			return err
		}
		o.Namespace = defaultNS(o.Namespace)
		in.Routes = append(in.Routes, o)
	case "Secret":
		var o corev1.Secret
		if err := strictDecode(raw, &o); err != nil {
			return err
		}
		o.Namespace = defaultNS(o.Namespace)
		if len(o.StringData) > 0 {
			if o.Data == nil {
				o.Data = map[string][]byte{}
			}
			for k, v := range o.StringData {
				o.Data[k] = []byte(v) // stringData wins, as on the API server
			}
			o.StringData = nil
		}
		in.Secrets = append(in.Secrets, o)
	default:
		return fmt.Errorf("kind %q is not a kind of %s: expected AIProvider, AIBudget or AIRoutePolicy", tm.Kind, aiv1alpha1.GroupVersion)
	}
	return nil
}

func strictDecode(raw []byte, into any) error {
	if err := yaml.UnmarshalStrict(raw, into); err != nil {
		return fmt.Errorf("failed to decode: %w", err)
	}
	return nil
}

func defaultNS(ns string) string {
	if ns == "" {
		return DefaultNamespace
	}
	return ns
}
