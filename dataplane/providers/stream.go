package providers

import (
	"errors"
	"io"
	"sync"
	"unicode"
)

// httpStream is the [Stream] shared by the HTTP adapters. Each adapter supplies next, which
// parses one upstream frame and returns its text (possibly empty), io.EOF once the provider's
// terminal frame was seen, or an error. A stream that ends without that frame was cut.
type httpStream struct {
	b    *base
	c    *call
	next func() (string, error)

	// beforeRead, when set, runs before each read from the upstream body (see [BeforeReader]).
	beforeRead func()

	mu       sync.Mutex
	usage    Usage
	reported bool
	err      error
	closed   bool
}

func (s *httpStream) Recv() (string, error) {
	if s.err != nil {
		return "", s.err
	}
	for {
		delta, err := s.next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				s.err = io.EOF
				// Read the (normally empty) rest of the body so that the connection goes
				// back to the keep-alive pool instead of being torn down.
				_, _ = io.CopyN(io.Discard, s.c.body, 64<<10)
			} else {
				s.err = s.b.streamError(s.c, err)
			}
			s.c.close()
			return "", s.err
		}
		if delta != "" {
			return delta, nil
		}
	}
}

// BeforeReader is a [Stream] that can call a function before each read from the upstream, that
// is before Recv may wait for the network. A relay then flushes its client only there: the
// deltas already received go out together, in one write, as a reverse proxy copies what one read
// returned, and none is held back while the upstream is quiet.
type BeforeReader interface {
	// BeforeRead sets f, called on Recv's goroutine; nil clears it.
	BeforeRead(f func())
}

// BeforeRead implements [BeforeReader].
func (s *httpStream) BeforeRead(f func()) { s.beforeRead = f }

// body is the upstream body the adapter's frame reader reads, through the [BeforeReader] hook.
func (s *httpStream) body() io.Reader { return hookedBody{s} }

type hookedBody struct{ s *httpStream }

func (h hookedBody) Read(p []byte) (int, error) {
	if f := h.s.beforeRead; f != nil {
		f()
	}
	return h.s.c.body.Read(p)
}

func (s *httpStream) setUsage(u Usage) {
	s.mu.Lock()
	s.usage, s.reported = u, true
	s.mu.Unlock()
}

func (s *httpStream) Usage() (Usage, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.usage, s.reported
}

func (s *httpStream) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		s.c.close()
	}
	return nil
}

// errEarlyEOF marks a stream that ended before the provider's terminal frame.
var errEarlyEOF = io.ErrUnexpectedEOF

// TokenCounter counts prompt tokens where a provider reports none (the mock provider, and
// Gemini embeddings). The server replaces it at start-up with the real tokenizer; the default
// is a deterministic approximation (about four characters per token, at least one per word).
// Set it before serving: it is read without synchronisation.
var TokenCounter = ApproxTokens

// ApproxTokens is the default [TokenCounter]: per message, max(words, ceil(chars/4)) plus 4
// tokens of framing, which is close to what chat tokenizers report for English.
func ApproxTokens(_ string, msgs []Message) int64 {
	var n int64
	for _, m := range msgs {
		n += 4 + approxText(m.Content)
	}
	return n
}

// approxText counts without allocating: it runs on every mock request.
func approxText(s string) int64 {
	var words, chars int64
	inWord := false
	for _, r := range s {
		chars++
		if unicode.IsSpace(r) {
			inWord = false
		} else if !inWord {
			inWord = true
			words++
		}
	}
	if c := (chars + 3) / 4; c > words {
		return c
	}
	return words
}
