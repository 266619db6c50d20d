package store_test

import (
	"fmt"
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
