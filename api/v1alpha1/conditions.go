/*
Copyright 2026 The ai-orchestration Authors.

Licensed under the Apache License, Version 2.0.
*/

package v1alpha1

// Condition types. Every kind has Ready; AIBudget also has Warning and Exceeded so that alerting can
// select on them without parsing messages.
const (
	// ConditionReady is True when the object is valid, everything it references resolves, and it
	// is part of the published snapshot. False means the data plane does not use it (or uses it
	// only in part: see the reason and message).
	ConditionReady = "Ready"

	// ConditionWarning is True on an AIBudget when some subject's spend has crossed one of
	// spec.alertThresholds in the current period.
	ConditionWarning = "Warning"

	// ConditionExceeded is True on an AIBudget when some subject's spend has reached a limit in the
	// current period (requests are then blocked, alerted or downgraded per spec.action).
	ConditionExceeded = "Exceeded"
)

// Condition reasons. The compiler reports problems with these same constants, so a reason in a
// status is always one of this list.
const (
	// ReasonReady: the object is valid and published in the snapshot.
	ReasonReady = "Ready"

	// ReasonPending: the object has not been compiled yet (first reconcile still running).
	ReasonPending = "Pending"

	// ReasonInvalidSpec: the spec breaks a rule the API server could not check (or, in standalone
	// mode, one the API server would have checked). The object is left out of the snapshot.
	ReasonInvalidSpec = "InvalidSpec"

	// ReasonSecretNotFound: the Secret named by an apiKeySecretRef does not exist in the object's
	// namespace. The provider is left out until the Secret appears.
	ReasonSecretNotFound = "SecretNotFound"

	// ReasonSecretKeyMissing: the referenced Secret exists but has no (or an empty) entry under the
	// referenced key. For a client API-key Secret the required key is "key".
	ReasonSecretKeyMissing = "SecretKeyMissing"

	// ReasonProviderNotFound: a route target names an AIProvider that does not exist in the route's
	// namespace. That target is left out.
	ReasonProviderNotFound = "ProviderNotFound"

	// ReasonProviderNotReady: a route target names an AIProvider that exists but is itself left out
	// of the snapshot (for example its Secret is missing). That target is left out.
	ReasonProviderNotReady = "ProviderNotReady"

	// ReasonModelNotFound: a route target names a model that its provider does not serve (not in
	// the provider's spec.models, or left out as unpriced). That target is left out.
	ReasonModelNotFound = "ModelNotFound"

	// ReasonUnpricedModel: a provider model has no price in the spec and none in the built-in
	// table; without a price a budget cannot be enforced, so the model is left out.
	ReasonUnpricedModel = "UnpricedModel"

	// ReasonDuplicateModel: two route policies claim the same model name (alias) with the same
	// match; the one later in namespace/name order is left out.
	ReasonDuplicateModel = "DuplicateModel"

	// ReasonNoReadyTargets: none of a route policy's targets resolved, so the route is left out.
	ReasonNoReadyTargets = "NoReadyTargets"

	// ReasonWithinBudget: on Warning/Exceeded conditions, every subject is below the threshold.
	ReasonWithinBudget = "WithinBudget"

	// ReasonThresholdReached: on the Warning condition, some subject crossed an alert threshold.
	ReasonThresholdReached = "ThresholdReached"

	// ReasonBudgetExceeded: on the Exceeded condition, some subject reached a limit.
	ReasonBudgetExceeded = "BudgetExceeded"

	// ReasonUsageUnavailable: spend could not be read from the usage store, so Warning/Exceeded
	// are Unknown.
	ReasonUsageUnavailable = "UsageUnavailable"
)

// MaxConditions bounds status.conditions on every kind.
const MaxConditions = 8
