package compiler

import (
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	aiv1alpha1 "github.com/nself-org/ai-orchestration/api/v1alpha1"
	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/money"
)

// compileYAML decodes manifests and compiles them, failing the test on a decoding error.
func compileYAML(t *testing.T, manifests string) Result {
	t.Helper()
	var in Input
	require.NoError(t, decodeInto(&in, "test.yaml", []byte(manifests)))
	return Compile(in)
}

// problem is the comparable part of a Problem (messages are checked separately).
type problem struct {
	Kind, Name, Reason string
	Excluded           bool
}

func problemsOf(r Result) []problem {
	out := []problem{}
	for _, p := range r.Problems {
		out = append(out, problem{p.Kind, p.Name, p.Reason, p.Excluded})
	}
	return out
}

const mockProvider = `
apiVersion: ai.nself.org/v1alpha1
kind: AIProvider
metadata: {name: mock}
spec:
  type: mock
  models: [{name: mock-small}]
`

const openAIProvider = `
apiVersion: ai.nself.org/v1alpha1
kind: AIProvider
metadata: {name: openai}
spec:
  type: openai
  apiKeySecretRef: {name: openai-key, key: apiKey}
  models:
  - name: gpt-4o-mini
  - name: in-house-model
`

const openAIKeySecret = `
apiVersion: v1
kind: Secret
metadata: {name: openai-key}
stringData: {apiKey: "sk-test\n"}
`

func TestCompile(t *testing.T) {
	tests := map[string]struct {
		manifests    string
		wantProblems []problem
		// wantMessage, when set, must appear in the first problem's message.
		wantMessage string
		check       func(t *testing.T, s *config.Snapshot)
	}{
		"a provider gets its default base URL, its key from the Secret and table prices": {
			manifests: openAIProvider + "---" + openAIKeySecret,
			wantProblems: []problem{
				{KindAIProvider, "openai", aiv1alpha1.ReasonUnpricedModel, false},
			},
			wantMessage: `model "in-house-model" has no price`,
			check: func(t *testing.T, s *config.Snapshot) {
				require.Len(t, s.Providers, 1)
				p := s.Providers[0]
				require.Equal(t, "default/openai", p.Name)
				require.Equal(t, DefaultOpenAIBaseURL, p.BaseURL)
				require.Equal(t, "sk-test", p.APIKey.Reveal(), "surrounding whitespace of key material is trimmed")
				require.Len(t, p.Models, 1, "the unpriced model is left out")
				require.Equal(t, money.MustParseUSD("0.15"), p.Models[0].InputPerMillion)
				require.Equal(t, money.MustParseUSD("0.60"), p.Models[0].OutputPerMillion)
			},
		},
		"a provider whose Secret does not exist is left out": {
			manifests: openAIProvider,
			wantProblems: []problem{
				{KindAIProvider, "openai", aiv1alpha1.ReasonSecretNotFound, true},
			},
			wantMessage: `Secret "openai-key" (spec.apiKeySecretRef) does not exist in namespace "default"`,
			check:       func(t *testing.T, s *config.Snapshot) { require.Empty(t, s.Providers) },
		},
		"a provider whose Secret lacks the key is left out": {
			manifests: openAIProvider + `---
apiVersion: v1
kind: Secret
metadata: {name: openai-key}
stringData: {other: x}
`,
			wantProblems: []problem{{KindAIProvider, "openai", aiv1alpha1.ReasonSecretKeyMissing, true}},
			wantMessage:  `no non-empty key "apiKey"`,
		},
		"a Secret in another namespace is not used": {
			manifests: openAIProvider + `---
apiVersion: v1
kind: Secret
metadata: {name: openai-key, namespace: other}
stringData: {apiKey: sk}
`,
			wantProblems: []problem{{KindAIProvider, "openai", aiv1alpha1.ReasonSecretNotFound, true}},
		},
		"spec prices override the table and cached input defaults to the input price": {
			manifests: `
apiVersion: ai.nself.org/v1alpha1
kind: AIProvider
metadata: {name: vllm}
spec:
  type: openai-compatible
  baseURL: http://vllm:8000/v1/
  models: [{name: llama, inputPerMillion: "0.05", outputPerMillion: "0.1", maxOutputTokens: 100}]
`,
			check: func(t *testing.T, s *config.Snapshot) {
				m := s.Providers[0].Models[0]
				require.Equal(t, "http://vllm:8000/v1", s.Providers[0].BaseURL, "a trailing slash is dropped")
				require.Equal(t, money.Nanos(50_000_000), m.InputPerMillion)
				require.Equal(t, money.Nanos(100_000_000), m.OutputPerMillion)
				require.Equal(t, money.Nanos(50_000_000), m.CachedInputPerMillion)
				require.Equal(t, int64(100), m.MaxOutputTokens)
			},
		},
		"a mock provider gets a mock config and free models": {
			manifests: mockProvider,
			check: func(t *testing.T, s *config.Snapshot) {
				require.NotNil(t, s.Providers[0].Mock)
				require.Zero(t, s.Providers[0].Models[0].InputPerMillion)
				require.Empty(t, s.Providers[0].BaseURL)
			},
		},
		"an openai provider without a key reference is refused as the API server would": {
			manifests: `
apiVersion: ai.nself.org/v1alpha1
kind: AIProvider
metadata: {name: openai}
spec: {type: openai, models: [{name: gpt-4o-mini}]}
`,
			wantProblems: []problem{{KindAIProvider, "openai", aiv1alpha1.ReasonInvalidSpec, true}},
			wantMessage:  "spec.apiKeySecretRef is required for types openai, anthropic and google",
		},
		"an unknown provider type is refused": {
			manifests: `
apiVersion: ai.nself.org/v1alpha1
kind: AIProvider
metadata: {name: x}
spec: {type: cohere, models: [{name: m}]}
`,
			wantProblems: []problem{{KindAIProvider, "x", aiv1alpha1.ReasonInvalidSpec, true}},
			wantMessage:  `spec.type "cohere" is not one of`,
		},
		"a model listed twice in a provider is refused": {
			manifests: `
apiVersion: ai.nself.org/v1alpha1
kind: AIProvider
metadata: {name: mock}
spec: {type: mock, models: [{name: a}, {name: a}]}
`,
			wantProblems: []problem{{KindAIProvider, "mock", aiv1alpha1.ReasonInvalidSpec, true}},
			wantMessage:  `"a" is listed twice`,
		},
		"a route target naming an unknown provider or model is left out but the route stays": {
			manifests: mockProvider + `---
apiVersion: ai.nself.org/v1alpha1
kind: AIRoutePolicy
metadata: {name: r}
spec:
  targets:
  - {provider: mock, model: mock-small}
  - {provider: missing, model: x}
  - {provider: mock, model: not-listed}
`,
			wantProblems: []problem{
				{KindAIRoutePolicy, "r", aiv1alpha1.ReasonProviderNotFound, false},
				{KindAIRoutePolicy, "r", aiv1alpha1.ReasonModelNotFound, false},
			},
			wantMessage: `AIProvider "missing" does not exist in namespace "default"`,
			check: func(t *testing.T, s *config.Snapshot) {
				require.Len(t, s.Routes, 1)
				require.Equal(t, []config.Target{{Provider: "default/mock", Model: "mock-small", Weight: 1}}, s.Routes[0].Targets)
				require.Equal(t, config.StrategyWeighted, s.Routes[0].Strategy, "strategy defaults to weighted")
			},
		},
		"a route whose only provider is not ready is left out": {
			manifests: openAIProvider + `---
apiVersion: ai.nself.org/v1alpha1
kind: AIRoutePolicy
metadata: {name: r}
spec:
  targets: [{provider: openai, model: gpt-4o-mini}]
`,
			wantProblems: []problem{
				{KindAIProvider, "openai", aiv1alpha1.ReasonSecretNotFound, true},
				{KindAIRoutePolicy, "r", aiv1alpha1.ReasonProviderNotReady, false},
				{KindAIRoutePolicy, "r", aiv1alpha1.ReasonNoReadyTargets, true},
			},
			check: func(t *testing.T, s *config.Snapshot) { require.Empty(t, s.Routes) },
		},
		"a target on an unpriced model is reported as model not found": {
			manifests: openAIProvider + "---" + openAIKeySecret + `---
apiVersion: ai.nself.org/v1alpha1
kind: AIRoutePolicy
metadata: {name: r}
spec:
  targets: [{provider: openai, model: gpt-4o-mini}, {provider: openai, model: in-house-model}]
`,
			wantProblems: []problem{
				{KindAIProvider, "openai", aiv1alpha1.ReasonUnpricedModel, false},
				{KindAIRoutePolicy, "r", aiv1alpha1.ReasonModelNotFound, false},
			},
		},
		"the later of two routes claiming the same alias with the same match is left out": {
			manifests: mockProvider + `---
apiVersion: ai.nself.org/v1alpha1
kind: AIRoutePolicy
metadata: {name: b}
spec:
  match: {models: [default, fast]}
  targets: [{provider: mock, model: mock-small}]
---
apiVersion: ai.nself.org/v1alpha1
kind: AIRoutePolicy
metadata: {name: a}
spec:
  match: {models: [default]}
  targets: [{provider: mock, model: mock-small}]
---
apiVersion: ai.nself.org/v1alpha1
kind: AIRoutePolicy
metadata: {name: c}
spec:
  match: {models: [default], orgs: [acme]}
  targets: [{provider: mock, model: mock-small}]
`,
			wantProblems: []problem{{KindAIRoutePolicy, "b", aiv1alpha1.ReasonDuplicateModel, true}},
			wantMessage:  `model "default" with the same match is already routed by AIRoutePolicy "default/a"`,
			check: func(t *testing.T, s *config.Snapshot) {
				require.Len(t, s.Routes, 2)
				require.Equal(t, "default/a", s.Routes[0].Name)
				require.Equal(t, "default/c", s.Routes[1].Name, "a narrower match is not a duplicate")
			},
		},
		"a rate limit with both requests and tokens is refused": {
			manifests: mockProvider + `---
apiVersion: ai.nself.org/v1alpha1
kind: AIRoutePolicy
metadata: {name: r}
spec:
  targets: [{provider: mock, model: mock-small}]
  rateLimits: [{name: l, per: user, requests: 1, tokens: 1}]
`,
			wantProblems: []problem{{KindAIRoutePolicy, "r", aiv1alpha1.ReasonInvalidSpec, true}},
			wantMessage:  "set exactly one of requests or tokens",
		},
		"a zero weight is refused rather than defaulted": {
			manifests: mockProvider + `---
apiVersion: ai.nself.org/v1alpha1
kind: AIRoutePolicy
metadata: {name: r}
spec:
  targets: [{provider: mock, model: mock-small, weight: 0}]
`,
			wantProblems: []problem{{KindAIRoutePolicy, "r", aiv1alpha1.ReasonInvalidSpec, true}},
			wantMessage:  "weight must be a positive integer",
		},
		"route defaults fill rate limits, cache and guardrails": {
			manifests: mockProvider + `---
apiVersion: ai.nself.org/v1alpha1
kind: AIRoutePolicy
metadata: {name: r}
spec:
  targets: [{provider: mock, model: mock-small}]
  rateLimits: [{name: z, per: user, tokens: 10, window: 1d}, {name: a, per: org, requests: 5}]
  cache: {enabled: true, ttl: 1m30s}
  guardrails: {pii: {action: redact}, toxicity: {action: block}}
`,
			check: func(t *testing.T, s *config.Snapshot) {
				r := s.Routes[0]
				require.Equal(t, []config.RateLimit{
					{Name: "a", Per: "org", Algorithm: "token-bucket", Requests: 5, Window: time.Minute, FailMode: "open"},
					{Name: "z", Per: "user", Algorithm: "token-bucket", Tokens: 10, Window: 24 * time.Hour, FailMode: "open"},
				}, r.RateLimits)
				require.Equal(t, config.Cache{Enabled: true, TTL: 90 * time.Second, Scope: "org"}, r.Cache)
				require.Equal(t, []string{"input"}, r.Guardrails.PII.ApplyTo)
				require.Equal(t, int32(80), r.Guardrails.Toxicity.Threshold)
			},
		},
		"a budget is compiled with limits in period order and UTC by default": {
			manifests: `
apiVersion: ai.nself.org/v1alpha1
kind: AIBudget
metadata: {name: b}
spec: {scope: user, subject: "*", monthly: "25", daily: "1.5", alertThresholds: [80, 50]}
`,
			check: func(t *testing.T, s *config.Snapshot) {
				require.Equal(t, []config.Budget{{
					Name: "default/b", Scope: "user", Subject: "*", Action: "block", TimeZone: "UTC",
					Limits: []config.BudgetLimit{
						{Period: "daily", Limit: 1_500_000_000},
						{Period: "monthly", Limit: 25_000_000_000},
					},
					AlertThresholds: []int32{50, 80},
				}}, s.Budgets)
			},
		},
		"a budget without any limit is refused": {
			manifests: `
apiVersion: ai.nself.org/v1alpha1
kind: AIBudget
metadata: {name: b}
spec: {scope: global}
`,
			wantProblems: []problem{{KindAIBudget, "b", aiv1alpha1.ReasonInvalidSpec, true}},
			wantMessage:  "set at least one of spec.daily, spec.weekly or spec.monthly",
		},
		"a budget with an unknown time zone is refused": {
			manifests: `
apiVersion: ai.nself.org/v1alpha1
kind: AIBudget
metadata: {name: b}
spec: {scope: org, subject: acme, daily: "1", timeZone: Mars/Olympus}
`,
			wantProblems: []problem{{KindAIBudget, "b", aiv1alpha1.ReasonInvalidSpec, true}},
			wantMessage:  `spec.timeZone "Mars/Olympus" is not a known IANA time zone`,
		},
		"a budget downgrading to a model nobody serves is kept and reported": {
			manifests: `
apiVersion: ai.nself.org/v1alpha1
kind: AIBudget
metadata: {name: b}
spec: {scope: org, subject: acme, daily: "1", action: downgrade, downgradeTo: nowhere}
`,
			wantProblems: []problem{{KindAIBudget, "b", aiv1alpha1.ReasonModelNotFound, false}},
			check:        func(t *testing.T, s *config.Snapshot) { require.Len(t, s.Budgets, 1) },
		},
		"a budget with an over-precise amount is refused": {
			manifests: `
apiVersion: ai.nself.org/v1alpha1
kind: AIBudget
metadata: {name: b}
spec: {scope: global, daily: "0.0000000001"}
`,
			wantProblems: []problem{{KindAIBudget, "b", aiv1alpha1.ReasonInvalidSpec, true}},
			wantMessage:  "spec.daily",
		},
		"client API keys are hashed, with role and orgs from annotations": {
			manifests: `
apiVersion: v1
kind: Secret
metadata:
  name: app
  labels: {ai.nself.org/api-key: "true"}
  annotations: {ai.nself.org/orgs: " globex, acme,,acme"}
stringData: {key: tok-1}
---
apiVersion: v1
kind: Secret
metadata:
  name: admin
  labels: {ai.nself.org/api-key: "true"}
  annotations: {ai.nself.org/role: admin}
data: {key: dG9rLTI=}
---
apiVersion: v1
kind: Secret
metadata: {name: unlabelled}
stringData: {key: tok-3}
`,
			check: func(t *testing.T, s *config.Snapshot) {
				require.Equal(t, []config.APIKey{
					{Name: "default/admin", SHA256: sha256Hex("tok-2"), Role: "admin"},
					{Name: "default/app", SHA256: sha256Hex("tok-1"), Role: "app", Orgs: []string{"acme", "globex"}},
				}, s.APIKeys)
			},
		},
		"a client key with an unknown role, no token or a reused token is left out": {
			manifests: `
apiVersion: v1
kind: Secret
metadata: {name: a, labels: {ai.nself.org/api-key: "true"}}
stringData: {key: same}
---
apiVersion: v1
kind: Secret
metadata: {name: b, labels: {ai.nself.org/api-key: "true"}}
stringData: {key: same}
---
apiVersion: v1
kind: Secret
metadata: {name: c, labels: {ai.nself.org/api-key: "true"}, annotations: {ai.nself.org/role: root}}
stringData: {key: other}
---
apiVersion: v1
kind: Secret
metadata: {name: d, labels: {ai.nself.org/api-key: "true"}}
stringData: {token: x}
`,
			wantProblems: []problem{
				{KindSecret, "b", aiv1alpha1.ReasonInvalidSpec, true},
				{KindSecret, "c", aiv1alpha1.ReasonInvalidSpec, true},
				{KindSecret, "d", aiv1alpha1.ReasonSecretKeyMissing, true},
			},
			wantMessage: `the token is the same as client API-key Secret "default/a"`,
			check:       func(t *testing.T, s *config.Snapshot) { require.Len(t, s.APIKeys, 1) },
		},
		"an object declared twice is used once and reported": {
			manifests:    mockProvider + "---" + mockProvider,
			wantProblems: []problem{{KindAIProvider, "mock", aiv1alpha1.ReasonInvalidSpec, false}},
			check:        func(t *testing.T, s *config.Snapshot) { require.Len(t, s.Providers, 1) },
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			res := compileYAML(t, tc.manifests)
			want := tc.wantProblems
			if want == nil {
				want = []problem{}
			}
			require.Equal(t, want, problemsOf(res), "problems: %+v", res.Problems)
			if tc.wantMessage != "" {
				require.Contains(t, res.Problems[0].Message, tc.wantMessage)
			}
			require.Equal(t, config.SchemaVersion, res.Snapshot.Version)
			h, err := res.Snapshot.ComputeHash()
			require.NoError(t, err)
			require.Equal(t, h, res.Snapshot.Hash, "the snapshot is sealed")
			if tc.check != nil {
				tc.check(t, res.Snapshot)
			}
		})
	}
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func TestCompileIsDeterministic(t *testing.T) {
	in, err := LoadDir(samplesDir)
	require.NoError(t, err)
	want := Compile(in)
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		shuffled := Input{
			Providers: shuffle(rng, in.Providers),
			Budgets:   shuffle(rng, in.Budgets),
			Routes:    shuffle(rng, in.Routes),
			Secrets:   shuffle(rng, in.Secrets),
		}
		got := Compile(shuffled)
		require.Equal(t, want.Snapshot.Hash, got.Snapshot.Hash)
		require.Equal(t, want.Problems, got.Problems)
	}
}

func shuffle[T any](rng *rand.Rand, s []T) []T {
	out := append([]T(nil), s...)
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

func TestResultProblemsFor(t *testing.T) {
	res := compileYAML(t, openAIProvider)
	require.True(t, res.Excluded(KindAIProvider, "default", "openai"))
	require.False(t, res.Excluded(KindAIProvider, "default", "other"))
	require.Len(t, res.ProblemsFor(KindAIProvider, "default", "openai"), 1)
}

// The controllers pass objects straight from the informer cache, which must never be modified.
func TestCompileDoesNotModifyItsInput(t *testing.T) {
	in, err := LoadDir(samplesDir)
	require.NoError(t, err)
	routes, err := LoadDir("testdata")
	require.NoError(t, err)
	in.Routes = append(in.Routes, routes.Routes...)
	in.Budgets = append(in.Budgets, routes.Budgets...)
	before := deepCopyInput(in)
	Compile(in)
	require.Equal(t, before, in)
}

func deepCopyInput(in Input) Input {
	var out Input
	for i := range in.Providers {
		out.Providers = append(out.Providers, *in.Providers[i].DeepCopy())
	}
	for i := range in.Budgets {
		out.Budgets = append(out.Budgets, *in.Budgets[i].DeepCopy())
	}
	for i := range in.Routes {
		out.Routes = append(out.Routes, *in.Routes[i].DeepCopy())
	}
	for i := range in.Secrets {
		out.Secrets = append(out.Secrets, *in.Secrets[i].DeepCopy())
	}
	return out
}

func TestCompiledSamplesSurviveTheSnapshotSecretEncoding(t *testing.T) {
	in, err := LoadDir(samplesDir)
	require.NoError(t, err)
	res := Compile(in)
	b, err := config.Encode(res.Snapshot)
	require.NoError(t, err)
	got, err := config.Decode(b)
	require.NoError(t, err)
	require.Equal(t, res.Snapshot, got)
}

func BenchmarkCompileSamples(b *testing.B) {
	in, err := LoadDir(samplesDir)
	require.NoError(b, err)
	for b.Loop() {
		Compile(in)
	}
}
