package storetest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/store"
)

var (
	redisOnce sync.Once
	redisURL  string
	redisErr  error
	redisCmd  *exec.Cmd
	redisDir  string
	prefixes  atomic.Int64
)

// RedisURL returns REDIS_URL (exported by hack/with-redis.sh, as `make test` runs it) or, for a
// plain `go test`, starts redis-server from PATH on a free port (stop it with [StopRedis] from
// TestMain). When neither works the test fails: the Redis half of the suite is never skipped.
func RedisURL(t testing.TB) string {
	t.Helper()
	redisOnce.Do(startRedis)
	require.NoError(t, redisErr, "run make test")
	return redisURL
}

func startRedis() {
	if u := os.Getenv("REDIS_URL"); u != "" {
		redisURL = u
		return
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		redisErr = fmt.Errorf("REDIS_URL is unset and redis-server is not on PATH: run make test (hack/with-redis.sh installs it)")
		return
	}
	port, err := freeLoopbackPort()
	if err != nil {
		redisErr = err
		return
	}
	if redisDir, err = os.MkdirTemp("", "redis-test"); err != nil {
		redisErr = fmt.Errorf("failed to create a redis dir: %w", err)
		return
	}
	redisCmd = exec.Command(bin, "--bind", "127.0.0.1", "--port", fmt.Sprint(port), "--dir", redisDir,
		"--save", "", "--appendonly", "no")
	if err := redisCmd.Start(); err != nil {
		redisErr = fmt.Errorf("failed to start redis-server: %w", err)
		return
	}
	redisURL = fmt.Sprintf("redis://127.0.0.1:%d/0", port)
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port)})
	defer c.Close()
	if !poll(3*time.Second, nil, func() bool { return c.Ping(context.Background()).Err() == nil }) {
		redisErr = fmt.Errorf("redis-server did not answer on %s", redisURL)
	}
}

// StopRedis stops the redis-server RedisURL started, if any. Call it from TestMain.
func StopRedis() {
	if redisCmd != nil && redisCmd.Process != nil {
		_ = redisCmd.Process.Kill()
		_, _ = redisCmd.Process.Wait()
		_ = os.RemoveAll(redisDir)
	}
}

// NewRedisClient connects to url; the client is closed when t ends.
func NewRedisClient(t testing.TB, url string) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(url)
	require.NoError(t, err)
	opts.PoolSize = 64
	c := redis.NewClient(opts)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// NewRedisStore returns a [NewStoreFunc] of Redis stores, each with its own key prefix (so tests
// share one server without seeing each other's keys) and a fake clock passed to the scripts.
func NewRedisStore(split bool) NewStoreFunc {
	return func(t *testing.T) (store.Store, *FakeClock) {
		c := NewRedisClient(t, RedisURL(t))
		clock := NewFakeClock(Start)
		prefix := fmt.Sprintf("test%d-%d:", os.Getpid(), prefixes.Add(1))
		return store.NewRedis(c, store.RedisOptions{Prefix: prefix, Clock: clock, SplitByTag: split}), clock
	}
}

// NewMemoryStore is a [NewStoreFunc] of memory stores.
func NewMemoryStore(t *testing.T) (store.Store, *FakeClock) {
	clock := NewFakeClock(Start)
	return store.NewMemory(store.MemoryOptions{Clock: clock}), clock
}
