package controllers

import (
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"

	aiv1alpha1 "github.com/nself-org/ai-orchestration/api/v1alpha1"
	"github.com/nself-org/ai-orchestration/internal/compiler"
)

// maxConditionMessage bounds a Ready message built from many problems; the API allows 32 KiB,
// but `kubectl describe` readers want the first few reasons, not all of them.
const maxConditionMessage = 1024

// Event reasons beyond the condition reasons of api/v1alpha1 (which are reused for warnings).
const (
	// EventReasonRecovered is emitted when an object becomes Ready again after a problem.
	EventReasonRecovered = "Recovered"
)

// Event actions (events.k8s.io "action": what the controller was doing).
const (
	actionCompile = "Compile"
)

// setReadyCondition sets Ready from the object's compiler problems: True when there are none,
// otherwise False with the reason of the first problem that excludes the object (or the first
// problem, when the object is published only in part) and every message joined.
func setReadyCondition(conds *[]metav1.Condition, generation int64, problems []compiler.Problem) {
	if len(problems) == 0 {
		meta.SetStatusCondition(conds, metav1.Condition{
			Type: aiv1alpha1.ConditionReady, Status: metav1.ConditionTrue, ObservedGeneration: generation,
			Reason: aiv1alpha1.ReasonReady, Message: "published in the snapshot",
		})
		return
	}
	reason := problems[0].Reason
	for _, p := range problems {
		if p.Excluded {
			reason = p.Reason
			break
		}
	}
	msgs := make([]string, 0, len(problems))
	for _, p := range problems {
		msgs = append(msgs, p.Message)
	}
	msg := strings.Join(msgs, "; ")
	if len(msg) > maxConditionMessage {
		msg = msg[:maxConditionMessage-3] + "..."
	}
	meta.SetStatusCondition(conds, metav1.Condition{
		Type: aiv1alpha1.ConditionReady, Status: metav1.ConditionFalse, ObservedGeneration: generation,
		Reason: reason, Message: msg,
	})
}

// setPendingCondition marks an object that no publish has compiled yet, so that `kubectl get`
// shows it is being worked on. It never overwrites an existing Ready condition: an object whose
// spec just changed keeps its last verdict (with an older observedGeneration) until the new one.
func setPendingCondition(conds *[]metav1.Condition, generation int64) {
	if meta.FindStatusCondition(*conds, aiv1alpha1.ConditionReady) != nil {
		return
	}
	meta.SetStatusCondition(conds, metav1.Condition{
		Type: aiv1alpha1.ConditionReady, Status: metav1.ConditionUnknown, ObservedGeneration: generation,
		Reason: aiv1alpha1.ReasonPending, Message: "waiting for the snapshot to be compiled",
	})
}

// recordReadyTransition emits an event when Ready turns False (or changes reason while False) and
// when it turns True again after being False: the transitions users act on. Steady states and
// the first True of a new object emit nothing.
func recordReadyTransition(rec events.EventRecorder, obj runtime.Object, before *metav1.Condition,
	after []metav1.Condition, extra string,
) {
	now := meta.FindStatusCondition(after, aiv1alpha1.ConditionReady)
	if rec == nil || now == nil {
		return
	}
	switch {
	case now.Status == metav1.ConditionFalse &&
		(before == nil || before.Status != metav1.ConditionFalse || before.Reason != now.Reason):
		rec.Eventf(obj, nil, "Warning", now.Reason, actionCompile, "%s%s", now.Message, extra)
	case now.Status == metav1.ConditionTrue && before != nil && before.Status == metav1.ConditionFalse:
		rec.Eventf(obj, nil, "Normal", EventReasonRecovered, actionCompile, "%s", now.Message)
	}
}

// readyCondition returns a copy of the Ready condition (nil when absent), to compare after a pass.
func readyCondition(conds []metav1.Condition) *metav1.Condition {
	c := meta.FindStatusCondition(conds, aiv1alpha1.ConditionReady)
	if c == nil {
		return nil
	}
	cp := *c
	return &cp
}
