package controllers_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/internal/snapshotpublish"
	"github.com/nself-org/ai-orchestration/internal/snapshotsecret"
)

// TestTheManagerRepairsASnapshotSecretChangedOrDeletedByHand changes the snapshot Secret behind
// the running manager's back in each way a person or a tool could, and waits for the publisher
// to write back exactly the snapshot it had published (same hash, readable again).
func TestTheManagerRepairsASnapshotSecretChangedOrDeletedByHand(t *testing.T) {
	key := client.ObjectKey{Namespace: operatorNS, Name: snapshotsecret.DefaultName}
	tests := []struct {
		name string
		// damage changes the head Secret and returns the resourceVersion it left (empty: deleted).
		damage func(t *testing.T, head *corev1.Secret) string
	}{
		{
			name: "data overwritten with garbage, annotations kept",
			damage: func(t *testing.T, head *corev1.Secret) string {
				head.Data = map[string][]byte{snapshotsecret.DataKey: []byte("not gzip at all")}
				require.NoError(t, k8sClient.Update(t.Context(), head))
				return head.ResourceVersion
			},
		},
		{
			name: "hash annotation edited, data kept",
			damage: func(t *testing.T, head *corev1.Secret) string {
				head.Annotations[snapshotsecret.AnnotationHash] = "sha256:0000"
				require.NoError(t, k8sClient.Update(t.Context(), head))
				return head.ResourceVersion
			},
		},
		{
			name: "an extra data key added",
			damage: func(t *testing.T, head *corev1.Secret) string {
				head.Data["extra"] = []byte("x")
				require.NoError(t, k8sClient.Update(t.Context(), head))
				return head.ResourceVersion
			},
		},
		{
			name: "deleted",
			damage: func(t *testing.T, head *corev1.Secret) string {
				require.NoError(t, k8sClient.Delete(t.Context(), head))
				return ""
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := waitForSnapshot(t)
			head := &corev1.Secret{}
			require.NoError(t, k8sClient.Get(t.Context(), key, head))

			damagedRV := tc.damage(t, head)

			require.Eventually(t, func() bool {
				cur := &corev1.Secret{}
				switch err := k8sClient.Get(t.Context(), key, cur); {
				case apierrors.IsNotFound(err):
					return false
				case err != nil:
					t.Logf("get: %v", err)
					return false
				}
				if cur.ResourceVersion == damagedRV {
					return false
				}
				snap, err := snapshotpublish.Read(t.Context(), k8sClient, operatorNS, snapshotsecret.DefaultName)
				return err == nil && snap.Hash == before.Hash && len(cur.Data) == 1
			}, waitFor, tick, "the publisher did not restore the snapshot Secret")

			restored := &corev1.Secret{}
			require.NoError(t, k8sClient.Get(t.Context(), key, restored))
			require.Equal(t, before.Hash, restored.Annotations[snapshotsecret.AnnotationHash])
			require.Equal(t, snapshotsecret.LabelManagedByValue, restored.Labels[snapshotsecret.LabelManagedBy])
			if damagedRV == "" {
				require.NotEqual(t, head.UID, restored.UID, "a deleted Secret is created anew")
			}
		})
	}
}

// TestThePublisherDoesNotRewriteAnUntouchedSnapshotSecret guards the other side of the repair:
// the publisher's own writes must not wake it into rewriting (a write loop would show as a
// resourceVersion that keeps moving).
func TestThePublisherDoesNotRewriteAnUntouchedSnapshotSecret(t *testing.T) {
	key := client.ObjectKey{Namespace: operatorNS, Name: snapshotsecret.DefaultName}
	waitForSnapshot(t)
	first := &corev1.Secret{}
	require.NoError(t, k8sClient.Get(t.Context(), key, first))
	// A publish pass that changes nothing, then a short look for writes it could have caused.
	ctrls.Trigger.Publish()
	require.Never(t, func() bool {
		cur := &corev1.Secret{}
		return k8sClient.Get(t.Context(), key, cur) == nil && cur.ResourceVersion != first.ResourceVersion
	}, 500*time.Millisecond, tick, "an untouched snapshot Secret was rewritten")
}

// waitForSnapshot returns the published snapshot once there is one (a test run alone may start
// before the manager's first publish).
func waitForSnapshot(t *testing.T) *config.Snapshot {
	t.Helper()
	var snap *config.Snapshot
	require.Eventually(t, func() bool {
		var err error
		snap, err = snapshotpublish.Read(t.Context(), k8sClient, operatorNS, snapshotsecret.DefaultName)
		return err == nil
	}, waitFor, tick, "no snapshot was published")
	return snap
}
