package snapshotsecret

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"

	"github.com/nself-org/ai-orchestration/dataplane/config"
)

// watchResync re-delivers the head periodically. Deliveries of an already loaded hash are free;
// a delivery that failed before (a part mismatch, an API error on a part) is retried by it.
const watchResync = 30 * time.Second

// Secrets reads the Secrets of one namespace. The data plane's kubeclient.Secrets satisfies it
// without linking the generated clientset; so does the clientset's CoreV1().Secrets(ns). A client
// whose watch cannot stream the initial list (client-go's fake clientset) must also have an
// IsWatchListSemanticsUnSupported method returning true, so that the informer lists first.
type Secrets interface {
	List(ctx context.Context, opts metav1.ListOptions) (*corev1.SecretList, error)
	Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error)
	Get(ctx context.Context, name string, opts metav1.GetOptions) (*corev1.Secret, error)
}

// Watch follows the snapshot in Secret `name` of namespace ns and calls onSnapshot with every new,
// verified snapshot (once per hash, in order), and onError with every failure to watch or to
// assemble one; after an error the caller should keep serving the last good snapshot. Watch blocks
// until ctx is cancelled and then returns nil; it returns an error only when it cannot start.
// secrets must read namespace ns.
//
// The informer relists when its watch expires (410 Gone) and backs off on errors, as client-go's
// reflector does; every such error also reaches onError.
//
// The informer is restricted to the head by a metadata.name field selector and parts are fetched
// by name, so a Role granting get/list/watch on [PartNames] is all the data plane needs. Both
// callbacks run on one goroutine, never concurrently.
func Watch(ctx context.Context, secrets Secrets, ns, name string,
	onSnapshot func(*config.Snapshot), onError func(error),
) error {
	if secrets == nil || ns == "" || name == "" || onSnapshot == nil || onError == nil {
		return errors.New("failed to watch snapshot: client, namespace, name and both callbacks are required")
	}
	selector := fields.OneTermEqualSelector("metadata.name", name).String()
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (k8sruntime.Object, error) {
			o.FieldSelector = selector
			return secrets.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = selector
			return secrets.Watch(ctx, o)
		},
	}
	// As client-go's generated Secret informer builds it, minus the clientset.
	informer := cache.NewSharedIndexInformerWithOptions(cache.ToListWatcherWithWatchListSemantics(lw, secrets),
		&corev1.Secret{}, cache.SharedIndexInformerOptions{ResyncPeriod: watchResync, Indexers: cache.Indexers{}})

	if err := informer.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) {
		onError(fmt.Errorf("failed to watch snapshot Secret %s/%s: %w", ns, name, err))
	}); err != nil {
		return fmt.Errorf("failed to set the snapshot watch error handler: %w", err)
	}

	w := &watcher{ctx: ctx, secrets: secrets, ns: ns, name: name, onSnapshot: onSnapshot, onError: onError}
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    w.onHead,
		UpdateFunc: func(_, obj any) { w.onHead(obj) },
		DeleteFunc: w.onDelete,
	}); err != nil {
		return fmt.Errorf("failed to add the snapshot event handler: %w", err)
	}
	informer.RunWithContext(ctx)
	return nil
}

// watcher turns head events into snapshots; the informer calls it from one goroutine, so its
// state needs no lock.
type watcher struct {
	ctx        context.Context
	secrets    Secrets
	ns, name   string
	onSnapshot func(*config.Snapshot)
	onError    func(error)
	// loaded is the hash last delivered to onSnapshot.
	loaded string
}

func (w *watcher) onHead(obj any) {
	head, ok := obj.(*corev1.Secret)
	// The field selector already filters by name; the check keeps clients that ignore field
	// selectors (fakes, some proxies) from feeding us another Secret.
	if !ok || head.Name != w.name || head.Namespace != w.ns {
		return
	}
	// Every event of the head is read and verified, even when its hash annotation names the
	// loaded snapshot: data overwritten by hand under an intact annotation must be reported, not
	// skipped. Head events are rare (the manager writes only on change), so this costs nothing.
	snap, err := Assemble(head, func(n string) (*corev1.Secret, error) {
		sec, err := w.secrets.Get(w.ctx, n, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("failed to get snapshot Secret %s/%s: %w", w.ns, n, err)
		}
		return sec, nil
	})
	if err != nil {
		// Forget the hash so that the repaired head, even with the same content, is delivered
		// again and clears the error.
		w.loaded = ""
		w.onError(err)
		return
	}
	if snap.Hash == w.loaded {
		return
	}
	w.loaded = snap.Hash
	w.onSnapshot(snap)
}

func (w *watcher) onDelete(obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	if head, ok := obj.(*corev1.Secret); !ok || head.Name != w.name {
		return
	}
	// Forget the hash so that a recreated head with the same content is delivered again.
	w.loaded = ""
	w.onError(fmt.Errorf("snapshot Secret %s/%s was deleted; keeping the last snapshot", w.ns, w.name))
}
