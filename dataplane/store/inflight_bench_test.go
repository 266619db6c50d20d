//go:build unix

package store_test

import (
	"fmt"
	"strconv"
	"testing"
	"time"

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

// BenchmarkMemoryLoad is the store's share of one request of the load benchmark
// (hack/bench/manifests): a per-user sliding window of requests, a per-org token bucket, a user's
// and the org's budget, a cache peek (a miss) with the admission and the response put with the
// settle, and the usage ledger; 1 000 users, a request every 300 µs of the store's clock. It
// reports the process's CPU time per request too: on a shared machine, wall time per op measures
// the machine's load as much as the code.
func BenchmarkMemoryLoad(b *testing.B) {
	clock := storetest.NewFakeClock(storetest.Start)
	st := store.NewMemory(store.MemoryOptions{Clock: clock})
	ctx := b.Context()
	const users = 1000
	type user struct{ window, budget, name string }
	us := make([]user, users)
	for i := range us {
		name := fmt.Sprintf("user-%04d", i)
		us[i] = user{window: "aio:rl:{u:" + name + "}:bench/chat:per-user:user:" + name,
			budget: "aio:budget:{u:" + name + "}:bench/per-user:" + name + ":daily:2026-11-25", name: name}
	}
	value := make([]byte, 600)
	var key []byte
	b.ReportAllocs()
	cpu0 := storetest.CPUTime()
	for i := 0; b.Loop(); i++ {
		u := &us[i%users]
		checks := [4]store.Check{
			{Kind: store.KindSlidingWindow, Key: u.window, Limit: 100_000_000, Window: time.Minute, Cost: 1},
			{Kind: store.KindTokenBucket, Key: "aio:rl:{bench}:bench/chat:per-org-tokens:org:bench", Limit: 100_000_000_000,
				Burst: 100_000_000_000, Window: time.Minute, Cost: 150},
			{Kind: store.KindBudget, Key: u.budget, Limit: 1 << 50, Cost: 10_000_000, TTL: 10 * time.Minute, Expire: 8 * 24 * time.Hour},
			{Kind: store.KindBudget, Key: "aio:budget:{bench}:bench/org-bench:bench:monthly:2026-11-01", Limit: 1 << 60,
				Cost: 10_000_000, TTL: 10 * time.Minute, Expire: 40 * 24 * time.Hour},
		}
		key = strconv.AppendInt(append(key[:0], "aio:cache:0000000000000000000000000000000000000000000000000000"...), int64(i), 16)
		id := "adm-" + strconv.Itoa(i)
		r, err := st.Admit(ctx, &store.AdmitRequest{ID: id, Checks: checks[:], Peek: string(key)})
		if err != nil || !r.Allowed || r.PeekFound {
			b.Fatalf("admit: %v %+v", err, r)
		}
		var ops [4]store.SettleOp
		for j := range checks {
			ops[j] = store.SettleOp{Check: checks[j], Consumed: r.Results[j].Consumed, Actual: checks[j].Cost}
		}
		ops[1].Actual, ops[2].Actual, ops[3].Actual = 160, 100_000, 100_000
		s := store.Settlement{ID: id, Ops: ops[:], Put: &store.KVPut{Key: string(key), Value: value, TTL: 10 * time.Minute},
			Usage: &store.UsageRecord{At: clock.Now(), User: u.name, Org: "bench", APIKey: "bench/bench-app", Model: "gpt-4o-mini",
				Provider: "bench/mock-openai", Requests: 1, Tokens: 160, Cost: 100_000}}
		if err := st.Settle(ctx, &s); err != nil || s.Put.Err != nil {
			b.Fatal(err, s.Put.Err)
		}
		clock.Advance(300 * time.Microsecond)
	}
	b.ReportMetric(float64(storetest.CPUTime()-cpu0)/float64(b.N), "cpu-ns/op")
}
