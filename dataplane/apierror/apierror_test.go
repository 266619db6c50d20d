package apierror_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/apierror"
	"github.com/nself-org/ai-orchestration/dataplane/governor"
	"github.com/nself-org/ai-orchestration/dataplane/providers"
)

func TestFromMapsEveryFailureToTheContractStatusAndCode(t *testing.T) {
	pe := func(k providers.ErrorKind) error {
		return fmt.Errorf("failed to call: %w", &providers.Error{Kind: k, Provider: "ns/p", Message: "m"})
	}
	cases := map[string]struct {
		err    error
		status int
		code   string
		retry  time.Duration
	}{
		"a budget denial is 402": {&governor.DeniedError{Kind: governor.DeniedByBudget, Name: "ns/b", Period: "daily", RetryAfter: time.Hour},
			402, "budget_exceeded", time.Hour},
		"a rate-limit denial is 429 with a retry": {&governor.DeniedError{Kind: governor.DeniedByRateLimit, Name: "l", RetryAfter: 3 * time.Second},
			429, "rate_limited", 3 * time.Second},
		"a rate-limit denial without a hint still says when": {&governor.DeniedError{Kind: governor.DeniedByRateLimit, Name: "l"},
			429, "rate_limited", time.Second},
		"a provider timeout is 504":        {pe(providers.KindTimeout), 504, "provider_timeout", 0},
		"a provider 5xx is 502":            {pe(providers.KindServer), 502, "provider_error", 0},
		"a provider auth failure is 502":   {pe(providers.KindAuth), 502, "provider_error", 0},
		"malformed upstream output is 502": {pe(providers.KindMalformed), 502, "provider_error", 0},
		"an upstream 429 is 503":           {pe(providers.KindRateLimited), 503, "no_usable_provider", 0},
		"a refused connection is 503":      {pe(providers.KindConnection), 503, "no_usable_provider", 0},
		"an unsupported call is 400":       {pe(providers.KindUnsupported), 400, "invalid_request", 0},
		"a deadline is 504":                {context.DeadlineExceeded, 504, "provider_timeout", 0},
		"an unreachable store is 503":      {fmt.Errorf("x: %w", governor.ErrStoreUnavailable), 503, "store_unavailable", 0},
		"a missing identity is 400":        {governor.ErrIdentityRequired, 400, "invalid_request", 0},
		"anything else is 500":             {errors.New("boom"), 500, "internal_error", 0},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			e := apierror.From(tc.err)
			require.Equal(t, tc.status, e.Status)
			require.Equal(t, tc.code, e.Code)
			require.Equal(t, tc.retry, e.RetryAfter)
			require.NotEmpty(t, e.Type)
			require.NotEmpty(t, e.Message)
		})
	}
	require.Nil(t, apierror.From(nil))
	require.Equal(t, http.StatusNotFound, apierror.From(apierror.ModelNotFound("m")).Status)
}

// TestSetRateLimitHeadersWritesWhatHeaderSetWould holds SetRateLimitHeaders, which writes the
// three values as substrings of one string under pre-canonicalized keys, to Header.Set with
// strconv.FormatInt, in two allocations.
func TestSetRateLimitHeadersWritesWhatHeaderSetWould(t *testing.T) {
	for _, rl := range []governor.RateLimitState{
		{Name: "per-user", Limit: 60, Remaining: 59, Reset: 1500 * time.Millisecond},
		{Limit: 1 << 40, Remaining: 1<<40 - 1, Reset: time.Minute},
		{Limit: 1<<63 - 1, Remaining: -1<<63 + 0, Reset: 1<<63 - 1},
		{Limit: 5, Remaining: -3, Reset: 0},
		{Limit: 1, Remaining: 0, Reset: time.Nanosecond},
		{Limit: 0, Remaining: 10, Reset: time.Second},
		{Limit: -1, Remaining: 10, Reset: time.Second},
	} {
		c, _ := gin.CreateTestContext(httptest.NewRecorder())
		apierror.SetRateLimitHeaders(c, rl)
		want := http.Header{}
		if rl.Limit > 0 {
			want.Set("X-RateLimit-Limit", strconv.FormatInt(rl.Limit, 10))
			want.Set("X-RateLimit-Remaining", strconv.FormatInt(max(rl.Remaining, 0), 10))
			want.Set("X-RateLimit-Reset", strconv.FormatInt(int64((rl.Reset+time.Second-1)/time.Second), 10))
		}
		require.Equal(t, want, c.Writer.Header(), "%+v", rl)
	}
	c, _ := gin.CreateTestContext(httptest.NewRecorder())
	rl := governor.RateLimitState{Limit: 1 << 40, Remaining: 1 << 39, Reset: time.Minute}
	allocs := testing.AllocsPerRun(100, func() {
		clear(c.Writer.Header())
		apierror.SetRateLimitHeaders(c, rl)
	})
	require.LessOrEqual(t, allocs, 2.0)
}
