package providers

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// encodeStrings are the texts every string field of the chat body is tried with.
var encodeStrings = []string{
	"", "hi", "Be brief.", "a\"b\\c/d\b\f\n\r\t\v\x00\x1f\x7f", "<script>alert(1)</script> & co", "é 中 😀 \ufeff",
	"\u2028\u2029", "\xff\xfe", "a\xe2\x82", "\xed\xa0\x80", "line\nline\n\n", strings.Repeat("long text ", 300),
}

// encodeFloats are the temperatures and top_p values tried, NaN and ±Inf included (encoding/json
// refuses those, and so must the adapter).
var encodeFloats = []float64{0, math.Copysign(0, -1), 0.2, 0.7, 1, 2, 1e-7, 1e21, 1e-300, 0.30000000000000004,
	math.NaN(), math.Inf(1), math.Inf(-1)}

func ptr[T any](v T) *T { return &v }

// chatRequests are the normalized requests the differential test encodes: each field alone with
// every value, then random combinations.
func chatRequests() []*ChatRequest {
	var out []*ChatRequest
	formats := []*ResponseFormat{nil, {}, {Type: "text"}, {Type: "json_object"}, {Type: "json_schema"},
		{Type: "json_schema", Name: "answer"}, {Type: "json_schema", Name: "<n>", Schema: json.RawMessage(`{ "type" : "object", "d": "<&>" }`)},
		{Type: "json_schema", Schema: json.RawMessage(`{"bad"`)}, {Type: "json_object", Schema: json.RawMessage(`{}`)}, {Type: "x\u2028<"}}
	for _, s := range encodeStrings {
		out = append(out,
			&ChatRequest{Model: s},
			&ChatRequest{Messages: []Message{{Role: s, Content: s}, {Role: "user", Content: s}}},
			&ChatRequest{Stop: []string{s, s}},
			&ChatRequest{User: s},
			&ChatRequest{ResponseFormat: &ResponseFormat{Type: "json_schema", Name: s}},
			&ChatRequest{ResponseFormat: &ResponseFormat{Type: s}},
		)
	}
	for _, f := range encodeFloats {
		out = append(out, &ChatRequest{Temperature: ptr(f)}, &ChatRequest{TopP: ptr(f)})
	}
	for _, n := range []int64{0, 1, -1, 64, math.MaxInt64, math.MinInt64} {
		out = append(out, &ChatRequest{MaxTokens: n})
	}
	for _, rf := range formats {
		out = append(out, &ChatRequest{ResponseFormat: rf})
	}
	out = append(out, &ChatRequest{}, &ChatRequest{Messages: []Message{}}, &ChatRequest{Stop: []string{}}, &ChatRequest{Stop: []string{""}})
	rng := rand.New(rand.NewPCG(5, 6))
	pick := func() string { return encodeStrings[rng.IntN(len(encodeStrings))] }
	for range 500 {
		r := &ChatRequest{Model: pick(), User: pick(), MaxTokens: int64(rng.IntN(3) - 1)}
		for range rng.IntN(4) {
			r.Messages = append(r.Messages, Message{Role: pick(), Content: pick()})
		}
		for range rng.IntN(3) {
			r.Stop = append(r.Stop, pick())
		}
		if rng.IntN(2) == 0 {
			r.Temperature = ptr(encodeFloats[rng.IntN(len(encodeFloats))])
		}
		if rng.IntN(2) == 0 {
			r.TopP = ptr(rng.Float64())
		}
		if rng.IntN(2) == 0 {
			r.ResponseFormat = formats[rng.IntN(len(formats))]
		}
		out = append(out, r)
	}
	return out
}

// The upstream body must stay what encoding/json made of chatBody, byte for byte, for both
// dialects and both modes, and fail where it fails.
func TestChatBodyIsEncodingJSONsByteForByte(t *testing.T) {
	for _, official := range []bool{true, false} {
		o := &openAI{base: base{name: "x"}, official: official}
		// Bodies larger than a pooled buffer get one of their own, sized by chatSize: escapes
		// (which the size only estimates) must still come out whole.
		long := strings.Repeat("<\"caf\u00e9\u2028\n\t", 700)
		reqs := append(chatRequests(), &ChatRequest{Model: "m", Messages: []Message{{Role: "system", Content: long}, {Role: "user", Content: long[:5000]}}},
			&ChatRequest{Model: "m", Messages: []Message{{Role: "user", Content: strings.Repeat("plain text ", 400)}}, Stop: []string{long[:300]}})
		for _, req := range reqs {
			for _, stream := range []bool{false, true} {
				want, wantErr := json.Marshal(o.chatBody(req, stream))
				got, sp, err := o.encodeChat(req, stream)
				if wantErr != nil {
					require.Error(t, err, "encoding/json refuses %+v", req)
					pe, ok := AsError(err)
					require.True(t, ok)
					require.Equal(t, KindBadRequest, pe.Kind)
					require.Equal(t, "failed to encode request", pe.Message)
					continue
				}
				require.NoError(t, err)
				require.Equal(t, string(want), string(got), "request %+v (official %v, stream %v)", req, official, stream)
				if sp != nil {
					putScratch(sp) // as the call does once the body is sent: the next request reuses it
				}
			}
		}
	}
}

// FuzzChatBodyIsEncodingJSONs holds the body to encoding/json on arbitrary texts and numbers.
func FuzzChatBodyIsEncodingJSONs(f *testing.F) {
	f.Add("m", "user", "hi", "stop", "u", 0.5, int64(64), true)
	f.Add("<&>", "\u2028", "\xff\n\"", "", "", math.Inf(1), int64(-1), false)
	f.Fuzz(func(t *testing.T, model, role, content, stop, user string, temp float64, maxTokens int64, official bool) {
		o := &openAI{base: base{name: "x"}, official: official}
		req := &ChatRequest{Model: model, Messages: []Message{{Role: role, Content: content}}, Stop: []string{stop},
			User: user, Temperature: &temp, TopP: &temp, MaxTokens: maxTokens, ResponseFormat: &ResponseFormat{Type: role, Name: user}}
		want, wantErr := json.Marshal(o.chatBody(req, false))
		got, _, err := o.encodeChat(req, false)
		require.Equal(t, wantErr == nil, err == nil)
		require.Equal(t, string(want), string(got))
	})
}

// BenchmarkEncodeChatBody encodes the realistic request's upstream body; the EncodingJSON
// variant is how it was encoded before (chatBody through json.Marshal), kept as the yardstick.
func BenchmarkEncodeChatBody(b *testing.B) {
	req := benchChat()
	o := &openAI{base: base{name: "x"}, official: true}
	b.Run("Append", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, sp, err := o.encodeChat(req, false)
			if err != nil {
				b.Fatal(err)
			}
			if sp != nil {
				putScratch(sp) // as the call does once the body is sent
			}
		}
	})
	b.Run("EncodingJSON", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(o.chatBody(req, false)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// benchChat is realisticChat of send_bench_test.go (another package).
func benchChat() *ChatRequest {
	words := strings.Fields(`the quarterly report shows "revenue" growth across all regions while operating costs remained stable please summarize the key findings`)
	text := func(n, seed int) string {
		var sb strings.Builder
		for i := seed; sb.Len() < n; i++ {
			sb.WriteString(words[(i*7)%len(words)])
			if i%17 == 0 {
				sb.WriteByte('\n')
			} else {
				sb.WriteByte(' ')
			}
		}
		return sb.String()[:n]
	}
	return &ChatRequest{
		Model:     "gpt-4o-mini",
		Messages:  []Message{{Role: "system", Content: text(1024, 0)}, {Role: "user", Content: "Request 1234: " + text(480, 3)}},
		MaxTokens: 256, Temperature: ptr(0.7), User: "bench-user-42",
	}
}
