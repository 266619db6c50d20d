package handlers

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// apiDeltaReference is how a delta event of the /api/ai/chat stream was written before
// appendAPIDelta: the delta marshalled by encoding/json and framed as writeSSE frames an event.
// It stays the reference the appended events are held to.
func apiDeltaReference(t testing.TB, content string) string {
	b, err := json.Marshal(struct {
		Content string `json:"content"`
	}{content})
	require.NoError(t, err)
	return "event: delta\ndata: " + string(b) + "\n\n"
}

func TestAPIDeltaEventsAreEncodingJSONsByteForByte(t *testing.T) {
	check := func(s string) {
		t.Helper()
		require.Equal(t, apiDeltaReference(t, s), string(appendAPIDelta(nil, s)), "content %q", s)
	}
	for _, s := range replyStrings {
		check(s)
	}
	for _, s := range []string{"", " Hello", ",", " <", "&amp;", "\"", "\\", "\n\n", "\u00e9", "\U0001F600", "\u2028", "\u2029", "\xf0\x9f", "\xff", "\x00", "\x7f", "\t\r\b\f"} {
		check(s)
	}
	// Appended after earlier events, as the stream's reused buffer is.
	b := appendAPIDelta(nil, "first <")
	b = appendAPIDelta(b, "second &")
	require.Equal(t, apiDeltaReference(t, "first <")+apiDeltaReference(t, "second &"), string(b))
	rng := rand.New(rand.NewPCG(11, 12))
	runes := []rune("aZ09 <>&\"\\/\b\f\n\r\t\x00\x1f\x7f\u0080\u00e9\u2028\u2029\ufffd\U0001F600中")
	for range 1000 {
		var sb strings.Builder
		for range rng.IntN(40) {
			if rng.IntN(20) == 0 {
				sb.WriteByte(byte(0x80 + rng.IntN(0x80))) // a stray byte: invalid UTF-8
				continue
			}
			sb.WriteRune(runes[rng.IntN(len(runes))])
		}
		check(sb.String())
	}
}

func FuzzAPIDeltaEventsAreEncodingJSONs(f *testing.F) {
	f.Add("hi <there> & \u2028")
	f.Add("\xff\x00\"\\")
	f.Fuzz(func(t *testing.T, content string) {
		require.Equal(t, apiDeltaReference(t, content), string(appendAPIDelta(nil, content)))
	})
}

// BenchmarkAPIDelta appends one typical delta event; the EncodingJSON variant is how it was
// encoded before, kept as the yardstick.
func BenchmarkAPIDelta(b *testing.B) {
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = appendAPIDelta(buf[:0], " revenue growth")
	}
}

func BenchmarkAPIDeltaEncodingJSON(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		d, _ := json.Marshal(struct {
			Content string `json:"content"`
		}{" revenue growth"})
		var out []byte
		out = append(out, "event: delta\n"...)
		out = append(out, "data: "...)
		out = append(out, d...)
		_ = append(out, '\n', '\n')
	}
}
