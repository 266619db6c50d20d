package compiler

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"time"

	aiv1alpha1 "github.com/nself-org/ai-orchestration/api/v1alpha1"
	"github.com/nself-org/ai-orchestration/dataplane/money"
)

// The validate* functions repeat the OpenAPI and CEL rules of the CRDs. In a cluster the API server
// has already refused objects that break them, so these find nothing; in standalone mode there is
// no API server, and a manifest folder must be judged by the same rules (and with the same
// messages) before it is served.

var (
	durationRE  = regexp.MustCompile(`^([0-9]+(ms|s|m|h))+$`)
	dnsNameRE   = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`)
	secretKeyRE = regexp.MustCompile(`^[-._a-zA-Z0-9]+$`)
	modelNameRE = regexp.MustCompile(`^[A-Za-z0-9][-A-Za-z0-9._:/@]*$`)
	limitNameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	baseURLRE   = regexp.MustCompile(`^https?://[^\s]+$`)
	timeZoneRE  = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_+\-/]*$`)
)

// errs collects the messages of one object's broken rules.
type errs []string

func (e *errs) addf(format string, args ...any) { *e = append(*e, fmt.Sprintf(format, args...)) }

// parseDuration parses a [aiv1alpha1.Duration]; empty is 0.
func parseDuration(field string, d aiv1alpha1.Duration, e *errs) time.Duration {
	if d == "" {
		return 0
	}
	if len(d) > 32 || !durationRE.MatchString(string(d)) {
		e.addf("%s %q is not a duration such as \"500ms\", \"30s\", \"5m\" or \"1h\"", field, d)
		return 0
	}
	v, err := time.ParseDuration(string(d))
	if err != nil {
		e.addf("%s %q is not a duration: %v", field, d, err)
		return 0
	}
	return v
}

// parseUSD parses an optional [aiv1alpha1.USD]; ok is false when it is empty.
func parseUSD(field string, v aiv1alpha1.USD, e *errs) (n money.Nanos, ok bool) {
	if v == "" {
		return 0, false
	}
	n, err := money.ParseUSD(string(v))
	if err != nil {
		e.addf("%s: %v", field, err)
		return 0, false
	}
	return n, true
}

func validateSecretRef(field string, r *aiv1alpha1.SecretKeyRef, e *errs) {
	if r.Name == "" || len(r.Name) > 253 || !dnsNameRE.MatchString(r.Name) {
		e.addf("%s.name %q is not a Secret name", field, r.Name)
	}
	if r.Key == "" || len(r.Key) > 253 || !secretKeyRE.MatchString(r.Key) {
		e.addf("%s.key %q is not a Secret data key", field, r.Key)
	}
}

func validateProvider(p *aiv1alpha1.AIProvider) errs {
	var e errs
	s := &p.Spec
	switch s.Type {
	case aiv1alpha1.ProviderTypeOpenAI, aiv1alpha1.ProviderTypeAnthropic, aiv1alpha1.ProviderTypeGoogle:
		if s.APIKeySecretRef == nil {
			e.addf("spec.apiKeySecretRef is required for types openai, anthropic and google: name a Secret in this namespace and the key that holds the API key")
		}
	case aiv1alpha1.ProviderTypeOllama, aiv1alpha1.ProviderTypeMock:
		if s.APIKeySecretRef != nil {
			e.addf("spec.apiKeySecretRef is not used by types ollama and mock: remove it")
		}
	case aiv1alpha1.ProviderTypeOpenAICompatible:
		if s.BaseURL == "" {
			e.addf("spec.baseURL is required for type openai-compatible: the server URL up to and including /v1")
		}
	default:
		e.addf("spec.type %q is not one of openai, anthropic, google, ollama, openai-compatible, mock", s.Type)
	}
	if s.Mock != nil && s.Type != aiv1alpha1.ProviderTypeMock {
		e.addf("spec.mock is only allowed when spec.type is mock: remove it or set type: mock")
	}
	if s.BaseURL != "" && (len(s.BaseURL) > 2048 || !baseURLRE.MatchString(s.BaseURL)) {
		e.addf("spec.baseURL %q must be an http:// or https:// URL", s.BaseURL)
	}
	if s.APIKeySecretRef != nil {
		validateSecretRef("spec.apiKeySecretRef", s.APIKeySecretRef, &e)
	}
	parseDuration("spec.timeout", s.Timeout, &e)
	if l := s.Limits; l != nil && (l.RequestsPerMinute < 0 || l.TokensPerMinute < 0) {
		e.addf("spec.limits must not be negative")
	}
	switch n := len(s.Models); {
	case n == 0:
		e.addf("spec.models must list at least one model")
	case n > 128:
		e.addf("spec.models has %d entries, at most 128 are allowed", n)
	}
	seen := map[string]bool{}
	for i, m := range s.Models {
		f := fmt.Sprintf("spec.models[%d]", i)
		if m.Name == "" || len(m.Name) > 256 || !modelNameRE.MatchString(m.Name) {
			e.addf("%s.name %q is not a model name", f, m.Name)
		}
		if seen[m.Name] {
			e.addf("%s.name %q is listed twice: model names must be unique within a provider", f, m.Name)
		}
		seen[m.Name] = true
		parseUSD(f+".inputPerMillion", m.InputPerMillion, &e)
		parseUSD(f+".outputPerMillion", m.OutputPerMillion, &e)
		parseUSD(f+".cachedInputPerMillion", m.CachedInputPerMillion, &e)
		if m.ContextWindow < 0 || m.MaxOutputTokens < 0 {
			e.addf("%s: contextWindow and maxOutputTokens must not be negative", f)
		}
	}
	if m := s.Mock; m != nil {
		if len(m.Reply) > 65536 {
			e.addf("spec.mock.reply is longer than 65536 characters")
		}
		if m.CompletionTokens < 0 {
			e.addf("spec.mock.completionTokens must not be negative")
		}
		parseDuration("spec.mock.latency", m.Latency, &e)
	}
	return e
}

func validateBudget(b *aiv1alpha1.AIBudget) errs {
	var e errs
	s := &b.Spec
	switch s.Scope {
	case aiv1alpha1.BudgetScopeUser, aiv1alpha1.BudgetScopeOrg, aiv1alpha1.BudgetScopeAPIKey, aiv1alpha1.BudgetScopeGlobal:
	default:
		e.addf("spec.scope %q is not one of user, org, apiKey, global", s.Scope)
	}
	if s.Scope != aiv1alpha1.BudgetScopeGlobal && s.Subject == "" {
		e.addf(`spec.subject is required unless spec.scope is global: one user/org/apiKey id, or "*" for every subject separately`)
	}
	if len(s.Subject) > 253 {
		e.addf("spec.subject is longer than 253 characters")
	}
	if s.Daily == "" && s.Weekly == "" && s.Monthly == "" {
		e.addf(`set at least one of spec.daily, spec.weekly or spec.monthly (a USD amount such as "1.00")`)
	}
	parseUSD("spec.daily", s.Daily, &e)
	parseUSD("spec.weekly", s.Weekly, &e)
	parseUSD("spec.monthly", s.Monthly, &e)
	switch s.Action {
	case "", aiv1alpha1.BudgetActionBlock, aiv1alpha1.BudgetActionAlert:
		if s.DowngradeTo != "" {
			e.addf("spec.downgradeTo is only used when spec.action is downgrade: remove it or set action: downgrade")
		}
	case aiv1alpha1.BudgetActionDowngrade:
		if s.DowngradeTo == "" {
			e.addf("spec.downgradeTo (a model name) is required when spec.action is downgrade")
		}
	default:
		e.addf("spec.action %q is not one of block, alert, downgrade", s.Action)
	}
	if len(s.DowngradeTo) > 256 {
		e.addf("spec.downgradeTo is longer than 256 characters")
	}
	if len(s.AlertThresholds) > 10 {
		e.addf("spec.alertThresholds has %d entries, at most 10 are allowed", len(s.AlertThresholds))
	}
	for i, t := range s.AlertThresholds {
		if t < 1 || t > 100 {
			e.addf("spec.alertThresholds[%d] = %d is not a percentage between 1 and 100", i, t)
		}
		if slices.Index(s.AlertThresholds, t) != i {
			e.addf("spec.alertThresholds[%d] = %d is listed twice", i, t)
		}
	}
	if s.TimeZone != "" {
		if len(s.TimeZone) > 64 || !timeZoneRE.MatchString(s.TimeZone) {
			e.addf("spec.timeZone %q is not an IANA time zone name such as \"Europe/Berlin\"", s.TimeZone)
		} else if _, err := time.LoadLocation(s.TimeZone); err != nil {
			e.addf("spec.timeZone %q is not a known IANA time zone: %v", s.TimeZone, err)
		}
	}
	return e
}

func validateRoute(r *aiv1alpha1.AIRoutePolicy) errs {
	var e errs
	s := &r.Spec
	validateList := func(field string, l []string, maxItems, maxLen int) {
		if len(l) > maxItems {
			e.addf("%s has %d entries, at most %d are allowed", field, len(l), maxItems)
		}
		for i, v := range l {
			if v == "" || len(v) > maxLen {
				e.addf("%s[%d] must be 1 to %d characters", field, i, maxLen)
			}
			if slices.Index(l, v) != i {
				e.addf("%s[%d] %q is listed twice", field, i, v)
			}
		}
	}
	validateList("spec.match.models", s.Match.Models, 64, 256)
	validateList("spec.match.orgs", s.Match.Orgs, 256, 253)
	validateList("spec.match.users", s.Match.Users, 256, 253)
	for i, ep := range s.Match.Endpoints {
		switch ep {
		case aiv1alpha1.EndpointChat, aiv1alpha1.EndpointEmbed, aiv1alpha1.EndpointSummarize, aiv1alpha1.EndpointModerate:
		default:
			e.addf("spec.match.endpoints[%d] %q is not one of chat, embed, summarize, moderate", i, ep)
		}
		if slices.Index(s.Match.Endpoints, ep) != i {
			e.addf("spec.match.endpoints[%d] %q is listed twice", i, ep)
		}
	}

	switch n := len(s.Targets); {
	case n == 0:
		e.addf("spec.targets must list at least one target")
	case n > 32:
		e.addf("spec.targets has %d entries, at most 32 are allowed", n)
	}
	type pair struct{ provider, model string }
	seen := map[pair]bool{}
	for i, t := range s.Targets {
		f := fmt.Sprintf("spec.targets[%d]", i)
		if t.Provider == "" || len(t.Provider) > 253 || !dnsNameRE.MatchString(t.Provider) {
			e.addf("%s.provider %q is not an AIProvider name in this namespace", f, t.Provider)
		}
		if t.Model == "" || len(t.Model) > 256 {
			e.addf("%s.model must be 1 to 256 characters", f)
		}
		if t.Weight != nil && *t.Weight <= 0 {
			e.addf("targets[].weight must be a positive integer (a relative share of traffic): remove the target instead of giving it weight 0")
		}
		if t.Weight != nil && *t.Weight > 1_000_000 {
			e.addf("%s.weight must be at most 1000000", f)
		}
		if t.Priority < 0 || t.Priority > 1000 {
			e.addf("%s.priority must be between 0 and 1000", f)
		}
		k := pair{t.Provider, t.Model}
		if seen[k] {
			e.addf("spec.targets must not repeat a provider/model pair: merge the duplicates (raise the weight instead)")
		}
		seen[k] = true
	}
	switch s.Strategy {
	case "", aiv1alpha1.RouteStrategyWeighted, aiv1alpha1.RouteStrategyFailover, aiv1alpha1.RouteStrategyLeastLatency, aiv1alpha1.RouteStrategyLowestCost:
	default:
		e.addf("spec.strategy %q is not one of weighted, failover, least-latency, lowest-cost", s.Strategy)
	}
	if rt := s.Retries; rt != nil {
		if rt.Attempts < 0 || rt.Attempts > 10 {
			e.addf("spec.retries.attempts must be between 0 and 10")
		}
		parseDuration("spec.retries.backoff", rt.Backoff, &e)
	}
	parseDuration("spec.timeout", s.Timeout, &e)

	if len(s.RateLimits) > 16 {
		e.addf("spec.rateLimits has %d entries, at most 16 are allowed", len(s.RateLimits))
	}
	names := map[string]bool{}
	for i, l := range s.RateLimits {
		f := fmt.Sprintf("spec.rateLimits[%d]", i)
		if l.Name == "" || len(l.Name) > 63 || !limitNameRE.MatchString(l.Name) {
			e.addf("%s.name %q must be a lowercase name such as \"per-user\"", f, l.Name)
		}
		if names[l.Name] {
			e.addf("%s.name %q is used twice: rate limit names must be unique", f, l.Name)
		}
		names[l.Name] = true
		switch l.Per {
		case aiv1alpha1.RateLimitPerUser, aiv1alpha1.RateLimitPerOrg, aiv1alpha1.RateLimitPerAPIKey, aiv1alpha1.RateLimitPerModel, aiv1alpha1.RateLimitPerGlobal:
		default:
			e.addf("%s.per %q is not one of user, org, apiKey, model, global", f, l.Per)
		}
		switch l.Algorithm {
		case "", aiv1alpha1.RateLimitAlgorithmTokenBucket, aiv1alpha1.RateLimitAlgorithmSlidingWindow, aiv1alpha1.RateLimitAlgorithmConcurrency:
		default:
			e.addf("%s.algorithm %q is not one of token-bucket, sliding-window, concurrency", f, l.Algorithm)
		}
		if l.Requests < 0 || l.Tokens < 0 || l.Burst < 0 {
			e.addf("%s: requests, tokens and burst must be positive", f)
		}
		if (l.Requests > 0) == (l.Tokens > 0) {
			e.addf("rateLimits[]: set exactly one of requests or tokens")
		}
		if l.Algorithm == aiv1alpha1.RateLimitAlgorithmConcurrency && l.Requests <= 0 {
			e.addf("rateLimits[]: the concurrency algorithm limits requests in flight: set requests, not tokens")
		}
		if l.Burst != 0 && l.Algorithm != "" && l.Algorithm != aiv1alpha1.RateLimitAlgorithmTokenBucket {
			e.addf("rateLimits[]: burst is only used by the token-bucket algorithm: remove it")
		}
		if _, ok := windows[l.Window]; !ok && l.Window != "" {
			e.addf("%s.window %q is not one of 1s, 1m, 1h, 1d", f, l.Window)
		}
		switch l.FailMode {
		case "", aiv1alpha1.FailModeOpen, aiv1alpha1.FailModeClosed:
		default:
			e.addf("%s.failMode %q is not one of open, closed", f, l.FailMode)
		}
	}

	if c := s.Cache; c != nil {
		if c.Enabled && c.TTL == "" {
			e.addf(`cache.ttl is required when cache.enabled is true, e.g. "10m"`)
		}
		parseDuration("spec.cache.ttl", c.TTL, &e)
		switch c.Scope {
		case "", aiv1alpha1.CacheScopeOrg, aiv1alpha1.CacheScopeUser, aiv1alpha1.CacheScopeGlobal:
		default:
			e.addf("spec.cache.scope %q is not one of org, user, global", c.Scope)
		}
	}
	if g := s.Guardrails; g != nil {
		validateGuardrails(g, &e)
	}
	if po := s.PromptOptimization; po != nil && po.MaxInputTokens < 0 {
		e.addf("spec.promptOptimization.maxInputTokens must be positive")
	}
	return e
}

var piiTypes = []aiv1alpha1.PIIType{"email", "phone", "credit_card", "iban", "ssn", "ipv4", "ipv6", "secret"}

func validateGuardrails(g *aiv1alpha1.Guardrails, e *errs) {
	validAction := func(a aiv1alpha1.GuardAction) bool {
		return a == aiv1alpha1.GuardActionRedact || a == aiv1alpha1.GuardActionBlock || a == aiv1alpha1.GuardActionFlag
	}
	if p := g.PII; p != nil {
		if !validAction(p.Action) {
			e.addf("spec.guardrails.pii.action %q is not one of redact, block, flag", p.Action)
		}
		for i, t := range p.Types {
			if !slices.Contains(piiTypes, t) {
				e.addf("spec.guardrails.pii.types[%d] %q is not one of email, phone, credit_card, iban, ssn, ipv4, ipv6, secret", i, t)
			}
			if slices.Index(p.Types, t) != i {
				e.addf("spec.guardrails.pii.types[%d] %q is listed twice", i, t)
			}
		}
		for i, d := range p.ApplyTo {
			if d != "input" && d != "output" {
				e.addf("spec.guardrails.pii.applyTo[%d] %q is not one of input, output", i, d)
			}
			if slices.Index(p.ApplyTo, d) != i {
				e.addf("spec.guardrails.pii.applyTo[%d] %q is listed twice", i, d)
			}
		}
	}
	if t := g.Toxicity; t != nil {
		switch {
		case t.Action == aiv1alpha1.GuardActionRedact:
			e.addf("toxicity.action must be block or flag: toxic text cannot be redacted")
		case !validAction(t.Action):
			e.addf("spec.guardrails.toxicity.action %q is not one of block, flag", t.Action)
		}
		if t.Threshold != nil && (*t.Threshold < 0 || *t.Threshold > 100) {
			e.addf("spec.guardrails.toxicity.threshold must be between 0 and 100")
		}
		if t.Model != "" && t.Provider == "" {
			e.addf("toxicity.model names a moderation model of toxicity.provider: set provider too")
		}
	}
	if o := g.Output; o != nil {
		if len(o.JSONSchema) > 65536 {
			e.addf("spec.guardrails.output.jsonSchema is longer than 65536 characters")
		} else if o.JSONSchema != "" && !json.Valid([]byte(o.JSONSchema)) {
			e.addf("spec.guardrails.output.jsonSchema is not valid JSON")
		}
		if o.MaxLength < 0 {
			e.addf("spec.guardrails.output.maxLength must be positive")
		}
		for i, ph := range o.BannedPhrases {
			if ph == "" || len(ph) > 256 {
				e.addf("spec.guardrails.output.bannedPhrases[%d] must be 1 to 256 characters", i)
			}
		}
	}
}

// windows maps rate-limit windows to durations; "1d" is not a Go duration.
var windows = map[aiv1alpha1.RateLimitWindow]time.Duration{
	aiv1alpha1.RateLimitWindowSecond: time.Second,
	aiv1alpha1.RateLimitWindowMinute: time.Minute,
	aiv1alpha1.RateLimitWindowHour:   time.Hour,
	aiv1alpha1.RateLimitWindowDay:    24 * time.Hour,
}
