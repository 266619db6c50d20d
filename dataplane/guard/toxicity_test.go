package guard

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/providers"
)

func TestLexiconScorer(t *testing.T) {
	tests := map[string]struct {
		text    string
		flagged []string // categories at or above 0.5
	}{
		"a neutral request":                    {"Summarize the quarterly report in five bullet points.", nil},
		"kill in a technical sense":            {"How do I kill the process listening on port 8080?", nil},
		"an insult aimed at the reader":        {"You are a worthless idiot.", []string{CategoryHarassment}},
		"leetspeak insult":                     {"you 1d10t, you are so $tupid", []string{CategoryHarassment}},
		"a threat":                             {"I will kill you tomorrow.", []string{CategoryHarassment, CategoryViolence}},
		"dehumanizing a group":                 {"Immigrants are vermin and parasites.", []string{CategoryHate}},
		"explicit sexual content":              {"send nudes, I'm so horny", []string{CategorySexual}},
		"a self-harm statement":                {"I want to die, I keep thinking I should kill myself.", []string{CategorySelfHarm}},
		"a medical mention of suicide risk":    {"The study covers suicide prevention programs.", []string{CategorySelfHarm}},
		"violence in history is just violence": {"The massacre and the bloodbath that followed were documented.", []string{CategoryViolence}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			scores, err := LexiconScorer{}.Score(t.Context(), tc.text)
			require.NoError(t, err)
			require.Len(t, scores, len(Categories))
			var got []string
			for _, c := range Categories {
				require.GreaterOrEqual(t, scores[c], 0.0)
				require.LessOrEqual(t, scores[c], 1.0)
				if scores[c] >= 0.5 {
					got = append(got, c)
				}
			}
			require.ElementsMatch(t, tc.flagged, got, "scores %v", scores)
		})
	}
}

// fakeModerator answers like OpenAI's moderation endpoint after normalization.
type fakeModerator struct {
	scores map[string]float64
	err    error
}

func (f fakeModerator) Moderate(_ context.Context, _ string, input []string) ([]providers.ModerationResult, error) {
	if f.err != nil {
		return nil, f.err
	}
	out := make([]providers.ModerationResult, len(input))
	for i := range input {
		out[i] = providers.ModerationResult{Scores: f.scores}
	}
	return out, nil
}

func TestModeratorScorerFoldsSubCategoriesIntoFamilies(t *testing.T) {
	s := ModeratorScorer{Model: "omni-moderation-latest", Moderator: fakeModerator{scores: map[string]float64{
		"harassment": 0.1, "harassment/threatening": 0.7, "self-harm/intent": 0.9, "sexual/minors": 0.2, "illicit": 0.99,
	}}}
	got, err := s.Score(t.Context(), "x")
	require.NoError(t, err)
	require.Equal(t, map[string]float64{
		CategoryHarassment: 0.7, CategoryHate: 0, CategorySexual: 0.2, CategoryViolence: 0, CategorySelfHarm: 0.9,
	}, got)
}

func TestModeratorScorerReportsProviderErrors(t *testing.T) {
	s := ModeratorScorer{Model: "m", Moderator: fakeModerator{err: errors.New("upstream 500")}}
	_, err := s.Score(t.Context(), "x")
	require.ErrorContains(t, err, "failed to moderate with m")
}
