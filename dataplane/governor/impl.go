package governor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/money"
	"github.com/nself-org/ai-orchestration/dataplane/store"
)

// ErrIdentityRequired is returned by Admit when a request names no user or no org: budgets and
// limits are keyed by both, so an anonymous request cannot be governed (400 invalid request).
var ErrIdentityRequired = errors.New("a request needs a user and an org")

// ErrTicketSettled is returned by Settle for a ticket that was already settled.
var ErrTicketSettled = errors.New("ticket already settled")

// DefaultAdmitTimeout is Options.AdmitTimeout's default. 500 ms proved too tight: 1 000 parallel
// requests over three replicas on a loaded 2-core machine kept some admissions waiting longer than
// that on a healthy Redis (CPU starvation of the replicas plus queueing for pooled connections).
const DefaultAdmitTimeout = 2 * time.Second

// DefaultReservationTTL is Options.ReservationTTL's default.
const DefaultReservationTTL = 10 * time.Minute

// Options configures [New]. Zero values take the defaults in brackets.
type Options struct {
	// Clock decides budget periods (which day/week/month a request falls in) and ledger hours
	// [the replica's clock corrected to the store's (Redis TIME), refreshed every 10 s in the
	// background; the plain system clock for the in-memory store]. Windows of rate limits use the
	// store's clock directly.
	Clock store.Clock
	// ReservationTTL is how long a budget reservation or concurrency slot outlives a replica that
	// crashed before settling [DefaultReservationTTL, 10m]. It must exceed the longest call
	// (streams included): a reservation that expires while its call still runs frees budget that
	// is still at risk.
	ReservationTTL time.Duration
	// AdmitTimeout bounds the store call of Admit [DefaultAdmitTimeout]; on timeout the fail mode
	// applies. An unreachable Redis fails at once (connection refused); the timeout is for a hung
	// one. It must leave room for a burst queueing on a healthy Redis: a timed-out admission takes
	// the fail mode (served past the limit when open, a spurious 503 when closed), so a tight value
	// turns load into wrong answers.
	AdmitTimeout time.Duration
	// SettleTimeout bounds Settle [the larger of 2s and AdmitTimeout]: settling is what records
	// cost, so it never waits less than admission.
	SettleTimeout time.Duration
	// BudgetFailOpen admits requests under block budgets when the store is unavailable
	// [false: fail closed, so budgets never overspend]. Rate limits follow their own failMode.
	BudgetFailOpen bool
	// KeyPrefix starts every budget and limit key ["aio"].
	KeyPrefix string
	// Logger receives store failures and fail-mode decisions [slog.Default()].
	Logger *slog.Logger
	// Registerer, when set, gets the governor's Prometheus collectors (see [Metrics]).
	Registerer prometheus.Registerer
	// Metrics, when set, is used instead of creating (and registering) new counters.
	Metrics *Metrics
}

type gov struct {
	st store.Store
	// mem is st when it is the in-memory store, which never blocks on I/O (no timeout context
	// needed) and is called directly rather than through the interface, so that the results and
	// the settlement it does not keep stay on the caller's stack.
	mem     *store.Memory
	opts    Options
	log     *slog.Logger
	m       *Metrics
	idPfx   string
	idSeq   atomic.Uint64
	indexes atomic.Pointer[budgetIndex]
	// allowed caches the "allowed" counter of each rate limit (by route and limit name), so that
	// the common outcome costs neither a label string nor a lookup of the vector.
	allowedMu sync.RWMutex
	allowed   map[limitName]prometheus.Counter
	// admitted caches the "admitted" budget decision counter per budget action, likewise.
	admitted sync.Map // action → prometheus.Counter
	// The counters of checkpoints (see [gov.counter]): a running stream checkpoints every second.
	checkpointsOK, checkpointsErr, storeErrCheckpoint atomic.Pointer[prometheus.Counter]
}

// budgetAdmitted counts an admitted budget decision.
func (g *gov) budgetAdmitted(action string) {
	if c, ok := g.admitted.Load(action); ok {
		c.(prometheus.Counter).Inc()
		return
	}
	c := g.m.BudgetDecisions.WithLabelValues(action, "admitted")
	g.admitted.Store(action, c)
	c.Inc()
}

type limitName struct{ route, name string }

// limitAllowed counts an allowed rate-limit decision.
func (g *gov) limitAllowed(route, name string) {
	k := limitName{route, name}
	g.allowedMu.RLock()
	c, ok := g.allowed[k]
	g.allowedMu.RUnlock()
	if !ok {
		c = g.m.LimiterDecisions.WithLabelValues(route+"/"+name, "allowed")
		g.allowedMu.Lock()
		if g.allowed == nil {
			g.allowed = map[limitName]prometheus.Counter{}
		}
		g.allowed[k] = c
		g.allowedMu.Unlock()
	}
	c.Inc()
}

// New returns a Governor over st.
func New(st store.Store, opts Options) Governor {
	if opts.Clock == nil {
		if _, local := st.(*store.Memory); local {
			opts.Clock = store.SystemClock{}
		} else {
			opts.Clock = newStoreClock(st, defaultClockSync, time.Now)
		}
	}
	if opts.ReservationTTL <= 0 {
		opts.ReservationTTL = DefaultReservationTTL
	}
	if opts.AdmitTimeout <= 0 {
		opts.AdmitTimeout = DefaultAdmitTimeout
	}
	if opts.SettleTimeout <= 0 {
		opts.SettleTimeout = max(2*time.Second, opts.AdmitTimeout)
	}
	if opts.KeyPrefix == "" {
		opts.KeyPrefix = "aio"
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	m := opts.Metrics
	if m == nil {
		m = NewMetrics(opts.Registerer)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	mem, _ := st.(*store.Memory)
	return &gov{st: st, mem: mem, opts: opts, log: opts.Logger, m: m, idPfx: hex.EncodeToString(b[:]) + "-"}
}

// checkMeta says what a store check stands for.
type checkMeta struct {
	rl       *config.RateLimit
	route    string
	tokens   bool // a token limit: corrected at settle
	budget   *config.Budget
	subject  string
	period   string
	resetsAt time.Time
}

type ticketState struct {
	checks   []store.Check
	meta     []checkMeta
	consumed []bool
	settled  atomic.Bool
	// mu serializes Checkpoint and Settle, so that a checkpoint never reaches the store after the
	// final settle of its own replica (the store ignores one that does, as a second defence).
	mu sync.Mutex
	// checkpointed is set (under mu) once a checkpoint was sent, even one that failed: it may
	// have been applied, so the final settle must subtract what the store recorded.
	checkpointed bool
}

// inlineChecks is how many checks an admission holds without allocating its slices apart:
// a route's few limits and a caller's few budget periods.
const inlineChecks = 6

// admission is everything Admit allocates for one request, in one allocation: the ticket's
// state, the ticket, the decision, the store request and, for a request with few checks
// (see [admission4]), the backing arrays of the checks and what they stand for.
type admission struct {
	ts     ticketState
	ticket Ticket
	dec    Decision
	req    store.AdmitRequest
}

// admission4 and admission6 are an admission with room for the checks of a request, in two
// sizes: a check and its meta take 176 bytes, an admission is Admit's largest allocation, and the
// common request (two limits of its route, its user's and its org's budget) has four checks.
type admission4 struct {
	admission
	checks   [4]store.Check
	meta     [4]checkMeta
	consumed [4]bool
}

type admission6 struct {
	admission
	checks   [inlineChecks]store.Check
	meta     [inlineChecks]checkMeta
	consumed [inlineChecks]bool
}

func newAdmission(n int) *admission {
	switch {
	case n <= 4:
		a := &admission4{}
		a.ts.checks, a.ts.meta, a.ts.consumed = a.checks[:0], a.meta[:0], a.consumed[:0:n]
		return &a.admission
	case n <= inlineChecks:
		a := &admission6{}
		a.ts.checks, a.ts.meta, a.ts.consumed = a.checks[:0], a.meta[:0], a.consumed[:0:n]
		return &a.admission
	}
	a := &admission{}
	a.ts.checks, a.ts.meta, a.ts.consumed = make([]store.Check, 0, n), make([]checkMeta, 0, n), make([]bool, 0, n)
	return a
}

// storeCtx bounds a store call by timeout. The in-memory store never blocks on I/O, so it gets
// ctx as it is: no timer and no context to allocate per call.
func (g *gov) storeCtx(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	if g.mem != nil {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, timeout)
}

// detachedStoreCtx is the context of a settle or checkpoint: detached from ctx's cancellation
// (a disconnected client is still charged) and bounded by SettleTimeout. The in-memory store
// neither blocks nor looks at its context, so it gets ctx as it is: neither a detached context
// nor a timer is allocated for it.
func (g *gov) detachedStoreCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if g.mem != nil {
		return ctx, func() {}
	}
	if ctx.Done() == nil {
		// Never canceled already (a stream's checkpoints come detached): no second detaching.
		return context.WithTimeout(ctx, g.opts.SettleTimeout)
	}
	return context.WithTimeout(context.WithoutCancel(ctx), g.opts.SettleTimeout)
}

// newID spells the prefix and the sequence number in a buffer on the stack: one allocation, the
// string's, where the concatenation of a formatted number made two.
func (g *gov) newID() string {
	var b [32]byte
	return string(strconv.AppendUint(append(b[:0], g.idPfx...), g.idSeq.Add(1), 36))
}

func tagFor(id string) string { return "{" + id + "}" }

// userTag is the hash tag of a user's own keys (per-user limits and user budgets). It names the
// user alone, not the org, so that a user is one subject whatever orgId a request carries: a
// per-user limit or a user budget cannot be multiplied by sending other orgs.
func userTag(user string) string { return userTagPrefix + user }

const userTagPrefix = "u:"

// rateSubject returns the subject and hash tag (tagPfx + tag) of a rate limit's dimension; ok is
// false when the request has no value for it (e.g. no API key), in which case the limit does not
// apply. The tag comes in two parts so that the key is built in one allocation.
func rateSubject(per string, req *Request) (subject, tagPfx, tag string, ok bool) {
	switch per {
	case config.PerUser:
		return req.User, userTagPrefix, req.User, req.User != ""
	case config.PerOrg:
		return req.Org, "", req.Org, req.Org != ""
	case config.PerAPIKey:
		return req.APIKey, "", store.GlobalTag, req.APIKey != ""
	case config.PerModel:
		return req.Model, "", store.GlobalTag, req.Model != ""
	case config.PerGlobal:
		return "*", "", store.GlobalTag, true
	}
	return "", "", "", false
}

// Admit implements [Governor].
func (g *gov) Admit(ctx context.Context, snap *config.Snapshot, req *Request) (*Decision, error) {
	if req == nil || req.User == "" || req.Org == "" {
		return nil, ErrIdentityRequired
	}
	now := g.opts.Clock.Now()
	var budgetBuf [8]*indexedBudget
	budgets := budgetBuf[:0]
	if snap != nil {
		budgets = g.index(snap).applicable(req.Identity, budgets)
	}
	// Sized up front: a request's checks are its route's limits and its budgets' periods.
	n := 0
	if req.Route != nil {
		n = len(req.Route.RateLimits)
	}
	for _, ib := range budgets {
		n += len(ib.b.Limits)
	}
	a := newAdmission(n)
	ts := &a.ts
	if req.Route != nil {
		for i := range req.Route.RateLimits {
			g.addRateLimit(ts, req.Route.Name, &req.Route.RateLimits[i], req)
		}
	}
	for _, ib := range budgets {
		g.addBudget(ts, ib, req, now)
	}
	id := g.newID()
	a.ticket = Ticket{ID: id, state: ts}
	dec := &a.dec
	dec.Ticket = &a.ticket
	ts.consumed = ts.consumed[:len(ts.checks)]
	if len(ts.checks) == 0 && req.CachePeek == "" {
		return dec, nil
	}

	a.req = store.AdmitRequest{ID: id, Checks: ts.checks, Peek: req.CachePeek}
	var (
		results []store.CheckResult
		allowed bool
		err     error
	)
	if g.mem != nil {
		// The results stay on the stack: the in-memory store writes them where it is told.
		var buf [inlineChecks]store.CheckResult
		results = buf[:0]
		if len(ts.checks) > len(buf) {
			results = make([]store.CheckResult, 0, len(ts.checks))
		}
		results = results[:len(ts.checks)]
		allowed, dec.Cached, dec.CacheFound, err = g.mem.AdmitTo(&a.req, results)
	} else {
		sctx, cancel := g.storeCtx(ctx, g.opts.AdmitTimeout)
		var res *store.AdmitResult
		res, err = g.st.Admit(sctx, &a.req)
		cancel()
		if err == nil {
			results, allowed = res.Results, res.Allowed
			dec.Cached, dec.CacheFound, dec.CacheErr = res.Peeked, res.PeekFound, res.PeekErr
		}
	}
	if err != nil {
		dec.CacheErr = err
		if len(ts.checks) == 0 {
			return dec, nil // only the cache was read: a miss, never a refusal
		}
		return g.storeDown(ctx, ts, dec, err)
	}

	var budgetDenial, rateDenial *DeniedError
	haveTightest := false
	for i, r := range results {
		m := &ts.meta[i]
		c := &ts.checks[i]
		ts.consumed[i] = r.Consumed
		if !r.Evaluated { // a later slot, skipped because an earlier one refused (Cluster)
			continue
		}
		if m.budget != nil {
			g.budgetOutcome(dec, m, c, r, allowed)
			if !r.Allowed && !c.Shadow {
				d := &DeniedError{Kind: DeniedByBudget, Name: m.budget.Name, Period: m.period,
					ResetsAt: m.resetsAt, RetryAfter: max(0, m.resetsAt.Sub(now))}
				if budgetDenial == nil || d.ResetsAt.After(budgetDenial.ResetsAt) {
					budgetDenial = d
				}
			}
			continue
		}
		state := RateLimitState{Name: m.rl.Name, Limit: c.Limit, Remaining: r.Remaining, Reset: r.Reset}
		switch {
		case r.Allowed:
			g.limitAllowed(m.route, m.rl.Name)
		case c.Shadow:
			name := m.route + "/" + m.rl.Name
			g.m.LimiterDecisions.WithLabelValues(name, "shadow_limited").Inc()
			g.log.DebugContext(ctx, "shadow rate limit would refuse", "limit", name, "retryAfter", r.RetryAfter)
		default:
			g.m.LimiterDecisions.WithLabelValues(m.route+"/"+m.rl.Name, "limited").Inc()
			state.Remaining = 0
			if rateDenial == nil || r.RetryAfter > rateDenial.RetryAfter {
				rateDenial = &DeniedError{Kind: DeniedByRateLimit, Name: m.rl.Name, RetryAfter: r.RetryAfter,
					ResetsAt: now.Add(r.RetryAfter), RateLimit: state}
			}
		}
		if c.Shadow {
			continue
		}
		if !haveTightest || state.Remaining < dec.RateLimit.Remaining ||
			(state.Remaining == dec.RateLimit.Remaining && state.Reset > dec.RateLimit.Reset) {
			haveTightest = true
			dec.RateLimit = state
		}
	}
	if budgetDenial != nil {
		return nil, budgetDenial
	}
	if rateDenial != nil {
		return nil, rateDenial
	}
	if !allowed { // defensive: the store refused without a non-shadow refusal
		return nil, fmt.Errorf("failed to admit request: store refused without a reason")
	}
	return dec, nil
}

func (g *gov) addRateLimit(ts *ticketState, route string, rl *config.RateLimit, req *Request) {
	subject, tagPfx, tag, ok := rateSubject(rl.Per, req)
	if !ok {
		return
	}
	units, tokens := rl.Requests, false
	if units <= 0 && rl.Tokens > 0 {
		units, tokens = rl.Tokens, true
	}
	if units <= 0 {
		return
	}
	c := store.Check{
		Key:    g.opts.KeyPrefix + ":rl:{" + tagPfx + tag + "}:" + route + ":" + rl.Name + ":" + rl.Per + ":" + subject,
		Limit:  units,
		Window: rl.Window,
		Burst:  rl.Burst,
		Cost:   1,
		Shadow: rl.Shadow,
		TTL:    g.opts.ReservationTTL,
	}
	if c.Window <= 0 {
		c.Window = time.Minute
	}
	if tokens {
		c.Cost = max(0, req.EstimatedTokens)
	}
	switch rl.Algorithm {
	case config.AlgorithmSlidingWindow:
		c.Kind = store.KindSlidingWindow
	case config.AlgorithmConcurrency:
		c.Kind, tokens, c.Cost = store.KindConcurrency, false, 1
	default:
		c.Kind = store.KindTokenBucket
	}
	ts.checks = append(ts.checks, c)
	ts.meta = append(ts.meta, checkMeta{rl: rl, route: route, tokens: tokens})
}

func (g *gov) addBudget(ts *ticketState, ib *indexedBudget, req *Request, now time.Time) {
	b := ib.b
	subject, tagPfx, tag := budgetSubjectParts(b, req.Identity)
	for i := range b.Limits {
		l := &b.Limits[i]
		p := g.periodOf(ib, i, now, subject, tagPfx, tag)
		key := p.key
		if !ib.fixed {
			key = g.budgetKeyParts(tagPfx, tag, b.Name, subject, l.Period, p.label)
		}
		ts.checks = append(ts.checks, store.Check{
			Kind:   store.KindBudget,
			Key:    key,
			Limit:  int64(l.Limit),
			Cost:   int64(max(0, req.WorstCaseCost)),
			Shadow: b.Action != config.ActionBlock,
			TTL:    g.opts.ReservationTTL,
			Expire: p.end.Sub(now) + 7*24*time.Hour,
		})
		ts.meta = append(ts.meta, checkMeta{budget: b, subject: subject, period: l.Period, resetsAt: p.end})
	}
}

// budgetKey names a budget period's state.
func (g *gov) budgetKey(tag, name, subject, period, label string) string {
	return g.opts.KeyPrefix + ":budget:" + tagFor(tag) + ":" + name + ":" + subject + ":" + period + ":" + label
}

// budgetKeyParts is budgetKey with the tag in two parts (tagPfx + tag), spelled in one
// allocation.
func (g *gov) budgetKeyParts(tagPfx, tag, name, subject, period, label string) string {
	return g.opts.KeyPrefix + ":budget:{" + tagPfx + tag + "}:" + name + ":" + subject + ":" + period + ":" + label
}

// budgetSubject is the subject a budget counts a request under, and the hash tag of its keys:
// a user's budgets live with the user ({u:user}, across every org the user acts in), an org's with
// the org ({org}); apiKey and global budgets span orgs ({global}).
func budgetSubject(b *config.Budget, id Identity) (subject, tag string) {
	subject, pfx, tag := budgetSubjectParts(b, id)
	return subject, pfx + tag
}

// budgetSubjectParts is budgetSubject with the tag in two parts (tagPfx + tag), so that the
// request path builds a key in one allocation.
func budgetSubjectParts(b *config.Budget, id Identity) (subject, tagPfx, tag string) {
	switch b.Scope {
	case config.ScopeUser:
		return id.User, userTagPrefix, id.User
	case config.ScopeOrg:
		return id.Org, "", id.Org
	case config.ScopeAPIKey:
		return id.APIKey, "", store.GlobalTag
	}
	return "*", "", store.GlobalTag
}

func (g *gov) budgetOutcome(dec *Decision, m *checkMeta, c *store.Check, r store.CheckResult, admitted bool) {
	b := m.budget
	switch {
	case r.Allowed:
		g.budgetAdmitted(b.Action)
	case b.Action == config.ActionBlock:
		g.m.BudgetDecisions.WithLabelValues(b.Action, "blocked").Inc()
	case b.Action == config.ActionDowngrade:
		g.m.BudgetDecisions.WithLabelValues(b.Action, "downgraded").Inc()
		if dec.Downgrade == "" {
			dec.Downgrade = b.DowngradeTo
		}
	default:
		g.m.BudgetDecisions.WithLabelValues(b.Action, "over_alert").Inc()
	}
	if !admitted || c.Limit <= 0 {
		return
	}
	before := r.Spent + r.Reserved
	after := before + c.Cost
	for _, th := range b.AlertThresholds {
		point := c.Limit/100*int64(th) + c.Limit%100*int64(th)/100
		if before < point && after >= point {
			dec.Alerts = append(dec.Alerts, Alert{Budget: b.Name, Subject: m.subject, Period: m.period,
				Threshold: th, Spent: money.Nanos(after), Limit: money.Nanos(c.Limit)})
			g.m.BudgetAlerts.WithLabelValues(b.Name, strconv.Itoa(int(th))).Inc()
		}
	}
}

// storeDown applies the fail modes: closed when any enforced limit says closed (or a block budget
// applies and budgets fail closed), open otherwise. An open admission keeps its checks unconsumed,
// so Settle still charges budgets and the ledger once the store is back.
func (g *gov) storeDown(ctx context.Context, ts *ticketState, dec *Decision, err error) (*Decision, error) {
	g.m.StoreErrors.WithLabelValues("admit").Inc()
	closed := ""
	for i, m := range ts.meta {
		if ts.checks[i].Shadow {
			continue
		}
		if m.rl != nil && m.rl.FailMode == config.FailClosed {
			closed = m.rl.Name
			break
		}
		if m.budget != nil && !g.opts.BudgetFailOpen {
			closed = m.budget.Name
			break
		}
	}
	if closed != "" {
		g.m.FailClosed.Inc()
		g.log.WarnContext(ctx, "limit store unavailable; failing closed", "limit", closed, "error", err)
		return nil, fmt.Errorf("failed to admit request: %w: %w", ErrStoreUnavailable, err)
	}
	g.m.FailOpen.Inc()
	g.log.WarnContext(ctx, "limit store unavailable; failing open", "error", err)
	return dec, nil
}

// Settle implements [Governor].
func (g *gov) Settle(ctx context.Context, req *Request, t *Ticket, c Charge) error {
	if t == nil || req == nil {
		return fmt.Errorf("failed to settle: nil ticket or request")
	}
	ts, ok := t.state.(*ticketState)
	if !ok {
		return fmt.Errorf("failed to settle: ticket %q was not issued by this governor", t.ID)
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if !ts.settled.CompareAndSwap(false, true) {
		return fmt.Errorf("failed to settle ticket %q: %w", t.ID, ErrTicketSettled)
	}
	tokens := c.Usage.PromptTokens + c.Usage.CompletionTokens
	if c.Estimated {
		g.m.UsageEstimated.Inc()
	}
	if c.Unpriced {
		g.m.UsageUnpriced.Inc()
	}
	var err error
	if g.mem != nil {
		// The in-memory store keeps nothing of the settlement: it stays on the stack.
		var ops [inlineChecks]store.SettleOp
		u := g.usage(req, tokens, int64(c.Cost))
		s := store.Settlement{ID: t.ID, Ops: g.settleOps(ts, ops[:0], tokens, int64(c.Cost)), Usage: &u,
			Checkpointed: ts.checkpointed, Put: c.CachePut}
		err = g.mem.Settle(ctx, &s)
	} else {
		// The settlement, its usage record and (for few checks) its ops in one allocation.
		both := &struct {
			s   store.Settlement
			u   store.UsageRecord
			ops [inlineChecks]store.SettleOp
		}{}
		both.u = g.usage(req, tokens, int64(c.Cost))
		both.s = store.Settlement{ID: t.ID, Ops: g.settleOps(ts, both.ops[:0], tokens, int64(c.Cost)), Usage: &both.u,
			Checkpointed: ts.checkpointed, Put: c.CachePut}
		sctx, cancel := g.detachedStoreCtx(ctx)
		err = g.st.Settle(sctx, &both.s)
		cancel()
	}
	if err != nil {
		if c.CachePut != nil && c.CachePut.Err == nil {
			c.CachePut.Err = err
		}
		g.m.StoreErrors.WithLabelValues("settle").Inc()
		g.log.ErrorContext(ctx, "failed to settle usage", "ticket", t.ID, "cost", c.Cost.String(), "error", err)
		return fmt.Errorf("failed to settle ticket %q: %w", t.ID, err)
	}
	return nil
}

// settleOps appends to ops (grown when the checks outnumber its capacity) the ops that settle
// ts: every budget (charged whether or not its reservation was consumed) and every consumed limit.
func (g *gov) settleOps(ts *ticketState, ops []store.SettleOp, tokens, cost int64) []store.SettleOp {
	if len(ts.checks) > cap(ops) {
		ops = make([]store.SettleOp, 0, len(ts.checks))
	}
	for i := range ts.checks {
		ch, m := &ts.checks[i], &ts.meta[i]
		actual := ch.Cost
		switch {
		case m.budget != nil:
			actual = cost
		case m.tokens:
			actual = tokens
		}
		if m.budget == nil && !ts.consumed[i] {
			continue
		}
		ops = append(ops, store.SettleOp{Check: *ch, Consumed: ts.consumed[i], Actual: actual})
	}
	return ops
}

// usage is the ledger record of a settled request.
func (g *gov) usage(req *Request, tokens, cost int64) store.UsageRecord {
	return store.UsageRecord{
		At: g.opts.Clock.Now(), User: req.User, Org: req.Org, APIKey: req.APIKey,
		Model: req.Model, Provider: req.Provider, Requests: 1, Tokens: tokens, Cost: cost,
	}
}

// Checkpoint implements [Governor].
//
// Reservations shrink by what a checkpoint charges rather than staying whole until the end:
// admission made room for spent + reserved + worst case ≤ limit, and a checkpoint moves part of
// that worst case from reserved to spent in one atomic store step, so every replica keeps seeing
// the same headroom — never more (the budget cannot be overspent while the call stays within its
// worst case, which settling already relies on) and never less (a running stream would otherwise
// count twice, refusing requests that fit, and a killed one would hold both its spend and its whole
// reservation until the TTL). A call that outruns its worst case empties its reservation and goes
// on charging spend, exactly as its final settle would.
func (g *gov) Checkpoint(ctx context.Context, req *Request, t *Ticket, c Charge) error {
	if t == nil || req == nil {
		return fmt.Errorf("failed to checkpoint: nil ticket or request")
	}
	ts, ok := t.state.(*ticketState)
	if !ok {
		return fmt.Errorf("failed to checkpoint: ticket %q was not issued by this governor", t.ID)
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.settled.Load() {
		return fmt.Errorf("failed to checkpoint ticket %q: %w", t.ID, ErrTicketSettled)
	}
	ts.checkpointed = true
	// A stream checkpoints every second for as long as it runs: its settlement is built in a
	// pooled buffer rather than allocated anew each time (no store keeps anything of it past the
	// call). Pooled rather than kept with the ticket: an admission is sized to fill its
	// allocation, and a held stream would keep the buffer between checkpoints.
	cp := checkpointBufs.Get().(*checkpointBuf)
	cp.u = g.usage(req, c.Usage.PromptTokens+c.Usage.CompletionTokens, int64(c.Cost))
	cp.s = store.Settlement{ID: t.ID, Ops: checkpointOps(ts, cp.ops[:0], int64(c.Cost)), Usage: &cp.u, Checkpointed: true}
	sctx, cancel := g.detachedStoreCtx(ctx)
	err := g.st.Checkpoint(sctx, &cp.s)
	cancel()
	*cp = checkpointBuf{} // holds nothing of this request while pooled
	checkpointBufs.Put(cp)
	if err != nil {
		g.counter(&g.storeErrCheckpoint, g.m.StoreErrors, "checkpoint").Inc()
		g.counter(&g.checkpointsErr, g.m.Checkpoints, "error").Inc()
		return fmt.Errorf("failed to checkpoint ticket %q: %w", t.ID, err)
	}
	g.counter(&g.checkpointsOK, g.m.Checkpoints, "ok").Inc()
	return nil
}

// checkpointBuf is the settlement of a ticket's checkpoint (see [gov.Checkpoint]), with room
// for the ops of a few checks.
type checkpointBuf struct {
	s   store.Settlement
	u   store.UsageRecord
	ops [inlineChecks]store.SettleOp
}

var checkpointBufs = sync.Pool{New: func() any { return &checkpointBuf{} }}

// checkpointOps appends to ops (grown when the checks outnumber its capacity) the ops of a
// checkpoint of ts: every budget, charged cost so far, and every consumed concurrency slot, renewed
// (a stream longer than the reservation TTL keeps its slot).
func checkpointOps(ts *ticketState, ops []store.SettleOp, cost int64) []store.SettleOp {
	if len(ts.checks) > cap(ops) {
		ops = make([]store.SettleOp, 0, len(ts.checks))
	}
	for i := range ts.checks {
		switch {
		case ts.meta[i].budget != nil:
			ops = append(ops, store.SettleOp{Check: ts.checks[i], Consumed: ts.consumed[i], Actual: cost})
		case ts.checks[i].Kind == store.KindConcurrency && ts.consumed[i]:
			ops = append(ops, store.SettleOp{Check: ts.checks[i], Consumed: true, Actual: ts.checks[i].Cost})
		}
	}
	return ops
}

// counter returns the child of the one-label vec for value, cached in *c: looking the child up
// per call hashes the label and allocates. The child is made on first use, as WithLabelValues
// would make it, so that a series appears only once it counts something.
func (g *gov) counter(c *atomic.Pointer[prometheus.Counter], vec *prometheus.CounterVec, value string) prometheus.Counter {
	if p := c.Load(); p != nil {
		return *p
	}
	ctr := vec.WithLabelValues(value)
	c.Store(&ctr)
	return ctr
}
