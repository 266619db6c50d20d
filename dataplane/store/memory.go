package store

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"time"
)

// Memory is the embedded store for a single process: every operation runs under one mutex, so
// Admit is trivially atomic and all-or-nothing. Its clock is injected.
type Memory struct {
	mu    sync.Mutex
	clock Clock

	buckets map[string]*memBucket
	windows map[string]*memWindow
	slots   map[string]*memSlots
	budgets map[string]*memBudget
	// ledger holds detail cells only (see [detailCell]) per hour (unix s). A detail cell's key
	// names its org, so the global ledger's cell of a record is also its org's: each cell is kept
	// once, and the org ledgers are an index of it (see [memHour]). A settle looks its cell up
	// with a key built in keyBuf, so that a cell that exists costs one lookup and no allocation.
	ledger map[int64]*memHour
	keyBuf []byte
	// progress is what checkpoints charged per admission ID (see [Store.Checkpoint]).
	progress map[string]*memProgress

	lastSweep int64
	cache     *memKV
}

// memHour is one hour of the ledger. cells is the global ledger; an org's ledger is
// byOrg[OrgTag(org)], the cells whose key names the org (a record without an org is in the
// global ledger only).
type memHour struct {
	cells map[string]*memCell
	byOrg map[string][]*memCell
}

// memCell is a detail cell.
type memCell struct {
	key string
	Totals
}

type memBucket struct {
	tat float64
}

type memEntry struct {
	ts   int64
	id   string
	cost int64
}

type memWindow struct {
	window  int64 // µs, for the sweep
	entries []memEntry
	sum     int64
}

// memSlots are a concurrency limit's holders: holder → expiry (µs). No holder expires before
// nextExp, so that an admission scans the holders only when one may have expired: under load a
// busy limit holds every call in flight, and scanning them all on every admission cost more than
// the rest of the check.
type memSlots struct {
	held    map[string]int64
	nextExp int64
}

// purge drops the holders that expired by now.
func (s *memSlots) purge(now int64) {
	if s.nextExp > now {
		return
	}
	s.nextExp = math.MaxInt64
	for id, exp := range s.held {
		if exp <= now {
			delete(s.held, id)
		} else {
			s.nextExp = min(s.nextExp, exp)
		}
	}
}

// hold adds or renews a holder.
func (s *memSlots) hold(id string, exp int64) {
	s.held[id] = exp
	s.nextExp = min(s.nextExp, exp)
}

type memReservation struct {
	amount int64
	exp    int64
}

type memBudget struct {
	spent    int64
	reserved int64
	res      map[string]memReservation
	expireAt int64 // µs
	// nextExp is a lower bound of the reservations' expiries (MaxInt64 when there are none):
	// expired reservations are looked for only once it has passed, rather than by iterating every
	// live reservation (all calls in flight under an org's budget) on each admission and settle.
	nextExp int64
}

// reserve adds or replaces id's reservation.
func (b *memBudget) reserve(id string, r memReservation) {
	b.res[id] = r
	b.nextExp = min(b.nextExp, r.exp)
}

// memProgress is what checkpoints recorded for one admission: the spend charged per budget key
// and the usage added to the ledger, both since admission. finished marks a settled admission,
// whose record stays until exp as a tombstone (as on Redis).
type memProgress struct {
	// id is the admission's, a copy of the caller's: Checkpoint writes it into the state it
	// renews, so that the settlement passed in never escapes (callers keep theirs on the stack).
	id       string
	spent    map[string]int64
	usage    Totals
	finished bool
	exp      int64 // µs
}

// MemoryOptions configures [NewMemory].
type MemoryOptions struct {
	// Clock defaults to [SystemClock].
	Clock Clock
	// CacheBytes bounds the response cache (keys + values); default 64 MiB.
	CacheBytes int64
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty in-memory store.
func NewMemory(opts MemoryOptions) *Memory {
	if opts.Clock == nil {
		opts.Clock = SystemClock{}
	}
	if opts.CacheBytes <= 0 {
		opts.CacheBytes = 64 << 20
	}
	return &Memory{
		clock:    opts.Clock,
		buckets:  map[string]*memBucket{},
		windows:  map[string]*memWindow{},
		slots:    map[string]*memSlots{},
		budgets:  map[string]*memBudget{},
		ledger:   map[int64]*memHour{},
		progress: map[string]*memProgress{},
		cache:    newMemKV(opts.Clock, opts.CacheBytes),
	}
}

// Now implements [Store].
func (m *Memory) Now(context.Context) (time.Time, error) { return m.clock.Now(), nil }

// Cache implements [Store].
func (m *Memory) Cache() KV { return m.cache }

// Close implements [Store].
func (m *Memory) Close() error { return nil }

// Admit implements [Store].
func (m *Memory) Admit(_ context.Context, req *AdmitRequest) (*AdmitResult, error) {
	res := newAdmitResult(len(req.Checks))
	var err error
	res.Allowed, res.Peeked, res.PeekFound, err = m.AdmitTo(req, res.Results)
	if err != nil {
		return nil, err
	}
	return res, nil
}

// AdmitTo is [Memory.Admit] with the results written to results, one per check of req, which the
// caller provides: a caller that holds them only while it reads them keeps them on its stack
// (the governor does), where Admit allocates them with the result.
func (m *Memory) AdmitTo(req *AdmitRequest, results []CheckResult) (allowed bool, peeked []byte, peekFound bool, err error) {
	if len(results) != len(req.Checks) {
		return false, nil, false, fmt.Errorf("failed to admit: %d results for %d checks", len(results), len(req.Checks))
	}
	for i := range req.Checks {
		if err := validate(&req.Checks[i]); err != nil {
			return false, nil, false, fmt.Errorf("failed to admit: check %d (%s): %w", i, req.Checks[i].Key, err)
		}
	}
	allowed, at := m.admit(req, results)
	if req.Peek != "" {
		peeked, peekFound = m.cache.getAt(req.Peek, at)
	}
	return allowed, peeked, peekFound, nil
}

// admit decides req into results; it returns the time it decided at, for the cache read that
// follows.
func (m *Memory) admit(req *AdmitRequest, results []CheckResult) (allowed bool, at time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	at = m.clock.Now()
	now := micros(at)
	m.sweep(now)
	fnow := float64(now)
	clear(results)
	allowed = true
	var stBuf [8]admitState // a request's checks fit: no allocation
	var st []admitState
	if len(req.Checks) <= len(stBuf) {
		st = stBuf[:len(req.Checks)]
	} else {
		st = make([]admitState, len(req.Checks))
	}

	// Phase 1: evaluate without consuming (purging expired state is not consumption).
	for i := range req.Checks {
		c := &req.Checks[i]
		r := &results[i]
		r.Evaluated = true
		switch c.Kind {
		case KindTokenBucket:
			var tat float64
			b := m.buckets[c.Key]
			if b != nil {
				tat = b.tat
			}
			o := gcra(tat, fnow, c.Limit, durUS(c.Window), c.Burst, c.Cost)
			st[i].gc, st[i].bucket = o, b
			r.Allowed, r.Remaining, r.RetryAfter, r.Reset = o.allowed, o.remaining, usDur(o.retry), usDur(o.reset)
		case KindSlidingWindow:
			w := m.window(c.Key, durUS(c.Window), now)
			st[i].window = w
			if w.sum+c.Cost <= c.Limit {
				r.Allowed = true
				r.Remaining = c.Limit - w.sum - c.Cost
				if len(w.entries) > 0 {
					r.Reset = usDur(float64(w.entries[0].ts + durUS(c.Window) - now))
				} else {
					r.Reset = c.Window
				}
			} else {
				r.Remaining = max(0, c.Limit-w.sum)
				r.RetryAfter = c.Window
				if c.Cost <= c.Limit {
					need, freed := w.sum+c.Cost-c.Limit, int64(0)
					for _, e := range w.entries {
						freed += e.cost
						if freed >= need {
							r.RetryAfter = usDur(float64(e.ts + durUS(c.Window) - now))
							break
						}
					}
				}
				r.Reset = r.RetryAfter
				if len(w.entries) > 0 {
					r.Reset = usDur(float64(w.entries[0].ts + durUS(c.Window) - now))
				}
			}
		case KindConcurrency:
			var n int64
			if held := m.slots[c.Key]; held != nil {
				held.purge(now)
				n = int64(len(held.held))
				st[i].slots = held
			}
			if n < c.Limit {
				r.Allowed, r.Remaining = true, c.Limit-n-1
			} else {
				r.RetryAfter = time.Second
			}
		case KindBudget:
			b := m.budget(c.Key, now)
			st[i].budget = b
			r.Spent, r.Reserved = b.spent, b.reserved
			r.Allowed = budgetFits(b.spent, b.reserved, c.Cost, c.Limit)
			r.Remaining = max(0, c.Limit-b.spent-b.reserved)
			if r.Allowed {
				r.Remaining = c.Limit - b.spent - b.reserved - c.Cost
			}
		}
		if !r.Allowed && !c.Shadow {
			allowed = false
		}
	}
	if !allowed {
		return allowed, at
	}

	// Phase 2: consume every allowed check.
	for i := range req.Checks {
		c := &req.Checks[i]
		r := &results[i]
		if !r.Allowed {
			continue
		}
		r.Consumed = true
		switch c.Kind {
		case KindTokenBucket:
			b := st[i].bucket
			if b == nil { // absent in phase 1; an earlier check of the same key may have made it
				b = m.buckets[c.Key]
			}
			if b == nil {
				b = &memBucket{}
				m.buckets[c.Key] = b
			}
			b.tat = st[i].gc.newTAT
		case KindSlidingWindow:
			w := st[i].window
			w.insert(memEntry{ts: now, id: req.ID, cost: c.Cost})
			w.sum += c.Cost
		case KindConcurrency:
			held := st[i].slots
			if held == nil {
				held = m.slots[c.Key]
			}
			if held == nil {
				held = &memSlots{held: map[string]int64{}, nextExp: math.MaxInt64}
				m.slots[c.Key] = held
			}
			held.hold(req.ID, now+durUS(c.TTL))
		case KindBudget:
			b := st[i].budget
			if c.Cost > 0 {
				b.reserve(req.ID, memReservation{amount: c.Cost, exp: now + durUS(c.TTL)})
				b.reserved += c.Cost
			}
			b.expireAt = max(b.expireAt, now+durUS(c.Expire))
		}
	}
	return allowed, at
}

// admitState is what phase 1 of an admission found for one check, so that phase 2 consumes it
// without looking its key up again: the bucket's evaluation, and the state under the key (nil
// for a bucket or concurrency limit that does not exist yet).
type admitState struct {
	gc     gcraOut
	bucket *memBucket
	window *memWindow
	slots  *memSlots
	budget *memBudget
}

// newAdmitResult returns a result for n checks, allocated with its Results when they are few
// (a request's checks usually are): one allocation rather than two.
func newAdmitResult(n int) *AdmitResult {
	if n > 6 {
		return &AdmitResult{Allowed: true, Results: make([]CheckResult, n)}
	}
	r := &struct {
		res AdmitResult
		buf [6]CheckResult
	}{}
	r.res = AdmitResult{Allowed: true, Results: r.buf[:n]}
	return &r.res
}

func (m *Memory) window(key string, windowUS, now int64) *memWindow {
	w := m.windows[key]
	if w == nil {
		w = &memWindow{window: windowUS}
		m.windows[key] = w
	}
	w.window = windowUS
	w.purge(now)
	return w
}

// purge drops entries that left the window. It reslices rather than copies, so a busy window
// costs O(1) per request; append reallocates (and thereby compacts) once capacity runs out.
func (w *memWindow) purge(now int64) {
	cut := 0
	for cut < len(w.entries) && w.entries[cut].ts <= now-w.window {
		w.sum -= w.entries[cut].cost
		cut++
	}
	if cut == len(w.entries) {
		w.entries = w.entries[:0]
	} else if cut > 0 {
		w.entries = w.entries[cut:]
	}
}

func (w *memWindow) insert(e memEntry) {
	i := len(w.entries)
	for i > 0 && w.entries[i-1].ts > e.ts {
		i--
	}
	w.entries = append(w.entries, memEntry{})
	copy(w.entries[i+1:], w.entries[i:])
	w.entries[i] = e
}

func (m *Memory) budget(key string, now int64) *memBudget {
	b := m.budgets[key]
	if b == nil {
		b = &memBudget{res: map[string]memReservation{}, nextExp: math.MaxInt64}
		m.budgets[key] = b
	}
	if b.nextExp <= now {
		b.nextExp = math.MaxInt64
		for id, r := range b.res {
			if r.exp <= now {
				b.reserved -= r.amount
				delete(b.res, id)
			} else {
				b.nextExp = min(b.nextExp, r.exp)
			}
		}
	}
	return b
}

// sweep drops expired state once a minute so that idle keys do not accumulate.
func (m *Memory) sweep(now int64) {
	if now-m.lastSweep < int64(time.Minute/time.Microsecond) {
		return
	}
	m.lastSweep = now
	for k, b := range m.buckets {
		if b.tat < float64(now) {
			delete(m.buckets, k)
		}
	}
	for k, w := range m.windows {
		w.purge(now)
		if len(w.entries) == 0 {
			delete(m.windows, k)
		}
	}
	for k, held := range m.slots {
		held.purge(now)
		if len(held.held) == 0 {
			delete(m.slots, k)
		}
	}
	for k, b := range m.budgets {
		if b.expireAt <= now {
			delete(m.budgets, k)
		}
	}
	for id, p := range m.progress {
		if p.exp <= now {
			delete(m.progress, id)
		}
	}
	oldest := (now/1_000_000 - int64(LedgerRetention/time.Second))
	for h := range m.ledger {
		if h < oldest {
			delete(m.ledger, h)
		}
	}
}

// progressOf returns id's progress record, created when absent or expired. The record keeps a
// copy of id, so that a settlement never outlives the call (callers keep theirs on the stack).
func (m *Memory) progressOf(id string, now int64) *memProgress {
	p := m.progress[id]
	if p == nil || p.exp <= now {
		p = &memProgress{id: strings.Clone(id), spent: map[string]int64{}}
		m.progress[p.id] = p
	}
	return p
}

// Checkpoint implements [Store].
func (m *Memory) Checkpoint(_ context.Context, s *Settlement) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := micros(m.clock.Now())
	p := m.progressOf(s.ID, now)
	if p.finished {
		return nil
	}
	p.exp = now + durUS(ProgressTTL)
	id := p.id // s.ID's copy: writing s.ID itself into a map would make the settlement escape
	for i := range s.Ops {
		op := &s.Ops[i]
		if op.Kind == KindConcurrency && op.Consumed && op.TTL > 0 {
			// A running call keeps its slot: renewed for another TTL (never shortened).
			if holders := m.slots[op.Key]; holders != nil {
				if exp, ok := holders.held[id]; ok && exp > now {
					holders.hold(id, max(exp, now+durUS(op.TTL)))
				}
			}
			continue
		}
		if op.Kind != KindBudget {
			continue
		}
		b := m.budget(op.Key, now)
		if r, ok := b.res[id]; ok && op.Consumed {
			// A running call keeps what is left of its reservation for another TTL (a stream
			// longer than the TTL would otherwise free headroom it may still spend).
			if op.TTL > 0 {
				r.exp = max(r.exp, now+durUS(op.TTL))
				b.reserve(id, r)
			}
			// The reservation shrinks by what was charged, never below zero and never back up.
			if left := max(0, op.Cost-op.Actual); left < r.amount {
				b.reserved -= r.amount - left
				r.amount = left
				if left == 0 {
					delete(b.res, id)
				} else {
					b.reserve(id, r)
				}
			}
		}
		b.spent += op.Actual - p.spent[op.Key]
		p.spent[op.Key] = op.Actual
		b.expireAt = max(b.expireAt, now+durUS(op.Expire))
	}
	m.addProgressUsage(p, s.Usage)
	return nil
}

// addProgressUsage adds to the ledger what u (totals since admission) adds to what p recorded.
func (m *Memory) addProgressUsage(p *memProgress, u *UsageRecord) {
	if u == nil {
		return
	}
	d := *u
	d.Requests -= p.usage.Requests
	d.Tokens -= p.usage.Tokens
	d.Cost -= p.usage.Cost
	p.usage = Totals{Requests: u.Requests, Tokens: u.Tokens, Cost: u.Cost}
	if d.Requests == 0 && d.Tokens == 0 && d.Cost == 0 {
		return
	}
	m.addUsage(&d)
}

// Settle implements [Store].
func (m *Memory) Settle(_ context.Context, s *Settlement) error {
	at := m.settle(s)
	if p := s.Put; p != nil {
		p.Err = m.cache.setAt(p.Key, p.Value, p.TTL, at)
	}
	return nil
}

// settle applies s; it returns the time it did, for the cache write that follows.
func (m *Memory) settle(s *Settlement) time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	at := m.clock.Now()
	now := micros(at)
	var p *memProgress
	if s.Checkpointed {
		p = m.progressOf(s.ID, now)
	}
	for i := range s.Ops {
		op := &s.Ops[i]
		switch op.Kind {
		case KindTokenBucket:
			if !op.Consumed || op.Actual == op.Cost { // a request limit: nothing to correct
				continue
			}
			b := m.buckets[op.Key]
			if b == nil {
				b = &memBucket{}
				m.buckets[op.Key] = b
			}
			t := float64(durUS(op.Window)) / float64(op.Limit)
			b.tat = bucketCorrect(b.tat, float64(now), float64(op.Actual-op.Cost)*t)
		case KindSlidingWindow:
			if !op.Consumed || op.Actual == op.Cost {
				continue
			}
			w := m.windows[op.Key]
			if w == nil {
				continue
			}
			for j := len(w.entries) - 1; j >= 0; j-- { // settles are mostly for recent entries
				if w.entries[j].id == s.ID {
					w.sum += op.Actual - w.entries[j].cost
					w.entries[j].cost = op.Actual
					if op.Actual == 0 {
						w.entries = append(w.entries[:j], w.entries[j+1:]...)
					}
					break
				}
			}
		case KindConcurrency:
			if held := m.slots[op.Key]; held != nil && op.Consumed {
				delete(held.held, s.ID)
			}
		case KindBudget:
			b := m.budget(op.Key, now)
			if r, ok := b.res[s.ID]; ok && op.Consumed {
				b.reserved -= r.amount
				delete(b.res, s.ID)
			}
			charge := op.Actual
			if p != nil {
				charge -= p.spent[op.Key]
				p.spent[op.Key] = op.Actual
			}
			b.spent += charge
			b.expireAt = max(b.expireAt, now+durUS(op.Expire))
		}
	}
	if p != nil {
		m.addProgressUsage(p, s.Usage)
		p.finished, p.exp = true, now+durUS(FinishedTTL)
		return at
	}
	if u := s.Usage; u != nil {
		m.addUsage(u)
	}
	return at
}

// bucketCorrect moves a bucket's TAT by delta µs; a TAT in the past means a full bucket, so a
// refund can never make it fuller than full.
func bucketCorrect(tat, now, delta float64) float64 {
	if tat < now {
		tat = now
	}
	tat += delta
	if tat < now {
		tat = now
	}
	return tat
}

// addUsage adds u to its org's ledger (none without an org) and to the global one: one cell,
// which stands in both (see [Memory.ledger]).
func (m *Memory) addUsage(u *UsageRecord) {
	// The key as detailCell spells it, in a reused buffer: looking it up allocates nothing.
	k := append(m.keyBuf[:0], u.User...)
	for _, part := range [...]string{u.Org, u.APIKey, u.Model, u.Provider} {
		k = append(k, KeySep...)
		k = append(k, part...)
	}
	m.keyBuf = k
	h := HourOf(u.At).Unix()
	hour := m.ledger[h]
	if hour == nil {
		hour = &memHour{cells: map[string]*memCell{}, byOrg: map[string][]*memCell{}}
		m.ledger[h] = hour
	}
	c := hour.cells[string(k)]
	if c == nil {
		c = &memCell{key: string(k)}
		hour.cells[c.key] = c
		if u.Org != "" {
			tag := OrgTag(u.Org)
			hour.byOrg[tag] = append(hour.byOrg[tag], c)
		}
	}
	c.Add(Totals{Requests: u.Requests, Tokens: u.Tokens, Cost: u.Cost})
}

// Budgets implements [Store].
func (m *Memory) Budgets(_ context.Context, keys []string) ([]BudgetState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := micros(m.clock.Now())
	out := make([]BudgetState, len(keys))
	for i, k := range keys {
		b := m.budgets[k]
		if b == nil {
			continue
		}
		out[i].Spent = b.spent
		for _, r := range b.res {
			if r.exp > now {
				out[i].Reserved += r.amount
			}
		}
	}
	return out, nil
}

// Ledger implements [Store].
func (m *Memory) Ledger(_ context.Context, tag string, from, to time.Time) ([]LedgerHour, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []LedgerHour
	for h, hour := range m.ledger {
		start := time.Unix(h, 0).UTC()
		if !start.Add(time.Hour).After(from) || !start.Before(to) {
			continue
		}
		var lh LedgerHour
		if tag == GlobalTag {
			lh = LedgerHour{Hour: start, Cells: make(map[LedgerKey]Totals, len(hour.cells))}
			for k, c := range hour.cells {
				lh.Cells[LedgerKey{dimDetail, k}] = c.Totals
			}
		} else {
			cells := hour.byOrg[tag]
			if len(cells) == 0 {
				continue
			}
			lh = LedgerHour{Hour: start, Cells: make(map[LedgerKey]Totals, len(cells))}
			for _, c := range cells {
				lh.Cells[LedgerKey{dimDetail, c.key}] = c.Totals
			}
		}
		lh.Cells = expandLedger(lh.Cells, tag == GlobalTag)
		out = append(out, lh)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Hour.Before(out[j].Hour) })
	return out, nil
}
