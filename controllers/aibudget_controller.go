package controllers

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/time/rate"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	aiv1alpha1 "github.com/nself-org/ai-orchestration/api/v1alpha1"
	"github.com/nself-org/ai-orchestration/internal/compiler"
)

// BudgetSpend is a budget's spend as the usage store sees it, for its status.
type BudgetSpend struct {
	// Spent, Remaining and Forecast are per period; nil leaves the status field empty.
	Spent, Remaining, Forecast *aiv1alpha1.PeriodAmounts
	// SubjectsOverBudget lists (a bounded sample of) subjects at or over a limit; Count is all.
	SubjectsOverBudget      []string
	SubjectsOverBudgetCount int32
	// Warning is true when a subject crossed an alert threshold; Exceeded when one hit a limit.
	Warning, Exceeded bool
}

// BudgetSpendReader is the seam through which the usage store (Redis, shared with the data
// plane) reports spend. Until it is wired in, [AIBudgetReconciler.Spend] is nil and budgets show
// only Ready.
type BudgetSpendReader interface {
	// ReadSpend returns the spend of b in its current periods.
	ReadSpend(ctx context.Context, b *aiv1alpha1.AIBudget) (BudgetSpend, error)
}

// AIBudgetReconciler keeps each AIBudget's status in line with the published snapshot (Ready) and,
// when a [BudgetSpendReader] is set, with the usage store (spend, Warning, Exceeded).
type AIBudgetReconciler struct {
	client.Client
	// Results holds the publisher's verdicts.
	Results *Results
	// Trigger wakes the publisher when this object changed since the last verdict.
	Trigger *PublishTrigger
	// Verdicts is the channel on which the publisher sends budgets whose verdict changed.
	Verdicts <-chan event.GenericEvent
	// Recorder emits events on Ready, Warning and Exceeded transitions.
	Recorder events.EventRecorder
	// Spend reads spend from the usage store; nil until the store is wired in.
	Spend BudgetSpendReader
	// SpendInterval is how often spend is re-read (a time-based recheck: spend changes without
	// any Kubernetes event). Zero means one minute.
	SpendInterval time.Duration
}

// +kubebuilder:rbac:groups=ai.nself.org,resources=aibudgets,verbs=get;list;watch
// +kubebuilder:rbac:groups=ai.nself.org,resources=aibudgets/status,verbs=get;update;patch

// Reconcile gets the budget, defers one status patch and sets the status from the verdict and,
// if wired, the usage store.
func (r *AIBudgetReconciler) Reconcile(ctx context.Context, req ctrl.Request) (_ ctrl.Result, reterr error) {
	b := &aiv1alpha1.AIBudget{}
	if err := r.Get(ctx, req.NamespacedName, b); err != nil {
		if apierrors.IsNotFound(err) {
			r.Trigger.Publish()
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("failed to get AIBudget: %w", err)
	}
	logger := log.FromContext(ctx).WithValues("aibudget", klog.KObj(b))
	ctx = log.IntoContext(ctx, logger)

	base := b.DeepCopy()
	synced := false
	defer func() {
		if synced && reterr == nil {
			b.Status.ObservedGeneration = b.Generation
		}
		wrote, err := patchStatus(ctx, r.Client, base, b, &base.Status, &b.Status)
		if err != nil {
			reterr = errors.Join(reterr, err)
			return
		}
		if wrote {
			recordReadyTransition(r.Recorder, b, readyCondition(base.Status.Conditions), b.Status.Conditions, "")
			r.recordSpendTransition(b, base.Status.Conditions)
		}
	}()
	synced = r.reconcile(b)
	if r.Spend == nil {
		return ctrl.Result{}, nil
	}
	if err := r.syncSpend(ctx, b); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: cmp.Or(r.SpendInterval, time.Minute)}, nil
}

func (r *AIBudgetReconciler) reconcile(b *aiv1alpha1.AIBudget) bool {
	res, ok := r.Results.Get(ObjectRef{Kind: compiler.KindAIBudget, Namespace: b.Namespace, Name: b.Name})
	if !ok || res.UID != b.UID || res.Generation != b.Generation {
		setPendingCondition(&b.Status.Conditions, b.Generation)
		r.Trigger.Publish()
		return false
	}
	setReadyCondition(&b.Status.Conditions, b.Generation, res.Problems)
	return true
}

// syncSpend copies the usage store's view into the status. LastUpdated is set only when the
// figures change, so that an idle budget causes no status writes.
func (r *AIBudgetReconciler) syncSpend(ctx context.Context, b *aiv1alpha1.AIBudget) error {
	s, err := r.Spend.ReadSpend(ctx, b)
	if err != nil {
		for _, t := range []string{aiv1alpha1.ConditionWarning, aiv1alpha1.ConditionExceeded} {
			meta.SetStatusCondition(&b.Status.Conditions, metav1.Condition{
				Type: t, Status: metav1.ConditionUnknown, ObservedGeneration: b.Generation,
				Reason: aiv1alpha1.ReasonUsageUnavailable, Message: "spend could not be read from the usage store",
			})
		}
		return fmt.Errorf("failed to read spend: %w", err)
	}
	before := b.Status.DeepCopy()
	b.Status.Spent, b.Status.Remaining, b.Status.Forecast = s.Spent, s.Remaining, s.Forecast
	b.Status.SubjectsOverBudget, b.Status.SubjectsOverBudgetCount = s.SubjectsOverBudget, s.SubjectsOverBudgetCount
	setFlag := func(t string, on bool, reasonOn, msgOn string) {
		c := metav1.Condition{Type: t, Status: metav1.ConditionFalse, ObservedGeneration: b.Generation,
			Reason: aiv1alpha1.ReasonWithinBudget, Message: "every subject is below it"}
		if on {
			c.Status, c.Reason, c.Message = metav1.ConditionTrue, reasonOn, msgOn
		}
		meta.SetStatusCondition(&b.Status.Conditions, c)
	}
	setFlag(aiv1alpha1.ConditionWarning, s.Warning, aiv1alpha1.ReasonThresholdReached, "a subject crossed an alert threshold")
	setFlag(aiv1alpha1.ConditionExceeded, s.Exceeded, aiv1alpha1.ReasonBudgetExceeded, "a subject reached a limit")
	if b.Status.LastUpdated == nil || !equality.Semantic.DeepEqual(withoutTime(before), withoutTime(&b.Status)) {
		now := metav1.Now()
		b.Status.LastUpdated = &now
	}
	return nil
}

// recordSpendTransition emits a warning when Exceeded or Warning turns True.
func (r *AIBudgetReconciler) recordSpendTransition(b *aiv1alpha1.AIBudget, before []metav1.Condition) {
	if r.Recorder == nil {
		return
	}
	for _, t := range []string{aiv1alpha1.ConditionExceeded, aiv1alpha1.ConditionWarning} {
		now := meta.FindStatusCondition(b.Status.Conditions, t)
		if now == nil || now.Status != metav1.ConditionTrue || meta.IsStatusConditionTrue(before, t) {
			continue
		}
		r.Recorder.Eventf(b, nil, "Warning", now.Reason, "Measure", "%s", now.Message)
	}
}

// SetupWithManager registers the controller: AIBudgets (spec changes only) and the publisher's
// verdicts.
func (r *AIBudgetReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&aiv1alpha1.AIBudget{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WatchesRawSource(source.Channel(r.Verdicts, &handler.EnqueueRequestForObject{})).
		Named("aibudget").
		// Failed passes (mostly an unreachable usage store) back off no further than the spend
		// interval, so that a recovered store shows in the status within one interval, not after
		// the default cap of 1000 s.
		WithOptions(controller.Options{RateLimiter: workqueue.NewTypedMaxOfRateLimiter(
			workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](5*time.Millisecond, cmp.Or(r.SpendInterval, time.Minute)),
			&workqueue.TypedBucketRateLimiter[reconcile.Request]{Limiter: rate.NewLimiter(rate.Limit(10), 100)},
		)}).
		Complete(r)
}

// withoutTime returns a copy of s without LastUpdated, to compare the figures alone.
func withoutTime(s *aiv1alpha1.AIBudgetStatus) *aiv1alpha1.AIBudgetStatus {
	c := s.DeepCopy()
	c.LastUpdated = nil
	return c
}
