// Package providertest runs fake AI provider upstreams that speak each provider's documented
// wire format (OpenAI, Anthropic, Google Gemini, Ollama), validate what they receive as
// strictly as the real APIs do, and fail on demand in each provider's own way: error statuses
// with the provider's error body, Retry-After, stalls, resets, malformed JSON, latency.
//
// Tests start one with [NewOpenAI], [NewAnthropic], [NewGoogle] or [NewOllama]; load tests and
// cmd/mockupstream mount a [Fake] (an http.Handler) on their own server.
package providertest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nself-org/ai-orchestration/dataplane/config"
)

// Kind names the wire format a [Fake] speaks.
type Kind string

// The supported wire formats.
const (
	OpenAI    Kind = "openai"
	Anthropic Kind = "anthropic"
	Google    Kind = "google"
	Ollama    Kind = "ollama"
)

// DefaultAPIKey is the key the fakes expect when [Options.APIKey] is empty (except Ollama,
// which checks no key unless one is set).
const DefaultAPIKey = "test-key"

// DefaultReply is the completion text when [Options.Reply] is empty.
const DefaultReply = "Hello from the fake upstream."

// Fault selects how a fake misbehaves.
type Fault int

const (
	// FaultNone answers normally.
	FaultNone Fault = iota
	// FaultStatus answers Options.Status with the provider's real error body (and Retry-After).
	FaultStatus
	// FaultMalformed answers 200 with a body (or, streaming, a chunk) that is not valid JSON.
	FaultMalformed
	// FaultReset closes the TCP connection abruptly (RST), before the reply or mid-stream.
	FaultReset
	// FaultStall stops sending and holds the connection open until the client gives up.
	FaultStall
	// FaultStreamError sends the provider's in-stream error event mid-stream (streams only;
	// non-streamed calls get a 500 with the provider's error body).
	FaultStreamError
)

// Options configures a fake. The zero value answers every valid request with [DefaultReply].
type Options struct {
	// APIKey is the key the fake accepts; empty means [DefaultAPIKey] (Ollama: no check).
	APIKey string
	// AcceptAnyKey accepts any non-empty key (load tests); a missing key is still refused.
	AcceptAnyKey bool
	// DisableRecording stops keeping requests for [Fake.Requests] (load tests).
	DisableRecording bool
	// Reply is the completion text.
	Reply string
	// PromptTokens and CompletionTokens are the usage reported; 0 counts words of the request's
	// messages and of the reply. CachedTokens is reported as cached prompt tokens.
	PromptTokens, CompletionTokens, CachedTokens int64
	// Chunks is the number of streamed text pieces; 0 means one per word.
	Chunks int
	// OmitUsage streams without usage (OpenAI ignores include_usage; Gemini omits
	// usageMetadata; Ollama omits the counts). Anthropic always reports usage.
	OmitUsage bool
	// Latency is waited before the response headers; ChunkDelay between streamed chunks.
	Latency, ChunkDelay time.Duration
	// Fault and FaultAfterChunks select a failure; stream faults happen after that many chunks.
	Fault            Fault
	FaultAfterChunks int
	// Status is the HTTP status of FaultStatus (e.g. 401, 429, 529).
	Status int
	// RetryAfter is sent as the Retry-After header with FaultStatus (seconds or an HTTP date);
	// the Google fake puts whole seconds into a RetryInfo detail instead, as Gemini does.
	RetryAfter string
	// RetryAfterMS is sent as the retry-after-ms header (OpenAI, Anthropic).
	RetryAfterMS string
	// Models lists the models that exist; others get the provider's 404. Empty accepts any.
	Models []string
	// EmbeddingDims is the embedding length; 0 means 8.
	EmbeddingDims int
	// FlagTerms make a moderation input flagged (as violence) when it contains one; nil means
	// {"kill"}.
	FlagTerms []string
}

// Request is one request a fake received.
type Request struct {
	Method   string
	Path     string
	RawQuery string
	Header   http.Header
	Body     []byte
}

// JSON decodes the request body into v.
func (r Request) JSON(v any) error { return json.Unmarshal(r.Body, v) }

// maxRecorded bounds the request log so that a long load test does not grow without limit.
const maxRecorded = 1000

// Fake is a fake upstream as an http.Handler.
type Fake struct {
	kind Kind

	mu   sync.Mutex
	opts Options
	reqs []Request

	stop     chan struct{}
	stopOnce sync.Once
}

// NewFake returns a handler speaking kind's wire format.
func NewFake(kind Kind, opts Options) *Fake {
	return &Fake{kind: kind, opts: opts, stop: make(chan struct{})}
}

// SetOptions replaces the options for the following requests.
func (f *Fake) SetOptions(o Options) {
	f.mu.Lock()
	f.opts = o
	f.mu.Unlock()
}

// Options returns the current options.
func (f *Fake) Options() Options {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.opts
}

// Requests returns the requests received so far (the last 1000), oldest first.
func (f *Fake) Requests() []Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Request(nil), f.reqs...)
}

// LastRequest returns the most recent request, or false if none arrived.
func (f *Fake) LastRequest() (Request, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reqs) == 0 {
		return Request{}, false
	}
	return f.reqs[len(f.reqs)-1], true
}

// Close releases handlers held by [FaultStall] so that the server can shut down.
func (f *Fake) Close() { f.stopOnce.Do(func() { close(f.stop) }) }

// ServeHTTP records the request and answers in the fake's wire format.
func (f *Fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 32<<20))
	f.mu.Lock()
	o := f.opts
	if !o.DisableRecording {
		f.reqs = append(f.reqs, Request{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Header: r.Header.Clone(), Body: body})
		if len(f.reqs) > maxRecorded {
			f.reqs = f.reqs[len(f.reqs)-maxRecorded:]
		}
	}
	f.mu.Unlock()
	if !f.sleep(r.Context(), o.Latency) {
		return
	}
	x := &exchange{f: f, w: w, r: r, o: o, body: body}
	switch f.kind {
	case OpenAI:
		serveOpenAI(x)
	case Anthropic:
		serveAnthropic(x)
	case Google:
		serveGoogle(x)
	case Ollama:
		serveOllama(x)
	default:
		http.Error(w, "unknown fake kind", http.StatusInternalServerError)
	}
}

func (f *Fake) sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
	case <-f.stop:
	}
	return false
}

// Server is a fake upstream listening on 127.0.0.1.
type Server struct {
	*Fake
	// URL is the server root, e.g. "http://127.0.0.1:41234".
	URL string
	// BaseURL is the URL as the provider's SDK writes it: URL+"/v1" for OpenAI, URL otherwise.
	BaseURL string
	srv     *httptest.Server
	conns   atomic.Int64
}

// Connections returns how many TCP connections clients have opened so far; tests use it to
// prove that keep-alive pooling reuses connections.
func (s *Server) Connections() int64 { return s.conns.Load() }

func newServer(t testing.TB, kind Kind, opts Options) *Server {
	t.Helper()
	f := NewFake(kind, opts)
	hs := httptest.NewUnstartedServer(f)
	s := &Server{Fake: f}
	hs.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	hs.Start()
	// Cleanups run last-in first-out: release stalled handlers, then close the server.
	t.Cleanup(hs.Close)
	t.Cleanup(f.Close)
	s.URL, s.BaseURL, s.srv = hs.URL, hs.URL, hs
	if kind == OpenAI {
		s.BaseURL = hs.URL + "/v1"
	}
	return s
}

// NewOpenAI starts a fake OpenAI API (chat completions, embeddings, moderations, models).
func NewOpenAI(t testing.TB, opts Options) *Server { return newServer(t, OpenAI, opts) }

// NewAnthropic starts a fake Anthropic Messages API.
func NewAnthropic(t testing.TB, opts Options) *Server { return newServer(t, Anthropic, opts) }

// NewGoogle starts a fake Gemini API (generateContent, streamGenerateContent?alt=sse,
// embedContent, batchEmbedContents).
func NewGoogle(t testing.TB, opts Options) *Server { return newServer(t, Google, opts) }

// NewOllama starts a fake Ollama (/api/chat, /api/embed).
func NewOllama(t testing.TB, opts Options) *Server { return newServer(t, Ollama, opts) }

// Provider returns a compiled provider config pointing at this fake, named "test/<kind>", with
// the expected key and a 5 s timeout; adjust fields as needed.
func (s *Server) Provider() config.Provider {
	key := s.Options().APIKey
	if key == "" && s.kind != Ollama {
		key = DefaultAPIKey
	}
	return config.Provider{Name: "test/" + string(s.kind), Type: string(s.kind), BaseURL: s.BaseURL, APIKey: config.Secret(key), Timeout: 5 * time.Second}
}

// exchange is one request being answered.
type exchange struct {
	f    *Fake
	w    http.ResponseWriter
	r    *http.Request
	o    Options
	body []byte
}

func (x *exchange) apiKey() string {
	if x.o.APIKey != "" {
		return x.o.APIKey
	}
	if x.f.kind == Ollama {
		return ""
	}
	return DefaultAPIKey
}

// keyOK checks a presented key; "" (absent) never passes when a key is expected.
func (x *exchange) keyOK(got string) bool {
	want := x.apiKey()
	if want == "" && !x.o.AcceptAnyKey {
		return true
	}
	if x.o.AcceptAnyKey {
		return got != ""
	}
	return got == want
}

func (x *exchange) reply() string {
	if x.o.Reply != "" {
		return x.o.Reply
	}
	return DefaultReply
}

func (x *exchange) writeJSON(status int, v any) {
	x.w.Header().Set("Content-Type", "application/json")
	x.w.WriteHeader(status)
	_ = json.NewEncoder(x.w).Encode(v)
}

func (x *exchange) modelKnown(model string) bool {
	if len(x.o.Models) == 0 {
		return true
	}
	for _, m := range x.o.Models {
		if m == model {
			return true
		}
	}
	return false
}

// usage returns the prompt and completion tokens to report.
func (x *exchange) usage(promptTexts []string) (int64, int64) {
	p, c := x.o.PromptTokens, x.o.CompletionTokens
	if p == 0 {
		for _, t := range promptTexts {
			p += int64(len(strings.Fields(t)))
		}
	}
	if c == 0 {
		c = int64(len(strings.Fields(x.reply())))
	}
	return p, c
}

// chunks splits the reply into Options.Chunks pieces, or one per word (keeping spaces).
func (x *exchange) chunks() []string {
	text := x.reply()
	n := x.o.Chunks
	if n <= 0 {
		var out []string
		start := 0
		for i := 1; i < len(text); i++ {
			if text[i] == ' ' && text[i-1] != ' ' {
				out = append(out, text[start:i])
				start = i
			}
		}
		return append(out, text[start:])
	}
	runes := []rune(text)
	out := make([]string, 0, n)
	for i := 0; i < n; i++ {
		out = append(out, string(runes[i*len(runes)/n:(i+1)*len(runes)/n]))
	}
	return out
}

// preFault handles faults that happen before any reply byte. It returns true when it answered.
// statusBody renders the provider's error body for a status.
func (x *exchange) preFault(stream bool, statusBody func(status int) any, malformedBody string) bool {
	switch x.o.Fault {
	case FaultStatus:
		x.writeError(x.o.Status, statusBody(x.o.Status))
		return true
	case FaultReset:
		if !stream || x.o.FaultAfterChunks <= 0 {
			x.reset()
			return true
		}
	case FaultStall:
		if !stream || x.o.FaultAfterChunks <= 0 {
			x.stall()
			return true
		}
	case FaultMalformed:
		if !stream {
			x.w.Header().Set("Content-Type", "application/json")
			x.w.WriteHeader(http.StatusOK)
			_, _ = io.WriteString(x.w, malformedBody)
			return true
		}
	case FaultStreamError:
		if !stream {
			x.writeError(http.StatusInternalServerError, statusBody(http.StatusInternalServerError))
			return true
		}
	}
	return false
}

func (x *exchange) writeError(status int, body any) {
	if status == 0 {
		status = http.StatusInternalServerError
	}
	if x.o.RetryAfter != "" && x.f.kind != Google {
		x.w.Header().Set("Retry-After", x.o.RetryAfter)
	}
	if x.o.RetryAfterMS != "" {
		x.w.Header().Set("retry-after-ms", x.o.RetryAfterMS)
	}
	x.writeJSON(status, body)
}

// reset closes the connection with SO_LINGER 0, which makes the kernel send RST.
func (x *exchange) reset() {
	if fl, ok := x.w.(http.Flusher); ok {
		fl.Flush()
	}
	hj, ok := x.w.(http.Hijacker)
	if !ok { // HTTP/2: the closest thing is an aborted handler
		panic(http.ErrAbortHandler)
	}
	conn, buf, err := hj.Hijack()
	if err != nil {
		return
	}
	_ = buf.Flush()
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// stall holds the connection open, sending nothing, until the client leaves or the fake closes.
// Nothing is flushed here: a stall before the reply sends no headers either.
func (x *exchange) stall() {
	select {
	case <-x.r.Context().Done():
	case <-x.f.stop:
	}
}

// streamSpec is a provider's stream framing.
type streamSpec struct {
	contentType string
	head        [][]byte
	chunk       func(i int, text string) []byte
	tail        [][]byte
	errFrame    []byte
	badFrame    []byte
}

// runStream writes a stream, injecting the configured mid-stream fault.
func (x *exchange) runStream(s streamSpec) {
	x.w.Header().Set("Content-Type", s.contentType)
	x.w.Header().Set("Cache-Control", "no-cache")
	x.w.WriteHeader(http.StatusOK)
	fl, _ := x.w.(http.Flusher)
	flush := func() {
		if fl != nil {
			fl.Flush()
		}
	}
	for _, h := range s.head {
		_, _ = x.w.Write(h)
	}
	flush()
	chunks := x.chunks()
	for i := 0; i <= len(chunks); i++ {
		if i == x.o.FaultAfterChunks || (i == len(chunks) && x.o.FaultAfterChunks > len(chunks)) {
			switch x.o.Fault {
			case FaultReset:
				x.reset()
				return
			case FaultStall:
				x.stall()
				return
			case FaultStreamError:
				_, _ = x.w.Write(s.errFrame)
				flush()
				return
			case FaultMalformed:
				_, _ = x.w.Write(s.badFrame)
				flush()
				return
			}
		}
		if i == len(chunks) {
			break
		}
		if i > 0 && !x.f.sleep(x.r.Context(), x.o.ChunkDelay) {
			return
		}
		_, _ = x.w.Write(s.chunk(i, chunks[i]))
		flush()
	}
	for _, t := range s.tail {
		_, _ = x.w.Write(t)
	}
	flush()
}

// sse renders one SSE frame; event may be empty.
func sse(event string, v any) []byte {
	var b bytes.Buffer
	if event != "" {
		fmt.Fprintf(&b, "event: %s\n", event)
	}
	data, _ := json.Marshal(v)
	fmt.Fprintf(&b, "data: %s\n\n", data)
	return b.Bytes()
}

// embedding is the fake's deterministic vector for text.
func embedding(text string, dims int) []float32 {
	if dims <= 0 {
		dims = 8
	}
	v := make([]float32, dims)
	var h uint32 = 2166136261
	for i := range v {
		for _, c := range []byte(text) {
			h ^= uint32(c)
			h *= 16777619
		}
		h ^= uint32(i)
		v[i] = float32(h%2000)/1000 - 1
	}
	return v
}

// wordCount is used for embedding usage.
func wordCount(texts []string) int64 {
	var n int64
	for _, t := range texts {
		n += int64(len(strings.Fields(t)))
	}
	return n
}

// validUTF8 reports whether every text is valid UTF-8 (the real APIs refuse invalid text).
func validUTF8(texts ...string) bool {
	for _, t := range texts {
		if !utf8.ValidString(t) {
			return false
		}
	}
	return true
}
