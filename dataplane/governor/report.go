package governor

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/money"
	"github.com/nself-org/ai-orchestration/dataplane/store"
)

// ErrInvalidQuery is returned by Usage and Costs for a window or grouping they cannot answer.
var ErrInvalidQuery = errors.New("invalid usage query")

// Forecasting method (Usage's Forecast/RunsOutAt and Costs' Projected): a run rate over the
// trailing 24 hours of the ledger, each hour weighted by 0.5^(age/6h) so that the last few hours
// dominate (a half-life of six hours), the current hour counted for the fraction that has elapsed
// (at least a minute):
//
//	rate = Σ wᵢ·costᵢ / Σ wᵢ·exposureᵢ   (nano-USD per hour)
//
// The projection is spend so far plus rate × time left in the period; a budget runs out at
// now + (limit − spent − reserved) / rate, or never (zero) when that falls after the period's end.
// Hours before the first request count as idle, so a brand-new subject's rate starts low.
const (
	rateHours    = 24
	rateHalfLife = 6.0
)

const readTimeout = 2 * time.Second

func queryWindow(q Query, now time.Time, def time.Duration) (time.Time, time.Time, error) {
	to := q.To
	if to.IsZero() {
		to = store.HourOf(now).Add(time.Hour) // the current hour, including what happened this instant
	}
	from := q.From
	if from.IsZero() {
		from = to.Add(-def)
	}
	if !from.Before(to) {
		return from, to, fmt.Errorf("%w: from %s is not before to %s", ErrInvalidQuery, from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	return from, to, nil
}

func inWindow(h store.LedgerHour, from, to time.Time) bool {
	return h.Hour.Add(time.Hour).After(from) && h.Hour.Before(to)
}

// runRate is the weighted trailing run rate of one ledger cell, in nano-USD per hour.
func runRate(hours []store.LedgerHour, k store.LedgerKey, now time.Time) float64 {
	cur := store.HourOf(now)
	var num, den float64
	for i := 0; i < rateHours; i++ {
		exposure := 1.0
		if i == 0 {
			// At least a minute, so that spend in the first instant of an hour counts at once
			// without dividing by (nearly) zero.
			exposure = max(now.Sub(cur).Hours(), 1.0/60)
		}
		den += math.Pow(0.5, float64(i)/rateHalfLife) * exposure
	}
	for _, h := range hours {
		i := int(cur.Sub(h.Hour) / time.Hour)
		if i < 0 || i >= rateHours {
			continue
		}
		num += math.Pow(0.5, float64(i)/rateHalfLife) * float64(h.Cells[k].Cost)
	}
	if den == 0 {
		return 0
	}
	return num / den
}

func (g *gov) ledger(ctx context.Context, tag string, from, to time.Time) ([]store.LedgerHour, error) {
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	h, err := g.st.Ledger(ctx, tag, from, to)
	if err != nil {
		g.m.StoreErrors.WithLabelValues("read").Inc()
		return nil, fmt.Errorf("failed to read usage ledger: %w", err)
	}
	return h, nil
}

// filterCell is the ledger tag and cell of a query's subject: a user, an API key, an org or all.
func filterCell(q Query) (tag string, k store.LedgerKey) {
	tag = store.GlobalTag
	if q.Org != "" {
		tag = store.OrgTag(q.Org)
	}
	switch {
	case q.User != "":
		return tag, store.LedgerKey{Dim: store.DimUser, Key: q.User}
	case q.APIKey != "":
		return tag, store.LedgerKey{Dim: store.DimAPIKey, Key: q.APIKey}
	}
	return tag, store.LedgerKey{Dim: store.DimTotal}
}

// Usage implements [Governor]. The window defaults to the last 24 hours (hour granularity: the
// current hour is included whole, the oldest partly covered hour too). Budgets of scope org are
// reported only when q.Org is set; a user's budgets count the user across every org, so q.Org
// does not change them.
func (g *gov) Usage(ctx context.Context, snap *config.Snapshot, q Query) (*UsageReport, error) {
	now := g.opts.Clock.Now()
	from, to, err := queryWindow(q, now, 24*time.Hour)
	if err != nil {
		return nil, err
	}
	tag, cell := filterCell(q)
	hours, err := g.ledger(ctx, tag, from, to)
	if err != nil {
		return nil, err
	}
	rep := &UsageReport{}
	for _, h := range hours {
		t := h.Cells[cell]
		rep.Requests += t.Requests
		rep.Tokens += t.Tokens
		rep.Cost += money.Nanos(t.Cost)
	}
	if snap == nil {
		return rep, nil
	}

	id := Identity{User: q.User, Org: q.Org, APIKey: q.APIKey}
	type entry struct {
		b        *config.Budget
		subject  string
		tag      string // of the ledger its run rate is read from
		l        config.BudgetLimit
		resetsAt time.Time
	}
	var entries []entry
	var keys []string
	for _, ib := range g.index(snap).applicable(id, nil) {
		b := ib.b
		if b.Scope == config.ScopeOrg && q.Org == "" {
			continue
		}
		subject, btag := budgetSubject(b, id)
		// The run rate comes from the ledger: an org's budget from the org's ledger, the others
		// (a user's spans every org the user acts in) from the global one.
		ltag := store.GlobalTag
		if b.Scope == config.ScopeOrg {
			ltag = store.OrgTag(q.Org)
		}
		for _, l := range b.Limits {
			_, end, label := PeriodBounds(now, location(b.TimeZone), l.Period)
			entries = append(entries, entry{b: b, subject: subject, tag: ltag, l: l, resetsAt: end})
			keys = append(keys, g.budgetKey(btag, b.Name, subject, l.Period, label))
		}
	}
	if len(entries) == 0 {
		return rep, nil
	}
	rctx, cancel := context.WithTimeout(ctx, readTimeout)
	states, err := g.st.Budgets(rctx, keys)
	cancel()
	if err != nil {
		g.m.StoreErrors.WithLabelValues("read").Inc()
		return nil, fmt.Errorf("failed to read budgets: %w", err)
	}
	recent := map[string][]store.LedgerHour{}
	for _, e := range entries {
		if _, ok := recent[e.tag]; !ok {
			if recent[e.tag], err = g.ledger(ctx, e.tag, now.Add(-rateHours*time.Hour), now.Add(time.Hour)); err != nil {
				return nil, err
			}
		}
	}
	for i, e := range entries {
		st := states[i]
		var cell store.LedgerKey
		switch e.b.Scope {
		case config.ScopeUser:
			cell = store.LedgerKey{Dim: store.DimUser, Key: e.subject}
		case config.ScopeAPIKey:
			cell = store.LedgerKey{Dim: store.DimAPIKey, Key: e.subject}
		default:
			cell = store.LedgerKey{Dim: store.DimTotal}
		}
		bs := budgetStatus(e.b.Name, e.subject, e.l, e.resetsAt, st, runRate(recent[e.tag], cell, now), now)
		rep.Budgets = append(rep.Budgets, bs)
		if rep.Remaining == nil || bs.Remaining < *rep.Remaining {
			r := bs.Remaining
			rep.Remaining = &r
		}
	}
	return rep, nil
}

// Costs implements [Governor]. The window defaults to the last 30 days; the forecast is for the
// current calendar month (UTC): month-to-date spend plus the run rate until the month's end.
func (g *gov) Costs(ctx context.Context, q Query) (*CostReport, error) {
	now := g.opts.Clock.Now()
	from, to, err := queryWindow(q, now, 30*24*time.Hour)
	if err != nil {
		return nil, err
	}
	tag, cell := filterCell(q)
	var group string
	prefix := ""
	switch q.GroupBy {
	case "":
	case "model", "provider":
		group = store.DimModel
		if q.GroupBy == "provider" {
			group = store.DimProvider
		}
		if q.User != "" {
			// The ledger keeps user×model and user×provider cells for exactly this question.
			group = store.DimUserModel
			if q.GroupBy == "provider" {
				group = store.DimUserProvider
			}
			prefix = q.User + store.KeySep
		} else if q.APIKey != "" {
			return nil, fmt.Errorf("%w: groupBy %s with an apiKey filter is not kept in the ledger", ErrInvalidQuery, q.GroupBy)
		}
	case "user":
		group = store.DimUser
		if q.User != "" {
			prefix = q.User
		} else if q.APIKey != "" {
			return nil, fmt.Errorf("%w: groupBy user with an apiKey filter is not kept in the ledger", ErrInvalidQuery)
		}
	default:
		return nil, fmt.Errorf("%w: groupBy %q (want model, provider or user)", ErrInvalidQuery, q.GroupBy)
	}

	monthStart, monthEnd, _ := PeriodBounds(now, time.UTC, config.PeriodMonthly)
	readFrom := minTime(from, minTime(monthStart, now.Add(-rateHours*time.Hour)))
	readTo := to
	if now.Add(time.Hour).After(readTo) {
		readTo = now.Add(time.Hour)
	}
	hours, err := g.ledger(ctx, tag, readFrom, readTo)
	if err != nil {
		return nil, err
	}
	rep := &CostReport{PeriodEnd: monthEnd}
	lines := map[string]*CostLine{}
	var mtd money.Nanos
	for _, h := range hours {
		if inWindow(h, monthStart, now.Add(time.Nanosecond)) {
			mtd += money.Nanos(h.Cells[cell].Cost)
		}
		if !inWindow(h, from, to) {
			continue
		}
		rep.Total += money.Nanos(h.Cells[cell].Cost)
		if group == "" {
			continue
		}
		for k, t := range h.Cells {
			if k.Dim != group {
				continue
			}
			key := k.Key
			if prefix != "" {
				if group == store.DimUser {
					if key != prefix {
						continue
					}
				} else if !strings.HasPrefix(key, prefix) {
					continue
				} else {
					key = key[len(prefix):]
				}
			}
			l := lines[key]
			if l == nil {
				l = &CostLine{Key: key}
				lines[key] = l
			}
			l.Cost += money.Nanos(t.Cost)
			l.Requests += t.Requests
			l.Tokens += t.Tokens
		}
	}
	for _, l := range lines {
		rep.Breakdown = append(rep.Breakdown, *l)
	}
	sort.Slice(rep.Breakdown, func(i, j int) bool {
		a, b := rep.Breakdown[i], rep.Breakdown[j]
		if a.Cost != b.Cost {
			return a.Cost > b.Cost
		}
		return a.Key < b.Key
	})
	rate := runRate(hours, cell, now)
	rep.Projected = mtd + money.Nanos(math.Round(rate*monthEnd.Sub(now).Hours()))
	return rep, nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
