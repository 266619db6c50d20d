/*
Copyright 2026 The ai-orchestration Authors.

Licensed under the Apache License, Version 2.0.
*/

// Package v1alpha1 holds the ai.nself.org/v1alpha1 API: AIProvider (where models are served and at
// what price), AIBudget (how much a user, org, API key or everyone may spend) and AIRoutePolicy
// (which requests go to which provider/model, with limits, cache and guardrails).
//
// The controllers compile every object of these kinds, plus the Secrets they reference, into one
// snapshot that the data plane hot-loads; the same compiler reads a folder of these manifests in
// standalone mode. Validation that needs no other object is enforced here (OpenAPI and CEL) so that
// a broken manifest is refused at apply time; cross-object checks (a route naming an unknown
// provider, a missing Secret) are reported in each object's Ready condition.
//
// +kubebuilder:object:generate=true
// +groupName=ai.nself.org
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of every kind in this package.
	GroupVersion = schema.GroupVersion{Group: "ai.nself.org", Version: "v1alpha1"}

	// SchemeBuilder registers the kinds of this package with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the kinds of this package to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
