package handlers

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// encodeChunkReference is how a stream event was written before chunk.go: the [OAChunk] through
// one json.Encoder (HTML escaping on, as by default), after "data: " and before a blank line.
// It stays the reference the appended chunks are held to.
func encodeChunkReference(t testing.TB, id string, created int64, model string, choices []OAChunkChoice, u *OAUsage) string {
	var buf bytes.Buffer
	buf.WriteString("data: ")
	require.NoError(t, json.NewEncoder(&buf).Encode(OAChunk{ID: id, Object: "chat.completion.chunk", Created: created, Model: model, Choices: choices, Usage: u}))
	buf.WriteByte('\n')
	return buf.String()
}

// chunkEvents returns, for one stream's head fields, every kind of event both ways: the
// reference encoding and the appended one.
func chunkEvents(t testing.TB, id string, created int64, model, content, finish string, u OAUsage) (want, got []string) {
	head := chunkHead(id, created, model)
	empty := ""
	want = []string{
		encodeChunkReference(t, id, created, model, []OAChunkChoice{{Delta: OAChunkDelta{Role: "assistant", Content: &empty}, Logprobs: jsonNull}}, nil),
		encodeChunkReference(t, id, created, model, []OAChunkChoice{{Delta: OAChunkDelta{Content: &content}, Logprobs: jsonNull}}, nil),
		encodeChunkReference(t, id, created, model, []OAChunkChoice{{Delta: OAChunkDelta{}, Logprobs: jsonNull, FinishReason: &finish}}, nil),
		encodeChunkReference(t, id, created, model, []OAChunkChoice{}, &u),
	}
	got = []string{
		string(appendRoleChunk(nil, head)),
		string(appendDeltaChunk(nil, head, content)),
		string(appendFinishChunk(nil, head, finish)),
		string(appendUsageChunk(nil, head, u)),
	}
	return want, got
}

func TestStreamChunksAreEncodingJSONsByteForByte(t *testing.T) {
	check := func(id string, created int64, model, content, finish string, u OAUsage) {
		t.Helper()
		want, got := chunkEvents(t, id, created, model, content, finish, u)
		require.Equal(t, want, got, "id %q model %q content %q finish %q", id, model, content, finish)
	}
	for _, s := range replyStrings {
		check(s, 1, "gpt-4o-mini", "x", "stop", OAUsage{})
		check("chatcmpl-1", 1, s, "x", "stop", OAUsage{})
		check("chatcmpl-1", 1, "m", s, "stop", OAUsage{})
		check("chatcmpl-1", 1, "m", "x", s, OAUsage{})
	}
	for _, s := range []string{" Hello", ",", " <", "&amp;", "\"", "\\", "\n\n", "\u00e9", "\U0001F600", "\u2028", "\xf0\x9f", "\x00"} {
		check("chatcmpl-1", 1, "m", s, "length", OAUsage{})
	}
	for _, n := range []int64{0, 1, -1, 1 << 40, math.MaxInt64, math.MinInt64} {
		check("chatcmpl-1", n, "m", "x", "stop", OAUsage{PromptTokens: n, CompletionTokens: -n, TotalTokens: n / 3})
	}
	rng := rand.New(rand.NewPCG(9, 10))
	pick := func() string { return replyStrings[rng.IntN(len(replyStrings))] }
	for range 500 {
		check(pick(), rng.Int64(), pick(), pick(), pick(),
			OAUsage{PromptTokens: rng.Int64N(1 << 20), CompletionTokens: rng.Int64N(1 << 20), TotalTokens: rng.Int64()})
	}
	// Random runes, many of them escaped, as deltas.
	runes := []rune("aZ09 <>&\"\\/\b\f\n\r\t\x00\x1f\x7f\u0080\u00e9\u2028\u2029\ufffd\U0001F600中")
	for range 500 {
		var sb strings.Builder
		for range rng.IntN(40) {
			sb.WriteRune(runes[rng.IntN(len(runes))])
		}
		check("chatcmpl-1", 1, "m", sb.String(), "stop", OAUsage{})
	}
}

func FuzzStreamChunksAreEncodingJSONs(f *testing.F) {
	f.Add("chatcmpl-1", "m", "hi <there> & \u2028", "stop", int64(1), int64(2))
	f.Add("", "\xff", "\x00\"\\", "", int64(-1), int64(math.MaxInt64))
	f.Fuzz(func(t *testing.T, id, model, content, finish string, created, tokens int64) {
		want, got := chunkEvents(t, id, created, model, content, finish, OAUsage{PromptTokens: tokens, CompletionTokens: created, TotalTokens: tokens + created})
		require.Equal(t, want, got)
	})
}

// BenchmarkStreamChunk encodes one typical delta event; the EncodingJSON variant is how it was
// encoded before, kept as the yardstick.
func BenchmarkStreamChunk(b *testing.B) {
	head := chunkHead("chatcmpl-0123456789abcdef", 1764118800, "gpt-4o-mini")
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = appendDeltaChunk(buf[:0], head, " revenue growth")
	}
}

func BenchmarkStreamChunkEncodingJSON(b *testing.B) {
	chunk := OAChunk{ID: "chatcmpl-0123456789abcdef", Object: "chat.completion.chunk", Created: 1764118800, Model: "gpt-4o-mini"}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	b.ReportAllocs()
	for b.Loop() {
		d := " revenue growth"
		chunk.Choices = []OAChunkChoice{{Delta: OAChunkDelta{Content: &d}, Logprobs: jsonNull}}
		buf.Reset()
		buf.WriteString("data: ")
		_ = enc.Encode(chunk)
		buf.WriteByte('\n')
	}
}
