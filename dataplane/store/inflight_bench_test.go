package store_test

import (
	"testing"

	"github.com/nself-org/ai-orchestration/dataplane/store"
	"github.com/nself-org/ai-orchestration/dataplane/store/storetest"
)

// BenchmarkAdmitSettleInFlight is BenchmarkAdmitSettle on a busy store: 256 calls are in flight
// at any time (each iteration admits one and settles the oldest), so that the org's budgets and
// concurrency limit hold 256 reservations and slots, as under load.
func BenchmarkAdmitSettleInFlight(b *testing.B) {
	const inFlight = 256
	st := store.NewMemory(store.MemoryOptions{Clock: storetest.NewFakeClock(storetest.Start)})
	ctx := b.Context()
	type call struct {
		id     string
		checks []store.Check
		res    *store.AdmitResult
	}
	var ring [inFlight]call
	admit := func(i int) call {
		c := call{id: storetest.NewID(), checks: manyChecks(i)}
		r, err := st.Admit(ctx, &store.AdmitRequest{ID: c.id, Checks: c.checks})
		if err != nil || !r.Allowed {
			b.Fatalf("admit: %v %v", err, r)
		}
		c.res = r
		return c
	}
	for i := range ring {
		ring[i] = admit(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		old := &ring[i%inFlight]
		if err := st.Settle(ctx, settlementFor(old.id, old.checks, old.res)); err != nil {
			b.Fatal(err)
		}
		*old = admit(i)
	}
}
