package compiler

import (
	"testing"

	"github.com/stretchr/testify/require"

	aiv1alpha1 "github.com/nself-org/ai-orchestration/api/v1alpha1"
	"github.com/nself-org/ai-orchestration/dataplane/config"
)

// moderationRoute is a route on the mock provider whose toxicity guard names provider (and the
// omni-moderation-latest model).
func moderationRoute(provider string) string {
	return `---
apiVersion: ai.nself.org/v1alpha1
kind: AIRoutePolicy
metadata: {name: r}
spec:
  targets: [{provider: mock, model: mock-small}]
  guardrails:
    toxicity: {action: block, provider: ` + provider + `, model: omni-moderation-latest}
`
}

func TestAToxicityGuardResolvesItsModerationProvider(t *testing.T) {
	unpriced := problem{KindAIProvider, "openai", aiv1alpha1.ReasonUnpricedModel, false}
	tests := map[string]struct {
		manifests    string
		wantProblems []problem
		wantMessage  string
		want         *config.ToxicityGuard
	}{
		"a Ready openai provider resolves to namespace/name with the model": {
			manifests:    mockProvider + "---" + openAIProvider + "---" + openAIKeySecret + moderationRoute("openai"),
			wantProblems: []problem{unpriced},
			want:         &config.ToxicityGuard{Action: "block", Threshold: 80, Provider: "default/openai", Model: "omni-moderation-latest"},
		},
		"a missing provider is reported and the built-in scorer is kept": {
			manifests:    mockProvider + moderationRoute("nope"),
			wantProblems: []problem{{KindAIRoutePolicy, "r", aiv1alpha1.ReasonProviderNotFound, false}},
			wantMessage:  `spec.guardrails.toxicity.provider: AIProvider "nope" does not exist in namespace "default"`,
			want:         &config.ToxicityGuard{Action: "block", Threshold: 80},
		},
		"a provider that is not of type openai is reported and the built-in scorer is kept": {
			manifests:    mockProvider + moderationRoute("mock"),
			wantProblems: []problem{{KindAIRoutePolicy, "r", aiv1alpha1.ReasonInvalidSpec, false}},
			wantMessage:  "only openai offers a moderation model",
			want:         &config.ToxicityGuard{Action: "block", Threshold: 80},
		},
		"a provider that is not Ready is reported and the built-in scorer is kept": {
			manifests: mockProvider + "---" + openAIProvider + moderationRoute("openai"),
			wantProblems: []problem{
				{KindAIProvider, "openai", aiv1alpha1.ReasonSecretNotFound, true},
				{KindAIRoutePolicy, "r", aiv1alpha1.ReasonProviderNotReady, false},
			},
			want: &config.ToxicityGuard{Action: "block", Threshold: 80},
		},
		"a model without a provider is an invalid spec": {
			manifests: mockProvider + `---
apiVersion: ai.nself.org/v1alpha1
kind: AIRoutePolicy
metadata: {name: r}
spec:
  targets: [{provider: mock, model: mock-small}]
  guardrails:
    toxicity: {action: block, model: omni-moderation-latest}
`,
			wantProblems: []problem{{KindAIRoutePolicy, "r", aiv1alpha1.ReasonInvalidSpec, true}},
			wantMessage:  "set provider too",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			res := compileYAML(t, tc.manifests)
			require.ElementsMatch(t, tc.wantProblems, problemsOf(res))
			if tc.wantMessage != "" {
				found := false
				for _, p := range res.Problems {
					if p.Kind == KindAIRoutePolicy {
						require.Contains(t, p.Message, tc.wantMessage)
						found = true
					}
				}
				require.True(t, found, "the policy's problem is reported")
			}
			if tc.want == nil {
				require.Empty(t, res.Snapshot.Routes, "an invalid policy is left out")
				return
			}
			require.Len(t, res.Snapshot.Routes, 1)
			require.Equal(t, tc.want, res.Snapshot.Routes[0].Guardrails.Toxicity)
		})
	}
}
