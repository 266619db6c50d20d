package controllers

import (
	"context"
	"fmt"
	"slices"

	"sigs.k8s.io/controller-runtime/pkg/client"

	aiv1alpha1 "github.com/nself-org/ai-orchestration/api/v1alpha1"
)

// Field indexes. Values are "namespace/name" because references never leave the object's
// namespace, yet the Secret (or provider) a map function starts from may be in any namespace.
const (
	// IndexProviderAPIKeySecret indexes AIProviders by the Secret of spec.apiKeySecretRef, so
	// that a changed Secret finds the providers (and so the snapshot) it feeds.
	IndexProviderAPIKeySecret = "aiprovider.spec.apiKeySecretRef"

	// IndexRoutePolicyProvider indexes AIRoutePolicies by the AIProviders of spec.targets. The
	// AIProvider controller uses it to name, in its events, the policies that lose a target when
	// a provider stops being Ready.
	IndexRoutePolicyProvider = "airoutepolicy.spec.targets.provider"
)

// ApplyIndexing registers every field index of this package. The manager and the fake clients of
// unit tests both call it, so that a test indexes exactly as production does.
func ApplyIndexing(ctx context.Context, indexer client.FieldIndexer) error {
	if err := indexer.IndexField(ctx, &aiv1alpha1.AIProvider{}, IndexProviderAPIKeySecret, providerAPIKeySecret); err != nil {
		return fmt.Errorf("failed to index %s: %w", IndexProviderAPIKeySecret, err)
	}
	if err := indexer.IndexField(ctx, &aiv1alpha1.AIRoutePolicy{}, IndexRoutePolicyProvider, routePolicyProviders); err != nil {
		return fmt.Errorf("failed to index %s: %w", IndexRoutePolicyProvider, err)
	}
	return nil
}

func providerAPIKeySecret(obj client.Object) []string {
	p, ok := obj.(*aiv1alpha1.AIProvider)
	if !ok || p.Spec.APIKeySecretRef == nil || p.Spec.APIKeySecretRef.Name == "" {
		return nil
	}
	return []string{objectKey(p.Namespace, p.Spec.APIKeySecretRef.Name)}
}

func routePolicyProviders(obj client.Object) []string {
	r, ok := obj.(*aiv1alpha1.AIRoutePolicy)
	if !ok {
		return nil
	}
	out := make([]string, 0, len(r.Spec.Targets))
	for _, t := range r.Spec.Targets {
		out = append(out, objectKey(r.Namespace, t.Provider))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// objectKey is the "namespace/name" form used by indexes and by the snapshot.
func objectKey(namespace, name string) string { return namespace + "/" + name }
