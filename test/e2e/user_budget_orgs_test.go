package e2e

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestAUserBudgetHoldsAcrossTheOrgsTheUserActsIn: an AIBudget of scope user, subject "*", gives each
// user $0.002 a day (two $0.001 calls). The governor keys user budgets by the user alone (hash tag
// {u:<user>}), so the same userId sent with another orgId gets no fresh budget: an app key allowed
// for any org cannot spend N × the user's budget.
func TestAUserBudgetHoldsAcrossTheOrgsTheUserActsIn(t *testing.T) {
	dir := manifests(t, map[string]string{
		"keys.yaml":     apiKeys,
		"provider.yaml": mockProvider("mock", 10, "", modelSpec{Name: "exact-model", In: "0", Out: "100"}),
		"budget.yaml":   userBudget("two-calls", "0.002"),
	})
	rs := startReplicas(t, 1, replicaOptions{Manifests: dir, RedisURL: redisDB(t, 12)})
	c := newClient()
	defer c.close()
	call := func(org string) chatReply {
		r := c.chat(t.Context(), rs[0].url, appKey, chatRequest{Model: "exact-model", Messages: userMessage("hi"),
			UserID: "dave", OrgID: org, MaxTokens: 10})
		require.NoError(t, r.TransportEr)
		return r
	}
	var statuses []int
	for i := range 4 {
		statuses = append(statuses, call(fmt.Sprintf("org-%d", i%2)).Status)
	}
	t.Logf("dave, $0.002/day, four $0.001 calls alternating org-0/org-1: %v", statuses)
	require.Equal(t, []int{http.StatusOK, http.StatusOK, http.StatusPaymentRequired, http.StatusPaymentRequired}, statuses)
}
