package storetest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// SentinelMaster is the name [StartRedisSentinel]'s sentinel monitors its primary under.
const SentinelMaster = "aio-primary"

// StartRedisCluster starts a Redis Cluster of n primaries (redis-server from PATH, as
// hack/with-redis.sh installs it) on 127.0.0.1, splits the 16 384 slots between them and waits
// until every node reports the cluster ready. It returns the nodes' addresses; the nodes are
// stopped when t ends.
func StartRedisCluster(t testing.TB, n int) []string {
	t.Helper()
	dir := t.TempDir()
	addrs := make([]string, n)
	buses := make([]int, n)
	for i := range n {
		port, bus := freePort(t), freePort(t)
		addrs[i], buses[i] = "127.0.0.1:"+strconv.Itoa(port), bus
		startServer(t, dir, fmt.Sprintf("node%d", i), "--bind", "127.0.0.1", "--port", strconv.Itoa(port),
			"--cluster-enabled", "yes", "--cluster-port", strconv.Itoa(bus),
			"--cluster-config-file", filepath.Join(dir, fmt.Sprintf("nodes-%d.conf", i)),
			"--dir", dir, "--save", "", "--appendonly", "no")
	}
	ctx := t.Context()
	clients := make([]*redis.Client, n)
	for i, addr := range addrs {
		clients[i] = redis.NewClient(&redis.Options{Addr: addr})
		t.Cleanup(func() { _ = clients[i].Close() })
		waitFor(t, addr+" to answer", func() bool { return clients[i].Ping(ctx).Err() == nil })
	}
	const slots = 16384
	for i, c := range clients {
		first, last := i*slots/n, (i+1)*slots/n-1
		require.NoError(t, c.Do(ctx, "cluster", "addslotsrange", first, last).Err())
		if i > 0 {
			host, port, _ := net.SplitHostPort(addrs[i])
			require.NoError(t, clients[0].Do(ctx, "cluster", "meet", host, port, buses[i]).Err())
		}
	}
	for i, c := range clients {
		waitFor(t, addrs[i]+" to see the whole cluster", func() bool {
			info, err := c.ClusterInfo(ctx).Result()
			if err != nil || !strings.Contains(info, "cluster_state:ok") ||
				!strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(n)+"\r") {
				return false
			}
			shards, err := c.ClusterSlots(ctx).Result()
			return err == nil && len(shards) == n
		})
	}
	return addrs
}

// StartRedisSentinel starts a primary and one sentinel monitoring it as [SentinelMaster] (with a
// quorum of one) on 127.0.0.1, waits until the sentinel names the primary, and returns the
// sentinel's and the primary's addresses. Both are stopped when t ends.
func StartRedisSentinel(t testing.TB) (sentinel, primary string) {
	t.Helper()
	dir := t.TempDir()
	pport, sport := freePort(t), freePort(t)
	primary, sentinel = "127.0.0.1:"+strconv.Itoa(pport), "127.0.0.1:"+strconv.Itoa(sport)
	startServer(t, dir, "primary", "--bind", "127.0.0.1", "--port", strconv.Itoa(pport), "--dir", dir,
		"--save", "", "--appendonly", "no")
	// A sentinel rewrites its configuration file, so it gets one of its own.
	conf := filepath.Join(dir, "sentinel.conf")
	require.NoError(t, os.WriteFile(conf, []byte(fmt.Sprintf("bind 127.0.0.1\nport %d\ndir %s\nsentinel monitor %s 127.0.0.1 %d 1\n",
		sport, dir, SentinelMaster, pport)), 0o600))
	startServer(t, dir, "sentinel", conf, "--sentinel")
	sc := redis.NewSentinelClient(&redis.Options{Addr: sentinel})
	t.Cleanup(func() { _ = sc.Close() })
	waitFor(t, "the sentinel to name the primary", func() bool {
		addr, err := sc.GetMasterAddrByName(t.Context(), SentinelMaster).Result()
		return err == nil && len(addr) == 2 && net.JoinHostPort(addr[0], addr[1]) == primary
	})
	return sentinel, primary
}

// startServer starts redis-server with args, its output in dir/name.log, stopped when t ends.
func startServer(t testing.TB, dir, name string, args ...string) {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	require.NoError(t, err, "redis-server is not on PATH: run make test (hack/with-redis.sh installs it)")
	out, err := os.Create(filepath.Join(dir, name+".log"))
	require.NoError(t, err)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
		_ = out.Close()
		if t.Failed() {
			if b, err := os.ReadFile(out.Name()); err == nil {
				t.Logf("%s output:\n%s", name, b)
			}
		}
	})
}

func freePort(t testing.TB) int {
	t.Helper()
	port, err := freeLoopbackPort()
	require.NoError(t, err)
	return port
}

// freeLoopbackPort returns a port of 127.0.0.1 that nothing listened on a moment ago.
func freeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("failed to find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitFor polls cond until it holds, failing t after 20 s or when t ends.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	if !poll(20*time.Second, t.Context().Done(), cond) {
		t.Fatalf("timed out waiting for %s", what)
	}
}

// poll checks cond every 20 ms until it holds (true), timeout passes or stop is closed (false).
// Child processes and a cluster's gossip give no event to wait on, so polling is the only way to
// learn that they are ready.
func poll(timeout time.Duration, stop <-chan struct{}, cond func() bool) bool {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(timeout)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			return false
		case <-stop:
			return false
		}
	}
	return true
}
