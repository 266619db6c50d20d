// Package middleware holds the data plane's Gin middleware, in the order the server installs
// them: [NewRecovery], [NewRequestLog] (request ID, access log, request metrics), [NewBodyLimit],
// [NewRuntime] (one snapshot per request) and [NewAuth]. Route resolution, limits, budgets,
// guardrails, cache and the provider call run inside the handlers' service calls, in that order,
// because each needs what the handler has bound from the body.
package middleware

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/trace"

	"github.com/nself-org/ai-orchestration/dataplane/apierror"
	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/metrics"
	"github.com/nself-org/ai-orchestration/dataplane/runtime"
	"github.com/nself-org/ai-orchestration/internal/logbuf"
)

// Context keys; unexported types so no other package can collide with them.
type ctxKey int

const (
	keyRuntime ctxKey = iota
	keyAPIKey
	// keyLogger holds the *requestState of [NewRequestLog].
	keyLogger
)

// HeaderRequestID is echoed (when the caller sent a sane one) or generated on every reply.
const HeaderRequestID = "X-Request-ID"

// Runtime returns the snapshot this request loaded, nil outside [NewRuntime].
func Runtime(c *gin.Context) *runtime.Runtime {
	v, _ := c.Get(keyRuntime)
	rt, _ := v.(*runtime.Runtime)
	return rt
}

// APIKey returns the authenticated client key, nil outside [NewAuth].
func APIKey(c *gin.Context) *config.APIKey {
	v, _ := c.Get(keyAPIKey)
	k, _ := v.(*config.APIKey)
	return k
}

// Logger returns the request-scoped logger (with request_id), or the default logger.
func Logger(c *gin.Context) *slog.Logger {
	if st := stateOf(c); st != nil {
		return st.logger()
	}
	return slog.Default()
}

// RequestID returns the request's ID.
func RequestID(c *gin.Context) string {
	if st := stateOf(c); st != nil {
		return st.id
	}
	return ""
}

func stateOf(c *gin.Context) *requestState {
	v, _ := c.Get(keyLogger)
	st, _ := v.(*requestState)
	return st
}

// requestState is what [NewRequestLog] keeps for a request: its ID, its trace IDs and, built
// only when a handler asks for it, the request-scoped logger. Most requests log just the
// access line, which carries the same attributes directly, and slog's With pre-renders its
// attributes into a new handler on every call.
//
// It is recycled, with the gin.Context's Keys map, once the access line is written: gin
// recycles the Context itself at that point, so nothing may hold either past the request
// (gin.Context.Copy clones the map).
type requestState struct {
	keys map[any]any
	base *slog.Logger
	id   string
	sc   trace.SpanContext
	l    atomic.Pointer[slog.Logger]
}

var statePool = sync.Pool{New: func() any { return &requestState{keys: make(map[any]any, 4)} }}

func (st *requestState) attrs() []any {
	args := make([]any, 0, 3)
	args = append(args, slog.String("request_id", st.id))
	if st.sc.IsValid() {
		args = append(args, slog.String("trace_id", st.sc.TraceID().String()), slog.String("span_id", st.sc.SpanID().String()))
	}
	return args
}

func (st *requestState) logger() *slog.Logger {
	if l := st.l.Load(); l != nil {
		return l
	}
	l := st.base.With(st.attrs()...)
	if !st.l.CompareAndSwap(nil, l) {
		return st.l.Load()
	}
	return l
}

// headerRequestID is [HeaderRequestID] in net/http's canonical form, so that reading and
// setting it need no canonicalization (which allocates for this key).
var headerRequestID = http.CanonicalHeaderKey(HeaderRequestID)

// NewRecovery turns a panic into a 500 with the standard error body and logs it without the
// request body. A panic must never take the process down nor leak a stack to the client.
func NewRecovery(log *slog.Logger) gin.HandlerFunc {
	return gin.CustomRecoveryWithWriter(io.Discard, func(c *gin.Context, rec any) {
		log.Error("panic while handling a request", "request_id", RequestID(c), "path", c.FullPath(), "panic", fmt.Sprint(rec))
		if c.Writer.Written() {
			c.Abort()
			return
		}
		apierror.Abort(c, apierror.Internal("internal error"))
	})
}

// NewRequestLog assigns the request ID, then, after the handler, writes one JSON access-log
// line (never bodies, never the Authorization header) and the request metrics.
//
// When log's handler is the data plane's own (logbuf), the line is appended into a pooled
// buffer with the same bytes slog would write, skipping slog's per-attribute work.
func NewRequestLog(log *slog.Logger, m *metrics.Metrics) gin.HandlerFunc {
	lines, _ := log.Handler().(*logbuf.Handler)
	return func(c *gin.Context) {
		start := time.Now()
		var id string
		if v := c.Request.Header[headerRequestID]; len(v) > 0 {
			id = sanitizeRequestID(v[0])
		}
		if id == "" {
			id = newRequestID()
		}
		st := statePool.Get().(*requestState)
		st.base, st.id = log, id
		// The tracing middleware runs first: when it started a span, every line of this request
		// carries its IDs, so logs and traces join.
		st.sc = trace.SpanContextFromContext(c.Request.Context())
		pooled := c.Keys == nil
		if pooled {
			c.Keys = st.keys
		}
		c.Set(keyLogger, st)
		c.Writer.Header()[headerRequestID] = []string{id}

		c.Next()

		route := c.FullPath()
		if route == "" {
			route = "unmatched"
		}
		status := c.Writer.Status()
		now := time.Now()
		elapsed := now.Sub(start)
		code := ""
		for _, e := range c.Errors {
			var ae *apierror.Error
			if errors.As(e.Err, &ae) {
				code = ae.Code
			}
		}
		if m != nil {
			m.ObserveRequest(route, status, elapsed.Seconds())
			if code != "" {
				m.Errors.WithLabelValues(code).Inc()
			}
		}
		level := slog.LevelInfo
		if status >= 500 {
			level = slog.LevelError
		}
		durationMS := float64(elapsed.Microseconds()) / 1000
		var keyName string
		k := APIKey(c)
		if k != nil {
			keyName = k.Name
		}
		if lines != nil {
			// The same attributes, in the same order, as the slog call below.
			if l := lines.Line(now, level, "request"); l != nil {
				l.Str("request_id", id)
				if st.sc.IsValid() {
					tid, sid := st.sc.TraceID(), st.sc.SpanID()
					l.Hex("trace_id", tid[:])
					l.Hex("span_id", sid[:])
				}
				l.Str("method", c.Request.Method)
				l.Str("route", route)
				l.Int("status", int64(status))
				l.Float("duration_ms", durationMS)
				l.Int("bytes", int64(c.Writer.Size()))
				if code != "" {
					l.Str("error_code", code)
				}
				if k != nil {
					l.Str("api_key", keyName)
				}
				_ = l.Write()
			}
		} else if log.Enabled(c.Request.Context(), level) {
			attrs := make([]slog.Attr, 0, 10)
			attrs = append(attrs, slog.String("request_id", id))
			if st.sc.IsValid() {
				attrs = append(attrs, slog.String("trace_id", st.sc.TraceID().String()), slog.String("span_id", st.sc.SpanID().String()))
			}
			attrs = append(attrs,
				slog.String("method", c.Request.Method),
				slog.String("route", route),
				slog.Int("status", status),
				slog.Float64("duration_ms", durationMS),
				slog.Int("bytes", c.Writer.Size()),
			)
			if code != "" {
				attrs = append(attrs, slog.String("error_code", code))
			}
			if k != nil {
				attrs = append(attrs, slog.String("api_key", keyName))
			}
			log.LogAttrs(c.Request.Context(), level, "request", attrs...)
		}

		if pooled {
			// The outer middleware (tracing, recovery) and gin read no keys after this point on
			// the way out; a panic skips this, and the state is simply not reused.
			c.Keys = nil
			clear(st.keys)
			st.base, st.id, st.sc = nil, "", trace.SpanContext{}
			st.l.Store(nil)
			statePool.Put(st)
		}
	}
}

func sanitizeRequestID(s string) string {
	if len(s) == 0 || len(s) > 128 {
		return ""
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch < 0x21 || ch > 0x7e {
			return ""
		}
	}
	return s
}

// newRequestID returns 128 random bits in hex. They come from the runtime's per-thread
// ChaCha8 generator, seeded from the OS: unpredictable and unique enough for an ID, without
// a getrandom system call per request.
func newRequestID() string {
	var b [32]byte
	for i := 0; i < 2; i++ {
		v := rand.Uint64()
		for j := 0; j < 8; j++ {
			c := byte(v >> (8 * j))
			b[i*16+2*j], b[i*16+2*j+1] = hexDigits[c>>4], hexDigits[c&0xf]
		}
	}
	return string(b[:])
}

const hexDigits = "0123456789abcdef"

// NewBodyLimit refuses bodies over limit bytes with 413: at once when Content-Length says so,
// otherwise when a handler reads past the limit (see [IsBodyTooLarge]).
func NewBodyLimit(limit int64) gin.HandlerFunc {
	return func(c *gin.Context) {
		if c.Request.ContentLength > limit {
			apierror.Abort(c, TooLarge(limit))
			return
		}
		// net/http gives bodiless requests http.NoBody, which has nothing to limit.
		if c.Request.Body != nil && c.Request.Body != http.NoBody {
			c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, limit)
		}
		c.Next()
	}
}

// TooLarge is the 413 reply of a body over limit bytes.
func TooLarge(limit int64) *apierror.Error {
	return apierror.New(http.StatusRequestEntityTooLarge, apierror.TypeInvalidRequest, apierror.CodeBodyTooLarge,
		fmt.Sprintf("request body is larger than %d bytes", limit))
}

// IsBodyTooLarge reports whether err comes from reading past the body limit.
func IsBodyTooLarge(err error) (int64, bool) {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return mbe.Limit, true
	}
	return 0, false
}

// NewRuntime loads the current snapshot once and keeps it in the context for the whole request
// (stream included). Before the first load it answers 503 not_ready.
func NewRuntime(h *runtime.Holder) gin.HandlerFunc {
	return func(c *gin.Context) {
		rt := h.Load()
		if rt == nil {
			apierror.Abort(c, apierror.New(http.StatusServiceUnavailable, apierror.TypeUnavailable, apierror.CodeNotReady,
				"no configuration loaded yet"))
			return
		}
		c.Set(keyRuntime, rt)
		c.Next()
	}
}

// NewAuth requires "Authorization: Bearer <key>" matching a client key of the request's
// snapshot. Whether the key may act for the request's org is decided by the handler (see
// [Authorize]) because the org is in the body.
func NewAuth() gin.HandlerFunc { return NewAuthWithLimiter(nil) }

// NewAuthWithLimiter is [NewAuth] that also refuses, with 429, source addresses that sent too
// many invalid keys (see [BadKeyLimiter]); a nil limiter turns that off.
func NewAuthWithLimiter(bad *BadKeyLimiter) gin.HandlerFunc {
	return func(c *gin.Context) {
		// Finding the client address costs a parse per request; skip it while no address
		// has a bucket, which is all the time unless someone sends bad keys.
		if bad != nil && bad.active() {
			if wait := bad.retryAfter(c.ClientIP()); wait > 0 {
				apierror.Abort(c, tooManyBadKeys(wait))
				return
			}
		}
		rt := Runtime(c)
		h := c.GetHeader("Authorization")
		scheme, token, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
			apierror.Abort(c, apierror.Unauthorized("missing bearer API key (Authorization: Bearer <key>)"))
			return
		}
		if rt == nil {
			apierror.Abort(c, apierror.Unauthorized("no API keys are loaded"))
			return
		}
		k, ok := rt.Authenticate(strings.TrimSpace(token))
		if !ok {
			if bad != nil {
				bad.fail(c.ClientIP())
			}
			apierror.Abort(c, apierror.Unauthorized("invalid API key"))
			return
		}
		c.Set(keyAPIKey, k)
		c.Next()
	}
}

// Authorize decides whether key may act for org and returns the org the request acts for: an
// admin key, or an app key without an org list, acts for anyone; an app key with one org and
// no org in the request acts for that org; otherwise the org must be one of the key's.
func Authorize(key *config.APIKey, org string) (string, *apierror.Error) {
	if key == nil {
		return "", apierror.Unauthorized("missing API key")
	}
	if key.Role == config.RoleAdmin || len(key.Orgs) == 0 {
		return org, nil
	}
	if org == "" {
		if len(key.Orgs) == 1 {
			return key.Orgs[0], nil
		}
		return "", apierror.Forbidden("this API key acts for several orgs: name one (orgId or X-AI-Org)")
	}
	for _, o := range key.Orgs {
		if o == org {
			return org, nil
		}
	}
	return "", apierror.Forbidden("this API key may not act for org %q", org)
}
