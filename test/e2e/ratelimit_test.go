package e2e

import (
	"fmt"
	"net/http"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRateLimitIsExactAcrossReplicas(t *testing.T) {
	cases := map[string]struct {
		algorithm string
		window    string
		// maxRetryAfter is the longest correct Retry-After: the window for a sliding log, one
		// refill interval (window/100) for a bucket.
		maxRetryAfter int
		redisDB       int
	}{
		"a sliding window of 100 a minute serves exactly 100 of 1000": {algorithm: "sliding-window", window: "1m", maxRetryAfter: 60, redisDB: 2},
		// A bucket of 100 a minute refills one request every 0.6 s, so a flood lasting longer
		// than that is rightly served more than 100; 100 an hour (one every 36 s) keeps the
		// expected figure exact whatever the machine's speed.
		"a token bucket of 100 an hour serves exactly 100 of 1000": {algorithm: "token-bucket", window: "1h", maxRetryAfter: 36, redisDB: 3},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			dir := manifests(t, map[string]string{
				"keys.yaml":     apiKeys,
				"provider.yaml": mockProvider("mock", 5, "", modelSpec{Name: "rl-model", In: "0.15", Out: "0.60"}),
				"route.yaml":    rateLimitedRoute("limited", "limited", "mock", "rl-model", tc.algorithm, 100, tc.window, "closed"),
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
			replies := flood(t.Context(), c, reqs, appKey, func(i int) string { return rs[i%len(rs)].url })
			require.NoError(t, firstTransportError(replies))

			served, limited := 0, 0
			servedBy := make([]int, len(rs))
			minRA, maxRA := 1<<30, 0
			for i, r := range replies {
				switch r.Status {
				case http.StatusOK:
					served++
					servedBy[i%len(rs)]++
				case http.StatusTooManyRequests:
					limited++
					require.Equal(t, "rate_limited", r.ErrCode, "request %d: %s", i, r.Body)
					ra, err := strconv.Atoi(r.RetryAfter)
					require.NoError(t, err, "request %d: Retry-After %q is not integer seconds", i, r.RetryAfter)
					require.Greater(t, ra, 0, "request %d: Retry-After", i)
					require.LessOrEqual(t, ra, tc.maxRetryAfter, "request %d: Retry-After", i)
					minRA, maxRA = min(minRA, ra), max(maxRA, ra)
				default:
					t.Fatalf("request %d: unexpected %d %s", i, r.Status, r.Body)
				}
			}
			t.Logf("%s: %d requests for one user over 3 replicas: %d served (per replica %v), %d × 429 rate_limited, Retry-After %d..%d s",
				tc.algorithm, n, served, servedBy, limited, minRA, maxRA)
			require.Equal(t, 100, served)
			require.Equal(t, 900, limited)
		})
	}
}
