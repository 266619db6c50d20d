package governor_test

import (
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/governor"
	"github.com/nself-org/ai-orchestration/dataplane/providers"
	"github.com/nself-org/ai-orchestration/dataplane/store"
	"github.com/nself-org/ai-orchestration/dataplane/store/storetest"
	"github.com/nself-org/ai-orchestration/dataplane/tokens"
)

// tokenCall is one request of the token-limit proof: the estimate the service admits it on
// (the tokenizer's count of its messages + maxTokens, as handlers.Service.reserve computes it)
// and the usage its upstream reports, which settle charges instead.
type tokenCall struct {
	est              int64
	prompt, complete int64
}

func (c tokenCall) real() int64 { return c.prompt + c.complete }

var proofWords = strings.Fields(`the gateway routes each request to a provider under budgets and rate limits;
	résumé naïve 2026-11-25 tokenizer Kubernetes AIRoutePolicy {"json": true} 東京 12345.678 emoji 🚀 well-known`)

// mixedCalls draws n requests of mixed sizes: prompts of 5..600 words, maxTokens 16..800.
// The upstream's usage differs from the estimate both ways, as real upstreams do: its prompt
// count is the tokenizer's −8..+24 (its own message framing), and its completion is 60..100%
// of maxTokens, except one in three that runs up to 10% + 20 tokens past it (a provider that
// counts reasoning or stop tokens beyond the cap).
func mixedCalls(n int, seed uint64) []tokenCall {
	rng := rand.New(rand.NewPCG(seed, 2026))
	calls := make([]tokenCall, n)
	for i := range calls {
		words := make([]string, 5+rng.IntN(596))
		for j := range words {
			words[j] = proofWords[rng.IntN(len(proofWords))]
		}
		msgs := []providers.Message{{Role: "system", Content: "Answer briefly."}, {Role: "user", Content: strings.Join(words, " ")}}
		prompt := tokens.CountMessages("gpt-4o-mini", msgs)
		maxTokens := int64(16 + rng.IntN(785))
		complete := maxTokens * int64(60+rng.IntN(41)) / 100
		if rng.IntN(3) == 0 {
			complete = maxTokens + maxTokens*int64(rng.IntN(11))/100 + int64(rng.IntN(21))
		}
		calls[i] = tokenCall{est: prompt + maxTokens, prompt: max(1, prompt-8+int64(rng.IntN(33))), complete: complete}
	}
	return calls
}

// tokenRun is what one run admitted.
type tokenRun struct {
	admitted, refused int
	totalReal         int64
	maxAbsErr         int64 // largest |estimate − real| of an admitted request
	maxUnder          int64 // largest real − estimate (0 when none was under-estimated)
	sumUnder          int64 // Σ max(0, real − estimate) over admitted requests
}

func (r *tokenRun) add(c tokenCall) {
	r.admitted++
	r.totalReal += c.real()
	diff := c.real() - c.est
	r.maxAbsErr = max(r.maxAbsErr, diff, -diff)
	if diff > 0 {
		r.maxUnder = max(r.maxUnder, diff)
		r.sumUnder += diff
	}
}

// admitAndSettle admits c on its estimate and, when admitted, settles its real usage.
func admitAndSettle(t *testing.T, g governor.Governor, route *config.Route, c tokenCall) bool {
	req := chatReq("u1", 0)
	req.Route, req.EstimatedTokens = route, c.est
	d, err := g.Admit(t.Context(), nil, req)
	var de *governor.DeniedError
	if errors.As(err, &de) {
		require.Equal(t, governor.DeniedByRateLimit, de.Kind)
		return false
	}
	require.NoError(t, err)
	require.NoError(t, g.Settle(t.Context(), req, d.Ticket, charge(0, c.prompt, c.complete)))
	return true
}

func TestATokenLimitAdmitsAtMostItsLimitPlusTheEstimationErrorUnderMixedSizes(t *testing.T) {
	const limit = 10_000
	algorithms := map[string]config.RateLimit{
		"sliding window": {Algorithm: config.AlgorithmSlidingWindow},
		"token bucket":   {Algorithm: config.AlgorithmTokenBucket, Burst: limit},
	}
	for algName, alg := range algorithms {
		for _, parallel := range []bool{false, true} {
			mode := "sequential"
			if parallel {
				mode = "parallel"
			}
			t.Run(algName+" "+mode, func(t *testing.T) {
				stores(t, func(t *testing.T, st store.Store, clock *storetest.FakeClock) {
					g, _ := newGov(st, clock)
					rl := alg
					rl.Name, rl.Per, rl.Tokens, rl.Window, rl.FailMode = "tpm", config.PerUser, limit, time.Minute, config.FailClosed
					route := &config.Route{Name: "team/chat", RateLimits: []config.RateLimit{rl}}
					calls := mixedCalls(80, 7)
					var (
						run tokenRun
						mu  sync.Mutex
					)
					record := func(c tokenCall, ok bool) {
						mu.Lock()
						defer mu.Unlock()
						if ok {
							run.add(c)
						} else {
							run.refused++
						}
					}
					if parallel {
						var wg sync.WaitGroup
						for _, c := range calls {
							wg.Go(func() { record(c, admitAndSettle(t, g, route, c)) })
						}
						wg.Wait()
					} else {
						for _, c := range calls {
							record(c, admitAndSettle(t, g, route, c))
						}
					}
					t.Logf("%s: limit %d tokens/min: %d admitted, %d refused; total real tokens of admitted %d; "+
						"largest |estimate−real| %d, largest under-estimate %d, sum of under-estimates %d; limit+largest error %d",
						t.Name(), limit, run.admitted, run.refused, run.totalReal, run.maxAbsErr, run.maxUnder, run.sumUnder, limit+run.maxAbsErr)
					require.Positive(t, run.admitted)
					require.Positive(t, run.refused, "the limit must have been reached for the run to prove anything")
					if !parallel {
						// The last admitted request L found at most limit − est_L in the window, all of it
						// settled to real usage: total ≤ limit + (real_L − est_L).
						require.LessOrEqual(t, run.totalReal, int64(limit)+run.maxUnder)
						require.LessOrEqual(t, run.totalReal, int64(limit)+run.maxAbsErr)
						return
					}
					// Requests in flight together were all admitted on their estimates, so their
					// under-estimates add up (TestTokenLimitOverrunIsTheUnderEstimatesOfRequestsInFlight).
					require.LessOrEqual(t, run.totalReal, int64(limit)+run.sumUnder)
				})
			})
		}
	}
}

func TestTokenLimitOverrunIsTheUnderEstimatesOfRequestsInFlight(t *testing.T) {
	stores(t, func(t *testing.T, st store.Store, clock *storetest.FakeClock) {
		g, _ := newGov(st, clock)
		route := &config.Route{Name: "team/chat", RateLimits: []config.RateLimit{{Name: "tpm", Per: config.PerUser,
			Algorithm: config.AlgorithmSlidingWindow, Tokens: 10_000, Window: time.Minute, FailMode: config.FailClosed}}}
		// Two requests estimated at 5 000 each are admitted before either settles; each really
		// uses 5 100. Nothing refuses them (the window had room for both estimates), so the
		// window ends at 10 200: the limit plus both under-estimates, more than the limit plus
		// the largest single one (10 100).
		var reqs []*governor.Request
		var tickets []*governor.Ticket
		for range 2 {
			req := chatReq("u1", 0)
			req.Route, req.EstimatedTokens = route, 5_000
			d, err := g.Admit(t.Context(), nil, req)
			require.NoError(t, err)
			reqs, tickets = append(reqs, req), append(tickets, d.Ticket)
		}
		for i := range reqs {
			require.NoError(t, g.Settle(t.Context(), reqs[i], tickets[i], charge(0, 1_000, 4_100)))
		}
		// The window holds 10 200: even a 1-token request is refused until it slides.
		req := chatReq("u1", 0)
		req.Route, req.EstimatedTokens = route, 1
		_, err := g.Admit(t.Context(), nil, req)
		var de *governor.DeniedError
		require.ErrorAs(t, err, &de)
		require.Equal(t, governor.DeniedByRateLimit, de.Kind)
		require.Equal(t, int64(0), de.RateLimit.Remaining)
	})
}
