package guard

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/config"
)

func TestCheckInput(t *testing.T) {
	tests := map[string]struct {
		guards       config.Guardrails
		text         string
		wantAction   string
		wantBlocked  bool
		wantFlagged  bool
		wantRedacted string
		wantReason   string
	}{
		"no guardrails pass the text untouched": {
			config.Guardrails{}, "mail a@example.com", "", false, false, "mail a@example.com", "",
		},
		"PII redaction replaces values": {
			config.Guardrails{PII: &config.PIIGuard{Action: config.GuardRedact}},
			"mail a@example.com", config.GuardRedact, false, false, "mail [EMAIL]", "personal data detected: email",
		},
		"PII block refuses": {
			config.Guardrails{PII: &config.PIIGuard{Action: config.GuardBlock, Types: []string{TypeCreditCard}}},
			"card 4111 1111 1111 1111", config.GuardBlock, true, false, "card 4111 1111 1111 1111", "personal data detected: credit_card",
		},
		"PII of a type not configured is ignored": {
			config.Guardrails{PII: &config.PIIGuard{Action: config.GuardBlock, Types: []string{TypeCreditCard}}},
			"mail a@example.com", "", false, false, "mail a@example.com", "",
		},
		"a PII guard for output only skips input": {
			config.Guardrails{PII: &config.PIIGuard{Action: config.GuardBlock, ApplyTo: []string{ApplyOutput}}},
			"mail a@example.com", "", false, false, "mail a@example.com", "",
		},
		"PII flag serves and reports": {
			config.Guardrails{PII: &config.PIIGuard{Action: config.GuardFlag}},
			"ip 10.1.2.3", config.GuardFlag, false, true, "ip 10.1.2.3", "personal data detected: ipv4",
		},
		"toxicity over the threshold blocks": {
			config.Guardrails{Toxicity: &config.ToxicityGuard{Action: config.GuardBlock, Threshold: 50}},
			"I will kill you", config.GuardBlock, true, false, "I will kill you", "content flagged as harassment, violence",
		},
		"toxicity under a high threshold passes": {
			config.Guardrails{Toxicity: &config.ToxicityGuard{Action: config.GuardBlock, Threshold: 95}},
			"you idiot", "", false, false, "you idiot", "",
		},
		"the strongest action wins": {
			config.Guardrails{
				PII:      &config.PIIGuard{Action: config.GuardRedact},
				Toxicity: &config.ToxicityGuard{Action: config.GuardFlag},
			},
			"you worthless idiot, a@example.com", config.GuardRedact, false, true, "you worthless idiot, [EMAIL]",
			"personal data detected: email; content flagged as harassment",
		},
	}
	e := NewEngine(Options{})
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			res, err := e.CheckInput(t.Context(), tc.guards, tc.text)
			require.NoError(t, err)
			require.Equal(t, tc.wantAction, res.Action)
			require.Equal(t, tc.wantBlocked, res.Blocked)
			require.Equal(t, tc.wantFlagged, res.Flagged)
			require.Equal(t, tc.wantRedacted, res.Redacted)
			require.Equal(t, tc.wantReason, res.Reason)
		})
	}
}

func TestCheckOutputValidatesTheRedactedCompletion(t *testing.T) {
	e := NewEngine(Options{})
	g := config.Guardrails{
		PII:    &config.PIIGuard{Action: config.GuardRedact, ApplyTo: []string{ApplyOutput}},
		Output: &config.OutputGuard{JSONSchema: personSchema},
	}
	res, err := e.CheckOutput(t.Context(), g, `{"name":"a@example.com","age":3}`, false)
	require.NoError(t, err)
	require.Nil(t, res.Invalid)
	require.Equal(t, `{"name":"[EMAIL]","age":3}`, res.Redacted)

	res, err = e.CheckOutput(t.Context(), g, `{"name":"Ada"}`, false)
	require.NoError(t, err)
	require.NotNil(t, res.Invalid)
	require.Equal(t, ReasonSchema, res.Invalid.Reason)
	require.False(t, res.Blocked, "the gateway retries once before refusing")
}

func TestCheckReportsScorerFailures(t *testing.T) {
	e := NewEngine(Options{}).WithScorer(ModeratorScorer{Model: "m", Moderator: fakeModerator{err: errors.New("down")}})
	_, err := e.CheckInput(t.Context(), config.Guardrails{Toxicity: &config.ToxicityGuard{Action: config.GuardBlock}}, "hi")
	require.ErrorContains(t, err, "failed to score toxicity")
}

func TestOutputStreamOnlyWhenOutputIsRedacted(t *testing.T) {
	e := NewEngine(Options{})
	require.Nil(t, e.OutputStream(config.Guardrails{}))
	require.Nil(t, e.OutputStream(config.Guardrails{PII: &config.PIIGuard{Action: config.GuardBlock}}))
	require.Nil(t, e.OutputStream(config.Guardrails{PII: &config.PIIGuard{Action: config.GuardRedact, ApplyTo: []string{ApplyInput}}}))
	r := e.OutputStream(config.Guardrails{PII: &config.PIIGuard{Action: config.GuardRedact, Types: []string{TypeEmail}}})
	require.NotNil(t, r)
	require.Equal(t, "to [EMAIL] 10.0.0.1", r.Write("to a@exam")+r.Write("ple.com 10.0.0.1")+r.Flush())
}

func TestModerateMatchesTheAPIContract(t *testing.T) {
	e := NewEngine(Options{})
	res, err := e.Moderate(t.Context(), "Ünïcode first: mail a@example.com")
	require.NoError(t, err)
	raw, err := json.Marshal(res)
	require.NoError(t, err)
	require.JSONEq(t, `{
		"flagged": true,
		"categories": {"harassment": false, "hate": false, "sexual": false, "violence": false, "self-harm": false},
		"scores": {"harassment": 0, "hate": 0, "sexual": 0, "violence": 0, "self-harm": 0},
		"pii": [{"type": "email", "start": 20, "end": 33}]
	}`, string(raw))

	res, err = e.Moderate(t.Context(), "What a lovely day.")
	require.NoError(t, err)
	require.False(t, res.Flagged)
	raw, err = json.Marshal(res)
	require.NoError(t, err)
	require.Contains(t, string(raw), `"pii":[]`)

	res, err = e.Moderate(t.Context(), "I will kill you")
	require.NoError(t, err)
	require.True(t, res.Flagged)
	require.True(t, res.Categories[CategoryViolence])
}

// benchPrompt is a realistic 2 KB prompt: prose, code, numbers, a little PII.
var benchPrompt = func() string {
	p := strings.Repeat("Please review the attached quarterly report for ACME Corp and summarize revenue "+
		"(up 12% to $4.2M in Q3 2025), churn (3.1%), and the top risks. Contact dana@acme.example or "+
		"+1 415-555-2671 with questions; order #88421937 shipped on 2025-10-02 to 10.20.30.40. ", 8)
	return p[:2048]
}()

func BenchmarkCheckInput2KB(b *testing.B) {
	e := NewEngine(Options{})
	g := config.Guardrails{
		PII:      &config.PIIGuard{Action: config.GuardRedact},
		Toxicity: &config.ToxicityGuard{Action: config.GuardBlock, Threshold: 50},
	}
	ctx := b.Context()
	b.ReportAllocs()
	b.SetBytes(int64(len(benchPrompt)))
	defer reportCPU(b)()
	for b.Loop() {
		if _, err := e.CheckInput(ctx, g, benchPrompt); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDetect2KB(b *testing.B) {
	d := NewDetector(DetectorOptions{})
	b.ReportAllocs()
	b.SetBytes(int64(len(benchPrompt)))
	defer reportCPU(b)()
	for b.Loop() {
		d.Detect(benchPrompt)
	}
}

func BenchmarkDetect2KBNoPII(b *testing.B) {
	d := NewDetector(DetectorOptions{})
	prose := strings.Repeat("The quick brown fox jumps over the lazy dog while the committee reviews the budget. ", 25)[:2048]
	b.ReportAllocs()
	b.SetBytes(int64(len(prose)))
	defer reportCPU(b)()
	for b.Loop() {
		d.Detect(prose)
	}
}

func BenchmarkLexiconScorer2KB(b *testing.B) {
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		lexiconScores(benchPrompt)
	}
}

func BenchmarkStreamRedactor2KBIn20ByteChunks(b *testing.B) {
	d := NewDetector(DetectorOptions{})
	b.ReportAllocs()
	b.SetBytes(int64(len(benchPrompt)))
	defer reportCPU(b)()
	for b.Loop() {
		r := NewStreamRedactor(d, nil)
		for i := 0; i < len(benchPrompt); i += 20 {
			r.Write(benchPrompt[i:min(i+20, len(benchPrompt))])
		}
		r.Flush()
	}
}
