package budgetwriter

import (
	"context"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	aiv1alpha1 "github.com/nself-org/ai-orchestration/api/v1alpha1"
	"github.com/nself-org/ai-orchestration/dataplane/handlers"
)

// Cluster is the in-cluster [handlers.BudgetAdmin]: it writes AIBudgets through the API server,
// where the operator compiles them into the snapshot every replica loads. The API server's own
// validation (OpenAPI and CEL) answers first, so a refused spec gets kubectl's message.
//
// RBAC: get, list, create, update, delete on aibudgets.ai.nself.org; list across all namespaces
// (budgets of any namespace apply to requests, so a GitOps-owned one anywhere is a conflict).
type Cluster struct {
	// Client reads and writes AIBudgets; its scheme must know api/v1alpha1.
	Client client.Client
	// Namespace of the written AIBudgets; default [DefaultNamespace].
	Namespace string
}

// NewCluster returns the cluster writer writing into namespace ns.
func NewCluster(c client.Client, ns string) *Cluster { return &Cluster{Client: c, Namespace: ns} }

// NewClusterFromConfig builds an uncached client for AIBudgets from cfg (rest.InClusterConfig in
// the data plane) and returns the cluster writer over it. Uncached: the API is used rarely, and a
// cache would mean a cluster-wide AIBudget informer in every replica.
func NewClusterFromConfig(cfg *rest.Config, ns string) (*Cluster, error) {
	scheme := k8sruntime.NewScheme()
	if err := aiv1alpha1.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("failed to register the AIBudget kind: %w", err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("failed to build the AIBudget client: %w", err)
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
	if err := c.Client.List(ctx, &list); err != nil {
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
		err := c.Client.Get(ctx, types.NamespacedName{Namespace: want.Namespace, Name: want.Name}, &cur)
		var obj *aiv1alpha1.AIBudget
		// write creates or updates obj; a dry run lets the API server judge without storing.
		var write func(dryRun bool) error
		switch {
		case apierrors.IsNotFound(err):
			created, obj = true, want.DeepCopy()
			write = func(dryRun bool) error {
				if dryRun {
					return c.Client.Create(ctx, obj.DeepCopy(), client.DryRunAll)
				}
				return c.Client.Create(ctx, obj.DeepCopy())
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
				if dryRun {
					return c.Client.Update(ctx, obj.DeepCopy(), client.DryRunAll)
				}
				return c.Client.Update(ctx, obj.DeepCopy())
			}
		}
		if err := write(true); err != nil {
			return invalid(err)
		}
		if err := validate(obj); err != nil {
			return err
		}
		if err := write(false); err != nil {
			if apierrors.IsAlreadyExists(err) {
				// Created by someone else since the Get: go round again as an update.
				return apierrors.NewConflict(aiv1alpha1.GroupVersion.WithResource("aibudgets").GroupResource(), want.Name, err)
			}
			return invalid(err)
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
	err = c.Client.Delete(ctx, b, client.Preconditions{ResourceVersion: &rv})
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
