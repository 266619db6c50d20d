package controllers

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	aiv1alpha1 "github.com/nself-org/ai-orchestration/api/v1alpha1"
	"github.com/nself-org/ai-orchestration/internal/compiler"
	"github.com/nself-org/ai-orchestration/internal/snapshotpublish"
	"github.com/nself-org/ai-orchestration/internal/snapshotsecret"
)

var (
	publishTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ai_orchestration_snapshot_publish_total",
		Help: "Snapshot publish passes by result: written (the snapshot Secret changed), unchanged, error.",
	}, []string{"result"})
	publishDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "ai_orchestration_snapshot_publish_duration_seconds",
		Help:    "Time to list, compile and write the snapshot.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
	})
	snapshotProblems = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "ai_orchestration_snapshot_problems",
		Help: "Problems reported by the last compilation (objects left out or published in part).",
	})
)

func init() {
	metrics.Registry.MustRegister(publishTotal, publishDuration, snapshotProblems)
}

// PublishTrigger wakes the [SnapshotPublisher]. The per-kind reconcilers call it after a change
// the snapshot has not seen yet; it never blocks.
type PublishTrigger struct {
	ch  chan event.GenericEvent
	obj client.Object
}

// NewPublishTrigger returns a trigger whose events name the snapshot Secret ns/name, the one key
// the publisher reconciles.
func NewPublishTrigger(ns, name string) *PublishTrigger {
	return &PublishTrigger{
		ch:  make(chan event.GenericEvent, 1024),
		obj: &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}},
	}
}

// Publish requests a publish pass. Dropping the event when the buffer is full is safe: the
// buffered events are all for the same key and are consumed after this call, so the pass they
// cause sees the change that prompted this one.
func (t *PublishTrigger) Publish() {
	select {
	case t.ch <- event.GenericEvent{Object: t.obj}:
	default:
	}
}

// SnapshotPublisher is the single reconciler that compiles every AIProvider, AIBudget and
// AIRoutePolicy (plus the Secrets they use) into one snapshot, writes it to the snapshot
// Secret when its hash changed, and hands each object's verdict to its kind's reconciler.
type SnapshotPublisher struct {
	// Client must read Secrets from the API server (the manager disables caching for Secrets).
	Client client.Client
	// Namespace and Name locate the snapshot Secret (the head; parts are named after it).
	Namespace, Name string
	// Results receives the verdict of every compilation that was published.
	Results *Results
	// Providers, Budgets and Routes are the GenericEvent channels of the per-kind reconcilers;
	// the publisher sends the objects whose verdict changed.
	Providers, Budgets, Routes chan<- event.GenericEvent
	// Recorder emits events on client API-key Secrets whose problems change (they have no status).
	Recorder events.EventRecorder

	// own tells the publisher's writes of the snapshot Secrets from anyone else's, which it repairs.
	own ownWrites
}

// +kubebuilder:rbac:groups=ai.nself.org,resources=aiproviders;aibudgets;airoutepolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups="",namespace=ai-orchestration-system,resources=secrets,verbs=create;update;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile compiles and publishes. Every request has the same key (the snapshot Secret), so
// the workqueue collapses bursts of changes into one pass.
func (r *SnapshotPublisher) Reconcile(ctx context.Context, _ ctrl.Request) (_ ctrl.Result, reterr error) {
	start := time.Now()
	logger := log.FromContext(ctx)
	defer func() {
		publishDuration.Observe(time.Since(start).Seconds())
		if reterr != nil {
			publishTotal.WithLabelValues("error").Inc()
		}
	}()

	in, err := r.gather(ctx)
	if err != nil {
		return ctrl.Result{}, err
	}
	res := compiler.Compile(in)
	changed, err := snapshotpublish.Write(ctx, recordingClient{Client: r.Client, own: &r.own}, r.Namespace, r.Name, res.Snapshot)
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("failed to publish snapshot: %w", err)
	}
	snapshotProblems.Set(float64(len(res.Problems)))
	if changed {
		publishTotal.WithLabelValues("written").Inc()
		logger.Info("published snapshot", "hash", res.Snapshot.Hash, "providers", len(res.Snapshot.Providers),
			"budgets", len(res.Snapshot.Budgets), "routes", len(res.Snapshot.Routes),
			"apiKeys", len(res.Snapshot.APIKeys), "problems", len(res.Problems), "duration", time.Since(start))
	} else {
		publishTotal.WithLabelValues("unchanged").Inc()
	}
	// Verdicts are handed out only once the snapshot they describe is written: Ready means
	// "the data plane can load it".
	return ctrl.Result{}, r.distribute(ctx, in, res)
}

// gather lists every object of our kinds and the Secrets the compiler needs: each provider's
// referenced Secret and every client API-key Secret. Secrets are read from the API server;
// nothing else in the cluster is read.
func (r *SnapshotPublisher) gather(ctx context.Context) (compiler.Input, error) {
	var in compiler.Input
	var providers aiv1alpha1.AIProviderList
	if err := r.Client.List(ctx, &providers); err != nil {
		return in, fmt.Errorf("failed to list AIProviders: %w", err)
	}
	var budgets aiv1alpha1.AIBudgetList
	if err := r.Client.List(ctx, &budgets); err != nil {
		return in, fmt.Errorf("failed to list AIBudgets: %w", err)
	}
	var routes aiv1alpha1.AIRoutePolicyList
	if err := r.Client.List(ctx, &routes); err != nil {
		return in, fmt.Errorf("failed to list AIRoutePolicies: %w", err)
	}
	in.Providers, in.Budgets, in.Routes = providers.Items, budgets.Items, routes.Items

	var keys corev1.SecretList
	if err := r.Client.List(ctx, &keys, client.MatchingLabels{aiv1alpha1.LabelAPIKey: "true"}); err != nil {
		return in, fmt.Errorf("failed to list client API-key Secrets: %w", err)
	}
	in.Secrets = keys.Items
	seen := map[string]bool{}
	for i := range keys.Items {
		seen[objectKey(keys.Items[i].Namespace, keys.Items[i].Name)] = true
	}
	for i := range providers.Items {
		p := &providers.Items[i]
		ref := p.Spec.APIKeySecretRef
		if ref == nil || ref.Name == "" || seen[objectKey(p.Namespace, ref.Name)] {
			continue
		}
		seen[objectKey(p.Namespace, ref.Name)] = true
		var sec corev1.Secret
		switch err := r.Client.Get(ctx, client.ObjectKey{Namespace: p.Namespace, Name: ref.Name}, &sec); {
		case apierrors.IsNotFound(err):
			// The compiler reports SecretNotFound on the provider.
		case err != nil:
			return in, fmt.Errorf("failed to get Secret %s/%s of AIProvider %s: %w", p.Namespace, ref.Name, p.Name, err)
		default:
			in.Secrets = append(in.Secrets, sec)
		}
	}
	return in, nil
}

// distribute stores each object's verdict and sends the objects whose verdict changed to their
// kind's reconciler. Client API-key Secrets have no status, so their problems become events.
func (r *SnapshotPublisher) distribute(ctx context.Context, in compiler.Input, res compiler.Result) error {
	next := map[ObjectRef]ObjectResult{}
	objects := map[ObjectRef]client.Object{}
	models := map[string]int32{}
	for _, p := range res.Snapshot.Providers {
		models[p.Name] = int32(len(p.Models))
	}
	targets := map[string]int32{}
	for _, rt := range res.Snapshot.Routes {
		targets[rt.Name] = int32(len(rt.Targets))
	}
	for i := range in.Providers {
		o := &in.Providers[i]
		ref := ObjectRef{Kind: compiler.KindAIProvider, Namespace: o.Namespace, Name: o.Name}
		next[ref] = ObjectResult{UID: o.UID, Generation: o.Generation, Problems: res.ProblemsFor(ref.Kind, ref.Namespace, ref.Name),
			Count: models[objectKey(o.Namespace, o.Name)]}
		objects[ref] = o
	}
	for i := range in.Budgets {
		o := &in.Budgets[i]
		ref := ObjectRef{Kind: compiler.KindAIBudget, Namespace: o.Namespace, Name: o.Name}
		next[ref] = ObjectResult{UID: o.UID, Generation: o.Generation, Problems: res.ProblemsFor(ref.Kind, ref.Namespace, ref.Name)}
		objects[ref] = o
	}
	for i := range in.Routes {
		o := &in.Routes[i]
		ref := ObjectRef{Kind: compiler.KindAIRoutePolicy, Namespace: o.Namespace, Name: o.Name}
		next[ref] = ObjectResult{UID: o.UID, Generation: o.Generation, Problems: res.ProblemsFor(ref.Kind, ref.Namespace, ref.Name),
			Count: targets[objectKey(o.Namespace, o.Name)]}
		objects[ref] = o
	}
	for i := range in.Secrets {
		o := &in.Secrets[i]
		if o.Labels[aiv1alpha1.LabelAPIKey] != "true" {
			continue
		}
		ref := ObjectRef{Kind: compiler.KindSecret, Namespace: o.Namespace, Name: o.Name}
		next[ref] = ObjectResult{UID: o.UID, Generation: o.Generation, Problems: res.ProblemsFor(ref.Kind, ref.Namespace, ref.Name)}
		objects[ref] = o
	}

	for _, ref := range r.Results.Replace(next) {
		obj := objects[ref]
		var ch chan<- event.GenericEvent
		switch ref.Kind {
		case compiler.KindAIProvider:
			ch = r.Providers
		case compiler.KindAIBudget:
			ch = r.Budgets
		case compiler.KindAIRoutePolicy:
			ch = r.Routes
		case compiler.KindSecret:
			if probs := next[ref].Problems; len(probs) > 0 && r.Recorder != nil {
				r.Recorder.Eventf(obj, nil, "Warning", probs[0].Reason, actionCompile,
					"client API-key Secret left out of the snapshot: %s", probs[0].Message)
			}
			continue
		}
		if ch == nil {
			continue
		}
		select {
		case ch <- event.GenericEvent{Object: obj}:
		case <-ctx.Done():
			return fmt.Errorf("failed to hand out compile results: %w", ctx.Err())
		}
	}
	return nil
}

// isSnapshotSecret reports whether ns/name is the snapshot's head or one of its parts.
func (r *SnapshotPublisher) isSnapshotSecret(ns, name string) bool {
	if ns != r.Namespace {
		return false
	}
	for _, n := range snapshotsecret.PartNames(r.Name) {
		if n == name {
			return true
		}
	}
	return false
}
