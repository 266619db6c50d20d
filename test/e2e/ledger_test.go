package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestLedgerTotalsEqualTheSumOfServedCosts sends 10 000 mixed requests (three models with awkward
// prices, prompts of 1 to ~400 words, several users in three orgs, every tenth streamed) to two
// replicas on one Redis, then checks that /api/ai/usage and /api/ai/costs report, to the nano-USD,
// the sum of the cost fields the callers received. Money is compared as integer nano-USD parsed
// from the exact decimals the API writes (no float is involved anywhere).
func TestLedgerTotalsEqualTheSumOfServedCosts(t *testing.T) {
	dir := manifests(t, map[string]string{
		"keys.yaml": apiKeys,
		"provider.yaml": mockProvider("mock", 0, "",
			modelSpec{Name: "cheap", In: "0.15", Out: "0.60"},
			modelSpec{Name: "dear", In: "2.50", Out: "10.00"},
			modelSpec{Name: "odd", In: "0.123457", Out: "1.000001"}),
		// A generous budget, so that every request also goes through reserve and settle.
		"budget.yaml": userBudget("roomy", "1000"),
	})
	rs := startReplicas(t, 2, replicaOptions{Manifests: dir, RedisURL: redisDB(t, 4)})
	c := newClient()
	defer c.close()

	type who struct{ user, org string }
	users := []who{{"u1", "org-a"}, {"u2", "org-a"}, {"u3", "org-a"}, {"u4", "org-b"}, {"u5", "org-b"}, {"u6", "org-c"}, {"u7", "org-c"}}
	models := []string{"cheap", "dear", "odd"}
	words := strings.Fields(strings.Repeat("the quick brown fox jumps over the lazy dog while prices tick ", 40))

	const n = 10_000
	const workers = 16
	replies := make([]chatReply, n)
	reqs := make([]chatRequest, n)
	for i := range reqs {
		w := users[i%len(users)]
		size := 1 + (i*7919)%len(words)
		reqs[i] = chatRequest{Model: models[(i/7)%len(models)], Messages: userMessage(strings.Join(words[:size], " ")),
			UserID: w.user, OrgID: w.org, MaxTokens: int64(50 + i%400), Stream: i%10 == 3}
	}
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				replies[i] = c.chat(t.Context(), rs[i%len(rs)].url, appKey, reqs[i])
			}
		}()
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	require.NoError(t, firstTransportError(replies))

	var total, tokens, streamed int64
	perUser := map[string]int64{}
	perOrg := map[string]int64{}
	perModel := map[string]int64{}
	for i, r := range replies {
		require.Equal(t, http.StatusOK, r.Status, "request %d: %s", i, r.Body)
		require.Positive(t, r.Cost, "request %d is priced", i)
		if reqs[i].Stream {
			streamed++
		} else {
			require.Equal(t, r.Cost, r.HeaderCost, "request %d: X-AI-Cost equals the cost field", i)
		}
		total += r.Cost
		tokens += r.Tokens
		perUser[reqs[i].UserID] += r.Cost
		perOrg[reqs[i].OrgID] += r.Cost
		perModel[reqs[i].Model] += r.Cost
	}
	t.Logf("%d requests (%d streamed) over 2 replicas: sum of cost fields %s (%d nano-USD), %d tokens",
		n, streamed, usd(total), total, tokens)

	for _, r := range rs {
		var u usageReply
		c.getJSON(t, r.url, adminKey, "/api/ai/usage?window=1d", &u)
		t.Logf("%s GET /api/ai/usage (admin, all): requests=%d tokens=%d cost=%s", r.name, u.Requests, u.Tokens, u.Cost)
		require.Equal(t, total, mustNanos(t, u.Cost), "usage cost equals the sum of the replies' costs")
		require.Equal(t, int64(n), u.Requests)
		require.Equal(t, tokens, u.Tokens)

		var all costsReply
		c.getJSON(t, r.url, adminKey, "/api/ai/costs?window=1d&groupBy=user", &all)
		t.Logf("%s GET /api/ai/costs?groupBy=user: total=%s over %d users", r.name, all.Total, len(all.Breakdown))
		require.Equal(t, total, mustNanos(t, all.Total), "costs total equals the sum of the replies' costs")
		got := map[string]int64{}
		var requests int64
		for _, l := range all.Breakdown {
			got[l.Key] = mustNanos(t, l.Cost)
			requests += l.Requests
		}
		require.Equal(t, perUser, got, "per-user costs equal the per-user sums of the replies")
		require.Equal(t, int64(n), requests)

		var byModel costsReply
		c.getJSON(t, r.url, adminKey, "/api/ai/costs?window=1d&groupBy=model", &byModel)
		gotModel := map[string]int64{}
		for _, l := range byModel.Breakdown {
			gotModel[l.Key] = mustNanos(t, l.Cost)
		}
		require.Equal(t, perModel, gotModel, "per-model costs equal the per-model sums of the replies")
	}
	for org, want := range perOrg {
		var oc costsReply
		c.getJSON(t, rs[0].url, adminKey, "/api/ai/costs?"+url.Values{"orgId": {org}, "window": {"1d"}}.Encode(), &oc)
		require.Equal(t, want, mustNanos(t, oc.Total), "org %s", org)
	}
	for _, w := range users {
		var u usageReply
		c.getJSON(t, rs[1].url, appKey, "/api/ai/usage?"+url.Values{"userId": {w.user}, "orgId": {w.org}, "window": {"1d"}}.Encode(), &u)
		require.Equal(t, perUser[w.user], mustNanos(t, u.Cost), "usage of %s", w.user)
		require.Len(t, u.Budgets, 1)
		require.Equal(t, perUser[w.user], mustNanos(t, u.Budgets[0].Spent), "budget spend of %s", w.user)
	}
	t.Logf("per org: %s", fmtNanosMap(perOrg))
	t.Logf("per model: %s", fmtNanosMap(perModel))
}

func fmtNanosMap(m map[string]int64) string {
	var b strings.Builder
	for _, k := range []string{"org-a", "org-b", "org-c", "cheap", "dear", "odd"} {
		if v, ok := m[k]; ok {
			fmt.Fprintf(&b, "%s=%s ", k, usd(v))
		}
	}
	return b.String()
}
