package providers_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/providers"
)

// connCounter serves HTTP and counts the connections it accepted.
type connCounter struct {
	srv    *httptest.Server
	opened atomic.Int64
	closed chan struct{} // one value per connection the server saw close
}

func newConnCounter(t *testing.T, h http.HandlerFunc) *connCounter {
	c := &connCounter{closed: make(chan struct{}, 64)}
	c.srv = httptest.NewUnstartedServer(h)
	c.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			c.opened.Add(1)
		case http.StateClosed, http.StateHijacked:
			c.closed <- struct{}{}
		}
	}
	c.srv.Start()
	t.Cleanup(c.srv.Close)
	return c
}

// rawUpstreamConns accepts connections on a loopback port, counts them and serves each with
// serve on a goroutine of its own; the test's cleanup stops it and waits for them.
func rawUpstreamConns(t testing.TB, serve func(conn net.Conn)) (addr string, accepted *atomic.Int64) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	accepted = new(atomic.Int64)
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			wg.Go(func() {
				defer func() { _ = conn.Close() }()
				serve(conn)
			})
		}
	})
	return ln.Addr().String(), accepted
}

// eachRequest reads requests off conn, each body drained, and lets reply answer them by path
// until reading fails or reply returns false.
func eachRequest(conn net.Conn, reply func(path string) bool) {
	br := bufio.NewReader(conn)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, req.Body)
		if !reply(req.URL.Path) {
			return
		}
	}
}

func post(t *testing.T, hc *http.Client, ctx context.Context, url, body string) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	return hc.Do(req)
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	return string(b)
}

// Calls to a plain-HTTP upstream take turns on one kept-alive connection, each reply read to
// its end, whatever its framing.
func TestDirectCallsReuseOneConnection(t *testing.T) {
	var n atomic.Int64
	up := newConnCounter(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if n.Add(1)%2 == 0 {
			w.(http.Flusher).Flush() // no Content-Length: a chunked reply
		}
		_, _ = io.WriteString(w, "echo:"+string(b))
	})
	hc := providers.NewHTTPClient(0)
	t.Cleanup(hc.CloseIdleConnections)
	for i := range 6 {
		resp, err := post(t, hc, t.Context(), up.srv.URL+"/v1/x", strings.Repeat("a", i))
		require.NoError(t, err)
		require.Equal(t, "echo:"+strings.Repeat("a", i), readAll(t, resp))
	}
	require.EqualValues(t, 1, up.opened.Load())
}

// An upstream that closed an idle connection (its keep-alive timeout, a restart) costs the next
// call nothing: the closed connection is found before the request is written on it, and a new one
// is dialled.
func TestDirectCallsSkipAConnectionTheUpstreamClosed(t *testing.T) {
	// One request per connection, answered as kept alive, then closed.
	addr, accepted := rawUpstreamConns(t, func(conn net.Conn) {
		eachRequest(conn, func(string) bool {
			_, _ = io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			return false
		})
	})
	hc := providers.NewHTTPClient(0)
	t.Cleanup(hc.CloseIdleConnections)
	for i := 1; i <= 3; i++ {
		resp, err := post(t, hc, t.Context(), "http://"+addr+"/", "{}")
		require.NoError(t, err, "call %d", i)
		require.Equal(t, "ok", readAll(t, resp))
		require.EqualValues(t, i, accepted.Load())
	}
}

// A reply closed before its end takes its connection with it: what is left of it must not be
// read as the next call's reply.
func TestDirectCallsDropAConnectionWhoseReplyWasNotReadToItsEnd(t *testing.T) {
	up := newConnCounter(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/long" {
			_, _ = w.Write(bytes.Repeat([]byte("x"), 64<<10))
			return
		}
		_, _ = io.WriteString(w, "short")
	})
	hc := providers.NewHTTPClient(0)
	t.Cleanup(hc.CloseIdleConnections)
	resp, err := post(t, hc, t.Context(), up.srv.URL+"/long", "{}")
	require.NoError(t, err)
	var b [10]byte
	_, err = io.ReadFull(resp.Body, b[:])
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	<-up.closed // the server saw the first connection close

	resp, err = post(t, hc, t.Context(), up.srv.URL+"/short", "{}")
	require.NoError(t, err)
	require.Equal(t, "short", readAll(t, resp))
	require.EqualValues(t, 2, up.opened.Load())
}

// Cancelling a call ends it at once, whether it waits for the reply's head or in its body, and
// the error says it was cancelled.
func TestDirectCallsEndWhenTheirContextDoes(t *testing.T) {
	release := make(chan struct{})
	up := newConnCounter(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/body" {
			_, _ = io.WriteString(w, "first")
			w.(http.Flusher).Flush()
		}
		<-release
	})
	t.Cleanup(func() { close(release) }) // before the server's Close waits for its handlers
	hc := providers.NewHTTPClient(0)
	t.Cleanup(hc.CloseIdleConnections)

	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err := post(t, hc, ctx, up.srv.URL+"/head", "{}")
	require.ErrorIs(t, err, context.Canceled)

	ctx, cancel = context.WithCancel(t.Context())
	resp, err := post(t, hc, ctx, up.srv.URL+"/body", "{}")
	require.NoError(t, err)
	var b [5]byte
	_, err = io.ReadFull(resp.Body, b[:])
	require.NoError(t, err)
	require.Equal(t, "first", string(b[:]))
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err = resp.Body.Read(b[:])
	require.ErrorIs(t, err, context.Canceled)
	require.NoError(t, resp.Body.Close())
}

// Idle connections are closed once they have been idle for the transport's idle timeout.
func TestDirectIdleConnectionsAreClosedAfterTheIdleTimeout(t *testing.T) {
	up := newConnCounter(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, "ok")
	})
	hc := providers.NewHTTPClient(0)
	providers.HTTPTransport(hc).IdleConnTimeout = 20 * time.Millisecond
	t.Cleanup(hc.CloseIdleConnections)
	resp, err := post(t, hc, t.Context(), up.srv.URL, "{}")
	require.NoError(t, err)
	require.Equal(t, "ok", readAll(t, resp))
	select {
	case <-up.closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the idle connection was not closed")
	}
}

// A host the environment routes through a proxy, and a body too large to be written before the
// reply is read, go through net/http's transport; so does every TLS upstream (httpx_test.go).
func TestDirectLeavesProxiedHostsAndLargeBodiesToNetHTTP(t *testing.T) {
	var proxied atomic.Value
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proxied.Store(r.RequestURI) // a proxy is sent the absolute URI
		_, _ = io.WriteString(w, "via proxy")
	}))
	t.Cleanup(proxy.Close)
	hc := providers.NewHTTPClient(0)
	t.Cleanup(hc.CloseIdleConnections)
	pu, err := url.Parse(proxy.URL)
	require.NoError(t, err)
	providers.HTTPTransport(hc).Proxy = func(r *http.Request) (*url.URL, error) {
		if r.URL.Hostname() == "upstream.test" {
			return pu, nil
		}
		return nil, nil
	}
	resp, err := post(t, hc, t.Context(), "http://upstream.test/v1/chat", "{}")
	require.NoError(t, err)
	require.Equal(t, "via proxy", readAll(t, resp))
	require.Equal(t, "http://upstream.test/v1/chat", proxied.Load())

	// The upstream answers before it reads the body, then reads it: 1 MiB is far more than the
	// socket buffers hold, so only a transport that reads while it writes gets the reply.
	got := make(chan int, 1)
	addr, _ := rawUpstreamConns(t, func(conn net.Conn) {
		req, err := http.ReadRequest(bufio.NewReader(conn))
		if err != nil {
			return
		}
		_, _ = io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nearly")
		n, _ := io.Copy(io.Discard, req.Body)
		got <- int(n)
	})
	resp, err = post(t, hc, t.Context(), "http://"+addr+"/", strings.Repeat("b", 1<<20))
	require.NoError(t, err)
	require.Equal(t, "early", readAll(t, resp))
	require.Equal(t, 1<<20, <-got)
}

// A connection on which the upstream sent something unasked is not used again: it would be
// read as the next call's reply.
func TestDirectCallsSkipAConnectionWithUnaskedBytes(t *testing.T) {
	sentExtra := make(chan struct{}, 4)
	addr, accepted := rawUpstreamConns(t, func(conn net.Conn) {
		eachRequest(conn, func(path string) bool {
			_, _ = io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			if path == "/extra" {
				_, _ = io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale")
				sentExtra <- struct{}{}
			}
			return true
		})
	})
	hc := providers.NewHTTPClient(0)
	t.Cleanup(hc.CloseIdleConnections)
	resp, err := post(t, hc, t.Context(), "http://"+addr+"/extra", "{}")
	require.NoError(t, err)
	require.Equal(t, "ok", readAll(t, resp))
	<-sentExtra // written: over loopback it is in this side's socket once the write returns
	resp, err = post(t, hc, t.Context(), "http://"+addr+"/plain", "{}")
	require.NoError(t, err)
	require.Equal(t, "ok", readAll(t, resp))
	require.EqualValues(t, 2, accepted.Load())
}

// A connection whose reply switched protocols (101) speaks HTTP no more: the next call does not
// write its request there.
func TestDirectCallsDoNotReuseASwitchedConnection(t *testing.T) {
	done := make(chan struct{})
	addr, accepted := rawUpstreamConns(t, func(conn net.Conn) {
		eachRequest(conn, func(path string) bool {
			if path == "/upgrade" {
				_, _ = io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n")
				<-done // another protocol now: nothing more is answered here
				return false
			}
			_, _ = io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			return true
		})
	})
	t.Cleanup(func() { close(done) }) // before the upstream's cleanup waits for its connections
	hc := providers.NewHTTPClient(0)
	t.Cleanup(hc.CloseIdleConnections)
	resp, err := post(t, hc, t.Context(), "http://"+addr+"/upgrade", "{}")
	require.NoError(t, err)
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	require.NoError(t, resp.Body.Close())
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	resp, err = post(t, hc, ctx, "http://"+addr+"/plain", "{}")
	require.NoError(t, err, "the call went to the switched connection")
	require.Equal(t, "ok", readAll(t, resp))
	require.EqualValues(t, 2, accepted.Load())
}

// BenchmarkUpstreamTransports is one chat call over loopback to an upstream that answers a
// fixed completion, through net/http's transport and through the direct one that plain-HTTP
// upstreams use. Run both in one go: the difference is the transport's hand-offs.
func BenchmarkUpstreamTransports(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, benchChatReply)
	}))
	b.Cleanup(srv.Close)
	for _, name := range []string{"net-http", "direct"} {
		b.Run(name, func(b *testing.B) {
			hc := providers.NewHTTPClient(0)
			if name == "net-http" {
				hc.Transport = providers.HTTPTransport(hc)
			}
			b.Cleanup(hc.CloseIdleConnections)
			p, err := providers.New(config.Provider{Name: "bench/openai", Type: config.ProviderOpenAI, BaseURL: srv.URL + "/v1", APIKey: "sk-bench"}, hc)
			require.NoError(b, err)
			benchChatCalls(b, p, realisticChat())
		})
	}
}

// Whatever an upstream sends in reply to one call (a second reply after the first, stray bytes,
// a body shorter than announced, no reply at all), the next call to the same host gets its own
// reply: nothing left of the first is ever read as the second's.
func FuzzDirectNeverHandsOneCallsLeftoversToTheNext(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nstale!"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
	f.Add([]byte("HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nstale!"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort"))
	f.Add([]byte("HTTP/1.0 200 OK\r\n\r\nuntil close"))
	f.Add([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n"))
	f.Add([]byte("garbage"))
	var reply atomic.Pointer[[]byte]
	var mu sync.Mutex
	var conns []net.Conn
	addr, _ := rawUpstreamConns(f, func(conn net.Conn) {
		mu.Lock()
		conns = append(conns, conn)
		mu.Unlock()
		eachRequest(conn, func(path string) bool {
			if path == "/first" {
				_, _ = conn.Write(*reply.Load()) // one write: the reply arrives whole
			} else {
				_, _ = io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond")
			}
			return true
		})
	})
	f.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	f.Fuzz(func(t *testing.T, first []byte) {
		reply.Store(&first)
		hc := providers.NewHTTPClient(0)
		defer hc.CloseIdleConnections()
		// A reply that never ends (a body longer than sent, one read to the close) ends with
		// the call's context.
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		if resp, err := post(t, hc, ctx, "http://"+addr+"/first", "{}"); err == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
			_ = resp.Body.Close()
		}
		resp, err := post(t, hc, t.Context(), "http://"+addr+"/second", "{}")
		require.NoError(t, err)
		require.Equal(t, "second", readAll(t, resp))
	})
}
