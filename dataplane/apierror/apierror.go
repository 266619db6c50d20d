// Package apierror is the data plane's one error body: every refusal, from auth to a provider
// failure, leaves the gateway as {"error":{"type","code","message"}} with the contract's status,
// so that clients (and the OpenAI SDKs, which read the same shape) can branch on a stable code.
package apierror

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/nself-org/ai-orchestration/dataplane/governor"
	"github.com/nself-org/ai-orchestration/dataplane/providers"
)

// Stable error codes of the HTTP contract.
const (
	CodeInvalidRequest   = "invalid_request"
	CodeBodyTooLarge     = "request_too_large"
	CodeUnauthorized     = "invalid_api_key"
	CodeForbidden        = "forbidden"
	CodeBudgetExceeded   = "budget_exceeded"
	CodeRateLimited      = "rate_limited"
	CodeModelNotFound    = "model_not_found"
	CodeNotFound         = "not_found"
	CodeContentBlocked   = "content_blocked"
	CodeProviderError    = "provider_error"
	CodeNoProvider       = "no_usable_provider"
	CodeTimeout          = "provider_timeout"
	CodeNotReady         = "not_ready"
	CodeInternal         = "internal_error"
	CodeStoreUnavailable = "store_unavailable"
)

// Error types, following OpenAI's naming so that its SDKs show something sensible.
const (
	TypeInvalidRequest = "invalid_request_error"
	TypeAuthentication = "authentication_error"
	TypePermission     = "permission_error"
	TypeBudget         = "insufficient_quota"
	TypeRateLimit      = "rate_limit_error"
	TypeNotFound       = "not_found_error"
	TypeContentPolicy  = "content_policy_violation"
	TypeProvider       = "api_error"
	TypeUnavailable    = "service_unavailable"
	TypeTimeout        = "timeout_error"
	TypeServer         = "server_error"
)

// Error is an HTTP-ready failure.
type Error struct {
	Status  int
	Type    string
	Code    string
	Message string
	// RetryAfter becomes the Retry-After header when positive.
	RetryAfter time.Duration
	// RateLimit, when set, becomes the X-RateLimit-* headers.
	RateLimit *governor.RateLimitState
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

// Body is the JSON shape of an error reply.
type Body struct {
	Error BodyError `json:"error"`
}

// BodyError is the inner object of [Body].
type BodyError struct {
	Type    string `json:"type"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// New returns an Error with the given status, type, code and message.
func New(status int, typ, code, msg string) *Error {
	return &Error{Status: status, Type: typ, Code: code, Message: msg}
}

// BadRequest is a 400 invalid_request.
func BadRequest(format string, a ...any) *Error {
	return New(http.StatusBadRequest, TypeInvalidRequest, CodeInvalidRequest, fmt.Sprintf(format, a...))
}

// Unauthorized is a 401: no key, or a key the snapshot does not know.
func Unauthorized(msg string) *Error {
	return New(http.StatusUnauthorized, TypeAuthentication, CodeUnauthorized, msg)
}

// Forbidden is a 403: the key may not act for that user or org.
func Forbidden(format string, a ...any) *Error {
	return New(http.StatusForbidden, TypePermission, CodeForbidden, fmt.Sprintf(format, a...))
}

// ModelNotFound is a 404 model_not_found.
func ModelNotFound(model string) *Error {
	return New(http.StatusNotFound, TypeNotFound, CodeModelNotFound, fmt.Sprintf("model %q is not served by any provider or route", model))
}

// ContentBlocked is a 422 content_blocked by a guardrail.
func ContentBlocked(msg string) *Error {
	return New(http.StatusUnprocessableEntity, TypeContentPolicy, CodeContentBlocked, msg)
}

// NoProvider is a 503: no target could take the request.
func NoProvider(msg string) *Error {
	return New(http.StatusServiceUnavailable, TypeUnavailable, CodeNoProvider, msg)
}

// Internal is a 500; msg must not carry prompt text or keys.
func Internal(msg string) *Error {
	return New(http.StatusInternalServerError, TypeServer, CodeInternal, msg)
}

// From maps any error of the request path to an [*Error]: governor denials (402/429), provider
// failures (502/503/504), client cancellation and timeouts. Unknown errors become 500.
func From(err error) *Error {
	if err == nil {
		return nil
	}
	var ae *Error
	if errors.As(err, &ae) {
		return ae
	}
	var de *governor.DeniedError
	if errors.As(err, &de) {
		if de.Kind == governor.DeniedByBudget {
			e := New(http.StatusPaymentRequired, TypeBudget, CodeBudgetExceeded, de.Error())
			e.RetryAfter = de.RetryAfter
			return e
		}
		e := New(http.StatusTooManyRequests, TypeRateLimit, CodeRateLimited, de.Error())
		e.RetryAfter = de.RetryAfter
		if e.RetryAfter <= 0 {
			e.RetryAfter = time.Second
		}
		rl := de.RateLimit
		e.RateLimit = &rl
		return e
	}
	if errors.Is(err, governor.ErrIdentityRequired) {
		return BadRequest("the request needs a user id (userId, or user / X-AI-User on /v1)")
	}
	if errors.Is(err, governor.ErrStoreUnavailable) {
		return New(http.StatusServiceUnavailable, TypeUnavailable, CodeStoreUnavailable, "the limit store is unavailable")
	}
	if pe, ok := providers.AsError(err); ok {
		switch pe.Kind {
		case providers.KindTimeout:
			return New(http.StatusGatewayTimeout, TypeTimeout, CodeTimeout, pe.Error())
		case providers.KindRateLimited, providers.KindConnection:
			e := New(http.StatusServiceUnavailable, TypeUnavailable, CodeNoProvider, pe.Error())
			e.RetryAfter = pe.RetryAfter
			return e
		case providers.KindNotFound:
			return New(http.StatusBadGateway, TypeProvider, CodeProviderError, pe.Error())
		case providers.KindUnsupported:
			return New(http.StatusBadRequest, TypeInvalidRequest, CodeInvalidRequest, pe.Error())
		default:
			return New(http.StatusBadGateway, TypeProvider, CodeProviderError, pe.Error())
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return New(http.StatusGatewayTimeout, TypeTimeout, CodeTimeout, "the provider did not answer in time")
	}
	if errors.Is(err, context.Canceled) {
		// 499 is nginx's "client closed request": nobody reads it, but logs and metrics should
		// not count a hang-up as a server error.
		return New(499, TypeInvalidRequest, "client_closed_request", "the client closed the request")
	}
	return Internal("internal error")
}

// Abort writes e as the reply (with Retry-After and rate-limit headers) and stops the chain.
func Abort(c *gin.Context, e *Error) {
	SetHeaders(c, e)
	_ = c.Error(e)
	c.AbortWithStatusJSON(e.Status, Body{Error: BodyError{Type: e.Type, Code: e.Code, Message: e.Message}})
}

// AbortErr is Abort(c, From(err)).
func AbortErr(c *gin.Context, err error) { Abort(c, From(err)) }

// SetHeaders writes Retry-After and X-RateLimit-* for e without writing a body (used before an
// error is sent inside an already started stream as well).
func SetHeaders(c *gin.Context, e *Error) {
	if e.RetryAfter > 0 {
		secs := int64((e.RetryAfter + time.Second - 1) / time.Second)
		c.Header("Retry-After", strconv.FormatInt(secs, 10))
	}
	if e.RateLimit != nil && e.RateLimit.Limit > 0 {
		SetRateLimitHeaders(c, *e.RateLimit)
	}
}

// SetRateLimitHeaders writes X-RateLimit-Limit/Remaining/Reset (seconds until reset). It runs on
// every served request, so the three values share one string and their three one-element
// slices one backing array: two allocations instead of up to six.
func SetRateLimitHeaders(c *gin.Context, rl governor.RateLimitState) {
	if rl.Limit <= 0 {
		return
	}
	var buf [3 * 20]byte // three int64s in decimal
	b := strconv.AppendInt(buf[:0], rl.Limit, 10)
	i := len(b)
	b = strconv.AppendInt(b, max(rl.Remaining, 0), 10)
	j := len(b)
	b = strconv.AppendInt(b, int64((rl.Reset+time.Second-1)/time.Second), 10)
	s := string(b)
	v := make([]string, 3)
	v[0], v[1], v[2] = s[:i], s[i:j], s[j:]
	h := c.Writer.Header()
	h[headerRateLimitLimit] = v[0:1:1]
	h[headerRateLimitRemaining] = v[1:2:2]
	h[headerRateLimitReset] = v[2:3:3]
}

// The rate-limit header names in canonical form, computed once: Header.Set would canonicalise
// these mixed-case names into a new string on every request.
var (
	headerRateLimitLimit     = http.CanonicalHeaderKey("X-RateLimit-Limit")
	headerRateLimitRemaining = http.CanonicalHeaderKey("X-RateLimit-Remaining")
	headerRateLimitReset     = http.CanonicalHeaderKey("X-RateLimit-Reset")
)
