package guard

import (
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/config"
)

func TestRedactMemoReturnsWhatAScanReturns(t *testing.T) {
	d := NewDetector(DetectorOptions{})
	long := strings.Repeat("Contact dana@acme.example or +1 415-555-2671 about order 88421937. ", 6)
	require.GreaterOrEqual(t, len(long), memoMinBytes)
	wantText, wantSpans := d.redact(long, maskAll)
	require.NotEmpty(t, wantSpans)
	for range 3 { // miss, then hits
		got, spans := d.Redact(long)
		require.Equal(t, wantText, got)
		require.Equal(t, wantSpans, spans)
	}

	// The type mask is part of the key: the same text with emails only finds the email only.
	got, spans := d.Redact(long, TypeEmail)
	require.NotContains(t, got, "dana@")
	require.Contains(t, got, "415-555-2671")
	for _, s := range spans {
		require.Equal(t, TypeEmail, s.Type)
	}
	got, spans = d.Redact(long, TypePhone)
	require.Contains(t, got, "dana@acme.example")
	require.NotContains(t, got, "415-555-2671")
	require.NotEmpty(t, spans)

	// A text that differs in one byte (same length) is scanned, not served from the memo.
	clean := strings.Repeat("x", len(long))
	got, spans = d.Redact(clean)
	require.Equal(t, clean, got)
	require.Empty(t, spans)
	got, spans = d.Redact(clean) // and remembered as clean
	require.Equal(t, clean, got)
	require.Empty(t, spans)
}

func TestRedactMemoHandsOutSpansTheCallerMayChange(t *testing.T) {
	d := NewDetector(DetectorOptions{})
	long := strings.Repeat("mail dana@acme.example now. ", 12)
	_, first := d.Redact(long)
	want := append([]Span(nil), first...)
	first[0].Type = "mangled"
	_, second := d.Redact(long)
	require.Equal(t, want, second)
}

func TestRedactMemoIsKeyedByDetectorRegion(t *testing.T) {
	// "020 7946 0018" is a London number only for a detector whose default region is GB.
	text := strings.Repeat("Please phone 020 7946 0018 tomorrow about the invoice. ", 6)
	us, gb := NewDetector(DetectorOptions{}), NewDetector(DetectorOptions{DefaultRegion: "GB"})
	_, usSpans := us.Redact(text)
	_, gbSpans := gb.Redact(text)
	_, usAgain := us.Redact(text)
	require.Empty(t, usSpans)
	require.Empty(t, usAgain)
	require.NotEmpty(t, gbSpans)
}

func TestCheckInputUsesTheRouteActionOnAMemoisedText(t *testing.T) {
	e := NewEngine(Options{})
	text := strings.Repeat("The customer's email is dana@acme.example; please follow up. ", 6)
	redact := config.Guardrails{PII: &config.PIIGuard{Action: config.GuardRedact}}
	block := config.Guardrails{PII: &config.PIIGuard{Action: config.GuardBlock}}
	flag := config.Guardrails{PII: &config.PIIGuard{Action: config.GuardFlag}}
	for range 2 {
		res, err := e.CheckInput(t.Context(), redact, text)
		require.NoError(t, err)
		require.False(t, res.Blocked)
		require.NotContains(t, res.Redacted, "dana@")

		res, err = e.CheckInput(t.Context(), block, text)
		require.NoError(t, err)
		require.True(t, res.Blocked)

		res, err = e.CheckInput(t.Context(), flag, text)
		require.NoError(t, err)
		require.True(t, res.Flagged)
		require.Equal(t, text, res.Redacted)
	}
}

func TestRedactMemoUnderConcurrency(t *testing.T) {
	d := NewDetector(DetectorOptions{})
	texts := make([]string, 64)
	want := make([]string, len(texts))
	for i := range texts {
		texts[i] = strings.Repeat("note "+strings.Repeat("z", i)+" mail u"+strings.Repeat("q", i%7)+"@acme.example; ", 1+300/(10+i))
		for len(texts[i]) < memoMinBytes {
			texts[i] += texts[i]
		}
		want[i], _ = d.redact(texts[i], maskAll)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for k := range 400 {
				i := (g*31 + k) % len(texts)
				got, _ := d.Redact(texts[i])
				if got != want[i] {
					t.Errorf("text %d: got %q want %q", i, got, want[i])
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestRedactMemoAdmitsATextTheSecondTime(t *testing.T) {
	d := NewDetector(DetectorOptions{})
	text := strings.Repeat("nothing personal in this sentence at all. ", 8)
	d.Redact(text)
	_, ok := d.memo.Get(maskAll, text)
	require.False(t, ok, "a text seen once is not copied into the memo")
	d.Redact(text)
	v, ok := d.memo.Get(maskAll, text)
	require.True(t, ok, "a text seen twice is memoised")
	require.Empty(t, v.spans)
	got, spans := d.Redact(text)
	require.Equal(t, text, got)
	require.Empty(t, spans)

	short := "call +1 415-555-2671"
	d.Redact(short)
	d.Redact(short)
	_, ok = d.memo.Get(maskAll, short)
	require.False(t, ok, "short texts bypass the memo")
}
