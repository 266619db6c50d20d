package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestAStreamCutByTheClientIsStillCharged reads the first delta of a slow stream, hangs up, and
// checks through the usage API of the other replica that the cut stream was charged (more than
// nothing, at most the whole reply, which a sibling non-streamed request measures), that the
// budget was charged the same, and that its worst-case reservation was released.
func TestAStreamCutByTheClientIsStillCharged(t *testing.T) {
	reply := strings.TrimSpace(strings.Repeat("word ", 40))
	dir := manifests(t, map[string]string{
		"keys.yaml": apiKeys,
		"provider.yaml": strings.Replace(mockProvider("mock", 0, "2s", modelSpec{Name: "stream-model", In: "1", Out: "1000"}),
			`reply: ""`, "reply: "+reply, 1),
		"budget.yaml": userBudget("streams", "10"),
	})
	rs := startReplicas(t, 2, replicaOptions{Manifests: dir, RedisURL: redisDB(t, 11)})
	c := newClient()
	defer c.close()
	const limit = 10_000_000_000 // $10

	req := chatRequest{Model: "stream-model", Messages: userMessage("tell me a long story"), UserID: "erin", OrgID: "acme", MaxTokens: 200}
	usage := func(user string) usageReply {
		var u usageReply
		c.getJSON(t, rs[1].url, adminKey, "/api/ai/usage?"+url.Values{"userId": {user}, "orgId": {"acme"}, "window": {"1d"}}.Encode(), &u)
		return u
	}

	// The whole reply's cost, from the same request not streamed (the mock answers identically).
	whole := req
	whole.UserID = "erin-whole"
	full := c.chat(t.Context(), rs[0].url, appKey, whole)
	require.NoError(t, full.TransportEr)
	require.Equal(t, http.StatusOK, full.Status, full.Body)

	ctx, cancel := context.WithCancel(t.Context())
	body, _ := json.Marshal(struct {
		chatRequest
		Stream bool `json:"stream"`
	}{req, true})
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, rs[0].url+"/api/ai/chat", bytes.NewReader(body))
	require.NoError(t, err)
	hr.Header.Set("Authorization", "Bearer "+appKey)
	resp, err := c.hc.Do(hr)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() && !strings.HasPrefix(sc.Text(), "data: ") {
	}
	require.Contains(t, sc.Text(), "content", "the first delta arrived")
	cut := time.Now()
	cancel()
	_ = resp.Body.Close()

	deadline := time.Now().Add(8 * time.Second)
	u := usage("erin")
	for u.Requests == 0 {
		require.True(t, time.Now().Before(deadline), "the cut stream was never settled")
		time.Sleep(50 * time.Millisecond) // polling the usage API for the settlement, not synchronisation
		u = usage("erin")
	}
	charged := mustNanos(t, u.Cost)
	require.Len(t, u.Budgets, 1)
	spent, left := mustNanos(t, u.Budgets[0].Spent), mustNanos(t, u.Budgets[0].Remaining)
	t.Logf("stream cut after the first delta: settled %v later at %s (whole reply %s); budget spent=%s remaining=%s",
		time.Since(cut).Round(time.Millisecond), usd(charged), usd(full.Cost), usd(spent), usd(left))
	require.Equal(t, int64(1), u.Requests)
	require.Positive(t, charged, "a cut stream is charged")
	// The mock reports the whole reply's usage even for a cut stream (its usage is known up front),
	// so the charge may equal the whole reply; it must never exceed it.
	require.LessOrEqual(t, charged, full.Cost, "a cut stream costs at most the whole reply")
	require.Equal(t, charged, spent, "the budget is charged what the ledger says")
	require.Equal(t, limit-spent, left, "the worst-case reservation was released")
}
