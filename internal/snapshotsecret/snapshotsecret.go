// Package snapshotsecret defines how the compiled configuration snapshot is stored in Kubernetes
// Secrets, and follows it there: every data-plane replica calls [Watch]. The manager writes it with
// internal/snapshotpublish, which also reads it back for tools and tests; that side uses
// controller-runtime's client and stays out of this package, so that the data plane links neither it
// nor the generated clientset (see internal/kubeclient).
//
// A Secret (not a ConfigMap) because the snapshot carries provider API keys. The data is the gzip
// JSON of [config.Encode]. etcd refuses objects over ~1.5 MiB, so a snapshot whose encoding exceeds
// [MaxPartBytes] is split into parts: the head Secret `<name>` holds the first part and the
// annotations [AnnotationParts] and [AnnotationHash]; `<name>-1`, `<name>-2`, … hold the rest, each
// annotated with the same hash. Parts are written before the head, so a reader that sees a head
// always finds its parts (or parts of a newer snapshot, detected by the hash, never a mix).
//
// The names are fixed ([PartNames]) rather than found by a label selector, so the data plane's
// Role can grant get/list/watch on exactly these names (RBAC resourceNames), nothing else.
package snapshotsecret

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"

	"github.com/nself-org/ai-orchestration/dataplane/config"
)

const (
	// DefaultName is the name of the head snapshot Secret unless the manager is told otherwise.
	DefaultName = "ai-orchestration-snapshot"

	// DataKey is the data key holding (a part of) the gzip JSON snapshot.
	DataKey = "snapshot.json.gz"

	// AnnotationHash carries [config.Snapshot.Hash] on the head and on every part; a reader only
	// assembles parts whose hash equals the head's.
	AnnotationHash = "ai.nself.org/snapshot-hash"
	// AnnotationParts carries the total number of Secrets (head included) on the head.
	AnnotationParts = "ai.nself.org/snapshot-parts"
	// AnnotationPart carries the index of a part (0 = head).
	AnnotationPart = "ai.nself.org/snapshot-part"

	// LabelComponent marks snapshot Secrets so that `kubectl get secrets -l` finds them; readers
	// never select by it (RBAC by resource name cannot authorize a label-selected list).
	LabelComponent = "app.kubernetes.io/component"
	// LabelComponentValue is the value of [LabelComponent] on snapshot Secrets.
	LabelComponentValue = "ai-orchestration-snapshot"
	// LabelManagedBy names the writer.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// LabelManagedByValue is the value of [LabelManagedBy] on snapshot Secrets.
	LabelManagedByValue = "ai-orchestration-manager"

	// MaxPartBytes is the size of one part. etcd's default request limit is 1.5 MiB and Secret
	// data is stored as raw bytes, so 900 KiB leaves room for metadata and managed fields.
	MaxPartBytes = 900 << 10

	// MaxParts bounds the number of Secrets (head included): ~7 MiB of gzip JSON, far beyond
	// 10 000 budgets. The data plane's Role lists exactly these names, see [PartNames].
	MaxParts = 8
)

// ErrPartMismatch means a part belongs to another snapshot than its head: a writer is between
// writing the parts of a newer snapshot and its head. The next head update resolves it.
var ErrPartMismatch = errors.New("snapshot part does not belong to the head's snapshot")

// PartName returns the name of part i (0 is the head itself).
func PartName(name string, i int) string {
	if i == 0 {
		return name
	}
	return name + "-" + strconv.Itoa(i)
}

// PartNames returns every name the snapshot may use, head first: the resourceNames of the data
// plane's Role.
func PartNames(name string) []string {
	names := make([]string, MaxParts)
	for i := range names {
		names[i] = PartName(name, i)
	}
	return names
}

// Assemble joins the head and its parts (fetched with get) and decodes the result, verifying that
// every part and the decoded snapshot carry the head's hash.
func Assemble(head *corev1.Secret, get func(name string) (*corev1.Secret, error)) (*config.Snapshot, error) {
	hash := head.Annotations[AnnotationHash]
	parts := 1
	if v, ok := head.Annotations[AnnotationParts]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxParts {
			return nil, fmt.Errorf("snapshot Secret %s/%s has an invalid %s annotation %q",
				head.Namespace, head.Name, AnnotationParts, v)
		}
		parts = n
	}
	data, ok := head.Data[DataKey]
	if !ok {
		return nil, fmt.Errorf("snapshot Secret %s/%s has no %q data key", head.Namespace, head.Name, DataKey)
	}
	if parts > 1 {
		// Copy: the head's bytes belong to an informer cache and must not be appended to.
		data = bytes.Clone(data)
	}
	for i := 1; i < parts; i++ {
		part, err := get(PartName(head.Name, i))
		if err != nil {
			return nil, err
		}
		if part.Annotations[AnnotationHash] != hash {
			return nil, fmt.Errorf("failed to assemble snapshot %s/%s: part %s has hash %q, head %q: %w",
				head.Namespace, head.Name, part.Name, part.Annotations[AnnotationHash], hash, ErrPartMismatch)
		}
		data = append(data, part.Data[DataKey]...)
	}
	snap, err := config.Decode(data)
	if err != nil {
		return nil, fmt.Errorf("failed to decode snapshot Secret %s/%s: %w", head.Namespace, head.Name, err)
	}
	if hash != "" && snap.Hash != hash {
		return nil, fmt.Errorf("snapshot Secret %s/%s is annotated with hash %q but holds %q",
			head.Namespace, head.Name, hash, snap.Hash)
	}
	return snap, nil
}
