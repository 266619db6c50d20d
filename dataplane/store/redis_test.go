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
	require.ErrorContains(t, err, "failed to parse redis url")
	_, err = store.DialRedis(t.Context(), "redis://127.0.0.1:1/0", store.RedisOptions{})
	require.ErrorContains(t, err, "failed to reach redis")
}
