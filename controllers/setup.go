package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/nself-org/ai-orchestration/internal/snapshotsecret"
)

// Options configures [Setup].
type Options struct {
	// Namespace is where the snapshot Secret lives: the operator's own namespace.
	Namespace string
	// SnapshotName is the name of the snapshot Secret; default [snapshotsecret.DefaultName].
	SnapshotName string
	// Spend is the usage store's view of budgets; nil leaves AIBudget status without spend.
	Spend BudgetSpendReader
	// SpendInterval is how often each AIBudget's spend is re-read; zero means one minute.
	SpendInterval time.Duration
}

// verdictBuffer sizes the publisher → kind channels; a publish blocks only when a kind's
// controller has fallen more than this many objects behind.
const verdictBuffer = 1024

// Controllers are the reconcilers [Setup] registered, for tests that drive a pass by hand.
type Controllers struct {
	Publisher *SnapshotPublisher
	Providers *AIProviderReconciler
	Budgets   *AIBudgetReconciler
	Routes    *AIRoutePolicyReconciler
	Trigger   *PublishTrigger
}

// ManagerOptions returns the cache and client settings the controllers rely on; the caller adds
// its scheme, metrics, probes and leader election. Secrets are never cached as whole objects:
// they are read from the API server, a few per publish, and watched as metadata only, so no
// Secret data of any namespace sits in the manager's memory.
func ManagerOptions() ctrl.Options {
	return ctrl.Options{
		Cache: cache.Options{
			// Managed fields are never read and double an object's size in memory.
			DefaultTransform: cache.TransformStripManagedFields(),
		},
		Client: client.Options{
			Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}},
		},
	}
}

// Setup registers the field indexes, the three per-kind reconcilers and the snapshot publisher
// with mgr, which must be built on [ManagerOptions] (the publisher decides what to write from
// Secrets read from the API server).
func Setup(ctx context.Context, mgr ctrl.Manager, opts Options) (*Controllers, error) {
	if opts.Namespace == "" {
		return nil, errors.New("failed to set up controllers: the snapshot namespace is required")
	}
	if opts.SnapshotName == "" {
		opts.SnapshotName = snapshotsecret.DefaultName
	}
	if err := ApplyIndexing(ctx, mgr.GetFieldIndexer()); err != nil {
		return nil, err
	}

	results := NewResults()
	trigger := NewPublishTrigger(opts.Namespace, opts.SnapshotName)
	providers := make(chan event.GenericEvent, verdictBuffer)
	budgets := make(chan event.GenericEvent, verdictBuffer)
	routes := make(chan event.GenericEvent, verdictBuffer)

	publisher := &SnapshotPublisher{
		Client: mgr.GetClient(), Namespace: opts.Namespace, Name: opts.SnapshotName, Results: results,
		Providers: providers, Budgets: budgets, Routes: routes,
		Recorder: mgr.GetEventRecorder("ai-orchestration-publisher"),
	}
	c := &Controllers{Publisher: publisher, Trigger: trigger}
	if err := ctrl.NewControllerManagedBy(mgr).
		Named("snapshot-publisher").
		WatchesRawSource(source.Channel(trigger.ch, &handler.EnqueueRequestForObject{})).
		WatchesMetadata(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(publisher.secretToPublisher),
			builder.WithPredicates(publisher.snapshotSecretPredicate())).
		Complete(publisher); err != nil {
		return nil, fmt.Errorf("failed to set up the snapshot publisher: %w", err)
	}

	c.Providers = &AIProviderReconciler{
		Client: mgr.GetClient(), Results: results, Trigger: trigger, Verdicts: providers,
		Recorder: mgr.GetEventRecorder("aiprovider-controller"),
	}
	if err := c.Providers.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("failed to set up the AIProvider controller: %w", err)
	}
	c.Budgets = &AIBudgetReconciler{
		Client: mgr.GetClient(), Results: results, Trigger: trigger, Verdicts: budgets,
		Recorder: mgr.GetEventRecorder("aibudget-controller"), Spend: opts.Spend, SpendInterval: opts.SpendInterval,
	}
	if err := c.Budgets.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("failed to set up the AIBudget controller: %w", err)
	}
	c.Routes = &AIRoutePolicyReconciler{
		Client: mgr.GetClient(), Results: results, Trigger: trigger, Verdicts: routes,
		Recorder: mgr.GetEventRecorder("airoutepolicy-controller"),
	}
	if err := c.Routes.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("failed to set up the AIRoutePolicy controller: %w", err)
	}

	// Publish once on becoming leader even when no object exists, so that the data plane finds
	// an (empty) snapshot and turns ready. A RunnableFunc runs only on the leader.
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		trigger.Publish()
		<-ctx.Done()
		return nil
	})); err != nil {
		return nil, fmt.Errorf("failed to add the initial publish: %w", err)
	}
	return c, nil
}
