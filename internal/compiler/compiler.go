// Package compiler turns AIProvider, AIBudget and AIRoutePolicy objects, plus the Secrets they
// reference, into one sealed [config.Snapshot]. It is pure (no client calls, no clock, no
// randomness): the controllers and the standalone data plane both call [Compile], so the same
// manifests give byte-identical snapshots in a cluster and on a laptop.
//
// Broken objects never fail the whole snapshot: each is left out (or, for a route, loses only its
// broken targets) and reported as a [Problem], so what already works keeps working.
//
// Precedence rules (documented because they decide which object wins):
//   - Objects are processed in namespace/name order; of two routes with the same model alias and
//     the same match, the earlier one in that order wins and the later is reported DuplicateModel.
//   - Model prices: spec price, else the built-in table ([pricing.Lookup]), else the model is left
//     out (UnpricedModel). cachedInputPerMillion falls back to the spec's inputPerMillion, then to
//     the table.
//   - Key material read from Secrets has surrounding whitespace trimmed (a key written with
//     `echo` ends in a newline that no provider accepts).
package compiler

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	_ "time/tzdata" // budgets name IANA zones; the data-plane image may have no zoneinfo.

	corev1 "k8s.io/api/core/v1"

	aiv1alpha1 "github.com/nself-org/ai-orchestration/api/v1alpha1"
	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/money"
	"github.com/nself-org/ai-orchestration/dataplane/pricing"
)

// Kinds named in [Problem.Kind].
const (
	KindAIProvider    = "AIProvider"
	KindAIBudget      = "AIBudget"
	KindAIRoutePolicy = "AIRoutePolicy"
	KindSecret        = "Secret"
)

// Default base URLs, as each provider's own SDK writes them.
const (
	DefaultOpenAIBaseURL    = "https://api.openai.com/v1"
	DefaultAnthropicBaseURL = "https://api.anthropic.com"
	DefaultGoogleBaseURL    = "https://generativelanguage.googleapis.com"
	DefaultOllamaBaseURL    = "http://ollama:11434"
)

// Input is everything the snapshot is compiled from. Order does not matter: Compile sorts.
// Secrets should hold every Secret that providers reference and every client API-key Secret
// (labelled [aiv1alpha1.LabelAPIKey]); other Secrets are ignored.
type Input struct {
	// Providers are every AIProvider to consider, of any namespace.
	Providers []aiv1alpha1.AIProvider
	// Budgets are every AIBudget to consider.
	Budgets []aiv1alpha1.AIBudget
	// Routes are every AIRoutePolicy to consider.
	Routes []aiv1alpha1.AIRoutePolicy
	// Secrets are the provider-key and client API-key Secrets; data or stringData is read.
	Secrets []corev1.Secret
}

// Problem is one reason an object is left out of the snapshot, or published only in part.
type Problem struct {
	// Kind is one of the Kind* constants.
	Kind string `json:"kind"`
	// Namespace and Name identify the object the problem belongs to.
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Reason is one of the Reason* constants of api/v1alpha1 (conditions.go).
	Reason string `json:"reason"`
	// Message says what is wrong and what to do, for the Ready condition's message.
	Message string `json:"message"`
	// Excluded is true when the whole object is left out of the snapshot; false when it is
	// published without the broken part (a model, a route target, a downgrade model).
	Excluded bool `json:"excluded"`
}

// Result is the outcome of [Compile].
type Result struct {
	// Snapshot is sealed (Version and Hash set) and never nil.
	Snapshot *config.Snapshot
	// Problems are sorted by kind, namespace and name, then in the order found.
	Problems []Problem
}

// ProblemsFor returns the problems of one object, for its status conditions.
func (r Result) ProblemsFor(kind, namespace, name string) []Problem {
	var out []Problem
	for _, p := range r.Problems {
		if p.Kind == kind && p.Namespace == namespace && p.Name == name {
			out = append(out, p)
		}
	}
	return out
}

// Excluded reports whether an object is left out of the snapshot.
func (r Result) Excluded(kind, namespace, name string) bool {
	return slices.ContainsFunc(r.ProblemsFor(kind, namespace, name), func(p Problem) bool { return p.Excluded })
}

// compilation carries the state of one Compile call.
type compilation struct {
	problems []Problem
	secrets  map[string]*corev1.Secret // by "ns/name"
	// declared holds every provider in the input by "ns/name" (valid or not), to tell a target's
	// unknown provider from a provider that exists but is left out.
	declared map[string]*aiv1alpha1.AIProvider
	// published holds the compiled providers by "ns/name".
	published map[string]*config.Provider
	// aliases indexes the published routes by match key, then model ("*" for every model), to
	// the first of them (its index in the snapshot) that serves it, so that a route is checked
	// against the earlier ones in one lookup per model: comparing it with every earlier route
	// took 40% of compiling 1 000 routes.
	aliases map[string]map[string]int
}

func (c *compilation) report(kind, ns, name, reason string, excluded bool, format string, args ...any) {
	c.problems = append(c.problems, Problem{
		Kind: kind, Namespace: ns, Name: name, Reason: reason,
		Message: fmt.Sprintf(format, args...), Excluded: excluded,
	})
}

func key(ns, name string) string { return ns + "/" + name }

// sortByKey returns a copy of objs sorted by namespace/name and drops (and reports) repeated
// keys, which only a manifest folder can contain. The keys are sorted, not the objects: an
// AIBudget is half a kilobyte, and moving 10 000 of them about took 40% of a compile.
func sortByKey[T any](c *compilation, kind string, objs []T, meta func(*T) (string, string)) []T {
	type entry struct {
		ns, name string
		i        int
	}
	keys := make([]entry, len(objs))
	for i := range objs {
		ns, name := meta(&objs[i])
		keys[i] = entry{ns, name, i}
	}
	slices.SortStableFunc(keys, func(a, b entry) int {
		return cmp.Or(cmp.Compare(a.ns, b.ns), cmp.Compare(a.name, b.name))
	})
	out := make([]T, 0, len(objs))
	for j, k := range keys {
		if j > 0 && k.ns == keys[j-1].ns && k.name == keys[j-1].name {
			c.report(kind, k.ns, k.name, aiv1alpha1.ReasonInvalidSpec, false,
				"%s %s is declared more than once: only the first declaration is used", kind, key(k.ns, k.name))
			continue
		}
		out = append(out, objs[k.i])
	}
	return out
}

// Compile builds the snapshot from in. It never fails: broken objects become [Problem]s.
func Compile(in Input) Result {
	c := &compilation{
		secrets:   map[string]*corev1.Secret{},
		declared:  map[string]*aiv1alpha1.AIProvider{},
		published: map[string]*config.Provider{},
		aliases:   map[string]map[string]int{},
	}
	secrets := sortByKey(c, KindSecret, in.Secrets, func(s *corev1.Secret) (string, string) { return s.Namespace, s.Name })
	providers := sortByKey(c, KindAIProvider, in.Providers, func(p *aiv1alpha1.AIProvider) (string, string) { return p.Namespace, p.Name })
	budgets := sortByKey(c, KindAIBudget, in.Budgets, func(b *aiv1alpha1.AIBudget) (string, string) { return b.Namespace, b.Name })
	routes := sortByKey(c, KindAIRoutePolicy, in.Routes, func(r *aiv1alpha1.AIRoutePolicy) (string, string) { return r.Namespace, r.Name })

	snap := &config.Snapshot{
		Providers: []config.Provider{},
		Budgets:   []config.Budget{},
		Routes:    []config.Route{},
		APIKeys:   []config.APIKey{},
	}
	for i := range secrets {
		c.secrets[key(secrets[i].Namespace, secrets[i].Name)] = &secrets[i]
	}
	for i := range providers {
		p := &providers[i]
		c.declared[key(p.Namespace, p.Name)] = p
		if cp, ok := c.compileProvider(p); ok {
			snap.Providers = append(snap.Providers, cp)
		}
	}
	for i := range snap.Providers {
		c.published[snap.Providers[i].Name] = &snap.Providers[i]
	}
	for i := range routes {
		if r, ok := c.compileRoute(&routes[i], snap.Routes); ok {
			c.addAliases(len(snap.Routes), r.Match)
			snap.Routes = append(snap.Routes, r)
		}
	}
	for i := range budgets {
		if b, ok := c.compileBudget(&budgets[i], snap); ok {
			snap.Budgets = append(snap.Budgets, b)
		}
	}
	snap.APIKeys = c.compileAPIKeys(secrets)

	// Seal fails only if JSON encoding fails, which these plain types (no floats, maps or
	// interfaces) cannot: reaching the panic is a bug in this package, not bad input.
	if err := snap.Seal(); err != nil {
		panic(fmt.Sprintf("failed to seal snapshot: %v", err))
	}
	slices.SortStableFunc(c.problems, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return Result{Snapshot: snap, Problems: c.problems}
}

// secretValue returns the trimmed value of one Secret entry, reading stringData too (a manifest
// folder's Secrets have not been through the API server that would merge it into data).
func secretValue(s *corev1.Secret, k string) (string, bool) {
	if v, ok := s.StringData[k]; ok {
		v = strings.TrimSpace(v)
		return v, v != ""
	}
	v := strings.TrimSpace(string(s.Data[k]))
	return v, v != ""
}

func defaultBaseURL(t aiv1alpha1.ProviderType) string {
	switch t {
	case aiv1alpha1.ProviderTypeOpenAI:
		return DefaultOpenAIBaseURL
	case aiv1alpha1.ProviderTypeAnthropic:
		return DefaultAnthropicBaseURL
	case aiv1alpha1.ProviderTypeGoogle:
		return DefaultGoogleBaseURL
	case aiv1alpha1.ProviderTypeOllama:
		return DefaultOllamaBaseURL
	}
	return ""
}

func (c *compilation) compileProvider(p *aiv1alpha1.AIProvider) (config.Provider, bool) {
	ns, name := p.Namespace, p.Name
	if e := validateProvider(p); len(e) > 0 {
		c.report(KindAIProvider, ns, name, aiv1alpha1.ReasonInvalidSpec, true, "%s", strings.Join(e, "; "))
		return config.Provider{}, false
	}
	s := &p.Spec
	out := config.Provider{
		Name:    key(ns, name),
		Type:    string(s.Type),
		BaseURL: cmp.Or(strings.TrimRight(s.BaseURL, "/"), defaultBaseURL(s.Type)),
		Models:  []config.Model{},
	}
	var e errs
	out.Timeout = parseDuration("spec.timeout", s.Timeout, &e)
	if ref := s.APIKeySecretRef; ref != nil {
		sec, ok := c.secrets[key(ns, ref.Name)]
		if !ok {
			c.report(KindAIProvider, ns, name, aiv1alpha1.ReasonSecretNotFound, true,
				"Secret %q (spec.apiKeySecretRef) does not exist in namespace %q", ref.Name, ns)
			return config.Provider{}, false
		}
		v, ok := secretValue(sec, ref.Key)
		if !ok {
			c.report(KindAIProvider, ns, name, aiv1alpha1.ReasonSecretKeyMissing, true,
				"Secret %q has no non-empty key %q (spec.apiKeySecretRef.key)", ref.Name, ref.Key)
			return config.Provider{}, false
		}
		out.APIKey = config.Secret(v)
	}
	if l := s.Limits; l != nil {
		out.Limits = config.ProviderLimits{RequestsPerMinute: l.RequestsPerMinute, TokensPerMinute: l.TokensPerMinute}
	}
	if s.Type == aiv1alpha1.ProviderTypeMock {
		out.Mock = &config.Mock{}
		if m := s.Mock; m != nil {
			out.Mock = &config.Mock{Reply: m.Reply, CompletionTokens: m.CompletionTokens, Latency: parseDuration("spec.mock.latency", m.Latency, &e)}
		}
	}
	for _, m := range s.Models {
		cm, ok := resolveModel(s.Type, m)
		if !ok {
			c.report(KindAIProvider, ns, name, aiv1alpha1.ReasonUnpricedModel, false,
				"model %q has no price: set inputPerMillion and outputPerMillion (USD per million tokens); it is left out", m.Name)
			continue
		}
		out.Models = append(out.Models, cm)
	}
	if len(out.Models) == 0 {
		c.report(KindAIProvider, ns, name, aiv1alpha1.ReasonUnpricedModel, true,
			"no model of this provider has a price, so it serves nothing and is left out")
		return config.Provider{}, false
	}
	slices.SortFunc(out.Models, func(a, b config.Model) int { return cmp.Compare(a.Name, b.Name) })
	return out, true
}

// resolveModel merges a spec model with the built-in price table; ok is false when the model has
// no price from either.
func resolveModel(t aiv1alpha1.ProviderType, m aiv1alpha1.ProviderModel) (config.Model, bool) {
	table, inTable := pricing.Lookup(string(t), m.Name)
	var e errs // prices were validated already
	in, hasIn := parseUSD("", m.InputPerMillion, &e)
	outP, hasOut := parseUSD("", m.OutputPerMillion, &e)
	cached, hasCached := parseUSD("", m.CachedInputPerMillion, &e)
	if !inTable && !hasIn && !hasOut {
		return config.Model{}, false
	}
	pick := func(spec money.Nanos, has bool, fromTable money.Nanos) money.Nanos {
		if has {
			return spec
		}
		return fromTable
	}
	cm := config.Model{
		Name:             m.Name,
		InputPerMillion:  pick(in, hasIn, table.InputPerMillion),
		OutputPerMillion: pick(outP, hasOut, table.OutputPerMillion),
		ContextWindow:    cmp.Or(m.ContextWindow, table.ContextWindow),
		MaxOutputTokens:  cmp.Or(m.MaxOutputTokens, table.MaxOutputTokens),
		Embedding:        m.Embedding || table.Embedding,
	}
	switch {
	case hasCached:
		cm.CachedInputPerMillion = cached
	case hasIn:
		cm.CachedInputPerMillion = in
	default:
		cm.CachedInputPerMillion = cmp.Or(table.CachedInputPerMillion, table.InputPerMillion)
	}
	return cm, true
}

// matchKey is the canonical form of a route's match without its models: two routes with equal
// keys that share a model alias are ambiguous.
func matchKey(m config.Match) string {
	return strings.Join(m.Endpoints, ",") + "|" + strings.Join(m.Orgs, ",") + "|" + strings.Join(m.Users, ",")
}

// aliasModels are the models a match serves, "*" standing for every model.
func aliasModels(m config.Match) []string {
	if len(m.Models) == 0 {
		return []string{"*"} // an empty list matches every model
	}
	return m.Models
}

// addAliases records the route at index i, whose match is m, in c.aliases.
func (c *compilation) addAliases(i int, m config.Match) {
	key := matchKey(m)
	byModel := c.aliases[key]
	if byModel == nil {
		byModel = map[string]int{}
		c.aliases[key] = byModel
	}
	for _, model := range aliasModels(m) {
		if _, taken := byModel[model]; !taken {
			byModel[model] = i
		}
	}
}

func sortedCopy[T ~string](l []T) []string {
	if len(l) == 0 {
		return nil
	}
	out := make([]string, len(l))
	for i, v := range l {
		out[i] = string(v)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func (c *compilation) compileRoute(r *aiv1alpha1.AIRoutePolicy, earlier []config.Route) (config.Route, bool) {
	ns, name := r.Namespace, r.Name
	if e := validateRoute(r); len(e) > 0 {
		c.report(KindAIRoutePolicy, ns, name, aiv1alpha1.ReasonInvalidSpec, true, "%s", strings.Join(e, "; "))
		return config.Route{}, false
	}
	s := &r.Spec
	var e errs
	out := config.Route{
		Name: key(ns, name),
		Match: config.Match{
			Models:    sortedCopy(s.Match.Models),
			Endpoints: sortedCopy(s.Match.Endpoints),
			Orgs:      sortedCopy(s.Match.Orgs),
			Users:     sortedCopy(s.Match.Users),
		},
		Targets:  []config.Target{},
		Strategy: string(cmp.Or(s.Strategy, aiv1alpha1.RouteStrategyWeighted)),
		Timeout:  parseDuration("spec.timeout", s.Timeout, &e),
	}
	for _, t := range s.Targets {
		pk := key(ns, t.Provider)
		decl, exists := c.declared[pk]
		if !exists {
			c.report(KindAIRoutePolicy, ns, name, aiv1alpha1.ReasonProviderNotFound, false,
				"target %s/%s: AIProvider %q does not exist in namespace %q; the target is left out", t.Provider, t.Model, t.Provider, ns)
			continue
		}
		if !slices.ContainsFunc(decl.Spec.Models, func(m aiv1alpha1.ProviderModel) bool { return m.Name == t.Model }) {
			c.report(KindAIRoutePolicy, ns, name, aiv1alpha1.ReasonModelNotFound, false,
				"target %s/%s: AIProvider %q does not list model %q in spec.models; the target is left out", t.Provider, t.Model, t.Provider, t.Model)
			continue
		}
		prov, ok := c.published[pk]
		if !ok {
			c.report(KindAIRoutePolicy, ns, name, aiv1alpha1.ReasonProviderNotReady, false,
				"target %s/%s: AIProvider %q is not Ready (see its conditions); the target is left out", t.Provider, t.Model, t.Provider)
			continue
		}
		if !slices.ContainsFunc(prov.Models, func(m config.Model) bool { return m.Name == t.Model }) {
			c.report(KindAIRoutePolicy, ns, name, aiv1alpha1.ReasonModelNotFound, false,
				"target %s/%s: model %q of AIProvider %q is left out (see the provider's conditions); the target is left out", t.Provider, t.Model, t.Model, t.Provider)
			continue
		}
		weight := int32(1)
		if t.Weight != nil {
			weight = *t.Weight
		}
		out.Targets = append(out.Targets, config.Target{Provider: pk, Model: t.Model, Weight: weight, Priority: t.Priority})
	}
	if len(out.Targets) == 0 {
		c.report(KindAIRoutePolicy, ns, name, aiv1alpha1.ReasonNoReadyTargets, true,
			"none of the %d targets resolved, so the policy is left out", len(s.Targets))
		return config.Route{}, false
	}
	// The first earlier route with the same match key that shares a model wins; the model
	// named is the first of ours it shares.
	models := aliasModels(out.Match)
	if byModel := c.aliases[matchKey(out.Match)]; byModel != nil {
		first := -1
		for _, m := range models {
			if i, ok := byModel[m]; ok && (first < 0 || i < first) {
				first = i
			}
		}
		for _, m := range models {
			if i, ok := byModel[m]; ok && i == first {
				if m == "*" {
					m = "every model (empty match.models)"
				} else {
					m = "model " + strconv.Quote(m)
				}
				c.report(KindAIRoutePolicy, ns, name, aiv1alpha1.ReasonDuplicateModel, true,
					"%s with the same match is already routed by AIRoutePolicy %q (which wins by namespace/name order); give this policy a different match or remove the alias", m, earlier[first].Name)
				return config.Route{}, false
			}
		}
	}
	if rt := s.Retries; rt != nil {
		out.Retries = config.Retries{Attempts: rt.Attempts, Backoff: parseDuration("spec.retries.backoff", rt.Backoff, &e)}
	}
	for _, l := range s.RateLimits {
		out.RateLimits = append(out.RateLimits, config.RateLimit{
			Name:      l.Name,
			Per:       string(l.Per),
			Algorithm: string(cmp.Or(l.Algorithm, aiv1alpha1.RateLimitAlgorithmTokenBucket)),
			Requests:  l.Requests,
			Tokens:    l.Tokens,
			Window:    windows[cmp.Or(l.Window, aiv1alpha1.RateLimitWindowMinute)],
			Burst:     l.Burst,
			FailMode:  string(cmp.Or(l.FailMode, aiv1alpha1.FailModeOpen)),
			Shadow:    l.Shadow,
		})
	}
	slices.SortFunc(out.RateLimits, func(a, b config.RateLimit) int { return cmp.Compare(a.Name, b.Name) })
	if ca := s.Cache; ca != nil && ca.Enabled {
		out.Cache = config.Cache{
			Enabled: true,
			TTL:     parseDuration("spec.cache.ttl", ca.TTL, &e),
			Scope:   string(cmp.Or(ca.Scope, aiv1alpha1.CacheScopeOrg)),
		}
	}
	if g := s.Guardrails; g != nil {
		if p := g.PII; p != nil {
			applyTo := sortedCopy(p.ApplyTo)
			if len(applyTo) == 0 {
				applyTo = []string{"input"}
			}
			out.Guardrails.PII = &config.PIIGuard{Action: string(p.Action), Types: sortedCopy(p.Types), ApplyTo: applyTo}
		}
		if t := g.Toxicity; t != nil {
			threshold := int32(80)
			if t.Threshold != nil {
				threshold = *t.Threshold
			}
			out.Guardrails.Toxicity = &config.ToxicityGuard{Action: string(t.Action), Threshold: threshold}
			if t.Provider != "" {
				if pk := c.moderationProvider(ns, name, t.Provider); pk != "" {
					out.Guardrails.Toxicity.Provider, out.Guardrails.Toxicity.Model = pk, t.Model
				}
			}
		}
		if o := g.Output; o != nil {
			out.Guardrails.Output = &config.OutputGuard{JSONSchema: o.JSONSchema, MaxLength: o.MaxLength, BannedPhrases: sortedCopy(o.BannedPhrases)}
		}
	}
	if po := s.PromptOptimization; po != nil {
		out.PromptOptimization = config.PromptOptimization{NormalizeWhitespace: po.NormalizeWhitespace, MaxInputTokens: po.MaxInputTokens}
	}
	return out, true
}

func (c *compilation) compileBudget(b *aiv1alpha1.AIBudget, snap *config.Snapshot) (config.Budget, bool) {
	ns, name := b.Namespace, b.Name
	if e := validateBudget(b); len(e) > 0 {
		c.report(KindAIBudget, ns, name, aiv1alpha1.ReasonInvalidSpec, true, "%s", strings.Join(e, "; "))
		return config.Budget{}, false
	}
	s := &b.Spec
	var e errs
	out := config.Budget{
		Name:        key(ns, name),
		Scope:       string(s.Scope),
		Subject:     s.Subject,
		Action:      string(cmp.Or(s.Action, aiv1alpha1.BudgetActionBlock)),
		DowngradeTo: s.DowngradeTo,
		TimeZone:    cmp.Or(s.TimeZone, "UTC"),
	}
	if s.Scope == aiv1alpha1.BudgetScopeGlobal {
		out.Subject = "" // global counts everyone together; a subject would only mislead
	}
	for _, p := range []struct {
		period string
		v      aiv1alpha1.USD
	}{{config.PeriodDaily, s.Daily}, {config.PeriodWeekly, s.Weekly}, {config.PeriodMonthly, s.Monthly}} {
		if n, ok := parseUSD("", p.v, &e); ok {
			out.Limits = append(out.Limits, config.BudgetLimit{Period: p.period, Limit: n})
		}
	}
	if len(s.AlertThresholds) > 0 {
		out.AlertThresholds = slices.Sorted(slices.Values(s.AlertThresholds))
	}
	// A budget with an unknown downgrade model is still published: leaving it out would lift
	// the limit entirely, which is worse than a downgrade that fails.
	if s.DowngradeTo != "" && !modelServed(snap, s.DowngradeTo) {
		c.report(KindAIBudget, ns, name, aiv1alpha1.ReasonModelNotFound, false,
			"spec.downgradeTo %q is not served by any Ready AIProvider or AIRoutePolicy; downgraded requests will fail", s.DowngradeTo)
	}
	return out, true
}

// modelServed reports whether a caller could request model: some published provider lists it
// or some published route matches it as an alias.
func modelServed(snap *config.Snapshot, model string) bool {
	for _, p := range snap.Providers {
		if slices.ContainsFunc(p.Models, func(m config.Model) bool { return m.Name == model }) {
			return true
		}
	}
	for _, r := range snap.Routes {
		if slices.Contains(r.Match.Models, model) {
			return true
		}
	}
	return false
}

func (c *compilation) compileAPIKeys(secrets []corev1.Secret) []config.APIKey {
	out := []config.APIKey{}
	owner := map[string]string{} // sha256 -> key name, to refuse one token under two names
	for i := range secrets {
		s := &secrets[i]
		if s.Labels[aiv1alpha1.LabelAPIKey] != "true" {
			continue
		}
		ns, name := s.Namespace, s.Name
		token, ok := secretValue(s, aiv1alpha1.APIKeyDataKey)
		if !ok {
			c.report(KindSecret, ns, name, aiv1alpha1.ReasonSecretKeyMissing, true,
				"client API-key Secret has no non-empty data key %q holding the token", aiv1alpha1.APIKeyDataKey)
			continue
		}
		role := cmp.Or(strings.TrimSpace(s.Annotations[aiv1alpha1.AnnotationRole]), config.RoleApp)
		if role != config.RoleApp && role != config.RoleAdmin {
			c.report(KindSecret, ns, name, aiv1alpha1.ReasonInvalidSpec, true,
				"annotation %s %q is not one of admin, app", aiv1alpha1.AnnotationRole, role)
			continue
		}
		sum := sha256.Sum256([]byte(token))
		h := hex.EncodeToString(sum[:])
		if prev, dup := owner[h]; dup {
			c.report(KindSecret, ns, name, aiv1alpha1.ReasonInvalidSpec, true,
				"the token is the same as client API-key Secret %q: every key needs its own token", prev)
			continue
		}
		owner[h] = key(ns, name)
		var orgs []string
		for o := range strings.SplitSeq(s.Annotations[aiv1alpha1.AnnotationOrgs], ",") {
			if o = strings.TrimSpace(o); o != "" {
				orgs = append(orgs, o)
			}
		}
		slices.Sort(orgs)
		out = append(out, config.APIKey{Name: key(ns, name), SHA256: h, Role: role, Orgs: slices.Compact(orgs)})
	}
	return out
}

// moderationProvider resolves the AIProvider a toxicity guard names to its "namespace/name",
// or "" (the built-in scorer) when it does not exist, is not of type openai (the only type
// with a moderation model) or is not Ready; each case is reported on the policy.
func (c *compilation) moderationProvider(ns, name, provider string) string {
	pk := key(ns, provider)
	decl, exists := c.declared[pk]
	switch {
	case !exists:
		c.report(KindAIRoutePolicy, ns, name, aiv1alpha1.ReasonProviderNotFound, false,
			"spec.guardrails.toxicity.provider: AIProvider %q does not exist in namespace %q; toxicity is scored by the built-in scorer", provider, ns)
		return ""
	case decl.Spec.Type != aiv1alpha1.ProviderTypeOpenAI:
		c.report(KindAIRoutePolicy, ns, name, aiv1alpha1.ReasonInvalidSpec, false,
			"spec.guardrails.toxicity.provider: AIProvider %q is of type %q, but only openai offers a moderation model; toxicity is scored by the built-in scorer", provider, decl.Spec.Type)
		return ""
	}
	if _, ok := c.published[pk]; !ok {
		c.report(KindAIRoutePolicy, ns, name, aiv1alpha1.ReasonProviderNotReady, false,
			"spec.guardrails.toxicity.provider: AIProvider %q is not Ready (see its conditions); toxicity is scored by the built-in scorer", provider)
		return ""
	}
	return pk
}
