package governor

import (
	"context"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/money"
	"github.com/nself-org/ai-orchestration/dataplane/store"
)

// BudgetReport is one budget's state across its subjects, for AIBudget status.
type BudgetReport struct {
	// Name is the budget's "namespace/name".
	Name string
	// Statuses has one entry per subject and period: an org or apiKey budget's named subject
	// always; otherwise every subject with usage in the current period (a user budget per org
	// the user spent in, reported as "org/user", since user budgets count per org).
	Statuses []BudgetStatus
	// OverBudget lists subjects whose spend reached a period's limit, sorted.
	OverBudget []string
}

// BudgetReporter is implemented by the Governor that [New] returns; the controller uses it to
// write AIBudget status from the shared store:
//
//	if r, ok := g.(governor.BudgetReporter); ok { reports, err := r.BudgetReports(ctx, snap) }
type BudgetReporter interface {
	// BudgetReports reports every budget of snap, in snapshot order, reading the global ledger
	// once (since the earliest current period start) and the budget keys in one pipeline.
	BudgetReports(ctx context.Context, snap *config.Snapshot) ([]BudgetReport, error)
}

var _ BudgetReporter = (*gov)(nil)

type subjectKey struct {
	display string // as reported
	subject string // as in the key
	tag     string
	cell    store.LedgerKey // the global-ledger cell of its spend (run rate)
}

// BudgetReports implements [BudgetReporter].
func (g *gov) BudgetReports(ctx context.Context, snap *config.Snapshot) ([]BudgetReport, error) {
	now := g.opts.Clock.Now()
	earliest := now.Add(-rateHours * time.Hour)
	for i := range snap.Budgets {
		b := &snap.Budgets[i]
		for _, l := range b.Limits {
			start, _, _ := PeriodBounds(now, location(b.TimeZone), l.Period)
			earliest = minTime(earliest, start)
		}
	}
	hours, err := g.ledger(ctx, store.GlobalTag, earliest, now.Add(time.Hour))
	if err != nil {
		return nil, err
	}
	// seen[dim][key] = the latest hour with usage.
	seen := map[string]map[string]time.Time{}
	for _, h := range hours {
		for k := range h.Cells {
			m := seen[k.Dim]
			if m == nil {
				m = map[string]time.Time{}
				seen[k.Dim] = m
			}
			if h.Hour.After(m[k.Key]) {
				m[k.Key] = h.Hour
			}
		}
	}
	active := func(dim string, since time.Time, match func(key string) bool) []string {
		var out []string
		for k, last := range seen[dim] {
			if !last.Add(time.Hour).After(since) || !match(k) {
				continue
			}
			out = append(out, k)
		}
		sort.Strings(out)
		return out
	}

	type item struct {
		report  int
		subject subjectKey
		limit   config.BudgetLimit
		resets  time.Time
	}
	reports := make([]BudgetReport, len(snap.Budgets))
	var items []item
	var keys []string
	for i := range snap.Budgets {
		b := &snap.Budgets[i]
		reports[i].Name = b.Name
		for _, l := range b.Limits {
			start, end, label := PeriodBounds(now, location(b.TimeZone), l.Period)
			for _, sk := range budgetSubjects(b, start, active) {
				items = append(items, item{report: i, subject: sk, limit: l, resets: end})
				keys = append(keys, g.budgetKey(sk.tag, b.Name, sk.subject, l.Period, label))
			}
		}
	}
	var states []store.BudgetState
	if len(keys) > 0 {
		rctx, cancel := context.WithTimeout(ctx, readTimeout)
		states, err = g.st.Budgets(rctx, keys)
		cancel()
		if err != nil {
			g.m.StoreErrors.WithLabelValues("read").Inc()
			return nil, fmt.Errorf("failed to read budgets: %w", err)
		}
	}
	over := make([]map[string]bool, len(reports))
	for j, it := range items {
		b := &snap.Budgets[it.report]
		st := budgetStatus(b.Name, it.subject.display, it.limit, it.resets, states[j], runRate(hours, it.subject.cell, now), now)
		reports[it.report].Statuses = append(reports[it.report].Statuses, st)
		if st.Spent >= st.Limit {
			if over[it.report] == nil {
				over[it.report] = map[string]bool{}
			}
			over[it.report][it.subject.display] = true
		}
	}
	for i, o := range over {
		for s := range o {
			reports[i].OverBudget = append(reports[i].OverBudget, s)
		}
		sort.Strings(reports[i].OverBudget)
	}
	return reports, nil
}

// budgetSubjects lists the subjects a budget has in the period starting at start.
func budgetSubjects(b *config.Budget, start time.Time, active func(string, time.Time, func(string) bool) []string) []subjectKey {
	all := func(string) bool { return true }
	var out []subjectKey
	switch b.Scope {
	case config.ScopeUser:
		match := all
		// A user's budget counts the user across every org (see budgetSubject), so its subjects
		// are the users of the global ledger, not user-in-org pairs.
		if b.Subject != config.AnySubject {
			match = func(k string) bool { return k == b.Subject }
		}
		for _, user := range active(store.DimUser, start, match) {
			out = append(out, subjectKey{display: user, subject: user, tag: userTag(user),
				cell: store.LedgerKey{Dim: store.DimUser, Key: user}})
		}
	case config.ScopeOrg:
		subjects := []string{b.Subject}
		if b.Subject == config.AnySubject {
			subjects = active(store.DimOrg, start, all)
		}
		for _, o := range subjects {
			out = append(out, subjectKey{display: o, subject: o, tag: o, cell: store.LedgerKey{Dim: store.DimOrg, Key: o}})
		}
	case config.ScopeAPIKey:
		subjects := []string{b.Subject}
		if b.Subject == config.AnySubject {
			subjects = active(store.DimAPIKey, start, all)
		}
		for _, k := range subjects {
			out = append(out, subjectKey{display: k, subject: k, tag: store.GlobalTag, cell: store.LedgerKey{Dim: store.DimAPIKey, Key: k}})
		}
	default:
		out = append(out, subjectKey{display: "*", subject: "*", tag: store.GlobalTag, cell: store.LedgerKey{Dim: store.DimTotal}})
	}
	return out
}

// budgetStatus computes one period's status with the run-rate forecast (see report.go).
func budgetStatus(name, subject string, l config.BudgetLimit, resetsAt time.Time, st store.BudgetState, rate float64, now time.Time) BudgetStatus {
	bs := BudgetStatus{
		Name: name, Subject: subject, Period: l.Period, Limit: l.Limit,
		Spent: money.Nanos(st.Spent), Reserved: money.Nanos(st.Reserved),
		Remaining: max(0, l.Limit-money.Nanos(st.Spent+st.Reserved)), ResetsAt: resetsAt,
	}
	bs.Forecast = bs.Spent + money.Nanos(math.Round(rate*resetsAt.Sub(now).Hours()))
	switch {
	case bs.Remaining <= 0:
		bs.RunsOutAt = now
	case rate > 0:
		at := now.Add(time.Duration(float64(bs.Remaining) / rate * float64(time.Hour)))
		if at.Before(resetsAt) {
			bs.RunsOutAt = at
		}
	}
	return bs
}
