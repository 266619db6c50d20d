package store

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

//go:embed numbers.lua
var numbersLua string

//go:embed admit.lua
var admitLua string

//go:embed settle.lua
var settleLua string

// The scripts as Redis runs them: each after the number helpers both use.
var (
	admitSrc  = numbersLua + admitLua
	settleSrc = numbersLua + settleLua
)

// The scripts' SHA1s. Commands are built by hand (see [scriptArgs]) rather than with redis.Script,
// so that strings and numbers go in as pointers (boxing a pointer allocates nothing) and the
// admit reply (one string of packed int64s, see [replyInt]) is read without conversions.
var (
	admitSHA  = redis.NewScript(admitSrc).Hash()
	settleSHA = redis.NewScript(settleSrc).Hash()
)

// scriptArgs is an EVALSHA command under construction: "evalsha", sha, numkeys, then the keys
// and the arguments, laid out in one slab (keys and args are its regions, filled separately).
// Strings and numbers are kept in arenas and passed by pointer.
type scriptArgs struct {
	slab []any
	keys []any
	args []any
	strs []string
	nums []int64
	kcap int
	cmd  []any
}

// newScriptArgs makes room for up to keys keys and args arguments (more still fit, at the cost of
// an allocation).
func newScriptArgs(keys, args int) scriptArgs {
	slab := make([]any, 3+keys+args)
	return scriptArgs{
		slab: slab,
		kcap: keys,
		keys: slab[3 : 3 : 3+keys],
		args: slab[3+keys : 3+keys : 3+keys+args],
		strs: make([]string, 0, keys+4),
		nums: make([]int64, 0, args),
	}
}

// str returns v as a command argument. The arena may be reallocated by a later append; earlier
// pointers then keep the old array alive, which still holds their values.
func (a *scriptArgs) str(v string) any {
	a.strs = append(a.strs, v)
	return &a.strs[len(a.strs)-1]
}

func (a *scriptArgs) num(v int64) any {
	if v >= 0 && v < 256 {
		return v // boxed without allocating (the runtime keeps these values)
	}
	a.nums = append(a.nums, v)
	return &a.nums[len(a.nums)-1]
}

func (a *scriptArgs) key(k string) { a.keys = append(a.keys, a.str(k)) }

// reset empties a for another command: the keys and arguments start over in the slab (regions
// that outgrew it are dropped) and every reference to the last command's values is cleared.
func (a *scriptArgs) reset() {
	clear(a.slab)
	clear(a.strs)
	a.keys = a.slab[3 : 3 : 3+a.kcap]
	a.args = a.slab[3+a.kcap : 3+a.kcap : len(a.slab)]
	a.strs, a.nums, a.cmd = a.strs[:0], a.nums[:0], nil
}

// onceTTL is how long an admission's marker lives (admit.lua, settle.lua op 9): it holds the
// admission's reply until Settle replaces it with the settle's token, so that a retried or late
// admission consumes nothing more and a retried settle charges nothing more. go-redis retries
// within a call's deadline (seconds); a minute, like [FinishedTTL], also covers a first attempt
// that a stalled server runs after its retry.
const onceTTL = FinishedTTL

// onceKey names the marker of admission id under one hash tag ("" when calls are not split by
// tag), in the slot of the keys the call touches.
func (r *Redis) onceKey(tag, id string) string {
	if tag == "" {
		return r.prefix + "aio:once:" + id
	}
	return r.prefix + "aio:once:{" + tag + "}:" + id
}

// settleSeq numbers Settle calls: each call's token (settle.lua op 9), unique among the calls of
// one admission, which all come from this process.
var settleSeq atomic.Int64

// command returns the full EVALSHA (or, with eval, EVAL) argument list; the keys and arguments
// must be complete. It reuses the slab: the arguments move down to follow the keys.
func (a *scriptArgs) command(eval bool, sha, src *string) []any {
	if a.cmd == nil {
		nk, na := len(a.keys), len(a.args)
		// An append beyond a region's capacity moved that region out of the slab (to a larger
		// capacity); a region still in it has the capacity newScriptArgs gave it.
		if kcap := cap(a.keys); kcap == a.kcap && cap(a.args) == len(a.slab)-3-kcap {
			copy(a.slab[3+nk:], a.args) // overlapping regions: copy moves correctly
			a.cmd = a.slab[:3+nk+na]
		} else {
			a.cmd = make([]any, 3, 3+nk+na)
			a.cmd = append(append(a.cmd, a.keys...), a.args...)
		}
		a.cmd[2] = nk
	}
	if eval {
		a.cmd[0], a.cmd[1] = "eval", src
	} else {
		a.cmd[0], a.cmd[1] = "evalsha", sha
	}
	return a.cmd
}

func isNoScript(err error) bool { return err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") }

// Redis is the shared store across replicas. Each Admit is one EVALSHA of admit.lua per hash tag
// (one in total on a single Redis or Sentinel, and on a Cluster when every key carries the same
// tag); Settle is one pipelined round trip of settle.lua calls. Scripts are sent by SHA and fall
// back to EVAL (which also loads them) on NOSCRIPT, e.g. after a failover or SCRIPT FLUSH.
//
// Every script call applies once, though go-redis sends a command again when its connection broke
// before the reply arrived (Redis may have run it): the scripts keep a marker per admission and
// hash tag (see [onceTTL]). Settle's marker uses SET … GET, so the server must be Redis 6.2 or later.
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

// DialRedis connects to one Redis server at url (redis://[user:pass@]host:port/db or
// rediss://…) with the request path's defaults and checks that it answers: [Dial] with
// [TopologySingle].
func DialRedis(ctx context.Context, url string, opts RedisOptions) (*Redis, error) {
	return Dial(ctx, TopologySingle, url, opts)
}

// opaqueDialer dials with dial and hides the connection's file descriptor from go-redis.
//
// go-redis checks every connection it takes from its pool (a deadline reset and a non-blocking
// MSG_PEEK read, a system call) when, and only when, the connection implements syscall.Conn: two
// checks per request (admission, settlement) spent finding out whether Redis closed an idle
// connection. Without the check such a connection fails on its first use instead: the read after
// a close returns EOF, the write to a reset connection fails with ECONNRESET (a net.Error), and
// go-redis retries both on a fresh connection (MaxRetries, default 3; a URL with max_retries=-1
// turns that off). The server never saw the command on the dead connection, so it runs once
// (redis_conn_test.go breaks an idle connection both ways and counts the executions). A
// connection that breaks while a command is in flight gets the command sent again with or without
// the check, which only looks at idle connections; the scripts' markers make that second run
// change nothing (see [onceTTL] and once_test.go). TLS connections (rediss://) are not
// syscall.Conn, so go-redis never checked those and they are passed through unchanged.
func opaqueDialer(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(context.Context, string, string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if _, ok := c.(syscall.Conn); ok {
			return opaqueConn{c}, nil
		}
		return c, nil
	}
}

// opaqueConn is a net.Conn with only net.Conn's methods (deadlines included), so go-redis cannot
// reach its file descriptor; see [opaqueDialer].
type opaqueConn struct{ net.Conn }

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

// keys returns c's two keys, built in one allocation: the first is a prefix of the second.
func (r *Redis) keys(c *Check) (string, string) {
	aux := r.prefix + c.Key + auxSuffix
	return aux[:len(aux)-len(auxSuffix)], aux
}

// auxSuffix names a check's second key (a sliding log's entry hash, a budget's reservations).
const auxSuffix = ":aux"

// scriptKeys adds c's two keys. Token buckets and concurrency limits use only the first, so
// their second is the first again (one string fewer to build; the script never touches it).
func (r *Redis) scriptKeys(a *scriptArgs, c *Check) {
	if c.Kind == KindTokenBucket || c.Kind == KindConcurrency {
		p := a.str(r.prefix + c.Key)
		a.keys = append(a.keys, p, p)
		return
	}
	k, aux := r.keys(c)
	a.key(k)
	a.key(aux)
}

// firstIndexes and oneGroup answer groups without allocating when the checks are not split:
// oneGroup[n] is the one group of checks 0…n-1. Callers only read them.
var (
	firstIndexes [32]int
	oneGroup     [len(firstIndexes) + 1][1][]int
)

func init() {
	for i := range firstIndexes {
		firstIndexes[i] = i
	}
	for n := range oneGroup {
		oneGroup[n][0] = firstIndexes[:n:n]
	}
}

// group lists check indexes per hash tag, in order of first appearance.
func (r *Redis) groups(n int, key func(int) string) [][]int {
	if !r.split {
		if n <= len(firstIndexes) {
			return oneGroup[n][:]
		}
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
	res := newAdmitResult(len(req.Checks))
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
	sa := newScriptArgs(2*len(g)+1, 3+5*len(g))
	a := &sa
	a.args = append(a.args, r.nowArg(), &req.ID, a.num(onceTTL.Milliseconds()))
	for _, i := range g {
		c := &req.Checks[i]
		r.scriptKeys(a, c)
		// The kind, plus 4 for a shadow check, then only what the kind uses (admit.lua).
		code := int(c.Kind)
		if c.Shadow {
			code += 4
		}
		a.args = append(a.args, code, a.num(c.Limit))
		switch c.Kind {
		case KindTokenBucket:
			a.args = append(a.args, a.num(durUS(c.Window)), a.num(c.Burst), a.num(c.Cost))
		case KindSlidingWindow:
			a.args = append(a.args, a.num(durUS(c.Window)), a.num(c.Cost))
		case KindConcurrency:
			a.args = append(a.args, a.num(durUS(c.TTL)))
		case KindBudget:
			a.args = append(a.args, a.num(c.Cost), a.num(durUS(c.TTL)), a.num(c.Expire.Milliseconds()))
		}
	}
	tag := ""
	if r.split {
		tag = HashTag(req.Checks[g[0]].Key)
	}
	a.key(r.onceKey(tag, req.ID))
	cmd := redis.NewStringCmd(ctx, a.command(false, &admitSHA, &admitSrc)...)
	cmd.SetFirstKeyPos(3)
	if peek == nil {
		_ = r.c.Process(ctx, cmd)
	} else {
		// The cache read goes in the same pipeline: one round trip for limits, budgets and the
		// response-cache lookup.
		get := redis.NewStringCmd(ctx, "get", r.kv.prefix+req.Peek)
		p := r.c.Pipeline()
		_ = p.Process(ctx, cmd)
		_ = p.Process(ctx, get)
		_, _ = p.Exec(ctx)
		val, err := get.Bytes()
		switch {
		case err == nil:
			peek.res.Peeked, peek.res.PeekFound = val, true
		case !errors.Is(err, redis.Nil):
			peek.res.PeekErr = fmt.Errorf("failed to read cache entry: %w", err)
		}
	}
	if isNoScript(cmd.Err()) { // not loaded (new server, failover): EVAL loads it
		cmd = redis.NewStringCmd(ctx, a.command(true, &admitSHA, &admitSrc)...)
		cmd.SetFirstKeyPos(3)
		_ = r.c.Process(ctx, cmd)
	}
	v, err := cmd.Result()
	if err != nil {
		return false, fmt.Errorf("failed to run admit script: %w", err)
	}
	// admit.lua's reply: allowed_all, per check allowed and remaining and, by kind, retry and
	// reset or spent and reserved, then the time. The rest follows from these.
	want := 2
	for _, i := range g {
		want += replyValues(req.Checks[i].Kind)
	}
	if len(v) != 8*want {
		return false, fmt.Errorf("failed to run admit script: %d bytes for %d checks", len(v), len(g))
	}
	all := replyInt(v, 0) == 1
	p := 8
	for _, i := range g {
		c := &req.Checks[i]
		allowed := replyInt(v, p) == 1
		res := CheckResult{Evaluated: true, Allowed: allowed, Consumed: all && allowed, Remaining: replyInt(v, p+8)}
		switch c.Kind {
		case KindTokenBucket, KindSlidingWindow:
			res.RetryAfter, res.Reset = time.Duration(replyInt(v, p+16)), time.Duration(replyInt(v, p+24))
		case KindConcurrency:
			if !allowed {
				res.RetryAfter = time.Second
			}
		case KindBudget:
			res.Spent, res.Reserved = replyInt(v, p+16), replyInt(v, p+24)
		}
		out[i] = res
		p += 8 * replyValues(c.Kind)
	}
	return all, nil
}

// replyValues is how many values admit.lua replies for a check of kind k.
func replyValues(k CheckKind) int {
	if k == KindConcurrency {
		return 2
	}
	return 4
}

// replyInt reads the little-endian int64 at v[i:] (admit.lua packs its reply so).
func replyInt(v string, i int) int64 {
	_ = v[i+7]
	return int64(uint64(v[i]) | uint64(v[i+1])<<8 | uint64(v[i+2])<<16 | uint64(v[i+3])<<24 |
		uint64(v[i+4])<<32 | uint64(v[i+5])<<40 | uint64(v[i+6])<<48 | uint64(v[i+7])<<56)
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

// settleCall is one settle.lua call (one per hash tag).
type settleCall struct {
	tag string
	scriptArgs
	// pooled says the call came from settleCalls and goes back there (see settleBuilder.release).
	pooled bool
}

// op starts an op; kind is a constant ("1"…"9"), passed boxed so that it costs no allocation.
// Its arguments follow, as many as settle.lua's sizes say for the kind.
func (sc *settleCall) op(kind any, k1, k2 any) {
	sc.keys = append(sc.keys, k1, k2)
	sc.args = append(sc.args, kind)
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

// settleBuilder collects a settlement's script calls, one per hash tag (a single one unless the
// calls are split by tag), in order of first appearance.
type settleBuilder struct {
	r     *Redis
	s     *Settlement
	mode  string
	token int64 // a plain settle's (settle.lua op 9)
	calls []*settleCall
	// progress is the progress key of a settlement not split by tag, when spelled ahead (see
	// progressStrings); empty otherwise.
	progress string
	// per sizes a new call's arenas: the ops of the settlement plus the ledgers.
	per int
}

// Pooled settle calls have room for a settlement of up to pooledSettleOps ops (see
// settleBuilder.per): a stream's checkpoint every second, and every settle, would otherwise
// allocate the arenas of its command anew. A call is reused only once its command has been run:
// go-redis keeps nothing of a command's arguments after the call that ran it.
const pooledSettleOps = inlineSettleOps + 3

// inlineSettleOps is how many ops of a settlement fit a pooled call: a request's few limits and
// budget periods.
const inlineSettleOps = 6

var settleCalls = sync.Pool{New: func() any {
	return &settleCall{scriptArgs: newScriptArgs(2*pooledSettleOps, 2+8*pooledSettleOps)}
}}

// settleBuilders keeps builders, with the room their calls took, for the next settlement.
var settleBuilders = sync.Pool{New: func() any { return &settleBuilder{} }}

// release returns b's calls, then b, to their pools, once their commands have been run.
func (b *settleBuilder) release() {
	for _, sc := range b.calls {
		if sc.pooled {
			sc.reset()
			sc.tag = ""
			settleCalls.Put(sc)
		}
	}
	clear(b.calls)
	*b = settleBuilder{calls: b.calls[:0]}
	settleBuilders.Put(b)
}

func (b *settleBuilder) call(key string) *settleCall {
	tag := ""
	if b.r.split {
		tag = HashTag(key)
	}
	for _, sc := range b.calls {
		if sc.tag == tag {
			return sc
		}
	}
	var sc *settleCall
	if b.per <= pooledSettleOps {
		sc = settleCalls.Get().(*settleCall)
		sc.tag, sc.pooled = tag, true
	} else {
		sc = &settleCall{tag: tag, scriptArgs: newScriptArgs(2*b.per, 2+8*b.per)}
	}
	sc.args = append(sc.args, b.r.nowArg(), &b.s.ID)
	if b.mode != settlePlain {
		ttl := ProgressTTL
		if b.mode == settleFinal {
			ttl = FinishedTTL
		}
		pk := b.progress
		if pk == "" || tag != "" {
			pk = b.r.progressKey(tag, b.s.ID)
		}
		k := sc.str(pk)
		sc.op("6", k, k)
		var mode any = settleCheckpoint
		if b.mode == settleFinal {
			mode = settleFinal
		}
		sc.args = append(sc.args, mode, sc.num(ttl.Milliseconds()))
	} else {
		mk := sc.str(b.r.onceKey(tag, b.s.ID))
		sc.op("9", mk, mk)
		sc.args = append(sc.args, sc.num(b.token), sc.num(onceTTL.Milliseconds()))
	}
	b.calls = append(b.calls, sc)
	return sc
}

func (r *Redis) settle(ctx context.Context, s *Settlement, mode string) error {
	b := settleBuilders.Get().(*settleBuilder)
	*b = settleBuilder{r: r, s: s, mode: mode, per: len(s.Ops) + 3, calls: b.calls[:0]}
	defer b.release()
	if mode == settlePlain {
		b.token = settleSeq.Add(1)
	}
	// The hour is spelled on the stack: only the ledger keys that name it are allocated.
	var hourBuf [20]byte
	var hour []byte
	var ps progressStrings
	if u := s.Usage; u != nil {
		hour = strconv.AppendInt(hourBuf[:0], HourOf(u.At).Unix(), 10)
		if mode != settlePlain && !r.split {
			ps = r.progressStrings(s.ID, u, hour)
			b.progress = ps.progress
		}
	}
	for i := range s.Ops {
		op := &s.Ops[i]
		if mode == settleCheckpoint && op.Kind != KindBudget && op.Kind != KindConcurrency {
			continue
		}
		switch op.Kind {
		case KindTokenBucket:
			if op.Consumed && op.Actual != op.Cost {
				sc := b.call(op.Key)
				k := sc.str(r.prefix + op.Key)
				sc.op("1", k, k)
				sc.args = append(sc.args, sc.num(op.Limit), sc.num(durUS(op.Window)), sc.num(op.Actual-op.Cost))
			}
		case KindSlidingWindow:
			if op.Consumed && op.Actual != op.Cost {
				sc := b.call(op.Key)
				k1, k2 := r.keys(&op.Check)
				sc.op("2", sc.str(k1), sc.str(k2))
				sc.args = append(sc.args, sc.num(op.Cost), sc.num(op.Actual))
			}
		case KindConcurrency:
			switch {
			case !op.Consumed:
			case mode == settleCheckpoint:
				if op.TTL > 0 {
					sc := b.call(op.Key)
					k := sc.str(r.prefix + op.Key)
					sc.op("8", k, k)
					sc.args = append(sc.args, sc.num(durUS(op.TTL)))
				}
			default:
				sc := b.call(op.Key)
				k := sc.str(r.prefix + op.Key)
				sc.op("3", k, k)
			}
		case KindBudget:
			var consumed any = "0"
			if op.Consumed {
				consumed = "1"
			}
			sc := b.call(op.Key)
			k1, k2 := r.keys(&op.Check)
			sc.op("4", sc.str(k1), sc.str(k2))
			sc.args = append(sc.args, consumed, sc.num(op.Cost), sc.num(op.Actual), sc.num(op.Expire.Milliseconds()), sc.num(durUS(op.TTL)))
		}
	}
	if u := s.Usage; u != nil {
		switch {
		case mode == settlePlain:
			fields := ledgerFields(u)
			if u.Org != "" {
				r.ledgerOp(b, OrgTag(u.Org), hour, u, &fields)
			}
			r.ledgerOp(b, GlobalTag, hour, u, &fields)
		case ps.cellPrefix != "":
			if u.Org != "" {
				ledgerTotal(b, ps.orgKey, ps.orgField, u, ps.cellPrefix)
			}
			ledgerTotal(b, ps.globalKey, "l"+GlobalTag, u, ps.cellPrefix)
		default:
			prefix := detailCellPrefix(u)
			if u.Org != "" {
				r.ledgerTotalOp(b, OrgTag(u.Org), hour, u, prefix)
			}
			r.ledgerTotalOp(b, GlobalTag, hour, u, prefix)
		}
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
	if len(b.calls) == 0 && put == nil {
		return nil
	}
	var cmdBuf [4]*redis.IntCmd
	cmds := cmdBuf[:0]
	if len(b.calls) > len(cmdBuf) {
		cmds = make([]*redis.IntCmd, 0, len(b.calls))
	}
	cmds = cmds[:len(b.calls)]
	var set *redis.StatusCmd
	p := r.c.Pipeline()
	for i, sc := range b.calls {
		cmds[i] = redis.NewIntCmd(ctx, sc.command(false, &settleSHA, &settleSrc)...)
		cmds[i].SetFirstKeyPos(3)
		_ = p.Process(ctx, cmds[i])
	}
	if put != nil {
		set = p.Set(ctx, r.kv.prefix+put.Key, put.Value, put.TTL)
	}
	_, err := p.Exec(ctx)
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
			if !isNoScript(cerr) {
				return fmt.Errorf("failed to run settle script: %w", cerr)
			}
			ev := redis.NewIntCmd(ctx, b.calls[i].command(true, &settleSHA, &settleSrc)...)
			ev.SetFirstKeyPos(3)
			if err := r.c.Process(ctx, ev); err != nil {
				return fmt.Errorf("failed to run settle script: %w", err)
			}
		}
	}
	return nil
}

func (r *Redis) ledgerKey(tag string, hour int64) string {
	var b [20]byte
	return r.ledgerKeyOf(tag, strconv.AppendInt(b[:0], hour, 10))
}

// ledgerKeyOf takes the hour spelled in bytes, which cost no string of their own.
func (r *Redis) ledgerKeyOf(tag string, hour []byte) string {
	var sb strings.Builder
	sb.Grow(r.ledgerKeyLen(tag, hour))
	r.writeLedgerKey(&sb, tag, hour)
	return sb.String()
}

// The ledger hash of a tag and hour: prefix + ledgerKeyHead + tag + ledgerKeyTail + hour.
const ledgerKeyHead, ledgerKeyTail = "aio:ledger:{", "}:"

func (r *Redis) ledgerKeyLen(tag string, hour []byte) int {
	return len(r.prefix) + len(ledgerKeyHead) + len(tag) + len(ledgerKeyTail) + len(hour)
}

func (r *Redis) writeLedgerKey(sb *strings.Builder, tag string, hour []byte) {
	sb.WriteString(r.prefix)
	sb.WriteString(ledgerKeyHead)
	sb.WriteString(tag)
	sb.WriteString(ledgerKeyTail)
	sb.Write(hour)
}

// detailCellPrefix is the dimension and key of u's detail cell (see [detailCell]) each followed
// by KeySep: the prefix of the cell's fields, spelled in one allocation rather than two.
func detailCellPrefix(u *UsageRecord) string {
	return dimDetail + KeySep + u.User + KeySep + u.Org + KeySep + u.APIKey + KeySep + u.Model + KeySep + u.Provider + KeySep
}

func ledgerField(k LedgerKey, metric string) string {
	return k.Dim + KeySep + k.Key + KeySep + metric
}

// ledgerFields are the three counters of u's detail cell (requests, tokens, cost), as fields of
// a ledger hash: cut from one string, since both ledgers (org and global) write the same ones.
func ledgerFields(u *UsageRecord) [3]string {
	c := detailCell(u)
	n := len(c.Dim) + len(c.Key) + 2*len(KeySep) + 1
	var sb strings.Builder
	sb.Grow(3 * n)
	for _, m := range [3]string{"r", "t", "c"} {
		sb.WriteString(c.Dim)
		sb.WriteString(KeySep)
		sb.WriteString(c.Key)
		sb.WriteString(KeySep)
		sb.WriteString(m)
	}
	all := sb.String()
	return [3]string{all[:n], all[n : 2*n], all[2*n:]}
}

func (r *Redis) ledgerOp(b *settleBuilder, tag string, hour []byte, u *UsageRecord, fields *[3]string) {
	key := r.ledgerKeyOf(tag, hour)
	sc := b.call(key)
	k := sc.str(key)
	sc.op("5", k, k)
	sc.args = append(sc.args, sc.num(LedgerRetention.Milliseconds()),
		&fields[0], sc.num(u.Requests), &fields[1], sc.num(u.Tokens), &fields[2], sc.num(u.Cost))
}

// ledgerTotalOp is ledgerOp for progress mode: u holds totals since admission, and the script
// adds their difference to what earlier checkpoints recorded under the field prefix "l"+tag.
func (r *Redis) ledgerTotalOp(b *settleBuilder, tag string, hour []byte, u *UsageRecord, cellPrefix string) {
	pf := "l" + GlobalTag // a constant: the global ledger's field prefix costs no allocation
	if tag != GlobalTag {
		pf = "l" + tag
	}
	ledgerTotal(b, r.ledgerKeyOf(tag, hour), pf, u, cellPrefix)
}

// ledgerTotal is ledgerTotalOp with the ledger's key and field prefix spelled by the caller.
func ledgerTotal(b *settleBuilder, key, field string, u *UsageRecord, cellPrefix string) {
	sc := b.call(key)
	k := sc.str(key)
	sc.op("7", k, k)
	sc.args = append(sc.args, sc.num(LedgerRetention.Milliseconds()), sc.str(field),
		sc.num(u.Requests), sc.num(u.Tokens), sc.num(u.Cost), sc.str(cellPrefix))
}

// progressStrings are the strings a checkpoint, or the final settle of a checkpointed
// admission, sends besides its ops' keys when calls are not split by tag: the progress key, the
// org's ledger key and field prefix (empty without an org), the global ledger's key and the detail
// cell's prefix. A stream checkpoints every second; spelled in one allocation, they cost one
// string rather than five.
type progressStrings struct {
	progress, orgKey, orgField, globalKey, cellPrefix string
}

// progressStrings spells, for admission id and its usage u in the ledger hour, what
// progressKey("", id), ledgerKeyOf, "l"+tag and detailCellPrefix would.
func (r *Redis) progressStrings(id string, u *UsageRecord, hour []byte) progressStrings {
	const progress = "aio:progress:"
	org := ""
	if u.Org != "" {
		org = OrgTag(u.Org)
	}
	n := len(r.prefix) + len(progress) + len(id) + r.ledgerKeyLen(GlobalTag, hour) +
		len(dimDetail) + 6*len(KeySep) + len(u.User) + len(u.Org) + len(u.APIKey) + len(u.Model) + len(u.Provider)
	if org != "" {
		n += r.ledgerKeyLen(org, hour) + 1 + len(org)
	}
	var sb strings.Builder
	sb.Grow(n)
	var ends [5]int
	sb.WriteString(r.prefix)
	sb.WriteString(progress)
	sb.WriteString(id)
	ends[0] = sb.Len()
	if org != "" {
		r.writeLedgerKey(&sb, org, hour)
		ends[1] = sb.Len()
		sb.WriteString("l")
		sb.WriteString(org)
	} else {
		ends[1] = sb.Len()
	}
	ends[2] = sb.Len()
	r.writeLedgerKey(&sb, GlobalTag, hour)
	ends[3] = sb.Len()
	for _, part := range [...]string{dimDetail, u.User, u.Org, u.APIKey, u.Model, u.Provider} {
		sb.WriteString(part)
		sb.WriteString(KeySep)
	}
	ends[4] = sb.Len()
	all := sb.String()
	return progressStrings{progress: all[:ends[0]], orgKey: all[ends[0]:ends[1]], orgField: all[ends[1]:ends[2]],
		globalKey: all[ends[2]:ends[3]], cellPrefix: all[ends[3]:ends[4]]}
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
			live[i] = p.ZRangeByScore(ctx, k2, &redis.ZRangeBy{Min: after, Max: "(+inf"}) // not "~"'s +inf
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
