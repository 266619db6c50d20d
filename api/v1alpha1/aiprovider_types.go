/*
Copyright 2026 The ai-orchestration Authors.

Licensed under the Apache License, Version 2.0.
*/

package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AIProvider declares one upstream AI service account: its type, endpoint, API key Secret, quota,
// and the models it serves with their prices. Route policies send requests to it by name.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=aip,categories=ai
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.type`
// +kubebuilder:printcolumn:name="Models",type=integer,JSONPath=`.status.models`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type AIProvider struct {
	metav1.TypeMeta `json:",inline"`

	// metadata is the standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec describes the provider.
	// +required
	Spec AIProviderSpec `json:"spec"`

	// status is written by the controller.
	// +optional
	Status AIProviderStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// AIProviderList is a list of AIProvider.
type AIProviderList struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the standard list metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the providers.
	Items []AIProvider `json:"items"`
}

// AIProviderSpec describes one provider account.
//
// +kubebuilder:validation:XValidation:rule="!(self.type in ['openai', 'anthropic', 'google']) || has(self.apiKeySecretRef)",message="spec.apiKeySecretRef is required for types openai, anthropic and google: name a Secret in this namespace and the key that holds the API key"
// +kubebuilder:validation:XValidation:rule="!(self.type in ['ollama', 'mock']) || !has(self.apiKeySecretRef)",message="spec.apiKeySecretRef is not used by types ollama and mock: remove it"
// +kubebuilder:validation:XValidation:rule="!has(self.mock) || self.type == 'mock'",message="spec.mock is only allowed when spec.type is mock: remove it or set type: mock"
// +kubebuilder:validation:XValidation:rule="self.type != 'openai-compatible' || has(self.baseURL)",message="spec.baseURL is required for type openai-compatible: the server URL up to and including /v1"
type AIProviderSpec struct {
	// type is the provider's API family. It selects the wire format, the default baseURL and
	// whether an API key is required (openai, anthropic and google need one; openai-compatible
	// may have one; ollama and mock never do).
	// +required
	Type ProviderType `json:"type"`

	// baseURL is the service endpoint, written as the provider's own SDK writes it: OpenAI and
	// openai-compatible up to and including "/v1" (e.g. "https://api.openai.com/v1"); Anthropic,
	// Google and Ollama the service root (e.g. "https://api.anthropic.com",
	// "https://generativelanguage.googleapis.com", "http://ollama:11434"). Defaulted per type
	// when empty; required for openai-compatible.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^https?://[^\s]+$`
	BaseURL string `json:"baseURL,omitempty"`

	// apiKeySecretRef names the Secret entry holding the provider API key. Required for openai,
	// anthropic and google; optional for openai-compatible; not allowed for ollama and mock.
	// +optional
	APIKeySecretRef *SecretKeyRef `json:"apiKeySecretRef,omitempty"`

	// timeout bounds one upstream call (including a whole stream), e.g. "60s". Empty means the
	// data plane's default.
	// +optional
	Timeout Duration `json:"timeout,omitempty"`

	// limits is the upstream account's own quota, so the gateway can avoid hitting the
	// provider's 429s. Empty means unlimited.
	// +optional
	Limits *ProviderLimits `json:"limits,omitempty"`

	// models are the models this provider serves. Prices are optional for models in the built-in
	// price table and required otherwise (an unpriced model is left out and reported).
	// +required
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=128
	Models []ProviderModel `json:"models"`

	// mock configures the offline mock type; only allowed when type is mock.
	// +optional
	Mock *MockConfig `json:"mock,omitempty"`
}

// AIProviderStatus is the observed state of an AIProvider.
type AIProviderStatus struct {
	// conditions: Ready (True when the provider is in the published snapshot).
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// observedGeneration is the spec generation the conditions describe.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// models is the number of models published (priced and valid).
	// +optional
	Models int32 `json:"models,omitempty"`
}

// ProviderType is the API family of a provider.
// +kubebuilder:validation:Enum=openai;anthropic;google;ollama;openai-compatible;mock
type ProviderType string

// Provider types.
const (
	// ProviderTypeOpenAI is the OpenAI API (api.openai.com).
	ProviderTypeOpenAI ProviderType = "openai"
	// ProviderTypeAnthropic is the Anthropic Messages API.
	ProviderTypeAnthropic ProviderType = "anthropic"
	// ProviderTypeGoogle is the Gemini API (generativelanguage.googleapis.com).
	ProviderTypeGoogle ProviderType = "google"
	// ProviderTypeOllama is a self-hosted Ollama server (no key).
	ProviderTypeOllama ProviderType = "ollama"
	// ProviderTypeOpenAICompatible is any server speaking the OpenAI wire format (vLLM, LiteLLM…).
	ProviderTypeOpenAICompatible ProviderType = "openai-compatible"
	// ProviderTypeMock is the deterministic offline provider, for development and tests.
	ProviderTypeMock ProviderType = "mock"
)

// ProviderLimits is an upstream account quota.
type ProviderLimits struct {
	// requestsPerMinute is the account's request quota per minute.
	// +optional
	// +kubebuilder:validation:Minimum=1
	RequestsPerMinute int64 `json:"requestsPerMinute,omitempty"`

	// tokensPerMinute is the account's token quota per minute (input + output).
	// +optional
	// +kubebuilder:validation:Minimum=1
	TokensPerMinute int64 `json:"tokensPerMinute,omitempty"`
}

// ProviderModel is one model of a provider and its price in USD per million tokens.
type ProviderModel struct {
	// name is the provider's model id, e.g. "gpt-4o-mini", unique within the provider.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9][-A-Za-z0-9._:/@]*$`
	Name string `json:"name"`

	// inputPerMillion is the price of one million prompt tokens in USD, e.g. "0.15". Optional for
	// models in the built-in price table; when set it overrides the table.
	// +optional
	InputPerMillion USD `json:"inputPerMillion,omitempty"`

	// outputPerMillion is the price of one million completion tokens in USD, e.g. "0.60".
	// +optional
	OutputPerMillion USD `json:"outputPerMillion,omitempty"`

	// cachedInputPerMillion is the price of one million cached prompt tokens in USD; defaults to
	// inputPerMillion when a price is given here but this is not.
	// +optional
	CachedInputPerMillion USD `json:"cachedInputPerMillion,omitempty"`

	// contextWindow is the model's input+output token limit; longer inputs are summarized in
	// pieces or refused. Optional for models in the built-in table.
	// +optional
	// +kubebuilder:validation:Minimum=1
	ContextWindow int64 `json:"contextWindow,omitempty"`

	// maxOutputTokens caps a completion; it is also the worst case reserved against budgets when a
	// request names no maxTokens.
	// +optional
	// +kubebuilder:validation:Minimum=1
	MaxOutputTokens int64 `json:"maxOutputTokens,omitempty"`

	// embedding marks an embedding model (served by /embed, never by /chat).
	// +optional
	Embedding bool `json:"embedding,omitempty"`
}

// MockConfig configures the offline mock provider.
type MockConfig struct {
	// reply is the completion text; empty means an echo of the last user message.
	// +optional
	// +kubebuilder:validation:MaxLength=65536
	Reply string `json:"reply,omitempty"`

	// completionTokens is the completion token count reported in usage; 0 means counted from the
	// reply. Prompt tokens are always counted from the request.
	// +optional
	// +kubebuilder:validation:Minimum=0
	CompletionTokens int64 `json:"completionTokens,omitempty"`

	// latency is waited before replying (spread across stream chunks), e.g. "200ms".
	// +optional
	Latency Duration `json:"latency,omitempty"`
}

func init() {
	SchemeBuilder.Register(&AIProvider{}, &AIProviderList{})
}
