package governor_test

import (
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/governor"
	"github.com/nself-org/ai-orchestration/dataplane/store"
	"github.com/nself-org/ai-orchestration/dataplane/store/storetest"
)

// TestFailedCheckpointsAreCountedAsErrorsOnly: the checkpoint counters are cached after their
// first use; each failed checkpoint still counts once under "error" and as a store error, and no
// "ok" series appears before a checkpoint succeeds.
func TestFailedCheckpointsAreCountedAsErrorsOnly(t *testing.T) {
	// A real Redis client pointed at a port nobody listens on: every call fails fast.
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 50 * time.Millisecond, MaxRetries: -1,
		DialerRetries: 1, ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = c.Close() })
	reg := prometheus.NewRegistry()
	g := governor.New(store.NewRedis(c, store.RedisOptions{}), governor.Options{Clock: storetest.NewFakeClock(storetest.Start),
		Registerer: reg, Logger: slog.New(slog.DiscardHandler)})
	m := governor.NewMetrics(reg) // the same collectors, found on the registry
	req := chatReq("u1", usd("0.01"))
	req.Route = &config.Route{Name: "team/open", RateLimits: []config.RateLimit{{Name: "rpm", Per: config.PerUser,
		Algorithm: config.AlgorithmTokenBucket, Requests: 1, Window: time.Minute, FailMode: config.FailOpen}}}
	d, err := g.Admit(t.Context(), nil, req)
	require.NoError(t, err, "admitted fail-open")

	for i := range 3 {
		require.Error(t, g.Checkpoint(t.Context(), req, d.Ticket, charge(usd("0.001"), 10, int64(i+1))), "the store is down")
	}
	require.Equal(t, 3.0, testutil.ToFloat64(m.Checkpoints.WithLabelValues("error")))
	require.Equal(t, 3.0, testutil.ToFloat64(m.StoreErrors.WithLabelValues("checkpoint")))
	families, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() != "aio_stream_checkpoints_total" {
			continue
		}
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				require.NotEqual(t, "ok", l.GetValue(), "no checkpoint succeeded")
			}
		}
	}
}
