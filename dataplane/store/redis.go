package store

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

//go:embed admit.lua
var admitSrc string

//go:embed settle.lua
var settleSrc string

var (
	admitScript  = redis.NewScript(admitSrc)
	settleScript = redis.NewScript(settleSrc)
)

// Redis is the shared store across replicas. Each Admit is one EVALSHA of admit.lua per hash tag
// (one in total on a single Redis or Sentinel, and on a Cluster when every key carries the same
// tag); Settle is one pipelined round trip of settle.lua calls. Scripts are sent by SHA and fall
// back to EVAL (which also loads them) on NOSCRIPT, e.g. after a failover or SCRIPT FLUSH.
//
// Budget amounts are compared as Lua doubles, which are exact up to 2^53 nano-USD (≈ $9 million per
// budget period); sums are kept by HINCRBY in exact 64-bit integers.
type Redis struct {
	c      redis.UniversalClient
	owned  bool
	prefix string
	clock  Clock
	split  bool
	kv     *redisKV
}

// RedisOptions configures [NewRedis].
type RedisOptions struct {
	// Prefix is prepended to every key, e.g. to share one Redis between environments or tests.
	Prefix string
	// Clock, when set, replaces Redis's TIME as the clock of the scripts ("now" is passed as an
	// argument). Production leaves it nil so that every replica uses the one Redis clock; tests
	// set a fake clock to step through windows and periods.
	Clock Clock
	// SplitByTag forces one script call per hash tag even on a non-cluster client (it is always
	// on for *redis.ClusterClient). Tests use it to exercise the cross-slot path on one server.
	SplitByTag bool
	// CacheMaxValue bounds one response-cache value; default 1 MiB. The total is bounded by Redis's
	// maxmemory and eviction policy (allkeys-lru or volatile-lru recommended).
	CacheMaxValue int
}

var _ Store = (*Redis)(nil)

// NewRedis returns a store over c; c stays owned by the caller (Close does not close it).
func NewRedis(c redis.UniversalClient, opts RedisOptions) *Redis {
	_, cluster := c.(*redis.ClusterClient)
	if opts.CacheMaxValue <= 0 {
		opts.CacheMaxValue = 1 << 20
	}
	return &Redis{
		c:      c,
		prefix: opts.Prefix,
		clock:  opts.Clock,
		split:  cluster || opts.SplitByTag,
		kv:     &redisKV{c: c, prefix: opts.Prefix + "aio:cache:", maxValue: opts.CacheMaxValue},
	}
}

// DefaultPoolSize is the connection pool size [DialRedis] uses unless the URL sets pool_size.
// Every admission holds a connection for one round trip and a replica under a burst has hundreds
// in flight. Measured with go-redis pool stats (1 000 parallel requests over three replicas on a
// loaded 2-core machine): with 64 connections up to 220 admissions queued for one; with 256 none
// queued but each round trip took longer, and the slowest admission was ~1.1–1.5 s either way.
// The bottleneck there is CPU (replicas, client and Redis share two cores), not the pool, which
// is why the governor's admit timeout defaults to 2 s. 128 keeps the queue short without dialling
// hundreds of connections per replica at the start of a burst.
const DefaultPoolSize = 128

// DialRedis connects to url (redis://[user:pass@]host:port/db or rediss://…) with timeouts suited to
// the request path (a store call must fail fast so the fail mode can apply), and checks it answers.
// For Sentinel or Cluster, build a redis.UniversalClient (with ContextTimeoutEnabled, so that
// context deadlines bound each call) and use [NewRedis].
func DialRedis(ctx context.Context, url string, opts RedisOptions) (*Redis, error) {
	o, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("failed to parse redis url: %w", err)
	}
	if !strings.Contains(url, "dial_timeout") {
		o.DialTimeout = 500 * time.Millisecond
	}
	if !strings.Contains(url, "read_timeout") {
		o.ReadTimeout = time.Second // a backstop: callers' context deadlines are tighter
	}
	if !strings.Contains(url, "write_timeout") {
		o.WriteTimeout = time.Second
	}
	// Honour context deadlines on the socket, so a hung server costs a request its caller's
	// timeout (the governor's AdmitTimeout), not ReadTimeout.
	o.ContextTimeoutEnabled = true
	// A refused connection should reach the fail mode at once, not after go-redis's default five
	// dial attempts 100ms apart.
	o.DialerRetries, o.DialerRetryTimeout = 1, 10*time.Millisecond
	if !strings.Contains(url, "pool_size") {
		o.PoolSize = DefaultPoolSize
	}
	c := redis.NewClient(o)
	if err := c.Ping(ctx).Err(); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("failed to reach redis: %w", err)
	}
	r := NewRedis(c, opts)
	r.owned = true
	return r, nil
}

// Client returns the underlying client (for health checks).
func (r *Redis) Client() redis.UniversalClient { return r.c }

// Close implements [Store].
func (r *Redis) Close() error {
	if r.owned {
		if err := r.c.Close(); err != nil {
			return fmt.Errorf("failed to close redis client: %w", err)
		}
	}
	return nil
}

// Cache implements [Store].
func (r *Redis) Cache() KV { return r.kv }

// Now implements [Store].
func (r *Redis) Now(ctx context.Context) (time.Time, error) {
	if r.clock != nil {
		return r.clock.Now(), nil
	}
	t, err := r.c.Time(ctx).Result()
	if err != nil {
		return time.Time{}, fmt.Errorf("failed to read redis time: %w", err)
	}
	return t, nil
}

func (r *Redis) nowArg() string {
	if r.clock == nil {
		return ""
	}
	return strconv.FormatInt(micros(r.clock.Now()), 10)
}

func (r *Redis) keys(c *Check) (string, string) {
	k := r.prefix + c.Key
	return k, k + ":aux"
}

// group lists check indexes per hash tag, in order of first appearance.
func (r *Redis) groups(n int, key func(int) string) [][]int {
	if !r.split {
		all := make([]int, n)
		for i := range all {
			all[i] = i
		}
		return [][]int{all}
	}
	var out [][]int
	idx := map[string]int{}
	for i := 0; i < n; i++ {
		tag := HashTag(key(i))
		g, ok := idx[tag]
		if !ok {
			g = len(out)
			idx[tag] = g
			out = append(out, nil)
		}
		out[g] = append(out[g], i)
	}
	return out
}

// Admit implements [Store]. On a Cluster, checks spanning several tags are decided one call per
// tag, in order; when a later tag refuses, what earlier tags consumed is given back.
func (r *Redis) Admit(ctx context.Context, req *AdmitRequest) (*AdmitResult, error) {
	for i := range req.Checks {
		if err := validate(&req.Checks[i]); err != nil {
			return nil, fmt.Errorf("failed to admit: check %d (%s): %w", i, req.Checks[i].Key, err)
		}
	}
	res := &AdmitResult{Allowed: true, Results: make([]CheckResult, len(req.Checks))}
	if len(req.Checks) == 0 {
		if req.Peek != "" {
			res.Peeked, res.PeekFound, res.PeekErr = r.kv.Get(ctx, req.Peek)
		}
		return res, nil
	}
	groups := r.groups(len(req.Checks), func(i int) string { return req.Checks[i].Key })
	for gi, g := range groups {
		var peek *peekResult
		if gi == 0 && req.Peek != "" {
			peek = &peekResult{res: res}
		}
		ok, err := r.admitGroup(ctx, req, g, res.Results, peek)
		if err != nil {
			r.rollback(ctx, req, groups[:gi], res.Results)
			return nil, err
		}
		if !ok {
			res.Allowed = false
			r.rollback(ctx, req, groups[:gi], res.Results)
			return res, nil
		}
	}
	return res, nil
}

// peekResult receives the cache read that rides along with the first group's script.
type peekResult struct{ res *AdmitResult }

func (r *Redis) admitGroup(ctx context.Context, req *AdmitRequest, g []int, out []CheckResult, peek *peekResult) (bool, error) {
	keys := make([]string, 0, 2*len(g))
	args := make([]any, 0, 2+8*len(g))
	args = append(args, r.nowArg(), req.ID)
	for _, i := range g {
		c := &req.Checks[i]
		k1, k2 := r.keys(c)
		keys = append(keys, k1, k2)
		shadow := "0"
		if c.Shadow {
			shadow = "1"
		}
		args = append(args, int(c.Kind), c.Limit, durUS(c.Window), c.Burst, c.Cost, shadow,
			durUS(c.TTL), c.Expire.Milliseconds())
	}
	var cmd *redis.Cmd
	if peek == nil {
		cmd = admitScript.Run(ctx, r.c, keys, args...)
	} else {
		// The cache read goes in the same pipeline: one round trip for limits, budgets and the
		// response-cache lookup.
		var get *redis.StringCmd
		_, _ = r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
			cmd = admitScript.EvalSha(ctx, p, keys, args...)
			get = p.Get(ctx, r.kv.prefix+req.Peek)
			return nil
		})
		if err := cmd.Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			cmd = admitScript.Eval(ctx, r.c, keys, args...)
		}
		val, err := get.Bytes()
		switch {
		case err == nil:
			peek.res.Peeked, peek.res.PeekFound = val, true
		case !errors.Is(err, redis.Nil):
			peek.res.PeekErr = fmt.Errorf("failed to read cache entry: %w", err)
		}
	}
	v, err := cmd.Int64Slice()
	if err != nil {
		return false, fmt.Errorf("failed to run admit script: %w", err)
	}
	if len(v) != 1+7*len(g) {
		return false, fmt.Errorf("failed to run admit script: %d values for %d checks", len(v), len(g))
	}
	for j, i := range g {
		p := v[1+7*j:]
		out[i] = CheckResult{
			Evaluated:  true,
			Allowed:    p[0] == 1,
			Consumed:   p[1] == 1,
			Remaining:  p[2],
			RetryAfter: time.Duration(p[3]),
			Reset:      time.Duration(p[4]),
			Spent:      p[5],
			Reserved:   p[6],
		}
	}
	return v[0] == 1, nil
}

// rollback gives back what the groups consumed (a later tag refused or failed).
func (r *Redis) rollback(ctx context.Context, req *AdmitRequest, groups [][]int, results []CheckResult) {
	if len(groups) == 0 {
		return
	}
	s := &Settlement{ID: req.ID}
	for _, g := range groups {
		for _, i := range g {
			if results[i].Consumed {
				s.Ops = append(s.Ops, SettleOp{Check: req.Checks[i], Consumed: true, Actual: 0})
				results[i].Consumed = false
			}
		}
	}
	// A failed rollback leaves reservations that expire after their TTL; nothing is charged.
	_ = r.Settle(context.WithoutCancel(ctx), s)
}

type settleCall struct {
	keys []string
	args []any
}

func (sc *settleCall) op(kind, k1, k2 string, args ...any) {
	sc.keys = append(sc.keys, k1, k2)
	sc.args = append(sc.args, kind, len(args))
	sc.args = append(sc.args, args...)
}

// Settle implements [Store]: one settle.lua call per tag, all in one pipeline.
func (r *Redis) Settle(ctx context.Context, s *Settlement) error {
	mode := settlePlain
	if s.Checkpointed {
		mode = settleFinal
	}
	return r.settle(ctx, s, mode)
}

// Checkpoint implements [Store]: like Settle, one settle.lua call per tag in one pipeline, each
// led by the progress op that turns totals into increments.
func (r *Redis) Checkpoint(ctx context.Context, s *Settlement) error {
	return r.settle(ctx, s, settleCheckpoint)
}

// settle.lua's progress modes (op 6); settlePlain sends no progress op.
const (
	settlePlain      = ""
	settleCheckpoint = "c"
	settleFinal      = "f"
)

// progressKey names the hash in which checkpoints of admission id record what they charged under
// one hash tag ("" when calls are not split by tag).
func (r *Redis) progressKey(tag, id string) string {
	if tag == "" {
		return r.prefix + "aio:progress:" + id
	}
	return r.prefix + "aio:progress:{" + tag + "}:" + id
}

func (r *Redis) settle(ctx context.Context, s *Settlement, mode string) error {
	calls := map[string]*settleCall{}
	var order []string
	call := func(key string) *settleCall {
		tag := ""
		if r.split {
			tag = HashTag(key)
		}
		sc := calls[tag]
		if sc == nil {
			sc = &settleCall{args: []any{r.nowArg(), s.ID}}
			if mode != settlePlain {
				ttl := ProgressTTL
				if mode == settleFinal {
					ttl = FinishedTTL
				}
				pk := r.progressKey(tag, s.ID)
				sc.op("6", pk, pk, mode, ttl.Milliseconds())
			}
			calls[tag] = sc
			order = append(order, tag)
		}
		return sc
	}
	for i := range s.Ops {
		op := &s.Ops[i]
		if mode == settleCheckpoint && op.Kind != KindBudget && op.Kind != KindConcurrency {
			continue
		}
		k1, k2 := r.keys(&op.Check)
		switch op.Kind {
		case KindTokenBucket:
			if op.Consumed && op.Actual != op.Cost {
				call(op.Key).op("1", k1, k2, op.Limit, durUS(op.Window), op.Actual-op.Cost)
			}
		case KindSlidingWindow:
			if op.Consumed && op.Actual != op.Cost {
				call(op.Key).op("2", k1, k2, op.Cost, op.Actual)
			}
		case KindConcurrency:
			switch {
			case !op.Consumed:
			case mode == settleCheckpoint:
				if op.TTL > 0 {
					call(op.Key).op("8", k1, k2, durUS(op.TTL))
				}
			default:
				call(op.Key).op("3", k1, k2)
			}
		case KindBudget:
			consumed := "0"
			if op.Consumed {
				consumed = "1"
			}
			call(op.Key).op("4", k1, k2, consumed, op.Cost, op.Actual, op.Expire.Milliseconds(), durUS(op.TTL))
		}
	}
	if u := s.Usage; u != nil {
		ledger := r.ledgerOp
		if mode != settlePlain {
			ledger = r.ledgerTotalOp
		}
		if u.Org != "" {
			ledger(call, u.Org, u)
		}
		ledger(call, GlobalTag, u)
	}
	put := s.Put
	if put != nil {
		if len(put.Value) > r.kv.maxValue {
			put.Err = fmt.Errorf("failed to cache %d bytes (bound %d): %w", len(put.Value), r.kv.maxValue, ErrValueTooLarge)
			put = nil
		} else if put.TTL <= 0 {
			put = nil
		}
	}
	if len(order) == 0 && put == nil {
		return nil
	}
	cmds := make([]*redis.Cmd, len(order))
	var set *redis.StatusCmd
	_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, tag := range order {
			sc := calls[tag]
			cmds[i] = settleScript.EvalSha(ctx, p, sc.keys, sc.args...)
		}
		if put != nil {
			set = p.Set(ctx, r.kv.prefix+put.Key, put.Value, put.TTL)
		}
		return nil
	})
	if set != nil {
		if serr := set.Err(); serr != nil {
			put.Err = fmt.Errorf("failed to write cache entry: %w", serr)
		}
	}
	if err == nil {
		return nil
	}
	// Scripts not loaded (new server, failover): EVAL the ones that reported NOSCRIPT.
	for i, cmd := range cmds {
		if cerr := cmd.Err(); cerr != nil {
			if !redis.HasErrorPrefix(cerr, "NOSCRIPT") {
				return fmt.Errorf("failed to run settle script: %w", cerr)
			}
			sc := calls[order[i]]
			if err := settleScript.Eval(ctx, r.c, sc.keys, sc.args...).Err(); err != nil {
				return fmt.Errorf("failed to run settle script: %w", err)
			}
		}
	}
	return nil
}

func (r *Redis) ledgerKey(tag string, hour int64) string {
	return r.prefix + "aio:ledger:{" + tag + "}:" + strconv.FormatInt(hour, 10)
}

func ledgerField(k LedgerKey, metric string) string {
	return k.Dim + KeySep + k.Key + KeySep + metric
}

func (r *Redis) ledgerOp(call func(string) *settleCall, tag string, u *UsageRecord) {
	key := r.ledgerKey(tag, HourOf(u.At).Unix())
	cells := []LedgerKey{detailCell(u)}
	args := make([]any, 0, 1+6*len(cells))
	args = append(args, LedgerRetention.Milliseconds())
	for _, c := range cells {
		args = append(args, ledgerField(c, "r"), u.Requests, ledgerField(c, "t"), u.Tokens, ledgerField(c, "c"), u.Cost)
	}
	call(key).op("5", key, key, args...)
}

// ledgerTotalOp is ledgerOp for progress mode: u holds totals since admission, and the script
// adds their difference to what earlier checkpoints recorded under the field prefix "l"+tag.
func (r *Redis) ledgerTotalOp(call func(string) *settleCall, tag string, u *UsageRecord) {
	key := r.ledgerKey(tag, HourOf(u.At).Unix())
	cells := []LedgerKey{detailCell(u)}
	args := make([]any, 0, 5+len(cells))
	args = append(args, LedgerRetention.Milliseconds(), "l"+tag, u.Requests, u.Tokens, u.Cost)
	for _, c := range cells {
		args = append(args, c.Dim+KeySep+c.Key+KeySep)
	}
	call(key).op("7", key, key, args...)
}

// Budgets implements [Store].
func (r *Redis) Budgets(ctx context.Context, keys []string) ([]BudgetState, error) {
	now, err := r.Now(ctx)
	if err != nil {
		return nil, err
	}
	after := "(" + strconv.FormatInt(micros(now), 10)
	spent := make([]*redis.StringCmd, len(keys))
	live := make([]*redis.StringSliceCmd, len(keys))
	_, err = r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			k1, k2 := r.keys(&Check{Key: k})
			spent[i] = p.HGet(ctx, k1, "spent")
			live[i] = p.ZRangeByScore(ctx, k2, &redis.ZRangeBy{Min: after, Max: "+inf"})
		}
		return nil
	})
	_ = err // each command's error is checked below: a missing field (redis.Nil) is a zero spend
	out := make([]BudgetState, len(keys))
	for i := range keys {
		v, err := spent[i].Int64()
		switch {
		case err == nil:
			out[i].Spent = v
		case !errors.Is(err, redis.Nil):
			return nil, fmt.Errorf("failed to read budget %s: %w", keys[i], err)
		}
		if err := live[i].Err(); err != nil {
			return nil, fmt.Errorf("failed to read budget %s: %w", keys[i], err)
		}
		for _, m := range live[i].Val() {
			if j := strings.LastIndexByte(m, ':'); j >= 0 {
				a, _ := strconv.ParseInt(m[j+1:], 10, 64)
				out[i].Reserved += a
			}
		}
	}
	return out, nil
}

// Ledger implements [Store]: one HGETALL per hour, pipelined.
func (r *Redis) Ledger(ctx context.Context, tag string, from, to time.Time) ([]LedgerHour, error) {
	var hours []time.Time
	for h := HourOf(from); h.Before(to); h = h.Add(time.Hour) {
		hours = append(hours, h)
	}
	if len(hours) == 0 {
		return nil, nil
	}
	cmds := make([]*redis.MapStringStringCmd, len(hours))
	_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, h := range hours {
			cmds[i] = p.HGetAll(ctx, r.ledgerKey(tag, h.Unix()))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("failed to read ledger: %w", err)
	}
	var out []LedgerHour
	for i, cmd := range cmds {
		m := cmd.Val()
		if len(m) == 0 {
			continue
		}
		lh := LedgerHour{Hour: hours[i], Cells: make(map[LedgerKey]Totals, len(m)/3)}
		for f, v := range m {
			i, j := strings.Index(f, KeySep), strings.LastIndex(f, KeySep)
			if i < 0 || j <= i {
				continue
			}
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				continue
			}
			k := LedgerKey{Dim: f[:i], Key: f[i+1 : j]}
			t := lh.Cells[k]
			switch f[j+1:] {
			case "r":
				t.Requests = n
			case "t":
				t.Tokens = n
			case "c":
				t.Cost = n
			}
			lh.Cells[k] = t
		}
		lh.Cells = expandLedger(lh.Cells, tag == GlobalTag)
		out = append(out, lh)
	}
	return out, nil
}
