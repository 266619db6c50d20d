package store_test

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/store"
	"github.com/nself-org/ai-orchestration/dataplane/store/storetest"
)

// TestMain stops the redis-server the tests may have started.
func TestMain(m *testing.M) {
	code := m.Run()
	storetest.StopRedis()
	os.Exit(code)
}

func TestRedisConformance(t *testing.T) {
	storetest.Run(t, storetest.NewRedisStore(false))
}

// TestRedisConformanceOneCallPerSlot runs the suite with one script call per hash tag, as on a
// Cluster: checkpoints keep one progress record per slot, and every case must still hold.
func TestRedisConformanceOneCallPerSlot(t *testing.T) {
	storetest.Run(t, storetest.NewRedisStore(true))
}

func TestRedisAcrossSlotsReleasesWhatAnEarlierSlotReservedWhenALaterSlotRefuses(t *testing.T) {
	st, _ := storetest.NewRedisStore(true)(t)
	orgBudget := store.Check{Kind: store.KindBudget, Key: "budget:{o1}:ns/b:o1:daily:d", Limit: 1000, Cost: 400, TTL: time.Minute, Expire: time.Hour}
	global := store.Check{Kind: store.KindSlidingWindow, Key: "rl:{global}:g", Limit: 1, Window: time.Minute, Cost: 1}
	r, err := st.Admit(t.Context(), &store.AdmitRequest{ID: storetest.NewID(), Checks: []store.Check{orgBudget, global}})
	require.NoError(t, err)
	require.True(t, r.Allowed)
	r, err = st.Admit(t.Context(), &store.AdmitRequest{ID: storetest.NewID(), Checks: []store.Check{orgBudget, global}})
	require.NoError(t, err)
	require.False(t, r.Allowed)
	require.True(t, r.Results[0].Allowed)
	require.False(t, r.Results[0].Consumed)
	b, err := st.Budgets(t.Context(), []string{orgBudget.Key})
	require.NoError(t, err)
	require.Equal(t, int64(400), b[0].Reserved, "the second request's reservation in {o1} was given back")
}

func TestRedisAdmitRecoversFromAFlushedScriptCache(t *testing.T) {
	st, _ := storetest.NewRedisStore(false)(t)
	require.NoError(t, st.(*store.Redis).Client().ScriptFlush(t.Context()).Err())
	c := store.Check{Kind: store.KindSlidingWindow, Key: "rl:{o1}:flush", Limit: 1, Window: time.Minute, Cost: 1}
	r, err := st.Admit(t.Context(), &store.AdmitRequest{ID: storetest.NewID(), Checks: []store.Check{c}})
	require.NoError(t, err)
	require.True(t, r.Allowed)
	require.NoError(t, st.(*store.Redis).Client().ScriptFlush(t.Context()).Err())
	require.NoError(t, st.Settle(t.Context(), &store.Settlement{ID: "x", Ops: []store.SettleOp{{Check: c, Consumed: true, Actual: 0}}}))
}

func TestRedisUsesServerTimeWithoutAClock(t *testing.T) {
	c := storetest.NewRedisClient(t, storetest.RedisURL(t))
	st := store.NewRedis(c, store.RedisOptions{Prefix: fmt.Sprintf("time%d:", time.Now().UnixNano())})
	now, err := st.Now(t.Context())
	require.NoError(t, err)
	require.WithinDuration(t, time.Now(), now, 5*time.Second)
	chk := store.Check{Kind: store.KindTokenBucket, Key: "rl:{o1}:t", Limit: 2, Window: time.Hour, Cost: 1}
	for _, want := range []bool{true, true, false} {
		r, err := st.Admit(t.Context(), &store.AdmitRequest{ID: storetest.NewID(), Checks: []store.Check{chk}})
		require.NoError(t, err)
		require.Equal(t, want, r.Allowed)
	}
}

func TestDialRedisConnectsOrSaysWhyNot(t *testing.T) {
	st, err := store.DialRedis(t.Context(), storetest.RedisURL(t), store.RedisOptions{Prefix: fmt.Sprintf("dial%d:", time.Now().UnixNano())})
	require.NoError(t, err)
	require.NoError(t, st.Cache().Set(t.Context(), "k", []byte("v"), time.Minute))
	v, ok, err := st.Cache().Get(t.Context(), "k")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, []byte("v"), v)
	require.NoError(t, st.Close())

	_, err = store.DialRedis(t.Context(), "http://nope", store.RedisOptions{})
	require.ErrorContains(t, err, "invalid single redis url")
	_, err = store.DialRedis(t.Context(), "redis://127.0.0.1:1/0", store.RedisOptions{})
	require.ErrorContains(t, err, "failed to reach redis")
}

// TestRedisLedgerWritesOneCellPerTagAndStillReadsCellsWrittenPerDimension: a settle writes one
// detail cell (three counters) per ledger; an hour that also holds counters written per
// dimension (as earlier versions did) reads as the sum of both.
func TestRedisLedgerWritesOneCellPerTagAndStillReadsCellsWrittenPerDimension(t *testing.T) {
	st, _ := storetest.NewRedisStore(false)(t)
	c := st.(*store.Redis).Client()
	org := "legacy-" + storetest.NewID() // other tests share the server
	u := &store.UsageRecord{At: storetest.Start, User: "u1", Org: org, APIKey: "k1", Model: "m1", Provider: "p1", Requests: 1, Tokens: 10, Cost: 100}
	require.NoError(t, st.Settle(t.Context(), &store.Settlement{ID: storetest.NewID(), Usage: u}))

	keys, err := c.Keys(t.Context(), "*aio:ledger:{"+org+"}:*").Result()
	require.NoError(t, err)
	require.Len(t, keys, 1)
	fields, err := c.HGetAll(t.Context(), keys[0]).Result()
	require.NoError(t, err)
	require.Len(t, fields, 3, "one cell: requests, tokens, cost")

	sep := store.KeySep
	for metric, v := range map[string]int64{"r": 2, "t": 20, "c": 200} {
		for _, f := range []string{store.DimTotal + sep + sep, store.DimUser + sep + "u1" + sep, store.DimModel + sep + "m2" + sep} {
			require.NoError(t, c.HIncrBy(t.Context(), keys[0], f+metric, v).Err())
		}
	}
	hours, err := st.Ledger(t.Context(), org, storetest.Start, storetest.Start.Add(time.Hour))
	require.NoError(t, err)
	require.Len(t, hours, 1)
	cells := hours[0].Cells
	require.Equal(t, store.Totals{Requests: 3, Tokens: 30, Cost: 300}, cells[store.LedgerKey{Dim: store.DimTotal}])
	require.Equal(t, store.Totals{Requests: 3, Tokens: 30, Cost: 300}, cells[store.LedgerKey{Dim: store.DimUser, Key: "u1"}])
	require.Equal(t, store.Totals{Requests: 1, Tokens: 10, Cost: 100}, cells[store.LedgerKey{Dim: store.DimModel, Key: "m1"}])
	require.Equal(t, store.Totals{Requests: 2, Tokens: 20, Cost: 200}, cells[store.LedgerKey{Dim: store.DimModel, Key: "m2"}])
	require.Equal(t, store.Totals{Requests: 1, Tokens: 10, Cost: 100}, cells[store.LedgerKey{Dim: store.DimUserProvider, Key: "u1" + sep + "p1"}])
	for k := range cells {
		require.NotEqual(t, "d", k.Dim, "the stored detail cell is not a dimension readers see")
	}
}

// TestRedisBudgetAndLedgerKeysAlwaysExpire: settle and admit skip setting an expiry that is
// already in place, so every path that creates a key must still give it one (a key without
// expiry would stay forever): new budget keys, a new reservation set next to an existing budget
// hash, a free request, a settle without reservation (fail open), the ledger; and an expiry that
// moves by more than a minute is set again.
func TestRedisBudgetAndLedgerKeysAlwaysExpire(t *testing.T) {
	c := storetest.NewRedisClient(t, storetest.RedisURL(t))
	prefix := fmt.Sprintf("ttl%d:", time.Now().UnixNano())
	st := store.NewRedis(c, store.RedisOptions{Prefix: prefix})
	ctx := t.Context()
	pttl := func(key string) time.Duration {
		t.Helper()
		d, err := c.PTTL(ctx, prefix+key).Result()
		require.NoError(t, err)
		return d
	}
	expires := func(key string, within time.Duration) {
		t.Helper()
		d := pttl(key)
		require.Greater(t, d, time.Duration(0), "%s has an expiry (-1: none, -2: no key)", key)
		require.LessOrEqual(t, d, within, key)
	}
	b := store.Check{Kind: store.KindBudget, Key: "budget:{o1}:b:o1:daily:d", Limit: 1 << 40, Cost: 1000, TTL: time.Minute, Expire: 48 * time.Hour}
	admit := func(ch store.Check) (string, *store.AdmitResult) {
		t.Helper()
		id := storetest.NewID()
		r, err := st.Admit(ctx, &store.AdmitRequest{ID: id, Checks: []store.Check{ch}})
		require.NoError(t, err)
		require.True(t, r.Allowed)
		return id, r
	}
	settle := func(id string, ch store.Check, consumed bool) {
		t.Helper()
		u := &store.UsageRecord{At: time.Now(), User: "u1", Org: "o1", Requests: 1, Tokens: 5, Cost: 900}
		require.NoError(t, st.Settle(ctx, &store.Settlement{ID: id, Usage: u,
			Ops: []store.SettleOp{{Check: ch, Consumed: consumed, Actual: 900}}}))
	}

	id, _ := admit(b)
	expires(b.Key, b.Expire)
	expires(b.Key+":aux", b.Expire)
	settle(id, b, true)
	expires(b.Key+":aux", b.Expire) // the last reservation gone, the set keeps "~" and its expiry
	expires(b.Key, b.Expire)
	ledger := fmt.Sprintf("aio:ledger:{o1}:%d", store.HourOf(time.Now()).Unix())
	expires(ledger, store.LedgerRetention)
	global := fmt.Sprintf("aio:ledger:{global}:%d", store.HourOf(time.Now()).Unix())
	expires(global, store.LedgerRetention)

	id, _ = admit(b) // the hash's expiry is current
	expires(b.Key+":aux", b.Expire)
	settle(id, b, true)
	expires(ledger, store.LedgerRetention)

	free := b
	free.Key, free.Cost = "budget:{o1}:b:o1:daily:free", 0
	admit(free)
	expires(free.Key, free.Expire)

	open := b
	open.Key = "budget:{o1}:b:o1:daily:open"
	settle(storetest.NewID(), open, false) // admitted while the store was down: no reservation
	expires(open.Key, open.Expire)

	later := b
	later.Expire = b.Expire + time.Hour
	admit(later)
	require.Greater(t, pttl(b.Key), b.Expire, "an expiry an hour later is set")
	expires(b.Key+":aux", later.Expire)

	// A reservation set that vanished under a budget hash that stays (evicted, or written
	// before the set kept "~"): the admission that creates it again gives it its expiry.
	require.NoError(t, c.Del(ctx, prefix+b.Key+":aux").Err())
	admit(later)
	expires(b.Key+":aux", later.Expire)
}
