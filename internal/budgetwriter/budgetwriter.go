// Package budgetwriter implements the data plane's budgets API ([handlers.BudgetAdmin]) by
// writing AIBudget resources where Git, kubectl and every replica see them: [Files] writes
// manifest files into the standalone --manifests folder, [Cluster] writes through the Kubernetes
// API server. Both label what they write ai.nself.org/managed-by=api and refuse (409) to touch a
// budget of the same scope and subject that lacks the label: that one is owned by GitOps, and
// overwriting it would be undone by the next sync (or silently fight it).
package budgetwriter

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	aiv1alpha1 "github.com/nself-org/ai-orchestration/api/v1alpha1"
	"github.com/nself-org/ai-orchestration/dataplane/handlers"
	"github.com/nself-org/ai-orchestration/internal/compiler"
)

// LabelManagedBy marks an AIBudget written through the API when its value is [handlers.ManagedByAPI].
const LabelManagedBy = "ai.nself.org/managed-by"

// DefaultNamespace is where API budgets are written unless configured otherwise.
const DefaultNamespace = "default"

// maxNameLen keeps names short enough for a file name and a label value (63).
const maxNameLen = 63

var nonDNS = regexp.MustCompile(`[^a-z0-9-]+`)

// ObjectName is the AIBudget name of the API budget of scope and subject: "api-<scope>-<subject>"
// lowercased, with characters a DNS-1123 name cannot hold replaced by "-". When that changed the
// subject (case, "/", "*", …) or had to be cut, a short hash of the exact scope and subject is
// appended, so that two subjects never share a name ("User-1" and "user-1").
func ObjectName(scope, subject string) string {
	s := subject
	if s == "*" {
		s = "all"
	}
	clean := strings.Trim(nonDNS.ReplaceAllString(strings.ToLower(s), "-"), "-")
	base := "api-" + strings.ToLower(scope) + "-" + clean
	if clean == subject && len(base) <= maxNameLen {
		return base
	}
	sum := sha256.Sum256([]byte(scope + "/" + subject))
	suffix := "-" + hex.EncodeToString(sum[:])[:8]
	if len(base) > maxNameLen-len(suffix) {
		base = strings.TrimRight(base[:maxNameLen-len(suffix)], "-")
	}
	return base + suffix
}

// sameTarget reports whether b limits the same scope and subject. Global budgets count everyone
// together, so any two global budgets are the same target whatever their subject says.
func sameTarget(b *aiv1alpha1.AIBudget, scope, subject string) bool {
	if string(b.Spec.Scope) != scope {
		return false
	}
	return scope == string(aiv1alpha1.BudgetScopeGlobal) || b.Spec.Subject == subject
}

// appliesTo reports whether b is listed for the filter of [handlers.BudgetAdmin.List].
func appliesTo(b *aiv1alpha1.AIBudget, scope, subject string) bool {
	if scope != "" && string(b.Spec.Scope) != scope {
		return false
	}
	if subject == "" || b.Spec.Scope == aiv1alpha1.BudgetScopeGlobal {
		return true
	}
	return b.Spec.Subject == subject || b.Spec.Subject == "*"
}

func isAPIManaged(b *aiv1alpha1.AIBudget) bool {
	return b.Labels[LabelManagedBy] == handlers.ManagedByAPI
}

// newBudget builds the AIBudget of spec in namespace ns.
func newBudget(spec handlers.BudgetSpec, ns string) *aiv1alpha1.AIBudget {
	return &aiv1alpha1.AIBudget{
		TypeMeta: metav1.TypeMeta{APIVersion: aiv1alpha1.GroupVersion.String(), Kind: "AIBudget"},
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns,
			Name:      ObjectName(spec.Scope, spec.Subject),
			Labels:    map[string]string{LabelManagedBy: handlers.ManagedByAPI},
		},
		Spec: aiv1alpha1.AIBudgetSpec{
			Scope:           aiv1alpha1.BudgetScope(spec.Scope),
			Subject:         spec.Subject,
			Daily:           aiv1alpha1.USD(spec.Daily),
			Weekly:          aiv1alpha1.USD(spec.Weekly),
			Monthly:         aiv1alpha1.USD(spec.Monthly),
			Action:          aiv1alpha1.BudgetAction(spec.Action),
			DowngradeTo:     spec.DowngradeTo,
			AlertThresholds: spec.AlertThresholds,
			TimeZone:        spec.TimeZone,
		},
	}
}

// view is the API's picture of b.
func view(b *aiv1alpha1.AIBudget) handlers.BudgetView {
	managed := handlers.ManagedByGitOps
	if isAPIManaged(b) {
		managed = handlers.ManagedByAPI
	}
	s := b.Spec
	return handlers.BudgetView{
		Name: b.Namespace + "/" + b.Name,
		Spec: handlers.BudgetSpec{
			Scope: string(s.Scope), Subject: s.Subject, Daily: string(s.Daily), Weekly: string(s.Weekly),
			Monthly: string(s.Monthly), Action: string(s.Action), DowngradeTo: s.DowngradeTo,
			AlertThresholds: s.AlertThresholds, TimeZone: s.TimeZone,
		},
		ManagedBy: managed,
	}
}

// validate judges b exactly as the compiler judges a manifest (the CRD's OpenAPI and CEL rules,
// repeated with the same messages), so that the API refuses what `kubectl apply` or the folder
// loader would. Problems that do not exclude the budget (an unknown downgrade model) are not
// refusals: the compiler publishes such a budget too.
func validate(b *aiv1alpha1.AIBudget) error {
	res := compiler.Compile(compiler.Input{Budgets: []aiv1alpha1.AIBudget{*b}})
	var msgs []string
	for _, p := range res.ProblemsFor(compiler.KindAIBudget, b.Namespace, b.Name) {
		if p.Excluded {
			msgs = append(msgs, p.Message)
		}
	}
	if len(msgs) > 0 {
		return &handlers.BudgetInvalidError{Message: strings.Join(msgs, "; ")}
	}
	return nil
}

// pick returns the budget of scope and subject the API shows for Get: the API-managed one when
// there is one, otherwise the first by namespace/name.
func pick(budgets []aiv1alpha1.AIBudget, scope, subject string) (*aiv1alpha1.AIBudget, bool) {
	var first *aiv1alpha1.AIBudget
	for i := range budgets {
		b := &budgets[i]
		if !sameTarget(b, scope, subject) {
			continue
		}
		if isAPIManaged(b) {
			return b, true
		}
		if first == nil {
			first = b
		}
	}
	return first, first != nil
}

// gitOpsOwner returns a GitOps-owned budget of scope and subject, if any.
func gitOpsOwner(budgets []aiv1alpha1.AIBudget, scope, subject string) (*aiv1alpha1.AIBudget, bool) {
	for i := range budgets {
		if b := &budgets[i]; sameTarget(b, scope, subject) && !isAPIManaged(b) {
			return b, true
		}
	}
	return nil, false
}

func notFound(scope, subject string) error {
	return fmt.Errorf("%w: no budget of scope %s for subject %q", handlers.ErrBudgetNotFound, scope, subject)
}

// listViews filters and sorts budgets for List.
func listViews(budgets []aiv1alpha1.AIBudget, scope, subject string) []handlers.BudgetView {
	out := []handlers.BudgetView{}
	for i := range budgets {
		if appliesTo(&budgets[i], scope, subject) {
			out = append(out, view(&budgets[i]))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

var _ handlers.BudgetAdmin = (*Files)(nil)
var _ handlers.BudgetAdmin = (*Cluster)(nil)
