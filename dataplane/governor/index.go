package governor

import (
	"sync/atomic"
	"time"

	"github.com/nself-org/ai-orchestration/dataplane/config"
)

type scopeSubject struct{ scope, subject string }

// budgetIndex finds the budgets that apply to an identity without scanning every budget of the
// snapshot (10 000 budgets are a supported size). It is rebuilt once per snapshot.
type budgetIndex struct {
	snap   *config.Snapshot
	exact  map[scopeSubject][]*indexedBudget
	any    map[string][]*indexedBudget
	global []*indexedBudget
}

// indexedBudget is a budget with what admitting a request under it needs and does not depend on
// the request: its zone, and per limit the current period (see [budgetPeriod]).
type indexedBudget struct {
	b   *config.Budget
	loc *time.Location
	// fixed says the budget's subject, and thereby its keys, are the same for every request it
	// applies to (an exact subject, or a global budget): its periods then carry their keys.
	fixed   bool
	periods []atomic.Pointer[budgetPeriod] // parallel to b.Limits
}

// budgetPeriod is a budget limit's period on one local date, with its store key when the budget
// is fixed. Admit reuses it until the date changes: bounds, label and key were otherwise
// computed for every request.
type budgetPeriod struct {
	day   int64
	end   time.Time
	label string
	key   string
}

func (g *gov) index(snap *config.Snapshot) *budgetIndex {
	if ix := g.indexes.Load(); ix != nil && ix.snap == snap {
		return ix
	}
	ix := &budgetIndex{snap: snap, exact: map[scopeSubject][]*indexedBudget{}, any: map[string][]*indexedBudget{}}
	all := make([]indexedBudget, len(snap.Budgets))
	n := 0
	for i := range snap.Budgets {
		n += len(snap.Budgets[i].Limits)
	}
	periods := make([]atomic.Pointer[budgetPeriod], n)
	for i := range snap.Budgets {
		b := &snap.Budgets[i]
		ib := &all[i]
		*ib = indexedBudget{b: b, loc: location(b.TimeZone), periods: periods[:len(b.Limits):len(b.Limits)]}
		periods = periods[len(b.Limits):]
		switch {
		case b.Scope == config.ScopeGlobal:
			ib.fixed = true
			ix.global = append(ix.global, ib)
		case b.Subject == config.AnySubject:
			ix.any[b.Scope] = append(ix.any[b.Scope], ib)
		default:
			ib.fixed = true
			k := scopeSubject{b.Scope, b.Subject}
			ix.exact[k] = append(ix.exact[k], ib)
		}
	}
	g.indexes.Store(ix)
	return ix
}

// periodOf returns ib's i-th limit's period containing now; for a fixed budget, subject and tag
// (tagPfx + tag) must be the budget's own, as the key is kept with the period.
func (g *gov) periodOf(ib *indexedBudget, i int, now time.Time, subject, tagPfx, tag string) *budgetPeriod {
	y, m, d := now.In(ib.loc).Date()
	day := int64(y)<<9 | int64(m)<<5 | int64(d)
	if p := ib.periods[i].Load(); p != nil && p.day == day {
		return p
	}
	l := &ib.b.Limits[i]
	_, end, label := PeriodBounds(now, ib.loc, l.Period)
	p := &budgetPeriod{day: day, end: end, label: label}
	if ib.fixed {
		p.key = g.budgetKeyParts(tagPfx, tag, ib.b.Name, subject, l.Period, label)
	}
	ib.periods[i].Store(p)
	return p
}

// applicable appends to out every budget that applies to id: its user's, its org's, its API
// key's (each exact or "*") and the global ones. Every one of them must admit a request. Admit
// passes a buffer on its stack, so that the common few budgets cost no allocation.
func (ix *budgetIndex) applicable(id Identity, out []*indexedBudget) []*indexedBudget {
	out = ix.add(out, config.ScopeUser, id.User)
	out = ix.add(out, config.ScopeOrg, id.Org)
	out = ix.add(out, config.ScopeAPIKey, id.APIKey)
	return append(out, ix.global...)
}

func (ix *budgetIndex) add(out []*indexedBudget, scope, subject string) []*indexedBudget {
	if subject == "" {
		return out
	}
	out = append(out, ix.exact[scopeSubject{scope, subject}]...)
	return append(out, ix.any[scope]...)
}
