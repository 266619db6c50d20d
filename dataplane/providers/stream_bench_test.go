package providers

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// openAIStreamBody is a 16-delta OpenAI stream with usage, as the OpenAI-compatible fake and
// the load bench's upstream send it.
func openAIStreamBody() []byte {
	var b strings.Builder
	const head = `data: {"id":"chatcmpl-fake1764118800","object":"chat.completion.chunk","created":1764118800,"model":"gpt-4o-mini","system_fingerprint":"fp_fake","choices":[{"index":0,"delta":`
	b.WriteString(head + `{"content":"","refusal":null,"role":"assistant"},"logprobs":null,"finish_reason":null}],"usage":null}` + "\n\n")
	for i := range 16 {
		b.WriteString(head + `{"content":" word` + string(rune('a'+i)) + ` more"},"logprobs":null,"finish_reason":null}],"usage":null}` + "\n\n")
	}
	b.WriteString(head + `{},"logprobs":null,"finish_reason":"stop"}],"usage":null}` + "\n\n")
	b.WriteString(`data: {"id":"chatcmpl-fake1764118800","object":"chat.completion.chunk","created":1764118800,"model":"gpt-4o-mini","system_fingerprint":"fp_fake","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":48,"total_tokens":60}}` + "\n\n")
	b.WriteString("data: [DONE]\n\n")
	return []byte(b.String())
}

// BenchmarkOpenAIStreamDecode reads one 16-delta stream through the OpenAI adapter's decoder,
// from memory: the per-chunk decoding cost without the network.
func BenchmarkOpenAIStreamDecode(b *testing.B) {
	data := openAIStreamBody()
	o := &openAI{base: base{name: "bench", timeout: time.Minute}}
	b.ReportAllocs()
	for b.Loop() {
		body := io.NopCloser(bytes.NewReader(data))
		c := &call{resp: &http.Response{StatusCode: 200, Body: body}, body: body, cancel: func() {}, ctx: context.Background()}
		s := o.stream(c)
		n := 0
		for {
			_, err := s.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		if u, ok := s.Usage(); n != 16 || !ok || u.CompletionTokens != 48 {
			b.Fatalf("%d deltas, usage %+v %v", n, u, ok)
		}
	}
}

// countingBody counts the reads of a stream's body.
type countingBody struct {
	r     io.Reader
	reads int
}

func (c *countingBody) Read(p []byte) (int, error) { c.reads++; return c.r.Read(p) }
func (c *countingBody) Close() error               { return nil }

// The BeforeRead hook runs exactly once before every read of the upstream body, so a relay that
// flushes there never holds a delta while the upstream is being waited on.
func TestBeforeReadRunsBeforeEveryReadOfTheBody(t *testing.T) {
	data := openAIStreamBody()
	for _, chunked := range []bool{false, true} {
		var r io.Reader = bytes.NewReader(data)
		if chunked {
			r = &smallReads{r: r, n: 7}
		}
		body := &countingBody{r: r}
		c := &call{resp: &http.Response{StatusCode: 200, Body: body}, body: body, cancel: func() {}, ctx: context.Background()}
		s := (&openAI{base: base{name: "t", timeout: time.Minute}}).stream(c)
		var at []int // body reads done when the hook ran
		s.BeforeRead(func() { at = append(at, body.reads) })
		var got strings.Builder
		for {
			d, err := s.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			got.WriteString(d)
		}
		var want strings.Builder
		for i := range 16 {
			want.WriteString(" word" + string(rune('a'+i)) + " more")
		}
		if got.String() != want.String() {
			t.Fatalf("deltas %q, want %q", got.String(), want.String())
		}
		hooked := len(at)
		// Recv drains the rest of the body at EOF directly, without the hook.
		if hooked == 0 || hooked > body.reads {
			t.Fatalf("hook ran %d times for %d reads", hooked, body.reads)
		}
		for i, n := range at {
			if n != i {
				t.Fatalf("hook call %d ran after %d reads, want %d (once before each read): %v", i, n, i, at)
			}
		}
		if chunked && hooked < len(data)/7 {
			t.Fatalf("hook ran %d times for %d reads of 7 bytes", hooked, body.reads)
		}
		s.BeforeRead(nil)
		_ = s.Close()
	}
}

// smallReads returns at most n bytes per read, as a slow network does.
type smallReads struct {
	r io.Reader
	n int
}

func (s *smallReads) Read(p []byte) (int, error) {
	if len(p) > s.n {
		p = p[:s.n]
	}
	return s.r.Read(p)
}
