package store_test

import (
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/store"
	"github.com/nself-org/ai-orchestration/dataplane/store/storetest"
)

var topologyPrefixes atomic.Int64

// dialStores is a storetest.NewStoreFunc of stores that [store.Dial] connects to url, each with
// its own key prefix and fake clock.
func dialStores(topology, url string) storetest.NewStoreFunc {
	return func(t *testing.T) (store.Store, *storetest.FakeClock) {
		clock := storetest.NewFakeClock(storetest.Start)
		prefix := fmt.Sprintf("topo%d-%d:", os.Getpid(), topologyPrefixes.Add(1))
		st, err := store.Dial(t.Context(), topology, url, store.RedisOptions{Prefix: prefix, Clock: clock})
		require.NoError(t, err)
		t.Cleanup(func() { _ = st.Close() })
		return st, clock
	}
}

// On a real Redis Cluster every script runs on the node that owns its hash tag: the whole suite
// holds there, with a request's checks of two tags decided on two nodes.
func TestConformanceOnARedisCluster(t *testing.T) {
	nodes := storetest.StartRedisCluster(t, 3)
	url := "redis://" + nodes[0] + "?addr=" + nodes[1]

	// The suite's tags (and the global ledger's) live on all three nodes, so its cross-slot cases
	// and every settle's two ledgers cross nodes.
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: nodes})
	defer c.Close()
	owners := map[string]bool{}
	for _, key := range []string{"{o1}", "{u:u1}", "{u:u2}", "{u:u3}", "{" + store.GlobalTag + "}"} {
		slot, err := c.ClusterKeySlot(t.Context(), key).Result()
		require.NoError(t, err)
		shards, err := c.ClusterSlots(t.Context()).Result()
		require.NoError(t, err)
		for _, s := range shards {
			if int64(s.Start) <= slot && slot <= int64(s.End) {
				owners[s.Nodes[0].Addr] = true
			}
		}
	}
	require.Len(t, owners, 3, "the suite's tags are spread over every node")

	storetest.Run(t, dialStores(store.TopologyCluster, url))
}

// Through Sentinel the client asks the sentinel for the primary and runs everything there.
func TestConformanceThroughRedisSentinel(t *testing.T) {
	sentinel, primary := storetest.StartRedisSentinel(t)
	url := "redis://" + sentinel + "/0?master_name=" + storetest.SentinelMaster
	storetest.Run(t, dialStores(store.TopologySentinel, url))

	// The data went to the primary the sentinel named.
	c := redis.NewClient(&redis.Options{Addr: primary})
	defer c.Close()
	keys, err := c.Keys(t.Context(), "topo*").Result()
	require.NoError(t, err)
	require.NotEmpty(t, keys)
}

func TestDialExplainsWhatIsWrong(t *testing.T) {
	for _, tc := range []struct {
		topology, url, want string
	}{
		{"ring", "redis://127.0.0.1:1", `unknown redis topology "ring": use single, sentinel or cluster`},
		{store.TopologySentinel, "redis://127.0.0.1:1", "needs master_name=NAME"},
		{store.TopologySentinel, "http://127.0.0.1:1?master_name=m", "invalid sentinel redis url"},
		{store.TopologyCluster, "redis://127.0.0.1:1?pool_size=many", "invalid cluster redis url"},
		{store.TopologyCluster, "redis://127.0.0.1:1?nonsense=1", "invalid cluster redis url"},
		{store.TopologySingle, "redis://127.0.0.1:1?dial_timeout=50ms", "failed to reach redis"},
		{store.TopologyCluster, "redis://127.0.0.1:1?dial_timeout=50ms", "failed to reach redis"},
	} {
		_, err := store.Dial(t.Context(), tc.topology, tc.url, store.RedisOptions{})
		require.Error(t, err, "%s %s", tc.topology, tc.url)
		require.True(t, strings.Contains(err.Error(), tc.want), "%s %s: %v", tc.topology, tc.url, err)
	}
}
