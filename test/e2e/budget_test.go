package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"
)

// Every request costs exactly $0.001: input is free, output is $100 per million tokens, the mock
// reports 10 completion tokens and the request asks for maxTokens 10, so the reserved worst case
// equals the settled cost. A $0.05 daily budget per user therefore admits exactly 50.
const (
	perRequestNanos = 1_000_000  // $0.001
	budgetNanos     = 50_000_000 // $0.05
)

func exactCostFolder(t *testing.T) string {
	return manifests(t, map[string]string{
		"keys.yaml":     apiKeys,
		"provider.yaml": mockProvider("mock", 10, "", modelSpec{Name: "exact-model", In: "0", Out: "100"}),
		"budget.yaml":   userBudget("per-user-daily", "0.05"),
	})
}

func TestBudgetNeverOverspendsWhenRequestsRaceAcrossReplicas(t *testing.T) {
	cases := map[string]struct {
		replicas int
		redisDB  int // 0: the embedded in-memory store
	}{
		"three replicas on one Redis serve exactly the budget":         {replicas: 3, redisDB: 1},
		"one process on the in-memory store serves exactly the budget": {replicas: 1},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			opts := replicaOptions{Manifests: exactCostFolder(t)}
			if tc.redisDB != 0 {
				opts.RedisURL = redisDB(t, tc.redisDB)
			}
			rs := startReplicas(t, tc.replicas, opts)
			c := newClient()
			defer c.close()
			warmUp(t, c, rs, "exact-model")

			const n = 500
			reqs := make([]chatRequest, n)
			for i := range reqs {
				reqs[i] = chatRequest{Model: "exact-model", Messages: userMessage(fmt.Sprintf("question %d", i)),
					UserID: "alice", OrgID: "acme", MaxTokens: 10}
			}
			replies := flood(t.Context(), c, reqs, appKey, func(i int) string { return rs[i%len(rs)].url })
			require.NoError(t, firstTransportError(replies))

			var served, refused int
			var costSum int64
			servedBy := make([]int, len(rs))
			for i, r := range replies {
				switch r.Status {
				case http.StatusOK:
					served++
					servedBy[i%len(rs)]++
					require.Equal(t, int64(perRequestNanos), r.Cost, "request %d: cost field", i)
					require.Equal(t, r.Cost, r.HeaderCost, "request %d: X-AI-Cost equals the cost field", i)
					costSum += r.Cost
				case http.StatusPaymentRequired:
					refused++
					require.Equal(t, "budget_exceeded", r.ErrCode, "request %d: %s", i, r.Body)
				default:
					t.Fatalf("request %d: unexpected %d %s", i, r.Status, r.Body)
				}
			}
			t.Logf("%d requests over %d replica(s): %d served (per replica %v), %d × 402 budget_exceeded; sum of cost fields %s",
				n, len(rs), served, servedBy, refused, usd(costSum))
			require.Equal(t, 50, served)
			require.Equal(t, 450, refused)
			require.Equal(t, int64(budgetNanos), costSum)

			var u usageReply
			c.getJSON(t, rs[0].url, adminKey, "/api/ai/usage?"+url.Values{"userId": {"alice"}, "orgId": {"acme"}, "window": {"1d"}}.Encode(), &u)
			require.Len(t, u.Budgets, 1, "one daily budget applies")
			spent := mustNanos(t, u.Budgets[0].Spent)
			t.Logf("settled spend (GET /api/ai/usage): cost=%s, budget %s %s spent=%s remaining=%s, requests=%d",
				usd(mustNanos(t, u.Cost)), u.Budgets[0].Name, u.Budgets[0].Period, usd(spent),
				usd(mustNanos(t, u.Budgets[0].Remaining)), u.Requests)
			require.Equal(t, int64(budgetNanos), mustNanos(t, u.Cost))
			require.Equal(t, int64(budgetNanos), spent)
			require.Equal(t, int64(0), mustNanos(t, u.Budgets[0].Remaining))
			require.Equal(t, int64(50), u.Requests)
		})
	}
}
