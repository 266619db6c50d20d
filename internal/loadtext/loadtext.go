// Package loadtext is the text of the load harness's requests (hack/bench), shared with the Go
// benchmarks that measure the same request's steps: plain ASCII prose, so that it needs no JSON
// escaping and tokenizes like an ordinary prompt.
package loadtext

import "strings"

var words = strings.Fields(`the quarterly report shows revenue growth across all regions while operating costs
remained stable please summarize the key findings for the board and list three risks that could affect
next quarter including supply chain delays currency movements and hiring plans answer in plain english
with short paragraphs and cite the relevant section numbers where possible`)

// Prose returns n bytes of prose; seed picks where in the word cycle it starts, so texts of
// different seeds differ.
func Prose(n, seed int) string {
	var b strings.Builder
	for i := seed; b.Len() < n; i++ {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(words[(i*7)%len(words)])
	}
	return b.String()[:n]
}
