/*
Copyright 2026 The ai-orchestration Authors.

Licensed under the Apache License, Version 2.0.
*/

package v1alpha1

// USD is an amount of US dollars written as a non-negative decimal string ("1", "0.15", "25.00"),
// at most nine decimals. Strings, not floats, so that the amount written is exactly the amount
// enforced (the data plane keeps integer nano-USD).
// +kubebuilder:validation:Pattern=`^[0-9]+(\.[0-9]{1,9})?$`
// +kubebuilder:validation:MaxLength=20
type USD string

// Duration is a length of time such as "500ms", "30s", "5m", "1h" or "1m30s" (units ms, s, m, h).
// +kubebuilder:validation:Pattern=`^([0-9]+(ms|s|m|h))+$`
// +kubebuilder:validation:MaxLength=32
type Duration string

// SecretKeyRef names one entry of a Secret in the referencing object's own namespace. There is
// deliberately no namespace field: an object can only use key material its own namespace holds.
type SecretKeyRef struct {
	// name of the Secret, in the same namespace as the object that refers to it.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	Name string `json:"name"`

	// key is the entry in the Secret's data that holds the value, e.g. "apiKey".
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	Key string `json:"key"`
}
