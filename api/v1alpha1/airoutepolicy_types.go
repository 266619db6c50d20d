/*
Copyright 2026 The ai-orchestration Authors.

Licensed under the Apache License, Version 2.0.
*/

package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AIRoutePolicy decides which provider/model serves the requests it matches, and with which rate
// limits, cache, guardrails and retries. A request is served by the first policy, in
// namespace/name order, whose match accepts it; a request whose model no policy matches is served
// by the one provider that lists that model.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=airp,categories=ai
// +kubebuilder:printcolumn:name="Targets",type=integer,JSONPath=`.status.targets`
// +kubebuilder:printcolumn:name="Strategy",type=string,JSONPath=`.spec.strategy`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type AIRoutePolicy struct {
	metav1.TypeMeta `json:",inline"`

	// metadata is the standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec describes the policy.
	// +required
	Spec AIRoutePolicySpec `json:"spec"`

	// status is written by the controller.
	// +optional
	Status AIRoutePolicyStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// AIRoutePolicyList is a list of AIRoutePolicy.
type AIRoutePolicyList struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the standard list metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the policies.
	Items []AIRoutePolicy `json:"items"`
}

// AIRoutePolicySpec describes one routing policy.
//
// +kubebuilder:validation:XValidation:rule="self.targets.all(a, self.targets.exists_one(b, b.provider == a.provider && b.model == a.model))",message="spec.targets must not repeat a provider/model pair: merge the duplicates (raise the weight instead)"
type AIRoutePolicySpec struct {
	// match selects the requests this policy serves; an empty match serves every request.
	// +optional
	Match RouteMatch `json:"match,omitempty"`

	// targets are the provider/model pairs requests are sent to, chosen by strategy.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	Targets []RouteTarget `json:"targets"`

	// strategy picks a target per request: weighted (random by weight), failover (lowest priority
	// first, next on error), least-latency (fastest recent target), lowest-cost (cheapest
	// model for the request). Defaults to weighted.
	// +optional
	// +kubebuilder:default=weighted
	Strategy RouteStrategy `json:"strategy,omitempty"`

	// retries says how often another target is tried after a retryable provider error.
	// +optional
	Retries *RouteRetries `json:"retries,omitempty"`

	// timeout bounds the whole request including retries, e.g. "90s". Empty means the providers'
	// own timeouts apply.
	// +optional
	Timeout Duration `json:"timeout,omitempty"`

	// rateLimits are the limits every matched request must pass; names are unique.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	RateLimits []RateLimit `json:"rateLimits,omitempty"`

	// cache configures the response cache.
	// +optional
	Cache *RouteCache `json:"cache,omitempty"`

	// guardrails configures PII, toxicity and output checks.
	// +optional
	Guardrails *Guardrails `json:"guardrails,omitempty"`

	// promptOptimization configures input rewriting before a call.
	// +optional
	PromptOptimization *PromptOptimization `json:"promptOptimization,omitempty"`
}

// AIRoutePolicyStatus is the observed state of an AIRoutePolicy.
type AIRoutePolicyStatus struct {
	// conditions: Ready (True when the policy is published with all its targets; False with
	// ProviderNotFound, ModelNotFound… when targets are left out).
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// observedGeneration is the spec generation the conditions describe.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// targets is the number of targets that resolved and are published.
	// +optional
	Targets int32 `json:"targets,omitempty"`
}

// RouteMatch selects requests. Each list that is set must contain the request's value; an empty
// list matches anything.
type RouteMatch struct {
	// models are the model names (or aliases such as "default") a caller sends. A request with no
	// model is matched as "default".
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=256
	Models []string `json:"models,omitempty"`

	// endpoints are the API operations: chat (/api/ai/chat, /v1/chat/completions), embed,
	// summarize and moderate.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=4
	Endpoints []Endpoint `json:"endpoints,omitempty"`

	// orgs are org ids.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=253
	Orgs []string `json:"orgs,omitempty"`

	// users are user ids.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=253
	Users []string `json:"users,omitempty"`
}

// Endpoint is an API operation a route can match.
// +kubebuilder:validation:Enum=chat;embed;summarize;moderate
type Endpoint string

// Endpoints.
const (
	// EndpointChat is /api/ai/chat and /v1/chat/completions.
	EndpointChat Endpoint = "chat"
	// EndpointEmbed is /api/ai/embed and /v1/embeddings.
	EndpointEmbed Endpoint = "embed"
	// EndpointSummarize is /api/ai/summarize.
	EndpointSummarize Endpoint = "summarize"
	// EndpointModerate is /api/ai/moderate and /v1/moderations.
	EndpointModerate Endpoint = "moderate"
)

// RouteTarget is one provider/model a policy may send to.
//
// +kubebuilder:validation:XValidation:rule="!has(self.weight) || self.weight > 0",message="targets[].weight must be a positive integer (a relative share of traffic): remove the target instead of giving it weight 0"
type RouteTarget struct {
	// provider is the name of an AIProvider in this policy's namespace.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	Provider string `json:"provider"`

	// model is one of that provider's spec.models names.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Model string `json:"model"`

	// weight is the target's relative share of traffic under the weighted strategy. Defaults to 1.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Maximum=1000000
	Weight *int32 `json:"weight,omitempty"`

	// priority orders targets under the failover strategy: lower is tried first. Defaults to 0.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	Priority int32 `json:"priority,omitempty"`
}

// RouteStrategy picks a target per request.
// +kubebuilder:validation:Enum=weighted;failover;least-latency;lowest-cost
type RouteStrategy string

// Route strategies.
const (
	// RouteStrategyWeighted picks a random target in proportion to weight.
	RouteStrategyWeighted RouteStrategy = "weighted"
	// RouteStrategyFailover tries targets in priority order.
	RouteStrategyFailover RouteStrategy = "failover"
	// RouteStrategyLeastLatency picks the target with the lowest recent latency.
	RouteStrategyLeastLatency RouteStrategy = "least-latency"
	// RouteStrategyLowestCost picks the cheapest target for the request.
	RouteStrategyLowestCost RouteStrategy = "lowest-cost"
)

// RouteRetries says how often to try another target and how long to wait in between.
type RouteRetries struct {
	// attempts is the number of extra tries after the first one (0-10).
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10
	Attempts int32 `json:"attempts,omitempty"`

	// backoff is the wait before each retry, e.g. "200ms".
	// +optional
	Backoff Duration `json:"backoff,omitempty"`
}

// RateLimit is one limit of a policy. Set exactly one of requests and tokens.
//
// +kubebuilder:validation:XValidation:rule="has(self.requests) != has(self.tokens)",message="rateLimits[]: set exactly one of requests or tokens"
// +kubebuilder:validation:XValidation:rule="!has(self.algorithm) || self.algorithm != 'concurrency' || has(self.requests)",message="rateLimits[]: the concurrency algorithm limits requests in flight: set requests, not tokens"
// +kubebuilder:validation:XValidation:rule="!has(self.burst) || !has(self.algorithm) || self.algorithm == 'token-bucket'",message="rateLimits[]: burst is only used by the token-bucket algorithm: remove it"
type RateLimit struct {
	// name identifies the limit in metrics, headers and store keys; unique within the policy.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`

	// per is the dimension counted separately: each user, org, API key, model, or everything.
	// +required
	Per RateLimitPer `json:"per"`

	// algorithm is token-bucket (smooth rate with bursts), sliding-window (exact count over
	// the last window) or concurrency (requests in flight). Defaults to token-bucket.
	// +optional
	// +kubebuilder:default=token-bucket
	Algorithm RateLimitAlgorithm `json:"algorithm,omitempty"`

	// requests is the number of requests allowed per window (or in flight, for concurrency).
	// +optional
	// +kubebuilder:validation:Minimum=1
	Requests int64 `json:"requests,omitempty"`

	// tokens is the number of tokens (prompt + completion) allowed per window.
	// +optional
	// +kubebuilder:validation:Minimum=1
	Tokens int64 `json:"tokens,omitempty"`

	// window is the period the limit counts over. Defaults to 1m.
	// +optional
	// +kubebuilder:default="1m"
	Window RateLimitWindow `json:"window,omitempty"`

	// burst is the token bucket's capacity (token-bucket only). Defaults to the limit itself.
	// +optional
	// +kubebuilder:validation:Minimum=1
	Burst int64 `json:"burst,omitempty"`

	// failMode is what happens when the shared store is unreachable: open lets requests through,
	// closed refuses them with 503 store_unavailable. Defaults to open.
	// +optional
	// +kubebuilder:default=open
	FailMode FailMode `json:"failMode,omitempty"`

	// shadow counts and reports (metrics, headers) but never refuses; for trying a limit out.
	// +optional
	Shadow bool `json:"shadow,omitempty"`
}

// RateLimitPer is the dimension a rate limit counts separately.
// +kubebuilder:validation:Enum=user;org;apiKey;model;global
type RateLimitPer string

// Rate-limit dimensions.
const (
	// RateLimitPerUser counts each user separately.
	RateLimitPerUser RateLimitPer = "user"
	// RateLimitPerOrg counts each org separately.
	RateLimitPerOrg RateLimitPer = "org"
	// RateLimitPerAPIKey counts each client API key separately.
	RateLimitPerAPIKey RateLimitPer = "apiKey"
	// RateLimitPerModel counts each requested model separately.
	RateLimitPerModel RateLimitPer = "model"
	// RateLimitPerGlobal counts all requests together.
	RateLimitPerGlobal RateLimitPer = "global"
)

// RateLimitAlgorithm is how a rate limit counts.
// +kubebuilder:validation:Enum=token-bucket;sliding-window;concurrency
type RateLimitAlgorithm string

// Rate-limit algorithms.
const (
	// RateLimitAlgorithmTokenBucket refills continuously up to burst.
	RateLimitAlgorithmTokenBucket RateLimitAlgorithm = "token-bucket"
	// RateLimitAlgorithmSlidingWindow counts exactly over the last window.
	RateLimitAlgorithmSlidingWindow RateLimitAlgorithm = "sliding-window"
	// RateLimitAlgorithmConcurrency limits requests in flight.
	RateLimitAlgorithmConcurrency RateLimitAlgorithm = "concurrency"
)

// RateLimitWindow is the period a rate limit counts over.
// +kubebuilder:validation:Enum="1s";"1m";"1h";"1d"
type RateLimitWindow string

// Rate-limit windows.
const (
	// RateLimitWindowSecond is one second.
	RateLimitWindowSecond RateLimitWindow = "1s"
	// RateLimitWindowMinute is one minute.
	RateLimitWindowMinute RateLimitWindow = "1m"
	// RateLimitWindowHour is one hour.
	RateLimitWindowHour RateLimitWindow = "1h"
	// RateLimitWindowDay is one day (24 hours, rolling).
	RateLimitWindowDay RateLimitWindow = "1d"
)

// FailMode is what a rate limit does when the shared store is unreachable.
// +kubebuilder:validation:Enum=open;closed
type FailMode string

// Fail modes.
const (
	// FailModeOpen lets requests through (and counts the outage in metrics).
	FailModeOpen FailMode = "open"
	// FailModeClosed refuses requests with 503 store_unavailable.
	FailModeClosed FailMode = "closed"
)

// RouteCache configures the response cache of a policy.
//
// +kubebuilder:validation:XValidation:rule="!has(self.enabled) || !self.enabled || has(self.ttl)",message="cache.ttl is required when cache.enabled is true, e.g. \"10m\""
type RouteCache struct {
	// enabled turns caching on for this policy. Only deterministic requests are cached.
	// +optional
	Enabled bool `json:"enabled,omitempty"`

	// ttl is how long a cached reply is served, e.g. "10m".
	// +optional
	TTL Duration `json:"ttl,omitempty"`

	// scope is who shares cached replies: org (callers of the same org, the default), user (only
	// the same user) or global (every tenant; choose it only for non-personal prompts).
	// +optional
	// +kubebuilder:default=org
	Scope CacheScope `json:"scope,omitempty"`
}

// CacheScope is who shares cached replies.
// +kubebuilder:validation:Enum=org;user;global
type CacheScope string

// Cache scopes.
const (
	// CacheScopeOrg shares replies within one org.
	CacheScopeOrg CacheScope = "org"
	// CacheScopeUser shares replies only with the same user.
	CacheScopeUser CacheScope = "user"
	// CacheScopeGlobal shares replies across every tenant.
	CacheScopeGlobal CacheScope = "global"
)

// Guardrails configures the checks of a policy.
type Guardrails struct {
	// pii detects personal data (emails, phone numbers, card numbers…).
	// +optional
	PII *PIIGuard `json:"pii,omitempty"`

	// toxicity scores content for harassment, hate, sexual content, violence and self-harm.
	// +optional
	Toxicity *ToxicityGuard `json:"toxicity,omitempty"`

	// output validates completions.
	// +optional
	Output *OutputGuard `json:"output,omitempty"`
}

// PIIGuard detects personal data.
type PIIGuard struct {
	// action is redact (replace the match with a placeholder), block (refuse with 422
	// content_blocked) or flag (let through and report).
	// +required
	Action GuardAction `json:"action"`

	// types are the kinds of PII to detect; empty means all.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=8
	Types []PIIType `json:"types,omitempty"`

	// applyTo lists where to check: input (the prompt) and/or output (the completion). Defaults
	// to input.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=2
	ApplyTo []GuardDirection `json:"applyTo,omitempty"`
}

// ToxicityGuard scores content.
//
// +kubebuilder:validation:XValidation:rule="self.action != 'redact'",message="toxicity.action must be block or flag: toxic text cannot be redacted"
// +kubebuilder:validation:XValidation:rule="!has(self.model) || has(self.provider)",message="toxicity.model names a moderation model of toxicity.provider: set provider too"
type ToxicityGuard struct {
	// action is block (refuse with 422 content_blocked) or flag (let through and report).
	// +required
	Action GuardAction `json:"action"`

	// threshold is the score (0-100 percent) at or above which content counts as toxic.
	// +optional
	// +kubebuilder:default=80
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	Threshold *int32 `json:"threshold,omitempty"`

	// provider is the name of an AIProvider of type openai in this policy's namespace whose
	// moderation model scores toxicity instead of the built-in lexicon scorer. While it is
	// missing or its moderation call fails, the built-in scorer is used.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	Provider string `json:"provider,omitempty"`

	// model is the provider's moderation model, e.g. omni-moderation-latest. When omitted, the
	// provider chooses its default moderation model.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Model string `json:"model,omitempty"`
}

// OutputGuard validates completions.
type OutputGuard struct {
	// jsonSchema is a JSON Schema (as a JSON string) every completion must satisfy.
	// +optional
	// +kubebuilder:validation:MaxLength=65536
	JSONSchema string `json:"jsonSchema,omitempty"`

	// maxLength caps a completion's length in characters; longer completions are refused.
	// +optional
	// +kubebuilder:validation:Minimum=1
	MaxLength int64 `json:"maxLength,omitempty"`

	// bannedPhrases are phrases a completion must not contain (case-insensitive).
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=256
	BannedPhrases []string `json:"bannedPhrases,omitempty"`
}

// GuardAction is what a guardrail does on a finding.
// +kubebuilder:validation:Enum=redact;block;flag
type GuardAction string

// Guardrail actions.
const (
	// GuardActionRedact replaces findings with placeholders.
	GuardActionRedact GuardAction = "redact"
	// GuardActionBlock refuses the request with 422 content_blocked.
	GuardActionBlock GuardAction = "block"
	// GuardActionFlag lets the request through and reports the finding.
	GuardActionFlag GuardAction = "flag"
)

// PIIType is a kind of personal data.
// +kubebuilder:validation:Enum=email;phone;credit_card;iban;ssn;ipv4;ipv6;secret
type PIIType string

// GuardDirection is where a guardrail looks.
// +kubebuilder:validation:Enum=input;output
type GuardDirection string

// PromptOptimization configures input rewriting before a call.
type PromptOptimization struct {
	// normalizeWhitespace collapses runs of whitespace in messages (saves tokens).
	// +optional
	NormalizeWhitespace bool `json:"normalizeWhitespace,omitempty"`

	// maxInputTokens trims the oldest non-system messages until the prompt fits.
	// +optional
	// +kubebuilder:validation:Minimum=1
	MaxInputTokens int64 `json:"maxInputTokens,omitempty"`
}

func init() {
	SchemeBuilder.Register(&AIRoutePolicy{}, &AIRoutePolicyList{})
}
