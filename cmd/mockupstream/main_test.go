package main

import (
	"bufio"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/providers"
)

func TestRunServesOpenAIChatAndStreamsUntilCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, []string{"--addr", "127.0.0.1:0", "--reply", "one two three", "--completion-tokens", "7"}, pw)
		_ = pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	require.NoError(t, err)
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	url := strings.TrimSpace(strings.TrimPrefix(line, "listening on "))

	p, err := providers.New(config.Provider{Name: "load/mock", Type: config.ProviderOpenAI, BaseURL: url + "/v1", APIKey: "any-key", Timeout: 5 * time.Second}, nil)
	require.NoError(t, err)
	req := &providers.ChatRequest{Model: "gpt-4o-mini", Messages: []providers.Message{{Role: "user", Content: "hi there"}}}
	resp, err := p.Chat(t.Context(), req)
	require.NoError(t, err)
	require.Equal(t, "one two three", resp.Content)
	require.Equal(t, providers.Usage{PromptTokens: 2, CompletionTokens: 7}, resp.Usage)

	s, err := p.ChatStream(t.Context(), req)
	require.NoError(t, err)
	var sb strings.Builder
	for {
		d, err := s.Recv()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		sb.WriteString(d)
	}
	require.Equal(t, "one two three", sb.String())

	cancel()
	require.NoError(t, <-done)
}

func TestRunRefusesAnUnknownKind(t *testing.T) {
	err := Run(t.Context(), []string{"--kind", "bogus"}, io.Discard)
	require.ErrorContains(t, err, "unknown --kind")
}
