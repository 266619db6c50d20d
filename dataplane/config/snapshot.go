// Package config holds the compiled configuration snapshot that the controllers publish and every
// data-plane replica hot-loads: the wire types, their encoding, hashing and validation.
//
// This package must not import Kubernetes packages: the data plane depends on it, and the data
// plane runs (and is tested) without any cluster. Names of objects appear as "namespace/name".
package config

import (
	"time"

	"github.com/nself-org/ai-orchestration/dataplane/money"
)

// SchemaVersion is the version of the snapshot's shape. A data plane refuses a snapshot whose
// version differs from its own and keeps serving the last good one (the usual cause is a rolling
// update in which the manager is newer than some replicas).
const SchemaVersion = "ai.nself.org/snapshot/v1"

// Snapshot is the whole compiled configuration, one JSON document. Every list is sorted by Name
// so that the same objects always produce the same bytes and the same Hash.
type Snapshot struct {
	// Version is [SchemaVersion] of the compiler that produced it.
	Version string `json:"version"`
	// Hash is the hex SHA-256 of the snapshot encoded with Hash empty; see [Snapshot.ComputeHash].
	Hash      string     `json:"hash"`
	Providers []Provider `json:"providers"`
	Budgets   []Budget   `json:"budgets"`
	Routes    []Route    `json:"routes"`
	APIKeys   []APIKey   `json:"apiKeys"`
}

// Provider types, as in AIProvider spec.type.
const (
	ProviderOpenAI           = "openai"
	ProviderAnthropic        = "anthropic"
	ProviderGoogle           = "google"
	ProviderOllama           = "ollama"
	ProviderOpenAICompatible = "openai-compatible"
	ProviderMock             = "mock"
)

// Provider is one compiled AIProvider: where it lives, how to authenticate, what it serves and
// at what price.
type Provider struct {
	// Name is "namespace/name" of the AIProvider; routes refer to providers by it.
	Name string `json:"name"`
	// Type is one of the Provider* constants.
	Type string `json:"type"`
	// BaseURL is resolved (defaults applied), e.g. "https://api.openai.com/v1".
	BaseURL string `json:"baseURL"`
	// APIKey is the resolved key material from the referenced Secret; empty for ollama and mock.
	APIKey Secret `json:"apiKey,omitempty"`
	// Timeout bounds one upstream call; 0 means the data plane's default.
	Timeout time.Duration `json:"timeout,omitempty"`
	// Limits is the upstream account's quota; zero fields mean unlimited.
	Limits ProviderLimits `json:"limits"`
	// Models are the models this provider serves, with resolved prices.
	Models []Model `json:"models"`
	// Mock configures the offline mock type; nil for every other type.
	Mock *Mock `json:"mock,omitempty"`
}

// ProviderLimits is an upstream account quota.
type ProviderLimits struct {
	RequestsPerMinute int64 `json:"requestsPerMinute,omitempty"`
	TokensPerMinute   int64 `json:"tokensPerMinute,omitempty"`
}

// Model is one model of a provider with resolved prices (from the AIProvider or the built-in
// table). Prices are nano-USD per million tokens.
type Model struct {
	Name                  string      `json:"name"`
	InputPerMillion       money.Nanos `json:"inputPerMillion"`
	OutputPerMillion      money.Nanos `json:"outputPerMillion"`
	CachedInputPerMillion money.Nanos `json:"cachedInputPerMillion"`
	// ContextWindow is the model's input+output token limit; 0 = unknown.
	ContextWindow int64 `json:"contextWindow,omitempty"`
	// MaxOutputTokens caps output; also the worst case reserved when a request names no maxTokens.
	MaxOutputTokens int64 `json:"maxOutputTokens,omitempty"`
	// Embedding is true for embedding models (served by /embed, not /chat).
	Embedding bool `json:"embedding,omitempty"`
}

// Mock configures the deterministic offline provider.
type Mock struct {
	// Reply is the completion text; empty means an echo of the last user message.
	Reply string `json:"reply,omitempty"`
	// CompletionTokens is the completion token count reported in usage; 0 = counted from Reply.
	CompletionTokens int64 `json:"completionTokens,omitempty"`
	// Latency is added before the reply (and spread across stream chunks).
	Latency time.Duration `json:"latency,omitempty"`
}

// Budget scopes, as in AIBudget spec.scope.
const (
	ScopeUser   = "user"
	ScopeOrg    = "org"
	ScopeAPIKey = "apiKey"
	ScopeGlobal = "global"
)

// Budget periods.
const (
	PeriodDaily   = "daily"
	PeriodWeekly  = "weekly"
	PeriodMonthly = "monthly"
)

// Budget actions.
const (
	ActionBlock     = "block"
	ActionAlert     = "alert"
	ActionDowngrade = "downgrade"
)

// AnySubject as a Budget subject means every subject of the scope separately.
const AnySubject = "*"

// Budget is one compiled AIBudget.
type Budget struct {
	// Name is "namespace/name" of the AIBudget; it is part of every store key of this budget.
	Name    string `json:"name"`
	Scope   string `json:"scope"`
	Subject string `json:"subject"`
	// Limits has one entry per period the AIBudget sets, sorted daily, weekly, monthly.
	Limits []BudgetLimit `json:"limits"`
	Action string        `json:"action"`
	// DowngradeTo is the model used once the budget is over (action downgrade).
	DowngradeTo string `json:"downgradeTo,omitempty"`
	// AlertThresholds are percentages of a limit at which an alert fires, ascending.
	AlertThresholds []int32 `json:"alertThresholds,omitempty"`
	// TimeZone is an IANA name ("UTC", "Europe/Berlin") in which periods start at midnight.
	TimeZone string `json:"timeZone"`
}

// BudgetLimit is the spending limit of one period.
type BudgetLimit struct {
	Period string      `json:"period"`
	Limit  money.Nanos `json:"limit"`
}

// Route strategies.
const (
	StrategyWeighted     = "weighted"
	StrategyFailover     = "failover"
	StrategyLeastLatency = "least-latency"
	StrategyLowestCost   = "lowest-cost"
)

// Route is one compiled AIRoutePolicy. A request is served by the first route (in Name order)
// whose Match accepts it.
type Route struct {
	Name               string             `json:"name"`
	Match              Match              `json:"match"`
	Targets            []Target           `json:"targets"`
	Strategy           string             `json:"strategy"`
	Retries            Retries            `json:"retries"`
	Timeout            time.Duration      `json:"timeout,omitempty"`
	RateLimits         []RateLimit        `json:"rateLimits,omitempty"`
	Cache              Cache              `json:"cache"`
	Guardrails         Guardrails         `json:"guardrails"`
	PromptOptimization PromptOptimization `json:"promptOptimization"`
}

// Match selects requests; an empty list matches anything.
type Match struct {
	// Models are the model names (or aliases such as "default") a caller may send.
	Models    []string `json:"models,omitempty"`
	Endpoints []string `json:"endpoints,omitempty"`
	Orgs      []string `json:"orgs,omitempty"`
	Users     []string `json:"users,omitempty"`
}

// Target is one provider/model a route may send to.
type Target struct {
	// Provider is the "namespace/name" of a [Provider] in the same snapshot.
	Provider string `json:"provider"`
	Model    string `json:"model"`
	Weight   int32  `json:"weight"`
	Priority int32  `json:"priority"`
}

// Retries says how often to try another target and how long to wait in between.
type Retries struct {
	Attempts int32         `json:"attempts"`
	Backoff  time.Duration `json:"backoff,omitempty"`
}

// Rate-limit dimensions (RateLimit.Per), algorithms and fail modes.
const (
	PerUser   = "user"
	PerOrg    = "org"
	PerAPIKey = "apiKey"
	PerModel  = "model"
	PerGlobal = "global"

	AlgorithmTokenBucket   = "token-bucket"
	AlgorithmSlidingWindow = "sliding-window"
	AlgorithmConcurrency   = "concurrency"

	FailOpen   = "open"
	FailClosed = "closed"
)

// RateLimit is one limit of a route. Exactly one of Requests and Tokens is set (> 0).
type RateLimit struct {
	Name      string        `json:"name"`
	Per       string        `json:"per"`
	Algorithm string        `json:"algorithm"`
	Requests  int64         `json:"requests,omitempty"`
	Tokens    int64         `json:"tokens,omitempty"`
	Window    time.Duration `json:"window"`
	// Burst is the bucket capacity of a token bucket (default: the limit itself).
	Burst    int64  `json:"burst,omitempty"`
	FailMode string `json:"failMode"`
	// Shadow counts and reports but never refuses.
	Shadow bool `json:"shadow,omitempty"`
}

// Cache scopes.
const (
	CacheScopeOrg    = "org"
	CacheScopeUser   = "user"
	CacheScopeGlobal = "global"
)

// Cache configures the response cache of a route.
type Cache struct {
	Enabled bool          `json:"enabled"`
	TTL     time.Duration `json:"ttl,omitempty"`
	Scope   string        `json:"scope,omitempty"`
}

// Guardrail actions.
const (
	GuardRedact = "redact"
	GuardBlock  = "block"
	GuardFlag   = "flag"
)

// Guardrails configures the checks of a route.
type Guardrails struct {
	PII      *PIIGuard      `json:"pii,omitempty"`
	Toxicity *ToxicityGuard `json:"toxicity,omitempty"`
	Output   *OutputGuard   `json:"output,omitempty"`
}

// PIIGuard detects personal data; ApplyTo lists "input" and/or "output".
type PIIGuard struct {
	Action  string   `json:"action"`
	Types   []string `json:"types,omitempty"`
	ApplyTo []string `json:"applyTo,omitempty"`
}

// ToxicityGuard scores content; Threshold is 0..100 (percent). When Provider is set, the
// provider's moderation model Model scores instead of the built-in lexicon.
type ToxicityGuard struct {
	Action    string `json:"action"`
	Threshold int32  `json:"threshold"`
	// Provider is the "namespace/name" of an OpenAI-type [Provider] whose moderation model
	// scores toxicity; empty means the built-in scorer.
	Provider string `json:"provider,omitempty"`
	// Model is the moderation model, e.g. "omni-moderation-latest".
	Model string `json:"model,omitempty"`
}

// OutputGuard validates completions.
type OutputGuard struct {
	JSONSchema    string   `json:"jsonSchema,omitempty"`
	MaxLength     int64    `json:"maxLength,omitempty"`
	BannedPhrases []string `json:"bannedPhrases,omitempty"`
}

// PromptOptimization configures input rewriting before a call.
type PromptOptimization struct {
	NormalizeWhitespace bool  `json:"normalizeWhitespace,omitempty"`
	MaxInputTokens      int64 `json:"maxInputTokens,omitempty"`
}

// Client key roles.
const (
	RoleAdmin = "admin"
	RoleApp   = "app"
)

// APIKey is one client key. Only a hash of the token is in the snapshot.
type APIKey struct {
	// Name is "namespace/name" of the Secret; it is the apiKey subject of budgets and limits.
	Name string `json:"name"`
	// SHA256 is the hex SHA-256 of the bearer token.
	SHA256 string `json:"sha256"`
	Role   string `json:"role"`
	// Orgs limits an app key to these orgs; empty means any org.
	Orgs []string `json:"orgs,omitempty"`
}

// Secret is key material. It marshals to JSON as itself (the snapshot must carry it) but prints
// as [REDACTED] in logs and fmt verbs, so a logged config never leaks a key.
type Secret string

// String implements fmt.Stringer.
func (Secret) String() string { return "[REDACTED]" }

// GoString implements fmt.GoStringer.
func (Secret) GoString() string { return "[REDACTED]" }

// Reveal returns the key material for the one place that needs it: the outgoing request.
func (s Secret) Reveal() string { return string(s) }
