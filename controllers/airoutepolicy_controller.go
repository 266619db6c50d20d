package controllers

import (
	"context"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
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

// AIRoutePolicyReconciler keeps each AIRoutePolicy's status in line with the published snapshot:
// Ready (False with ProviderNotFound, ModelNotFound, … when targets are left out) and the number
// of targets served. A deleted or broken provider reaches this status through the publisher,
// which recompiles every policy whenever anything changes.
type AIRoutePolicyReconciler struct {
	client.Client
	// Results holds the publisher's verdicts.
	Results *Results
	// Trigger wakes the publisher when this object changed since the last verdict.
	Trigger *PublishTrigger
	// Verdicts is the channel on which the publisher sends policies whose verdict changed.
	Verdicts <-chan event.GenericEvent
	// Recorder emits events on Ready transitions.
	Recorder events.EventRecorder
}

// +kubebuilder:rbac:groups=ai.nself.org,resources=airoutepolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=ai.nself.org,resources=airoutepolicies/status,verbs=get;update;patch

// Reconcile gets the policy, defers one status patch and sets the status from the verdict.
func (r *AIRoutePolicyReconciler) Reconcile(ctx context.Context, req ctrl.Request) (_ ctrl.Result, reterr error) {
	rp := &aiv1alpha1.AIRoutePolicy{}
	if err := r.Get(ctx, req.NamespacedName, rp); err != nil {
		if apierrors.IsNotFound(err) {
			r.Trigger.Publish()
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("failed to get AIRoutePolicy: %w", err)
	}
	logger := log.FromContext(ctx).WithValues("airoutepolicy", klog.KObj(rp))
	ctx = log.IntoContext(ctx, logger)

	base := rp.DeepCopy()
	synced := false
	defer func() {
		if synced && reterr == nil {
			rp.Status.ObservedGeneration = rp.Generation
		}
		wrote, err := patchStatus(ctx, r.Client, base, rp, &base.Status, &rp.Status)
		if err != nil {
			reterr = errors.Join(reterr, err)
			return
		}
		if wrote {
			recordReadyTransition(r.Recorder, rp, readyCondition(base.Status.Conditions), rp.Status.Conditions, "")
		}
	}()
	synced = r.reconcile(rp)
	return ctrl.Result{}, nil
}

func (r *AIRoutePolicyReconciler) reconcile(rp *aiv1alpha1.AIRoutePolicy) bool {
	res, ok := r.Results.Get(ObjectRef{Kind: compiler.KindAIRoutePolicy, Namespace: rp.Namespace, Name: rp.Name})
	if !ok || res.UID != rp.UID || res.Generation != rp.Generation {
		setPendingCondition(&rp.Status.Conditions, rp.Generation)
		r.Trigger.Publish()
		return false
	}
	setReadyCondition(&rp.Status.Conditions, rp.Generation, res.Problems)
	rp.Status.Targets = res.Count
	return true
}

// SetupWithManager registers the controller: AIRoutePolicies (spec changes only) and the
// publisher's verdicts.
func (r *AIRoutePolicyReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&aiv1alpha1.AIRoutePolicy{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WatchesRawSource(source.Channel(r.Verdicts, &handler.EnqueueRequestForObject{})).
		Named("airoutepolicy").
		Complete(r)
}
