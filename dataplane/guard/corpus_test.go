package guard

import (
	"bufio"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

// corpusCase is one line of testdata/pii_corpus.jsonl: a text and the PII values it contains.
type corpusCase struct {
	Text string `json:"text"`
	PII  []struct {
		Type  string `json:"type"`
		Value string `json:"value"`
	} `json:"pii"`
}

func loadCorpus(t testing.TB) []corpusCase {
	f, err := os.Open("testdata/pii_corpus.jsonl")
	require.NoError(t, err)
	defer f.Close()
	var out []corpusCase
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var c corpusCase
		require.NoError(t, json.Unmarshal(sc.Bytes(), &c))
		out = append(out, c)
	}
	require.NoError(t, sc.Err())
	return out
}

// expectedSpans turns labelled values into code-point spans (first occurrence after the
// previous one, so a value that repeats is found at each place).
func expectedSpans(t testing.TB, c corpusCase) []Span {
	var out []Span
	for _, p := range c.PII {
		i := strings.Index(c.Text, p.Value)
		require.GreaterOrEqual(t, i, 0, "value %q not in %q", p.Value, c.Text)
		start := utf8.RuneCountInString(c.Text[:i])
		out = append(out, Span{Type: p.Type, Start: start, End: start + utf8.RuneCountInString(p.Value)})
	}
	return out
}

type counts struct{ tp, fp, fn int }

func (c counts) precision() float64 {
	if c.tp+c.fp == 0 {
		return 1
	}
	return float64(c.tp) / float64(c.tp+c.fp)
}

func (c counts) recall() float64 {
	if c.tp+c.fn == 0 {
		return 1
	}
	return float64(c.tp) / float64(c.tp+c.fn)
}

// TestCorpusPrecisionAndRecall scores the detector on the labelled corpus: a detection is a
// true positive only when its type and both offsets match a label exactly.
func TestCorpusPrecisionAndRecall(t *testing.T) {
	corpus := loadCorpus(t)
	require.GreaterOrEqual(t, len(corpus), 300)
	d := NewDetector(DetectorOptions{DefaultRegion: "US"})
	per := map[string]*counts{}
	for _, typ := range AllTypes {
		per[typ] = &counts{}
	}
	var negatives int
	for _, c := range corpus {
		if len(c.PII) == 0 {
			negatives++
		}
		want := expectedSpans(t, c)
		got := d.Detect(c.Text)
		for _, g := range got {
			if slices.Contains(want, g) {
				per[g.Type].tp++
			} else {
				per[g.Type].fp++
				t.Logf("false positive %s %q in %q", g.Type, string([]rune(c.Text)[g.Start:g.End]), c.Text)
			}
		}
		for _, w := range want {
			if !slices.Contains(got, w) {
				per[w.Type].fn++
				t.Logf("missed %s %q in %q (got %v)", w.Type, string([]rune(c.Text)[w.Start:w.End]), c.Text, got)
			}
		}
	}
	var all counts
	for _, typ := range AllTypes {
		c := per[typ]
		all.tp, all.fp, all.fn = all.tp+c.tp, all.fp+c.fp, all.fn+c.fn
		t.Logf("%-12s precision %.3f recall %.3f (tp %d, fp %d, fn %d)", typ, c.precision(), c.recall(), c.tp, c.fp, c.fn)
		require.Positive(t, c.tp+c.fn, "the corpus must have positives of type %s", typ)
		require.GreaterOrEqual(t, c.precision(), 0.95, "precision of %s", typ)
		require.GreaterOrEqual(t, c.recall(), 0.95, "recall of %s", typ)
	}
	t.Logf("%-12s precision %.3f recall %.3f (tp %d, fp %d, fn %d; %d cases, %d hard negatives)",
		"overall", all.precision(), all.recall(), all.tp, all.fp, all.fn, len(corpus), negatives)
	require.GreaterOrEqual(t, all.precision(), 0.97)
	require.GreaterOrEqual(t, all.recall(), 0.97)
}
