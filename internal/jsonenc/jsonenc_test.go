package jsonenc

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

// stringCases cover every class of byte and rune encoding/json treats on its own.
func stringCases() []string {
	out := []string{
		"", "a", "hello, world", `"`, `\`, `\"`, "<", ">", "&", "<script>alert('x')</script> & more",
		"\b\f\n\r\t\v\x00\x01\x1f\x7f ", "a\u2028b\u2029c", "\u2027\u202a", "é中😀", "\xff", "a\xffb",
		"\xed\xa0\x80", "\xc0\xaf", "a\xe2\x82", "\xe2\x80", "\xe2\x80\xa8", "\xf0\x9f\x98", "\U0010ffff",
		"\ufffd", "\ufeff", "line one\nline two\n\n  indented\ttab", strings.Repeat("x", 4096),
		strings.Repeat("é\n<", 500), "{\"role\":\"user\"}", "/path/to\\file", "\u00e9\u0301",
	}
	for c := range 256 {
		out = append(out, string([]byte{byte(c)}), "x"+string([]byte{byte(c)})+"y")
		// At every offset of the 8-byte words the plain runs are skipped by, and past them.
		for p := range 18 {
			out = append(out, strings.Repeat("a", p)+string([]byte{byte(c)})+strings.Repeat("b", 17-p))
		}
	}
	for _, r := range "  é中😀" {
		for p := range 18 {
			out = append(out, strings.Repeat("a", p)+string(r)+strings.Repeat("b", 17-p))
		}
	}
	for r := rune(0); r < 0x3000; r += 7 {
		out = append(out, string(r))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		b := make([]byte, rng.IntN(40))
		for i := range b {
			switch rng.IntN(4) {
			case 0:
				b[i] = byte(rng.IntN(256))
			case 1:
				b[i] = byte(rng.IntN(0x20))
			default:
				const pick = "ab<>&\"\\\xe2\x80\xa8\xa9\xc3\xa9"
				b[i] = pick[rng.IntN(len(pick))]
			}
		}
		out = append(out, string(b))
	}
	return out
}

func requireStringLikeEncodingJSON(t *testing.T, s string) {
	t.Helper()
	want, err := json.Marshal(s)
	require.NoError(t, err)
	require.Equal(t, string(want), string(AppendString(nil, s)), "string %q", s)
	// Appending keeps what dst held.
	require.Equal(t, "pre"+string(want), string(AppendString([]byte("pre"), s)))
}

func TestStringsAreEncodedAsEncodingJSONEncodesThem(t *testing.T) {
	for _, s := range stringCases() {
		requireStringLikeEncodingJSON(t, s)
	}
}

func floatCases() []float64 {
	out := []float64{0, math.Copysign(0, -1), 1, -1, 0.1, 0.2, 0.25, 0.7, 1.5, 2, 1e-6, 9.999999e-7, 1e-7, 1.5e-7,
		1e20, 1e21, 9.99999999999e20, 1e-10, 1e-100, 1e100, 1e308, math.MaxFloat64, math.SmallestNonzeroFloat64,
		-1e21, -1e-7, 123456789, 1.0 / 3, 5e-324, 100, 1e6, 12345678901234567890, 0.000001, 0.0000012}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 5000 {
		out = append(out, math.Float64frombits(rng.Uint64()), rng.Float64(), rng.NormFloat64()*math.Pow(10, float64(rng.IntN(60)-30)))
	}
	return out
}

func TestFloatsAreEncodedAsEncodingJSONEncodesThem(t *testing.T) {
	for _, f := range floatCases() {
		want, err := json.Marshal(f)
		got, ok := AppendFloat([]byte("x"), f)
		if err != nil {
			require.False(t, ok, "encoding/json refuses %v", f)
			require.Equal(t, "x", string(got), "a refused float leaves dst as it was")
			continue
		}
		require.True(t, ok, "%v", f)
		require.Equal(t, "x"+string(want), string(got), "float %v (%b)", f, math.Float64bits(f))
	}
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		_, ok := AppendFloat(nil, f)
		require.False(t, ok)
	}
}

func TestIntsAndBoolsAreEncodedAsEncodingJSONEncodesThem(t *testing.T) {
	for _, v := range []int64{0, 1, -1, 64, math.MaxInt64, math.MinInt64} {
		want, _ := json.Marshal(v)
		require.Equal(t, string(want), string(AppendInt(nil, v)))
	}
	for _, v := range []bool{true, false} {
		want, _ := json.Marshal(v)
		require.Equal(t, string(want), string(AppendBool(nil, v)))
	}
}

func FuzzAppendStringIsEncodingJSONs(f *testing.F) {
	for _, s := range stringCases()[:64] {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		requireStringLikeEncodingJSON(t, s)
		if !utf8.ValidString(s) {
			return
		}
		// A valid string survives the round trip.
		var back string
		require.NoError(t, json.Unmarshal(AppendString(nil, s), &back))
		require.Equal(t, s, back)
	})
}

func FuzzAppendFloatIsEncodingJSONs(f *testing.F) {
	for _, v := range floatCases()[:40] {
		f.Add(math.Float64bits(v))
	}
	f.Fuzz(func(t *testing.T, bits uint64) {
		v := math.Float64frombits(bits)
		want, err := json.Marshal(v)
		got, ok := AppendFloat(nil, v)
		require.Equal(t, err == nil, ok)
		if ok {
			require.Equal(t, string(want), string(got))
		}
	})
}

func BenchmarkAppendString1KiB(b *testing.B) {
	s := strings.Repeat("the quarterly report shows revenue growth\n", 25)
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendString(buf[:0], s)
	}
}

func BenchmarkEncodingJSONString1KiB(b *testing.B) {
	s := strings.Repeat("the quarterly report shows revenue growth\n", 25)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(s); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendStringCJK(b *testing.B) {
	s := strings.Repeat("季度报告显示所有地区的收入均有增长，运营成本保持稳定。", 20)
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendString(buf[:0], s)
	}
}

func BenchmarkEncodingJSONStringCJK(b *testing.B) {
	s := strings.Repeat("季度报告显示所有地区的收入均有增长，运营成本保持稳定。", 20)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(s); err != nil {
			b.Fatal(err)
		}
	}
}
