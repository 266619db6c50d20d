package jsonlex

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var docs = []string{
	`{}`, `[]`, `0`, `-0`, `1.5e-3`, `-12E+4`, `true`, `false`, `null`, `""`,
	`{"a":[1,{"b":null}],"c":"d\u00e9\n"}`,
	` [ 1 , 2 ] `,
	`"\ud83d\ude00 \ud800 \udc00x \ud800\u0041 \/\b\f\r\t\"\\"`,
	`"é中😀"`,
	// Invalid JSON, which the lexer must refuse.
	``, ` `, `{`, `[1,]`, `{"a":1,}`, `{"a" 1}`, `{1:2}`, `01`, `1.`, `.5`, `-`, `1e`, `+1`, `tru`, `nul`, `"a`, `"\x"`, `"\u12"`,
	"\"a\nb\"", `[1 2]`, `{}{}`, `NaN`, `Infinity`, "\"\xff\"",
	`[` + strings.Repeat(`[`, 70) + strings.Repeat(`]`, 70) + `]`,
}

// sameAsEncodingJSON checks that a document the lexer accepts is valid for encoding/json and,
// when it is a string, unescapes to the same value.
func sameAsEncodingJSON(t *testing.T, doc []byte) bool {
	t.Helper()
	l := New(doc)
	l.Skip()
	l.End()
	if l.Failed() {
		return false
	}
	require.True(t, json.Valid(doc), "the lexer accepted %q, which is not valid JSON", doc)
	var want string
	if s := strings.TrimLeft(string(doc), " \t\r\n"); strings.HasPrefix(s, `"`) {
		require.NoError(t, json.Unmarshal(doc, &want))
		l := New(doc)
		got := l.String()
		l.End()
		require.False(t, l.Failed(), "%q", doc)
		require.Equal(t, want, string(got), "%q unescaped differently", doc)
	}
	return true
}

func TestTheLexerAcceptsOnlyValidJSON(t *testing.T) {
	accepted := 0
	for _, d := range docs {
		if sameAsEncodingJSON(t, []byte(d)) {
			accepted++
		}
	}
	require.Equal(t, 14, accepted, "every valid document above is accepted")
}

func TestNumbersAreReadAsEncodingJSONDoes(t *testing.T) {
	cases := map[string]struct {
		ok   bool
		want int64
	}{
		"-0": {true, 0}, "42": {true, 42}, "9223372036854775807": {true, 1<<63 - 1},
		"9223372036854775808": {false, 0}, "1e2": {false, 0}, "1.0": {false, 0},
	}
	for lit, tc := range cases {
		l := New([]byte(lit))
		n := l.Int(64)
		require.Equal(t, !tc.ok, l.Failed(), lit)
		if tc.ok {
			require.Equal(t, tc.want, n, lit)
		}
	}
	l := New([]byte("1e999"))
	l.Float64()
	require.True(t, l.Failed(), "an out-of-range float leaves the fast path")
}

func FuzzLexerAgreesWithEncodingJSON(f *testing.F) {
	for _, d := range docs {
		f.Add([]byte(d))
	}
	f.Fuzz(func(t *testing.T, doc []byte) { sameAsEncodingJSON(t, doc) })
}
