// Package providers turns the gateway's normalized requests into each AI provider's own wire
// format and back. One file per provider; all of them sit behind [Provider].
package providers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Message is one chat message. Role is "system", "user" or "assistant".
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// ResponseFormat asks for JSON output. Type is "text", "json_object" or "json_schema".
type ResponseFormat struct {
	Type   string          `json:"type"`
	Name   string          `json:"name,omitempty"`
	Schema json.RawMessage `json:"schema,omitempty"`
}

// ChatRequest is a normalized chat completion request. Model is the upstream model name.
type ChatRequest struct {
	Model    string
	Messages []Message
	// MaxTokens caps the completion; 0 lets the adapter pick (Anthropic requires one, so its
	// adapter sends the model's cap).
	MaxTokens      int64
	Temperature    *float64
	TopP           *float64
	Stop           []string
	ResponseFormat *ResponseFormat
	// User is an opaque end-user id forwarded where the provider accepts one.
	User string
}

// Usage is the normalized token usage of one call.
type Usage struct {
	PromptTokens     int64 `json:"promptTokens"`
	CompletionTokens int64 `json:"completionTokens"`
	// CachedPromptTokens is the part of PromptTokens the provider served from its prompt cache.
	CachedPromptTokens int64 `json:"cachedPromptTokens,omitempty"`
}

// Total is prompt plus completion tokens.
func (u Usage) Total() int64 { return u.PromptTokens + u.CompletionTokens }

// ChatResponse is a normalized, complete chat reply.
type ChatResponse struct {
	ID           string
	Model        string
	Content      string
	FinishReason string
	Usage        Usage
}

// Stream is an open streamed reply. Recv returns the next text delta, io.EOF after the last one.
// Usage is valid after io.EOF; UsageReported says whether the provider sent it (if not, the
// caller counts tokens itself). Close releases the connection and may be called at any time.
type Stream interface {
	Recv() (delta string, err error)
	Usage() (u Usage, reported bool)
	Close() error
}

// EmbedRequest asks for one embedding per input.
type EmbedRequest struct {
	Model string
	Input []string
	User  string
}

// EmbedResponse holds embeddings in input order.
type EmbedResponse struct {
	Model      string
	Embeddings [][]float32
	Usage      Usage
}

// Provider is one configured upstream.
type Provider interface {
	Chat(ctx context.Context, req *ChatRequest) (*ChatResponse, error)
	ChatStream(ctx context.Context, req *ChatRequest) (Stream, error)
	Embed(ctx context.Context, req *EmbedRequest) (*EmbedResponse, error)
}

// ModerationResult is a provider moderation verdict; scores are 0..1.
type ModerationResult struct {
	Flagged    bool
	Categories map[string]bool
	Scores     map[string]float64
}

// Moderator is implemented by providers that offer a moderation model (OpenAI).
type Moderator interface {
	Moderate(ctx context.Context, model string, input []string) ([]ModerationResult, error)
}

// ErrorKind classifies upstream failures so that routing and HTTP replies treat every provider alike.
type ErrorKind int

const (
	// KindBadRequest: the upstream refused the request as invalid (HTTP 400/413/422).
	KindBadRequest ErrorKind = iota + 1
	// KindAuth: the upstream refused our key (401/403) — an operator problem.
	KindAuth
	// KindNotFound: the upstream does not know the model or path (404).
	KindNotFound
	// KindRateLimited: the upstream said 429; RetryAfter is set when it said when.
	KindRateLimited
	// KindServer: 5xx or an overloaded upstream (Anthropic 529).
	KindServer
	// KindTimeout: no answer (or no stream progress) in time.
	KindTimeout
	// KindConnection: refused, reset or closed connection.
	KindConnection
	// KindMalformed: the upstream answered with something we cannot parse.
	KindMalformed
	// KindUnsupported: the provider cannot do this (e.g. embeddings on Anthropic).
	KindUnsupported
)

// Error is an upstream failure. Message never contains key material or prompt text.
type Error struct {
	Kind     ErrorKind
	Provider string
	// Status is the upstream HTTP status, 0 when there was none.
	Status     int
	Message    string
	RetryAfter time.Duration
	Err        error
}

func (e *Error) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("provider %s: HTTP %d: %s", e.Provider, e.Status, e.Message)
	}
	return fmt.Sprintf("provider %s: %s", e.Provider, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// Retryable reports whether another attempt (on this or another target) may succeed.
func (e *Error) Retryable() bool {
	switch e.Kind {
	case KindRateLimited, KindServer, KindTimeout, KindConnection:
		return true
	}
	return false
}

// AsError returns err as an *Error if it is one.
func AsError(err error) (*Error, bool) {
	var pe *Error
	ok := errors.As(err, &pe)
	return pe, ok
}
