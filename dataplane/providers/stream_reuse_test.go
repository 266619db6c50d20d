package providers

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/internal/jsondiff"
)

// The OpenAI adapter decodes every chunk of a stream into one value whose choices' array it
// keeps. These tests hold it to decoding each chunk into a fresh value, as it did before: what
// one chunk set (a delta, a finish reason, usage, an error) must never show through in the next.

// recvAll reads s to its end and records each delta, the error that ended it and the usage.
func recvAll(t testing.TB, s *httpStream) []string {
	var out []string
	for i := 0; ; i++ {
		if i > 10_000 {
			t.Fatal("stream did not terminate")
		}
		d, err := s.Recv()
		if err != nil {
			out = append(out, "end: "+err.Error())
			break
		}
		out = append(out, "delta: "+d)
	}
	u, ok := s.Usage()
	if ok {
		out = append(out, "usage: "+fmt.Sprint(u.PromptTokens, "/", u.CompletionTokens, "/", u.CachedPromptTokens))
	}
	return out
}

// freshChunk decodes every chunk into a fresh value.
type freshChunk struct{}

func (freshChunk) decode(data []byte) (*oaiChunk, error) {
	ch := new(oaiChunk)
	return ch, unmarshalFast(data, ch)
}

// freshOpenAIStream is the OpenAI stream decoder with a fresh chunk value per chunk.
func freshOpenAIStream(o *openAI, c *call) *httpStream { return o.streamDecoding(c, freshChunk{}) }

// requireReusedChunkIsFresh runs body through the adapter and through freshOpenAIStream.
func requireReusedChunkIsFresh(t testing.TB, body []byte) {
	open := func(mk func(o *openAI, c *call) *httpStream) []string {
		rc := io.NopCloser(bytes.NewReader(body))
		c := &call{resp: &http.Response{StatusCode: 200, Body: rc}, body: rc, cancel: func() {}, ctx: context.Background()}
		return recvAll(t, mk(&openAI{base: base{name: "t", apiKey: "sk-x", timeout: time.Minute}}, c))
	}
	want := open(freshOpenAIStream)
	got := open(func(o *openAI, c *call) *httpStream { return o.stream(c) })
	require.Equal(t, want, got, "stream:\n%s", body)
}

// reuseChunks are chunks that set what a later one leaves out, and ones that leave it out.
var reuseChunks = []string{
	`{"choices":[{"delta":{"content":"a"},"finish_reason":null},{"delta":{"content":"b"},"finish_reason":"length"}]}`,
	`{"choices":[{"delta":{},"finish_reason":null}]}`, `{"choices":[{}]}`, `{"choices":[{},{},{}]}`,
	`{"choices":[{"delta":{"content":"c"}},{"delta":{"content":null}},{"delta":{"content":"d"},"finish_reason":"stop"}]}`,
	`{"choices":[]}`, `{"choices":null}`, `{}`, `{"id":"x","model":"m"}`,
	`{"choices":[{"delta":{"content":"e"}}],"usage":{"prompt_tokens":3,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":1}}}`,
	`{"choices":[{"delta":{"content":"f"}}],"usage":null}`, `{"choices":[{"finish_reason":""}]}`,
	`{"choices":[{"delta":{"content":"g"},"finish_reason":"stop"},{"delta":{"content":"h"}}],"choices":[{"delta":{}}]}`,
	`{"choices":[{"delta":{"content":1}}]}`, `{"choices":[{"delta":{"content":"i"}},7]}`, `{"choices":{}}`,
	`{"error":{"message":"boom","type":"server_error"}}`, `{"choices":[{"delta":{"content":"j"}}],"error":null}`,
}

func TestOpenAIStreamChunkReuseMatchesFreshDecoding(t *testing.T) {
	var cases []string
	// Every ordered pair, then each chunk after each one of jsondiff's odd values in its place.
	for _, a := range reuseChunks {
		for _, b := range reuseChunks {
			cases = append(cases, a+"\n"+b)
		}
	}
	for _, v := range jsondiff.Values {
		for _, a := range reuseChunks[:5] {
			cases = append(cases, a+"\n"+`{"choices":[{"delta":{"content":`+v+`},"finish_reason":`+v+`}]}`+"\n"+a)
			cases = append(cases, a+"\n"+`{"choices":`+v+`}`+"\n"+a)
		}
	}
	cases = append(cases, strings.Join(reuseChunks, "\n"))
	for _, c := range cases {
		requireReusedChunkIsFresh(t, sseOf(strings.Split(c, "\n"), true))
		requireReusedChunkIsFresh(t, sseOf(strings.Split(c, "\n"), false))
	}
}

// sseOf frames chunks as data events, with or without the terminal [DONE].
func sseOf(chunks []string, done bool) []byte {
	var b bytes.Buffer
	for _, c := range chunks {
		b.WriteString("data: " + c + "\n\n")
	}
	if done {
		b.WriteString("data: [DONE]\n\n")
	}
	return b.Bytes()
}

func FuzzOpenAIStreamChunkReuseMatchesFreshDecoding(f *testing.F) {
	f.Add(strings.Join(reuseChunks[:6], "\n"), true)
	f.Add(reuseChunks[0]+"\n"+reuseChunks[1], false)
	f.Fuzz(func(t *testing.T, chunks string, done bool) {
		requireReusedChunkIsFresh(t, sseOf(strings.Split(chunks, "\n"), done))
	})
}
