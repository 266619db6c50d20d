package handlers

import (
	"bytes"
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/nself-org/ai-orchestration/dataplane/apierror"
	"github.com/nself-org/ai-orchestration/dataplane/governor"
	"github.com/nself-org/ai-orchestration/dataplane/metrics"
	"github.com/nself-org/ai-orchestration/dataplane/middleware"
	"github.com/nself-org/ai-orchestration/dataplane/money"
	"github.com/nself-org/ai-orchestration/dataplane/runtime"
)

// Handlers are the HTTP handlers of the data plane; the server registers them in its route
// table.
type Handlers struct {
	svc     *Service
	holder  *runtime.Holder
	metrics *metrics.Metrics
	// Draining, when it returns true, makes /readyz fail so that load balancers stop sending
	// new requests while in-flight ones finish.
	Draining func() bool
	// Budgets serves /api/ai/budgets; nil answers 503 (see [BudgetHandlers]).
	Budgets *BudgetHandlers
}

// New returns the handlers over svc; holder backs /readyz and m serves /metrics.
func New(svc *Service, holder *runtime.Holder, m *metrics.Metrics) *Handlers {
	return &Handlers{svc: svc, holder: holder, metrics: m, Draining: func() bool { return false }}
}

// Service returns the service the handlers call.
func (h *Handlers) Service() *Service { return h.svc }

// Healthz answers 200 while the process runs.
func (h *Handlers) Healthz(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

// Readyz answers 200 once a snapshot is loaded (and not draining), with the loaded
// version/hash and the last load error.
func (h *Handlers) Readyz(c *gin.Context) {
	st := h.holder.Status()
	code := http.StatusOK
	if !st.Ready || h.Draining() {
		code = http.StatusServiceUnavailable
	}
	c.JSON(code, gin.H{"ready": code == http.StatusOK, "draining": h.Draining(), "config": st})
}

// Metrics serves Prometheus metrics.
func (h *Handlers) Metrics(c *gin.Context) { h.metrics.Handler().ServeHTTP(c.Writer, c.Request) }

// bindJSON decodes the body into v, answering 400 (malformed) or 413 (too large) itself.
//
// The body is read whole (bounded by the body limit) into a pooled buffer sized by
// Content-Length, then unmarshalled: a json.Decoder would allocate and grow its own buffer in
// steps for every request. Reading to the end also lifts the body read deadline, and the server notices a client
// hang-up only once the body is consumed.
func bindJSON(c *gin.Context, v any) bool {
	if c.Request.Body == nil {
		apierror.Abort(c, apierror.BadRequest("request body is required"))
		return false
	}
	buf, err := readBody(c.Request)
	defer putBody(buf)
	if err != nil {
		if limit, ok := middleware.IsBodyTooLarge(err); ok {
			apierror.Abort(c, middleware.TooLarge(limit))
			return false
		}
		apierror.Abort(c, apierror.BadRequest("failed to read the request body: %s", err.Error()))
		return false
	}
	body := buf.Bytes()
	if len(bytes.TrimSpace(body)) == 0 {
		apierror.Abort(c, apierror.BadRequest("request body is required"))
		return false
	}
	// The chat requests, decoded on every call, are decoded by a faster library held to
	// encoding/json's behaviour (see decodeChat); a body it refuses, and every other body, is
	// decoded by encoding/json, so clients see its values and messages either way.
	if decodeChat(body, v) {
		return true
	}
	// Unmarshal (like decodeChat) copies every string and json.RawMessage out of body (and
	// our UnmarshalJSON methods copy too), so the buffer can be reused once it returns.
	if err := json.Unmarshal(body, v); err != nil {
		apierror.Abort(c, apierror.BadRequest("invalid JSON body: %s", err.Error()))
		return false
	}
	return true
}

// bodyPool recycles request-body buffers: a chat body is a few KiB per request, which was the
// largest single allocation of the request path.
var bodyPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledBody keeps the pool from pinning the memory of an occasional huge body.
const maxPooledBody = 256 << 10

// readBody reads the whole request body (bounded by the body limit middleware) into a pooled
// buffer grown once to its declared length; return it with [putBody].
func readBody(r *http.Request) (*bytes.Buffer, error) {
	buf := bodyPool.Get().(*bytes.Buffer)
	buf.Reset()
	if r.ContentLength > 0 && r.ContentLength <= maxPooledBody {
		buf.Grow(int(r.ContentLength) + bytes.MinRead)
	}
	_, err := buf.ReadFrom(r.Body)
	return buf, err
}

func putBody(buf *bytes.Buffer) {
	if buf.Cap() <= maxPooledBody {
		bodyPool.Put(buf)
	}
}

// identity authorizes the key for org and builds the governor identity.
func identity(c *gin.Context, user, org string) (governor.Identity, bool) {
	key := middleware.APIKey(c)
	org, aerr := middleware.Authorize(key, org)
	if aerr != nil {
		apierror.Abort(c, aerr)
		return governor.Identity{}, false
	}
	return governor.Identity{User: user, Org: org, APIKey: key.Name}, true
}

// served writes the headers of a served reply. It runs on every served request, so its values
// share one backing array (and the cost its own string), instead of a slice each.
func served(c *gin.Context, provider string, cost money.Nanos, cached bool, rl governor.RateLimitState) {
	h := c.Writer.Header()
	var buf [24]byte // a money.Nanos in dollars: sign, 10 digits, point, 9 decimals
	v := make([]string, 3)
	v[0] = string(appendUSD(buf[:0], cost))
	// What h.Set does, under keys canonicalized once: Set canonicalizes its key on every call,
	// and these spellings ("X-AI-…") are not canonical, so each call allocated the key again.
	h[headerCostKey] = v[0:1:1]
	if cached {
		v[1] = "hit"
	} else {
		v[1] = "miss"
	}
	h[headerCacheKey] = v[1:2:2]
	if provider != "" {
		v[2] = provider
		h[headerProviderKey] = v[2:3:3]
	}
	apierror.SetRateLimitHeaders(c, rl)
}

// The reply headers served and tokensSaved set, in the canonical form net/http sends.
var (
	headerCostKey        = http.CanonicalHeaderKey("X-AI-Cost")
	headerCacheKey       = http.CanonicalHeaderKey("X-AI-Cache")
	headerProviderKey    = http.CanonicalHeaderKey("X-AI-Provider")
	headerTokensSavedKey = http.CanonicalHeaderKey("X-AI-Tokens-Saved")
)

// tokensSaved reports the prompt tokens prompt optimization removed, only when there were any.
func tokensSaved(c *gin.Context, n int64) {
	if n > 0 {
		c.Writer.Header()[headerTokensSavedKey] = []string{strconv.FormatInt(n, 10)}
	}
}

// usd renders nano-USD as an exact JSON number ("0.00015", never a float's rounding or exponent).
type usd money.Nanos

func (u usd) String() string {
	var buf [24]byte
	return string(appendUSD(buf[:0], money.Nanos(u)))
}

// appendUSD appends usd(n).String(): n in dollars with its decimals up to the last non-zero one
// (money.Nanos.String with the trailing zeros and point trimmed), without fmt's allocations.
func appendUSD(b []byte, n money.Nanos) []byte {
	if n == math.MinInt64 { // has no positive counterpart; money.Nanos.String words it as it can
		s := n.String()
		if strings.Contains(s, ".") {
			s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
		}
		return append(b, s...)
	}
	if n < 0 {
		b = append(b, '-')
		n = -n
	}
	b = strconv.AppendInt(b, int64(n/money.PerUSD), 10)
	frac := int64(n % money.PerUSD)
	if frac == 0 {
		return b
	}
	var digits [9]byte
	for i := len(digits) - 1; i >= 0; i-- {
		digits[i] = byte('0' + frac%10)
		frac /= 10
	}
	end := len(digits)
	for digits[end-1] == '0' {
		end--
	}
	b = append(b, '.')
	return append(b, digits[:end]...)
}

// MarshalJSON implements json.Marshaler.
func (u usd) MarshalJSON() ([]byte, error) { return []byte(u.String()), nil }

// abort maps err and writes it.
func abort(c *gin.Context, err error) { apierror.AbortErr(c, err) }

// costTrailer announces X-AI-Cost as an HTTP trailer: a stream's cost is known only once it
// ends (it is also in the final event), so it follows the body.
func costTrailer(c *gin.Context) {
	h := c.Writer.Header()
	h.Del("X-AI-Cost")
	h.Set("Trailer", "X-AI-Cost")
}

// sseHeaders starts an event stream.
func sseHeaders(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	h.Set("X-Accel-Buffering", "no")
	c.Status(http.StatusOK)
}

// writeSSE writes one event (name may be empty) and flushes; an error means the client is gone.
func writeSSE(c *gin.Context, event string, data []byte) error {
	var b []byte
	if event != "" {
		b = append(b, "event: "...)
		b = append(b, event...)
		b = append(b, '\n')
	}
	b = append(b, "data: "...)
	b = append(b, data...)
	b = append(b, '\n', '\n')
	if _, err := c.Writer.Write(b); err != nil {
		return err
	}
	c.Writer.Flush()
	return nil
}

// parseWindow reads "7d", "24h", "2w", "30m" or a Go duration; empty is def.
func parseWindow(s string, def time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	if n := len(s); n > 1 {
		unit := s[n-1]
		if v, err := strconv.Atoi(s[:n-1]); err == nil && v > 0 {
			switch unit {
			case 'd':
				return time.Duration(v) * 24 * time.Hour, nil
			case 'w':
				return time.Duration(v) * 7 * 24 * time.Hour, nil
			}
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, apierror.BadRequest("window %q is not a duration such as 7d, 24h or 30m", s)
	}
	return d, nil
}

// writeStreamError ends a stream whose headers are already sent with the contract's error body
// as one SSE event (event name "error" on /api/ai, unnamed on the OpenAI-compatible API, as
// OpenAI does), and records the error for the access log.
func writeStreamError(c *gin.Context, event string, err error) {
	e := apierror.From(err)
	_ = c.Error(e)
	b, _ := json.Marshal(apierror.Body{Error: apierror.BodyError{Type: e.Type, Code: e.Code, Message: e.Message}})
	_ = writeSSE(c, event, b)
}
