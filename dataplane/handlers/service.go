package handlers

import (
	"context"
	cryptorand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nself-org/ai-orchestration/dataplane/apierror"
	"github.com/nself-org/ai-orchestration/dataplane/cache"
	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/governor"
	"github.com/nself-org/ai-orchestration/dataplane/money"
	"github.com/nself-org/ai-orchestration/dataplane/promptopt"
	"github.com/nself-org/ai-orchestration/dataplane/providers"
	"github.com/nself-org/ai-orchestration/dataplane/route"
	"github.com/nself-org/ai-orchestration/dataplane/runtime"
	"github.com/nself-org/ai-orchestration/dataplane/store"
	"github.com/nself-org/ai-orchestration/dataplane/tokens"
	"github.com/nself-org/ai-orchestration/dataplane/tracing"
)

// DefaultStreamCheckpointInterval is Deps.StreamCheckpointInterval's default: a replica killed
// mid-stream loses at most about a second of output, for one store round trip per second per
// stream (and none while a stream sends nothing).
const DefaultStreamCheckpointInterval = time.Second

// Service runs the request path shared by every AI endpoint of both APIs.
type Service struct {
	d Deps
	// checkpoints runs the open streams' due checkpoints.
	checkpoints checkpointRunner
	// series are d.Metrics' children the request path bumps, looked up once each.
	series series
}

// NewService fills defaults in d and returns the service. d.Governor is required.
func NewService(d Deps) *Service {
	if d.Log == nil {
		d.Log = slog.Default()
	}
	if d.StreamCheckpointInterval == 0 {
		d.StreamCheckpointInterval = DefaultStreamCheckpointInterval
	}
	if d.DefaultMaxOutput <= 0 {
		d.DefaultMaxOutput = 4096
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Planner == nil {
		d.Planner = route.NewPlanner(route.NewHealth(route.HealthOptions{}), route.PlannerOptions{})
	}
	return &Service{d: d, series: series{m: d.Metrics}}
}

// ChatInput is a normalized chat request of either API.
type ChatInput struct {
	// Endpoint is the route-matching endpoint: route.EndpointChat or route.EndpointSummarize.
	Endpoint       string
	Model          string
	Messages       []providers.Message
	MaxTokens      int64
	Temperature    *float64
	TopP           *float64
	Stop           []string
	ResponseFormat *providers.ResponseFormat
	Identity       governor.Identity
	// Extra holds endpoint options that change the output (summarize: maxWords, style); they
	// are part of the cache key.
	Extra map[string]string
}

// ChatResult is a served chat reply.
type ChatResult struct {
	ID           string
	Content      string
	Model        string
	Provider     string
	FinishReason string
	Usage        providers.Usage
	Cost         money.Nanos
	Cached       bool
	RateLimit    governor.RateLimitState
	// TokensSaved is how many prompt tokens prompt optimization removed (X-AI-Tokens-Saved).
	TokensSaved int64
	// chunks replays a cached reply as a stream.
	chunks []string
}

// call is one admitted request between Admit and Settle.
type call struct {
	s      *Service
	rt     *runtime.Runtime
	res    *route.Resolved
	plan   *route.Plan
	greq   *governor.Request // &admitted once reserve has built it, nil before
	dec    *governor.Decision
	prompt int64
	saved  int64 // prompt tokens removed by prompt optimization
	// cache is the tenant-scoped cache entry's KV key ([cache.Cache.KVKeyOf]), built once for
	// the admission's peek and the settle's write; "" when the route does not cache.
	cache   string
	ttl     time.Duration
	put     *store.KVPut // the cache write the settle carries; nil when nothing is to be stored
	settled bool
	// admitted is the governor request greq points to, held here so that a call and its request
	// are one allocation.
	admitted governor.Request
}

// resolveErr maps route errors to the contract's replies.
func resolveErr(err error, model string) error {
	switch {
	case errors.Is(err, route.ErrModelNotFound):
		if model == "" {
			model = route.DefaultModel
		}
		return apierror.ModelNotFound(model)
	case errors.Is(err, route.ErrNoUsableTarget):
		return apierror.NoProvider(err.Error())
	}
	return err
}

// resolve finds the route and orders its targets.
func (s *Service) resolve(rt *runtime.Runtime, endpoint, model string, id governor.Identity) (*call, error) {
	res, err := rt.Routes.Resolve(route.Request{Model: model, Endpoint: endpoint, Org: id.Org, User: id.User})
	if err != nil {
		return nil, resolveErr(err, model)
	}
	c := &call{s: s, rt: rt, res: res, plan: s.d.Planner.Plan(res)}
	c.plan.Gate = c.takeProvider // upstream account quotas (provider_quota.go)
	if len(c.plan.Targets) == 0 {
		return nil, apierror.NoProvider("the route has no usable target")
	}
	return c, nil
}

// DefaultOrg is the org a request acts for when it names none: the governor keys budgets and
// limits by org, so org-less callers share this one (the cache still scopes them per user).
const DefaultOrg = "default"

// reserve asks the governor to admit c, reserving its worst case: c.prompt tokens at each
// target's input price plus the output cap at its output price, the dearest target counting.
// A budget in downgrade mode re-resolves the request to the cheaper model.
func (s *Service) reserve(ctx context.Context, c *call, endpoint string, id governor.Identity, maxOut int64) error {
	var worst money.Nanos
	var estimated int64
	for _, t := range c.plan.Targets {
		out := s.outCap(maxOut, t)
		if endpoint == route.EndpointEmbed {
			out = 0
		}
		worst = max(worst, money.CostOfTokens(c.prompt, t.InputPerMillion)+money.CostOfTokens(out, t.OutputPerMillion))
		estimated = max(estimated, c.prompt+out)
	}
	var policy *config.Route
	if !c.res.Implicit {
		policy = c.res.Route
	}
	gid := id
	if gid.Org == "" {
		gid.Org = DefaultOrg
	}
	first := c.plan.Targets[0]
	c.admitted = governor.Request{Identity: gid, Route: policy, Endpoint: endpoint, Provider: first.Provider,
		Model: first.Model, EstimatedTokens: estimated, WorstCaseCost: worst}
	c.greq = &c.admitted
	c.greq.CachePeek = c.cache
	if tracing.Recording(ctx) {
		var routeName string
		if policy != nil {
			routeName = policy.Name
		}
		tracing.SetRequest(ctx, endpoint, first.Model, maxOut, gid.Org, routeName)
	}
	dec, err := s.d.Governor.Admit(ctx, c.rt.Snapshot, c.greq)
	s.countDecision(err)
	if err != nil {
		return err
	}
	c.dec = dec
	if dec.Downgrade != "" && dec.Downgrade != first.Model {
		res2, err := c.rt.Routes.Resolve(route.Request{Model: dec.Downgrade, Endpoint: endpoint, Org: id.Org, User: id.User})
		if err == nil {
			c.res, c.plan = res2, s.d.Planner.Plan(res2)
			c.plan.Gate = c.takeProvider
		} else {
			s.d.Log.Warn("downgrade model is not servable; keeping the requested model", "downgrade", dec.Downgrade, "error", err)
		}
	}
	return nil
}

func (s *Service) outCap(maxOut int64, t *route.Target) int64 {
	switch {
	case maxOut > 0 && t.MaxOutputTokens > 0:
		// The model cannot write more than its cap whatever the caller asks, so the worst case
		// reserved against budgets is the smaller of the two.
		return min(maxOut, t.MaxOutputTokens)
	case maxOut > 0:
		return maxOut
	case t.MaxOutputTokens > 0:
		return t.MaxOutputTokens
	}
	return s.d.DefaultMaxOutput
}

func (s *Service) countDecision(err error) {
	if s.d.Metrics == nil {
		return
	}
	if err == nil {
		s.series.decision(outcomeAdmitted)
		return
	}
	// Declared past the nil check: errors.As takes its address, which moves it to the heap, and
	// an admitted request (nearly every one) should not pay that allocation.
	outcome := outcomeStoreError
	var de *governor.DeniedError
	switch {
	case errors.As(err, &de) && de.Kind == governor.DeniedByBudget:
		outcome = outcomeBudgetExceeded
	case errors.As(err, &de):
		outcome = outcomeRateLimited
	}
	s.series.decision(outcome)
}

// cost prices usage at the snapshot's prices for provider/model.
func cost(rt *runtime.Runtime, provider, model string, u providers.Usage) money.Nanos {
	m, ok := rt.Model(provider, model)
	if !ok {
		return 0
	}
	cached := min(max(u.CachedPromptTokens, 0), u.PromptTokens)
	cachedPrice := m.CachedInputPerMillion
	if cachedPrice <= 0 {
		cachedPrice = m.InputPerMillion
	}
	return money.CostOfTokens(u.PromptTokens-cached, m.InputPerMillion) +
		money.CostOfTokens(cached, cachedPrice) +
		money.CostOfTokens(u.CompletionTokens, m.OutputPerMillion)
}

// settle charges the call once, on a context detached from the client so that a hang-up or a
// shutdown still records what the provider billed.
func (c *call) settle(ctx context.Context, provider, model string, u providers.Usage, amount money.Nanos, cached, estimated bool) {
	if c.settled {
		return
	}
	c.settled = true
	if provider != "" {
		c.greq.Provider, c.greq.Model = provider, model
	}
	if provider != "" && tracing.Recording(ctx) {
		var ptype string
		if _, spec, ok := c.rt.Provider(provider); ok {
			ptype = spec.Type
		}
		tracing.SetResult(ctx, tracing.Result{ProviderType: ptype, Provider: provider, Model: model, InputTokens: u.PromptTokens,
			OutputTokens: u.CompletionTokens, CachedInputTokens: u.CachedPromptTokens, CostUSD: amount.USD(), CacheHit: cached})
	}
	ch := governor.Charge{Cost: amount, Cached: cached, Estimated: estimated, CachePut: c.put}
	ch.Usage.PromptTokens = u.PromptTokens
	ch.Usage.CompletionTokens = u.CompletionTokens
	ch.Usage.CachedPromptTokens = u.CachedPromptTokens
	// Detached from the client, unbounded here: the governor bounds its store calls by its own
	// SettleTimeout (governor.Governor's contract), and a second deadline around that one only
	// cost a timer and a context per request.
	sctx := context.WithoutCancel(ctx)
	var ticket *governor.Ticket
	if c.dec != nil {
		ticket = c.dec.Ticket
	}
	err := c.s.d.Governor.Settle(sctx, c.greq, ticket, ch)
	if c.put != nil {
		if err != nil && c.put.Err == nil {
			c.put.Err = err
		}
		c.s.d.Cache.Stored(ctx, c.put.Err)
	}
	if m := c.s.d.Metrics; m != nil {
		if err != nil {
			m.SettleErrors.Inc()
		}
		if estimated {
			m.EstimatedUsage.Inc()
		}
		if !cached && provider != "" {
			ms := c.s.series.model(provider, model)
			ms.prompt.Add(float64(u.PromptTokens))
			ms.completion.Add(float64(u.CompletionTokens))
			ms.cost.Add(amount.USD())
		}
	}
	if err != nil {
		c.s.d.Log.Error("failed to settle a call", "provider", c.greq.Provider, "model", c.greq.Model, "error", err)
	}
}

// release settles a call that produced nothing billable (refused by a guardrail, failed upstream).
func (c *call) release(ctx context.Context) {
	c.settle(ctx, "", "", providers.Usage{}, 0, false, false)
}

func (c *call) rateLimit() governor.RateLimitState {
	if c.dec == nil {
		return governor.RateLimitState{}
	}
	return c.dec.RateLimit
}

// MaxMessages bounds the messages of one chat request: far above any real conversation (whose
// history is trimmed to the context window anyway), low enough that hostile input cannot make
// every step (tokenizer, guardrails, cache key) walk millions of entries.
const MaxMessages = 4096

// prepareChat runs every step before the provider call: route resolution, prompt
// optimization, admission (limits and budgets), input guardrails and the cache lookup. A
// non-nil hit means the reply comes from the cache (already settled at $0).
func (s *Service) prepareChat(ctx context.Context, rt *runtime.Runtime, in *ChatInput) (*call, []providers.Message, *ChatResult, error) {
	if len(in.Messages) == 0 {
		return nil, nil, nil, apierror.BadRequest("messages must not be empty")
	}
	if len(in.Messages) > MaxMessages {
		return nil, nil, nil, apierror.BadRequest("messages has %d entries; at most %d are accepted", len(in.Messages), MaxMessages)
	}
	c, err := s.resolve(rt, in.Endpoint, in.Model, in.Identity)
	if err != nil {
		return nil, nil, nil, err
	}
	model := c.plan.Targets[0].Model
	msgs := optimize(c.res.Route.PromptOptimization, in.Messages, model)
	c.prompt = tokens.CountMessages(model, msgs)
	if po := c.res.Route.PromptOptimization; po.NormalizeWhitespace || po.MaxInputTokens > 0 {
		c.saved = max(0, tokens.CountMessages(model, in.Messages)-c.prompt)
	}
	// The cache key comes from the messages before input guardrails run, so that the lookup
	// rides with the admission's store round trip; the guardrails are part of the key, and a
	// hit is served only once they have passed the request.
	if pol := c.res.Route; s.d.Cache != nil && !c.res.Implicit && pol.Cache.Enabled {
		if scope, err := cache.NewScope(pol.Cache.Scope, in.Identity.Org, in.Identity.User); err == nil {
			key, err := s.d.Cache.KVKeyOf(scope, &cache.Request{Endpoint: in.Endpoint, Route: pol.Name, Model: in.Model, Messages: msgs,
				Temperature: in.Temperature, TopP: in.TopP, MaxTokens: in.MaxTokens, Stop: in.Stop, ResponseFormat: in.ResponseFormat,
				Extra: in.Extra, Guardrails: &pol.Guardrails, NormalizeWhitespace: pol.PromptOptimization.NormalizeWhitespace})
			if err == nil {
				c.cache, c.ttl = key, pol.Cache.TTL
			}
		}
	}
	if err := s.reserve(ctx, c, in.Endpoint, in.Identity, in.MaxTokens); err != nil {
		return nil, nil, nil, err
	}
	if s.d.Guard != nil {
		msgs, err = s.d.Guard.Input(s.guardCtx(ctx, rt, c.res.Route), c.res.Route, msgs)
		if err != nil {
			c.release(ctx)
			return nil, nil, nil, guardErr(err)
		}
	}
	if s.d.Metrics != nil && c.saved > 0 {
		s.d.Metrics.PromptTokensSaved.Add(float64(c.saved))
	}
	if c.cache != "" {
		if e, ok := s.d.Cache.Decode(ctx, c.dec.Cached, c.dec.CacheFound, c.dec.CacheErr); ok {
			s.series.cacheLookup(cacheHit)
			c.settle(ctx, e.Provider, e.Model, e.Usage, 0, true, false)
			return c, msgs, &ChatResult{ID: newID("chat"), Content: e.Content, Model: e.Model, Provider: e.Provider,
				FinishReason: e.FinishReason, Usage: e.Usage, Cached: true, RateLimit: c.rateLimit(), TokensSaved: c.saved, chunks: e.StreamChunks()}, nil
		}
		s.series.cacheLookup(cacheMiss)
	}
	return c, msgs, nil, nil
}

// optimize applies a policy's prompt optimization: whitespace normalization, then trimming the
// oldest turns to maxInputTokens (system messages and the latest message are kept).
func optimize(po config.PromptOptimization, msgs []providers.Message, model string) []providers.Message {
	if po.NormalizeWhitespace {
		msgs, _ = promptopt.NormalizeMessages(msgs)
	}
	if po.MaxInputTokens > 0 {
		msgs = promptopt.TrimHistory(msgs, po.MaxInputTokens, func(m providers.Message) int64 {
			return tokens.CountMessage(model, m)
		}).Messages
	}
	return msgs
}

func guardErr(err error) error {
	var be *BlockedError
	if errors.As(err, &be) {
		return apierror.ContentBlocked(be.Reason)
	}
	var ae *apierror.Error
	if errors.As(err, &ae) {
		return ae
	}
	return apierror.ContentBlocked(err.Error())
}

func (in *ChatInput) request(model string, msgs []providers.Message) *providers.ChatRequest {
	return &providers.ChatRequest{Model: model, Messages: msgs, MaxTokens: in.MaxTokens, Temperature: in.Temperature,
		TopP: in.TopP, Stop: in.Stop, ResponseFormat: in.ResponseFormat, User: in.Identity.User}
}

// withRouteTimeout bounds one attempt on client by the policy's timeout (the adapters bound it
// by the provider's own timeout as well). The HTTP adapters enforce it with the timer they run
// for every call anyway (providers.WithCallTimeout), which spares each attempt a deadline
// context and a timer of its own; any other client gets the deadline context.
func withRouteTimeout(ctx context.Context, r *config.Route, client providers.Provider) (context.Context, context.CancelFunc) {
	if r != nil && r.Timeout > 0 {
		if providers.BoundsCalls(client) {
			return providers.WithCallTimeout(ctx, &r.Timeout), noCancel
		}
		return context.WithTimeout(ctx, r.Timeout)
	}
	return ctx, noCancel
}

func noCancel() {}

// Chat serves a complete (non-streamed) chat reply. The cost is settled before it returns, so
// the reply never leaves the gateway unpaid. A completion that fails output validation is
// retried once with the validation error fed back; both calls are charged.
func (s *Service) Chat(ctx context.Context, rt *runtime.Runtime, in *ChatInput) (*ChatResult, error) {
	c, msgs, hit, err := s.prepareChat(ctx, rt, in)
	if err != nil || hit != nil {
		return hit, err
	}
	var (
		total  providers.Usage
		amount money.Nanos
		resp   *providers.ChatResponse
		target *route.Target
	)
	for attempt := 0; ; attempt++ {
		err = route.Do(ctx, c.plan, func(ctx context.Context, t *route.Target) error {
			client, _, ok := rt.Provider(t.Provider)
			if !ok {
				return fmt.Errorf("%w: provider %s is not configured", route.ErrNoUsableTarget, t.Provider)
			}
			actx, cancel := withRouteTimeout(ctx, c.res.Route, client)
			defer cancel()
			r, err := client.Chat(actx, in.request(t.Model, msgs))
			if err != nil {
				return err
			}
			resp, target = r, t
			return nil
		})
		if err != nil {
			if total.Total() > 0 { // the first attempt was served and billed
				c.settle(ctx, target.Provider, target.Model, total, amount, false, false)
			} else {
				c.release(ctx)
			}
			return nil, upstreamErr(err)
		}
		amount += cost(rt, target.Provider, target.Model, resp.Usage)
		total = addUsage(total, resp.Usage)
		content := resp.Content
		if s.d.Guard != nil {
			content, err = s.d.Guard.Output(s.guardCtx(ctx, rt, c.res.Route), c.res.Route, content, in.ResponseFormat != nil)
			if inv := invalidOutput(err); inv != nil && attempt == 0 {
				msgs = append(slices.Clip(msgs), providers.Message{Role: "assistant", Content: resp.Content},
					providers.Message{Role: "user", Content: inv.RetryPrompt})
				continue
			}
			if err != nil {
				// The provider billed the call: charge it even though the reply is refused.
				c.settle(ctx, target.Provider, target.Model, total, amount, false, false)
				return nil, guardErr(err)
			}
		}
		out := &ChatResult{ID: resp.ID, Content: content, Model: target.Model, Provider: target.Provider,
			FinishReason: resp.FinishReason, Usage: total, Cost: amount, RateLimit: c.rateLimit(), TokensSaved: c.saved}
		if out.ID == "" {
			out.ID = newID("chat")
		}
		if out.FinishReason == "" {
			out.FinishReason = "stop"
		}
		s.cachePut(c, out, nil)
		c.settle(ctx, target.Provider, target.Model, total, amount, false, false)
		return out, nil
	}
}

// invalidOutput returns err's *InvalidOutputError, if any. The variable errors.As fills moves
// to the heap, so it is declared past the nil check: a reply that passes (nearly every one)
// does not pay that allocation.
func invalidOutput(err error) *InvalidOutputError {
	if err == nil {
		return nil
	}
	var inv *InvalidOutputError
	if errors.As(err, &inv) {
		return inv
	}
	return nil
}

func addUsage(a, b providers.Usage) providers.Usage {
	return providers.Usage{PromptTokens: a.PromptTokens + b.PromptTokens, CompletionTokens: a.CompletionTokens + b.CompletionTokens,
		CachedPromptTokens: a.CachedPromptTokens + b.CachedPromptTokens}
}

// cachePut makes r the cache write that c's settle carries, when the route caches.
func (s *Service) cachePut(c *call, r *ChatResult, chunks []string) {
	if c.cache == "" {
		return
	}
	val, ttl, ok := s.d.Cache.Encode(&cache.Entry{Content: r.Content, Model: r.Model, Provider: r.Provider,
		FinishReason: r.FinishReason, Usage: r.Usage, Chunks: chunks, CreatedAt: s.d.Now()}, c.ttl)
	if ok {
		c.put = &store.KVPut{Key: c.cache, Value: val, TTL: ttl}
	}
}

func upstreamErr(err error) error {
	if errors.Is(err, route.ErrNoUsableTarget) {
		return apierror.NoProvider(err.Error())
	}
	return err
}

// ChatStream is an open streamed reply: read deltas with Next until io.EOF (or an error), then
// call Finish exactly once, also when the client went away.
//
// A stream lives as long as the provider takes to answer, so it keeps only what Next,
// the checkpoints and Finish use: not the request (its messages were sent upstream and counted
// at the start) nor the route plan, and the reply's text once, with the chunk boundaries as
// offsets, instead of a copy per use.
type ChatStream struct {
	s      *Service
	c      *call
	ctx    context.Context
	stream providers.Stream
	target *route.Target
	filter StreamFilter
	// rawMu guards raw, which the checkpointer reads while Next appends; it is held only to
	// append or to take the string (never while counting tokens), so a chunk never waits on a
	// checkpoint.
	rawMu sync.Mutex
	raw   strings.Builder // what the provider sent, for token counting
	// out is what the client got when a filter rewrites the text; without one that is raw.
	out strings.Builder
	// ends are the offsets in the client's text where each chunk sent ended, kept only when the
	// reply may be cached (the cache replays it chunk by chunk).
	ends   []int
	hit    *ChatResult
	replay int  // next cached chunk to replay
	ended  bool // io.EOF seen
	err    error
	done   bool
	// cp checkpoints the stream while it runs; nil when checkpoints are off.
	cp *checkpointer
}

// StartChatStream admits the request and opens the upstream stream (with failover until it is
// open). Errors returned here happen before any byte is written, so they are plain JSON errors.
func (s *Service) StartChatStream(ctx context.Context, rt *runtime.Runtime, in *ChatInput) (*ChatStream, error) {
	c, msgs, hit, err := s.prepareChat(ctx, rt, in)
	if err != nil {
		return nil, err
	}
	st := &ChatStream{s: s, c: c, ctx: ctx, hit: hit}
	if hit != nil {
		return st, nil
	}
	err = route.Do(ctx, c.plan, func(ctx context.Context, t *route.Target) error {
		client, _, ok := rt.Provider(t.Provider)
		if !ok {
			return fmt.Errorf("%w: provider %s is not configured", route.ErrNoUsableTarget, t.Provider)
		}
		stream, err := client.ChatStream(ctx, in.request(t.Model, msgs))
		if err != nil {
			return err
		}
		st.stream, st.target = stream, t
		return nil
	})
	if err != nil {
		c.release(ctx)
		return nil, upstreamErr(err)
	}
	if s.d.Guard != nil {
		st.filter = s.d.Guard.Stream(c.res.Route)
	}
	// The plan (and its quota gate) served only to open the stream; what follows needs the
	// target, the admission and the cache key. A cache peek found nothing (else this is a hit).
	c.plan, c.res = nil, nil
	if c.dec != nil {
		c.dec.Cached, c.dec.CacheErr = nil, nil
	}
	if s.d.Metrics != nil {
		s.d.Metrics.StreamsOpen.Inc()
	}
	// Checkpoints and the final settle must name the same provider and model, or the ledger's
	// per-model cells would get the checkpoints under one and the remainder under another.
	c.greq.Provider, c.greq.Model = st.target.Provider, st.target.Model
	if every := s.d.StreamCheckpointInterval; every > 0 && c.dec != nil {
		cp := &checkpointer{st: st, every: every}
		cp.mu.Lock() // a first tick waits until the timer is recorded
		cp.timer = time.AfterFunc(every, cp.due)
		cp.mu.Unlock()
		st.cp = cp
	}
	return st, nil
}

// checkpointer charges a stream's cost so far every interval in which it grew, off the chunk
// path, until Finish stops it. A replica killed mid-stream has then recorded all but the last
// interval: the prompt and the output streamed up to the last checkpoint, counted with the
// tokenizer and priced as the final settle prices them (which later replaces the estimate with
// the provider's usage, charging only the difference). It runs on a timer rather than a goroutine
// of its own: a thousand open streams then hold no extra stacks. The timer only queues the
// checkpoint on the service's [checkpointRunner]: streams opened together come due together, and
// a goroutine per due checkpoint, each grown by the tokenizer and parked on the store, would
// hold as many stacks again for as long as the store takes.
type checkpointer struct {
	st    *ChatStream
	every time.Duration
	timer *time.Timer
	// mu is held while a checkpoint runs, so stop waits for one in flight; after stop nothing
	// checkpoints again.
	mu      sync.Mutex
	stopped bool
	charged int // bytes of raw output the last checkpoint covered
	out     outputTally
}

// due is the timer's callback: it queues the checkpoint and returns at once.
func (cp *checkpointer) due() { cp.st.s.checkpoints.add(cp) }

// tick runs one checkpoint (on a runner goroutine) and arms the timer for the next.
func (cp *checkpointer) tick() {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if cp.stopped {
		return
	}
	st := cp.st
	st.rawMu.Lock()
	text := st.raw.String()
	st.rawMu.Unlock()
	if len(text) != cp.charged {
		cp.charged = len(text)
		st.checkpoint(cp.out.count(st.target.Model, text))
	}
	cp.timer.Reset(cp.every)
}

// maxCheckpointRunners bounds the goroutines running checkpoints at once, for all streams: enough
// to overlap store round trips (a remote Redis) while the tokenizer work stays within a few cores.
const maxCheckpointRunners = 16

// checkpointRunner runs queued checkpoints on at most maxCheckpointRunners goroutines, started
// when work arrives and ended when the queue is empty.
type checkpointRunner struct {
	mu      sync.Mutex
	queue   []*checkpointer
	running int
}

func (r *checkpointRunner) add(cp *checkpointer) {
	r.mu.Lock()
	r.queue = append(r.queue, cp)
	start := r.running < maxCheckpointRunners
	if start {
		r.running++
	}
	r.mu.Unlock()
	if start {
		go r.run()
	}
}

func (r *checkpointRunner) run() {
	for {
		r.mu.Lock()
		if len(r.queue) == 0 {
			r.running--
			r.queue = nil // let a burst's backing array go
			r.mu.Unlock()
			return
		}
		cp := r.queue[0]
		r.queue[0] = nil
		r.queue = r.queue[1:]
		r.mu.Unlock()
		cp.tick()
	}
}

// stop ends the checkpoints, after the one in flight if any.
func (cp *checkpointer) stop() {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	cp.stopped = true
	cp.timer.Stop()
}

// outputTally counts the tokens of a growing text without recounting all of it every time:
// recounting the whole output each second would cost a long stream time quadratic in its
// length (~0.7 ms per 16 KiB on this machine's tokenizer). Text up to safe is counted once (base);
// each call counts only what follows.
type outputTally struct {
	safe int
	base int64
}

// count returns the tokens of text, which extends the text of the previous call.
func (o *outputTally) count(model, text string) int64 {
	if cut := tokenBoundary(text, o.safe); cut > o.safe {
		o.base += tokens.Count(model, text[o.safe:cut])
		o.safe = cut
	}
	return o.base + tokens.Count(model, text[o.safe:])
}

// tokenBoundary returns the last index after from where text can be cut without changing its
// token count, or from when there is none. The BPE encodings first split text into pieces by a
// regular expression and never merge tokens across pieces; no piece spans a single space between
// two visible ASCII characters (pieces hold letters, digits, punctuation or whitespace runs, a
// leading space included), so a new piece always starts at such a space and the counts of the
// two sides add up exactly.
func tokenBoundary(text string, from int) int {
	visible := func(b byte) bool { return b > ' ' && b < 0x7f }
	for i := len(text) - 2; i > from; i-- {
		if text[i] == ' ' && visible(text[i-1]) && visible(text[i+1]) {
			return i
		}
	}
	return from
}

// checkpoint charges the prompt plus completion output tokens streamed so far.
func (st *ChatStream) checkpoint(completion int64) {
	u := providers.Usage{PromptTokens: st.c.prompt, CompletionTokens: completion}
	ch := governor.Charge{Cost: cost(st.c.rt, st.target.Provider, st.target.Model, u), Estimated: true}
	ch.Usage.PromptTokens, ch.Usage.CompletionTokens = u.PromptTokens, u.CompletionTokens
	// Detached and bounded by the governor, as settle is.
	ctx := context.WithoutCancel(st.ctx)
	if err := st.s.d.Governor.Checkpoint(ctx, st.c.greq, st.c.dec.Ticket, ch); err != nil {
		// The final settle still charges everything the store has not recorded.
		st.s.d.Log.Warn("failed to checkpoint a stream", "provider", st.target.Provider, "model", st.target.Model, "error", err)
	}
}

// TokensSaved is how many prompt tokens prompt optimization removed (X-AI-Tokens-Saved).
func (st *ChatStream) TokensSaved() int64 { return st.c.saved }

// Provider is the provider serving the stream.
func (st *ChatStream) Provider() string {
	if st.hit != nil {
		return st.hit.Provider
	}
	return st.target.Provider
}

// Model is the upstream model serving the stream.
func (st *ChatStream) Model() string {
	if st.hit != nil {
		return st.hit.Model
	}
	return st.target.Model
}

// Cached reports whether the stream replays a cached reply.
func (st *ChatStream) Cached() bool { return st.hit != nil }

// RateLimit is the tightest limit that applied, for the headers.
func (st *ChatStream) RateLimit() governor.RateLimitState { return st.c.rateLimit() }

// BeforeRead has f called before each read from the upstream, on Next's goroutine, and reports
// whether it will be; it will not for a cached replay (which never waits) or a provider whose
// stream offers no such hook.
func (st *ChatStream) BeforeRead(f func()) bool {
	if st.hit != nil {
		return false
	}
	br, ok := st.stream.(providers.BeforeReader)
	if ok {
		br.BeforeRead(f)
	}
	return ok
}

// Next returns the next text to send, io.EOF after the last one.
func (st *ChatStream) Next() (string, error) {
	if st.hit != nil {
		if st.replay >= len(st.hit.chunks) {
			return "", io.EOF
		}
		d := st.hit.chunks[st.replay]
		st.replay++
		return d, nil
	}
	if st.ended {
		return "", io.EOF
	}
	if st.err != nil {
		return "", st.err
	}
	for {
		d, err := st.stream.Recv()
		if errors.Is(err, io.EOF) {
			st.ended = true
			if st.filter != nil {
				if rest := st.filter.Flush(); rest != "" {
					st.out.WriteString(rest)
					st.sent()
					return rest, nil
				}
			}
			return "", io.EOF
		}
		if err != nil {
			st.err = err
			return "", err
		}
		st.rawMu.Lock()
		st.raw.WriteString(d)
		st.rawMu.Unlock()
		if st.filter != nil {
			if d = st.filter.Push(d); d != "" {
				st.out.WriteString(d)
			}
		}
		if d != "" {
			st.sent()
			return d, nil
		}
	}
}

// sent records the end of a chunk just added to the client's text, when the reply may be
// cached. Only Next's goroutine writes raw, so it reads its length without the lock.
func (st *ChatStream) sent() {
	if st.c.cache == "" {
		return
	}
	n := st.raw.Len()
	if st.filter != nil {
		n = st.out.Len()
	}
	st.ends = append(st.ends, n)
}

// text is what the client got, once Next is done.
func (st *ChatStream) text() string {
	if st.filter != nil {
		return st.out.String()
	}
	return st.raw.String()
}

// chunks cuts text at the recorded chunk ends: the chunks as they were sent, sharing text's
// bytes.
func (st *ChatStream) chunks(text string) []string {
	if len(st.ends) == 0 {
		return nil
	}
	out := make([]string, len(st.ends))
	from := 0
	for i, end := range st.ends {
		out[i], from = text[from:end], end
	}
	return out
}

// Finish stops the checkpointer, closes the upstream stream and settles: from the provider's
// usage, or from the tokenizer over what was streamed when the provider reported none (a cut
// stream); the governor charges only what the checkpoints have not. It runs on a context detached
// from the client, so a disconnect still charges.
func (st *ChatStream) Finish() *ChatResult {
	if st.done {
		return nil
	}
	st.done = true
	if st.hit != nil {
		return st.hit
	}
	_ = st.stream.Close()
	if st.cp != nil {
		// Wait for a checkpoint in flight: the settle below must come after it (the governor
		// serializes them as well), and nothing may checkpoint once the stream is settled.
		st.cp.stop()
	}
	if st.s.d.Metrics != nil {
		st.s.d.Metrics.StreamsOpen.Dec()
	}
	u, reported := st.stream.Usage()
	estimated := false
	if !reported || (u.PromptTokens == 0 && u.CompletionTokens == 0) {
		estimated = true
		u = providers.Usage{PromptTokens: st.c.prompt, CompletionTokens: tokens.Count(st.target.Model, st.raw.String())}
	}
	rt := st.c.rt
	amount := cost(rt, st.target.Provider, st.target.Model, u)
	text := st.text()
	res := &ChatResult{ID: newID("chat"), Content: text, Model: st.target.Model, Provider: st.target.Provider,
		FinishReason: "stop", Usage: u, Cost: amount, RateLimit: st.c.rateLimit()}
	if st.ended {
		st.s.cachePut(st.c, res, st.chunks(text))
	} else {
		res.FinishReason = "error"
	}
	st.c.settle(st.ctx, st.target.Provider, st.target.Model, u, amount, false, estimated)
	return res
}

// EmbedInput is a normalized embeddings request.
type EmbedInput struct {
	Model    string
	Input    []string
	Identity governor.Identity
}

// EmbedResult is a served embeddings reply.
type EmbedResult struct {
	Embeddings [][]float32
	Model      string
	Provider   string
	Usage      providers.Usage
	Cost       money.Nanos
	RateLimit  governor.RateLimitState
}

// Embed serves embeddings (settled before it returns).
func (s *Service) Embed(ctx context.Context, rt *runtime.Runtime, in *EmbedInput) (*EmbedResult, error) {
	if len(in.Input) == 0 {
		return nil, apierror.BadRequest("input must not be empty")
	}
	c, err := s.resolve(rt, route.EndpointEmbed, in.Model, in.Identity)
	if err != nil {
		return nil, err
	}
	for _, t := range in.Input {
		c.prompt += tokens.Count(c.plan.Targets[0].Model, t)
	}
	if err := s.reserve(ctx, c, route.EndpointEmbed, in.Identity, 0); err != nil {
		return nil, err
	}
	input := in.Input
	if s.d.Guard != nil {
		msgs := make([]providers.Message, len(input))
		for i, t := range input {
			msgs[i] = providers.Message{Role: "user", Content: t}
		}
		msgs, err = s.d.Guard.Input(s.guardCtx(ctx, rt, c.res.Route), c.res.Route, msgs)
		if err != nil {
			c.release(ctx)
			return nil, guardErr(err)
		}
		input = make([]string, len(msgs))
		for i, m := range msgs {
			input[i] = m.Content
		}
	}
	var (
		resp   *providers.EmbedResponse
		target *route.Target
	)
	err = route.Do(ctx, c.plan, func(ctx context.Context, t *route.Target) error {
		client, _, ok := rt.Provider(t.Provider)
		if !ok {
			return fmt.Errorf("%w: provider %s is not configured", route.ErrNoUsableTarget, t.Provider)
		}
		actx, cancel := withRouteTimeout(ctx, c.res.Route, client)
		defer cancel()
		r, err := client.Embed(actx, &providers.EmbedRequest{Model: t.Model, Input: input, User: in.Identity.User})
		if err != nil {
			return err
		}
		resp, target = r, t
		return nil
	})
	if err != nil {
		c.release(ctx)
		return nil, upstreamErr(err)
	}
	u := resp.Usage
	estimated := false
	if u.PromptTokens == 0 {
		u.PromptTokens, estimated = c.prompt, true
	}
	amount := cost(rt, target.Provider, target.Model, u)
	c.settle(ctx, target.Provider, target.Model, u, amount, false, estimated)
	return &EmbedResult{Embeddings: resp.Embeddings, Model: target.Model, Provider: target.Provider, Usage: u,
		Cost: amount, RateLimit: c.rateLimit()}, nil
}

// Moderate scores input with the guardrail engine; no provider is called and nothing is charged.
func (s *Service) Moderate(ctx context.Context, input string) (*Moderation, error) {
	if s.d.Guard == nil {
		return &Moderation{Categories: map[string]bool{}, Scores: map[string]float64{}}, nil
	}
	return s.d.Guard.Moderate(ctx, input)
}

// Usage answers /api/ai/usage.
func (s *Service) Usage(ctx context.Context, rt *runtime.Runtime, q governor.Query) (*governor.UsageReport, error) {
	return s.d.Governor.Usage(ctx, rt.Snapshot, q)
}

// Costs answers /api/ai/costs.
func (s *Service) Costs(ctx context.Context, q governor.Query) (*governor.CostReport, error) {
	return s.d.Governor.Costs(ctx, q)
}

// Now is the service clock.
func (s *Service) Now() time.Time { return s.d.Now() }

func newID(prefix string) string {
	var b [12]byte
	_, _ = randRead(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

var randRead = cryptorand.Read

func badRequest(msg string) error { return apierror.BadRequest("%s", msg) }
