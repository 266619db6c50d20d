package store_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/store"
	"github.com/nself-org/ai-orchestration/dataplane/store/storetest"
)

var (
	redisOnce sync.Once
	redisURL  string
	redisErr  error
	prefixes  atomic.Int64
)

// TestMain stops the redis-server the tests may have started.
func TestMain(m *testing.M) {
	code := m.Run()
	if redisCmd != nil {
		_ = redisCmd.Process.Kill()
		_, _ = redisCmd.Process.Wait()
	}
	os.Exit(code)
}

var redisCmd *exec.Cmd

// redisAddr returns REDIS_URL (set by hack/with-redis.sh), or starts redis-server from PATH on a
// free port for a plain `go test`.
func redisAddr(t *testing.T) string {
	t.Helper()
	redisOnce.Do(func() {
		if u := os.Getenv("REDIS_URL"); u != "" {
			redisURL = u
			return
		}
		bin, err := exec.LookPath("redis-server")
		if err != nil {
			redisErr = fmt.Errorf("REDIS_URL is unset and redis-server is not on PATH: run make test (hack/with-redis.sh)")
			return
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			redisErr = err
			return
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		dir, err := os.MkdirTemp("", "redis-test")
		if err != nil {
			redisErr = err
			return
		}
		redisCmd = exec.Command(bin, "--bind", "127.0.0.1", "--port", fmt.Sprint(port), "--dir", dir,
			"--save", "", "--appendonly", "no")
		if err := redisCmd.Start(); err != nil {
			redisErr = err
			return
		}
		redisURL = fmt.Sprintf("redis://127.0.0.1:%d/0", port)
		c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port)})
		defer c.Close()
		for range 200 {
			if c.Ping(context.Background()).Err() == nil {
				return
			}
			time.Sleep(10 * time.Millisecond) // polling a child process's readiness; no event to wait on
		}
		redisErr = fmt.Errorf("redis-server did not answer on %s: run make test", redisURL)
	})
	require.NoError(t, redisErr, "run make test")
	return redisURL
}

func newRedisClient(t testing.TB, url string) *redis.Client {
	opts, err := redis.ParseURL(url)
	require.NoError(t, err)
	opts.PoolSize = 64
	c := redis.NewClient(opts)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func newRedisStore(split bool) storetest.NewStoreFunc {
	return func(t *testing.T) (store.Store, *storetest.FakeClock) {
		c := newRedisClient(t, redisAddr(t))
		clock := storetest.NewFakeClock(storetest.Start)
		prefix := fmt.Sprintf("test%d-%d:", os.Getpid(), prefixes.Add(1))
		return store.NewRedis(c, store.RedisOptions{Prefix: prefix, Clock: clock, SplitByTag: split}), clock
	}
}

func TestRedisConformance(t *testing.T) {
	storetest.Run(t, newRedisStore(false))
}

func TestRedisAcrossSlotsReleasesWhatAnEarlierSlotReservedWhenALaterSlotRefuses(t *testing.T) {
	st, _ := newRedisStore(true)(t)
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
	st, _ := newRedisStore(false)(t)
	require.NoError(t, st.(*store.Redis).Client().ScriptFlush(t.Context()).Err())
	c := store.Check{Kind: store.KindSlidingWindow, Key: "rl:{o1}:flush", Limit: 1, Window: time.Minute, Cost: 1}
	r, err := st.Admit(t.Context(), &store.AdmitRequest{ID: storetest.NewID(), Checks: []store.Check{c}})
	require.NoError(t, err)
	require.True(t, r.Allowed)
	require.NoError(t, st.(*store.Redis).Client().ScriptFlush(t.Context()).Err())
	require.NoError(t, st.Settle(t.Context(), &store.Settlement{ID: "x", Ops: []store.SettleOp{{Check: c, Consumed: true, Actual: 0}}}))
}

func TestRedisUsesServerTimeWithoutAClock(t *testing.T) {
	c := newRedisClient(t, redisAddr(t))
	st := store.NewRedis(c, store.RedisOptions{Prefix: fmt.Sprintf("time%d:", prefixes.Add(1))})
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
