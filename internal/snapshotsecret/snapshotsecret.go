// Package snapshotsecret stores the compiled configuration snapshot in Kubernetes Secrets and reads
// it back: the manager writes it with [Write], tools and tests read it with [Read], and every
// data-plane replica follows it with [Watch].
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
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

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

// Write stores the snapshot in Secret `name` (and its parts) in namespace ns, writing only the
// Secrets whose content differs, parts before the head. changed reports whether anything was
// written. The snapshot must be sealed ([config.Snapshot.Seal]); its Hash is what readers trust.
//
// c should read Secrets from the API server, not from a cache, so that a decision not to write is
// made on current data (the manager disables caching for Secrets).
func Write(ctx context.Context, c client.Client, ns, name string, s *config.Snapshot) (bool, error) {
	if s == nil || s.Hash == "" {
		return false, errors.New("failed to write snapshot: it is not sealed (empty hash)")
	}
	data, err := config.Encode(s)
	if err != nil {
		return false, err
	}
	chunks := split(data, MaxPartBytes)
	if len(chunks) > MaxParts {
		return false, fmt.Errorf("failed to write snapshot: %d bytes need %d Secrets, more than the %d allowed",
			len(data), len(chunks), MaxParts)
	}

	head := &corev1.Secret{}
	oldParts := 0
	switch err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, head); {
	case apierrors.IsNotFound(err):
		head = nil
	case err != nil:
		return false, fmt.Errorf("failed to get snapshot Secret %s/%s: %w", ns, name, err)
	default:
		oldParts, _ = strconv.Atoi(head.Annotations[AnnotationParts])
	}

	changed := false
	// Parts first, highest index first, the head last: the head is what readers follow.
	for i := len(chunks) - 1; i >= 1; i-- {
		wrote, err := apply(ctx, c, ns, PartName(name, i), nil, i, len(chunks), s.Hash, chunks[i])
		if err != nil {
			return changed, err
		}
		changed = changed || wrote
	}
	wrote, err := apply(ctx, c, ns, name, head, 0, len(chunks), s.Hash, chunks[0])
	if err != nil {
		return changed, err
	}
	changed = changed || wrote

	// The previous snapshot may have had more parts; nobody reads them once the head is written.
	for i := len(chunks); i < min(oldParts, MaxParts); i++ {
		stale := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: PartName(name, i)}}
		if err := c.Delete(ctx, stale); err != nil && !apierrors.IsNotFound(err) {
			return changed, fmt.Errorf("failed to delete stale snapshot part %s/%s: %w", ns, stale.Name, err)
		}
		changed = true
	}
	return changed, nil
}

// apply creates or updates one Secret so that it holds chunk; current is the already fetched
// object (nil: fetch it). It reports whether it wrote.
func apply(ctx context.Context, c client.Client, ns, name string, current *corev1.Secret, index, parts int,
	hash string, chunk []byte,
) (bool, error) {
	if current == nil {
		current = &corev1.Secret{}
		switch err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, current); {
		case apierrors.IsNotFound(err):
			current = nil
		case err != nil:
			return false, fmt.Errorf("failed to get snapshot Secret %s/%s: %w", ns, name, err)
		}
	}

	wantAnn := map[string]string{AnnotationHash: hash, AnnotationPart: strconv.Itoa(index)}
	if index == 0 {
		wantAnn[AnnotationParts] = strconv.Itoa(parts)
	}
	wantLabels := map[string]string{LabelComponent: LabelComponentValue, LabelManagedBy: LabelManagedByValue}

	if current == nil {
		sec := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: wantLabels, Annotations: wantAnn},
			Type:       corev1.SecretTypeOpaque,
			Data:       map[string][]byte{DataKey: chunk},
		}
		if err := c.Create(ctx, sec); err != nil {
			return false, fmt.Errorf("failed to create snapshot Secret %s/%s: %w", ns, name, err)
		}
		return true, nil
	}

	if len(current.Data) == 1 && bytes.Equal(current.Data[DataKey], chunk) &&
		containsAll(current.Annotations, wantAnn) && containsAll(current.Labels, wantLabels) {
		if _, stale := current.Annotations[AnnotationParts]; index == 0 || !stale {
			return false, nil
		}
	}
	// Keep annotations and labels others added (kubectl, GitOps tools); own only ours.
	if current.Annotations == nil {
		current.Annotations = map[string]string{}
	}
	if index != 0 {
		delete(current.Annotations, AnnotationParts)
	}
	maps.Copy(current.Annotations, wantAnn)
	if current.Labels == nil {
		current.Labels = map[string]string{}
	}
	maps.Copy(current.Labels, wantLabels)
	current.Data = map[string][]byte{DataKey: chunk}
	current.StringData = nil
	if err := c.Update(ctx, current); err != nil {
		return false, fmt.Errorf("failed to update snapshot Secret %s/%s: %w", ns, name, err)
	}
	return true, nil
}

// Read fetches and verifies the snapshot stored in Secret `name` (and its parts) in namespace ns.
// A missing head is reported as the API's NotFound error (check with apierrors.IsNotFound); a part
// from another snapshot as [ErrPartMismatch].
func Read(ctx context.Context, r client.Reader, ns, name string) (*config.Snapshot, error) {
	get := func(n string) (*corev1.Secret, error) {
		sec := &corev1.Secret{}
		if err := r.Get(ctx, client.ObjectKey{Namespace: ns, Name: n}, sec); err != nil {
			return nil, fmt.Errorf("failed to get snapshot Secret %s/%s: %w", ns, n, err)
		}
		return sec, nil
	}
	head, err := get(name)
	if err != nil {
		return nil, err
	}
	return assemble(head, get)
}

// assemble joins the head and its parts (fetched with get) and decodes the result.
func assemble(head *corev1.Secret, get func(name string) (*corev1.Secret, error)) (*config.Snapshot, error) {
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

// split cuts b into chunks of at most size bytes (at least one chunk, possibly empty).
func split(b []byte, size int) [][]byte {
	var out [][]byte
	for len(b) > size {
		out = append(out, b[:size])
		b = b[size:]
	}
	return append(out, b)
}

// containsAll reports whether have holds every key/value of want.
func containsAll(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}
