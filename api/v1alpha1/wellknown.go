/*
Copyright 2026 The ai-orchestration Authors.

Licensed under the Apache License, Version 2.0.
*/

package v1alpha1

// Labels, annotations and data keys that mark and describe client API-key Secrets. A client key is
// an ordinary Secret so that it can be created, rotated and revoked with the usual tools (and by
// External Secrets or Sealed Secrets); only the SHA-256 of its token reaches the snapshot.
const (
	// LabelAPIKey marks a Secret as a client API key when its value is "true".
	LabelAPIKey = "ai.nself.org/api-key"

	// AnnotationRole is the key's role: "admin" (sees every usage, manages budgets) or "app" (the
	// default: acts for users of the orgs in AnnotationOrgs).
	AnnotationRole = "ai.nself.org/role"

	// AnnotationOrgs is a comma-separated list of org ids an app key may act for; absent means any.
	AnnotationOrgs = "ai.nself.org/orgs"

	// APIKeyDataKey is the Secret data entry that holds the bearer token.
	APIKeyDataKey = "key"
)
