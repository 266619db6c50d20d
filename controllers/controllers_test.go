package controllers

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/event"

	aiv1alpha1 "github.com/nself-org/ai-orchestration/api/v1alpha1"
	"github.com/nself-org/ai-orchestration/internal/compiler"
	"github.com/nself-org/ai-orchestration/internal/snapshotpublish"
	"github.com/nself-org/ai-orchestration/internal/snapshotsecret"
)

const unitNS = "ai-orchestration-system"

// builderIndexer lets [ApplyIndexing] register its indexes on a fake client builder, so that unit
// tests index exactly as the manager does.
type builderIndexer struct{ b *fake.ClientBuilder }

func (i builderIndexer) IndexField(_ context.Context, obj client.Object, field string, fn client.IndexerFunc) error {
	i.b.WithIndex(obj, field, fn)
	return nil
}

func newFakeClient(t *testing.T, objs ...client.Object) client.Client {
	t.Helper()
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(aiv1alpha1.AddToScheme(s))
	b := fake.NewClientBuilder().WithScheme(s).WithObjects(objs...).
		WithStatusSubresource(&aiv1alpha1.AIProvider{}, &aiv1alpha1.AIBudget{}, &aiv1alpha1.AIRoutePolicy{})
	require.NoError(t, ApplyIndexing(t.Context(), builderIndexer{b}))
	return b.Build()
}

func mockProvider(name string, generation int64) *aiv1alpha1.AIProvider {
	return &aiv1alpha1.AIProvider{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: name, Generation: generation},
		Spec: aiv1alpha1.AIProviderSpec{
			Type:   aiv1alpha1.ProviderTypeMock,
			Models: []aiv1alpha1.ProviderModel{{Name: "mock-small", InputPerMillion: "1", OutputPerMillion: "2"}},
		},
	}
}

func keyedProvider(name, secret string) *aiv1alpha1.AIProvider {
	p := mockProvider(name, 1)
	p.Spec.Type = aiv1alpha1.ProviderTypeOpenAI
	p.Spec.APIKeySecretRef = &aiv1alpha1.SecretKeyRef{Name: secret, Key: "apiKey"}
	return p
}

func routeTo(name string, providers ...string) *aiv1alpha1.AIRoutePolicy {
	r := &aiv1alpha1.AIRoutePolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: name, Generation: 1}}
	for _, p := range providers {
		r.Spec.Targets = append(r.Spec.Targets, aiv1alpha1.RouteTarget{Provider: p, Model: "mock-small"})
	}
	return r
}

func drain(ch <-chan event.GenericEvent) []string {
	var names []string
	for {
		select {
		case e := <-ch:
			names = append(names, e.Object.GetName())
		default:
			return names
		}
	}
}

func TestAIProviderReconcilerReportsThePublishersVerdict(t *testing.T) {
	missing := []compiler.Problem{{Kind: compiler.KindAIProvider, Namespace: "team", Name: "p", Excluded: true,
		Reason: aiv1alpha1.ReasonSecretNotFound, Message: `Secret "k" does not exist`}}
	for name, tc := range map[string]struct {
		result      *ObjectResult
		wantStatus  metav1.ConditionStatus
		wantReason  string
		wantObsGen  int64
		wantModels  int32
		wantPublish bool
		wantEvent   string
	}{
		"a provider never compiled is Pending and wakes the publisher": {
			wantStatus: metav1.ConditionUnknown, wantReason: aiv1alpha1.ReasonPending, wantPublish: true,
		},
		"a verdict for an older generation is not trusted": {
			result:     &ObjectResult{Generation: 1, Count: 1},
			wantStatus: metav1.ConditionUnknown, wantReason: aiv1alpha1.ReasonPending, wantPublish: true,
		},
		"a verdict about an earlier object of the same name is not trusted": {
			result:     &ObjectResult{UID: "deleted-one", Generation: 2, Count: 1},
			wantStatus: metav1.ConditionUnknown, wantReason: aiv1alpha1.ReasonPending, wantPublish: true,
		},
		"a clean verdict makes it Ready with its model count": {
			result:     &ObjectResult{Generation: 2, Count: 1},
			wantStatus: metav1.ConditionTrue, wantReason: aiv1alpha1.ReasonReady, wantObsGen: 2, wantModels: 1,
		},
		"a problem makes it not Ready and warns once, naming the policies that use it": {
			result:     &ObjectResult{Generation: 2, Problems: missing},
			wantStatus: metav1.ConditionFalse, wantReason: aiv1alpha1.ReasonSecretNotFound, wantObsGen: 2,
			wantEvent: "Warning SecretNotFound",
		},
	} {
		t.Run(name, func(t *testing.T) {
			c := newFakeClient(t, mockProvider("p", 2), routeTo("uses-p", "p"), routeTo("other", "q"))
			results := NewResults()
			if tc.result != nil {
				results.Replace(map[ObjectRef]ObjectResult{{Kind: compiler.KindAIProvider, Namespace: "team", Name: "p"}: *tc.result})
			}
			rec := events.NewFakeRecorder(10)
			trigger := NewPublishTrigger(unitNS, snapshotsecret.DefaultName)
			r := &AIProviderReconciler{Client: c, Results: results, Trigger: trigger, Recorder: rec}

			_, err := r.Reconcile(t.Context(), ctrl.Request{NamespacedName: client.ObjectKey{Namespace: "team", Name: "p"}})
			require.NoError(t, err)

			got := &aiv1alpha1.AIProvider{}
			require.NoError(t, c.Get(t.Context(), client.ObjectKey{Namespace: "team", Name: "p"}, got))
			ready := meta.FindStatusCondition(got.Status.Conditions, aiv1alpha1.ConditionReady)
			require.NotNil(t, ready)
			require.Equal(t, tc.wantStatus, ready.Status)
			require.Equal(t, tc.wantReason, ready.Reason)
			require.Equal(t, tc.wantObsGen, got.Status.ObservedGeneration)
			require.Equal(t, tc.wantModels, got.Status.Models)
			require.Equal(t, tc.wantPublish, len(drain(trigger.ch)) > 0)
			evs := drainStrings(rec.Events)
			if tc.wantEvent == "" {
				require.Empty(t, evs)
				return
			}
			require.Len(t, evs, 1)
			require.True(t, strings.HasPrefix(evs[0], tc.wantEvent), evs[0])
			require.Contains(t, evs[0], "uses-p")
			require.NotContains(t, evs[0], "other")

			// The same verdict again: no write, no second event.
			before := got.ResourceVersion
			_, err = r.Reconcile(t.Context(), ctrl.Request{NamespacedName: client.ObjectKey{Namespace: "team", Name: "p"}})
			require.NoError(t, err)
			require.NoError(t, c.Get(t.Context(), client.ObjectKey{Namespace: "team", Name: "p"}, got))
			require.Equal(t, before, got.ResourceVersion)
			require.Empty(t, drainStrings(rec.Events))
		})
	}
}

func drainStrings(ch <-chan string) []string {
	var out []string
	for {
		select {
		case s := <-ch:
			out = append(out, s)
		default:
			return out
		}
	}
}

func TestReconcilingADeletedObjectWakesThePublisher(t *testing.T) {
	c := newFakeClient(t)
	trigger := NewPublishTrigger(unitNS, snapshotsecret.DefaultName)
	req := ctrl.Request{NamespacedName: client.ObjectKey{Namespace: "team", Name: "gone"}}
	for name, r := range map[string]interface {
		Reconcile(context.Context, ctrl.Request) (ctrl.Result, error)
	}{
		"AIProvider":    &AIProviderReconciler{Client: c, Results: NewResults(), Trigger: trigger},
		"AIBudget":      &AIBudgetReconciler{Client: c, Results: NewResults(), Trigger: trigger},
		"AIRoutePolicy": &AIRoutePolicyReconciler{Client: c, Results: NewResults(), Trigger: trigger},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := r.Reconcile(t.Context(), req)
			require.NoError(t, err)
			require.Len(t, drain(trigger.ch), 1)
		})
	}
}

func TestThePublisherWritesOnceAndHandsOutOnlyChangedVerdicts(t *testing.T) {
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "openai-key"},
		Data: map[string][]byte{"apiKey": []byte("sk-1")}}
	unrelated := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "unrelated"},
		Data: map[string][]byte{"apiKey": []byte("sk-unrelated")}}
	c := newFakeClient(t, keyedProvider("openai", "openai-key"), keyedProvider("broken", "missing"),
		routeTo("r", "mock", "nope"), mockProvider("mock", 1), secret, unrelated)
	providers, budgets, routes := make(chan event.GenericEvent, 10), make(chan event.GenericEvent, 10), make(chan event.GenericEvent, 10)
	p := &SnapshotPublisher{Client: c, Namespace: unitNS, Name: snapshotsecret.DefaultName, Results: NewResults(),
		Providers: providers, Budgets: budgets, Routes: routes}
	req := ctrl.Request{NamespacedName: client.ObjectKey{Namespace: unitNS, Name: snapshotsecret.DefaultName}}

	_, err := p.Reconcile(t.Context(), req)
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"openai", "broken", "mock"}, drain(providers))
	require.Equal(t, []string{"r"}, drain(routes))

	snap, err := snapshotpublish.Read(t.Context(), c, unitNS, snapshotsecret.DefaultName)
	require.NoError(t, err)
	require.Len(t, snap.Providers, 2, "the provider without its Secret is left out")
	require.Equal(t, "sk-1", snap.Providers[1].APIKey.Reveal())
	res, ok := p.Results.Get(ObjectRef{Kind: compiler.KindAIRoutePolicy, Namespace: "team", Name: "r"})
	require.True(t, ok)
	require.EqualValues(t, 1, res.Count)
	require.Equal(t, aiv1alpha1.ReasonProviderNotFound, res.Problems[0].Reason)

	head := &corev1.Secret{}
	require.NoError(t, c.Get(t.Context(), req.NamespacedName, head))
	_, err = p.Reconcile(t.Context(), req)
	require.NoError(t, err)
	require.Empty(t, drain(providers), "nothing changed, so no verdict is handed out")
	require.Empty(t, drain(routes))
	after := &corev1.Secret{}
	require.NoError(t, c.Get(t.Context(), req.NamespacedName, after))
	require.Equal(t, head.ResourceVersion, after.ResourceVersion, "an unchanged snapshot is not rewritten")

	t.Run("a Secret event reaches the publisher only when the Secret matters", func(t *testing.T) {
		require.Len(t, p.secretToPublisher(t.Context(), secret), 1, "referenced by a provider")
		require.Empty(t, p.secretToPublisher(t.Context(), unrelated))
		apiKey := unrelated.DeepCopy()
		apiKey.Labels = map[string]string{aiv1alpha1.LabelAPIKey: "true"}
		require.Len(t, p.secretToPublisher(t.Context(), apiKey), 1, "a client API key")
		part := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: unitNS, Name: snapshotsecret.PartName(p.Name, 2)}}
		require.Len(t, p.secretToPublisher(t.Context(), part), 1, "a snapshot part")
		require.False(t, p.snapshotSecretPredicate().Update(event.UpdateEvent{ObjectOld: head, ObjectNew: after}),
			"the publisher's own writes do not wake it")
		edited := after.DeepCopy()
		edited.ResourceVersion += "0"
		require.True(t, p.snapshotSecretPredicate().Update(event.UpdateEvent{ObjectOld: after, ObjectNew: edited}),
			"someone else's write of the snapshot wakes it, to repair it")
		require.True(t, p.snapshotSecretPredicate().Create(event.CreateEvent{Object: part}),
			"a snapshot part the publisher did not write wakes it")
		require.True(t, p.snapshotSecretPredicate().Delete(event.DeleteEvent{Object: part}))
	})
}

func TestSetReadyConditionPicksTheReasonThatExcludesTheObject(t *testing.T) {
	var conds []metav1.Condition
	setReadyCondition(&conds, 3, []compiler.Problem{
		{Reason: aiv1alpha1.ReasonUnpricedModel, Message: "model x has no price"},
		{Reason: aiv1alpha1.ReasonSecretNotFound, Message: "Secret k is missing", Excluded: true},
	})
	c := meta.FindStatusCondition(conds, aiv1alpha1.ConditionReady)
	require.Equal(t, metav1.ConditionFalse, c.Status)
	require.Equal(t, aiv1alpha1.ReasonSecretNotFound, c.Reason)
	require.Equal(t, "model x has no price; Secret k is missing", c.Message)
	require.EqualValues(t, 3, c.ObservedGeneration)

	setReadyCondition(&conds, 3, []compiler.Problem{{Reason: "R", Message: strings.Repeat("x", 5000)}})
	require.Len(t, meta.FindStatusCondition(conds, aiv1alpha1.ConditionReady).Message, maxConditionMessage)
}

// spendStub is a fixed view of the usage store for the AIBudget seam.
type spendStub struct {
	spend BudgetSpend
	err   error
}

func (s spendStub) ReadSpend(context.Context, *aiv1alpha1.AIBudget) (BudgetSpend, error) {
	return s.spend, s.err
}

func TestAIBudgetReconcilerReportsSpendFromTheUsageStore(t *testing.T) {
	budget := &aiv1alpha1.AIBudget{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "per-user", Generation: 1},
		Spec:       aiv1alpha1.AIBudgetSpec{Scope: aiv1alpha1.BudgetScopeUser, Subject: "*", Daily: "1"},
	}
	ref := ObjectRef{Kind: compiler.KindAIBudget, Namespace: "team", Name: "per-user"}
	req := ctrl.Request{NamespacedName: client.ObjectKeyFromObject(budget)}
	exceeded := BudgetSpend{
		Spent:              &aiv1alpha1.PeriodAmounts{Daily: "1.02"},
		Remaining:          &aiv1alpha1.PeriodAmounts{Daily: "0"},
		SubjectsOverBudget: []string{"user-1"}, SubjectsOverBudgetCount: 1,
		Warning: true, Exceeded: true,
	}

	t.Run("an exceeded budget says so in its conditions and warns once", func(t *testing.T) {
		c := newFakeClient(t, budget.DeepCopy())
		results := NewResults()
		results.Replace(map[ObjectRef]ObjectResult{ref: {Generation: 1}})
		rec := events.NewFakeRecorder(10)
		r := &AIBudgetReconciler{Client: c, Results: results, Trigger: NewPublishTrigger(unitNS, "s"),
			Recorder: rec, Spend: spendStub{spend: exceeded}}

		res, err := r.Reconcile(t.Context(), req)
		require.NoError(t, err)
		require.Equal(t, time.Minute, res.RequeueAfter, "spend changes without events: recheck on a timer")
		got := &aiv1alpha1.AIBudget{}
		require.NoError(t, c.Get(t.Context(), req.NamespacedName, got))
		require.True(t, meta.IsStatusConditionTrue(got.Status.Conditions, aiv1alpha1.ConditionReady))
		require.True(t, meta.IsStatusConditionTrue(got.Status.Conditions, aiv1alpha1.ConditionExceeded))
		require.True(t, meta.IsStatusConditionTrue(got.Status.Conditions, aiv1alpha1.ConditionWarning))
		require.Equal(t, aiv1alpha1.USD("1.02"), got.Status.Spent.Daily)
		require.Equal(t, []string{"user-1"}, got.Status.SubjectsOverBudget)
		require.NotNil(t, got.Status.LastUpdated)
		evs := drainStrings(rec.Events)
		require.Contains(t, evs, "Warning BudgetExceeded a subject reached a limit")

		// The same figures again: no status write (LastUpdated moves only with the figures).
		_, err = r.Reconcile(t.Context(), req)
		require.NoError(t, err)
		again := &aiv1alpha1.AIBudget{}
		require.NoError(t, c.Get(t.Context(), req.NamespacedName, again))
		require.Equal(t, got.ResourceVersion, again.ResourceVersion)
		require.Empty(t, drainStrings(rec.Events))
	})

	t.Run("an unreachable usage store makes the spend conditions Unknown and retries", func(t *testing.T) {
		c := newFakeClient(t, budget.DeepCopy())
		results := NewResults()
		results.Replace(map[ObjectRef]ObjectResult{ref: {Generation: 1}})
		r := &AIBudgetReconciler{Client: c, Results: results, Trigger: NewPublishTrigger(unitNS, "s"),
			Spend: spendStub{err: errors.New("redis: connection refused")}}

		_, err := r.Reconcile(t.Context(), req)
		require.ErrorContains(t, err, "failed to read spend")
		got := &aiv1alpha1.AIBudget{}
		require.NoError(t, c.Get(t.Context(), req.NamespacedName, got))
		exc := meta.FindStatusCondition(got.Status.Conditions, aiv1alpha1.ConditionExceeded)
		require.Equal(t, metav1.ConditionUnknown, exc.Status)
		require.Equal(t, aiv1alpha1.ReasonUsageUnavailable, exc.Reason)
		require.Zero(t, got.Status.ObservedGeneration, "a failed pass does not claim the generation")
	})
}
