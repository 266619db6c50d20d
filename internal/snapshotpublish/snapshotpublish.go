// Package snapshotpublish is the manager's side of the snapshot Secrets: [Write] stores a compiled
// snapshot in the format internal/snapshotsecret defines (split into parts when it outgrows one
// Secret, parts before the head) and [Read] reads one back, both through a controller-runtime
// client. The data plane follows the snapshot with snapshotsecret.Watch and never imports this
// package.
package snapshotpublish

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
	"github.com/nself-org/ai-orchestration/internal/snapshotsecret"
)

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
	chunks := split(data, snapshotsecret.MaxPartBytes)
	if len(chunks) > snapshotsecret.MaxParts {
		return false, fmt.Errorf("failed to write snapshot: %d bytes need %d Secrets, more than the %d allowed",
			len(data), len(chunks), snapshotsecret.MaxParts)
	}

	head := &corev1.Secret{}
	oldParts := 0
	switch err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, head); {
	case apierrors.IsNotFound(err):
		head = nil
	case err != nil:
		return false, fmt.Errorf("failed to get snapshot Secret %s/%s: %w", ns, name, err)
	default:
		oldParts, _ = strconv.Atoi(head.Annotations[snapshotsecret.AnnotationParts])
	}

	changed := false
	// Parts first, highest index first, the head last: the head is what readers follow.
	for i := len(chunks) - 1; i >= 1; i-- {
		wrote, err := apply(ctx, c, ns, snapshotsecret.PartName(name, i), nil, i, len(chunks), s.Hash, chunks[i])
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
	for i := len(chunks); i < min(oldParts, snapshotsecret.MaxParts); i++ {
		stale := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: snapshotsecret.PartName(name, i)}}
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

	wantAnn := map[string]string{
		snapshotsecret.AnnotationHash: hash,
		snapshotsecret.AnnotationPart: strconv.Itoa(index),
	}
	if index == 0 {
		wantAnn[snapshotsecret.AnnotationParts] = strconv.Itoa(parts)
	}
	wantLabels := map[string]string{
		snapshotsecret.LabelComponent: snapshotsecret.LabelComponentValue,
		snapshotsecret.LabelManagedBy: snapshotsecret.LabelManagedByValue,
	}

	if current == nil {
		sec := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: wantLabels, Annotations: wantAnn},
			Type:       corev1.SecretTypeOpaque,
			Data:       map[string][]byte{snapshotsecret.DataKey: chunk},
		}
		if err := c.Create(ctx, sec); err != nil {
			return false, fmt.Errorf("failed to create snapshot Secret %s/%s: %w", ns, name, err)
		}
		return true, nil
	}

	if len(current.Data) == 1 && bytes.Equal(current.Data[snapshotsecret.DataKey], chunk) &&
		containsAll(current.Annotations, wantAnn) && containsAll(current.Labels, wantLabels) {
		if _, stale := current.Annotations[snapshotsecret.AnnotationParts]; index == 0 || !stale {
			return false, nil
		}
	}
	// Keep annotations and labels others added (kubectl, GitOps tools); own only ours.
	if current.Annotations == nil {
		current.Annotations = map[string]string{}
	}
	if index != 0 {
		delete(current.Annotations, snapshotsecret.AnnotationParts)
	}
	maps.Copy(current.Annotations, wantAnn)
	if current.Labels == nil {
		current.Labels = map[string]string{}
	}
	maps.Copy(current.Labels, wantLabels)
	current.Data = map[string][]byte{snapshotsecret.DataKey: chunk}
	current.StringData = nil
	if err := c.Update(ctx, current); err != nil {
		return false, fmt.Errorf("failed to update snapshot Secret %s/%s: %w", ns, name, err)
	}
	return true, nil
}

// Read fetches and verifies the snapshot stored in Secret `name` (and its parts) in namespace ns.
// A missing head is reported as the API's NotFound error (check with apierrors.IsNotFound); a part
// from another snapshot as [snapshotsecret.ErrPartMismatch].
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
	return snapshotsecret.Assemble(head, get)
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
