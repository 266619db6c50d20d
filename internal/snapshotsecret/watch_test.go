package snapshotsecret_test

import (
	"context"
	"encoding/hex"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	kubefake "k8s.io/client-go/kubernetes/fake"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/internal/snapshotpublish"
	"github.com/nself-org/ai-orchestration/internal/snapshotsecret"
)

const testNS = "ai-orchestration-system"

// newSnapshot returns a sealed snapshot with n providers, each with a random (incompressible)
// key of keyBytes bytes, so that tests control the encoded size. seed makes it reproducible.
func newSnapshot(t *testing.T, n, keyBytes int, seed uint64) *config.Snapshot {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed))
	s := &config.Snapshot{Budgets: []config.Budget{}, Routes: []config.Route{}, APIKeys: []config.APIKey{}}
	for i := range n {
		key := make([]byte, keyBytes)
		for j := range key {
			key[j] = byte(rng.Uint32())
		}
		s.Providers = append(s.Providers, config.Provider{
			Name: "default/p" + strconv.Itoa(i), Type: config.ProviderOpenAI,
			BaseURL: "https://api.openai.com/v1", APIKey: config.Secret(hex.EncodeToString(key)),
			Models: []config.Model{{Name: "gpt-4o-mini"}},
		})
	}
	require.NoError(t, s.Seal())
	return s
}

// fakeSecrets is the clientset fake's Secrets, saying what the fake clientset says of itself:
// its watch cannot stream the initial list, so the informer must list first.
type fakeSecrets struct{ corev1client.SecretInterface }

func (fakeSecrets) IsWatchListSemanticsUnSupported() bool { return true }

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
		err := snapshotsecret.Watch(ctx, fakeSecrets{cs.CoreV1().Secrets(testNS)}, testNS, snapshotsecret.DefaultName,
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

// publish writes snap with [snapshotpublish.Write] into a controller-runtime fake and mirrors the resulting
// Secrets into the clientset in the same order Write uses (parts first, head last), deleting the
// ones Write deleted.
func publish(t *testing.T, store client.Client, cs kubernetes.Interface, snap *config.Snapshot) {
	t.Helper()
	_, err := snapshotpublish.Write(t.Context(), store, testNS, snapshotsecret.DefaultName, snap)
	require.NoError(t, err)
	for i := snapshotsecret.MaxParts - 1; i >= 0; i-- {
		name := snapshotsecret.PartName(snapshotsecret.DefaultName, i)
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
	store, cs := fake.NewClientBuilder().Build(), kubefake.NewClientset()
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
		Data: map[string][]byte{snapshotsecret.DataKey: []byte("x")}})
	head, err := cs.CoreV1().Secrets(testNS).Get(t.Context(), snapshotsecret.DefaultName, metav1.GetOptions{})
	require.NoError(t, err)
	head.Labels["touched"] = "yes"
	_, err = cs.CoreV1().Secrets(testNS).Update(t.Context(), head, metav1.UpdateOptions{})
	require.NoError(t, err)

	last := newSnapshot(t, 1, 16, 12)
	publish(t, store, cs, last)
	require.Equal(t, last, rec.nextSnapshot(t))
}

func TestWatchReportsBrokenOrDeletedSnapshotsAndRecovers(t *testing.T) {
	store, cs := fake.NewClientBuilder().Build(), kubefake.NewClientset()
	rec := startWatch(t, cs)

	good := newSnapshot(t, 1, 16, 20)
	publish(t, store, cs, good)
	require.Equal(t, good, rec.nextSnapshot(t))

	// A head that points at a part of another snapshot: reported, not delivered.
	big := newSnapshot(t, 40, 25_000, 21)
	publish(t, store, cs, big)
	require.Equal(t, big.Hash, rec.nextSnapshot(t).Hash)
	partName := snapshotsecret.PartName(snapshotsecret.DefaultName, 1)
	part, err := cs.CoreV1().Secrets(testNS).Get(t.Context(), partName, metav1.GetOptions{})
	require.NoError(t, err)
	part.Annotations[snapshotsecret.AnnotationHash] = "someone-else"
	_, err = cs.CoreV1().Secrets(testNS).Update(t.Context(), part, metav1.UpdateOptions{})
	require.NoError(t, err)
	head, err := cs.CoreV1().Secrets(testNS).Get(t.Context(), snapshotsecret.DefaultName, metav1.GetOptions{})
	require.NoError(t, err)
	head.Annotations[snapshotsecret.AnnotationHash] = "changed-head"
	_, err = cs.CoreV1().Secrets(testNS).Update(t.Context(), head, metav1.UpdateOptions{})
	require.NoError(t, err)
	require.ErrorIs(t, rec.nextError(t), snapshotsecret.ErrPartMismatch)

	require.NoError(t, cs.CoreV1().Secrets(testNS).Delete(t.Context(), snapshotsecret.DefaultName, metav1.DeleteOptions{}))
	require.ErrorContains(t, rec.nextError(t), "was deleted")

	recovered := newSnapshot(t, 2, 16, 22)
	publish(t, store, cs, recovered)
	require.Equal(t, recovered, rec.nextSnapshot(t))
}

func TestWatchRefusesMissingArguments(t *testing.T) {
	secrets := fakeSecrets{kubefake.NewClientset().CoreV1().Secrets(testNS)}
	err := snapshotsecret.Watch(t.Context(), secrets, testNS, "", func(*config.Snapshot) {}, func(error) {})
	require.ErrorContains(t, err, "required")
}
