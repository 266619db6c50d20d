package e2e

import (
	"fmt"
	"net/http"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// rateLimitCase is one flood of 1 000 requests for one user against a per-user limit of 100.
type rateLimitCase struct {
	algorithm string
	window    string
	failMode  string
	// maxRetryAfter is the longest correct Retry-After: the window for a sliding log, one
	// refill interval (window/100) for a bucket.
	maxRetryAfter int
	redisDB       int
	// inFlight bounds the requests in flight at once; 0 sends all 1 000 at once.
	inFlight int
}

// rateLimitOutcome counts how the flood was answered.
type rateLimitOutcome struct {
	served, limited int
	servedBy        []int
	// other counts every other answer by "status code" (e.g. "503 store_unavailable").
	other        map[string]int
	minRA, maxRA int
	// remaining is the set of X-RateLimit-Remaining values of served replies; badHeaders describes
	// the first reply whose X-RateLimit-Limit was not 100.
	remaining  map[string]bool
	badHeaders string
	// badRetryAfter describes the first 429 whose Retry-After was not integer seconds in
	// 1..maxRetryAfter.
	badRetryAfter string
}

// floodRateLimit runs tc against three replicas on one Redis and counts the answers.
func floodRateLimit(t *testing.T, tc rateLimitCase) rateLimitOutcome {
	t.Helper()
	dir := manifests(t, map[string]string{
		"keys.yaml":     apiKeys,
		"provider.yaml": mockProvider("mock", 5, "", modelSpec{Name: "rl-model", In: "0.15", Out: "0.60"}),
		"route.yaml":    rateLimitedRoute("limited", "limited", "mock", "rl-model", tc.algorithm, 100, tc.window, tc.failMode),
	})
	rs := startReplicas(t, 3, replicaOptions{Manifests: dir, RedisURL: redisDB(t, tc.redisDB)})
	c := newClient()
	defer c.close()
	warmUp(t, c, rs, "limited")

	const n = 1000
	reqs := make([]chatRequest, n)
	for i := range reqs {
		reqs[i] = chatRequest{Model: "limited", Messages: userMessage(fmt.Sprintf("hello %d", i)), UserID: "bob", OrgID: "acme"}
	}
	replies := floodBounded(t.Context(), c, reqs, appKey, func(i int) string { return rs[i%len(rs)].url }, tc.inFlight)
	require.NoError(t, firstTransportError(replies))

	out := rateLimitOutcome{servedBy: make([]int, len(rs)), other: map[string]int{}, minRA: 1 << 30, remaining: map[string]bool{}}
	for i, r := range replies {
		if (r.Status == http.StatusOK || r.Status == http.StatusTooManyRequests) && r.RateLimit != "100" && out.badHeaders == "" {
			out.badHeaders = fmt.Sprintf("request %d (%d): X-RateLimit-Limit %q", i, r.Status, r.RateLimit)
		}
		switch r.Status {
		case http.StatusOK:
			out.remaining[r.RateRemaining] = true
			out.served++
			out.servedBy[i%len(rs)]++
		case http.StatusTooManyRequests:
			out.limited++
			ra, err := strconv.Atoi(r.RetryAfter)
			if (err != nil || ra <= 0 || ra > tc.maxRetryAfter || r.ErrCode != "rate_limited") && out.badRetryAfter == "" {
				out.badRetryAfter = fmt.Sprintf("request %d: Retry-After %q, body %s", i, r.RetryAfter, r.Body)
			}
			if err == nil {
				out.minRA, out.maxRA = min(out.minRA, ra), max(out.maxRA, ra)
			}
		default:
			out.other[fmt.Sprintf("%d %s", r.Status, r.ErrCode)]++
		}
	}
	t.Logf("%s (failMode %s, %s): %d requests for one user over 3 replicas: %d served (per replica %v), %d × 429 rate_limited (Retry-After %d..%d s), other %v",
		tc.algorithm, tc.failMode, inFlightLabel(tc.inFlight), n, out.served, out.servedBy, out.limited, out.minRA, out.maxRA, out.other)
	return out
}

func inFlightLabel(n int) string {
	if n == 0 {
		return "all in parallel"
	}
	return fmt.Sprintf("%d in flight", n)
}

// TestRateLimitIsExactAcrossReplicas sends 1 000 requests for one user, 30 in flight at a time
// (10 per replica), against a limit of 100. All 1 000 at once is
// TestRateLimitHoldsWhenAThousandRequestsArriveAtOnce (ratelimit_flood_test.go).
func TestRateLimitIsExactAcrossReplicas(t *testing.T) {
	cases := map[string]rateLimitCase{
		"a sliding window of 100 a minute serves exactly 100 of 1000": {algorithm: "sliding-window", window: "1m",
			failMode: "closed", maxRetryAfter: 60, redisDB: 2, inFlight: 30},
		// A bucket of 100 a minute refills one request every 0.6 s, so a flood lasting longer
		// than that is rightly served more than 100; 100 an hour (one every 36 s) keeps the
		// expected figure exact whatever the machine's speed.
		"a token bucket of 100 an hour serves exactly 100 of 1000": {algorithm: "token-bucket", window: "1h",
			failMode: "closed", maxRetryAfter: 36, redisDB: 3, inFlight: 30},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			out := floodRateLimit(t, tc)
			require.Empty(t, out.other, "every request is served or refused by the limit")
			require.Empty(t, out.badRetryAfter, "every 429 says rate_limited with Retry-After in 1..%d s", tc.maxRetryAfter)
			require.Equal(t, 100, out.served)
			require.Equal(t, 900, out.limited)
			require.Empty(t, out.badHeaders, "every reply says X-RateLimit-Limit: 100")
			// Admissions are decided one at a time in Redis, so the 100 served replies carry each
			// remaining count from 99 down to 0 exactly once.
			want := map[string]bool{}
			for i := range 100 {
				want[strconv.Itoa(i)] = true
			}
			require.Equal(t, want, out.remaining, "X-RateLimit-Remaining of the served replies")
			for i, s := range out.servedBy {
				require.Positive(t, s, "replica %d served part of the limit", i)
			}
		})
	}
}
