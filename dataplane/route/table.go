// Package route decides where a request goes: which AIRoutePolicy serves it ([Table.Resolve]),
// in which order its targets are tried ([Planner.Plan]), and how attempts, retries, backoff and
// circuit breakers play out ([Do]).
//
// A [Table] is compiled once per snapshot and is immutable, so every request of one snapshot
// shares it without locks. [Health] (latency EWMA and circuit breakers) is keyed by
// "provider/model" and outlives snapshots: a hot reload must not forget that an upstream is down.
package route

import (
	"errors"
	"fmt"
	"math/bits"

	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/money"
)

// Endpoints a request can come from; they are the values of AIRoutePolicy match.endpoints.
const (
	EndpointChat      = "chat"
	EndpointEmbed     = "embed"
	EndpointSummarize = "summarize"
	EndpointModerate  = "moderate"
)

// DefaultModel is the alias a request without a model is matched as.
const DefaultModel = "default"

var (
	// ErrModelNotFound means no route matches and no provider lists the model (HTTP 404
	// model_not_found).
	ErrModelNotFound = errors.New("model not found")
	// ErrNoUsableTarget means the route has no target that can be called: its providers are
	// missing from the snapshot, or every target's circuit breaker is open (HTTP 503).
	ErrNoUsableTarget = errors.New("no usable provider")
)

// Request is what matching looks at. Model is the name the caller sent ("" means
// [DefaultModel]); Endpoint is one of the Endpoint* constants.
type Request struct {
	Model    string
	Endpoint string
	Org      string
	User     string
}

// Target is one callable provider/model of a resolved route, with what the planner needs to
// order it. Targets are shared by every request of a snapshot and must not be modified.
type Target struct {
	// Provider is the "namespace/name" of the AIProvider.
	Provider string
	// ProviderType is the provider's spec.type ("openai", "mock", …).
	ProviderType string
	// Model is the upstream model name.
	Model    string
	Weight   int32
	Priority int32
	// Key is "provider/model", the identity of the target in [Health].
	Key string
	// Priced is false when the provider does not list the model; its prices are then zero and
	// lowest-cost orders it after every priced target.
	Priced           bool
	InputPerMillion  money.Nanos
	OutputPerMillion money.Nanos
	ContextWindow    int64
	MaxOutputTokens  int64
}

// Resolved is the outcome of matching: the route and its callable targets in policy order.
// It is shared by every request that resolves to the same route and must not be modified.
type Resolved struct {
	// Route is the matched policy, or a synthesized single-target policy when Implicit.
	Route *config.Route
	// Targets are the route's targets whose provider exists in the snapshot, in policy order.
	Targets []Target
	// Implicit is true when no policy matched and the route was synthesized from the one
	// provider that lists the model; such a route has no cache, limits or guardrails.
	Implicit bool

	err error
}

// Table is a snapshot compiled for matching. Build it once per snapshot with [NewTable].
type Table struct {
	routes    []*Resolved
	models    dimension
	endpoints dimension
	orgs      dimension
	users     dimension
	// implicit serves models that no policy matches, keyed by model name.
	implicit map[string]*Resolved
}

// bitset has one bit per route, in snapshot order; the lowest set bit is the first route.
type bitset []uint64

// dimension indexes one match list (models, endpoints, orgs or users): for each value named by
// any route, the routes that accept it (those listing it plus those with an empty list); any
// holds the routes with an empty list, which accept values no route names.
type dimension struct {
	byValue map[string]bitset
	any     bitset
}

func (d *dimension) lookup(v string) bitset {
	if b, ok := d.byValue[v]; ok {
		return b
	}
	return d.any
}

func newDimension(n int, lists [][]string) dimension {
	words := (n + 63) / 64
	d := dimension{byValue: map[string]bitset{}, any: make(bitset, words)}
	for i, l := range lists {
		if len(l) == 0 {
			d.any[i/64] |= 1 << (i % 64)
		}
	}
	for i, l := range lists {
		for _, v := range l {
			b, ok := d.byValue[v]
			if !ok {
				b = append(make(bitset, 0, words), d.any...)
				d.byValue[v] = b
			}
			b[i/64] |= 1 << (i % 64)
		}
	}
	return d
}

// NewTable compiles a snapshot into a matching index. Per request, [Table.Resolve] then costs
// four map lookups and an AND over one bit per route (16 words for 1 000 routes) instead of a
// scan of every policy. A nil snapshot yields a table that matches nothing.
func NewTable(snap *config.Snapshot) *Table {
	if snap == nil {
		snap = &config.Snapshot{}
	}
	providers := make(map[string]*config.Provider, len(snap.Providers))
	for i := range snap.Providers {
		providers[snap.Providers[i].Name] = &snap.Providers[i]
	}

	n := len(snap.Routes)
	t := &Table{routes: make([]*Resolved, n), implicit: map[string]*Resolved{}}
	var models, endpoints, orgs, users [][]string
	for i := range snap.Routes {
		r := &snap.Routes[i]
		t.routes[i] = compileRoute(r, providers)
		models = append(models, r.Match.Models)
		endpoints = append(endpoints, r.Match.Endpoints)
		orgs = append(orgs, r.Match.Orgs)
		users = append(users, r.Match.Users)
	}
	t.models = newDimension(n, models)
	t.endpoints = newDimension(n, endpoints)
	t.orgs = newDimension(n, orgs)
	t.users = newDimension(n, users)

	// Implicit routes: snapshot providers are sorted by Name, so when several providers list a
	// model the first by name wins. Only that one serves it — sending a prompt to a second
	// provider is a routing decision an operator must make with a policy.
	for i := range snap.Providers {
		p := &snap.Providers[i]
		for j := range p.Models {
			m := &p.Models[j]
			if _, taken := t.implicit[m.Name]; taken {
				continue
			}
			route := &config.Route{
				Name:     "",
				Targets:  []config.Target{{Provider: p.Name, Model: m.Name, Weight: 1}},
				Strategy: config.StrategyFailover,
			}
			t.implicit[m.Name] = &Resolved{
				Route:    route,
				Targets:  []Target{newTarget(route.Targets[0], p, m)},
				Implicit: true,
			}
		}
	}
	return t
}

func compileRoute(r *config.Route, providers map[string]*config.Provider) *Resolved {
	res := &Resolved{Route: r}
	for _, ct := range r.Targets {
		p, ok := providers[ct.Provider]
		if !ok {
			continue
		}
		var model *config.Model
		for j := range p.Models {
			if p.Models[j].Name == ct.Model {
				model = &p.Models[j]
				break
			}
		}
		res.Targets = append(res.Targets, newTarget(ct, p, model))
	}
	if len(res.Targets) == 0 {
		res.err = fmt.Errorf("%w: route %s has no target whose provider is configured", ErrNoUsableTarget, r.Name)
	}
	return res
}

func newTarget(ct config.Target, p *config.Provider, m *config.Model) Target {
	t := Target{
		Provider:     ct.Provider,
		ProviderType: p.Type,
		Model:        ct.Model,
		Weight:       ct.Weight,
		Priority:     ct.Priority,
		Key:          ct.Provider + "/" + ct.Model,
	}
	if m != nil {
		t.Priced = true
		t.InputPerMillion = m.InputPerMillion
		t.OutputPerMillion = m.OutputPerMillion
		t.ContextWindow = m.ContextWindow
		t.MaxOutputTokens = m.MaxOutputTokens
	}
	return t
}

// Resolve finds the route serving req: the first policy in snapshot order whose match accepts
// it (an empty match list accepts anything; a request without a model is matched as
// [DefaultModel]); failing that, an implicit route to the one provider listing the model (the
// first by provider name when several do). Errors wrap [ErrModelNotFound] or, for a matched
// policy with no configured provider, [ErrNoUsableTarget]. The result is shared; do not modify it.
func (t *Table) Resolve(req Request) (*Resolved, error) {
	model := req.Model
	if model == "" {
		model = DefaultModel
	}
	a := t.models.lookup(model)
	b := t.endpoints.lookup(req.Endpoint)
	c := t.orgs.lookup(req.Org)
	d := t.users.lookup(req.User)
	for i := range a {
		if w := a[i] & b[i] & c[i] & d[i]; w != 0 {
			r := t.routes[i*64+bits.TrailingZeros64(w)]
			if r.err != nil {
				return nil, r.err
			}
			return r, nil
		}
	}
	if r, ok := t.implicit[model]; ok {
		return r, nil
	}
	return nil, fmt.Errorf("%w: no route or provider serves model %q", ErrModelNotFound, model)
}

// Len is the number of policies in the table, for metrics.
func (t *Table) Len() int { return len(t.routes) }
