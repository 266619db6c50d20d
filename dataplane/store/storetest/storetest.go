// Package storetest is the conformance suite every store.Store implementation passes: the memory
// store and Redis (a real redis-server) run the same cases with a fake clock.
package storetest

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/store"
)

// FakeClock is a settable clock, safe for concurrent use.
type FakeClock struct {
	mu  sync.Mutex
	now time.Time
}

// NewFakeClock returns a clock stopped at t.
func NewFakeClock(t time.Time) *FakeClock { return &FakeClock{now: t} }

// Now implements store.Clock.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Set moves the clock to t.
func (c *FakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// Start is where suites start their fake clocks: a whole second, mid-morning UTC.
var Start = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

var ids atomic.Int64

// NewID returns a unique admission ID.
func NewID() string { return fmt.Sprintf("id-%d", ids.Add(1)) }

// NewStoreFunc returns a fresh, empty store driven by the returned clock.
type NewStoreFunc func(t *testing.T) (store.Store, *FakeClock)

// Run runs the conformance suite against the stores newStore makes.
func Run(t *testing.T, newStore NewStoreFunc) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, clock := newStore(t)
			tc.run(t, st, clock)
		})
	}
}

type testCase struct {
	name string
	run  func(t *testing.T, st store.Store, clock *FakeClock)
}

func admit(t *testing.T, st store.Store, id string, checks ...store.Check) *store.AdmitResult {
	t.Helper()
	r, err := st.Admit(t.Context(), &store.AdmitRequest{ID: id, Checks: checks})
	require.NoError(t, err)
	require.Len(t, r.Results, len(checks))
	return r
}

func settle(t *testing.T, st store.Store, id string, r *store.AdmitResult, actual []int64, checks ...store.Check) {
	t.Helper()
	s := &store.Settlement{ID: id}
	for i, c := range checks {
		s.Ops = append(s.Ops, store.SettleOp{Check: c, Consumed: r.Results[i].Consumed, Actual: actual[i]})
	}
	require.NoError(t, st.Settle(t.Context(), s))
}

// progress builds a checkpoint or a final settlement of a checkpointed admission: actual[i] is
// check i's total since admission, usage the totals of the call so far.
func progress(id string, r *store.AdmitResult, actual []int64, usage *store.UsageRecord, checks ...store.Check) *store.Settlement {
	s := &store.Settlement{ID: id, Usage: usage, Checkpointed: true}
	for i, c := range checks {
		s.Ops = append(s.Ops, store.SettleOp{Check: c, Consumed: r.Results[i].Consumed, Actual: actual[i]})
	}
	return s
}

// ledgerTotal sums tag's ledger cell k over [from, to).
func ledgerTotal(t *testing.T, st store.Store, tag string, k store.LedgerKey, from, to time.Time) store.Totals {
	t.Helper()
	hours, err := st.Ledger(t.Context(), tag, from, to)
	require.NoError(t, err)
	var sum store.Totals
	for _, h := range hours {
		sum.Add(h.Cells[k])
	}
	return sum
}

func budgetState(t *testing.T, st store.Store, key string) store.BudgetState {
	t.Helper()
	b, err := st.Budgets(t.Context(), []string{key})
	require.NoError(t, err)
	require.Len(t, b, 1)
	return b[0]
}

func bucket(key string, limit int64, window time.Duration, burst, cost int64) store.Check {
	return store.Check{Kind: store.KindTokenBucket, Key: key, Limit: limit, Window: window, Burst: burst, Cost: cost}
}

func sliding(key string, limit int64, window time.Duration, cost int64) store.Check {
	return store.Check{Kind: store.KindSlidingWindow, Key: key, Limit: limit, Window: window, Cost: cost}
}

func budget(key string, limit, cost int64, ttl time.Duration) store.Check {
	return store.Check{Kind: store.KindBudget, Key: key, Limit: limit, Cost: cost, TTL: ttl, Expire: 48 * time.Hour}
}

var cases = []testCase{
	{"token bucket admits exactly its burst, then refills one unit per interval", func(t *testing.T, st store.Store, clock *FakeClock) {
		c := bucket("rl:{o1}:bucket", 10, time.Second, 5, 1)
		for i := range 5 {
			r := admit(t, st, NewID(), c)
			require.True(t, r.Allowed, "request %d", i)
			require.Equal(t, int64(4-i), r.Results[0].Remaining)
		}
		r := admit(t, st, NewID(), c)
		require.False(t, r.Allowed)
		require.Equal(t, 100*time.Millisecond, r.Results[0].RetryAfter, "one unit refills every 100ms")
		require.Equal(t, 500*time.Millisecond, r.Results[0].Reset)

		clock.Advance(99 * time.Millisecond)
		require.False(t, admit(t, st, NewID(), c).Allowed, "a millisecond early is still too early")
		clock.Advance(time.Millisecond)
		require.True(t, admit(t, st, NewID(), c).Allowed)
		require.False(t, admit(t, st, NewID(), c).Allowed)

		clock.Advance(time.Hour)
		r = admit(t, st, NewID(), c)
		require.True(t, r.Allowed)
		require.Equal(t, int64(4), r.Results[0].Remaining, "a long pause refills only up to the burst")
	}},
	{"token bucket on tokens refuses a request larger than what is left and says when it fits", func(t *testing.T, st store.Store, clock *FakeClock) {
		c := bucket("rl:{o1}:tokens", 6000, time.Minute, 0, 4000) // 100 tokens/s, capacity 6000
		require.True(t, admit(t, st, NewID(), c).Allowed)
		r := admit(t, st, NewID(), c)
		require.False(t, r.Allowed)
		require.Equal(t, int64(2000), r.Results[0].Remaining)
		require.Equal(t, 20*time.Second, r.Results[0].RetryAfter, "2000 more tokens at 100/s")
		clock.Advance(20 * time.Second)
		require.True(t, admit(t, st, NewID(), c).Allowed)
	}},
	{"sliding window allows no second full window of requests across a fixed-window edge", func(t *testing.T, st store.Store, clock *FakeClock) {
		c := sliding("rl:{o1}:sw", 10, time.Minute, 1)
		clock.Advance(59 * time.Second)
		for i := range 10 {
			r := admit(t, st, NewID(), c)
			require.True(t, r.Allowed, "request %d", i)
			require.Equal(t, int64(9-i), r.Results[0].Remaining)
		}
		// A fixed window would reset at 60s and admit ten more here.
		clock.Advance(2 * time.Second)
		r := admit(t, st, NewID(), c)
		require.False(t, r.Allowed)
		require.Equal(t, 58*time.Second, r.Results[0].RetryAfter, "the first entry leaves the window at 119s")
		clock.Advance(58*time.Second - time.Microsecond)
		require.False(t, admit(t, st, NewID(), c).Allowed)
		clock.Advance(time.Microsecond)
		admitted := 0
		for range 15 {
			if admit(t, st, NewID(), c).Allowed {
				admitted++
			}
		}
		require.Equal(t, 10, admitted, "all ten entries left together")
	}},
	{"sliding window on tokens frees exactly the oldest entries that make room", func(t *testing.T, st store.Store, clock *FakeClock) {
		c := func(cost int64) store.Check { return sliding("rl:{o1}:swt", 1000, time.Minute, cost) }
		require.True(t, admit(t, st, NewID(), c(300)).Allowed)
		clock.Advance(10 * time.Second)
		require.True(t, admit(t, st, NewID(), c(300)).Allowed)
		clock.Advance(10 * time.Second)
		require.True(t, admit(t, st, NewID(), c(300)).Allowed)
		r := admit(t, st, NewID(), c(500))
		require.False(t, r.Allowed)
		require.Equal(t, int64(100), r.Results[0].Remaining)
		require.Equal(t, 50*time.Second, r.Results[0].RetryAfter, "two entries (t=0s, t=10s) must leave: at 70s")
		clock.Advance(50 * time.Second)
		r = admit(t, st, NewID(), c(500))
		require.True(t, r.Allowed)
		require.Equal(t, int64(200), r.Results[0].Remaining)
	}},
	{"a short burst cap layered on a long limit holds both", func(t *testing.T, st store.Store, clock *FakeClock) {
		perMin := sliding("rl:{o1}:min", 600, time.Minute, 1)
		perSec := sliding("rl:{o1}:sec", 20, time.Second, 1)
		total := 0
		for sec := range 35 {
			inSec := 0
			for range 25 {
				if admit(t, st, NewID(), perMin, perSec).Allowed {
					inSec++
				}
			}
			require.LessOrEqual(t, inSec, 20, "second %d", sec)
			total += inSec
			clock.Advance(time.Second)
		}
		require.Equal(t, 600, total, "20/s for 30s, then the minute limit")
	}},
	{"concurrency cap frees a slot on completion and a crashed holder's slot after its TTL", func(t *testing.T, st store.Store, clock *FakeClock) {
		c := store.Check{Kind: store.KindConcurrency, Key: "rl:{o1}:conc", Limit: 2, Cost: 1, TTL: 30 * time.Second}
		a, b := NewID(), NewID()
		ra := admit(t, st, a, c)
		require.True(t, ra.Allowed)
		require.Equal(t, int64(1), ra.Results[0].Remaining)
		require.True(t, admit(t, st, b, c).Allowed)
		r := admit(t, st, NewID(), c)
		require.False(t, r.Allowed)
		require.Equal(t, time.Second, r.Results[0].RetryAfter)

		settle(t, st, a, ra, []int64{1}, c)
		require.True(t, admit(t, st, NewID(), c).Allowed, "a's slot was released")
		require.False(t, admit(t, st, NewID(), c).Allowed)

		clock.Advance(30 * time.Second) // b and its successor crashed: no settle ever comes
		require.True(t, admit(t, st, NewID(), c).Allowed)
		require.True(t, admit(t, st, NewID(), c).Allowed)
		require.False(t, admit(t, st, NewID(), c).Allowed)
	}},
	{"500 parallel reservations of $0.001 against a $0.05 budget admit exactly 50 and settle exactly $0.05", func(t *testing.T, st store.Store, clock *FakeClock) {
		const key = "budget:{o1}:ns/b:u1:daily:2026-11-25"
		c := budget(key, 50_000_000, 1_000_000, time.Minute)
		var admitted atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, 500)
		for range 500 {
			wg.Go(func() {
				id := NewID()
				r, err := st.Admit(t.Context(), &store.AdmitRequest{ID: id, Checks: []store.Check{c}})
				if err != nil {
					errs <- err
					return
				}
				if !r.Allowed {
					return
				}
				admitted.Add(1)
				errs <- st.Settle(t.Context(), &store.Settlement{ID: id, Ops: []store.SettleOp{{Check: c, Consumed: true, Actual: 1_000_000}}})
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		require.Equal(t, int64(50), admitted.Load())
		require.Equal(t, store.BudgetState{Spent: 50_000_000, Reserved: 0}, budgetState(t, st, key))
	}},
	{"a refused rate limit consumes no budget and a refused budget consumes no rate limit", func(t *testing.T, st store.Store, clock *FakeClock) {
		const key = "budget:{o1}:ns/b:o1:monthly:2026-11-01"
		lim := sliding("rl:{o1}:one", 1, time.Minute, 1)
		b := budget(key, 10_000, 1_000, time.Minute)
		require.True(t, admit(t, st, NewID(), lim, b).Allowed)
		require.Equal(t, int64(1_000), budgetState(t, st, key).Reserved)

		r := admit(t, st, NewID(), lim, b)
		require.False(t, r.Allowed)
		require.False(t, r.Results[0].Allowed)
		require.True(t, r.Results[1].Allowed)
		require.False(t, r.Results[1].Consumed)
		require.Equal(t, int64(1_000), budgetState(t, st, key).Reserved, "nothing reserved for the refused request")

		other := sliding("rl:{o1}:other", 5, time.Minute, 1)
		big := budget(key, 10_000, 20_000, time.Minute)
		r = admit(t, st, NewID(), other, big)
		require.False(t, r.Allowed)
		require.Equal(t, int64(4), r.Results[0].Remaining)
		r = admit(t, st, NewID(), other)
		require.Equal(t, int64(4), r.Results[0].Remaining, "the refused request took no slot of the window")
	}},
	{"a shadow limit reports a refusal but never refuses", func(t *testing.T, st store.Store, clock *FakeClock) {
		sh := sliding("rl:{o1}:shadow", 1, time.Minute, 1)
		sh.Shadow = true
		real := sliding("rl:{o1}:real", 10, time.Minute, 1)
		r := admit(t, st, NewID(), sh, real)
		require.True(t, r.Allowed)
		require.True(t, r.Results[0].Consumed)
		r = admit(t, st, NewID(), sh, real)
		require.True(t, r.Allowed)
		require.False(t, r.Results[0].Allowed)
		require.False(t, r.Results[0].Consumed)
		require.Equal(t, int64(8), r.Results[1].Remaining)
	}},
	{"an expired reservation frees the budget and a late settle is still charged", func(t *testing.T, st store.Store, clock *FakeClock) {
		const key = "budget:{o1}:ns/b:u1:daily:2026-11-25"
		c := budget(key, 1_000, 1_000, 10*time.Second)
		crashed := NewID()
		first := admit(t, st, crashed, c)
		require.True(t, first.Allowed)
		require.False(t, admit(t, st, NewID(), c).Allowed)
		clock.Advance(10 * time.Second)
		require.Equal(t, store.BudgetState{}, budgetState(t, st, key))
		id := NewID()
		r := admit(t, st, id, c)
		require.True(t, r.Allowed, "the crashed replica's reservation expired")
		// The "crashed" request settles after all: its cost is recorded beyond the limit, never lost.
		settle(t, st, crashed, first, []int64{700}, c)
		settle(t, st, id, r, []int64{600}, c)
		require.Equal(t, store.BudgetState{Spent: 1_300}, budgetState(t, st, key))
		r = admit(t, st, NewID(), budget(key, 1_000, 0, 10*time.Second))
		require.False(t, r.Allowed, "an exhausted budget refuses even a free request")
		require.Equal(t, int64(0), r.Results[0].Remaining)
	}},
	{"settle corrects token limits by actual minus estimate", func(t *testing.T, st store.Store, clock *FakeClock) {
		b := bucket("rl:{o1}:tb", 1000, time.Minute, 0, 800)
		id := NewID()
		r := admit(t, st, id, b)
		require.True(t, r.Allowed)
		require.False(t, admit(t, st, NewID(), b).Allowed)
		settle(t, st, id, r, []int64{200}, b) // 600 tokens given back
		r2 := admit(t, st, NewID(), b)
		require.True(t, r2.Allowed)
		require.Equal(t, int64(0), r2.Results[0].Remaining)

		w := func(cost int64) store.Check { return sliding("rl:{o1}:swc", 1000, time.Minute, cost) }
		id = NewID()
		r = admit(t, st, id, w(100))
		require.True(t, r.Allowed)
		settle(t, st, id, r, []int64{900}, w(100)) // the estimate was 800 short
		r = admit(t, st, NewID(), w(200))
		require.False(t, r.Allowed)
		require.Equal(t, int64(100), r.Results[0].Remaining)
		require.Equal(t, time.Minute, r.Results[0].RetryAfter)
		require.True(t, admit(t, st, NewID(), w(100)).Allowed)
	}},
	{"an org named like the global ledger, or like another org's tag, has a ledger of its own", func(t *testing.T, st store.Store, clock *FakeClock) {
		orgs := []string{store.GlobalTag, "~" + store.GlobalTag, "~~" + store.GlobalTag, "acme"}
		hour := Start.Add(time.Hour)
		for i, org := range orgs {
			n := int64(i + 1)
			u := &store.UsageRecord{At: Start, User: "u1", Org: org, APIKey: "ns/key", Model: "gpt-4o", Provider: "ns/p",
				Requests: 1, Tokens: 10 * n, Cost: 1_000 * n}
			require.NoError(t, st.Settle(t.Context(), &store.Settlement{ID: NewID(), Usage: u}))
			// A stream of the same org, recorded by two checkpoints and its final settle.
			id := NewID()
			for _, f := range []int64{1, 2} {
				u := *u
				u.Tokens, u.Cost = f*u.Tokens, f*u.Cost
				require.NoError(t, st.Checkpoint(t.Context(), progress(id, nil, nil, &u)))
			}
			final := *u
			final.Tokens, final.Cost = 3*u.Tokens, 3*u.Cost
			require.NoError(t, st.Settle(t.Context(), progress(id, nil, nil, &final)))
		}
		var all store.Totals
		for i, org := range orgs {
			n := int64(i + 1)
			want := store.Totals{Requests: 2, Tokens: 40 * n, Cost: 4_000 * n}
			require.Equal(t, want, ledgerTotal(t, st, store.OrgTag(org), store.LedgerKey{Dim: store.DimTotal}, Start, hour), "org %q", org)
			require.Equal(t, want, ledgerTotal(t, st, store.GlobalTag, store.LedgerKey{Dim: store.DimOrg, Key: org}, Start, hour), "org %q", org)
			all.Add(want)
		}
		require.Equal(t, all, ledgerTotal(t, st, store.GlobalTag, store.LedgerKey{Dim: store.DimTotal}, Start, hour), "every org once")
	}},
	{"the ledger sums usage exactly per hour and dimension", func(t *testing.T, st store.Store, clock *FakeClock) {
		rng := rand.New(rand.NewPCG(1, 2))
		users, models := []string{"u1", "u2", "u3"}, []string{"gpt-4o", "llama3:8b"}
		want := map[store.LedgerKey]store.Totals{}
		wantGlobal := map[store.LedgerKey]store.Totals{}
		var wantHour store.Totals
		for i := range 600 {
			u := &store.UsageRecord{
				At:   Start.Add(time.Duration(i) * 10 * time.Second), // 100 minutes
				User: users[rng.IntN(3)], Org: []string{"o1", "o2"}[rng.IntN(2)], APIKey: "ns/key",
				Model: models[rng.IntN(2)], Provider: "ns/p", Requests: 1,
				Tokens: rng.Int64N(5000), Cost: rng.Int64N(50_000_000),
			}
			require.NoError(t, st.Settle(t.Context(), &store.Settlement{ID: NewID(), Usage: u}))
			add := store.Totals{Requests: 1, Tokens: u.Tokens, Cost: u.Cost}
			g := wantGlobal[store.LedgerKey{Dim: store.DimOrg, Key: u.Org}]
			g.Add(add)
			wantGlobal[store.LedgerKey{Dim: store.DimOrg, Key: u.Org}] = g
			if u.Org != "o1" {
				continue
			}
			for _, k := range []store.LedgerKey{{Dim: store.DimTotal}, {Dim: store.DimUser, Key: u.User}, {Dim: store.DimModel, Key: u.Model},
				{Dim: store.DimUserModel, Key: u.User + store.KeySep + u.Model}, {Dim: store.DimAPIKey, Key: "ns/key"}} {
				v := want[k]
				v.Add(add)
				want[k] = v
			}
			if u.At.Before(Start.Add(time.Hour)) {
				wantHour.Add(add)
			}
		}
		hours, err := st.Ledger(t.Context(), "o1", Start, Start.Add(2*time.Hour))
		require.NoError(t, err)
		require.Len(t, hours, 2)
		require.Equal(t, Start, hours[0].Hour)
		require.Equal(t, wantHour, hours[0].Cells[store.LedgerKey{Dim: store.DimTotal}])
		got := map[store.LedgerKey]store.Totals{}
		for _, h := range hours {
			for k, v := range h.Cells {
				g := got[k]
				g.Add(v)
				got[k] = g
			}
		}
		for k, v := range want {
			require.Equal(t, v, got[k], "%q %q", k.Dim, k.Key)
		}
		global, err := st.Ledger(t.Context(), store.GlobalTag, Start, Start.Add(2*time.Hour))
		require.NoError(t, err)
		gotGlobal := map[store.LedgerKey]store.Totals{}
		for _, h := range global {
			for _, o := range []string{"o1", "o2"} {
				k := store.LedgerKey{Dim: store.DimOrg, Key: o}
				g := gotGlobal[k]
				g.Add(h.Cells[k])
				gotGlobal[k] = g
			}
		}
		require.Equal(t, wantGlobal, gotGlobal)
		none, err := st.Ledger(t.Context(), "o1", Start.Add(-48*time.Hour), Start)
		require.NoError(t, err)
		require.Empty(t, none)
	}},
	{"checkpoints charge a running call as it goes, shrink its reservation, and the final settle charges only the remainder", func(t *testing.T, st store.Store, clock *FakeClock) {
		const userKey, orgKey = "budget:{u:u1}:ns/u:u1:daily:2026-11-25", "budget:{o1}:ns/o:o1:monthly:2026-11-01"
		user, org := budget(userKey, 10_000, 4_000, time.Minute), budget(orgKey, 100_000, 4_000, time.Minute)
		conc := store.Check{Kind: store.KindConcurrency, Key: "rl:{o1}:streams", Limit: 1, Cost: 1, TTL: time.Minute}
		checks := []store.Check{user, org, conc}
		clock.Set(Start.Add(59*time.Minute + 58*time.Second)) // the call spans an hour of the ledger
		id := NewID()
		r := admit(t, st, id, checks...)
		require.True(t, r.Allowed)
		usage := func(tokens, cost int64) *store.UsageRecord {
			return &store.UsageRecord{At: clock.Now(), User: "u1", Org: "o1", Model: "m", Requests: 1, Tokens: tokens, Cost: cost}
		}
		total := store.LedgerKey{Dim: store.DimTotal}
		from, to := Start, Start.Add(2*time.Hour)

		require.NoError(t, st.Checkpoint(t.Context(), progress(id, r, []int64{1_000, 1_000, 1}, usage(100, 1_000), checks...)))
		require.Equal(t, store.BudgetState{Spent: 1_000, Reserved: 3_000}, budgetState(t, st, userKey),
			"spent + reserved stays the 4 000 admission reserved")
		require.Equal(t, store.BudgetState{Spent: 1_000, Reserved: 3_000}, budgetState(t, st, orgKey))
		require.Equal(t, store.Totals{Requests: 1, Tokens: 100, Cost: 1_000}, ledgerTotal(t, st, "o1", total, from, to))
		require.False(t, admit(t, st, NewID(), conc).Allowed, "a checkpoint keeps the concurrency slot")

		// The same totals again (a retried checkpoint) charge nothing.
		require.NoError(t, st.Checkpoint(t.Context(), progress(id, r, []int64{1_000, 1_000, 1}, usage(100, 1_000), checks...)))
		require.Equal(t, store.BudgetState{Spent: 1_000, Reserved: 3_000}, budgetState(t, st, userKey))
		require.Equal(t, store.Totals{Requests: 1, Tokens: 100, Cost: 1_000}, ledgerTotal(t, st, "o1", total, from, to))

		clock.Advance(time.Second)
		require.NoError(t, st.Checkpoint(t.Context(), progress(id, r, []int64{2_500, 2_500, 1}, usage(250, 2_500), checks...)))
		require.Equal(t, store.BudgetState{Spent: 2_500, Reserved: 1_500}, budgetState(t, st, userKey))
		id2 := NewID()
		r2 := admit(t, st, id2, budget(userKey, 10_000, 6_000, time.Minute))
		require.True(t, r2.Allowed, "what the checkpoints moved from reserved to spent is not counted twice")
		require.Equal(t, int64(0), r2.Results[0].Remaining)
		settle(t, st, id2, r2, []int64{0}, budget(userKey, 10_000, 6_000, time.Minute))

		// The provider reports less than the tokenizer counted: the remainder is negative.
		clock.Advance(2 * time.Second) // into the next hour
		require.NoError(t, st.Settle(t.Context(), progress(id, r, []int64{2_200, 2_200, 1}, usage(240, 2_200), checks...)))
		require.Equal(t, store.BudgetState{Spent: 2_200}, budgetState(t, st, userKey), "the reservation left is released")
		require.Equal(t, store.BudgetState{Spent: 2_200}, budgetState(t, st, orgKey))
		require.Equal(t, store.Totals{Requests: 1, Tokens: 240, Cost: 2_200}, ledgerTotal(t, st, "o1", total, from, to),
			"the ledger holds exactly the final totals")
		require.Equal(t, store.Totals{Requests: 1, Tokens: 240, Cost: 2_200}, ledgerTotal(t, st, store.GlobalTag, total, from, to))
		first, err := st.Ledger(t.Context(), "o1", Start, Start.Add(time.Hour))
		require.NoError(t, err)
		require.Len(t, first, 1)
		require.Equal(t, store.Totals{Requests: 1, Tokens: 250, Cost: 2_500}, first[0].Cells[total], "checkpoints went to the hour they ran in")
		require.True(t, admit(t, st, NewID(), conc).Allowed, "the final settle released the concurrency slot")

		// A checkpoint that reaches the store after the final settle charges nothing.
		require.NoError(t, st.Checkpoint(t.Context(), progress(id, r, []int64{3_000, 3_000, 1}, usage(300, 3_000), checks...)))
		require.Equal(t, store.BudgetState{Spent: 2_200}, budgetState(t, st, userKey))
		require.Equal(t, store.Totals{Requests: 1, Tokens: 240, Cost: 2_200}, ledgerTotal(t, st, "o1", total, from, to))
	}},
	{"a call killed after checkpoints keeps what they charged and its shrunk reservation expires with its TTL", func(t *testing.T, st store.Store, clock *FakeClock) {
		const key = "budget:{u:u2}:ns/u:u2:daily:2026-11-25"
		c := budget(key, 10_000, 4_000, 10*time.Second)
		id := NewID()
		r := admit(t, st, id, c)
		require.True(t, r.Allowed)
		u := &store.UsageRecord{At: clock.Now(), User: "u2", Org: "o2", Model: "m", Requests: 1, Tokens: 150, Cost: 1_500}
		require.NoError(t, st.Checkpoint(t.Context(), progress(id, r, []int64{1_500}, u, c)))
		require.Equal(t, store.BudgetState{Spent: 1_500, Reserved: 2_500}, budgetState(t, st, key))
		require.False(t, admit(t, st, NewID(), budget(key, 10_000, 6_001, 10*time.Second)).Allowed, "1 500 spent + 2 500 reserved leave 6 000")

		clock.Advance(10 * time.Second) // the replica died: no settle ever comes
		require.Equal(t, store.BudgetState{Spent: 1_500}, budgetState(t, st, key))
		r2 := admit(t, st, NewID(), budget(key, 10_000, 8_500, 10*time.Second))
		require.True(t, r2.Allowed, "exactly the budget less what the checkpoints charged is free again")
		require.Equal(t, int64(0), r2.Results[0].Remaining)
		require.Equal(t, store.Totals{Requests: 1, Tokens: 150, Cost: 1_500},
			ledgerTotal(t, st, "o2", store.LedgerKey{Dim: store.DimTotal}, Start, Start.Add(time.Hour)))
	}},
	{"a checkpoint beyond the worst case empties the reservation, which never grows back", func(t *testing.T, st store.Store, clock *FakeClock) {
		const key = "budget:{u:u3}:ns/u:u3:daily:2026-11-25"
		c := budget(key, 10_000, 1_000, time.Minute)
		other := budget(key, 10_000, 500, time.Minute)
		oid := NewID()
		or := admit(t, st, oid, other)
		require.True(t, or.Allowed)
		id := NewID()
		r := admit(t, st, id, c)
		require.True(t, r.Allowed)
		require.NoError(t, st.Checkpoint(t.Context(), progress(id, r, []int64{1_500}, nil, c)))
		require.Equal(t, store.BudgetState{Spent: 1_500, Reserved: 500}, budgetState(t, st, key), "only the other call's reservation is left")
		require.NoError(t, st.Checkpoint(t.Context(), progress(id, r, []int64{800}, nil, c)))
		require.Equal(t, store.BudgetState{Spent: 800, Reserved: 500}, budgetState(t, st, key), "a lower total gives spend back, not reservation")
		require.NoError(t, st.Settle(t.Context(), progress(id, r, []int64{1_300}, nil, c)))
		require.Equal(t, store.BudgetState{Spent: 1_300, Reserved: 500}, budgetState(t, st, key), "the other call's reservation is untouched")
		settle(t, st, oid, or, []int64{400}, other)
		require.Equal(t, store.BudgetState{Spent: 1_700}, budgetState(t, st, key))
	}},
	{"the cache returns what was set and refuses values over its bound", func(t *testing.T, st store.Store, clock *FakeClock) {
		kv := st.Cache()
		_, ok, err := kv.Get(t.Context(), "k1")
		require.NoError(t, err)
		require.False(t, ok)
		require.NoError(t, kv.Set(t.Context(), "k1", []byte("reply"), time.Minute))
		v, ok, err := kv.Get(t.Context(), "k1")
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, []byte("reply"), v)
		require.ErrorIs(t, kv.Set(t.Context(), "big", make([]byte, 65<<20), time.Minute), store.ErrValueTooLarge)
	}},
	{"checkpoints renew a running call's reservation and concurrency slot for another TTL", func(t *testing.T, st store.Store, clock *FakeClock) {
		const key = "budget:{o1}:ns/o:o1:daily:renew"
		b := budget(key, 10_000, 4_000, time.Minute)
		conc := store.Check{Kind: store.KindConcurrency, Key: "rl:{o1}:renew", Limit: 1, Cost: 1, TTL: time.Minute}
		id := NewID()
		r := admit(t, st, id, b, conc)
		require.True(t, r.Allowed)
		for range 3 { // the call runs three minutes, three times its TTL
			clock.Advance(50 * time.Second)
			require.NoError(t, st.Checkpoint(t.Context(), progress(id, r, []int64{1_000, 1}, nil, b, conc)))
		}
		clock.Advance(50 * time.Second) // 200 s after admission, 50 s after the last checkpoint
		require.Equal(t, store.BudgetState{Spent: 1_000, Reserved: 3_000}, budgetState(t, st, key), "the reservation is still held")
		require.False(t, admit(t, st, NewID(), conc).Allowed, "the slot is still held")

		clock.Advance(11 * time.Second) // the call stopped checkpointing (killed): both expire a TTL after the last
		require.Equal(t, store.BudgetState{Spent: 1_000}, budgetState(t, st, key))
		id2 := NewID()
		r2 := admit(t, st, id2, conc)
		require.True(t, r2.Allowed, "the slot expired")
		settle(t, st, id2, r2, []int64{1}, conc)
	}},
	{"an admission reads the cache key it peeks at, and a settle writes the value it puts", func(t *testing.T, st store.Store, clock *FakeClock) {
		c := sliding("rl:{o1}:peek", 1, time.Minute, 1)
		key := "peek-" + NewID()
		r, err := st.Admit(t.Context(), &store.AdmitRequest{ID: NewID(), Checks: []store.Check{c}, Peek: key})
		require.NoError(t, err)
		require.True(t, r.Allowed)
		require.False(t, r.PeekFound)
		require.NoError(t, r.PeekErr)
		put := &store.KVPut{Key: key, Value: []byte("reply"), TTL: time.Minute}
		require.NoError(t, st.Settle(t.Context(), &store.Settlement{ID: NewID(), Put: put}))
		require.NoError(t, put.Err)

		// A refused admission still reads the key; so does one without checks.
		r, err = st.Admit(t.Context(), &store.AdmitRequest{ID: NewID(), Checks: []store.Check{c}, Peek: key})
		require.NoError(t, err)
		require.False(t, r.Allowed)
		require.True(t, r.PeekFound)
		require.Equal(t, []byte("reply"), r.Peeked)
		r, err = st.Admit(t.Context(), &store.AdmitRequest{ID: NewID(), Peek: key})
		require.NoError(t, err)
		require.True(t, r.PeekFound)
		require.Equal(t, []byte("reply"), r.Peeked)

		// An oversize value is refused in Err; the settle itself still applies.
		b := budget("budget:{o1}:peek", 1_000, 100, time.Minute)
		id := NewID()
		br := admit(t, st, id, b)
		big := &store.KVPut{Key: key + "-big", Value: make([]byte, 65<<20), TTL: time.Minute}
		require.NoError(t, st.Settle(t.Context(), &store.Settlement{ID: id,
			Ops: []store.SettleOp{{Check: b, Consumed: br.Results[0].Consumed, Actual: 70}}, Put: big}))
		require.ErrorIs(t, big.Err, store.ErrValueTooLarge)
		require.Equal(t, store.BudgetState{Spent: 70}, budgetState(t, st, b.Key))
	}},
	{"malformed checks are refused with a clear error", func(t *testing.T, st store.Store, clock *FakeClock) {
		for _, c := range []store.Check{
			{Kind: store.KindTokenBucket, Key: "rl:{o1}:x", Limit: 0, Window: time.Second, Cost: 1},
			{Kind: store.KindSlidingWindow, Key: "rl:{o1}:x", Limit: 1, Window: 0, Cost: 1},
			{Kind: 99, Key: "rl:{o1}:x", Limit: 1},
			{Kind: store.KindBudget, Key: "", Limit: 1, TTL: time.Second},
		} {
			_, err := st.Admit(t.Context(), &store.AdmitRequest{ID: NewID(), Checks: []store.Check{c}})
			require.ErrorIs(t, err, store.ErrInvalidCheck)
		}
	}},
}
