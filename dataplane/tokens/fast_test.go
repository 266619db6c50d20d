package tokens

import (
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
	"github.com/tiktoken-go/tokenizer"
)

var encodings = []tokenizer.Encoding{tokenizer.O200kBase, tokenizer.Cl100kBase}

func lib(t testing.TB, enc ...tokenizer.Encoding) (tokenizer.Codec, *fastCodec) {
	e := tokenizer.O200kBase
	if len(enc) > 0 {
		e = enc[0]
	}
	c, err := tokenizer.Get(e)
	require.NoError(t, err)
	f := newFastCodec(c)
	require.NotNil(t, f, "the library's vocabulary must be readable")
	return c, f
}

func same(t *testing.T, c tokenizer.Codec, f *fastCodec, s string) {
	t.Helper()
	want, _, err := c.Encode(s)
	require.NoError(t, err)
	got := f.encode(s)
	if len(want) == 0 {
		want = nil
	}
	require.Equal(t, want, got, "text %q", s)
	n, ok := f.count(s)
	require.True(t, ok)
	require.Equal(t, len(want), n, "text %q", s)
}

var palette = []string{
	"a", "Z", "hello", "World", "HELLO", "McDonald", "iPhone", "'s", "'S", "'ll", "'LL", "'re", "'ve", "'m", "'d", "'t", "'x", "ſ", "'ſ",
	"0", "7", "123", "45678", "٣", "１", "Ⅻ", "²", "½",
	" ", "  ", "   ", "\t", "\n", "\r", "\r\n", "\n\n", " \n ", " \n \n", "  \r\n", "\n\r", "\u00a0", "\u2028", "\u3000", "\u0085", "\v", "\f",
	"!", "?", ".", ",", "/", "//", "...", "—", "“", "”", "(", ")", "{", "}", "[", "]", "<", ">", "#", "$", "€", "@", "_", "-", "+", "=", "*", "&", "%", "^", "~", "`", "|", "\\", "\"", "'",
	"é", "e\u0301", "\u0301", "\u0301\u0301", "ñ", "ß", "Ǆ", "ǅ", "ǆ", "ʰ", "ª", "º", "Ω", "ω", "Привет", "мир", "ПРИВЕТ",
	"中文", "日本語", "ひらがな", "カタカナ", "한국어", "العربية", "עברית", "ไทย", "\u0e31", "हिन्दी", "\u093f",
	"😀", "👍🏽", "👨‍👩‍👧", "\u200d", "\ufeff", "\u00ad", "🇩🇪",
}

func TestFastCountMatchesTheLibraryOnTrickyText(t *testing.T) {
	for _, enc := range encodings {
		t.Run(string(enc), func(t *testing.T) { trickyText(t, enc) })
	}
}

func trickyText(t *testing.T, enc tokenizer.Encoding) {
	c, f := lib(t, enc)
	fixed := []string{
		"", " ", "hello world", "Hello, World! It's 2024-11-25.", "  leading and trailing  ", "a\n\nb", "a \n b", "x  \ny",
		"I'LL DO IT, you'll see; we'd, they're, I've, I'm, can't", "don'ſ", "HTTPServer", "getHTTPResponseCode",
		"naïve café résumé", "cafe\u0301", "\u0301abc", " \u0301", "!\u0301", "ΑΒΓ αβγ", "mixedCASEWords andMore",
		"12345678901234567890", "3.14159 and 2,718", "path/to/file.go\n/usr/bin", "!!!\n/", "a  \t b", "end with spaces   ",
		"tab\tseparated\tvalues", "\r\n\r\n", "line1\r\nline2", "email a@b.com phone +1 (555) 123-4567",
		strings.Repeat("a", 300), strings.Repeat("ab", 200), strings.Repeat("!", 150), strings.Repeat(" ", 200) + "x",
		strings.Repeat("中", 120), strings.Repeat("😀", 40), strings.Repeat("supercalifragilistic", 10),
	}
	for _, s := range fixed {
		same(t, c, f, s)
	}
}

func TestFastCountMatchesTheLibraryOnRandomMixtures(t *testing.T) {
	for _, enc := range encodings {
		t.Run(string(enc), func(t *testing.T) { randomMixtures(t, enc) })
	}
}

func randomMixtures(t *testing.T, enc tokenizer.Encoding) {
	c, f := lib(t, enc)
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		var b strings.Builder
		for k := r.IntN(30); k >= 0; k-- {
			b.WriteString(palette[r.IntN(len(palette))])
		}
		same(t, c, f, b.String())
	}
}

// Every code point of the Basic Multilingual Plane, and a sample of the supplementary planes
// that hold assigned characters, in a few contexts, in batches.
func TestFastCountMatchesTheLibraryForEveryCodePoint(t *testing.T) {
	for _, enc := range encodings {
		t.Run(string(enc), func(t *testing.T) { everyCodePoint(t, enc) })
	}
}

func everyCodePoint(t *testing.T, enc tokenizer.Encoding) {
	c, f := lib(t, enc)
	contexts := []func(r rune) string{
		func(r rune) string { return string(r) },
		func(r rune) string { return "a" + string(r) + "b " },
		func(r rune) string { return " " + string(r) + string(r) + "A" },
		func(r rune) string { return "1" + string(r) + "\n" },
		func(r rune) string { return "!" + string(r) + "'s" },
	}
	var b strings.Builder
	flush := func() {
		same(t, c, f, b.String())
		b.Reset()
	}
	for r := rune(0); r <= 0xEFFFF; r++ {
		if r > 0xFFFF && r%13 != 0 || !utf8.ValidRune(r) || r > 0x3FFFF && r < 0xE0000 {
			continue
		}
		for _, ctx := range contexts {
			b.WriteString(ctx(r))
		}
		if b.Len() > 400 {
			flush()
		}
	}
	flush()
}

func TestInvalidUTF8IsLeftToTheLibrary(t *testing.T) {
	_, f := lib(t)
	_, ok := f.count("abc\xffdef")
	require.False(t, ok)
	c, _ := lib(t)
	want, err := c.Count("abc\xffdef")
	require.NoError(t, err)
	require.Equal(t, int64(want), Count("gpt-4o", "abc\xffdef"), "Count falls back to the library")
}

func TestCountUsesTheFastCounterForBothEncodings(t *testing.T) {
	require.NotNil(t, fastFor(O200kBase))
	require.NotNil(t, fastFor(Cl100kBase))
	text := strings.Repeat("Budgets reserve the worst case before the call; 42 tokens, I'd say. ", 8)
	for _, model := range []string{"gpt-4o-mini", "gpt-4"} {
		enc := tokenizer.O200kBase
		if EncodingFor(model) == Cl100kBase {
			enc = tokenizer.Cl100kBase
		}
		c, _ := lib(t, enc)
		want, err := c.Count(text)
		require.NoError(t, err)
		require.Equal(t, int64(want), Count(model, text), "model %s", model)
	}
}

func BenchmarkLibraryCount(b *testing.B) {
	c, _ := lib(b)
	s := strings.Repeat("The quarterly report shows revenue growth across all regions, while costs remained stable. ", 6)
	for b.Loop() {
		_, _ = c.Count(s)
	}
}

func BenchmarkFastCount(b *testing.B) {
	_, f := lib(b)
	s := strings.Repeat("The quarterly report shows revenue growth across all regions, while costs remained stable. ", 6)
	b.ReportAllocs()
	for b.Loop() {
		_, _ = f.count(s)
	}
}
