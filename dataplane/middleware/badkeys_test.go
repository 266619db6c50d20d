package middleware

import (
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/metrics"
	"github.com/nself-org/ai-orchestration/dataplane/providers"
	"github.com/nself-org/ai-orchestration/dataplane/runtime"
)

func TestBadKeyLimiterRefusesAnAddressThatGuessesTooOften(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := NewBadKeyLimiter(3, 2*time.Second, func() time.Time { return now })

	for range 3 {
		require.Zero(t, l.retryAfter("10.0.0.1"), "the first failures are let through")
		l.fail("10.0.0.1")
	}
	require.Equal(t, 2*time.Second, l.retryAfter("10.0.0.1"), "an empty bucket waits one refill")
	require.Zero(t, l.retryAfter("10.0.0.2"), "other addresses are not affected")

	now = now.Add(time.Second)
	require.Equal(t, time.Second, l.retryAfter("10.0.0.1"))
	now = now.Add(time.Second)
	require.Zero(t, l.retryAfter("10.0.0.1"), "one attempt refilled")
	l.fail("10.0.0.1")
	require.Positive(t, l.retryAfter("10.0.0.1"))

	now = now.Add(10 * time.Minute)
	l.fail("10.0.0.3")
	l.mu.Lock()
	_, kept := l.buckets["10.0.0.1"]
	l.mu.Unlock()
	require.False(t, kept, "refilled buckets are swept")
}

func TestAuthAnswers429OnceAnAddressSpentItsBadKeys(t *testing.T) {
	gin.SetMode(gin.TestMode)
	e := gin.New()
	l := NewBadKeyLimiter(2, time.Minute, nil)
	holder := runtime.NewHolder(runtime.Options{NewProvider: providers.New, HTTPClient: http.DefaultClient}, metrics.New(), slog.New(slog.DiscardHandler))
	snap := &config.Snapshot{APIKeys: []config.APIKey{{Name: "ns/k", SHA256: hex.EncodeToString(sum("good-key")), Role: config.RoleAdmin}}}
	require.NoError(t, snap.Seal())
	require.NoError(t, holder.Apply(snap))
	e.GET("/x", NewRuntime(holder), NewAuthWithLimiter(l), func(c *gin.Context) { c.Status(http.StatusOK) })
	do := func(key string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "/x", nil)
		req.RemoteAddr = "192.0.2.7:1234"
		req.Header.Set("Authorization", "Bearer "+key)
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		return rec
	}
	require.Equal(t, http.StatusOK, do("good-key").Code)
	require.Equal(t, http.StatusUnauthorized, do("wrong-1").Code)
	require.Equal(t, http.StatusUnauthorized, do("wrong-2").Code)
	rec := do("wrong-3")
	require.Equal(t, http.StatusTooManyRequests, rec.Code)
	require.Equal(t, "60", rec.Header().Get("Retry-After"))
	require.Contains(t, rec.Body.String(), `"code":"rate_limited"`)
	require.Equal(t, http.StatusTooManyRequests, do("good-key").Code, "the address waits, whatever key it sends next")
}

func sum(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

func TestBadKeyLimiterIsInactiveUntilABadKeyAndAfterItsBucketRefilled(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := NewBadKeyLimiter(2, time.Second, func() time.Time { return now })
	require.False(t, l.active(), "no bad key yet: auth skips the address lookup")
	l.fail("10.0.0.1")
	require.True(t, l.active())
	l.fail("10.0.0.1")
	require.Equal(t, time.Second, l.retryAfter("10.0.0.1"))

	now = now.Add(2 * time.Minute)
	require.Zero(t, l.retryAfter("10.0.0.9"), "any lookup sweeps refilled buckets once a minute")
	require.False(t, l.active())
}
