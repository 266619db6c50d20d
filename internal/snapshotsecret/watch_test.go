package snapshotsecret

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	kubefake "k8s.io/client-go/kubernetes/fake"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nself-org/ai-orchestration/dataplane/config"
)

// eventTimeout bounds each wait for a callback; informers deliver in milliseconds.
const eventTimeout = 10 * time.Second

// watchRecorder collects Watch callbacks into channels.
type watchRecorder struct {
	snapshots chan *config.Snapshot
	errs      chan error
}

func startWatch(t *testing.T, cs kubernetes.Interface) *watchRecorder {
	t.Helper()
	rec := &watchRecorder{snapshots: make(chan *config.Snapshot, 16), errs: make(chan error, 16)}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		err := Watch(ctx, cs, testNS, DefaultName,
			func(s *config.Snapshot) { rec.snapshots <- s },
			func(err error) { rec.errs <- err })
		if err != nil {
			rec.errs <- err
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return rec
}

func (r *watchRecorder) nextSnapshot(t *testing.T) *config.Snapshot {
	t.Helper()
	select {
	case s := <-r.snapshots:
		return s
	case err := <-r.errs:
		require.FailNow(t, "expected a snapshot, got an error", "%v", err)
	case <-time.After(eventTimeout):
		require.FailNow(t, "no snapshot delivered")
	}
	return nil
}

func (r *watchRecorder) nextError(t *testing.T) error {
	t.Helper()
	select {
	case s := <-r.snapshots:
		require.FailNow(t, "expected an error, got a snapshot", "hash %s", s.Hash)
	case err := <-r.errs:
		return err
	case <-time.After(eventTimeout):
		require.FailNow(t, "no error delivered")
	}
	return nil
}

// publish writes snap with [Write] into a controller-runtime fake and mirrors the resulting
// Secrets into the clientset in the same order Write uses (parts first, head last), deleting the
// ones Write deleted.
func publish(t *testing.T, store client.Client, cs kubernetes.Interface, snap *config.Snapshot) {
	t.Helper()
	_, err := Write(t.Context(), store, testNS, DefaultName, snap)
	require.NoError(t, err)
	for i := MaxParts - 1; i >= 0; i-- {
		name := PartName(DefaultName, i)
		sec := &corev1.Secret{}
		err := store.Get(t.Context(), client.ObjectKey{Namespace: testNS, Name: name}, sec)
		if apierrors.IsNotFound(err) {
			err := cs.CoreV1().Secrets(testNS).Delete(t.Context(), name, metav1.DeleteOptions{})
			if !apierrors.IsNotFound(err) {
				require.NoError(t, err)
			}
			continue
		}
		require.NoError(t, err)
		mirrorSecret(t, cs, sec)
	}
}

func mirrorSecret(t *testing.T, cs kubernetes.Interface, sec *corev1.Secret) {
	t.Helper()
	c := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{
		Namespace: sec.Namespace, Name: sec.Name, Labels: sec.Labels, Annotations: sec.Annotations,
	}, Data: sec.Data}
	_, err := cs.CoreV1().Secrets(testNS).Update(t.Context(), c, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		_, err = cs.CoreV1().Secrets(testNS).Create(t.Context(), c, metav1.CreateOptions{})
	}
	require.NoError(t, err)
}

func TestWatchDeliversEachNewSnapshotOnceAndFollowsSharding(t *testing.T) {
	store, cs := newFakeClient(), kubefake.NewClientset()
	first := newSnapshot(t, 2, 32, 10)
	publish(t, store, cs, first)

	rec := startWatch(t, cs)
	require.Equal(t, first, rec.nextSnapshot(t), "the existing snapshot is delivered at start")

	big := newSnapshot(t, 40, 25_000, 11)
	publish(t, store, cs, big)
	got := rec.nextSnapshot(t)
	require.Equal(t, big.Hash, got.Hash)
	require.Equal(t, big.Providers, got.Providers)

	// Another Secret in the namespace and a rewrite of the same content deliver nothing; the
	// next distinct snapshot arrives next, proving nothing came in between.
	mirrorSecret(t, cs, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: testNS, Name: "unrelated"},
		Data: map[string][]byte{DataKey: []byte("x")}})
	head, err := cs.CoreV1().Secrets(testNS).Get(t.Context(), DefaultName, metav1.GetOptions{})
	require.NoError(t, err)
	head.Labels["touched"] = "yes"
	_, err = cs.CoreV1().Secrets(testNS).Update(t.Context(), head, metav1.UpdateOptions{})
	require.NoError(t, err)

	last := newSnapshot(t, 1, 16, 12)
	publish(t, store, cs, last)
	require.Equal(t, last, rec.nextSnapshot(t))
}

func TestWatchReportsBrokenOrDeletedSnapshotsAndRecovers(t *testing.T) {
	store, cs := newFakeClient(), kubefake.NewClientset()
	rec := startWatch(t, cs)

	good := newSnapshot(t, 1, 16, 20)
	publish(t, store, cs, good)
	require.Equal(t, good, rec.nextSnapshot(t))

	// A head that points at a part of another snapshot: reported, not delivered.
	big := newSnapshot(t, 40, 25_000, 21)
	publish(t, store, cs, big)
	require.Equal(t, big.Hash, rec.nextSnapshot(t).Hash)
	part, err := cs.CoreV1().Secrets(testNS).Get(t.Context(), PartName(DefaultName, 1), metav1.GetOptions{})
	require.NoError(t, err)
	part.Annotations[AnnotationHash] = "someone-else"
	_, err = cs.CoreV1().Secrets(testNS).Update(t.Context(), part, metav1.UpdateOptions{})
	require.NoError(t, err)
	head, err := cs.CoreV1().Secrets(testNS).Get(t.Context(), DefaultName, metav1.GetOptions{})
	require.NoError(t, err)
	head.Annotations[AnnotationHash] = "changed-head"
	_, err = cs.CoreV1().Secrets(testNS).Update(t.Context(), head, metav1.UpdateOptions{})
	require.NoError(t, err)
	require.ErrorIs(t, rec.nextError(t), ErrPartMismatch)

	require.NoError(t, cs.CoreV1().Secrets(testNS).Delete(t.Context(), DefaultName, metav1.DeleteOptions{}))
	require.ErrorContains(t, rec.nextError(t), "was deleted")

	recovered := newSnapshot(t, 2, 16, 22)
	publish(t, store, cs, recovered)
	require.Equal(t, recovered, rec.nextSnapshot(t))
}

func TestWatchRefusesMissingArguments(t *testing.T) {
	err := Watch(t.Context(), kubefake.NewClientset(), testNS, "", func(*config.Snapshot) {}, func(error) {})
	require.ErrorContains(t, err, "required")
}
