package e2e

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The kill scenario's money: every call's worst case (and cost) is $0.001 and the user's daily
// budget is $0.0015, so exactly one call may be in flight; its reservation leaves $0.0005.
const (
	killBudgetNanos    = 1_500_000
	killRemainingNanos = killBudgetNanos - perRequestNanos
)

// killScenario is the state after a replica was SIGKILLed while its call was in flight.
type killScenario struct {
	c      *client
	b      *replica
	killed time.Time
}

// killMidRequest starts replicas A and B on one Redis (extra flags for both), sends A a call to a
// provider that answers after 3 s, waits until B sees A's reservation in /api/ai/usage, and
// SIGKILLs A while it waits for the provider.
func killMidRequest(t *testing.T, db int, extra ...string) *killScenario {
	t.Helper()
	dir := manifests(t, map[string]string{
		"keys.yaml":   apiKeys,
		"slow.yaml":   mockProvider("slow", 10, "3s", modelSpec{Name: "slow-model", In: "0", Out: "100"}),
		"fast.yaml":   mockProvider("fast", 10, "", modelSpec{Name: "fast-model", In: "0", Out: "100"}),
		"budget.yaml": userBudget("one-in-flight", "0.0015"),
	})
	rs := startReplicas(t, 2, replicaOptions{Manifests: dir, RedisURL: redisDB(t, db), Extra: extra})
	a, b := rs[0], rs[1]
	c := newClient()
	t.Cleanup(c.close)

	inFlight := make(chan chatReply, 1)
	go func() {
		inFlight <- c.chat(t.Context(), a.url, appKey, chatRequest{Model: "slow-model", Messages: userMessage("take your time"),
			UserID: "carol", OrgID: "acme", MaxTokens: 10})
	}()
	deadline := time.Now().Add(5 * time.Second)
	for remaining(t, c, b) != killRemainingNanos {
		require.True(t, time.Now().Before(deadline), "B never saw A's reservation")
		time.Sleep(10 * time.Millisecond) // polling the usage API for the reservation, not synchronisation
	}
	a.sigkill()
	killed := time.Now()
	rep := <-inFlight
	require.Error(t, rep.TransportEr, "A's caller loses its connection when A dies (got %d %s)", rep.Status, rep.Body)
	return &killScenario{c: c, b: b, killed: killed}
}

// remaining is carol's remaining daily budget as replica r reports it (limit − spent − reserved).
func remaining(t *testing.T, c *client, r *replica) int64 {
	t.Helper()
	var u usageReply
	c.getJSON(t, r.url, adminKey, "/api/ai/usage?"+url.Values{"userId": {"carol"}, "orgId": {"acme"}, "window": {"1d"}}.Encode(), &u)
	require.Len(t, u.Budgets, 1)
	return mustNanos(t, u.Budgets[0].Remaining)
}

// spent is carol's settled daily spend as replica r reports it.
func spent(t *testing.T, c *client, r *replica) int64 {
	t.Helper()
	var u usageReply
	c.getJSON(t, r.url, adminKey, "/api/ai/usage?"+url.Values{"userId": {"carol"}, "orgId": {"acme"}, "window": {"1d"}}.Encode(), &u)
	require.Len(t, u.Budgets, 1)
	return mustNanos(t, u.Budgets[0].Spent)
}

// fastCall asks B for a call that could only fit if A's reservation were gone.
func (k *killScenario) fastCall(t *testing.T) chatReply {
	t.Helper()
	rep := k.c.chat(t.Context(), k.b.url, appKey, chatRequest{Model: "fast-model", Messages: userMessage("my turn"),
		UserID: "carol", OrgID: "acme", MaxTokens: 10})
	require.NoError(t, rep.TransportEr)
	return rep
}

// TestAKilledReplicasReservationKeepsGuardingTheBudget proves the first half of the crash
// behaviour with the data plane's default reservation TTL (10 min): after replica A dies holding a
// reservation, replica B still counts it, so the budget is not overspent by a crash. The release
// after the TTL is TestAKilledReplicasReservationExpiresAndFreesTheBudget (--reservation-ttl 4s).
func TestAKilledReplicasReservationKeepsGuardingTheBudget(t *testing.T) {
	k := killMidRequest(t, 5)

	rep := k.fastCall(t)
	require.Equal(t, http.StatusPaymentRequired, rep.Status, "B refuses while A's reservation lives: %s", rep.Body)
	require.Equal(t, "budget_exceeded", rep.ErrCode)
	left := remaining(t, k.c, k.b)
	settled := spent(t, k.c, k.b)
	t.Logf("A SIGKILLed mid-call holding $0.001 of carol's $0.0015: B answers 402 budget_exceeded; B reports spent=%s remaining=%s",
		usd(settled), usd(left))
	require.Equal(t, int64(killRemainingNanos), left, "the dead replica's reservation still counts")
	require.Equal(t, int64(0), settled, "nothing was billed: the provider never answered A")
}

// killTTL is the reservation TTL the replicas run with. It must outlive the slow call (3 s) so that
// a live reservation is never freed early — here only the dead replica's is.
const killTTL = 4 * time.Second

// TestAKilledReplicasReservationExpiresAndFreesTheBudget runs the replicas with
// `--reservation-ttl 4s` (governor.Options.ReservationTTL, default 10m): the reservation of a
// replica SIGKILLed mid-call holds the budget until it expires, then the budget is free again.
func TestAKilledReplicasReservationExpiresAndFreesTheBudget(t *testing.T) {
	k := killMidRequest(t, 6, "--reservation-ttl", killTTL.String())

	rep := k.fastCall(t)
	require.Equal(t, http.StatusPaymentRequired, rep.Status, "B refuses while A's reservation lives: %s", rep.Body)
	require.Equal(t, "budget_exceeded", rep.ErrCode)

	deadline := k.killed.Add(killTTL + 2*time.Second)
	for remaining(t, k.c, k.b) != killBudgetNanos {
		require.True(t, time.Now().Before(deadline), "A's reservation outlived its TTL (%v)", killTTL)
		time.Sleep(50 * time.Millisecond) // polling the usage API for the expiry, not synchronisation
	}
	released := time.Since(k.killed)
	rep = k.fastCall(t)
	require.Equal(t, http.StatusOK, rep.Status, "B serves once the reservation expired: %s", rep.Body)
	require.Equal(t, int64(perRequestNanos), rep.Cost)
	t.Logf("A SIGKILLed mid-call: B refused (402) until the reservation expired %v after the kill (TTL %v from admission), then served at %s; spent=%s",
		released.Round(time.Millisecond), killTTL, usd(rep.Cost), usd(spent(t, k.c, k.b)))
	require.Equal(t, int64(perRequestNanos), spent(t, k.c, k.b), "only B's call was billed")
}
