package providers

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// directTransport sends the calls to plain-HTTP upstreams (a local Ollama, an in-cluster model
// server) over HTTP/1.1 connections of its own, writing the request and reading the response in
// the calling goroutine. net/http's transport runs a read loop and a write loop goroutine per
// connection and hands every request and response between them and the caller: two goroutine
// wake-ups per call (about 20 µs on a 2-core machine, BenchmarkUpstreamTransports) and two
// goroutines, with their stacks, per open stream. The wire format stays net/http's
// (Request.Write, ReadResponse); the connection pool is ours.
//
// Everything else goes to the net/http transport it wraps, whose settings it also reads
// (dialer, proxy, buffer sizes, idle limits): TLS (hosted providers, HTTP/2 when offered), and a
// host the environment routes through a proxy. A plain-HTTP call asks for no gzip: its upstream
// is on the local network, where compressing costs both ends more than it saves.
type directTransport struct {
	tr *http.Transport

	mu       sync.Mutex
	hosts    map[string]*directHost // by URL host, as the request spells it
	sweeping bool                   // a sweep of expired idle connections is armed
}

// directHost is one upstream host:port: whether its calls go direct, and its idle connections,
// oldest first.
type directHost struct {
	addr   string // host:port to dial
	direct bool   // no proxy for it: decided once, as net/http reads the environment once
	idle   []*directConn
}

// directConn is one connection and its buffers.
type directConn struct {
	conn   net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	host   *directHost
	idleAt time.Time
	// raw peeks at an idle connection before it is reused ([directConn.alive]); nil when the
	// connection has no file descriptor to peek at.
	raw    syscall.RawConn
	peek   func(fd uintptr) bool
	peeked error // what the last peek's system call returned
	// abortFn is abort as a func value, made once per connection rather than once per call.
	abortFn func()
}

// aLongTimeAgo is the deadline that ends a connection's blocked reads and writes at once.
var aLongTimeAgo = time.Unix(1, 0)

func newDirectTransport(tr *http.Transport) *directTransport {
	return &directTransport{tr: tr, hosts: make(map[string]*directHost)}
}

// directMaxBody is the largest request body sent direct. The request is written whole before
// its response is read, and an upstream may answer before it reads (HTTP/1.1 allows it): a body
// that fits in the socket buffers cannot leave the write waiting on such an upstream forever. A
// larger one goes to net/http's transport, which reads while it writes.
const directMaxBody = 32 << 10

// RoundTrip implements http.RoundTripper.
func (t *directTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "http" || (req.Body != nil && req.Body != http.NoBody && (req.ContentLength <= 0 || req.ContentLength > directMaxBody)) {
		return t.tr.RoundTrip(req)
	}
	h := t.host(req)
	if !h.direct {
		return t.tr.RoundTrip(req)
	}
	ctx := req.Context()
	pc, err := t.conn(ctx, h)
	if err != nil {
		closeRequestBody(req)
		return nil, err
	}
	// The caller's cancellation (the call's watchdog, a client gone) ends the connection's I/O.
	var stop func() bool
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, pc.abortFn)
	}
	resp, err := pc.exchange(req)
	if err != nil {
		if stop != nil {
			stop()
		}
		pc.close()
		return nil, cancelled(ctx, err)
	}
	// A connection that switched protocols (101) no longer speaks HTTP/1.1: never reused.
	keep := !resp.Close && !req.Close && resp.StatusCode != http.StatusSwitchingProtocols
	b := &directBody{rc: resp.Body, t: t, pc: pc, ctx: ctx, stop: stop, keep: keep}
	if resp.Body == http.NoBody {
		b.finish(true)
		return resp, nil
	}
	resp.Body = b
	return resp, nil
}

// CloseIdleConnections closes the idle connections of both transports.
func (t *directTransport) CloseIdleConnections() {
	t.mu.Lock()
	var idle []*directConn
	for _, h := range t.hosts {
		idle = append(idle, h.idle...)
		clear(h.idle)
		h.idle = h.idle[:0]
	}
	t.mu.Unlock()
	for _, pc := range idle {
		pc.close()
	}
	t.tr.CloseIdleConnections()
}

// host returns the pool of req's host, deciding on first sight whether its calls go direct (the
// environment's proxy function is cheap: net/http reads the environment once).
func (t *directTransport) host(req *http.Request) *directHost {
	t.mu.Lock()
	defer t.mu.Unlock()
	if h := t.hosts[req.URL.Host]; h != nil {
		return h
	}
	h := &directHost{addr: req.URL.Host, direct: true}
	if req.URL.Port() == "" {
		h.addr = net.JoinHostPort(req.URL.Hostname(), "80")
	}
	if proxy := t.tr.Proxy; proxy != nil {
		u, err := proxy(req)
		h.direct = err == nil && u == nil // a proxy error is net/http's to report
	}
	t.hosts[req.URL.Host] = h
	return h
}

// conn takes h's most recently used idle connection that is still open, or dials a new one.
func (t *directTransport) conn(ctx context.Context, h *directHost) (*directConn, error) {
	timeout := t.idleTimeout()
	for {
		t.mu.Lock()
		n := len(h.idle)
		if n == 0 {
			t.mu.Unlock()
			break
		}
		pc := h.idle[n-1]
		h.idle[n-1] = nil
		h.idle = h.idle[:n-1]
		t.mu.Unlock()
		if time.Since(pc.idleAt) < timeout && pc.alive() {
			return pc, nil
		}
		pc.close()
	}
	dial := t.tr.DialContext
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	c, err := dial(ctx, "tcp", h.addr)
	if err != nil {
		return nil, err
	}
	pc := &directConn{conn: c, host: h,
		br: bufio.NewReaderSize(c, bufferSize(t.tr.ReadBufferSize)),
		bw: bufio.NewWriterSize(c, bufferSize(t.tr.WriteBufferSize))}
	pc.abortFn = pc.abort
	if sc, ok := c.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			pc.raw = raw
			pc.peek = pc.peekFD // one closure per connection, not per reuse
		}
	}
	return pc, nil
}

// put returns a connection whose response was read to its end to its host's idle list.
func (t *directTransport) put(pc *directConn) {
	pc.idleAt = time.Now()
	limit := t.tr.MaxIdleConnsPerHost
	if limit <= 0 {
		limit = http.DefaultMaxIdleConnsPerHost
	}
	t.mu.Lock()
	h := pc.host
	if len(h.idle) >= limit {
		t.mu.Unlock()
		pc.close()
		return
	}
	h.idle = append(h.idle, pc)
	arm := !t.sweeping
	t.sweeping = true
	t.mu.Unlock()
	if arm {
		time.AfterFunc(t.idleTimeout(), t.sweep)
	}
}

// sweep closes the connections idle for longer than the idle timeout, and runs again while
// any connection is idle, so that an upstream gone quiet does not keep them open.
func (t *directTransport) sweep() {
	timeout := t.idleTimeout()
	var expired []*directConn
	t.mu.Lock()
	left := false
	for _, h := range t.hosts {
		n := 0
		for n < len(h.idle) && time.Since(h.idle[n].idleAt) >= timeout {
			n++
		}
		expired = append(expired, h.idle[:n]...)
		rest := copy(h.idle, h.idle[n:])
		clear(h.idle[rest:])
		h.idle = h.idle[:rest]
		left = left || rest > 0
	}
	t.sweeping = left
	t.mu.Unlock()
	for _, pc := range expired {
		pc.close()
	}
	if left {
		time.AfterFunc(timeout, t.sweep)
	}
}

func (t *directTransport) idleTimeout() time.Duration {
	if d := t.tr.IdleConnTimeout; d > 0 {
		return d
	}
	return 90 * time.Second
}

func bufferSize(n int) int {
	if n > 0 {
		return n
	}
	return 4 << 10
}

// maxInterimResponses bounds the 1xx replies read before the final one, as net/http does.
const maxInterimResponses = 5

// exchange writes req and reads its response head.
func (pc *directConn) exchange(req *http.Request) (*http.Response, error) {
	// Request.Write calls the request's httptrace WroteRequest once it has read the body, as the
	// transport does: a call lets go of its body on it.
	err := req.Write(pc.bw)
	if err == nil {
		err = pc.bw.Flush()
	}
	if err != nil {
		return nil, err
	}
	for range maxInterimResponses {
		resp, err := http.ReadResponse(pc.br, req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			return resp, nil
		}
	}
	return nil, errTooManyInterim
}

var errTooManyInterim = errors.New("too many 1xx informational responses")

func (pc *directConn) abort() { _ = pc.conn.SetDeadline(aLongTimeAgo) }

func (pc *directConn) close() { _ = pc.conn.Close() }

// directBody is a response body on a direct connection: read to its end, it gives the
// connection back to the pool; closed before, it closes the connection (draining an
// unread body could take as long as the upstream likes).
type directBody struct {
	rc   io.ReadCloser
	t    *directTransport
	pc   *directConn
	ctx  context.Context
	stop func() bool
	keep bool // the upstream keeps the connection open after this response
	done atomic.Bool
	eof  bool
}

func (b *directBody) Read(p []byte) (int, error) {
	if b.done.Load() {
		if b.eof {
			return 0, io.EOF
		}
		return 0, errBodyClosed
	}
	n, err := b.rc.Read(p)
	switch {
	case err == io.EOF:
		b.eof = true
		b.finish(true)
	case err != nil:
		err = cancelled(b.ctx, err)
		b.finish(false)
	}
	return n, err
}

var errBodyClosed = errors.New("http: read on closed response body")

func (b *directBody) Close() error {
	b.finish(false)
	return nil
}

// finish ends the body once: the connection goes back to the pool when the response was read to
// its end and nothing may still touch the connection, else it is closed.
func (b *directBody) finish(reusable bool) {
	if !b.done.CompareAndSwap(false, true) {
		return
	}
	if b.stop != nil && !b.stop() {
		reusable = false // the context ended: its deadline may be on the connection
	}
	if reusable && b.keep && b.pc.br.Buffered() == 0 {
		b.t.put(b.pc)
		return
	}
	b.pc.close()
	if !reusable {
		_ = b.rc.Close() // the connection is closed: this returns at once
	}
}

// cancelled reports an I/O error of a call whose context ended as the context's error: the
// connection's deadline, which the cancellation set, is what failed it.
func cancelled(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	return err
}

// closeRequestBody closes a request's body, as a RoundTripper must even when it fails.
func closeRequestBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}
