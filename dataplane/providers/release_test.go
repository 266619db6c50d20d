package providers_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"weak"

	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/providers"
	"github.com/nself-org/ai-orchestration/dataplane/providers/providertest"
)

// bodySpy sits between the client and the production transport and takes a weak pointer to
// the bytes of every request body it passes on, so that a test can tell when nothing holds them
// any more. It leaves the body as it found it: the adapter's io.NopCloser around a
// *bytes.Reader, read from the start.
type bodySpy struct {
	next   http.RoundTripper
	mu     sync.Mutex
	bodies []weak.Pointer[byte]
}

func (s *bodySpy) RoundTrip(req *http.Request) (*http.Response, error) {
	// io.NopCloser's value holds the reader as its one field (net/http unwraps it the same way).
	br := reflect.ValueOf(req.Body).Field(0).Interface().(*bytes.Reader)
	var first *byte
	if _, err := br.WriteTo(writerFunc(func(b []byte) (int, error) { first = &b[0]; return len(b), nil })); err != nil {
		return nil, err
	}
	if _, err := br.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.bodies = append(s.bodies, weak.Make(first))
	s.mu.Unlock()
	return s.next.RoundTrip(req)
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// held returns how many of the bodies seen so far are still reachable, after a GC.
func (s *bodySpy) held() (held, seen int) {
	runtime.GC()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.bodies {
		if p.Value() != nil {
			held++
		}
	}
	return held, len(s.bodies)
}

// requireLetGo polls (a GC each time) until no body the spy saw is reachable. Two GCs are
// needed at least: a body recycled into a sync.Pool leaves it on the second.
func (s *bodySpy) requireLetGo(t *testing.T, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		held, seen := s.held()
		require.NotZero(t, seen, "no request went through the spy")
		if held == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d of %d request bodies are still reachable", what, held, seen)
		}
	}
}

// spyClient is the production client with the spy in front of its transport.
func spyClient(t *testing.T, tlsConf *tls.Config) (*http.Client, *bodySpy) {
	hc := providers.NewHTTPClient(0)
	if tlsConf != nil {
		providers.HTTPTransport(hc).TLSClientConfig = tlsConf
	}
	next := hc.Transport
	t.Cleanup(next.(interface{ CloseIdleConnections() }).CloseIdleConnections)
	spy := &bodySpy{next: next}
	hc.Transport = spy
	return hc, spy
}

// longPrompt is a chat history of about n bytes, as real requests carry.
// openLongStream opens a stream of a 64 KiB prompt on p, closed when t ends, and reads its first
// delta ("one", as the fakes send it).
func openLongStream(t *testing.T, p providers.Provider) *providers.ChatRequest {
	t.Helper()
	req := longPrompt(64 << 10)
	st, err := p.ChatStream(t.Context(), req)
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	d, err := st.Recv()
	require.NoError(t, err)
	require.Equal(t, "one", strings.TrimSpace(d))
	return req
}

func longPrompt(n int) *providers.ChatRequest {
	turn := strings.Repeat("The quarterly report shows revenue growth across all regions. ", 64) // ~4 KiB
	req := &providers.ChatRequest{Model: "test-model", MaxTokens: 64,
		Messages: []providers.Message{{Role: "system", Content: strings.Repeat("Answer as the finance team would. ", n/2/34)}}}
	for i := 0; len(req.Messages) < 2 || i*len(turn) < n/2; i++ {
		role := "user"
		if i%2 == 1 {
			role = "assistant"
		}
		req.Messages = append(req.Messages, providers.Message{Role: role, Content: turn})
	}
	if req.Messages[len(req.Messages)-1].Role != "user" {
		req.Messages = append(req.Messages, providers.Message{Role: "user", Content: "Summarize."})
	}
	return req
}

// A stream that stays open (the upstream has sent its first chunk and then goes quiet, as a
// model thinking does) must not keep its prompt: once the request is written, the encoded body
// is let go, for every provider, over HTTP/1.1 (a connection per stream) and over HTTP/2 with
// TLS (as hosted providers serve). The upstream got the whole prompt all the same.
func TestAHeldStreamLetsGoOfItsRequestBody(t *testing.T) {
	for _, u := range upstreams {
		for _, h2 := range []bool{false, true} {
			name := string(u.kind) + "/http1"
			if h2 {
				name = string(u.kind) + "/http2"
			}
			t.Run(name, func(t *testing.T) {
				opts := providertest.Options{Fault: providertest.FaultStall, FaultAfterChunks: 1, Reply: "one two three"}
				var (
					fake  *providertest.Fake
					cfg   config.Provider
					hc    *http.Client
					spy   *bodySpy
					proto atomic.Int32
				)
				if h2 {
					fake = providertest.NewFake(u.kind, opts)
					srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
						proto.Store(int32(r.ProtoMajor))
						fake.ServeHTTP(w, r)
					}))
					srv.EnableHTTP2 = true
					srv.StartTLS()
					t.Cleanup(srv.Close)
					t.Cleanup(fake.Close)
					hc, spy = spyClient(t, &tls.Config{RootCAs: srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs})
					cfg = config.Provider{Name: "test/" + string(u.kind), Type: string(u.kind), BaseURL: srv.URL, Timeout: 5 * time.Second}
					if u.kind != providertest.Ollama {
						cfg.APIKey = providertest.DefaultAPIKey
					}
					if u.kind == providertest.OpenAI {
						cfg.BaseURL += "/v1"
					}
				} else {
					srv := u.start(t, opts)
					fake, cfg = srv.Fake, srv.Provider()
					hc, spy = spyClient(t, nil)
				}
				p, err := providers.New(cfg, hc)
				require.NoError(t, err)
				req := openLongStream(t, p)

				spy.requireLetGo(t, "while the stream is open")

				got, ok := fake.LastRequest()
				require.True(t, ok)
				require.Contains(t, string(got.Body), req.Messages[1].Content, "the upstream got the prompt")
				if h2 {
					require.Equal(t, int32(2), proto.Load(), "the request went over HTTP/2")
				}
			})
		}
	}
}

// An upstream may answer before it has read the whole request (a stream that starts at once):
// Do then returns while the transport is still writing the body, and the body must stay until
// that write is over. Here the upstream reads nothing until the first chunk is out, and reads
// the rest slowly; the body, far larger than the socket buffers, is still being written then.
// It must arrive whole and unchanged, and be let go only after (run with -race: a release that
// raced with the transport's reads would show there).
func TestABodyTheUpstreamReadsAfterAnsweringArrivesWholeAndIsLetGoAfter(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	readNow := make(chan struct{})
	done := make(chan struct{})
	type received struct {
		body []byte
		cl   int64
	}
	got := make(chan received, 1)
	var wg sync.WaitGroup
	wg.Go(func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer func() { _ = conn.Close() }()
		br := bufio.NewReaderSize(conn, 4<<10)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		_, _ = io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n"+
			`data: {"id":"c1","model":"m","choices":[{"delta":{"content":"one"}}]}`+"\n\n")
		select {
		case <-readNow:
		case <-done:
			return
		}
		body, _ := io.ReadAll(req.Body)
		got <- received{body: body, cl: req.ContentLength}
		<-done // hold the stream open
	})
	t.Cleanup(func() { close(done); _ = ln.Close(); wg.Wait() })

	hc, spy := spyClient(t, nil)
	p, err := providers.New(config.Provider{Name: "acme/openai", Type: config.ProviderOpenAI, BaseURL: "http://" + ln.Addr().String() + "/v1", APIKey: "sk-test"}, hc)
	require.NoError(t, err)
	req := longPrompt(8 << 20)
	st, err := p.ChatStream(t.Context(), req)
	require.NoError(t, err)
	defer func() { _ = st.Close() }()
	d, err := st.Recv()
	require.NoError(t, err)
	require.Equal(t, "one", d)

	// Do has returned; the upstream has read at most a few socket buffers of the body.
	held, seen := spy.held()
	require.Equal(t, 1, seen)
	require.Equal(t, 1, held, "the body was let go while the transport was still writing it")

	close(readNow)
	r := <-got
	require.Equal(t, r.cl, int64(len(r.body)))
	var sent struct {
		Messages []providers.Message `json:"messages"`
		Stream   bool                `json:"stream"`
	}
	require.NoError(t, json.Unmarshal(r.body, &sent))
	require.Equal(t, req.Messages, sent.Messages, "the upstream got the whole prompt, unchanged")
	require.True(t, sent.Stream)

	spy.requireLetGo(t, "once the upstream has read it")
}

// A 307 makes the client send the body again (from GetBody) to where it points: the stream
// opened there gets the same body, and both copies are let go while it stays open.
func TestARedirectedStreamSendsTheBodyAgainAndLetsGoOfIt(t *testing.T) {
	fake := providertest.NewFake(providertest.OpenAI, providertest.Options{Fault: providertest.FaultStall, FaultAfterChunks: 1, Reply: "one two"})
	var mu sync.Mutex
	var bodies []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.RawQuery == "" {
			b, _ := io.ReadAll(r.Body)
			mu.Lock()
			bodies = append(bodies, string(b))
			mu.Unlock()
			http.Redirect(w, r, r.URL.Path+"?moved=1", http.StatusTemporaryRedirect)
			return
		}
		fake.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(fake.Close)
	hc, spy := spyClient(t, nil)
	p, err := providers.New(config.Provider{Name: "acme/openai", Type: config.ProviderOpenAI, BaseURL: srv.URL + "/v1", APIKey: providertest.DefaultAPIKey}, hc)
	require.NoError(t, err)
	openLongStream(t, p)

	last, ok := fake.LastRequest()
	require.True(t, ok)
	require.Equal(t, "moved=1", last.RawQuery)
	mu.Lock()
	require.Len(t, bodies, 1)
	require.Equal(t, bodies[0], string(last.Body), "the redirect sent the same body again")
	mu.Unlock()
	_, seen := spy.held()
	require.Equal(t, 2, seen, "the spy saw the first request and the redirected one")

	spy.requireLetGo(t, "after the redirect, while the stream is open")
}

// countingConn counts the writes to a connection: each is one system call.
type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c countingConn) Write(b []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(b)
}

// A small request leaves in one write, headers and body together: the transport does that only
// for a body it knows is in memory (an io.NopCloser around a *bytes.Reader), and anything else
// costs a write (and a packet) more per call.
func TestASmallRequestLeavesInOneWrite(t *testing.T) {
	for _, u := range upstreams {
		t.Run(string(u.kind), func(t *testing.T) {
			srv := u.start(t, providertest.Options{})
			hc := providers.NewHTTPClient(0)
			tr := providers.HTTPTransport(hc)
			var writes atomic.Int64
			dial := tr.DialContext
			tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
				c, err := dial(ctx, network, addr)
				if err != nil {
					return nil, err
				}
				return countingConn{Conn: c, writes: &writes}, nil
			}
			t.Cleanup(hc.CloseIdleConnections)
			p, err := providers.New(srv.Provider(), hc)
			require.NoError(t, err)
			for i := 1; i <= 3; i++ {
				_, err := p.Chat(t.Context(), chatRequest())
				require.NoError(t, err)
				require.Equal(t, int64(i), writes.Load(), "writes after %d calls", i)
			}
			st, err := p.ChatStream(t.Context(), chatRequest())
			require.NoError(t, err)
			_, _, err = drain(t, st)
			require.NoError(t, err)
			require.Equal(t, int64(4), writes.Load(), "writes after the stream")
		})
	}
}
