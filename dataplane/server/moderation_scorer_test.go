package server_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/money"
	"github.com/nself-org/ai-orchestration/dataplane/providers/providertest"
)

// flagTerm is flagged by the fake moderation model but means nothing to the built-in lexicon,
// so a 422 proves the provider's model scored the input.
const flagTerm = "frobnicate"

func countRequests(reqs []providertest.Request, path string) int {
	n := 0
	for _, r := range reqs {
		if r.Path == path {
			n++
		}
	}
	return n
}

func TestAFlaggedInputIsBlockedOnlyWhenTheRouteNamesAModerationModel(t *testing.T) {
	tests := []struct {
		name     string
		toxicity config.ToxicityGuard
		// brokenModerator points the toxicity provider at a second fake that answers 500.
		brokenModerator bool
		wantCode        int
		wantModerations int
		wantFallback    string // metric line that must be present (input and output both fall back)
	}{
		{
			name:     "the route names the provider's moderation model: blocked with 422",
			toxicity: config.ToxicityGuard{Action: config.GuardBlock, Threshold: 50, Provider: "default/openai", Model: "omni-moderation-latest"},
			wantCode: http.StatusUnprocessableEntity, wantModerations: 1,
		},
		{
			name:     "the built-in scorer does not know the term: served",
			toxicity: config.ToxicityGuard{Action: config.GuardBlock, Threshold: 50},
			wantCode: http.StatusOK,
		},
		{
			name:     "a provider without a moderation model falls back to the built-in scorer",
			toxicity: config.ToxicityGuard{Action: config.GuardBlock, Threshold: 50, Provider: "default/mock", Model: "omni-moderation-latest"},
			wantCode: http.StatusOK, wantFallback: `aigw_guard_scorer_fallbacks_total{reason="unavailable"} 2`,
		},
		{
			name:            "a failing moderation call falls back to the built-in scorer",
			toxicity:        config.ToxicityGuard{Action: config.GuardBlock, Threshold: 50, Provider: "default/moderator", Model: "omni-moderation-latest"},
			brokenModerator: true,
			wantCode:        http.StatusOK, wantFallback: `aigw_guard_scorer_fallbacks_total{reason="error"} 2`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			moderator := providertest.NewOpenAI(t, providertest.Options{Fault: providertest.FaultStatus, Status: http.StatusInternalServerError})
			h := newHarness(t, harnessOpts{
				upstream: providertest.Options{FlagTerms: []string{flagTerm}},
				mutate: []func(*config.Snapshot){func(s *config.Snapshot) {
					s.Providers = append(s.Providers, config.Provider{Name: "default/moderator", Type: config.ProviderOpenAI,
						BaseURL: moderator.BaseURL, APIKey: config.Secret(providertest.DefaultAPIKey),
						Models: []config.Model{{Name: "omni-moderation-latest", InputPerMillion: money.MustParseUSD("0")}}})
					tox := tc.toxicity
					s.Routes[0].Guardrails.Toxicity = &tox
				}},
			})
			code, _, body := h.do("POST", "/api/ai/chat", adminKey, chatBody("gpt-4o-mini", "please "+flagTerm+" the widget"))
			require.Equal(t, tc.wantCode, code, string(body))
			reqs := h.Upstream.Requests()
			require.Equal(t, tc.wantModerations, countRequests(reqs, "/v1/moderations"))
			if code == http.StatusUnprocessableEntity {
				_, c := errorBody(t, body)
				require.Equal(t, "content_blocked", c)
				require.NotContains(t, string(body), flagTerm, "the refusal never quotes the content")
				require.Zero(t, countRequests(reqs, "/v1/chat/completions"), "a blocked input never reaches the model")
			} else {
				require.Equal(t, 1, countRequests(reqs, "/v1/chat/completions"))
			}
			if tc.brokenModerator {
				require.Len(t, moderator.Requests(), 2, "the moderation model was asked (input and output)")
			}
			if tc.wantFallback != "" {
				code, _, metrics := h.do("GET", "/metrics", "", nil)
				require.Equal(t, http.StatusOK, code)
				require.Contains(t, string(metrics), tc.wantFallback, "the fallback is counted")
			}
		})
	}
}

func TestAModerationModelAlsoScoresTheCompletion(t *testing.T) {
	h := newHarness(t, harnessOpts{
		upstream: providertest.Options{FlagTerms: []string{flagTerm}, Reply: "I will " + flagTerm + " it"},
		mutate: []func(*config.Snapshot){func(s *config.Snapshot) {
			s.Routes[0].Guardrails.Toxicity = &config.ToxicityGuard{Action: config.GuardBlock, Threshold: 50,
				Provider: "default/openai", Model: "omni-moderation-latest"}
		}},
	})
	code, _, body := h.do("POST", "/api/ai/chat", adminKey, chatBody("gpt-4o-mini", "a harmless question"))
	require.Equal(t, http.StatusUnprocessableEntity, code, string(body))
	_, c := errorBody(t, body)
	require.Equal(t, "content_blocked", c)
	reqs := h.Upstream.Requests()
	require.Equal(t, 2, countRequests(reqs, "/v1/moderations"), "input and completion were scored")
	var sent struct{ Model string }
	for _, r := range reqs {
		if r.Path == "/v1/moderations" {
			require.NoError(t, r.JSON(&sent))
			require.Equal(t, "omni-moderation-latest", sent.Model)
		}
	}
}
