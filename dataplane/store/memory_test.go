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

func TestMemoryConformance(t *testing.T) {
	storetest.Run(t, storetest.NewMemoryStore)
}

func TestMemoryCacheEvictsLeastRecentlyUsedByBytesAndExpires(t *testing.T) {
	clock := storetest.NewFakeClock(storetest.Start)
	kv := store.NewMemory(store.MemoryOptions{Clock: clock, CacheBytes: 30}).Cache()
	ctx := t.Context()
	require.NoError(t, kv.Set(ctx, "a", []byte("123456789"), time.Minute)) // 10 bytes
	require.NoError(t, kv.Set(ctx, "b", []byte("123456789"), time.Minute))
	require.NoError(t, kv.Set(ctx, "c", []byte("123456789"), time.Minute))
	_, ok, _ := kv.Get(ctx, "a") // a becomes the most recently used
	require.True(t, ok)
	require.NoError(t, kv.Set(ctx, "d", []byte("123456789"), time.Minute))
	_, ok, _ = kv.Get(ctx, "b")
	require.False(t, ok, "b was least recently used")
	for _, k := range []string{"a", "c", "d"} {
		_, ok, _ = kv.Get(ctx, k)
		require.True(t, ok, k)
	}
	clock.Advance(time.Minute)
	_, ok, _ = kv.Get(ctx, "a")
	require.False(t, ok, "expired")
}

// The memory store looks for expired reservations and slots only once the earliest may have
// expired; this holds it to expiring each one at its own time, whatever the order they were made
// or renewed in.
func TestMemoryExpiresEachReservationAndSlotAtItsOwnTime(t *testing.T) {
	clock := storetest.NewFakeClock(storetest.Start)
	st := store.NewMemory(store.MemoryOptions{Clock: clock})
	ctx := t.Context()
	budget := func(cost int64, ttl time.Duration) store.Check {
		return store.Check{Kind: store.KindBudget, Key: "b:{o1}", Limit: 1 << 40, Cost: cost, TTL: ttl, Expire: time.Hour}
	}
	slot := func(ttl time.Duration) store.Check {
		return store.Check{Kind: store.KindConcurrency, Key: "c:{o1}", Limit: 100, Cost: 1, TTL: ttl}
	}
	// Admission ri reserves i units and holds a slot for i minutes; the first made expires last.
	for i := 4; i >= 1; i-- {
		ttl := time.Duration(i) * time.Minute
		r, err := st.Admit(ctx, &store.AdmitRequest{ID: fmt.Sprint("r", i), Checks: []store.Check{budget(int64(i), ttl), slot(ttl)}})
		require.NoError(t, err)
		require.True(t, r.Allowed)
	}
	// A checkpoint renews r1's reservation and slot for ten minutes: it now expires last.
	require.NoError(t, st.Checkpoint(ctx, &store.Settlement{ID: "r1", Checkpointed: true, Ops: []store.SettleOp{
		{Check: budget(1, 10*time.Minute), Consumed: true},
		{Check: slot(10 * time.Minute), Consumed: true, Actual: 1},
	}}))
	// A probe refused by another budget consumes nothing but reports both.
	probe := func() (reserved, holders int64) {
		t.Helper()
		r, err := st.Admit(ctx, &store.AdmitRequest{ID: storetest.NewID(), Checks: []store.Check{
			budget(0, time.Minute), slot(time.Minute),
			{Kind: store.KindBudget, Key: "full:{o1}", Limit: 1, Cost: 5, TTL: time.Minute, Expire: time.Hour},
		}})
		require.NoError(t, err)
		require.False(t, r.Allowed)
		states, err := st.Budgets(ctx, []string{"b:{o1}"})
		require.NoError(t, err)
		require.Equal(t, r.Results[0].Reserved, states[0].Reserved, "admission and Budgets agree")
		return r.Results[0].Reserved, 100 - 1 - r.Results[1].Remaining
	}
	steps := []struct {
		at                time.Duration
		reserved, holders int64
	}{
		{0, 10, 4},
		{time.Minute, 10, 4}, // r1 renewed
		{2*time.Minute - time.Microsecond, 10, 4},
		{2 * time.Minute, 8, 3},
		{3 * time.Minute, 5, 2},
		{4 * time.Minute, 1, 1},
		{10*time.Minute - time.Microsecond, 1, 1},
		{10 * time.Minute, 0, 0},
	}
	for _, s := range steps {
		clock.Set(storetest.Start.Add(s.at))
		reserved, holders := probe()
		require.Equal(t, s.reserved, reserved, "reserved at %s", s.at)
		require.Equal(t, s.holders, holders, "holders at %s", s.at)
	}
}

func TestMemoryCacheRewritesAKeyInPlaceAndCountsItsBytesOnce(t *testing.T) {
	clock := storetest.NewFakeClock(storetest.Start)
	kv := store.NewMemory(store.MemoryOptions{Clock: clock, CacheBytes: 30}).Cache()
	ctx := t.Context()
	require.NoError(t, kv.Set(ctx, "a", []byte("123456789"), time.Minute)) // 10 bytes
	require.NoError(t, kv.Set(ctx, "b", []byte("123456789"), time.Minute))
	// Rewritten ten times, shorter, then as long again: still 10 bytes, and now the most recent.
	for range 10 {
		require.NoError(t, kv.Set(ctx, "a", []byte("1"), time.Minute))
	}
	require.NoError(t, kv.Set(ctx, "a", []byte("abcdefghi"), 2*time.Minute))
	require.NoError(t, kv.Set(ctx, "c", []byte("123456789"), time.Minute)) // 30 bytes: all fit
	for _, k := range []string{"a", "b", "c"} {
		_, ok, _ := kv.Get(ctx, k)
		require.True(t, ok, k)
	}
	require.NoError(t, kv.Set(ctx, "d", []byte("123456789"), time.Minute)) // evicts the least recent: a
	_, ok, _ := kv.Get(ctx, "a")
	require.False(t, ok, "a was least recently used")
	clock.Advance(time.Minute)
	require.NoError(t, kv.Set(ctx, "e", []byte("x"), time.Minute))
	v, ok, _ := kv.Get(ctx, "e")
	require.True(t, ok)
	require.Equal(t, []byte("x"), v)
	for _, k := range []string{"b", "c", "d"} {
		_, ok, _ = kv.Get(ctx, k)
		require.False(t, ok, "%s expired", k)
	}
}

// The memory store keeps each detail cell once, for its org's ledger and the global one alike;
// this holds every tag's ledger to Redis's, which writes each ledger apart, over records with and
// without an org, an org spelled like the global tag, several hours, and checkpointed calls.
func TestMemoryLedgersMatchRedisForEveryTag(t *testing.T) {
	rd, _ := storetest.NewRedisStore(false)(t)
	mem, _ := storetest.NewMemoryStore(t)
	ctx := t.Context()
	rng := rand.New(rand.NewPCG(11, 3))
	orgs := []string{"o1", "o2", "", store.GlobalTag}
	for i := range 400 {
		u := &store.UsageRecord{
			At:   storetest.Start.Add(time.Duration(rng.Int64N(int64(3 * time.Hour)))),
			User: fmt.Sprint("u", rng.IntN(4)), Org: orgs[rng.IntN(len(orgs))], APIKey: fmt.Sprint("ns/k", rng.IntN(2)),
			Model: fmt.Sprint("m", rng.IntN(3)), Provider: "ns/p", Requests: 1, Tokens: rng.Int64N(5000), Cost: rng.Int64N(1_000_000),
		}
		id := fmt.Sprint("ledger-", i)
		for _, st := range []store.Store{rd, mem} {
			s := &store.Settlement{ID: id, Usage: u}
			// A stream: half its usage checkpointed, then settled with its totals. Not for the org
			// spelled like the global tag, whose two ledgers Redis's checkpoints record as one.
			if i%5 == 0 && u.Org != store.GlobalTag {
				half := *u
				half.Tokens, half.Cost = u.Tokens/2, u.Cost/2
				require.NoError(t, st.Checkpoint(ctx, &store.Settlement{ID: id, Checkpointed: true, Usage: &half}))
				s.Checkpointed = true
			}
			require.NoError(t, st.Settle(ctx, s))
		}
	}
	for _, tag := range append(orgs, "o3") {
		want, err := rd.Ledger(ctx, tag, storetest.Start, storetest.Start.Add(3*time.Hour))
		require.NoError(t, err)
		got, err := mem.Ledger(ctx, tag, storetest.Start, storetest.Start.Add(3*time.Hour))
		require.NoError(t, err)
		require.Equal(t, want, got, "ledger %q", tag)
		if tag == "o1" || tag == store.GlobalTag {
			require.Len(t, got, 3, "ledger %q has every hour", tag)
		}
	}
}

// A full cache reuses the entry of the value it evicts; a value read before stays as it was.
func TestMemoryCacheEvictionKeepsValuesAlreadyRead(t *testing.T) {
	kv := store.NewMemory(store.MemoryOptions{Clock: storetest.NewFakeClock(storetest.Start), CacheBytes: 20}).Cache()
	ctx := t.Context()
	require.NoError(t, kv.Set(ctx, "a", []byte("aaaaaaaaa"), time.Minute)) // 10 bytes
	require.NoError(t, kv.Set(ctx, "b", []byte("bbbbbbbbb"), time.Minute))
	held, ok, _ := kv.Get(ctx, "a")
	require.True(t, ok)
	for i := range 6 { // each write evicts the least recent entry
		require.NoError(t, kv.Set(ctx, fmt.Sprint("k", i), []byte(fmt.Sprint(i, "xxxxxxx")), time.Minute))
	}
	require.Equal(t, []byte("aaaaaaaaa"), held)
	for _, k := range []string{"a", "b", "k0", "k1", "k2", "k3"} {
		_, ok, _ := kv.Get(ctx, k)
		require.False(t, ok, "%s evicted", k)
	}
	for i := 4; i < 6; i++ {
		v, ok, _ := kv.Get(ctx, fmt.Sprint("k", i))
		require.True(t, ok)
		require.Equal(t, []byte(fmt.Sprint(i, "xxxxxxx")), v)
	}
}

// AdmitTo decides as Admit does, whatever its results held before, and wants one per check.
func TestMemoryAdmitToDecidesAsAdmit(t *testing.T) {
	ctx := t.Context()
	a := store.NewMemory(store.MemoryOptions{Clock: storetest.NewFakeClock(storetest.Start)})
	b := store.NewMemory(store.MemoryOptions{Clock: storetest.NewFakeClock(storetest.Start)})
	for _, st := range []store.Store{a, b} {
		require.NoError(t, st.Cache().Set(ctx, "peek", []byte("v"), time.Minute))
	}
	checks := []store.Check{
		{Kind: store.KindTokenBucket, Key: "tb:{o1}", Limit: 3, Window: time.Minute, Cost: 1},
		{Kind: store.KindBudget, Key: "b:{o1}", Limit: 2500, Cost: 1000, TTL: time.Minute, Expire: time.Hour},
	}
	for i := range 4 { // the budget refuses the last two
		req := &store.AdmitRequest{ID: fmt.Sprint("r", i), Checks: checks, Peek: "peek"}
		want, err := a.Admit(ctx, req)
		require.NoError(t, err)
		results := []store.CheckResult{{Allowed: true, Consumed: true, Remaining: 99, Spent: 7}, {Evaluated: true, RetryAfter: time.Hour}}
		allowed, peeked, found, err := b.AdmitTo(req, results)
		require.NoError(t, err)
		require.Equal(t, want.Allowed, allowed, "admission %d", i)
		require.Equal(t, want.Results, results, "admission %d", i)
		require.True(t, found)
		require.Equal(t, want.Peeked, peeked)
		require.Equal(t, i < 2, allowed, "admission %d", i)
	}
	_, _, _, err := b.AdmitTo(&store.AdmitRequest{ID: "x", Checks: checks}, make([]store.CheckResult, 1))
	require.Error(t, err)
}
