package store_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/store"
	"github.com/nself-org/ai-orchestration/dataplane/store/storetest"
)

// TestRedisAndMemoryDecideEveryStepOfARandomWorkloadAlike drives both stores through the same
// random admissions, settles and clock steps (bursts that fill a sliding window, pauses that empty
// it or let many entries leave at once, expiring reservations and slots, corrections at settle)
// and requires the same answer to every check, and the same budgets at the end: the scripts
// mirror the memory store operation by operation, whatever shortcuts they take to read less.
func TestRedisAndMemoryDecideEveryStepOfARandomWorkloadAlike(t *testing.T) {
	for _, split := range []bool{false, true} {
		t.Run(fmt.Sprintf("split=%v", split), func(t *testing.T) {
			rd, rclock := storetest.NewRedisStore(split)(t)
			mem, mclock := storetest.NewMemoryStore(t)
			rng := rand.New(rand.NewPCG(7, uint64(len(fmt.Sprint(split)))))
			budgetKeys := []string{"budget:{o1}:b:o1:daily:d", "budget:{u:u1}:b:u1:daily:d"}
			checks := func() []store.Check {
				cs := []store.Check{
					// Cost ≥ 1: split per slot, a zero-cost entry that a later slot's refusal rolls
					// back stays in the log (settling Actual = Cost = 0 changes nothing), where the
					// memory store never wrote it; only its Reset would differ.
					{Kind: store.KindSlidingWindow, Key: "rl:{o1}:sw", Limit: 40, Window: 10 * time.Second, Cost: 1 + rng.Int64N(5)},
					{Kind: store.KindTokenBucket, Key: "rl:{u:u1}:tb", Limit: 30, Window: 10 * time.Second, Burst: 10, Cost: rng.Int64N(4)},
					{Kind: store.KindConcurrency, Key: "rl:{u:u1}:conc", Limit: 5, Cost: 1, TTL: 20 * time.Second},
					// A TTL of its own per admission: one that expires before those already
					// reserved must lower the script's hint of the earliest expiry.
					{Kind: store.KindBudget, Key: budgetKeys[0], Limit: 50_000, Cost: rng.Int64N(3000), TTL: time.Duration(1+rng.IntN(20)) * time.Second, Expire: 48 * time.Hour},
					{Kind: store.KindBudget, Key: budgetKeys[1], Limit: 30_000, Cost: rng.Int64N(3000), TTL: 15 * time.Second, Expire: 48 * time.Hour, Shadow: rng.IntN(4) == 0},
				}
				rng.Shuffle(len(cs), func(i, j int) { cs[i], cs[j] = cs[j], cs[i] })
				return cs[:1+rng.IntN(len(cs))]
			}
			type open struct {
				id     string
				checks []store.Check
				res    *store.AdmitResult
			}
			var pending []open
			for step := range 1500 {
				switch d := rng.IntN(20); {
				case d < 12:
					dt := time.Duration(rng.Int64N(int64(400 * time.Millisecond)))
					rclock.Advance(dt)
					mclock.Advance(dt)
				case d < 13:
					dt := time.Duration(rng.Int64N(int64(25 * time.Second)))
					rclock.Advance(dt)
					mclock.Advance(dt)
				}
				if len(pending) > 0 && rng.IntN(3) == 0 {
					i := rng.IntN(len(pending))
					p := pending[i]
					pending = append(pending[:i], pending[i+1:]...)
					s := &store.Settlement{ID: p.id}
					for j, c := range p.checks {
						actual := c.Cost
						switch c.Kind {
						case store.KindSlidingWindow, store.KindTokenBucket:
							actual = rng.Int64N(8) // a correction, or giving the request back
						case store.KindBudget:
							actual = rng.Int64N(4000)
						}
						s.Ops = append(s.Ops, store.SettleOp{Check: c, Consumed: p.res.Results[j].Consumed, Actual: actual})
					}
					s2 := *s
					require.NoError(t, rd.Settle(t.Context(), s))
					require.NoError(t, mem.Settle(t.Context(), &s2))
					continue
				}
				id := storetest.NewID()
				cs := checks()
				want, err := mem.Admit(t.Context(), &store.AdmitRequest{ID: id, Checks: cs})
				require.NoError(t, err)
				got, err := rd.Admit(t.Context(), &store.AdmitRequest{ID: id, Checks: cs})
				require.NoError(t, err)
				if split && !got.Allowed {
					// Split per slot, a refusing slot leaves later slots unevaluated: compare the
					// evaluated ones only.
					for j := range got.Results {
						if !got.Results[j].Evaluated {
							want.Results[j] = got.Results[j]
						}
					}
				}
				require.Equal(t, want.Allowed, got.Allowed, "step %d", step)
				require.Equal(t, want.Results, got.Results, "step %d: %+v", step, cs)
				if got.Allowed {
					pending = append(pending, open{id, cs, got})
				}
			}
			want, err := mem.Budgets(t.Context(), budgetKeys)
			require.NoError(t, err)
			got, err := rd.Budgets(t.Context(), budgetKeys)
			require.NoError(t, err)
			require.Equal(t, want, got)
		})
	}
}
