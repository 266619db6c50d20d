package providers

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nself-org/ai-orchestration/dataplane/providers/providertest"
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

// fakeStreamBody is the streamed reply of the providertest fake of kind (16 chunks with usage),
// byte for byte as the fake writes it, read from the handler in memory.
func fakeStreamBody(t testing.TB, kind providertest.Kind) []byte {
	t.Helper()
	var req *http.Request
	switch kind {
	case providertest.Anthropic:
		req = httptest.NewRequest(http.MethodPost, "/v1/messages", strings.NewReader(`{"model":"claude-sonnet-4-5","max_tokens":1000,"stream":true,"messages":[{"role":"user","content":"Request 1: summarize the quarterly report"}]}`))
		req.Header.Set("x-api-key", providertest.DefaultAPIKey)
		req.Header.Set("anthropic-version", "2023-06-01")
	case providertest.Google:
		req = httptest.NewRequest(http.MethodPost, "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", strings.NewReader(`{"contents":[{"role":"user","parts":[{"text":"Request 1: summarize the quarterly report"}]}]}`))
		req.Header.Set("x-goog-api-key", providertest.DefaultAPIKey)
	case providertest.Ollama:
		req = httptest.NewRequest(http.MethodPost, "/api/chat", strings.NewReader(`{"model":"llama3.2","stream":true,"messages":[{"role":"user","content":"Request 1: summarize the quarterly report"}]}`))
	default:
		t.Fatalf("no stream request for %s", kind)
	}
	rec := httptest.NewRecorder()
	providertest.NewFake(kind, providertest.Options{Chunks: 16, Reply: benchStreamReply}).ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("%s fake: %d %s", kind, rec.Code, rec.Body.String())
	}
	return rec.Body.Bytes()
}

// benchStreamReply is the reply the stream benchmarks relay, as the load bench's (with characters
// that JSON escapes).
const benchStreamReply = "The quarterly report shows revenue growth across all regions while operating costs remained stable, and the outlook is <good> & \"steady\"."

// streamAdapters are the adapters whose stream decoders the benchmarks and tests below read.
var streamAdapters = []struct {
	kind providertest.Kind
	mk   func(b base, c *call) *httpStream
}{
	{providertest.Anthropic, func(b base, c *call) *httpStream { return (&anthropic{base: b}).stream(c) }},
	{providertest.Google, func(b base, c *call) *httpStream { return (&google{base: b}).stream(c) }},
	{providertest.Ollama, func(b base, c *call) *httpStream { return (&ollama{base: b}).stream(c) }},
}

// BenchmarkStreamDecode reads one 16-delta stream of each provider's fake through its adapter,
// from memory: the decoding cost without the network. reads/op counts the reads of the body,
// each of which runs the [BeforeReader] hook, that is one flush of a relay's client: the most
// writes a relay makes per stream when the upstream is faster than it.
func BenchmarkStreamDecode(b *testing.B) {
	for _, a := range streamAdapters {
		b.Run(string(a.kind), func(b *testing.B) {
			data := fakeStreamBody(b, a.kind)
			reads := 0
			b.ReportAllocs()
			for b.Loop() {
				body := &countingBody{r: bytes.NewReader(data)}
				c := &call{resp: &http.Response{StatusCode: 200, Body: body}, body: body, cancel: func() {}, ctx: context.Background()}
				s := a.mk(base{name: "bench", timeout: time.Minute}, c)
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
				if u, ok := s.Usage(); n != 16 || !ok || u.CompletionTokens == 0 {
					b.Fatalf("%d deltas, usage %+v %v", n, u, ok)
				}
				reads += body.reads
			}
			b.ReportMetric(float64(reads)/float64(b.N), "reads/op")
		})
	}
}
