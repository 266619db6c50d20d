/*
Copyright 2026 The ai-orchestration Authors.

Licensed under the Apache License, Version 2.0.
*/

package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AIBudget limits how much a user, an org, a client API key or everyone together may spend per
// day, week and/or month. Every budget that applies to a request must admit it: a user's daily
// budget and the org's monthly budget are both enforced.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=aib,categories=ai
// +kubebuilder:printcolumn:name="Scope",type=string,JSONPath=`.spec.scope`
// +kubebuilder:printcolumn:name="Subject",type=string,JSONPath=`.spec.subject`
// +kubebuilder:printcolumn:name="Daily",type=string,JSONPath=`.spec.daily`
// +kubebuilder:printcolumn:name="Monthly",type=string,JSONPath=`.spec.monthly`
// +kubebuilder:printcolumn:name="Spent",type=string,JSONPath=`.status.spent.monthly`
// +kubebuilder:printcolumn:name="Forecast",type=string,JSONPath=`.status.forecast.monthly`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Exceeded",type=string,JSONPath=`.status.conditions[?(@.type=="Exceeded")].status`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type AIBudget struct {
	metav1.TypeMeta `json:",inline"`

	// metadata is the standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec describes the budget.
	// +required
	Spec AIBudgetSpec `json:"spec"`

	// status is written by the controller.
	// +optional
	Status AIBudgetStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// AIBudgetList is a list of AIBudget.
type AIBudgetList struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the standard list metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the budgets.
	Items []AIBudget `json:"items"`
}

// AIBudgetSpec describes one budget.
//
// +kubebuilder:validation:XValidation:rule="has(self.daily) || has(self.weekly) || has(self.monthly)",message="set at least one of spec.daily, spec.weekly or spec.monthly (a USD amount such as \"1.00\")"
// +kubebuilder:validation:XValidation:rule="self.scope == 'global' || (has(self.subject) && size(self.subject) > 0)",message="spec.subject is required unless spec.scope is global: one user/org/apiKey id, or \"*\" for every subject separately"
// +kubebuilder:validation:XValidation:rule="!has(self.action) || self.action != 'downgrade' || has(self.downgradeTo)",message="spec.downgradeTo (a model name) is required when spec.action is downgrade"
// +kubebuilder:validation:XValidation:rule="!has(self.downgradeTo) || (has(self.action) && self.action == 'downgrade')",message="spec.downgradeTo is only used when spec.action is downgrade: remove it or set action: downgrade"
type AIBudgetSpec struct {
	// scope says whose spend is counted: a user, an org, a client API key, or everyone (global).
	// +required
	Scope BudgetScope `json:"scope"`

	// subject is the one user, org or API key ("namespace/name" of its Secret) this budget limits,
	// or "*" for every subject of the scope separately ("each user gets $1/day"). Required unless
	// scope is global.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Subject string `json:"subject,omitempty"`

	// daily is the limit per calendar day in timeZone, in USD, e.g. "1.00".
	// +optional
	Daily USD `json:"daily,omitempty"`

	// weekly is the limit per ISO week (starting Monday) in timeZone, in USD.
	// +optional
	Weekly USD `json:"weekly,omitempty"`

	// monthly is the limit per calendar month in timeZone, in USD, e.g. "25.00".
	// +optional
	Monthly USD `json:"monthly,omitempty"`

	// action is what happens once a limit is reached: block refuses with 402 budget_exceeded,
	// alert only reports (Exceeded condition, metrics), downgrade serves downgradeTo instead.
	// +optional
	// +kubebuilder:default=block
	Action BudgetAction `json:"action,omitempty"`

	// downgradeTo is the model used instead of the requested one once the budget is over; it
	// must be a model some provider or route serves. Required for action downgrade.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	DowngradeTo string `json:"downgradeTo,omitempty"`

	// alertThresholds are percentages of a limit (1-100) at which the Warning condition turns True
	// and an event is recorded, e.g. [50, 80, 100].
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=10
	// +kubebuilder:validation:items:Minimum=1
	// +kubebuilder:validation:items:Maximum=100
	AlertThresholds []int32 `json:"alertThresholds,omitempty"`

	// timeZone is the IANA time zone in which days, weeks and months start, e.g. "Europe/Berlin".
	// Defaults to UTC.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[A-Za-z][A-Za-z0-9_+\-/]*$`
	TimeZone string `json:"timeZone,omitempty"`
}

// AIBudgetStatus is the observed state of an AIBudget. Amounts are decimal USD strings.
type AIBudgetStatus struct {
	// conditions: Ready (in the published snapshot), Warning (an alert threshold crossed) and
	// Exceeded (a limit reached) in the current period.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// observedGeneration is the spec generation the conditions describe.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// spent is the spend so far in the current day, week and month. For subject "*" it is the
	// spend of the subject that spent most.
	// +optional
	Spent *PeriodAmounts `json:"spent,omitempty"`

	// remaining is what is left of each limit in the current period (never below 0). For subject
	// "*" it is what the subject that spent most has left.
	// +optional
	Remaining *PeriodAmounts `json:"remaining,omitempty"`

	// forecast is the projected spend at the end of each current period, extrapolated from the
	// spend rate so far.
	// +optional
	Forecast *PeriodAmounts `json:"forecast,omitempty"`

	// subjectsOverBudget lists subjects that reached a limit in the current period (at most 100;
	// see subjectsOverBudgetCount for the total).
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=100
	// +kubebuilder:validation:items:MaxLength=253
	SubjectsOverBudget []string `json:"subjectsOverBudget,omitempty"`

	// subjectsOverBudgetCount is how many subjects reached a limit in the current period.
	// +optional
	SubjectsOverBudgetCount int32 `json:"subjectsOverBudgetCount,omitempty"`

	// lastUpdated is when spend was last read from the usage store.
	// +optional
	LastUpdated *metav1.Time `json:"lastUpdated,omitempty"`
}

// PeriodAmounts holds one USD amount per budget period.
type PeriodAmounts struct {
	// daily is the amount for the current day.
	// +optional
	Daily USD `json:"daily,omitempty"`
	// weekly is the amount for the current week.
	// +optional
	Weekly USD `json:"weekly,omitempty"`
	// monthly is the amount for the current month.
	// +optional
	Monthly USD `json:"monthly,omitempty"`
}

// BudgetScope says whose spend a budget counts.
// +kubebuilder:validation:Enum=user;org;apiKey;global
type BudgetScope string

// Budget scopes.
const (
	// BudgetScopeUser counts the spend of one user (the caller's userId).
	BudgetScopeUser BudgetScope = "user"
	// BudgetScopeOrg counts the spend of one org (the caller's orgId).
	BudgetScopeOrg BudgetScope = "org"
	// BudgetScopeAPIKey counts the spend made with one client API key.
	BudgetScopeAPIKey BudgetScope = "apiKey"
	// BudgetScopeGlobal counts all spend together.
	BudgetScopeGlobal BudgetScope = "global"
)

// BudgetAction is what happens once a budget is reached.
// +kubebuilder:validation:Enum=block;alert;downgrade
type BudgetAction string

// Budget actions.
const (
	// BudgetActionBlock refuses further requests with 402 budget_exceeded.
	BudgetActionBlock BudgetAction = "block"
	// BudgetActionAlert lets requests through and only reports.
	BudgetActionAlert BudgetAction = "alert"
	// BudgetActionDowngrade serves spec.downgradeTo instead of the requested model.
	BudgetActionDowngrade BudgetAction = "downgrade"
)

func init() {
	SchemeBuilder.Register(&AIBudget{}, &AIBudgetList{})
}
