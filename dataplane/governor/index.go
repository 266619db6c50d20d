package governor

import (
	"github.com/nself-org/ai-orchestration/dataplane/config"
)

type scopeSubject struct{ scope, subject string }

// budgetIndex finds the budgets that apply to an identity without scanning every budget of the
// snapshot (10 000 budgets are a supported size). It is rebuilt once per snapshot.
type budgetIndex struct {
	snap   *config.Snapshot
	exact  map[scopeSubject][]*config.Budget
	any    map[string][]*config.Budget
	global []*config.Budget
}

func (g *gov) index(snap *config.Snapshot) *budgetIndex {
	if ix := g.indexes.Load(); ix != nil && ix.snap == snap {
		return ix
	}
	ix := &budgetIndex{snap: snap, exact: map[scopeSubject][]*config.Budget{}, any: map[string][]*config.Budget{}}
	for i := range snap.Budgets {
		b := &snap.Budgets[i]
		switch {
		case b.Scope == config.ScopeGlobal:
			ix.global = append(ix.global, b)
		case b.Subject == config.AnySubject:
			ix.any[b.Scope] = append(ix.any[b.Scope], b)
		default:
			k := scopeSubject{b.Scope, b.Subject}
			ix.exact[k] = append(ix.exact[k], b)
		}
	}
	g.indexes.Store(ix)
	return ix
}

// applicable lists every budget that applies to id: its user's, its org's, its API key's (each
// exact or "*") and the global ones. Every one of them must admit a request.
func (ix *budgetIndex) applicable(id Identity) []*config.Budget {
	out := make([]*config.Budget, 0, 4) // a user's, an org's, an API key's and a global one fit
	add := func(scope, subject string) {
		if subject == "" {
			return
		}
		out = append(out, ix.exact[scopeSubject{scope, subject}]...)
		out = append(out, ix.any[scope]...)
	}
	add(config.ScopeUser, id.User)
	add(config.ScopeOrg, id.Org)
	add(config.ScopeAPIKey, id.APIKey)
	return append(out, ix.global...)
}
