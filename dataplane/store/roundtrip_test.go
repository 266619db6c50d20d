package store_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/store"
	"github.com/nself-org/ai-orchestration/dataplane/store/storetest"
)

// roundTrips counts what go-redis sends: one per command outside a pipeline, one per pipeline.
type roundTrips struct{ n atomic.Int64 }

func (h *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}

func (h *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmds)
	}
}

var _ redis.Hook = (*roundTrips)(nil)

// manyChecks is what one request may carry: three rate limits and three budget periods of one org.
func manyChecks(i int) []store.Check {
	return []store.Check{
		{Kind: store.KindTokenBucket, Key: "rl:{o1}:rpm:u1", Limit: 1 << 40, Window: time.Minute, Cost: 1},
		{Kind: store.KindSlidingWindow, Key: fmt.Sprintf("rl:{o1}:tpm:u%d", i%64), Limit: 1 << 40, Window: time.Second, Cost: 100},
		{Kind: store.KindConcurrency, Key: "rl:{o1}:conc", Limit: 1 << 20, Cost: 1, TTL: time.Minute},
		{Kind: store.KindBudget, Key: "budget:{o1}:ns/u:u1:daily:2026-11-25", Limit: 1 << 50, Cost: 1000, TTL: time.Minute, Expire: time.Hour},
		{Kind: store.KindBudget, Key: "budget:{o1}:ns/o:o1:monthly:2026-11-01", Limit: 1 << 50, Cost: 1000, TTL: time.Minute, Expire: time.Hour},
		{Kind: store.KindBudget, Key: "budget:{o1}:ns/o:o1:weekly:2026-11-23", Limit: 1 << 50, Cost: 1000, TTL: time.Minute, Expire: time.Hour},
	}
}

func settlementFor(id string, checks []store.Check, r *store.AdmitResult) *store.Settlement {
	s := &store.Settlement{ID: id, Usage: &store.UsageRecord{At: storetest.Start, User: "u1", Org: "o1", APIKey: "ns/k",
		Model: "gpt-4o", Provider: "ns/openai", Requests: 1, Tokens: 120, Cost: 900}}
	for i, c := range checks {
		actual := c.Cost
		if c.Kind == store.KindBudget {
			actual = 900
		}
		if c.Kind == store.KindSlidingWindow {
			actual = 120
		}
		s.Ops = append(s.Ops, store.SettleOp{Check: c, Consumed: r.Results[i].Consumed, Actual: actual})
	}
	return s
}

func TestRedisDecidesEveryLimitAndBudgetOfOneSlotInOneRoundTrip(t *testing.T) {
	c := storetest.NewRedisClient(t, storetest.RedisURL(t))
	hook := &roundTrips{}
	c.AddHook(hook)
	clock := storetest.NewFakeClock(storetest.Start)
	st := store.NewRedis(c, store.RedisOptions{Prefix: fmt.Sprintf("rt%d:", time.Now().UnixNano()), Clock: clock, SplitByTag: true})
	checks := manyChecks(0)
	id := storetest.NewID()
	r, err := st.Admit(t.Context(), &store.AdmitRequest{ID: id, Checks: checks}) // loads the script (NOSCRIPT → EVAL)
	require.NoError(t, err)
	require.NoError(t, st.Settle(t.Context(), settlementFor(id, checks, r)))

	hook.n.Store(0)
	id = storetest.NewID()
	r, err = st.Admit(t.Context(), &store.AdmitRequest{ID: id, Checks: checks})
	require.NoError(t, err)
	require.True(t, r.Allowed)
	require.Equal(t, int64(1), hook.n.Load(), "six checks of one org: one EVALSHA")
	hook.n.Store(0)
	require.NoError(t, st.Settle(t.Context(), settlementFor(id, checks, r)))
	require.Equal(t, int64(1), hook.n.Load(), "settle with ledger (org and global): one pipeline")

	// With the response cache: the lookup rides with the admission, the write with the settle.
	hook.n.Store(0)
	id = storetest.NewID()
	r, err = st.Admit(t.Context(), &store.AdmitRequest{ID: id, Checks: checks, Peek: "rt-" + id})
	require.NoError(t, err)
	require.True(t, r.Allowed)
	require.False(t, r.PeekFound)
	require.Equal(t, int64(1), hook.n.Load(), "six checks and a cache lookup: one pipeline")
	hook.n.Store(0)
	s := settlementFor(id, checks, r)
	s.Put = &store.KVPut{Key: "rt-" + id, Value: []byte("reply"), TTL: time.Minute}
	require.NoError(t, st.Settle(t.Context(), s))
	require.NoError(t, s.Put.Err)
	require.Equal(t, int64(1), hook.n.Load(), "settle, ledger and a cache write: one pipeline")

	// A stream: two checkpoints and the final settle of the same admission, one pipeline each
	// (budgets of {o1}, the org ledger and the global ledger; two slots, pipelined together).
	id = storetest.NewID()
	r, err = st.Admit(t.Context(), &store.AdmitRequest{ID: id, Checks: checks})
	require.NoError(t, err)
	for range 2 {
		hook.n.Store(0)
		cp := settlementFor(id, checks, r)
		cp.Checkpointed = true
		require.NoError(t, st.Checkpoint(t.Context(), cp))
		require.Equal(t, int64(1), hook.n.Load(), "a checkpoint: one pipeline")
	}
	hook.n.Store(0)
	final := settlementFor(id, checks, r)
	final.Checkpointed = true
	require.NoError(t, st.Settle(t.Context(), final))
	require.Equal(t, int64(1), hook.n.Load(), "the final settle of a checkpointed stream: one pipeline")

	hook.n.Store(0)
	global := append(manyChecks(0), store.Check{Kind: store.KindSlidingWindow, Key: "rl:{global}:model", Limit: 1 << 40, Window: time.Minute, Cost: 1})
	_, err = st.Admit(t.Context(), &store.AdmitRequest{ID: storetest.NewID(), Checks: global})
	require.NoError(t, err)
	require.Equal(t, int64(2), hook.n.Load(), "on a cluster, a second tag costs a second call")
}

func benchmarkAdmitSettle(b *testing.B, st store.Store) {
	ctx := b.Context()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		checks := manyChecks(i)
		id := storetest.NewID()
		r, err := st.Admit(ctx, &store.AdmitRequest{ID: id, Checks: checks})
		if err != nil || !r.Allowed {
			b.Fatalf("admit: %v %v", err, r)
		}
		if err := st.Settle(ctx, settlementFor(id, checks, r)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAdmitSettle measures one request's store work: six checks admitted, then settled
// with a ledger entry. The Redis variant also reports round trips per operation.
func BenchmarkAdmitSettle(b *testing.B) {
	b.Run("memory", func(b *testing.B) {
		benchmarkAdmitSettle(b, store.NewMemory(store.MemoryOptions{Clock: storetest.NewFakeClock(storetest.Start)}))
	})
	b.Run("redis", func(b *testing.B) {
		c := storetest.NewRedisClient(b, storetest.RedisURL(b))
		hook := &roundTrips{}
		c.AddHook(hook)
		st := store.NewRedis(c, store.RedisOptions{Prefix: fmt.Sprintf("bench%d:", time.Now().UnixNano())})
		hook.n.Store(0)
		benchmarkAdmitSettle(b, st)
		b.ReportMetric(float64(hook.n.Load())/float64(b.N), "roundtrips/op")
	})
}
