package tokens

import (
	"strconv"
	"testing"

	"github.com/nself-org/ai-orchestration/internal/loadtext"
)

// BenchmarkCountUniqueMessage is the load harness's user message (hack/bench): ~512 B of prose,
// new every request, so the whole-text memo never answers and every piece is counted. The
// prose varies with the iteration too (its start in the word cycle), as in real traffic most
// words recur across requests but not the text.
func BenchmarkCountUniqueMessage(b *testing.B) {
	fillers := make([]string, 64)
	for i := range fillers {
		fillers[i] = loadtext.Prose(512-32, i)
	}
	for _, tc := range []struct{ name, model string }{{O200kBase, "gpt-4o-mini"}, {Cl100kBase, "gpt-4"}} {
		b.Run(tc.name, func(b *testing.B) {
			Count(tc.model, "warm up the vocabulary")
			b.SetBytes(512)
			b.ReportAllocs()
			i := 0
			cpu := processCPU()
			for b.Loop() {
				i++
				Count(tc.model, "Request bench-"+strconv.Itoa(i)+": "+fillers[i%len(fillers)])
			}
			b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}

// BenchmarkCountUniqueMessageCounter is the same messages through the counter alone (no
// whole-text memo, no model name), to see the tokenizer's share.
func BenchmarkCountUniqueMessageCounter(b *testing.B) {
	texts := make([]string, 256)
	for i := range texts {
		texts[i] = "Request bench-" + strconv.Itoa(i) + ": " + loadtext.Prose(512-32, i)
	}
	for _, enc := range []string{O200kBase, Cl100kBase} {
		b.Run(enc, func(b *testing.B) {
			countWith(enc, "warm up the vocabulary")
			b.SetBytes(512)
			b.ReportAllocs()
			i := 0
			cpu := processCPU()
			for b.Loop() {
				i++
				countWith(enc, texts[i%len(texts)])
			}
			b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}
