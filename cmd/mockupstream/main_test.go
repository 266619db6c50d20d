package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"path/filepath"
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

// TestRunServesHTTP2OverTLSWithTheCertificateItWrites checks --tls-cert-out: the mock serves
// HTTPS, a client that trusts the written file (and nothing else) verifies it, and the
// connection is HTTP/2 as with a hosted provider.
func TestRunServesHTTP2OverTLSWithTheCertificateItWrites(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	certPath := filepath.Join(t.TempDir(), "mock.pem")
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, []string{"--addr", "127.0.0.1:0", "--reply", "one two three", "--tls-cert-out", certPath}, pw)
		_ = pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	require.NoError(t, err)
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	url, ok := strings.CutPrefix(strings.TrimSpace(line), "listening on https://")
	require.True(t, ok, "the mock must announce an https URL, got %q", line)

	pemBytes, err := os.ReadFile(certPath)
	require.NoError(t, err)
	roots := x509.NewCertPool()
	require.True(t, roots.AppendCertsFromPEM(pemBytes), "the written file must hold a PEM certificate")
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	body := `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}`
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, "https://"+url+"/v1/chat/completions", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer any-key")
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Transport: tr}).Do(req)
	require.NoError(t, err)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", b)
	require.Equal(t, 2, resp.ProtoMajor, "the mock must speak HTTP/2 over TLS")
	require.Contains(t, string(b), "data: [DONE]")

	// A client with only the system roots refuses the certificate.
	_, err = (&http.Client{Transport: &http.Transport{}}).Get("https://" + url + "/v1/models")
	var unknown x509.UnknownAuthorityError
	require.ErrorAs(t, err, &unknown)

	cancel()
	require.NoError(t, <-done)
}
