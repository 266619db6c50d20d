// Package seedenv is the quick start: it turns the AI Orchestration plugin's environment
// variables (the seed's `.env.plugins`) into the same AIProvider, AIRoutePolicy, AIBudget and
// Secret objects a user would write as manifests, so that the data plane can run from a handful
// of variables and the user can later print those objects ([Manifests]) and move to CRDs.
//
// The objects go through the same [compiler.Compile] as manifests and CRs do: there is no
// second configuration path to drift from the first.
//
// Variables (see README.md in this folder for the table):
//
//   - AI_ORCHESTRATION_ENABLED: "false" (or 0/no/off) makes [FromEnv] return [ErrDisabled]; the
//     gateway refuses to start rather than run unconfigured. Empty or true: enabled.
//   - AI_ORCHESTRATION_PORT: listen port (default 3109), see [ListenAddr].
//   - AI_API_KEY: the client bearer token (at least 16 characters). It becomes an admin client
//     key Secret. Required whenever any other setting is present: every call needs a key, and a
//     gateway holding provider keys must not start open or with a key nobody knows.
//   - AI_OPENAI_API_KEY, AI_OPENAI_BASE_URL: an AIProvider "openai" (type openai).
//   - AI_ANTHROPIC_API_KEY, AI_ANTHROPIC_BASE_URL: an AIProvider "anthropic".
//   - AI_GOOGLE_API_KEY, AI_GOOGLE_BASE_URL: an AIProvider "google" (Gemini API).
//   - AI_OLLAMA_BASE_URL, AI_OLLAMA_MODELS: an AIProvider "ollama" (no key); models
//     comma-separated.
//   - AI_DEFAULT_CHAT_MODEL (default gpt-4o-mini, or the first configured provider's own
//     default), AI_DEFAULT_CHAT_PROVIDER (openai|anthropic|google|ollama; default: the provider
//     whose built-in price table lists the model): the AIRoutePolicy "default".
//   - AI_DEFAULT_EMBED_MODEL (default text-embedding-3-small with OpenAI, gemini-embedding-001
//     with Google, none otherwise): the AIRoutePolicy "default-embed", so that an embedding
//     request without a model is served too.
//   - AI_USER_DAILY_LIMIT, AI_USER_MONTHLY_LIMIT: the AIBudget "per-user" (every user
//     separately, action block). AI_ORG_MONTHLY_LIMIT: the AIBudget "per-org".
//   - AI_CACHE_ENABLED, AI_CACHE_TTL (default 1h): the response cache of the default route,
//     scoped per org.
package seedenv

import (
	"cmp"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	aiv1alpha1 "github.com/nself-org/ai-orchestration/api/v1alpha1"
	"github.com/nself-org/ai-orchestration/dataplane/money"
	"github.com/nself-org/ai-orchestration/dataplane/pricing"
	"github.com/nself-org/ai-orchestration/internal/compiler"
)

// Environment variable names. They are the seed's names where the seed has one.
const (
	EnvEnabled         = "AI_ORCHESTRATION_ENABLED"
	EnvPort            = "AI_ORCHESTRATION_PORT"
	EnvAPIKey          = "AI_API_KEY"
	EnvOpenAIKey       = "AI_OPENAI_API_KEY"
	EnvOpenAIBaseURL   = "AI_OPENAI_BASE_URL"
	EnvAnthropicKey    = "AI_ANTHROPIC_API_KEY"
	EnvAnthropicURL    = "AI_ANTHROPIC_BASE_URL"
	EnvGoogleKey       = "AI_GOOGLE_API_KEY"
	EnvGoogleBaseURL   = "AI_GOOGLE_BASE_URL"
	EnvOllamaBaseURL   = "AI_OLLAMA_BASE_URL"
	EnvOllamaModels    = "AI_OLLAMA_MODELS"
	EnvDefaultModel    = "AI_DEFAULT_CHAT_MODEL"
	EnvDefaultProvider = "AI_DEFAULT_CHAT_PROVIDER"
	EnvDefaultEmbed    = "AI_DEFAULT_EMBED_MODEL"
	EnvUserDaily       = "AI_USER_DAILY_LIMIT"
	EnvUserMonthly     = "AI_USER_MONTHLY_LIMIT"
	EnvOrgMonthly      = "AI_ORG_MONTHLY_LIMIT"
	EnvCacheEnabled    = "AI_CACHE_ENABLED"
	EnvCacheTTL        = "AI_CACHE_TTL"
)

// Variables lists every variable this package reads, in documentation order.
var Variables = []string{
	EnvEnabled, EnvPort, EnvAPIKey,
	EnvOpenAIKey, EnvOpenAIBaseURL, EnvAnthropicKey, EnvAnthropicURL, EnvGoogleKey, EnvGoogleBaseURL,
	EnvOllamaBaseURL, EnvOllamaModels,
	EnvDefaultModel, EnvDefaultProvider, EnvDefaultEmbed,
	EnvUserDaily, EnvUserMonthly, EnvOrgMonthly,
	EnvCacheEnabled, EnvCacheTTL,
}

// Names and defaults of the objects built from the environment.
const (
	// Namespace holds every object, as kubectl would apply a manifest without one.
	Namespace = compiler.DefaultNamespace
	// DefaultPort is the gateway's port when AI_ORCHESTRATION_PORT is empty.
	DefaultPort = 3109
	// DefaultChatModel is the seed's default model, used when AI_DEFAULT_CHAT_MODEL is empty and
	// an OpenAI key is set.
	DefaultChatModel = "gpt-4o-mini"
	// DefaultCacheTTL is the cache lifetime when AI_CACHE_ENABLED is true and AI_CACHE_TTL empty.
	DefaultCacheTTL = "1h"
	// RouteName is the AIRoutePolicy that serves the "default" alias and the default model for
	// chat and summaries.
	RouteName = "default"
	// EmbedRouteName is the AIRoutePolicy that serves the "default" alias for embeddings.
	EmbedRouteName = "default-embed"
	// UserBudgetName is the AIBudget from AI_USER_DAILY_LIMIT and AI_USER_MONTHLY_LIMIT.
	UserBudgetName = "per-user"
	// OrgBudgetName is the AIBudget from AI_ORG_MONTHLY_LIMIT.
	OrgBudgetName = "per-org"
	// ClientKeySecretName is the client API-key Secret from AI_API_KEY.
	ClientKeySecretName = "ai-api-key"
	// ProviderKeyDataKey is the data entry of a provider-key Secret holding the key.
	ProviderKeyDataKey = "apiKey"
	// MinAPIKeyLength is the shortest AI_API_KEY accepted: shorter tokens are guessable.
	MinAPIKeyLength = 16
)

// ErrDisabled is returned by [FromEnv] when AI_ORCHESTRATION_ENABLED is false. The gateway
// should refuse to start with this message: running with the plugin switched off would either
// serve nothing or serve what the operator asked to turn off.
var ErrDisabled = errors.New(EnvEnabled + " is false: the AI orchestration gateway is disabled; unset it or set it to true to start")

// providerSpec describes how one keyed or local provider is read from the environment.
type providerSpec struct {
	typ          aiv1alpha1.ProviderType
	keyVar       string // empty for ollama
	urlVar       string
	defaultModel string // the model served by default when this is the first provider configured
	defaultEmbed string // the embedding model served by default, if the provider has one
}

// providerSpecs is in preference order: when several providers could serve the default model,
// the first wins (the seed lists OpenAI first).
var providerSpecs = []providerSpec{
	{aiv1alpha1.ProviderTypeOpenAI, EnvOpenAIKey, EnvOpenAIBaseURL, DefaultChatModel, "text-embedding-3-small"},
	{aiv1alpha1.ProviderTypeAnthropic, EnvAnthropicKey, EnvAnthropicURL, "claude-haiku-4-5", ""}, // no embeddings API
	{aiv1alpha1.ProviderTypeGoogle, EnvGoogleKey, EnvGoogleBaseURL, "gemini-2.0-flash", "gemini-embedding-001"},
	{aiv1alpha1.ProviderTypeOllama, "", EnvOllamaBaseURL, "", ""},
}

// ListenAddr is the listen address from AI_ORCHESTRATION_PORT (":3109" when empty). It does
// not validate: [FromEnv] reports a malformed port by name, and net.Listen refuses it anyway.
func ListenAddr(getenv func(string) string) string {
	p := strings.TrimSpace(getenv(EnvPort))
	if p == "" {
		return ":" + strconv.Itoa(DefaultPort)
	}
	return ":" + p
}

// settings are the parsed variables.
type settings struct {
	apiKey          string
	keys            map[aiv1alpha1.ProviderType]string
	baseURLs        map[aiv1alpha1.ProviderType]string
	ollamaModels    []string
	defaultModel    string
	defaultProvider aiv1alpha1.ProviderType
	embedModel      string
	embedProvider   aiv1alpha1.ProviderType
	userDaily       aiv1alpha1.USD
	userMonthly     aiv1alpha1.USD
	orgMonthly      aiv1alpha1.USD
	cache           bool
	cacheTTL        aiv1alpha1.Duration
}

// FromEnv builds the objects the environment describes. present is true when any variable
// other than AI_ORCHESTRATION_PORT is set (non-empty): the caller then runs on these objects
// instead of a cluster's snapshot Secret. With present false, the Input is empty and err nil.
//
// Errors name the variable at fault. The returned objects compile without problems:
// FromEnv refuses what [compiler.Compile] would leave out, so a typo stops the start instead
// of silently serving less.
func FromEnv(getenv func(string) string) (compiler.Input, bool, error) {
	get := func(k string) string { return strings.TrimSpace(getenv(k)) }
	present := slices.ContainsFunc(Variables, func(k string) bool { return k != EnvPort && get(k) != "" })
	if !present {
		return compiler.Input{}, false, nil
	}
	// Every value ends up in a manifest (Manifests writes them as YAML, which holds only UTF-8):
	// a byte that is not UTF-8 would come back as another character and another configuration.
	// The value itself is not quoted: it may be a key.
	for _, k := range Variables {
		if !utf8.ValidString(getenv(k)) {
			return compiler.Input{}, true, fmt.Errorf("%s is not valid UTF-8 text", k)
		}
	}
	if v := get(EnvEnabled); v != "" {
		on, err := parseBool(EnvEnabled, v)
		if err != nil {
			return compiler.Input{}, true, err
		}
		if !on {
			return compiler.Input{}, true, ErrDisabled
		}
	}
	s, err := parse(get)
	if err != nil {
		return compiler.Input{}, true, err
	}
	in, err := build(s)
	if err != nil {
		return compiler.Input{}, true, err
	}
	// Compile is the judge of the objects; anything it leaves out was caused by a variable, so
	// refusing here keeps "the gateway started" meaning "it serves what the variables say".
	if res := compiler.Compile(in); len(res.Problems) > 0 {
		msgs := make([]string, 0, len(res.Problems))
		for _, p := range res.Problems {
			msgs = append(msgs, fmt.Sprintf("%s %s: %s", p.Kind, p.Name, p.Message))
		}
		return compiler.Input{}, true, fmt.Errorf("failed to build the configuration from the environment: %s", strings.Join(msgs, "; "))
	}
	return in, true, nil
}

func parse(get func(string) string) (settings, error) {
	s := settings{
		keys:     map[aiv1alpha1.ProviderType]string{},
		baseURLs: map[aiv1alpha1.ProviderType]string{},
		apiKey:   get(EnvAPIKey),
	}
	if p := get(EnvPort); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return s, fmt.Errorf("%s %q is not a port number between 1 and 65535", EnvPort, p)
		}
	}
	for _, ps := range providerSpecs {
		if ps.keyVar != "" {
			if k := get(ps.keyVar); k != "" {
				s.keys[ps.typ] = k
			}
		}
		u := get(ps.urlVar)
		if u == "" {
			continue
		}
		if err := checkURL(ps.urlVar, u); err != nil {
			return s, err
		}
		if _, keyed := s.keys[ps.typ]; ps.keyVar != "" && !keyed {
			return s, fmt.Errorf("%s is set but %s is not: a %s provider needs its API key", ps.urlVar, ps.keyVar, ps.typ)
		}
		s.baseURLs[ps.typ] = strings.TrimRight(u, "/")
	}
	for m := range strings.SplitSeq(get(EnvOllamaModels), ",") {
		if m = strings.TrimSpace(m); m != "" && !slices.Contains(s.ollamaModels, m) {
			s.ollamaModels = append(s.ollamaModels, m)
		}
	}
	if len(s.ollamaModels) > 0 && s.baseURLs[aiv1alpha1.ProviderTypeOllama] == "" {
		return s, fmt.Errorf("%s is set but %s is not: name the Ollama server, e.g. http://localhost:11434", EnvOllamaModels, EnvOllamaBaseURL)
	}
	if len(s.keys) == 0 && s.baseURLs[aiv1alpha1.ProviderTypeOllama] == "" {
		return s, fmt.Errorf("no provider is configured: set %s, %s, %s or %s", EnvOpenAIKey, EnvAnthropicKey, EnvGoogleKey, EnvOllamaBaseURL)
	}
	if s.apiKey == "" {
		return s, fmt.Errorf("%s is not set: every call to the gateway needs a client key, so it will not start without one; generate one with `openssl rand -hex 32`", EnvAPIKey)
	}
	if len(s.apiKey) < MinAPIKeyLength {
		return s, fmt.Errorf("%s is %d characters long: use at least %d random characters, e.g. from `openssl rand -hex 32`", EnvAPIKey, len(s.apiKey), MinAPIKeyLength)
	}
	for _, ps := range providerSpecs {
		if k, ok := s.keys[ps.typ]; ok && k == s.apiKey {
			return s, fmt.Errorf("%s is the same as %s: the client key must not be a provider key", EnvAPIKey, ps.keyVar)
		}
	}

	if p := get(EnvDefaultProvider); p != "" {
		i := slices.IndexFunc(providerSpecs, func(ps providerSpec) bool { return string(ps.typ) == p })
		if i < 0 {
			return s, fmt.Errorf("%s %q is not one of openai, anthropic, google, ollama", EnvDefaultProvider, p)
		}
		if !s.configured(providerSpecs[i].typ) {
			return s, fmt.Errorf("%s is %q but that provider is not configured (set %s)", EnvDefaultProvider, p, cmp.Or(providerSpecs[i].keyVar, providerSpecs[i].urlVar))
		}
		s.defaultProvider = providerSpecs[i].typ
	}
	s.defaultModel = get(EnvDefaultModel)
	if err := s.resolveDefault(); err != nil {
		return s, err
	}
	if err := s.resolveEmbed(get(EnvDefaultEmbed)); err != nil {
		return s, err
	}

	var err error
	if s.userDaily, err = parseLimit(EnvUserDaily, get(EnvUserDaily)); err != nil {
		return s, err
	}
	if s.userMonthly, err = parseLimit(EnvUserMonthly, get(EnvUserMonthly)); err != nil {
		return s, err
	}
	if s.orgMonthly, err = parseLimit(EnvOrgMonthly, get(EnvOrgMonthly)); err != nil {
		return s, err
	}
	if v := get(EnvCacheEnabled); v != "" {
		if s.cache, err = parseBool(EnvCacheEnabled, v); err != nil {
			return s, err
		}
	}
	ttl := get(EnvCacheTTL)
	if ttl != "" && !s.cache {
		return s, fmt.Errorf("%s is set but %s is not true: the TTL would have no effect", EnvCacheTTL, EnvCacheEnabled)
	}
	if s.cache {
		ttl = cmp.Or(ttl, DefaultCacheTTL)
		if !durationRE(ttl) {
			return s, fmt.Errorf("%s %q is not a duration such as \"10m\" or \"1h\" (units ms, s, m, h)", EnvCacheTTL, ttl)
		}
		s.cacheTTL = aiv1alpha1.Duration(ttl)
	}
	return s, nil
}

func (s *settings) configured(t aiv1alpha1.ProviderType) bool {
	if t == aiv1alpha1.ProviderTypeOllama {
		return s.baseURLs[t] != ""
	}
	_, ok := s.keys[t]
	return ok
}

// resolveDefault settles the default model and the provider that serves it.
func (s *settings) resolveDefault() error {
	if s.defaultModel == "" {
		// The seed's gpt-4o-mini when OpenAI is configured, else the first configured
		// provider's own cheap default, so that an Anthropic-only setup still has a default.
		for _, ps := range providerSpecs {
			if s.configured(ps.typ) && (s.defaultProvider == "" || s.defaultProvider == ps.typ) {
				s.defaultModel = ps.defaultModel
				s.defaultProvider = cmp.Or(s.defaultProvider, ps.typ)
				break
			}
		}
		if s.defaultModel == "" {
			return fmt.Errorf("%s is not set and Ollama has no built-in default: set it (or %s) to a model the Ollama server has pulled", EnvDefaultModel, EnvOllamaModels)
		}
		return nil
	}
	if s.defaultProvider == "" {
		for _, ps := range providerSpecs {
			if !s.configured(ps.typ) {
				continue
			}
			// Ollama prices every model at $0, so it can serve any name, but only as the last
			// resort: a known paid model belongs to its own provider.
			if _, known := pricing.Entries()[string(ps.typ)+"/"+s.defaultModel]; known || ps.typ == aiv1alpha1.ProviderTypeOllama {
				s.defaultProvider = ps.typ
				break
			}
		}
		if s.defaultProvider == "" {
			return fmt.Errorf("%s %q is not a well-known model of any configured provider: pick one such as %q, or set %s to the provider that serves it", EnvDefaultModel, s.defaultModel, s.firstKnownModel(), EnvDefaultProvider)
		}
	}
	if _, known := pricing.Lookup(string(s.defaultProvider), s.defaultModel); !known {
		return fmt.Errorf("%s %q has no built-in price for provider %s, so its cost could not be counted: pick a well-known model or move to manifests and set its price", EnvDefaultModel, s.defaultModel, s.defaultProvider)
	}
	return nil
}

// resolveEmbed settles the default embedding model: the named one (which must be a known
// embedding model of a configured provider, or any model of Ollama), else the first configured
// provider's own, else none (an embedding request must then name its model).
func (s *settings) resolveEmbed(model string) error {
	if model == "" {
		for _, ps := range providerSpecs {
			if s.configured(ps.typ) && ps.defaultEmbed != "" {
				s.embedModel, s.embedProvider = ps.defaultEmbed, ps.typ
				return nil
			}
		}
		return nil
	}
	for _, ps := range providerSpecs {
		if !s.configured(ps.typ) {
			continue
		}
		if p, known := pricing.Entries()[string(ps.typ)+"/"+model]; (known && p.Embedding) || ps.typ == aiv1alpha1.ProviderTypeOllama {
			s.embedModel, s.embedProvider = model, ps.typ
			return nil
		}
	}
	return fmt.Errorf("%s %q is not a well-known embedding model of any configured provider (e.g. text-embedding-3-small for OpenAI, gemini-embedding-001 for Google; any pulled model with Ollama)", EnvDefaultEmbed, model)
}

func (s *settings) firstKnownModel() string {
	for _, ps := range providerSpecs {
		if s.configured(ps.typ) && ps.defaultModel != "" {
			return ps.defaultModel
		}
	}
	return DefaultChatModel
}

func checkURL(name, v string) error {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.ContainsAny(v, " \t") {
		return fmt.Errorf("%s %q is not an http(s) URL such as https://api.example.com/v1", name, v)
	}
	return nil
}

func parseBool(name, v string) (bool, error) {
	switch strings.ToLower(v) {
	case "1", "t", "true", "yes", "y", "on":
		return true, nil
	case "0", "f", "false", "no", "n", "off":
		return false, nil
	}
	return false, fmt.Errorf("%s %q is not a boolean: use true or false", name, v)
}

// parseLimit checks a USD amount the way the AIBudget schema does, but names the variable.
func parseLimit(name, v string) (aiv1alpha1.USD, error) {
	if v == "" {
		return "", nil
	}
	if _, err := money.ParseUSD(v); err != nil {
		return "", fmt.Errorf("%s %q is not a USD amount such as \"1.00\" (digits, at most 9 decimals, no currency sign): %w", name, v, err)
	}
	return aiv1alpha1.USD(v), nil
}

// durationRE mirrors the schema pattern of [aiv1alpha1.Duration].
func durationRE(v string) bool {
	if v == "" || len(v) > 32 {
		return false
	}
	for v != "" {
		i := 0
		for i < len(v) && v[i] >= '0' && v[i] <= '9' {
			i++
		}
		if i == 0 {
			return false
		}
		v = v[i:]
		switch {
		case strings.HasPrefix(v, "ms"):
			v = v[2:]
		case strings.HasPrefix(v, "s"), strings.HasPrefix(v, "m"), strings.HasPrefix(v, "h"):
			v = v[1:]
		default:
			return false
		}
	}
	return true
}

func objectMeta(name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: Namespace}
}

func typeMeta(kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: aiv1alpha1.GroupVersion.String(), Kind: kind}
}

// providerName is the AIProvider (and route target) name of a provider type.
func providerName(t aiv1alpha1.ProviderType) string { return string(t) }

// keySecretName is the provider-key Secret of a provider type.
func keySecretName(t aiv1alpha1.ProviderType) string { return string(t) + "-api-key" }

// knownModels lists the built-in price table's models of one provider type, sorted, so that a
// caller can name any of them (and embeddings work) without a route.
func knownModels(t aiv1alpha1.ProviderType) []string {
	var out []string
	prefix := string(t) + "/"
	for k := range pricing.Entries() {
		if m, ok := strings.CutPrefix(k, prefix); ok {
			out = append(out, m)
		}
	}
	slices.Sort(out)
	return out
}

func build(s settings) (compiler.Input, error) {
	var in compiler.Input
	for _, ps := range providerSpecs {
		if !s.configured(ps.typ) {
			continue
		}
		models := knownModels(ps.typ)
		if ps.typ == aiv1alpha1.ProviderTypeOllama {
			models = slices.Clone(s.ollamaModels)
		}
		if ps.typ == s.defaultProvider && !slices.Contains(models, s.defaultModel) {
			models = append(models, s.defaultModel)
		}
		if ps.typ == s.embedProvider && !slices.Contains(models, s.embedModel) {
			models = append(models, s.embedModel)
		}
		if len(models) == 0 {
			return in, fmt.Errorf("%s is set but the Ollama provider would serve no model: set %s (comma-separated) or %s", EnvOllamaBaseURL, EnvOllamaModels, EnvDefaultModel)
		}
		slices.Sort(models)
		p := aiv1alpha1.AIProvider{
			TypeMeta:   typeMeta(compiler.KindAIProvider),
			ObjectMeta: objectMeta(providerName(ps.typ)),
			Spec:       aiv1alpha1.AIProviderSpec{Type: ps.typ, BaseURL: s.baseURLs[ps.typ]},
		}
		for _, m := range models {
			pm := aiv1alpha1.ProviderModel{Name: m}
			// Ollama models are not in the price table, so the table cannot say which one embeds.
			if ps.typ == aiv1alpha1.ProviderTypeOllama && ps.typ == s.embedProvider && m == s.embedModel {
				pm.Embedding = true
			}
			p.Spec.Models = append(p.Spec.Models, pm)
		}
		if key, ok := s.keys[ps.typ]; ok {
			p.Spec.APIKeySecretRef = &aiv1alpha1.SecretKeyRef{Name: keySecretName(ps.typ), Key: ProviderKeyDataKey}
			in.Secrets = append(in.Secrets, corev1.Secret{
				TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
				ObjectMeta: objectMeta(keySecretName(ps.typ)),
				Type:       corev1.SecretTypeOpaque,
				Data:       map[string][]byte{ProviderKeyDataKey: []byte(key)},
			})
		}
		in.Providers = append(in.Providers, p)
	}

	route := aiv1alpha1.AIRoutePolicy{
		TypeMeta:   typeMeta(compiler.KindAIRoutePolicy),
		ObjectMeta: objectMeta(RouteName),
		Spec: aiv1alpha1.AIRoutePolicySpec{
			Match: aiv1alpha1.RouteMatch{
				Models: []string{"default", s.defaultModel},
				// Chat and summaries only: an embedding request without a model must not be sent
				// to a chat model.
				Endpoints: []aiv1alpha1.Endpoint{aiv1alpha1.EndpointChat, aiv1alpha1.EndpointSummarize},
			},
			Targets: []aiv1alpha1.RouteTarget{{Provider: providerName(s.defaultProvider), Model: s.defaultModel}},
		},
	}
	if s.cache {
		route.Spec.Cache = &aiv1alpha1.RouteCache{Enabled: true, TTL: s.cacheTTL, Scope: aiv1alpha1.CacheScopeOrg}
	}
	in.Routes = append(in.Routes, route)
	if s.embedModel != "" {
		in.Routes = append(in.Routes, aiv1alpha1.AIRoutePolicy{
			TypeMeta:   typeMeta(compiler.KindAIRoutePolicy),
			ObjectMeta: objectMeta(EmbedRouteName),
			Spec: aiv1alpha1.AIRoutePolicySpec{
				Match: aiv1alpha1.RouteMatch{
					Models:    []string{"default"},
					Endpoints: []aiv1alpha1.Endpoint{aiv1alpha1.EndpointEmbed},
				},
				Targets: []aiv1alpha1.RouteTarget{{Provider: providerName(s.embedProvider), Model: s.embedModel}},
			},
		})
	}

	if s.userDaily != "" || s.userMonthly != "" {
		in.Budgets = append(in.Budgets, budget(UserBudgetName, aiv1alpha1.BudgetScopeUser, s.userDaily, s.userMonthly))
	}
	if s.orgMonthly != "" {
		in.Budgets = append(in.Budgets, budget(OrgBudgetName, aiv1alpha1.BudgetScopeOrg, "", s.orgMonthly))
	}

	key := corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: objectMeta(ClientKeySecretName),
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{aiv1alpha1.APIKeyDataKey: []byte(s.apiKey)},
	}
	key.Labels = map[string]string{aiv1alpha1.LabelAPIKey: "true"}
	key.Annotations = map[string]string{aiv1alpha1.AnnotationRole: "admin"}
	in.Secrets = append(in.Secrets, key)
	return in, nil
}

func budget(name string, scope aiv1alpha1.BudgetScope, daily, monthly aiv1alpha1.USD) aiv1alpha1.AIBudget {
	return aiv1alpha1.AIBudget{
		TypeMeta:   typeMeta(compiler.KindAIBudget),
		ObjectMeta: objectMeta(name),
		Spec: aiv1alpha1.AIBudgetSpec{
			Scope:   scope,
			Subject: "*", // every user (org) separately: "each user gets $1/day"
			Daily:   daily,
			Monthly: monthly,
			Action:  aiv1alpha1.BudgetActionBlock,
		},
	}
}
