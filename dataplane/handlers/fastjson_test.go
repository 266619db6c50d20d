package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	gojson "github.com/goccy/go-json"
	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/internal/jsondiff"
)

// chatCases are chat bodies, valid and not, on which the library must behave as encoding/json.
var chatCases = []string{
	`{"model":"gpt-4o-mini","user":"u1","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}]}`,
	`{"model":"m","messages":[],"stream":true,"stream_options":{"include_usage":true},"max_tokens":5,"max_completion_tokens":7,"temperature":0.25,"top_p":1e-1,"n":1,"user":"u","userId":"x","orgId":"o","maxTokens":9}`,
	" \t\r\n{ \"model\" : \"m\" ,\n\"messages\" : [ { \"role\" : \"user\" , \"content\" : \"hi\" } ] }\n ",
	`{"messages":[{"role":"user","content":"a\"b\\c\/d\b\f\n\r\t \u00e9\u4e2d \ud83d\ude00 é 中 😀"}]}`,
	`{"messages":[{"role":"user","content":"\ud800 \udc00 \ud800\u0041 \ud800\ud800\udc00 \ud83d"}]}`,
	`{"model":null,"messages":[{"role":null,"content":null}],"stream":null,"stream_options":null,"max_tokens":null,"temperature":null,"user":null,"maxTokens":null}`,
	`{"tools":[{"type":"function","function":{"name":"f","parameters":{"a":[1,2.5e3,-0,true,false,null,"x\u0041"]}}}],"seed":-12,"logit_bias":{},"metadata":{"K":"v"},"messages":[{"role":"user","content":"x","name":"n"}]}`,
	`{"max_tokens":-3,"maxTokens":9223372036854775807}`,
	`{"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url"}]}]}`,
	`{"messages":[null,{"role":"user","content":"x"}]}`,
	`{"response_format":{"type":"json_schema","json_schema":{"name":"n","schema":{"b":[1, 2]}}},"responseFormat":{ "type" : "x" }}`,
	// encoding/json's merge rules: a repeated key decodes into what the first one left.
	`{"model":"a","model":null}`, `{"model":"a","model":"b"}`,
	`{"messages":[{"role":"a","content":"x"}],"messages":[{"content":"y"}]}`,
	`{"messages":[{"role":"a","content":"x"},{"role":"b"}],"messages":[{"content":"y"}]}`,
	`{"messages":[{"role":"a","content":"x"}],"messages":null}`, `{"messages":[{"role":"a"}],"messages":[]}`,
	`{"stream_options":{"include_usage":true},"stream_options":{}}`, `{"stream_options":{"include_usage":true},"stream_options":null}`,
	`{"max_tokens":1,"max_tokens":null}`, `{"stop":["a"],"stop":null}`, `{"responseFormat":{"type":"x"},"responseFormat":null}`,
	`{"response_format":{"type":"a","json_schema":{"name":"n","schema":{"b":1}}},"response_format":{"json_schema":{}}}`,
	`{"messages":[{"role":"user","content":"a","content":null}]}`,
	// encoding/json's key matching: exact first, then case-insensitive with Unicode folding.
	`{"Model":"m","MESSAGES":[{"Role":"user","content":"x"}]}`, `{"\u006dodel":"m"}`, "{\"top_\u212a\":1}", `{"top_\u212a":1}`,
	"{\"\u017ftream\":true}", `{"\u017ftream":true}`, `{"Stream":true,"stream":false}`, `{"stream":false,"Stream":true}`,
	`{"maxtokens":3}`, `{"maxTokens":3,"max_tokens":4}`, `{"userid":"a","userId":"b","USERID":"c"}`, `{"modeł":"m"}`, `{"":1}`,
	// Invalid documents.
	`{"model":"m",}`, `{"messages":[{"role":"user","content":"x"},]}`, `{"model" "m"}`, `{"model":"m"} {}`, `{"model":"m"`,
	`{"model":"m`, `{"model":"\u00`, `{"model":"\x"}`, `[]`, `null`, ``, `{"stream":tru}`, `{"x":nul}`, `{"x":"\0"}`,
	`{"x":[[[{"a":1}]]`, "{\"model\":\"m\"}\x00",
}

// chatKeys are the keys each of jsondiff.Values is put under.
var chatKeys = []string{"model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens", "temperature",
	"top_p", "n", "stop", "response_format", "user", "userId", "orgId", "maxTokens", "responseFormat", "x"}

func chatBodies() []string {
	out := append([]string(nil), chatCases...)
	for _, v := range jsondiff.Values {
		for _, k := range chatKeys {
			out = append(out, `{"`+k+`":`+v+`}`)
		}
		for _, k := range []string{"role", "content", "name"} {
			out = append(out, `{"messages":[{"`+k+`":`+v+`}]}`)
		}
	}
	return out
}

// requireSameAsEncodingJSON fails unless the library accepts body exactly when encoding/json
// does, with the same value, and leaves nothing pointing into body.
func requireSameAsEncodingJSON[T any](t *testing.T, body []byte) {
	t.Helper()
	var want, got T
	stdErr := json.Unmarshal(body, &want)
	dup := bytes.Clone(body)
	ok := decodeChat(dup, &got)
	if stdErr != nil {
		require.False(t, ok, "the library accepted %q, which encoding/json refuses: %v", body, stdErr)
		var zero T
		require.Equal(t, zero, got, "a refused body leaves the value zero for encoding/json")
		return
	}
	require.True(t, ok, "the library refused %q, which encoding/json accepts", body)
	for i := range dup {
		dup[i] = 'x' // the pooled body buffer is reused by the next request
	}
	jsondiff.RequireSameValue(t, want, got, body)
}

func TestChatDecodingIsEncodingJSONs(t *testing.T) {
	for _, body := range chatBodies() {
		requireSameAsEncodingJSON[OAChatRequest](t, []byte(body))
		requireSameAsEncodingJSON[APIChatRequest](t, []byte(body))
	}
}

func TestOnlyChatRequestsTakeTheLibrary(t *testing.T) {
	body := []byte(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`)
	var oa OAChatRequest
	require.True(t, decodeChat(body, &oa))
	require.Equal(t, oaContent("hi"), oa.Messages[0].Content)
	var api APIChatRequest
	require.True(t, decodeChat(body, &api))
	require.Equal(t, "hi", api.Messages[0].Content)
	var other struct{ Model string }
	require.False(t, decodeChat(body, &other), "other bodies are decoded by encoding/json alone")
	require.False(t, decodeChat([]byte(`{"model":1}`), &oa))
	require.Equal(t, OAChatRequest{}, oa, "a refused body leaves the value zero")
}

// FuzzChatDecodingIsEncodingJSONs checks the library against encoding/json on any body.
func FuzzChatDecodingIsEncodingJSONs(f *testing.F) {
	// The hand-picked cases only: the cross product of the test above makes the baseline
	// coverage run too long for a short fuzzing budget.
	for _, body := range chatCases {
		f.Add([]byte(body))
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
	decodeChatErr := func(body []byte, v any) error {
		if !decodeChat(body, v) {
			return errors.New("refused")
		}
		return nil
	}
	// go-json is how bindJSON decoded it before the string-content shadow (decodeChat).
	for name, unmarshal := range map[string]func([]byte, any) error{"encoding/json": json.Unmarshal, "go-json": gojson.Unmarshal, "decodeChat": decodeChatErr} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var r OAChatRequest
				if err := unmarshal(body, &r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// plainCases are bodies of the shape decodeOAChatPlain decodes itself, and near misses it must
// leave to the library.
var plainCases = []string{
	`{"model":"gpt-4o-mini","user":"bench-user-7","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}]}`,
	`{}`, ` { } `, `{"messages":[]}`, `{"messages":[{}]}`, `{"messages":[{"role":"developer"},{"content":""}]}`,
	"\t{\r\n\"model\" :\"m\" , \"messages\" : [ { \"content\" : \"x\" , \"role\" : \"tool\" } , {\"role\":\"Custom\",\"content\":\"é 中 😀\"} ] }\n",
	`{"stream":true,"max_tokens":0,"max_completion_tokens":-0,"temperature":0.25,"top_p":1e-1}`,
	`{"stream":false,"max_tokens":123456789012345678,"temperature":-1.5E+3,"top_p":0}`,
	`{"max_tokens":-123456789012345678}`, `{"max_tokens":1234567890123456789}`, `{"max_tokens":9223372036854775807}`,
	`{"max_tokens":9223372036854775808}`, `{"max_tokens":1.0}`, `{"max_tokens":1e2}`, `{"max_tokens":-}`, `{"max_tokens":01}`,
	`{"temperature":1e400}`, `{"temperature":-1e-400}`, `{"temperature":.5}`, `{"temperature":5.}`, `{"temperature":1e}`,
	`{"temperature":+1}`, `{"temperature":0x10}`, `{"temperature":NaN}`, `{"stream":tru}`, `{"stream":true1}`, `{"stream":"true"}`,
	`{"model":"m","model":"n"}`, `{"messages":[{"role":"a","role":"b"}]}`, `{"messages":[{"content":"a","content":"b"}]}`,
	`{"messages":[],"messages":[]}`, `{"Model":"m"}`, `{"model":"a\"b"}`, `{"model":"a\u0041"}`, "{\"model\":\"a\tb\"}",
	"{\"model\":\"\xff\"}", `{"model":null}`, `{"messages":null}`, `{"messages":[null]}`, `{"messages":[{"role":null}]}`,
	`{"messages":[{"role":"user","content":[{"type":"text","text":"a"}]}]}`, `{"messages":[{"role":"user","name":"n"}]}`,
	`{"n":1}`, `{"model":"m",}`, `{"model":"m"} x`, `{"model":"m"`, `{"model":"m`, `{"model" "m"}`, `{"messages":[{"role":"a"},]}`,
	`{"messages":[{"role":"a"}`, `{"messages":[{"role":"a"`, `{"messages":[{"role":"a",}]}`, `{"messages":{}}`, `{"model":1}`,
	`{"messages":[{"role":"a"},{"role":"b"},{"role":"c"},{"role":"d"},{"role":"e"},{"role":"f"}]}`,
}

// TestPlainChatDecodingIsEncodingJSONs holds decodeOAChatPlain to encoding/json on the bodies it
// takes, checks that it takes the usual ones, and the whole decoding to encoding/json on all.
func TestPlainChatDecodingIsEncodingJSONs(t *testing.T) {
	took := 0
	for _, body := range append(plainCases, chatBodies()...) {
		requirePlainIsEncodingJSONs(t, []byte(body))
		requireSameAsEncodingJSON[OAChatRequest](t, []byte(body))
		var r OAChatRequest
		if decodeOAChatPlain([]byte(body), &r) {
			took++
		}
	}
	require.Greater(t, took, 20)
	for _, body := range plainCases[:9] {
		var r OAChatRequest
		require.True(t, decodeOAChatPlain([]byte(body), &r), "%s", body)
	}
}

// requirePlainIsEncodingJSONs fails unless decodeOAChatPlain, when it takes body, yields
// encoding/json's value (which must accept body), and leaves r untouched when it does not.
func requirePlainIsEncodingJSONs(t *testing.T, body []byte) {
	t.Helper()
	var want OAChatRequest
	stdErr := json.Unmarshal(body, &want)
	dup := bytes.Clone(body)
	got := OAChatRequest{oaChatParams: oaChatParams{Model: "untouched"}}
	if !decodeOAChatPlain(dup, &got) {
		require.Equal(t, OAChatRequest{oaChatParams: oaChatParams{Model: "untouched"}}, got, "a refused body leaves r as it was")
		return
	}
	require.NoError(t, stdErr, "decodeOAChatPlain took %q, which encoding/json refuses", body)
	for i := range dup {
		dup[i] = 'x' // the pooled body buffer is reused by the next request
	}
	jsondiff.RequireSameValue(t, want, got, body)
}

// FuzzPlainChatDecodingIsEncodingJSONs checks decodeOAChatPlain against encoding/json on any body.
func FuzzPlainChatDecodingIsEncodingJSONs(f *testing.F) {
	for _, body := range append(plainCases, chatCases...) {
		f.Add([]byte(body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		requirePlainIsEncodingJSONs(t, body)
		requireSameAsEncodingJSON[OAChatRequest](t, body)
	})
}

// TestPlainTextIsNoControlCharacterAndValidUTF8 holds plainText's word-at-a-time check to its
// definition, on strings with every byte value at every offset of a word.
func TestPlainTextIsNoControlCharacterAndValidUTF8(t *testing.T) {
	want := func(s []byte) bool {
		return !bytes.ContainsFunc(s, func(r rune) bool { return r < 0x20 }) && utf8.Valid(s)
	}
	base := []byte("the quarterly report shows growth, é 中 😀 ")
	for n := range 40 {
		for pos := range n {
			for c := range 256 {
				s := bytes.Clone(base[:n])
				s[pos] = byte(c)
				require.Equal(t, want(s), plainText(s), "%q", s)
			}
		}
	}
}
