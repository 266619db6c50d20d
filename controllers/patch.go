package controllers

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// patchStatus writes obj's status with a merge patch against base, only when the status differs
// (semantic deep-equal of the two status values), and reports whether it wrote. One write per
// pass; a conflict is returned so that the queue retries with fresh data.
func patchStatus(ctx context.Context, c client.Client, base, obj client.Object, baseStatus, status any) (bool, error) {
	if equality.Semantic.DeepEqual(baseStatus, status) {
		return false, nil
	}
	if err := c.Status().Patch(ctx, obj, client.MergeFrom(base)); err != nil {
		return false, fmt.Errorf("failed to patch status of %s: %w", client.ObjectKeyFromObject(obj), err)
	}
	return true, nil
}
