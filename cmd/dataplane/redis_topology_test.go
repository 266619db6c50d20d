package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/store"
	"github.com/nself-org/ai-orchestration/dataplane/store/storetest"
)

// keysOf lists every key of the masters c reaches (one server, or each primary of a cluster).
func keysOf(t *testing.T, c redis.UniversalClient) []string {
	t.Helper()
	var mu sync.Mutex
	var keys []string
	collect := func(ctx context.Context, n *redis.Client) error {
		ks, err := n.Keys(ctx, "*").Result()
		mu.Lock()
		keys = append(keys, ks...)
		mu.Unlock()
		return err
	}
	if cc, ok := c.(*redis.ClusterClient); ok {
		require.NoError(t, cc.ForEachMaster(t.Context(), collect))
	} else {
		require.NoError(t, collect(t.Context(), c.(*redis.Client)))
	}
	return keys
}

// The dev sample served with --redis-mode cluster and sentinel: a chat is admitted, charged to
// its per-user budget and recorded in the ledgers, all of it in the Redis the flags name.
func TestTheDataPlaneKeepsItsStateInARedisClusterOrBehindSentinel(t *testing.T) {
	// Each case starts its Redis and returns the flags that name it and a client of its primaries.
	for name, deploy := range map[string]func(t *testing.T) (mode, url string, primaries redis.UniversalClient){
		"cluster": func(t *testing.T) (string, string, redis.UniversalClient) {
			nodes := storetest.StartRedisCluster(t, 3)
			return store.TopologyCluster, "redis://" + nodes[1], redis.NewClusterClient(&redis.ClusterOptions{Addrs: nodes})
		},
		"sentinel": func(t *testing.T) (string, string, redis.UniversalClient) {
			sentinel, primary := storetest.StartRedisSentinel(t)
			return store.TopologySentinel, "redis://" + sentinel + "/0?master_name=" + storetest.SentinelMaster,
				redis.NewClient(&redis.Options{Addr: primary})
		},
	} {
		t.Run(name, func(t *testing.T) {
			mode, redisURL, primaries := deploy(t)
			defer primaries.Close()
			url := startWith(t, Settings{Manifests: filepath.Join("..", "..", "config", "samples", "dev"), RedisMode: mode, RedisURL: redisURL})
			code, _, err := chat(url, 1)
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, code)
			requireChargedAndRecorded(t, keysOf(t, primaries))
		})
	}
}

func requireChargedAndRecorded(t *testing.T, keys []string) {
	t.Helper()
	var budget, globalLedger bool
	for _, k := range keys {
		budget = budget || strings.HasPrefix(k, "aio:budget:{u:user-1}:")
		globalLedger = globalLedger || strings.HasPrefix(k, "aio:ledger:{"+store.GlobalTag+"}:")
	}
	require.True(t, budget, "a budget key in %v", keys)
	require.True(t, globalLedger, "the global ledger in %v", keys)
}

func TestRedisModeFlagsAreChecked(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--redis-mode", "ring", "--redis-url", "redis://127.0.0.1:1"}, `invalid --redis-mode: unknown redis topology "ring": use single, sentinel or cluster`},
		{[]string{"--redis-mode", "cluster"}, "--redis-mode=cluster needs --redis-url"},
		{[]string{"--redis-mode", "sentinel"}, "--redis-mode=sentinel needs --redis-url"},
	} {
		_, err := parseFlags(tc.args, &strings.Builder{})
		require.EqualError(t, err, tc.want, "%v", tc.args)
	}
	for _, mode := range []string{"", "single", "sentinel", "cluster"} {
		s, err := parseFlags([]string{"--redis-mode", mode, "--redis-url", "redis://127.0.0.1:1"}, &strings.Builder{})
		require.NoError(t, err, mode)
		require.Equal(t, mode, s.RedisMode)
	}
}

func TestRedisClientMessagesBecomeJSONLogLines(t *testing.T) {
	var b bytes.Buffer
	redisLog{slog.New(slog.NewJSONHandler(&b, nil))}.Printf(t.Context(), "sentinel: new master=%q addr=%q\n", "aio-primary", "10.0.0.7:6379")
	var line map[string]any
	require.NoError(t, json.Unmarshal(b.Bytes(), &line), b.String())
	require.Equal(t, "INFO", line["level"])
	require.Equal(t, "redis client", line["msg"])
	require.Equal(t, `sentinel: new master="aio-primary" addr="10.0.0.7:6379"`, line["detail"])
}
