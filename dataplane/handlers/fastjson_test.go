package handlers

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// fastCases are chat bodies and whether the fast path must take them (true) or hand them to
// encoding/json (false). Either way the result must be encoding/json's.
var fastCases = map[string]struct {
	body string
	fast bool
}{
	"the common request":                {`{"model":"gpt-4o-mini","user":"u1","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}]}`, true},
	"every handled field":               {`{"model":"m","messages":[],"stream":true,"stream_options":{"include_usage":true},"max_tokens":5,"max_completion_tokens":7,"temperature":0.25,"top_p":1e-1,"n":1,"user":"u","userId":"x","orgId":"o","maxTokens":9}`, true},
	"white space everywhere":            {" \t\r\n{ \"model\" : \"m\" ,\n\"messages\" : [ { \"role\" : \"user\" , \"content\" : \"hi\" } ] }\n ", true},
	"escapes and unicode":               {`{"messages":[{"role":"user","content":"a\"b\\c\/d\b\f\n\r\t \u00e9\u4e2d \ud83d\ude00 é 中 😀"}]}`, true},
	"lone surrogates become U+FFFD":     {`{"messages":[{"role":"user","content":"\ud800 \udc00 \ud800\u0041 \ud800\ud800\udc00 \ud83d"}]}`, true},
	"nulls":                             {`{"model":null,"messages":[{"role":null,"content":null}],"stream":null,"stream_options":null,"max_tokens":null,"temperature":null,"user":null,"maxTokens":null}`, true},
	"null messages":                     {`{"messages":null}`, true},
	"unknown fields of any shape":       {`{"tools":[{"type":"function","function":{"name":"f","parameters":{"a":[1,2.5e3,-0,true,false,null,"x\u0041"]}}}],"seed":-12,"logit_bias":{},"metadata":{"K":"v"},"messages":[{"role":"user","content":"x","name":"n"}]}`, true},
	"negative and big integers":         {`{"max_tokens":-3,"maxTokens":9223372036854775807}`, true},
	"empty object":                      {`{}`, true},
	"content parts":                     {`{"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}]}`, false},
	"image content part":                {`{"messages":[{"role":"user","content":[{"type":"image_url"}]}]}`, false},
	"content of the wrong type":         {`{"messages":[{"role":"user","content":5}]}`, false},
	"a null message":                    {`{"messages":[null,{"role":"user","content":"x"}]}`, false},
	"duplicate key":                     {`{"model":"a","model":"b"}`, false},
	"duplicate message key":             {`{"messages":[{"role":"user","content":"a","content":"b"}]}`, false},
	"key in another case":               {`{"Model":"m","MESSAGES":[{"Role":"user","content":"x"}]}`, false},
	"escaped key":                       {`{"\u006dodel":"m"}`, false},
	"non-ASCII key":                     {`{"modeł":"m"}`, false},
	"Kelvin sign key":                   {`{"top_\u212a":1}`, false},
	"invalid UTF-8":                     {"{\"model\":\"a\xffb\"}", false},
	"invalid UTF-8 in an unknown field": {"{\"x\":\"a\xffb\"}", false},
	"raw control character":             {"{\"model\":\"a\nb\"}", false},
	"fraction into an integer":          {`{"max_tokens":1.5}`, false},
	"exponent into an integer":          {`{"max_tokens":1e2}`, false},
	"integer overflow":                  {`{"max_tokens":9223372036854775808}`, false},
	"float overflow":                    {`{"temperature":1e999}`, false},
	"leading zero":                      {`{"temperature":01}`, false},
	"bare minus":                        {`{"temperature":-}`, false},
	"dot without digits":                {`{"temperature":1.}`, false},
	"string for a number":               {`{"max_tokens":"5"}`, false},
	"string for a bool":                 {`{"stream":"true"}`, false},
	"stop":                              {`{"stop":["a"]}`, false},
	"response format":                   {`{"response_format":{"type":"json_object"},"responseFormat":{}}`, false},
	"trailing comma in object":          {`{"model":"m",}`, false},
	"trailing comma in array":           {`{"messages":[{"role":"user","content":"x"},]}`, false},
	"missing colon":                     {`{"model" "m"}`, false},
	"trailing data":                     {`{"model":"m"} {}`, false},
	"truncated":                         {`{"model":"m"`, false},
	"truncated string":                  {`{"model":"m`, false},
	"truncated escape":                  {`{"model":"\u00`, false},
	"bad escape":                        {`{"model":"\x"}`, false},
	"not an object":                     {`[]`, false},
	"bad literal":                       {`{"stream":tru}`, false},
	"bad literal in an unknown field":   {`{"x":nul}`, false},
	"deep nesting":                      {`{"x":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, false},
	"unclosed nesting":                  {`{"x":[[[{"a":1}]]`, false},
}

// requireSameAsEncodingJSON decodes body with the fast path and with encoding/json and fails
// unless the fast path either declined (leaving the value zero) or agreed exactly.
func requireSameAsEncodingJSON[T any, P interface {
	*T
	fastDecoder
}](t *testing.T, body []byte) bool {
	t.Helper()
	var want, got T
	stdErr := json.Unmarshal(body, &want)
	fast := P(&got).decodeFast(body)
	if !fast {
		var zero T
		require.Equal(t, zero, got, "a declined fast path must leave the value zero")
		return false
	}
	require.NoError(t, stdErr, "the fast path accepted %q, which encoding/json refuses", body)
	require.Equal(t, want, got, "the fast path decoded %q differently", body)
	return true
}

func TestFastChatDecodingIsEncodingJSONs(t *testing.T) {
	for name, tc := range fastCases {
		t.Run(name, func(t *testing.T) {
			oa := requireSameAsEncodingJSON[OAChatRequest](t, []byte(tc.body))
			api := requireSameAsEncodingJSON[APIChatRequest](t, []byte(tc.body))
			if tc.fast {
				require.True(t, oa, "the OpenAI request should take the fast path")
				require.True(t, api, "the /api/ai request should take the fast path")
			}
		})
	}
}

func TestFastChatDecodingCopiesOutOfTheBuffer(t *testing.T) {
	body := []byte(`{"model":"m","user":"u","messages":[{"role":"user","content":"hello"},{"role":"user","content":"a\nb"}]}`)
	var r OAChatRequest
	require.True(t, r.decodeFast(body))
	for i := range body {
		body[i] = 'x' // the pooled body buffer is reused by the next request
	}
	require.Equal(t, "m", r.Model)
	require.Equal(t, "u", r.User)
	require.Equal(t, oaContent("hello"), r.Messages[0].Content)
	require.Equal(t, oaContent("a\nb"), r.Messages[1].Content)
}

// FuzzFastChatDecoding checks that, for any body, the fast path agrees with encoding/json or
// declines.
func FuzzFastChatDecoding(f *testing.F) {
	for _, tc := range fastCases {
		f.Add([]byte(tc.body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		requireSameAsEncodingJSON[OAChatRequest](t, body)
		requireSameAsEncodingJSON[APIChatRequest](t, body)
	})
}

func BenchmarkDecodeChatRequest(b *testing.B) {
	body := []byte(`{"model":"gpt-4o-mini","user":"bench-user-7","messages":[{"role":"system","content":"` +
		strings.Repeat("the quarterly report shows revenue growth ", 24) + `"},{"role":"user","content":"Request 7: ` +
		strings.Repeat("please summarize the key findings ", 14) + `"}]}`)
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var r OAChatRequest
			if err := json.Unmarshal(body, &r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var r OAChatRequest
			if !r.decodeFast(body) {
				b.Fatal("declined")
			}
		}
	})
}
