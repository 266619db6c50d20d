package snapshotpublish

import (
	"encoding/hex"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/internal/snapshotsecret"
)

const (
	testNS   = "ai-orchestration-system"
	testName = snapshotsecret.DefaultName
)

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

func newFakeClient(objs ...client.Object) client.Client {
	return fake.NewClientBuilder().WithObjects(objs...).Build()
}

func getSecret(t *testing.T, c client.Client, name string) *corev1.Secret {
	t.Helper()
	sec := &corev1.Secret{}
	require.NoError(t, c.Get(t.Context(), client.ObjectKey{Namespace: testNS, Name: name}, sec))
	return sec
}

func TestWriteStoresASmallSnapshotInOneSecretAndReadsItBack(t *testing.T) {
	c := newFakeClient()
	snap := newSnapshot(t, 3, 32, 1)

	changed, err := Write(t.Context(), c, testNS, testName, snap)
	require.NoError(t, err)
	require.True(t, changed)

	head := getSecret(t, c, testName)
	require.Equal(t, snap.Hash, head.Annotations[snapshotsecret.AnnotationHash])
	require.Equal(t, "1", head.Annotations[snapshotsecret.AnnotationParts])
	require.Equal(t, snapshotsecret.LabelComponentValue, head.Labels[snapshotsecret.LabelComponent])
	require.Contains(t, head.Data, snapshotsecret.DataKey)
	err = c.Get(t.Context(), client.ObjectKey{Namespace: testNS, Name: snapshotsecret.PartName(testName, 1)}, &corev1.Secret{})
	require.True(t, apierrors.IsNotFound(err), "a small snapshot must not create parts")

	got, err := Read(t.Context(), c, testNS, testName)
	require.NoError(t, err)
	require.Equal(t, snap, got)
}

func TestWriteTwiceWithTheSameSnapshotChangesNothing(t *testing.T) {
	for name, tc := range map[string]struct{ providers, keyBytes int }{
		"a snapshot in one Secret":    {providers: 2, keyBytes: 32},
		"a snapshot sharded in three": {providers: 40, keyBytes: 25_000},
	} {
		t.Run(name, func(t *testing.T) {
			c := newFakeClient()
			snap := newSnapshot(t, tc.providers, tc.keyBytes, 2)
			_, err := Write(t.Context(), c, testNS, testName, snap)
			require.NoError(t, err)
			before := getSecret(t, c, testName).ResourceVersion

			changed, err := Write(t.Context(), c, testNS, testName, snap)
			require.NoError(t, err)
			require.False(t, changed)
			require.Equal(t, before, getSecret(t, c, testName).ResourceVersion)
		})
	}
}

func TestWriteShardsALargeSnapshotAndDeletesStalePartsWhenItShrinks(t *testing.T) {
	c := newFakeClient()
	// 40 keys of 50 000 hex characters: ~2 MB of JSON that gzip can only halve → 2 parts or more.
	big := newSnapshot(t, 40, 25_000, 3)
	encoded, err := config.Encode(big)
	require.NoError(t, err)
	wantParts := (len(encoded) + snapshotsecret.MaxPartBytes - 1) / snapshotsecret.MaxPartBytes
	require.GreaterOrEqual(t, wantParts, 2, "the test snapshot must need several parts")

	changed, err := Write(t.Context(), c, testNS, testName, big)
	require.NoError(t, err)
	require.True(t, changed)
	head := getSecret(t, c, testName)
	require.Equal(t, strconv.Itoa(wantParts), head.Annotations[snapshotsecret.AnnotationParts])
	for i := 1; i < wantParts; i++ {
		part := getSecret(t, c, snapshotsecret.PartName(testName, i))
		require.Equal(t, big.Hash, part.Annotations[snapshotsecret.AnnotationHash])
		require.Equal(t, strconv.Itoa(i), part.Annotations[snapshotsecret.AnnotationPart])
		require.NotContains(t, part.Annotations, snapshotsecret.AnnotationParts)
		require.LessOrEqual(t, len(part.Data[snapshotsecret.DataKey]), snapshotsecret.MaxPartBytes)
	}
	got, err := Read(t.Context(), c, testNS, testName)
	require.NoError(t, err)
	require.Equal(t, big.Hash, got.Hash)
	require.Equal(t, big.Providers, got.Providers)

	small := newSnapshot(t, 1, 16, 4)
	changed, err = Write(t.Context(), c, testNS, testName, small)
	require.NoError(t, err)
	require.True(t, changed)
	for i := 1; i < wantParts; i++ {
		key := client.ObjectKey{Namespace: testNS, Name: snapshotsecret.PartName(testName, i)}
		err := c.Get(t.Context(), key, &corev1.Secret{})
		require.True(t, apierrors.IsNotFound(err), "part %d must be deleted once unused", i)
	}
	got, err = Read(t.Context(), c, testNS, testName)
	require.NoError(t, err)
	require.Equal(t, small, got)
}

func TestWriteRepairsASnapshotSecretSomeoneEdited(t *testing.T) {
	c := newFakeClient()
	snap := newSnapshot(t, 2, 32, 5)
	_, err := Write(t.Context(), c, testNS, testName, snap)
	require.NoError(t, err)
	head := getSecret(t, c, testName)
	head.Data[snapshotsecret.DataKey] = []byte("garbage")
	head.Annotations["team.example/owner"] = "platform"
	require.NoError(t, c.Update(t.Context(), head))

	changed, err := Write(t.Context(), c, testNS, testName, snap)
	require.NoError(t, err)
	require.True(t, changed)
	got, err := Read(t.Context(), c, testNS, testName)
	require.NoError(t, err)
	require.Equal(t, snap, got)
	require.Equal(t, "platform", getSecret(t, c, testName).Annotations["team.example/owner"],
		"annotations added by others are kept")
}

func TestWriteRefusesAnUnsealedSnapshot(t *testing.T) {
	for name, snap := range map[string]*config.Snapshot{
		"a nil snapshot":            nil,
		"a snapshot without a hash": {Version: config.SchemaVersion},
	} {
		t.Run(name, func(t *testing.T) {
			changed, err := Write(t.Context(), newFakeClient(), testNS, testName, snap)
			require.ErrorContains(t, err, "not sealed")
			require.False(t, changed)
		})
	}
}

func TestReadRefusesBrokenSnapshotSecrets(t *testing.T) {
	snap := newSnapshot(t, 1, 16, 6)
	encoded, err := config.Encode(snap)
	require.NoError(t, err)
	other := newSnapshot(t, 1, 16, 7)
	otherEncoded, err := config.Encode(other)
	require.NoError(t, err)

	secret := func(name string, ann map[string]string, data []byte) *corev1.Secret {
		return &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: testNS, Name: name, Annotations: ann},
			Data:       map[string][]byte{snapshotsecret.DataKey: data},
		}
	}
	twoParts := map[string]string{snapshotsecret.AnnotationHash: snap.Hash, snapshotsecret.AnnotationParts: "2"}
	for name, tc := range map[string]struct {
		objs    []client.Object
		wantErr string
		wantIs  error
	}{
		"a missing head is reported as not found": {
			wantErr: "not found",
		},
		"a head without data is refused": {
			objs:    []client.Object{&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: testNS, Name: testName}}},
			wantErr: "has no",
		},
		"a head with an invalid part count is refused": {
			objs:    []client.Object{secret(testName, map[string]string{snapshotsecret.AnnotationParts: "zero"}, encoded)},
			wantErr: "invalid",
		},
		"a head whose data does not match its hash annotation is refused": {
			objs:    []client.Object{secret(testName, map[string]string{snapshotsecret.AnnotationHash: snap.Hash}, otherEncoded)},
			wantErr: "annotated with hash",
		},
		"corrupted data is refused": {
			objs:    []client.Object{secret(testName, nil, []byte{0x1f, 0x8b, 1, 2, 3})},
			wantErr: "failed to decode",
		},
		"a part of another snapshot is refused": {
			objs: []client.Object{
				secret(testName, twoParts, encoded[:10]),
				secret(snapshotsecret.PartName(testName, 1), map[string]string{snapshotsecret.AnnotationHash: other.Hash}, encoded[10:]),
			},
			wantIs: snapshotsecret.ErrPartMismatch,
		},
		"a missing part is refused": {
			objs: []client.Object{
				secret(testName, twoParts, encoded[:10]),
			},
			wantErr: "not found",
		},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := Read(t.Context(), newFakeClient(tc.objs...), testNS, testName)
			require.Error(t, err)
			require.Nil(t, got)
			if tc.wantIs != nil {
				require.ErrorIs(t, err, tc.wantIs)
			}
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}
