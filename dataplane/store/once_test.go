package store_test

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/store"
	"github.com/nself-org/ai-orchestration/dataplane/store/storetest"
)

// go-redis sends a command again, on a new connection, when its connection broke (EOF, reset,
// read timeout) before the reply arrived, though Redis may have run it. These tests run every
// script call twice and require the state a single run leaves: admissions consume once and answer
// as first decided, settles charge once, and a different call of the same admission (a rollback,
// then the settle of a fail-open request) still applies.

// twice runs every script call, and every pipeline holding one, a second time on the same
// connection before the caller reads the reply, as a retry does: the caller reads the second run's.
type twice struct{}

func (twice) DialHook(next redis.DialHook) redis.DialHook { return next }

func (twice) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if isScriptCall(cmd) {
			_ = next(ctx, cmd)
		}
		return next(ctx, cmd)
	}
}

func (twice) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if slices.ContainsFunc(cmds, isScriptCall) {
			_ = next(ctx, cmds)
		}
		return next(ctx, cmds)
	}
}

func isScriptCall(cmd redis.Cmder) bool { return cmd.Name() == "evalsha" || cmd.Name() == "eval" }

// dumpKeys lists every key under prefix with its type, content and whether it expires, keyed by
// the name without the prefix (also where a value holds a key). A marker's content is left out: it holds a settle's token, which
// differs between stores.
func dumpKeys(t *testing.T, c *redis.Client, prefix string) map[string]string {
	t.Helper()
	ctx := t.Context()
	keys, err := c.Keys(ctx, prefix+"*").Result()
	require.NoError(t, err)
	out := make(map[string]string, len(keys))
	for _, k := range keys {
		typ, err := c.Type(ctx, k).Result()
		require.NoError(t, err)
		var v string
		switch {
		case strings.Contains(k, "aio:once:"):
		case typ == "string":
			v, err = c.Get(ctx, k).Result()
		case typ == "hash":
			var m map[string]string
			m, err = c.HGetAll(ctx, k).Result()
			fs := make([]string, 0, len(m))
			for f, x := range m {
				fs = append(fs, f+"="+x)
			}
			sort.Strings(fs)
			v = strings.Join(fs, " ")
		case typ == "zset":
			var zs []redis.Z
			zs, err = c.ZRangeWithScores(ctx, k, 0, -1).Result()
			v = fmt.Sprint(zs)
		default:
			t.Fatalf("unexpected key type %s of %s", typ, k)
		}
		require.NoError(t, err)
		ttl, err := c.PTTL(ctx, k).Result()
		require.NoError(t, err)
		// A progress hash names budget keys, prefix included.
		v = strings.ReplaceAll(v, prefix, "")
		out[strings.TrimPrefix(k, prefix)] = fmt.Sprintf("%s %q expires=%v", typ, v, ttl > 0)
	}
	return out
}

var oncePrefixes atomic.Int64

func oncePrefix(what string) string {
	return fmt.Sprintf("once-%s-%d-%d:", what, time.Now().UnixNano(), oncePrefixes.Add(1))
}

// onceChecks: a concurrency limit of one (a second run of the admission would find its slot
// taken and refuse), a token bucket, a sliding window and two budgets, one of them shadow, over
// two hash tags.
func onceChecks() []store.Check {
	return []store.Check{
		{Kind: store.KindTokenBucket, Key: "rl:{u:u1}:tb", Limit: 10, Window: 10 * time.Second, Burst: 3, Cost: 1},
		{Kind: store.KindSlidingWindow, Key: "rl:{o1}:sw", Limit: 40, Window: 10 * time.Second, Cost: 5},
		{Kind: store.KindConcurrency, Key: "rl:{o1}:conc", Limit: 1, Cost: 1, TTL: 20 * time.Second},
		{Kind: store.KindBudget, Key: "budget:{o1}:b:o1:daily:d", Limit: 50_000, Cost: 3_000, TTL: 15 * time.Second, Expire: 48 * time.Hour},
		{Kind: store.KindBudget, Key: "budget:{u:u1}:b:u1:daily:d", Limit: 30_000, Cost: 2_000, TTL: 15 * time.Second, Expire: 48 * time.Hour, Shadow: true},
	}
}

// onceSettlement settles r: a bucket and window correction, the slot released, budgets charged
// below their reservation, and the ledger.
func onceSettlement(id string, checks []store.Check, r *store.AdmitResult, checkpointed bool) *store.Settlement {
	s := &store.Settlement{ID: id, Checkpointed: checkpointed, Usage: &store.UsageRecord{At: storetest.Start, User: "u1", Org: "o1",
		APIKey: "k", Model: "m", Provider: "p", Requests: 1, Tokens: 70, Cost: 2_500}}
	for i, c := range checks {
		actual := c.Cost
		switch c.Kind {
		case store.KindTokenBucket:
			actual = 3
		case store.KindSlidingWindow:
			actual = 8
		case store.KindBudget:
			actual = 2_500
		}
		s.Ops = append(s.Ops, store.SettleOp{Check: c, Consumed: r.Results[i].Consumed, Actual: actual})
	}
	return s
}

func TestRedisScriptCallsSentTwiceApplyOnce(t *testing.T) {
	url := storetest.RedisURL(t)
	for _, split := range []bool{false, true} {
		t.Run(fmt.Sprintf("split=%v", split), func(t *testing.T) {
			clock := storetest.NewFakeClock(storetest.Start)
			plain := storetest.NewRedisClient(t, url)
			doubled := storetest.NewRedisClient(t, url)
			doubled.AddHook(twice{})
			p1, p2 := oncePrefix("ref"), oncePrefix("dup")
			once := store.NewRedis(plain, store.RedisOptions{Prefix: p1, Clock: clock, SplitByTag: split})
			dup := store.NewRedis(doubled, store.RedisOptions{Prefix: p2, Clock: clock, SplitByTag: split})
			ctx := t.Context()
			same := func(step string) {
				t.Helper()
				require.Equal(t, dumpKeys(t, plain, p1), dumpKeys(t, plain, p2), step)
			}
			admit := func(step, id string, checks []store.Check) *store.AdmitResult {
				t.Helper()
				want, err := once.Admit(ctx, &store.AdmitRequest{ID: id, Checks: checks})
				require.NoError(t, err)
				got, err := dup.Admit(ctx, &store.AdmitRequest{ID: id, Checks: checks})
				require.NoError(t, err)
				require.Equal(t, want, got, step)
				same(step)
				return got
			}
			settle := func(step string, s func() *store.Settlement) {
				t.Helper()
				require.NoError(t, once.Settle(ctx, s()))
				require.NoError(t, dup.Settle(ctx, s()))
				same(step)
			}
			checkpoint := func(step string, s func() *store.Settlement) {
				t.Helper()
				require.NoError(t, once.Checkpoint(ctx, s()))
				require.NoError(t, dup.Checkpoint(ctx, s()))
				same(step)
			}
			checks := onceChecks()

			id1 := storetest.NewID()
			r1 := admit("admitted", id1, checks)
			require.True(t, r1.Allowed)
			for i, res := range r1.Results {
				require.True(t, res.Consumed, "check %d", i)
			}
			clock.Advance(100 * time.Millisecond)
			r2 := admit("refused: the slot is taken", storetest.NewID(), checks)
			require.False(t, r2.Allowed)
			clock.Advance(100 * time.Millisecond)
			settle("settled", func() *store.Settlement { return onceSettlement(id1, checks, r1, false) })

			// A later check refuses (on a Cluster, a later slot: what the first consumed is
			// rolled back by a settle of the same id); the request then fails open and is settled
			// again under that id, charging its budget without a reservation.
			clock.Advance(100 * time.Millisecond)
			global := store.Check{Kind: store.KindSlidingWindow, Key: "rl:{global}:g", Limit: 1, Window: time.Minute, Cost: 1}
			require.True(t, admit("fills the global window", storetest.NewID(), []store.Check{global}).Allowed)
			spanning := []store.Check{checks[3], global}
			id3 := storetest.NewID()
			r3 := admit("refused by the later slot", id3, spanning)
			require.False(t, r3.Allowed)
			settle("a settle of a refused admission still charges", func() *store.Settlement {
				return &store.Settlement{ID: id3, Ops: []store.SettleOp{{Check: checks[3], Actual: 700}}}
			})

			// A stream: checkpoints, then the final settle (which also corrects the bucket, whose
			// burst of 3 the first settle's correction emptied).
			clock.Advance(2 * time.Second)
			id4 := storetest.NewID()
			r4 := admit("a stream admitted", id4, checks)
			require.True(t, r4.Allowed)
			for _, cost := range []int64{1_000, 2_000, 2_000} {
				clock.Advance(time.Second)
				checkpoint(fmt.Sprintf("checkpoint at %d", cost), func() *store.Settlement {
					s := onceSettlement(id4, checks, r4, true)
					for i := range s.Ops {
						if s.Ops[i].Kind == store.KindBudget {
							s.Ops[i].Actual = cost
						}
					}
					s.Usage.Cost = cost
					return s
				})
			}
			settle("the stream's final settle", func() *store.Settlement { return onceSettlement(id4, checks, r4, true) })
			checkpoint("a late checkpoint", func() *store.Settlement { return onceSettlement(id4, checks, r4, true) })

			// Windows and reservations expire: a purge, then an admission.
			clock.Advance(30 * time.Second)
			id5 := storetest.NewID()
			require.True(t, admit("after the expiries", id5, checks).Allowed)

			keys := []string{checks[3].Key, checks[4].Key}
			want, err := once.Budgets(ctx, keys)
			require.NoError(t, err)
			got, err := dup.Budgets(ctx, keys)
			require.NoError(t, err)
			require.Equal(t, want, got)
			require.Equal(t, int64(3_000), got[0].Reserved, "the live admission's reservation, once")
			require.Equal(t, int64(2_500+700+2_500), got[0].Spent)
		})
	}
}

// TestRedisRetryAfterALostReplyAppliesOnce: end to end through go-redis. The proxy loses the reply
// of an admission, then of its settle, after Redis ran the script; go-redis sends the call again on
// a new connection, and the state must be what one run leaves (a store without the proxy, driven
// alike, is the reference).
func TestRedisRetryAfterALostReplyAppliesOnce(t *testing.T) {
	base := storetest.RedisURL(t)
	target, err := url.Parse(base)
	require.NoError(t, err)
	for _, tc := range []struct {
		name string
		mode int32
	}{{"connection closed", dropFIN}, {"connection reset", dropRST}, {"read timeout", dropHold}} {
		t.Run(tc.name, func(t *testing.T) {
			p := startRedisProxy(t, target.Host)
			u := *target
			u.Host = p.l.Addr().String()
			q := u.Query()
			q.Set("pool_size", "1")
			q.Set("read_timeout", "300ms")
			u.RawQuery = q.Encode()
			clock := storetest.NewFakeClock(storetest.Start)
			p1, p2 := oncePrefix("ref"), oncePrefix("proxied")
			st, err := store.DialRedis(t.Context(), u.String(), store.RedisOptions{Prefix: p2, Clock: clock})
			require.NoError(t, err)
			t.Cleanup(func() { _ = st.Close() })
			dials := &dialCount{}
			st.Client().AddHook(dials)
			direct := storetest.NewRedisClient(t, base)
			ref := store.NewRedis(direct, store.RedisOptions{Prefix: p1, Clock: clock})
			ctx := t.Context()
			checks := onceChecks()

			// The scripts are loaded, and the pool holds its one connection.
			warm := storetest.NewID()
			r, err := st.Admit(ctx, &store.AdmitRequest{ID: warm, Checks: checks})
			require.NoError(t, err)
			require.NoError(t, st.Settle(ctx, onceSettlement(warm, checks, r, false)))
			r, err = ref.Admit(ctx, &store.AdmitRequest{ID: warm, Checks: checks})
			require.NoError(t, err)
			require.NoError(t, ref.Settle(ctx, onceSettlement(warm, checks, r, false)))
			require.Equal(t, dumpKeys(t, direct, p1), dumpKeys(t, direct, p2))

			clock.Advance(2 * time.Second) // the bucket has room again
			id := storetest.NewID()
			sent, dialed := p.scripts.Load(), dials.n.Load()
			p.arm(tc.mode)
			got, err := st.Admit(ctx, &store.AdmitRequest{ID: id, Checks: checks})
			require.NoError(t, err)
			require.Equal(t, sent+2, p.scripts.Load(), "the admission was sent twice")
			require.Greater(t, dials.n.Load(), dialed, "the second time on a new connection")
			want, err := ref.Admit(ctx, &store.AdmitRequest{ID: id, Checks: checks})
			require.NoError(t, err)
			require.True(t, want.Allowed)
			require.Equal(t, want, got, "the retry answers what the first run decided")
			require.Equal(t, dumpKeys(t, direct, p1), dumpKeys(t, direct, p2), "consumed once")

			clock.Advance(time.Second)
			sent, dialed = p.scripts.Load(), dials.n.Load()
			p.arm(tc.mode)
			require.NoError(t, st.Settle(ctx, onceSettlement(id, checks, got, false)))
			require.Equal(t, sent+2, p.scripts.Load(), "the settle was sent twice")
			require.Greater(t, dials.n.Load(), dialed)
			require.NoError(t, ref.Settle(ctx, onceSettlement(id, checks, want, false)))
			require.Equal(t, dumpKeys(t, direct, p1), dumpKeys(t, direct, p2), "settled once")
			b, err := st.Budgets(ctx, []string{checks[3].Key})
			require.NoError(t, err)
			require.Equal(t, store.BudgetState{Spent: 5_000}, b[0], "two requests charged 2 500 each, nothing reserved")
		})
	}
}

// TestRedisSettleWithoutItsAdmissionsMarkerAppliesAlike: a settle reads the admission's time from
// the marker to move a sliding window's entry; once the marker is gone (a call longer than its
// TTL) it asks the log instead, and the result is the same.
func TestRedisSettleWithoutItsAdmissionsMarkerAppliesAlike(t *testing.T) {
	url := storetest.RedisURL(t)
	for _, split := range []bool{false, true} {
		t.Run(fmt.Sprintf("split=%v", split), func(t *testing.T) {
			clock := storetest.NewFakeClock(storetest.Start)
			c := storetest.NewRedisClient(t, url)
			p1, p2 := oncePrefix("marked"), oncePrefix("unmarked")
			marked := store.NewRedis(c, store.RedisOptions{Prefix: p1, Clock: clock, SplitByTag: split})
			unmarked := store.NewRedis(c, store.RedisOptions{Prefix: p2, Clock: clock, SplitByTag: split})
			ctx := t.Context()
			checks := onceChecks()
			for step := range 4 {
				id := storetest.NewID()
				var results [2]*store.AdmitResult
				for i, st := range []*store.Redis{marked, unmarked} {
					r, err := st.Admit(ctx, &store.AdmitRequest{ID: id, Checks: checks})
					require.NoError(t, err)
					require.True(t, r.Allowed, "step %d", step)
					results[i] = r
				}
				keys, err := c.Keys(ctx, p2+"aio:once:*").Result()
				require.NoError(t, err)
				keys = slices.DeleteFunc(keys, func(k string) bool { return !strings.HasSuffix(k, ":"+id) })
				require.NotEmpty(t, keys)
				require.NoError(t, c.Del(ctx, keys...).Err())
				clock.Advance(400 * time.Millisecond)
				s := onceSettlement(id, checks, results[0], false)
				s.Ops[1].Actual = int64(step) * 4 // 0 gives the request back
				require.NoError(t, marked.Settle(ctx, s))
				s = onceSettlement(id, checks, results[1], false)
				s.Ops[1].Actual = int64(step) * 4
				require.NoError(t, unmarked.Settle(ctx, s))
				want, got := dumpKeys(t, c, p1), dumpKeys(t, c, p2)
				require.Equal(t, want, got, "step %d", step)
				if step > 0 {
					require.Contains(t, got["rl:{o1}:sw"], fmt.Sprintf("%s:%d", id, step*4), "the entry moved")
				}
				clock.Advance(2 * time.Second)
			}
		})
	}
}
