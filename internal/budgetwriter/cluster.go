package budgetwriter

import (
	"context"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"

	aiv1alpha1 "github.com/nself-org/ai-orchestration/api/v1alpha1"
	"github.com/nself-org/ai-orchestration/dataplane/handlers"
	"github.com/nself-org/ai-orchestration/internal/kubeclient"
)

// Cluster is the in-cluster [handlers.BudgetAdmin]: it writes AIBudgets through the API server,
// where the operator compiles them into the snapshot every replica loads. The API server's own
// validation (OpenAPI and CEL) answers first, so a refused spec gets kubectl's message.
//
// RBAC: get, list, create, update, delete on aibudgets.ai.nself.org; list across all namespaces
// (budgets of any namespace apply to requests, so a GitOps-owned one anywhere is a conflict).
//
// It speaks to the API server with a plain REST client of ai.nself.org/v1alpha1 (internal/kubeclient),
// not controller-runtime's client: the data plane links this package, and must stay small.
type Cluster struct {
	// Client is a REST client of ai.nself.org/v1alpha1 whose scheme knows api/v1alpha1
	// ([NewClusterFromConfig] builds one).
	Client rest.Interface
	// Namespace of the written AIBudgets; default [DefaultNamespace].
	Namespace string
}

// aibudgets is the AIBudget resource's name in the API paths.
const aibudgets = "aibudgets"

// NewCluster returns the cluster writer writing into namespace ns through c.
func NewCluster(c rest.Interface, ns string) *Cluster { return &Cluster{Client: c, Namespace: ns} }

// NewClusterFromConfig builds an uncached client for AIBudgets from cfg (the pod's in-cluster
// config in the data plane) and returns the cluster writer over it. Uncached: the API is used
// rarely, and a cache would mean a cluster-wide AIBudget informer in every replica.
func NewClusterFromConfig(cfg *rest.Config, ns string) (*Cluster, error) {
	c, err := kubeclient.ForGroupVersion(cfg, aiv1alpha1.GroupVersion, aiv1alpha1.AddToScheme)
	if err != nil {
		return nil, err
	}
	return NewCluster(c, ns), nil
}

func (c *Cluster) ns() string {
	if c.Namespace == "" {
		return DefaultNamespace
	}
	return c.Namespace
}

func (c *Cluster) budgets(ctx context.Context) ([]aiv1alpha1.AIBudget, error) {
	var list aiv1alpha1.AIBudgetList
	// No namespace: every namespace's AIBudgets.
	if err := c.Client.Get().Resource(aibudgets).Do(ctx).Into(&list); err != nil {
		return nil, fmt.Errorf("failed to list AIBudgets: %w", err)
	}
	return list.Items, nil
}

// invalid turns the API server's validation refusal into the API's 400 with kubectl's message.
func invalid(err error) error {
	if apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) {
		return &handlers.BudgetInvalidError{Message: err.Error()}
	}
	return err
}

// refused maps the API server's refusal of a write of AIBudget name: a create that lost a race
// (AlreadyExists) becomes a conflict, which [retry.RetryOnConflict] retries; a validation refusal
// becomes the API's 400.
func refused(err error, name string) error {
	if apierrors.IsAlreadyExists(err) {
		return apierrors.NewConflict(aiv1alpha1.GroupVersion.WithResource(aibudgets).GroupResource(), name, err)
	}
	return invalid(err)
}

// Put implements [handlers.BudgetAdmin]. The API server validates first (a dry run of the same
// create or update, so that its message is the one the caller sees, exactly as at kubectl
// apply); then the compiler's rules, which add checks the CRD cannot express (a time zone that
// exists); only then is the AIBudget written.
func (c *Cluster) Put(ctx context.Context, spec handlers.BudgetSpec) (handlers.BudgetView, bool, error) {
	want := newBudget(spec, c.ns())
	all, err := c.budgets(ctx)
	if err != nil {
		return handlers.BudgetView{}, false, err
	}
	if owner, ok := gitOpsOwner(all, spec.Scope, spec.Subject); ok {
		return handlers.BudgetView{}, false, &handlers.BudgetConflictError{Name: owner.Namespace + "/" + owner.Name}
	}
	var created bool
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var cur aiv1alpha1.AIBudget
		err := c.Client.Get().Namespace(want.Namespace).Resource(aibudgets).Name(want.Name).Do(ctx).Into(&cur)
		var obj *aiv1alpha1.AIBudget
		// write creates or updates obj; a dry run lets the API server judge without storing.
		var write func(dryRun bool) error
		switch {
		case apierrors.IsNotFound(err):
			created, obj = true, want.DeepCopy()
			write = func(dryRun bool) error {
				return withDryRun(c.Client.Post().Namespace(obj.Namespace).Resource(aibudgets), dryRun).
					Body(obj).Do(ctx).Error()
			}
		case err != nil:
			return err
		default:
			if !isAPIManaged(&cur) {
				// Our name, but not our object: someone else's AIBudget of another subject.
				return &handlers.BudgetConflictError{Name: cur.Namespace + "/" + cur.Name}
			}
			created, obj = false, cur.DeepCopy()
			obj.Spec = want.Spec
			write = func(dryRun bool) error {
				return withDryRun(c.Client.Put().Namespace(obj.Namespace).Resource(aibudgets).Name(obj.Name), dryRun).
					Body(obj).Do(ctx).Error()
			}
		}
		// The dry run refuses a create just like the write does when another replica created
		// the budget since the Get: both go round again as an update.
		if err := write(true); err != nil {
			return refused(err, want.Name)
		}
		if err := validate(obj); err != nil {
			return err
		}
		if err := write(false); err != nil {
			return refused(err, want.Name)
		}
		return nil
	})
	if err != nil {
		var ce *handlers.BudgetConflictError
		var ie *handlers.BudgetInvalidError
		if errors.As(err, &ce) || errors.As(err, &ie) {
			return handlers.BudgetView{}, false, err
		}
		return handlers.BudgetView{}, false, fmt.Errorf("failed to write the AIBudget: %w", err)
	}
	return view(want), created, nil
}

// Get implements [handlers.BudgetAdmin].
func (c *Cluster) Get(ctx context.Context, scope, subject string) (handlers.BudgetView, error) {
	all, err := c.budgets(ctx)
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
func (c *Cluster) List(ctx context.Context, scope, subject string) ([]handlers.BudgetView, error) {
	all, err := c.budgets(ctx)
	if err != nil {
		return nil, err
	}
	return listViews(all, scope, subject), nil
}

// Delete implements [handlers.BudgetAdmin]. The delete is preconditioned on the resource version
// read, so a budget relabelled to GitOps in between is not deleted.
func (c *Cluster) Delete(ctx context.Context, scope, subject string) error {
	all, err := c.budgets(ctx)
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
	rv := b.ResourceVersion
	err = c.Client.Delete().Namespace(b.Namespace).Resource(aibudgets).Name(b.Name).
		Body(&metav1.DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: &rv}}).Do(ctx).Error()
	switch {
	case apierrors.IsNotFound(err):
		return notFound(scope, subject)
	case apierrors.IsConflict(err):
		return fmt.Errorf("budget %s/%s changed while deleting it; retry: %w", b.Namespace, b.Name, err)
	case err != nil:
		return fmt.Errorf("failed to delete AIBudget %s/%s: %w", b.Namespace, b.Name, err)
	}
	return nil
}

// withDryRun asks the API server to judge the write without storing it when dryRun is set.
func withDryRun(r *rest.Request, dryRun bool) *rest.Request {
	if dryRun {
		return r.Param("dryRun", metav1.DryRunAll)
	}
	return r
}
