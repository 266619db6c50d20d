package providers

import (
	"context"
	"hash/fnv"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nself-org/ai-orchestration/dataplane/config"
)

// MockEmbeddingDims is the length of the mock provider's embedding vectors.
const MockEmbeddingDims = 16

// mock is the deterministic offline provider used by `make dev`, demos and load tests. The same
// request always yields the same reply and usage, so budgets and costs can be asserted exactly.
type mock struct {
	name string
	cfg  config.Mock
	seq  atomic.Uint64
}

// NewMock returns the offline provider configured by cfg. Prompt tokens are counted with
// [TokenCounter]; completion tokens are cfg.CompletionTokens or the reply's word count.
func NewMock(name string, cfg config.Mock) Provider {
	return &mock{name: name, cfg: cfg}
}

func (m *mock) reply(req *ChatRequest) string {
	if m.cfg.Reply != "" {
		return m.cfg.Reply
	}
	for i := len(req.Messages) - 1; i >= 0; i-- {
		if req.Messages[i].Role == "user" {
			return req.Messages[i].Content
		}
	}
	return ""
}

func (m *mock) usage(req *ChatRequest, reply string) Usage {
	completion := m.cfg.CompletionTokens
	if completion <= 0 {
		completion = int64(len(strings.Fields(reply)))
	}
	return Usage{PromptTokens: TokenCounter(req.Model, req.Messages), CompletionTokens: completion}
}

// wait sleeps d or until ctx ends, whichever is first.
func wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return &Error{Kind: KindTimeout, Provider: "mock", Message: "request ended while waiting", Err: ctx.Err()}
	}
}

func (m *mock) id() string { return "mock-" + strconv.FormatUint(m.seq.Add(1), 10) }

func (m *mock) Chat(ctx context.Context, req *ChatRequest) (*ChatResponse, error) {
	if err := wait(ctx, m.cfg.Latency); err != nil {
		return nil, m.named(err)
	}
	reply := m.reply(req)
	return &ChatResponse{ID: m.id(), Model: req.Model, Content: reply, FinishReason: "stop", Usage: m.usage(req, reply)}, nil
}

func (m *mock) named(err error) error {
	if pe, ok := AsError(err); ok {
		pe.Provider = m.name
	}
	return err
}

// ChatStream splits the reply into word-sized chunks (each keeps its leading space) and spreads
// the configured latency evenly across them: the first chunk waits one share.
func (m *mock) ChatStream(ctx context.Context, req *ChatRequest) (Stream, error) {
	reply := m.reply(req)
	chunks := splitWords(reply)
	s := &mockStream{ctx: ctx, chunks: chunks, usage: m.usage(req, reply), name: m.name}
	if n := len(chunks); n > 0 {
		s.delay = m.cfg.Latency / time.Duration(n)
	} else if err := wait(ctx, m.cfg.Latency); err != nil {
		return nil, m.named(err)
	}
	return s, nil
}

func splitWords(s string) []string {
	var out []string
	start := 0
	for i := 1; i < len(s); i++ {
		if s[i] == ' ' && s[i-1] != ' ' {
			out = append(out, s[start:i])
			start = i
		}
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}

type mockStream struct {
	ctx    context.Context
	name   string
	chunks []string
	delay  time.Duration
	usage  Usage

	mu     sync.Mutex
	i      int
	closed atomic.Bool // not under mu: Close must not wait for a Recv that is sleeping
}

func (s *mockStream) Recv() (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return "", &Error{Kind: KindConnection, Provider: s.name, Message: "stream closed"}
	}
	if s.i >= len(s.chunks) {
		return "", io.EOF
	}
	if err := wait(s.ctx, s.delay); err != nil {
		if pe, ok := AsError(err); ok {
			pe.Provider = s.name
		}
		return "", err
	}
	c := s.chunks[s.i]
	s.i++
	return c, nil
}

// Usage is always reported: the mock knows its usage up front, as a provider that sends it
// at the start would. A stream cut early reports the full usage, as real providers bill it.
func (s *mockStream) Usage() (Usage, bool) { return s.usage, true }

func (s *mockStream) Close() error {
	s.closed.Store(true)
	return nil
}

// Embed returns unit vectors derived from an FNV hash of each input: equal inputs get equal
// vectors, so cache and similarity code paths can be tested offline.
func (m *mock) Embed(ctx context.Context, req *EmbedRequest) (*EmbedResponse, error) {
	if err := wait(ctx, m.cfg.Latency); err != nil {
		return nil, m.named(err)
	}
	out := &EmbedResponse{Model: req.Model, Embeddings: make([][]float32, len(req.Input))}
	msgs := make([]Message, len(req.Input))
	for i, in := range req.Input {
		out.Embeddings[i] = MockVector(in, MockEmbeddingDims)
		msgs[i] = Message{Role: "user", Content: in}
	}
	out.Usage = Usage{PromptTokens: TokenCounter(req.Model, msgs)}
	return out, nil
}

// MockVector is the deterministic unit vector of text used by the mock provider and the fakes.
func MockVector(text string, dims int) []float32 {
	v := make([]float32, dims)
	h := fnv.New64a()
	var norm float64
	for i := range v {
		h.Reset()
		_, _ = h.Write([]byte{byte(i), byte(i >> 8)})
		_, _ = h.Write([]byte(text))
		x := float64(h.Sum64()%2001)/1000 - 1 // in [-1, 1]
		v[i] = float32(x)
		norm += x * x
	}
	if norm == 0 {
		v[0], norm = 1, 1
	}
	n := float32(math.Sqrt(norm))
	for i := range v {
		v[i] /= n
	}
	return v
}
