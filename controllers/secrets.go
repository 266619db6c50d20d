package controllers

import (
	"context"
	"sync"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	aiv1alpha1 "github.com/nself-org/ai-orchestration/api/v1alpha1"
)

// The manager watches Secrets as metadata only (no key material in its cache, however many
// Secrets the cluster holds) and reads the few it needs from the API server when it publishes.
// A metadata event still fires on every data change, because the resourceVersion changes.

// secretToPublisher maps a Secret event to the publisher when the Secret can change the snapshot:
// it is referenced by an AIProvider (found through [IndexProviderAPIKeySecret]), it is (or was:
// updates map the old object too) a client API-key Secret, or it is the snapshot itself.
func (r *SnapshotPublisher) secretToPublisher(ctx context.Context, obj client.Object) []reconcile.Request {
	publish := []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: r.Namespace, Name: r.Name}}}
	if obj.GetLabels()[aiv1alpha1.LabelAPIKey] == "true" || r.isSnapshotSecret(obj.GetNamespace(), obj.GetName()) {
		return publish
	}
	var providers aiv1alpha1.AIProviderList
	if err := r.Client.List(ctx, &providers,
		client.MatchingFields{IndexProviderAPIKeySecret: objectKey(obj.GetNamespace(), obj.GetName())}); err != nil {
		// A map function cannot return an error; publishing is the safe side of not knowing.
		log.FromContext(ctx).Error(err, "failed to list AIProviders by Secret; publishing anyway")
		return publish
	}
	if len(providers.Items) > 0 {
		return publish
	}
	return nil
}

// snapshotSecretPredicate keeps the publisher from reacting to its own writes of the snapshot
// Secrets, and lets through every other change to them: a deletion, or a create or update made
// by someone else (a hand edit, a corrupting tool, a restore from an old backup), which the
// publisher repairs by rewriting what it would publish. Its own writes are told apart by their
// resourceVersion (see [ownWrites]); a Secret's metadata carries no content hash the watch could
// compare, and the data is not in the metadata cache. Other Secrets pass: their generation does
// not change when their data does, so no generation predicate may apply.
func (r *SnapshotPublisher) snapshotSecretPredicate() predicate.Funcs {
	foreign := func(o client.Object) bool {
		return !r.isSnapshotSecret(o.GetNamespace(), o.GetName()) || !r.own.wrote(o.GetName(), o.GetResourceVersion())
	}
	return predicate.Funcs{
		CreateFunc:  func(e event.CreateEvent) bool { return foreign(e.Object) },
		UpdateFunc:  func(e event.UpdateEvent) bool { return foreign(e.ObjectNew) },
		DeleteFunc:  func(event.DeleteEvent) bool { return true },
		GenericFunc: func(event.GenericEvent) bool { return true },
	}
}

// ownWrites remembers the resourceVersion of the last write the publisher made to each snapshot
// Secret. An event carrying another resourceVersion is someone else's change. A watch event that
// overtakes the recording of its own write only costs one pass that finds nothing to rewrite;
// a foreign change can never carry a recorded resourceVersion, so none is missed.
type ownWrites struct {
	mu sync.Mutex
	rv map[string]string // Secret name → resourceVersion of our last write
}

func (w *ownWrites) record(name, rv string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.rv == nil {
		w.rv = map[string]string{}
	}
	w.rv[name] = rv
}

func (w *ownWrites) wrote(name, rv string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	have, ok := w.rv[name]
	return ok && rv != "" && have == rv
}

// recordingClient is the client [snapshotpublish.Write] writes through: it records the
// resourceVersion of every Secret it creates or updates in its [ownWrites].
type recordingClient struct {
	client.Client
	own *ownWrites
}

func (c recordingClient) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	if err := c.Client.Create(ctx, obj, opts...); err != nil {
		return err
	}
	c.own.record(obj.GetName(), obj.GetResourceVersion())
	return nil
}

func (c recordingClient) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	if err := c.Client.Update(ctx, obj, opts...); err != nil {
		return err
	}
	c.own.record(obj.GetName(), obj.GetResourceVersion())
	return nil
}
