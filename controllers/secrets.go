package controllers

import (
	"context"

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
// Secrets; it still reacts to their deletion (and rewrites them). Other Secrets pass: their
// generation does not change when their data does, so no generation predicate may apply.
func (r *SnapshotPublisher) snapshotSecretPredicate() predicate.Funcs {
	own := func(o client.Object) bool { return r.isSnapshotSecret(o.GetNamespace(), o.GetName()) }
	return predicate.Funcs{
		CreateFunc:  func(e event.CreateEvent) bool { return !own(e.Object) },
		UpdateFunc:  func(e event.UpdateEvent) bool { return !own(e.ObjectNew) },
		DeleteFunc:  func(event.DeleteEvent) bool { return true },
		GenericFunc: func(event.GenericEvent) bool { return true },
	}
}
