// Package jsondiff holds what the tests that hold a JSON decoder to encoding/json share: the
// values, valid and not, that every field is tried with, and the comparison of two decoded
// results. Only tests import it.
package jsondiff

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Values are JSON values, valid and not (numbers at and past int64's range, -0, escapes and
// unpaired surrogates, invalid UTF-8, control characters, nesting at 100 and past encoding/json's
// limit), to be put under every field a decoder knows.
var Values = []string{
	`{}`, `[]`, `0`, `-0`, `1`, `1.5e-3`, `-12E+4`, `1e2`, `1.0`, `9223372036854775807`, `9223372036854775808`,
	`-9223372036854775809`, `2147483648`, `1e999`, `4.9e-324`, `1e-400`, `true`, `false`, `null`, `""`,
	`{"a":[1,{"b":null}],"c":"d\u00e9\n"}`, ` [ 1 , 2 ] `, `[{"role":"user","content":"x"}]`, `[null]`, `{"include_usage":true}`,
	`"\ud83d\ude00 \ud800 \udc00x \ud800\u0041 \/\b\f\r\t\"\\"`, `"é中😀"`, `"a\u0000b"`, `"\u2028\u2029"`, `"<&>"`,
	``, `{`, `[1,]`, `{"a":1,}`, `{"a" 1}`, `{1:2}`, `01`, `1.`, `.5`, `-`, `1e`, `+1`, `tru`, `nul`, `"a`, `"\x"`, `"\u12"`,
	"\"a\nb\"", "\"a\x7fb\"", `[1 2]`, `NaN`, `-Infinity`, "\"\xff\"", "\"\xed\xa0\x80\"", "\"\xc0\xaf\"", "\"a\xe2\x82\"",
	strings.Repeat(`[`, 100) + strings.Repeat(`]`, 100), strings.Repeat(`[`, 10001) + strings.Repeat(`]`, 10001),
	`[{}]`,
}

// RequireSameValue fails unless got is want; -0 and 0 are told apart by their encodings, which
// Equal alone cannot do.
func RequireSameValue(t testing.TB, want, got any, body []byte) {
	t.Helper()
	require.Equal(t, want, got, "the library decoded %q differently", body)
	wantJSON, err := json.Marshal(want)
	require.NoError(t, err)
	gotJSON, err := json.Marshal(got)
	require.NoError(t, err)
	require.Equal(t, string(wantJSON), string(gotJSON), "the library decoded %q differently", body)
}
