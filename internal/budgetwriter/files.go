package budgetwriter

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"sigs.k8s.io/yaml"

	aiv1alpha1 "github.com/nself-org/ai-orchestration/api/v1alpha1"
	"github.com/nself-org/ai-orchestration/dataplane/handlers"
	"github.com/nself-org/ai-orchestration/internal/compiler"
)

// Files is the standalone [handlers.BudgetAdmin]: each API budget is one manifest file
// "api-budget-<scope>-<subject>.yaml" in the --manifests folder, which the data plane's folder
// watcher compiles and loads like any other manifest. Git sees the same file; a budget someone
// committed (without the managed-by label) is never overwritten.
type Files struct {
	// Dir is the manifests folder.
	Dir string
	// Namespace of the written AIBudgets; default [DefaultNamespace].
	Namespace string

	// mu serialises writers of this process, so that a check-then-write is not interleaved.
	mu sync.Mutex
}

// NewFiles returns the file writer for the manifests folder dir.
func NewFiles(dir string) *Files { return &Files{Dir: dir, Namespace: DefaultNamespace} }

// FileName is the manifest file of the API budget of scope and subject, relative to the folder.
func FileName(scope, subject string) string {
	return "api-budget-" + strings.TrimPrefix(ObjectName(scope, subject), "api-") + ".yaml"
}

func (f *Files) ns() string {
	if f.Namespace == "" {
		return DefaultNamespace
	}
	return f.Namespace
}

// budgets reads every AIBudget of the folder.
func (f *Files) budgets() ([]aiv1alpha1.AIBudget, error) {
	in, err := compiler.LoadDir(f.Dir)
	if err != nil {
		return nil, fmt.Errorf("failed to read the manifests folder: %w", err)
	}
	return in.Budgets, nil
}

// Put implements [handlers.BudgetAdmin].
func (f *Files) Put(_ context.Context, spec handlers.BudgetSpec) (handlers.BudgetView, bool, error) {
	b := newBudget(spec, f.ns())
	if err := validate(b); err != nil {
		return handlers.BudgetView{}, false, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	all, err := f.budgets()
	if err != nil {
		return handlers.BudgetView{}, false, err
	}
	if owner, ok := gitOpsOwner(all, spec.Scope, spec.Subject); ok {
		return handlers.BudgetView{}, false, &handlers.BudgetConflictError{Name: owner.Namespace + "/" + owner.Name}
	}
	// Another manifest could use our name for a different budget; writing ours would make two
	// objects of one name, of which the compiler keeps one.
	for i := range all {
		if o := &all[i]; o.Namespace == b.Namespace && o.Name == b.Name && !isAPIManaged(o) {
			return handlers.BudgetView{}, false, &handlers.BudgetConflictError{Name: o.Namespace + "/" + o.Name}
		}
	}
	path := filepath.Join(f.Dir, FileName(spec.Scope, spec.Subject))
	_, statErr := os.Stat(path)
	created := errors.Is(statErr, fs.ErrNotExist)
	data, err := manifest(b)
	if err != nil {
		return handlers.BudgetView{}, false, err
	}
	if err := writeAtomic(path, data); err != nil {
		return handlers.BudgetView{}, false, err
	}
	return view(b), created, nil
}

// Get implements [handlers.BudgetAdmin].
func (f *Files) Get(_ context.Context, scope, subject string) (handlers.BudgetView, error) {
	all, err := f.budgets()
	if err != nil {
		return handlers.BudgetView{}, err
	}
	b, ok := pick(all, scope, subject)
	if !ok {
		return handlers.BudgetView{}, notFound(scope, subject)
	}
	return view(b), nil
}

// List implements [handlers.BudgetAdmin].
func (f *Files) List(_ context.Context, scope, subject string) ([]handlers.BudgetView, error) {
	all, err := f.budgets()
	if err != nil {
		return nil, err
	}
	return listViews(all, scope, subject), nil
}

// Delete implements [handlers.BudgetAdmin]: it removes the API budget's file.
func (f *Files) Delete(_ context.Context, scope, subject string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	all, err := f.budgets()
	if err != nil {
		return err
	}
	b, ok := pick(all, scope, subject)
	if !ok {
		return notFound(scope, subject)
	}
	if !isAPIManaged(b) {
		return &handlers.BudgetConflictError{Name: b.Namespace + "/" + b.Name}
	}
	path := filepath.Join(f.Dir, FileName(scope, subject))
	if err := os.Remove(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			// Labelled as API-managed but written under another file name (moved or hand-made):
			// deleting someone's file by guesswork would be worse than saying so.
			return fmt.Errorf("budget %s/%s is labelled as API-managed but is not in %s; delete its manifest by hand",
				b.Namespace, b.Name, filepath.Base(path))
		}
		return fmt.Errorf("failed to delete %s: %w", path, err)
	}
	return nil
}

// fileBudget is the manifest as written: only the fields that mean something (no empty status or
// creationTimestamp: null), in kubectl's order.
type fileBudget struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace"`
		Labels    map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec aiv1alpha1.AIBudgetSpec `json:"spec"`
}

func manifest(b *aiv1alpha1.AIBudget) ([]byte, error) {
	var fb fileBudget
	fb.APIVersion, fb.Kind = b.APIVersion, b.Kind
	fb.Metadata.Name, fb.Metadata.Namespace, fb.Metadata.Labels = b.Name, b.Namespace, b.Labels
	fb.Spec = b.Spec
	y, err := yaml.Marshal(fb)
	if err != nil {
		return nil, fmt.Errorf("failed to encode the AIBudget: %w", err)
	}
	// The comment names no caller-supplied text: a subject is arbitrary and must not be able to
	// break out of the comment into the manifest.
	head := fmt.Sprintf("# Written by the data plane's budgets API (PUT /api/ai/budgets); the next PUT for this\n"+
		"# scope and subject replaces this file. To hand the budget over to Git, remove the %s label.\n",
		LabelManagedBy)
	return append([]byte(head), y...), nil
}

// writeAtomic writes data to path through a temporary file in the same folder and a rename, so
// that the folder watcher never reads half a manifest. The temporary name does not end in .yaml,
// so the watcher ignores it.
func writeAtomic(path string, data []byte) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".api-budget-*.tmp")
	if err != nil {
		return fmt.Errorf("failed to create a temporary file: %w", err)
	}
	defer func() {
		if err != nil {
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("failed to write %s: %w", tmp.Name(), err)
	}
	if err = tmp.Sync(); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("failed to sync %s: %w", tmp.Name(), err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("failed to close %s: %w", tmp.Name(), err)
	}
	if err = os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("failed to set the mode of %s: %w", tmp.Name(), err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("failed to replace %s: %w", path, err)
	}
	return nil
}
