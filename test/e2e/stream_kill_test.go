package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/money"
	"github.com/nself-org/ai-orchestration/dataplane/providers"
	"github.com/nself-org/ai-orchestration/dataplane/providers/providertest"
	"github.com/nself-org/ai-orchestration/dataplane/tokens"
)

// The streamed model, its prices and how often replicas checkpoint streams in these tests.
const (
	streamModel      = "gpt-4o"
	streamInPrice    = "2.50"
	streamOutPrice   = "10.00"
	streamCheckpoint = 200 * time.Millisecond
	// streamKillTTL is the replicas' --reservation-ttl: longer than the stream runs before the kill.
	streamKillTTL = 5 * time.Second
)

// upstreamManifests are an OpenAI-compatible AIProvider pointing at a fake upstream, its key and
// the client keys.
func upstreamManifests(fake *providertest.Server) map[string]string {
	return map[string]string{
		"keys.yaml": apiKeys,
		"provider.yaml": fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata:
  name: upstream-key
  namespace: default
stringData:
  apiKey: %s
---
apiVersion: ai.nself.org/v1alpha1
kind: AIProvider
metadata:
  name: upstream
  namespace: default
spec:
  type: openai-compatible
  baseURL: %s
  apiKeySecretRef:
    name: upstream-key
    key: apiKey
  timeout: 60s
  models:
    - name: %s
      inputPerMillion: %q
      outputPerMillion: %q
      contextWindow: 128000
      maxOutputTokens: 16384
`, providertest.DefaultAPIKey, fake.BaseURL, streamModel, streamInPrice, streamOutPrice),
	}
}

// priceOf is what the data plane charges for prompt and completion tokens of streamModel.
func priceOf(prompt, completion int64) int64 {
	return int64(money.CostOfTokens(prompt, money.MustParseUSD(streamInPrice)) +
		money.CostOfTokens(completion, money.MustParseUSD(streamOutPrice)))
}

// promptTokens is how the data plane counts the prompt of a one-message request.
func promptTokens(content string) int64 {
	return tokens.CountMessages(streamModel, []providers.Message{{Role: "user", Content: content}})
}

// openStream posts a streamed /api/ai/chat request and returns the open reply.
func openStream(t *testing.T, ctx context.Context, c *client, base string, req chatRequest) *http.Response {
	t.Helper()
	req.Stream = true
	body, _ := json.Marshal(req)
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/ai/chat", bytes.NewReader(body))
	require.NoError(t, err)
	hr.Header.Set("Authorization", "Bearer "+appKey)
	resp, err := c.hc.Do(hr)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	return resp
}

// userUsage is user's /api/ai/usage over the last day, as replica r reports it.
func userUsage(t *testing.T, c *client, r *replica, user string) usageReply {
	t.Helper()
	var u usageReply
	c.getJSON(t, r.url, adminKey, "/api/ai/usage?"+url.Values{"userId": {user}, "orgId": {"acme"}, "window": {"1d"}}.Encode(), &u)
	return u
}

// TestAStreamKilledMidwayKeepsItsCheckpointedCostAndItsReservationExpires: replica A streams K
// chunks of a reply from an upstream that then stalls, and is SIGKILLed. Before the kill, replica
// B's usage API shows the checkpointed cost: the prompt counted with the tokenizer plus the
// tokenizer count of exactly the text A streamed, at the model's prices. After the kill the ledger
// and the budget's spend still hold that cost, the rest of A's reservation (already shrunk by it)
// blocks a call that needs it until its TTL, and then B serves that call.
func TestAStreamKilledMidwayKeepsItsCheckpointedCostAndItsReservationExpires(t *testing.T) {
	const k = 6
	fake := providertest.NewOpenAI(t, providertest.Options{
		Reply: "Checkpoints record what a stream has cost so far, so that a crash loses at most the last interval of it.",
		Fault: providertest.FaultStall, FaultAfterChunks: k,
	})
	const prompt = "tell me about checkpoints"
	p := promptTokens(prompt)
	const maxOut, bigOut = 200, 300
	worst := priceOf(p, maxOut)
	// A budget of twice the stream's worst case: a second call of bigOut output tokens does not fit
	// next to the dead stream's reservation, and fits once only its checkpointed cost is left.
	limit := 2 * worst
	docs := upstreamManifests(fake)
	docs["budget.yaml"] = userBudget("streams", money.Nanos(limit).String())
	rs := startReplicas(t, 2, replicaOptions{Manifests: manifests(t, docs), RedisURL: redisDB(t, 13),
		Extra: []string{"--stream-checkpoint", streamCheckpoint.String(), "--reservation-ttl", streamKillTTL.String()}})
	a, b := rs[0], rs[1]
	c := newClient()
	defer c.close()

	admitted := time.Now()
	resp := openStream(t, t.Context(), c, a.url, chatRequest{Model: streamModel, Messages: userMessage(prompt),
		UserID: "kim", OrgID: "acme", MaxTokens: maxOut})
	defer func() { _ = resp.Body.Close() }()
	var streamed strings.Builder
	sc := bufio.NewScanner(resp.Body)
	for deltas := 0; deltas < k; {
		require.True(t, sc.Scan(), "the stream ended after %d of %d deltas: %v", deltas, k, sc.Err())
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			var ev struct{ Content string }
			require.NoError(t, json.Unmarshal([]byte(d), &ev))
			streamed.WriteString(ev.Content)
			deltas++
		}
	}
	out := tokens.Count(streamModel, streamed.String())
	want := priceOf(p, out)
	require.Greater(t, worst+priceOf(p, bigOut), limit, "the second call cannot fit next to the stream's whole worst case")
	require.LessOrEqual(t, want+priceOf(p, bigOut), limit, "…but fits next to what the stream was charged")

	// The upstream now stalls; A's checkpointer charges what it streamed within an interval.
	deadline := time.Now().Add(10 * time.Second)
	u := userUsage(t, c, b, "kim")
	for mustNanos(t, u.Cost) != want {
		require.True(t, time.Now().Before(deadline), "B never saw the checkpointed %s (ledger %s)", usd(want), u.Cost)
		time.Sleep(20 * time.Millisecond) // polling the usage API for the checkpoint, not synchronisation
		u = userUsage(t, c, b, "kim")
	}
	seen := time.Since(admitted)
	require.Len(t, u.Budgets, 1)
	require.Equal(t, want, mustNanos(t, u.Budgets[0].Spent), "the budget was charged what the ledger says")
	require.Equal(t, limit-worst, mustNanos(t, u.Budgets[0].Remaining),
		"spent + reserved is still the worst case: the reservation shrank by what was charged")

	a.sigkill()
	killed := time.Now()
	u = userUsage(t, c, b, "kim")
	t.Logf("A streamed %d chunks (%q): %d prompt + %d output tokens = %s, seen in B's ledger %v after admission; A SIGKILLed",
		k, streamed.String(), p, out, usd(want), seen.Round(time.Millisecond))
	require.Equal(t, want, mustNanos(t, u.Cost), "the ledger keeps the checkpointed cost after the kill")
	require.Equal(t, int64(1), u.Requests)
	require.Equal(t, p+out, u.Tokens)
	require.Equal(t, want, mustNanos(t, u.Budgets[0].Spent))

	fake.SetOptions(providertest.Options{}) // the upstream answers again
	big := chatRequest{Model: streamModel, Messages: userMessage(prompt), UserID: "kim", OrgID: "acme", MaxTokens: bigOut}
	rep := c.chat(t.Context(), b.url, appKey, big)
	require.NoError(t, rep.TransportEr)
	require.Equal(t, http.StatusPaymentRequired, rep.Status, "the dead stream's reservation still holds: %s", rep.Body)

	deadline = killed.Add(streamKillTTL + 2*time.Second)
	for mustNanos(t, userUsage(t, c, b, "kim").Budgets[0].Remaining) != limit-want {
		require.True(t, time.Now().Before(deadline), "the dead stream's reservation outlived its TTL (%v)", streamKillTTL)
		time.Sleep(50 * time.Millisecond) // polling the usage API for the expiry, not synchronisation
	}
	released := time.Now()
	rep = c.chat(t.Context(), b.url, appKey, big)
	require.NoError(t, rep.TransportEr)
	require.Equal(t, http.StatusOK, rep.Status, "B serves once the reservation expired: %s", rep.Body)
	u = userUsage(t, c, b, "kim")
	t.Logf("reservation released %v after the kill (%v after admission, TTL %v); B then served %s; ledger %s = %s + %s",
		released.Sub(killed).Round(time.Millisecond), released.Sub(admitted).Round(time.Millisecond), streamKillTTL,
		usd(rep.Cost), u.Cost, usd(want), usd(rep.Cost))
	require.Equal(t, want+rep.Cost, mustNanos(t, u.Cost), "the killed stream's cost is still there, once")
	require.Equal(t, int64(2), u.Requests)
}

// TestAStreamCheckpointedSeveralTimesEndsChargedExactlyItsReportedUsage streams a slow reply on
// both APIs (/api/ai/chat and /v1/chat/completions) while the replica checkpoints every 200ms;
// the upstream reports fewer tokens than the tokenizer counts, so the final settle gives back
// part of what the checkpoints charged. Ledger, costs report and budget spend must end exactly
// at the reported usage's price, with the reservation gone.
func TestAStreamCheckpointedSeveralTimesEndsChargedExactlyItsReportedUsage(t *testing.T) {
	const reportedPrompt, reportedCompletion = 9, 5
	reply := strings.TrimSpace(strings.Repeat("every chunk adds to the running total ", 4))
	fake := providertest.NewOpenAI(t, providertest.Options{Reply: reply, ChunkDelay: 100 * time.Millisecond,
		PromptTokens: reportedPrompt, CompletionTokens: reportedCompletion})
	docs := upstreamManifests(fake)
	const limit = 10_000_000_000 // $10
	docs["budget.yaml"] = userBudget("streams", "10")
	rs := startReplicas(t, 2, replicaOptions{Manifests: manifests(t, docs), RedisURL: redisDB(t, 14),
		Extra: []string{"--stream-checkpoint", streamCheckpoint.String()}})
	a, b := rs[0], rs[1]
	c := newClient()
	defer c.close()
	want := priceOf(reportedPrompt, reportedCompletion)
	chunks := len(strings.Fields(reply))

	type result struct {
		cost     int64  // the done event's cost (/api/ai/chat)
		usage    string // the usage chunk (/v1)
		midCost  int64  // what B's ledger showed while the stream ran
		midReqs  int64
		complete bool // every delta arrived, then the end of the stream
	}
	// midStream waits, after half the deltas, until B's ledger shows a checkpoint of the stream.
	midStream := func(user string, r *result) {
		deadline := time.Now().Add(5 * time.Second)
		u := userUsage(t, c, b, user)
		for u.Requests == 0 {
			require.True(t, time.Now().Before(deadline), "%s: no checkpoint in B's ledger while the stream ran", user)
			time.Sleep(20 * time.Millisecond) // polling the usage API for a checkpoint, not synchronisation
			u = userUsage(t, c, b, user)
		}
		r.midCost, r.midReqs = mustNanos(t, u.Cost), u.Requests
	}
	results := map[string]*result{"dora": {}, "dave": {}}

	// /api/ai/chat: `event: delta` per chunk, then `event: done` with the cost.
	func() {
		r := results["dora"]
		resp := openStream(t, t.Context(), c, a.url, chatRequest{Model: streamModel, Messages: userMessage("stream to me"),
			UserID: "dora", OrgID: "acme", MaxTokens: 100})
		defer func() { _ = resp.Body.Close() }()
		sc := bufio.NewScanner(resp.Body)
		ev, deltas := "", 0
		for sc.Scan() {
			line := sc.Text()
			if e, ok := strings.CutPrefix(line, "event: "); ok {
				ev = e
				continue
			}
			d, ok := strings.CutPrefix(line, "data: ")
			if !ok {
				continue
			}
			switch ev {
			case "delta":
				if deltas++; deltas == chunks/2 {
					midStream("dora", r)
				}
			case "done":
				var done struct {
					Cost json.Number `json:"cost"`
				}
				require.NoError(t, json.Unmarshal([]byte(d), &done))
				cost, err := parseNanos(done.Cost.String())
				require.NoError(t, err)
				r.cost, r.complete = cost, deltas == chunks
			default:
				t.Fatalf("unexpected event %q: %s", ev, d)
			}
		}
	}()

	// /v1/chat/completions with include_usage: OpenAI's chunks, a usage chunk, then [DONE].
	func() {
		r := results["dave"]
		body := fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"stream to me"}],"stream":true,`+
			`"stream_options":{"include_usage":true},"user":"dave","max_tokens":100}`, streamModel)
		hr, err := http.NewRequestWithContext(t.Context(), http.MethodPost, a.url+"/v1/chat/completions", strings.NewReader(body))
		require.NoError(t, err)
		hr.Header.Set("Authorization", "Bearer "+appKey)
		hr.Header.Set("X-AI-Org", "acme")
		resp, err := c.hc.Do(hr)
		require.NoError(t, err)
		defer func() { _ = resp.Body.Close() }()
		if resp.StatusCode != http.StatusOK {
			raw, _ := io.ReadAll(resp.Body)
			t.Fatalf("/v1 stream: %d %s", resp.StatusCode, raw)
		}
		sc := bufio.NewScanner(resp.Body)
		deltas := 0
		for sc.Scan() {
			d, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			if d == "[DONE]" {
				r.complete = deltas == chunks
				continue
			}
			var chunk struct {
				Choices []struct {
					Delta struct{ Content *string } `json:"delta"`
				} `json:"choices"`
				Usage json.RawMessage `json:"usage"`
			}
			require.NoError(t, json.Unmarshal([]byte(d), &chunk), d)
			if len(chunk.Choices) == 1 && chunk.Choices[0].Delta.Content != nil && *chunk.Choices[0].Delta.Content != "" {
				if deltas++; deltas == chunks/2 {
					midStream("dave", r)
				}
			}
			if len(chunk.Usage) > 0 && string(chunk.Usage) != "null" {
				r.usage = string(chunk.Usage)
			}
		}
	}()

	checkpoints := metricValue(t, c, a, `aio_stream_checkpoints_total{result="ok"}`)
	t.Logf("two streams of %d chunks 100ms apart, checkpoint every %v: %v checkpoints on A; upstream reports %d+%d tokens = %s each",
		chunks, streamCheckpoint, checkpoints, reportedPrompt, reportedCompletion, usd(want))
	require.GreaterOrEqual(t, checkpoints, 2.0*4, "each stream was checkpointed several times")
	for user, r := range results {
		require.True(t, r.complete, "%s: the whole reply was streamed", user)
		require.Equal(t, int64(1), r.midReqs, "%s: the running stream counted as one request", user)
		require.Positive(t, r.midCost, "%s: the running stream was charged as it went", user)
		u := userUsage(t, c, b, user)
		t.Logf("%s: mid-stream ledger %s (tokenizer estimate); after the stream ledger %s, %d tokens, %d request(s); budget spent %s remaining %s",
			user, usd(r.midCost), u.Cost, u.Tokens, u.Requests, u.Budgets[0].Spent, u.Budgets[0].Remaining)
		require.Equal(t, want, mustNanos(t, u.Cost), "%s: the ledger equals the reported usage's price exactly", user)
		require.Equal(t, int64(reportedPrompt+reportedCompletion), u.Tokens, "%s: the ledger holds the reported tokens", user)
		require.Equal(t, int64(1), u.Requests, "%s", user)
		require.Len(t, u.Budgets, 1)
		require.Equal(t, want, mustNanos(t, u.Budgets[0].Spent), "%s: budget spend equals the reported usage's price", user)
		require.Equal(t, int64(limit)-want, mustNanos(t, u.Budgets[0].Remaining), "%s: nothing stays reserved", user)
	}
	require.Equal(t, want, results["dora"].cost, "the done event's cost is the reported usage's price")
	require.JSONEq(t, fmt.Sprintf(`{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}`,
		reportedPrompt, reportedCompletion, reportedPrompt+reportedCompletion), results["dave"].usage)

	var all costsReply
	c.getJSON(t, b.url, adminKey, "/api/ai/costs?window=1d&groupBy=model", &all)
	require.Equal(t, 2*want, mustNanos(t, all.Total), "the costs report equals the two reported usages' price")
	require.Len(t, all.Breakdown, 1, "checkpoints and settles went to one model")
	require.Equal(t, int64(2), all.Breakdown[0].Requests)
}

// metricValue reads one sample (name with labels, as exposed) from replica r's /metrics.
func metricValue(t *testing.T, c *client, r *replica, sample string) float64 {
	t.Helper()
	resp, err := c.hc.Get(r.url + "/metrics")
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), sample+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			require.NoError(t, err)
			return f
		}
	}
	t.Fatalf("%s has no sample %s", r.name, sample)
	return 0
}
