// Command mockupstream serves a fake AI provider in that provider's exact wire format, for load
// tests and demos that must not call a real API. It is the same fake the provider tests use
// (dataplane/providers/providertest), so what the gateway is measured against is what it is
// tested against.
//
//	mockupstream --addr 127.0.0.1:8090 --kind openai --latency 20ms --chunk-delay 5ms
//
// With --kind openai the gateway's AIProvider uses baseURL http://ADDR/v1 (type openai or
// openai-compatible); any non-empty key is accepted unless --api-key is set.
//
// With --tls-cert-out FILE it serves HTTPS with HTTP/2, as hosted providers do, on a
// self-signed certificate for 127.0.0.1 made at start and written to FILE (PEM); clients trust
// it through SSL_CERT_FILE=FILE, which Go reads on Linux instead of the system roots.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nself-org/ai-orchestration/dataplane/providers/providertest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := Run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "mockupstream:", err)
		os.Exit(1)
	}
}

// Run serves until ctx ends. It prints "listening on http://ADDR" once the port is open, so
// that scripts can start it with --addr 127.0.0.1:0 and read the chosen port.
func Run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("mockupstream", flag.ContinueOnError)
	fs.SetOutput(out)
	addr := fs.String("addr", "127.0.0.1:8090", "listen address")
	kind := fs.String("kind", "openai", "wire format: openai, anthropic, google or ollama")
	apiKey := fs.String("api-key", "", "key to require; empty accepts any non-empty key (ollama: none needed)")
	reply := fs.String("reply", providertest.DefaultReply, "completion text")
	latency := fs.Duration("latency", 0, "delay before the response headers")
	chunkDelay := fs.Duration("chunk-delay", 0, "delay between streamed chunks")
	chunks := fs.Int("chunks", 0, "number of streamed chunks (0 = one per word)")
	promptTokens := fs.Int64("prompt-tokens", 0, "prompt tokens to report (0 = words of the request)")
	completionTokens := fs.Int64("completion-tokens", 0, "completion tokens to report (0 = words of the reply)")
	certOut := fs.String("tls-cert-out", "", "serve HTTPS (HTTP/2) on a self-signed certificate for 127.0.0.1 made at start, written (PEM) to this file for clients to trust")
	if err := fs.Parse(args); err != nil {
		return err
	}
	k := providertest.Kind(*kind)
	switch k {
	case providertest.OpenAI, providertest.Anthropic, providertest.Google, providertest.Ollama:
	default:
		return fmt.Errorf("unknown --kind %q (want openai, anthropic, google or ollama)", *kind)
	}
	opts := providertest.Options{
		APIKey: *apiKey, AcceptAnyKey: *apiKey == "" && k != providertest.Ollama, DisableRecording: true,
		Reply: *reply, Latency: *latency, ChunkDelay: *chunkDelay, Chunks: *chunks,
		PromptTokens: *promptTokens, CompletionTokens: *completionTokens,
	}
	fake := providertest.NewFake(k, opts)
	defer fake.Close()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("failed to listen on %s: %w", *addr, err)
	}
	srv := &http.Server{Handler: fake, ReadHeaderTimeout: 10 * time.Second}
	scheme := "http"
	if *certOut != "" {
		cert, err := selfSignedCert(*certOut)
		if err != nil {
			_ = ln.Close()
			return err
		}
		// ServeTLS offers h2 before http/1.1, so a client that speaks HTTP/2 (Go's transport
		// does over TLS) gets it, as from a hosted provider's front end.
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
		scheme = "https"
	}
	fmt.Fprintf(out, "listening on %s://%s\n", scheme, ln.Addr())
	errc := make(chan error, 1)
	go func() {
		if srv.TLSConfig != nil {
			errc <- srv.ServeTLS(ln, "", "")
			return
		}
		errc <- srv.Serve(ln)
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("failed to serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	fake.Close()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("failed to shut down: %w", err)
	}
	return nil
}
