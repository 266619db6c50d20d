package providers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// DefaultTimeout bounds an upstream call when the AIProvider sets no timeout. For streams it is
// the longest silence tolerated between two chunks, not the length of the whole stream.
const DefaultTimeout = 60 * time.Second

// Response size bounds: an upstream that answers with more than this is treated as malformed
// rather than allowed to exhaust the gateway's memory.
const (
	maxChatBody  = 16 << 20
	maxEmbedBody = 256 << 20
	maxErrorBody = 64 << 10
	maxLineBytes = 1 << 20
)

// upstreamBufferSize is the per-connection read and write buffer of the upstream transport.
const upstreamBufferSize = 4 << 10

// NewHTTPClient returns a client for upstream calls with a keep-alive pool sized for a gateway:
// many concurrent requests to few hosts. One client should be shared by every provider so that
// connections are reused across snapshot reloads. timeout is an outer safety net only (0 = none);
// per-call deadlines and stream stall detection are done by the adapters.
func NewHTTPClient(timeout time.Duration) *http.Client {
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:       http.ProxyFromEnvironment,
		DialContext: dialer.DialContext,
		// A custom dialer turns HTTP/2 off unless forced: over TLS (every hosted provider) open
		// streams then share a few connections instead of holding one (two goroutines, two
		// buffers) each.
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   512,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		// Compression is left to the transport's default (gzip when the upstream offers it).
		//
		// Each HTTP/1.1 connection holds one read and one write buffer for as long as it lives, and
		// a held stream holds its connection: at 32 KiB each, 1 000 open streams kept 55 MiB more
		// live heap (113 MiB instead of 58 MiB), which doubled the GC's heap goal and so how far
		// the heap grows under churn. 4 KiB (net/http's default) is enough: an SSE event is read
		// line by line through the adapter's own reader, and large bodies mostly bypass bufio
		// (io.ReadAll and request bodies move more than the buffer per call).
		ReadBufferSize:  upstreamBufferSize,
		WriteBufferSize: upstreamBufferSize,
	}
	return &http.Client{Transport: newDirectTransport(tr), Timeout: timeout}
}

// HTTPTransport returns the net/http transport of a client [NewHTTPClient] made, whose settings
// (TLS, dialer, proxy, pool limits) every upstream call follows, or nil for another client.
func HTTPTransport(hc *http.Client) *http.Transport {
	switch t := hc.Transport.(type) {
	case *directTransport:
		return t.tr
	case *http.Transport:
		return t
	}
	return nil
}

// base holds what every HTTP adapter shares.
type base struct {
	name    string
	baseURL string
	apiKey  string
	timeout time.Duration
	hc      *http.Client
}

// watchdog cancels a call when no byte has arrived for timeout. It covers the wait for response
// headers and every gap between stream chunks, so a stalled upstream is cut after one timeout.
// When the caller bounds the whole call ([WithCallTimeout]) the same timer enforces that bound
// too, instead of a deadline context of the caller's around this one. It lives inside its
// [call] (one allocation for both) and cancels the call's context.
type watchdog struct {
	timer   *time.Timer
	timeout time.Duration
	// deadline is when the whole call must be over; zero when the caller set no bound.
	deadline time.Time
	// fired says the upstream was silent for timeout; expired that the deadline passed.
	fired, expired atomic.Bool
	cancel         context.CancelFunc
}

// start derives the call's context from ctx and arms the timer; the call's close stops both.
func (w *watchdog) start(ctx context.Context, timeout time.Duration) context.Context {
	first := timeout
	if p, ok := ctx.Value(callTimeoutKey{}).(*time.Duration); ok && *p > 0 {
		w.deadline = time.Now().Add(*p)
		first = min(first, *p)
	}
	ctx, w.cancel = context.WithCancel(ctx)
	w.timeout = timeout
	// The timer measures from after the deadline was read off the clock, so when it fires for
	// the deadline the clock has reached it.
	w.timer = time.AfterFunc(first, w.fire)
	return ctx
}

func (w *watchdog) fire() {
	if !w.deadline.IsZero() && !time.Now().Before(w.deadline) {
		w.expired.Store(true)
	} else {
		w.fired.Store(true)
	}
	w.cancel()
}

// kick rearms the timer for another silence of timeout, or for what is left until the
// deadline when that is sooner.
func (w *watchdog) kick() {
	d := w.timeout
	if !w.deadline.IsZero() {
		d = min(d, time.Until(w.deadline))
	}
	w.timer.Reset(d)
}

// callTimeoutKey carries the bound [WithCallTimeout] sets.
type callTimeoutKey struct{}

// WithCallTimeout returns ctx carrying *d as the bound of the whole upstream call made with it,
// for a provider for which [BoundsCalls] is true: the adapter's watchdog timer then ends the
// call at that deadline exactly as a context.WithTimeout(ctx, *d) around the call would (the
// same KindTimeout "deadline exceeded" error), for one small allocation instead of a timer, a
// context and a channel per call. d must stay unchanged (a route's Timeout in the snapshot).
// Other providers ignore it, so callers check [BoundsCalls] first.
func WithCallTimeout(ctx context.Context, d *time.Duration) context.Context {
	return context.WithValue(ctx, callTimeoutKey{}, d)
}

// BoundsCalls reports whether p enforces [WithCallTimeout]: every HTTP adapter of this package
// does; the mock, and any wrapper or fake, does not.
func BoundsCalls(p Provider) bool {
	_, ok := p.(interface{ boundsCalls() })
	return ok
}

// boundsCalls marks the adapters whose every upstream call goes through [base.sendTo].
func (b *base) boundsCalls() {}

// progressReader kicks the watchdog whenever bytes arrive.
type progressReader struct {
	r io.Reader
	w *watchdog
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.w.kick()
	}
	return n, err
}

// call is one in-flight upstream request.
type call struct {
	resp *http.Response
	body io.Reader
	// cancel ends the call's context; set by hand where no watchdog runs (tests), else wd's.
	cancel context.CancelFunc
	ctx    context.Context
	// wd and progress are the watchdog and the body reader that kicks it (body points to
	// progress), held by value so that a call is one allocation.
	wd       watchdog
	progress progressReader
	// reqBody is the request body's reader and limited the reply body's bound
	// ([base.decodeBodyFast]), held here for the same reason.
	reqBody bytes.Reader
	limited io.LimitedReader

	// The request body is let go once the transport is done with it (see [call.unhold]), so that
	// a call that lasts (a stream, a slow reply) does not keep its prompt: a chat history of tens
	// of KiB would otherwise stay reachable per open stream, through reqBody, GetBody, and the
	// request the transport and the response keep.
	//
	// sent is the encoded body GetBody reads again; scratch, when set, is the pooled buffer it
	// lives in, recycled with it. retried are the readers GetBody handed out (a redirect, a
	// retry), cleared with reqBody.
	sent    []byte
	scratch *[]byte
	retried []*bytes.Reader
	// holds counts what may still read the body: Do until it returns, and each reader of it
	// handed to the transport until the write that reads it has ended. The body is let go when
	// it reaches zero.
	holds atomic.Int32
	// trace tells when a write of the request has ended (WroteRequest).
	trace httptrace.ClientTrace
}

// getBody is the request's GetBody: a fresh reader of the body for a redirect or a retry. The
// client and the transport call it only before Do returns, so never after the body is let go.
func (c *call) getBody() (io.ReadCloser, error) {
	if c.sent == nil {
		return nil, errBodyReleased
	}
	r := bytes.NewReader(c.sent)
	c.holds.Add(1)
	c.retried = append(c.retried, r)
	return io.NopCloser(r), nil
}

var errBodyReleased = errors.New("request body already released")

// wroteRequest is the trace's WroteRequest: net/http calls it once per write of the request,
// after that write has read (and closed) the body it was given, whether it succeeded or not.
func (c *call) wroteRequest(httptrace.WroteRequestInfo) { c.unhold() }

// unhold ends one hold on the body and lets the body go after the last one.
//
// Why counting is enough: every reader of the body the transport can get is counted before it
// gets it (the first in sendTo, the others in getBody), each is written at most once (a write
// closes its body, and net/http rewinds a closed body through GetBody), and every write fires
// WroteRequest after its last read. So once Do has returned (no GetBody can follow) and as many
// writes as readers have ended, nothing reads the body again. A reader that is never written
// (a retry that dropped it unread) keeps the count above zero: the body then stays until the
// call is garbage, as it always did. The atomic count orders the transport's last read before
// the release, for the race detector as for the memory model.
func (c *call) unhold() {
	if c.holds.Add(-1) != 0 {
		return
	}
	c.reqBody.Reset(nil)
	for _, r := range c.retried {
		r.Reset(nil)
	}
	c.retried, c.sent = nil, nil
	if c.scratch != nil {
		putScratch(c.scratch)
		c.scratch = nil
	}
}

func (c *call) close() {
	if c.wd.timer != nil {
		c.wd.timer.Stop()
	}
	c.cancel()
	if c.resp != nil {
		_ = c.resp.Body.Close()
	}
}

// errParser extracts a provider's error type and message from an error body.
type errParser func(body []byte) (typ, msg string, retry time.Duration, ok bool)

// target is one upstream endpoint: its request line and headers, built once when the snapshot
// is compiled instead of on every call (URL parsing, header canonicalisation and the header map
// were a tenth of the bytes allocated per request).
type target struct {
	// tmpl is the request every call copies (with its own context and body). Its URL and Header
	// are shared by all the copies: net/http only reads them (a RoundTripper must not modify the
	// request, and the client forks it before adding anything), and so do we.
	tmpl *http.Request
	// err is why the URL or method is unusable; every call then fails with it, as before.
	err error
}

// newTarget builds the target of method url with the JSON headers and headers (auth lives
// there, never in messages).
func newTarget(method, url string, headers map[string]string) target {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return target{err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	return target{tmpl: req}
}

// send posts body as JSON and returns the open response when the status is 2xx, or a mapped
// *Error otherwise. headers are set on the request (auth lives there, never in messages). It is
// for the calls whose URL changes per request; the others have a [target] and use sendTo.
func (b *base) send(ctx context.Context, method, url string, body any, headers map[string]string, parse errParser) (*call, error) {
	buf, err := b.marshal(body)
	if err != nil {
		return nil, err
	}
	t := newTarget(method, url, headers)
	return b.sendTo(ctx, &t, buf, nil, parse)
}

// post encodes body with encoding/json and posts it to t, as send does.
func (b *base) post(ctx context.Context, t *target, body any, parse errParser) (*call, error) {
	buf, err := b.marshal(body)
	if err != nil {
		return nil, err
	}
	return b.sendTo(ctx, t, buf, nil, parse)
}

// marshal encodes a request body with encoding/json.
func (b *base) marshal(body any) ([]byte, error) {
	buf, err := json.Marshal(body)
	if err != nil {
		return nil, &Error{Kind: KindBadRequest, Provider: b.name, Message: "failed to encode request", Err: err}
	}
	return buf, nil
}

// scratchPool recycles the buffers small request bodies are encoded into: a call puts its
// buffer back once the transport is done with the body ([call.unhold]).
var scratchPool = sync.Pool{New: func() any { b := make([]byte, 0, pooledScratchSize); return &b }}

// pooledScratchSize is the size of the pool's buffers, and the largest body encoded into one.
// A buffer stays in the pool until two GCs have passed, so a burst of N requests leaves up to N
// of them there: 1 000 streams opened together leave 4 MiB, where prompt-sized buffers would
// leave a prompt per stream. maxPooledScratch lets a buffer an escape-heavy body grew go back.
const (
	pooledScratchSize = 4 << 10
	maxPooledScratch  = 8 << 10
)

func putScratch(b *[]byte) {
	if cap(*b) <= maxPooledScratch {
		scratchPool.Put(b)
	}
}

// sendTo posts the encoded JSON body to t, as send does. body must not change afterwards: the
// transport may read it after this returns. scratch, when not nil, is the pooled buffer body was
// encoded into ([scratchPool]); the call puts it back once the transport is done with the body
// (see [call.unhold]), so the caller must not use body or scratch after this.
func (b *base) sendTo(ctx context.Context, t *target, body []byte, scratch *[]byte, parse errParser) (*call, error) {
	if t.tmpl == nil {
		if scratch != nil {
			putScratch(scratch)
		}
		err := t.err
		if err == nil {
			err = errors.New("no request target")
		}
		return nil, &Error{Kind: KindBadRequest, Provider: b.name, Message: "failed to build request", Err: err}
	}
	c := &call{ctx: ctx, sent: body, scratch: scratch}
	c.trace.WroteRequest = c.wroteRequest
	req := t.tmpl.WithContext(httptrace.WithClientTrace(c.wd.start(ctx, b.timeout), &c.trace))
	c.cancel = c.wd.cancel
	// What http.NewRequest sets for a *bytes.Reader body. The body stays a *bytes.Reader behind
	// io.NopCloser: the transport recognises that as in memory and writes the headers and the
	// body in one packet, where any other reader costs a flush (a write syscall) of its own.
	req.ContentLength = int64(len(body))
	c.reqBody.Reset(body)
	req.Body = io.NopCloser(&c.reqBody)
	req.GetBody = c.getBody
	c.holds.Store(2) // Do, and the write of reqBody
	resp, err := b.hc.Do(req)
	c.unhold()
	if err != nil {
		c.close()
		return nil, b.transportError(ctx, &c.wd, err)
	}
	c.resp = resp
	c.progress = progressReader{r: resp.Body, w: &c.wd}
	c.body = &c.progress
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer c.close()
		return nil, b.statusError(c, parse)
	}
	return c, nil
}

// decodeBody reads a bounded JSON body into v.
func (b *base) decodeBody(c *call, limit int64, v any) error {
	data, err := io.ReadAll(io.LimitReader(c.body, limit+1))
	if err != nil {
		return b.streamError(c, err)
	}
	if int64(len(data)) > limit {
		return &Error{Kind: KindMalformed, Provider: b.name, Status: c.resp.StatusCode, Message: fmt.Sprintf("response larger than %d bytes", limit)}
	}
	if err := json.Unmarshal(data, v); err != nil {
		return &Error{Kind: KindMalformed, Provider: b.name, Status: c.resp.StatusCode, Message: "undecodable response body", Err: err}
	}
	return nil
}

// statusError maps a non-2xx reply to an *Error.
func (b *base) statusError(c *call, parse errParser) *Error {
	resp := c.resp
	data, _ := io.ReadAll(io.LimitReader(c.body, maxErrorBody))
	e := &Error{Provider: b.name, Status: resp.StatusCode, Kind: kindForStatus(resp.StatusCode)}
	typ, msg, retry, ok := "", "", time.Duration(0), false
	if parse != nil && len(data) > 0 {
		typ, msg, retry, ok = parse(data)
	}
	if authErrorTypes[typ] {
		e.Kind = KindAuth // Gemini answers a bad key with 400 INVALID_ARGUMENT + API_KEY_INVALID
	}
	e.RetryAfter = retryAfter(resp.Header, time.Now())
	if e.RetryAfter == 0 {
		e.RetryAfter = retry
	}
	e.Message = describe(e.Kind, typ, msg, b.apiKey, ok)
	return e
}

// authErrorTypes are provider error types that mean "bad key" whatever the status says.
var authErrorTypes = map[string]bool{"API_KEY_INVALID": true, "invalid_api_key": true, "authentication_error": true}

// kindForStatus is the one HTTP status → ErrorKind table shared by every provider.
func kindForStatus(status int) ErrorKind {
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return KindAuth
	case status == http.StatusNotFound:
		return KindNotFound
	case status == http.StatusTooManyRequests:
		return KindRateLimited
	case status == http.StatusBadRequest || status == http.StatusRequestEntityTooLarge || status == http.StatusUnprocessableEntity:
		return KindBadRequest
	case status == http.StatusRequestTimeout || status == http.StatusGatewayTimeout:
		return KindTimeout
	case status >= 500: // includes Anthropic's 529 overloaded
		return KindServer
	default:
		return KindBadRequest
	}
}

// describe builds an error message from the upstream's error type and message. Messages of
// refused requests may quote the request (and so the prompt), so they are dropped for
// KindBadRequest; the key is redacted from any message kept.
func describe(kind ErrorKind, typ, msg, apiKey string, parsed bool) string {
	if !parsed {
		return "upstream error (body not in the provider's error format)"
	}
	if kind == KindBadRequest {
		msg = ""
	}
	if apiKey != "" && msg != "" {
		msg = strings.ReplaceAll(msg, apiKey, "[REDACTED]")
	}
	msg = truncate(msg, 200)
	switch {
	case typ != "" && msg != "":
		return typ + ": " + msg
	case typ != "":
		return typ
	case msg != "":
		return msg
	}
	return "upstream error"
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}

// retryAfter reads retry-after-ms (OpenAI, Anthropic) and Retry-After in seconds or as an
// HTTP date. It returns 0 when neither is present or valid.
func retryAfter(h http.Header, now time.Time) time.Duration {
	if v := h.Get("retry-after-ms"); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms > 0 && ms < 1e9 {
			return time.Duration(ms * float64(time.Millisecond))
		}
	}
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if s <= 0 || s > 86400*7 {
			return 0
		}
		return time.Duration(s * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// transportError classifies a failed round trip. ctx is the caller's context.
func (b *base) transportError(ctx context.Context, wd *watchdog, err error) *Error {
	return classify(b.name, ctx, wd, err)
}

// streamError classifies a failure while reading a (streamed or not) body.
func (b *base) streamError(c *call, err error) error {
	var pe *Error
	if errors.As(err, &pe) {
		return pe
	}
	return classify(b.name, c.ctx, &c.wd, err)
}

func classify(name string, ctx context.Context, wd *watchdog, err error) *Error {
	switch {
	case wd != nil && wd.fired.Load():
		return &Error{Kind: KindTimeout, Provider: name, Message: fmt.Sprintf("no response from upstream for %s", wd.timeout), Err: context.DeadlineExceeded}
	case wd != nil && wd.expired.Load(), errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded):
		return &Error{Kind: KindTimeout, Provider: name, Message: "deadline exceeded", Err: context.DeadlineExceeded}
	case errors.Is(ctx.Err(), context.Canceled):
		return &Error{Kind: KindConnection, Provider: name, Message: "request canceled", Err: context.Canceled}
	}
	if errors.Is(err, ErrLineTooLong) {
		return &Error{Kind: KindMalformed, Provider: name, Message: "stream line too long", Err: err}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return &Error{Kind: KindTimeout, Provider: name, Message: "network timeout", Err: err}
	}
	msg := "connection failed"
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		msg = "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		msg = "connection reset"
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		msg = "connection closed early"
	}
	return &Error{Kind: KindConnection, Provider: name, Message: msg, Err: err}
}

// malformed reports an unparseable upstream payload.
func malformed(name, what string, err error) *Error {
	return &Error{Kind: KindMalformed, Provider: name, Message: what, Err: err}
}
