package governor_test

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/nself-org/ai-orchestration/dataplane/governor"
	"github.com/nself-org/ai-orchestration/dataplane/money"
	"github.com/nself-org/ai-orchestration/dataplane/store"
	"github.com/nself-org/ai-orchestration/dataplane/store/storetest"
)

// checkpointStores runs fn against the memory store and a real Redis (the production client).
func checkpointStores(b *testing.B, fn func(b *testing.B, st store.Store)) {
	b.Run("memory", func(b *testing.B) { fn(b, store.NewMemory(store.MemoryOptions{})) })
	b.Run("redis", func(b *testing.B) {
		st, err := store.DialRedis(b.Context(), storetest.RedisURL(b), store.RedisOptions{Prefix: fmt.Sprintf("cpbench%d:", time.Now().UnixNano())})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = st.Close() })
		fn(b, st)
	})
}

// BenchmarkGovernorCheckpoint is what one checkpoint of a running stream costs (a stream charges
// one a second): the benchmark snapshot's three budget periods and its concurrency slot, the
// ledger, on one admitted ticket whose cost grows by each checkpoint.
func BenchmarkGovernorCheckpoint(b *testing.B) {
	checkpointStores(b, func(b *testing.B, st store.Store) {
		g := governor.New(st, governor.Options{Logger: slog.New(slog.DiscardHandler), AdmitTimeout: 10 * time.Second})
		snap, route := benchSnapshot()
		ctx := b.Context()
		req := chatReq("u1", usd("1"))
		req.Route = route
		d, err := g.Admit(ctx, snap, req)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		n := int64(0)
		for b.Loop() {
			n++
			if err := g.Checkpoint(ctx, req, d.Ticket, charge(money.Nanos(1000*n), 60, n)); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		if err := g.Settle(ctx, req, d.Ticket, charge(money.Nanos(1000*n), 60, n)); err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkGovernorStream is a whole checkpointed stream: admitted, checkpointed four times, then
// settled (the final settle of a checkpointed admission).
func BenchmarkGovernorStream(b *testing.B) {
	checkpointStores(b, func(b *testing.B, st store.Store) {
		g := governor.New(st, governor.Options{Logger: slog.New(slog.DiscardHandler), AdmitTimeout: 10 * time.Second})
		snap, route := benchSnapshot()
		ctx := b.Context()
		b.ReportAllocs()
		for b.Loop() {
			req := chatReq("u1", usd("0.01"))
			req.Route = route
			d, err := g.Admit(ctx, snap, req)
			if err != nil {
				b.Fatal(err)
			}
			for i := range int64(4) {
				if err := g.Checkpoint(ctx, req, d.Ticket, charge(money.Nanos(1000*(i+1)), 60, 10*(i+1))); err != nil {
					b.Fatal(err)
				}
			}
			if err := g.Settle(ctx, req, d.Ticket, charge(usd("0.000009"), 60, 90)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
