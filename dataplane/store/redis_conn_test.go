package store_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/store"
	"github.com/nself-org/ai-orchestration/dataplane/store/storetest"
)

// DialRedis hides connections from go-redis's per-use health check (see opaqueDialer). These
// tests break the one idle connection of a pool under it, the two ways a server drops one, and
// check that the next admission still runs, and runs once.

type dialCount struct{ n atomic.Int64 }

func (d *dialCount) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		d.n.Add(1)
		return next(ctx, network, addr)
	}
}
func (d *dialCount) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (d *dialCount) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// dialOne dials a store with a pool of one connection to addr (host:port; the test server's when
// empty), with the URL's query set from kv pairs, and returns it with a client of its own on the
// test server and a count of dials after the first connection.
func dialOne(t *testing.T, addr string, kv ...string) (*store.Redis, *redis.Client, *dialCount, string) {
	t.Helper()
	base := storetest.RedisURL(t)
	u, err := url.Parse(base)
	require.NoError(t, err)
	if addr != "" {
		u.Host = addr
	}
	q := u.Query()
	q.Set("pool_size", "1")
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	u.RawQuery = q.Encode()
	prefix := fmt.Sprintf("conn%d-%s:", time.Now().UnixNano(), storetest.NewID())
	st, err := store.DialRedis(t.Context(), u.String(), store.RedisOptions{Prefix: prefix})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	dials := &dialCount{}
	st.Client().AddHook(dials)
	admin := storetest.NewRedisClient(t, base)
	return st, admin, dials, prefix
}

// admitOnce admits one holder of a concurrency limit of one on a fresh key and checks that the
// server holds exactly that one: had the script run twice, the second run would have found the
// slot taken, refused, and left the same single holder, so both the reply and the count matter.
func admitOnce(t *testing.T, st *store.Redis, admin *redis.Client, prefix string) {
	t.Helper()
	key := "rl:{" + storetest.NewID() + "}:conc"
	id := storetest.NewID()
	r, err := st.Admit(t.Context(), &store.AdmitRequest{ID: id, Checks: []store.Check{
		{Kind: store.KindConcurrency, Key: key, Limit: 1, Cost: 1, TTL: time.Minute},
	}})
	require.NoError(t, err)
	require.True(t, r.Allowed, "the admission ran more than once")
	holders, err := admin.ZRange(t.Context(), prefix+key, 0, -1).Result()
	require.NoError(t, err)
	require.Equal(t, []string{id}, holders)
}

func TestDialRedisRetriesOnAnIdleConnectionTheServerClosed(t *testing.T) {
	st, admin, dials, prefix := dialOne(t, "")
	c := st.Client().(*redis.Client)
	id, err := c.ClientID(t.Context()).Result()
	require.NoError(t, err)
	admitOnce(t, st, admin, prefix)

	// The server closes the pool's idle connection (as its idle timeout would).
	require.NoError(t, admin.ClientKillByFilter(t.Context(), "ID", fmt.Sprint(id)).Err())
	require.Eventually(t, func() bool {
		l, err := admin.ClientList(t.Context()).Result()
		return err == nil && !strings.Contains(l, fmt.Sprintf("id=%d ", id))
	}, 5*time.Second, time.Millisecond)

	admitOnce(t, st, admin, prefix)
	require.EqualValues(t, 1, dials.n.Load(), "one new connection")
	newID, err := c.ClientID(t.Context()).Result()
	require.NoError(t, err)
	require.NotEqual(t, id, newID)
}

func TestDialRedisRetriesOnAnIdleConnectionThatWasReset(t *testing.T) {
	target, err := url.Parse(storetest.RedisURL(t))
	require.NoError(t, err)
	p := startRedisProxy(t, target.Host)
	st, admin, dials, prefix := dialOne(t, p.l.Addr().String())
	admitOnce(t, st, admin, prefix)

	// A middlebox (or a server closing with SO_LINGER 0) resets the idle connection: the client
	// gets an RST, not a FIN. Whether the RST has reached the client's socket when it next writes
	// (the write fails with ECONNRESET) or not yet (the write goes out, the read fails), the
	// command never reached Redis and must run exactly once, on a new connection.
	require.Equal(t, 1, p.reset())

	admitOnce(t, st, admin, prefix)
	require.EqualValues(t, 1, dials.n.Load(), "one new connection")
}

// TestDialRedisSpeaksRESP2UnlessTheURLSaysOtherwise: the store's replies read the same either way;
// a URL that asks for RESP3 gets it (and go-redis's own dialer and checks).
func TestDialRedisSpeaksRESP2UnlessTheURLSaysOtherwise(t *testing.T) {
	for _, tc := range []struct {
		kv   []string
		resp string
	}{{nil, "resp=2"}, {[]string{"protocol", "3"}, "resp=3"}} {
		st, admin, _, prefix := dialOne(t, "", tc.kv...)
		info, err := st.Client().ClientInfo(t.Context()).Result()
		require.NoError(t, err)
		require.Equal(t, tc.resp, "resp="+fmt.Sprint(info.Resp))
		admitOnce(t, st, admin, prefix)
	}
}

// TestDialRedisDeadlinesReachTheSocket: a context deadline bounds a call that the server holds
// (a blocking pop on an empty list) through the connection wrapper.
func TestDialRedisDeadlinesReachTheSocket(t *testing.T) {
	st, _, _, prefix := dialOne(t, "")
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := st.Client().BLPop(ctx, 30*time.Second, prefix+"empty").Err()
	require.Error(t, err)
	var ne net.Error
	require.True(t, errors.As(err, &ne) && ne.Timeout(), "got %v", err)
	require.Less(t, time.Since(start), 10*time.Second)
}
