package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/source"

	aiv1alpha1 "github.com/nself-org/ai-orchestration/api/v1alpha1"
	"github.com/nself-org/ai-orchestration/internal/compiler"
)

// AIProviderReconciler keeps each AIProvider's status in line with the published snapshot: Ready
// (with the compiler's reason when it is left out or loses models) and the number of models
// served. Validation and Secret resolution happen in the compiler, run by the [SnapshotPublisher];
// this reconciler hands changes to it and reports its verdict.
type AIProviderReconciler struct {
	client.Client
	// Results holds the publisher's verdicts.
	Results *Results
	// Trigger wakes the publisher when this object changed since the last verdict.
	Trigger *PublishTrigger
	// Verdicts is the channel on which the publisher sends providers whose verdict changed.
	Verdicts <-chan event.GenericEvent
	// Recorder emits events on Ready transitions.
	Recorder events.EventRecorder
}

// +kubebuilder:rbac:groups=ai.nself.org,resources=aiproviders,verbs=get;list;watch
// +kubebuilder:rbac:groups=ai.nself.org,resources=aiproviders/status,verbs=get;update;patch

// Reconcile follows the shape of every reconciler here: get, enrich the logger, defer one status
// patch, reconcile. AIProviders need no finalizer: deleting one only changes the snapshot.
func (r *AIProviderReconciler) Reconcile(ctx context.Context, req ctrl.Request) (_ ctrl.Result, reterr error) {
	p := &aiv1alpha1.AIProvider{}
	if err := r.Get(ctx, req.NamespacedName, p); err != nil {
		if apierrors.IsNotFound(err) {
			r.Trigger.Publish() // the snapshot must drop it
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("failed to get AIProvider: %w", err)
	}
	logger := log.FromContext(ctx).WithValues("aiprovider", klog.KObj(p))
	ctx = log.IntoContext(ctx, logger)

	base := p.DeepCopy()
	synced := false
	defer func() {
		if synced && reterr == nil {
			p.Status.ObservedGeneration = p.Generation
		}
		wrote, err := patchStatus(ctx, r.Client, base, p, &base.Status, &p.Status)
		if err != nil {
			reterr = errors.Join(reterr, err)
			return
		}
		if wrote {
			recordReadyTransition(r.Recorder, p, readyCondition(base.Status.Conditions), p.Status.Conditions,
				r.affectedPolicies(ctx, p))
		}
	}()
	synced = r.reconcile(p)
	return ctrl.Result{}, nil
}

// reconcile sets the status from the publisher's verdict for this generation, or asks for one.
func (r *AIProviderReconciler) reconcile(p *aiv1alpha1.AIProvider) bool {
	res, ok := r.Results.Get(ObjectRef{Kind: compiler.KindAIProvider, Namespace: p.Namespace, Name: p.Name})
	if !ok || res.UID != p.UID || res.Generation != p.Generation {
		setPendingCondition(&p.Status.Conditions, p.Generation)
		r.Trigger.Publish()
		return false
	}
	setReadyCondition(&p.Status.Conditions, p.Generation, res.Problems)
	p.Status.Models = res.Count
	return true
}

// affectedPolicies names, for a provider's warning event, the route policies that target it.
func (r *AIProviderReconciler) affectedPolicies(ctx context.Context, p *aiv1alpha1.AIProvider) string {
	if c := readyCondition(p.Status.Conditions); c == nil || c.Status != metav1.ConditionFalse {
		return ""
	}
	var routes aiv1alpha1.AIRoutePolicyList
	if err := r.List(ctx, &routes, client.MatchingFields{IndexRoutePolicyProvider: objectKey(p.Namespace, p.Name)}); err != nil {
		log.FromContext(ctx).Error(err, "failed to list the AIRoutePolicies of an AIProvider")
		return ""
	}
	if len(routes.Items) == 0 {
		return ""
	}
	names := make([]string, len(routes.Items))
	for i := range routes.Items {
		names[i] = routes.Items[i].Name
	}
	return " (AIRoutePolicies targeting it: " + strings.Join(names, ", ") + ")"
}

// SetupWithManager registers the controller: AIProviders (spec changes only, so that status
// writes do not loop) and the publisher's verdicts.
func (r *AIProviderReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&aiv1alpha1.AIProvider{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WatchesRawSource(source.Channel(r.Verdicts, &handler.EnqueueRequestForObject{})).
		Named("aiprovider").
		Complete(r)
}
