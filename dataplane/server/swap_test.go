package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/money"
)

// withLargeConfig grows the test snapshot to the size the design promises to swap without
// dropping a request: 1 000 routes and 10 000 budgets, next to the routes the load uses.
func withLargeConfig(reply string) func(*config.Snapshot) {
	return func(s *config.Snapshot) {
		s.Providers[0].Mock.Reply = reply
		for r := range 1000 {
			s.Routes = append(s.Routes, config.Route{Name: fmt.Sprintf("default/r%04d", r), Strategy: config.StrategyWeighted,
				Match:   config.Match{Models: []string{fmt.Sprintf("alias-%04d", r)}},
				Targets: []config.Target{{Provider: "default/mock", Model: "tiny-window", Weight: 1}},
				RateLimits: []config.RateLimit{{Name: "rpm", Per: config.PerUser, Algorithm: config.AlgorithmSlidingWindow,
					Requests: 1_000_000, Window: time.Minute, FailMode: config.FailOpen}}})
		}
		for b := range 10000 {
			s.Budgets = append(s.Budgets, config.Budget{Name: fmt.Sprintf("default/b%05d", b), Scope: config.ScopeUser,
				Subject: fmt.Sprintf("user-%05d", b), Action: config.ActionBlock, TimeZone: "UTC",
				Limits: []config.BudgetLimit{{Period: config.PeriodDaily, Limit: money.MustParseUSD("1")}}})
		}
	}
}

// A replica swaps in the large snapshot the way the cluster watch does (decode the Secret's
// bytes, verify, build, swap) while requests keep coming: every request is answered, each by
// one whole configuration, and the reply changes with the snapshot.
func TestALargeSnapshotSwappedUnderLoadDropsNothing(t *testing.T) {
	h := newHarness(t, harnessOpts{mutate: []func(*config.Snapshot){withLargeConfig("v0")}})
	var wire [2][]byte
	for i := range wire {
		b, err := config.Encode(testSnapshot(t, h.Upstream.BaseURL, withLargeConfig(fmt.Sprintf("v%d", i+1))))
		require.NoError(t, err)
		wire[i] = b
	}

	load := startChatLoad(t, h, chatBody("tiny-window", "hello"))
	defer load.stop()
	require.Eventually(t, func() bool { return load.lastReply.Load() == "v0" }, 5*time.Second, time.Millisecond)

	var took []time.Duration
	for i := range 10 {
		want := fmt.Sprintf("v%d", i%2+1)
		before := load.total.Load()
		start := time.Now()
		snap, err := config.Decode(wire[i%2])
		require.NoError(t, err)
		require.NoError(t, h.Holder.Apply(snap))
		took = append(took, time.Since(start))
		require.Eventually(t, func() bool { return load.lastReply.Load() == want && load.total.Load() > before+8 },
			5*time.Second, time.Millisecond, "swap %d: the new snapshot serves", i)
	}
	load.stop()
	slices.Sort(took)
	t.Logf("%d requests across 10 swaps; decode+verify+build+swap took %s median, %s at most",
		load.total.Load(), took[len(took)/2].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond))
	require.Zero(t, load.failures.Load(), "no request failed during %d requests across 10 swaps", load.total.Load())
}

// chatLoad is eight clients sending the same chat for as long as it runs, counting what they
// sent and what failed, and keeping the last reply they saw.
type chatLoad struct {
	failures, total atomic.Int64
	lastReply       atomic.Value
	stop            func()
}

func startChatLoad(t *testing.T, h *harness, body map[string]any) *chatLoad {
	l := &chatLoad{}
	l.lastReply.Store("")
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for ctx.Err() == nil {
				code, _, b := h.do("POST", "/api/ai/chat", adminKey, body)
				l.total.Add(1)
				if code != http.StatusOK {
					l.failures.Add(1)
					continue
				}
				var r struct{ Content string }
				if json.Unmarshal(b, &r) == nil {
					l.lastReply.Store(r.Content)
				}
			}
		})
	}
	l.stop = func() { cancel(); wg.Wait() }
	return l
}
