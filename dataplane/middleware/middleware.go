// Package middleware holds the data plane's Gin middleware, in the order the server installs
// them: [NewRecovery], [NewRequestLog] (request ID, access log, request metrics), [NewBodyLimit],
// [NewRuntime] (one snapshot per request) and [NewAuth]. Route resolution, limits, budgets,
// guardrails, cache and the provider call run inside the handlers' service calls, in that order,
// because each needs what the handler has bound from the body.
package middleware

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/trace"

	"github.com/nself-org/ai-orchestration/dataplane/apierror"
	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/metrics"
	"github.com/nself-org/ai-orchestration/dataplane/runtime"
)

// Context keys; unexported types so no other package can collide with them.
type ctxKey int

const (
	keyRuntime ctxKey = iota
	keyAPIKey
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
	if v, ok := c.Get(keyLogger); ok {
		if l, ok := v.(*requestLogger); ok {
			return l.get()
		}
	}
	return slog.Default()
}

// requestLogger builds the request-scoped logger only when a handler asks for it: most requests
// log just the access line, which carries the same attributes directly, and slog's With
// pre-renders its attributes into a new handler on every call.
type requestLogger struct {
	base  *slog.Logger
	attrs []slog.Attr
	once  sync.Once
	l     *slog.Logger
}

func (r *requestLogger) get() *slog.Logger {
	r.once.Do(func() {
		args := make([]any, len(r.attrs))
		for i, a := range r.attrs {
			args[i] = a
		}
		r.l = r.base.With(args...)
	})
	return r.l
}

// RequestID returns the request's ID.
func RequestID(c *gin.Context) string { return c.GetString(keyRequestIDString) }

const keyRequestIDString = "aigw.requestID" // a string: gin.Context.GetString reads it

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
func NewRequestLog(log *slog.Logger, m *metrics.Metrics) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		id := sanitizeRequestID(c.GetHeader(HeaderRequestID))
		if id == "" {
			id = newRequestID()
		}
		c.Set(keyRequestIDString, id)
		c.Header(HeaderRequestID, id)
		rl := &requestLogger{base: log, attrs: make([]slog.Attr, 1, 10)}
		rl.attrs[0] = slog.String("request_id", id)
		// The tracing middleware runs first: when it started a span, every line of this request
		// carries its IDs, so logs and traces join.
		if sc := trace.SpanContextFromContext(c.Request.Context()); sc.IsValid() {
			rl.attrs = append(rl.attrs, slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
		}
		c.Set(keyLogger, rl)

		c.Next()

		route := c.FullPath()
		if route == "" {
			route = "unmatched"
		}
		status := c.Writer.Status()
		elapsed := time.Since(start)
		code := ""
		for _, e := range c.Errors {
			var ae *apierror.Error
			if errors.As(e.Err, &ae) {
				code = ae.Code
			}
		}
		if m != nil {
			m.Requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
			m.Latency.WithLabelValues(route).Observe(elapsed.Seconds())
			if code != "" {
				m.Errors.WithLabelValues(code).Inc()
			}
		}
		level := slog.LevelInfo
		if status >= 500 {
			level = slog.LevelError
		}
		// The request's own attributes first, as the request-scoped logger has them; the slice
		// has room for the rest, so the line costs no extra allocation for its attributes.
		attrs := append(rl.attrs[:len(rl.attrs):cap(rl.attrs)],
			slog.String("method", c.Request.Method),
			slog.String("route", route),
			slog.Int("status", status),
			slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
			slog.Int("bytes", c.Writer.Size()),
		)
		if code != "" {
			attrs = append(attrs, slog.String("error_code", code))
		}
		if k := APIKey(c); k != nil {
			attrs = append(attrs, slog.String("api_key", k.Name))
		}
		log.LogAttrs(c.Request.Context(), level, "request", attrs...)
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

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// NewBodyLimit refuses bodies over limit bytes with 413: at once when Content-Length says so,
// otherwise when a handler reads past the limit (see [IsBodyTooLarge]).
func NewBodyLimit(limit int64) gin.HandlerFunc {
	return func(c *gin.Context) {
		if c.Request.ContentLength > limit {
			apierror.Abort(c, TooLarge(limit))
			return
		}
		if c.Request.Body != nil {
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
		if bad != nil {
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
