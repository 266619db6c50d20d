package controllers

import (
	"context"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	aiv1alpha1 "github.com/nself-org/ai-orchestration/api/v1alpha1"
	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/governor"
	"github.com/nself-org/ai-orchestration/dataplane/money"
	"github.com/nself-org/ai-orchestration/internal/compiler"
)

// Bounds of status.subjectsOverBudget, as the CRD schema enforces them: a longer list or name
// would make the API server refuse the whole status write.
const (
	maxSubjectsListed = 100
	maxSubjectLength  = 253
)

// forecastDigits is the precision a forecast is written with. A forecast is an extrapolation that
// moves with every second of the period; more digits would rewrite the status of every budget
// with recent usage on every pass without telling anyone anything new.
const forecastDigits = 3

// GovernorSpend is the [BudgetSpendReader] over the data plane's shared store: it asks the
// governor's [governor.BudgetReporter] for every budget at once and keeps the answer for maxAge,
// so that a refresh round over N budgets reads the store once, not N times (each read scans the
// global ledger since the earliest period start).
//
// Budgets are compiled with the same compiler as the snapshot, so the store keys it reads are
// exactly the ones the data plane writes. A budget the compiler leaves out (invalid spec) reports
// no spend: the data plane does not enforce it, and its Ready condition says why.
type GovernorSpend struct {
	reporter governor.BudgetReporter
	budgets  client.Reader
	maxAge   time.Duration
	now      func() time.Time

	mu      sync.Mutex
	readAt  time.Time
	err     error // the last refresh's failure, returned until maxAge passed
	entries map[string]spendEntry
}

// spendEntry is one budget of the last refresh, with the object version it was compiled from.
type spendEntry struct {
	uid        types.UID
	generation int64
	budget     config.Budget
	report     governor.BudgetReport
}

var _ BudgetSpendReader = (*GovernorSpend)(nil)

// NewGovernorSpend returns a reader over reporter (the Governor that governor.New returns, on the
// store the data planes use). budgets lists every AIBudget (the manager's cached client); maxAge
// is how long one store read answers for, typically half the status refresh interval.
func NewGovernorSpend(reporter governor.BudgetReporter, budgets client.Reader, maxAge time.Duration) *GovernorSpend {
	return &GovernorSpend{reporter: reporter, budgets: budgets, maxAge: maxAge, now: time.Now}
}

// ReadSpend implements [BudgetSpendReader].
func (s *GovernorSpend) ReadSpend(ctx context.Context, b *aiv1alpha1.AIBudget) (BudgetSpend, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := b.Namespace + "/" + b.Name
	e, ok := s.entries[key]
	fresh := s.now().Sub(s.readAt) < s.maxAge
	switch {
	case fresh && s.err != nil:
		return BudgetSpend{}, s.err
	case !fresh || !ok || e.uid != b.UID || e.generation != b.Generation:
		if err := s.refresh(ctx, b); err != nil {
			return BudgetSpend{}, err
		}
		e, ok = s.entries[key]
	}
	if !ok {
		return BudgetSpend{}, nil
	}
	return summarize(&e.budget, &e.report), nil
}

// refresh compiles every AIBudget (with b as given, since the cache may lag behind the object
// being reconciled) and reads all their reports in one call.
func (s *GovernorSpend) refresh(ctx context.Context, b *aiv1alpha1.AIBudget) error {
	s.readAt, s.err, s.entries = s.now(), nil, nil
	var list aiv1alpha1.AIBudgetList
	if s.budgets != nil {
		if err := s.budgets.List(ctx, &list); err != nil {
			s.err = fmt.Errorf("failed to list AIBudgets: %w", err)
			return s.err
		}
	}
	in := compiler.Input{Budgets: make([]aiv1alpha1.AIBudget, 0, len(list.Items)+1)}
	for _, x := range list.Items {
		if x.Namespace != b.Namespace || x.Name != b.Name {
			in.Budgets = append(in.Budgets, x)
		}
	}
	in.Budgets = append(in.Budgets, *b)
	versions := make(map[string]spendEntry, len(in.Budgets))
	for _, x := range in.Budgets {
		versions[x.Namespace+"/"+x.Name] = spendEntry{uid: x.UID, generation: x.Generation}
	}

	snap := compiler.Compile(in).Snapshot
	reports, err := s.reporter.BudgetReports(ctx, snap)
	if err != nil {
		s.err = fmt.Errorf("failed to read budget spend from the usage store: %w", err)
		return s.err
	}
	if len(reports) != len(snap.Budgets) {
		s.err = fmt.Errorf("failed to read budget spend: %d reports for %d budgets", len(reports), len(snap.Budgets))
		return s.err
	}
	s.entries = make(map[string]spendEntry, len(reports))
	for i := range reports {
		e := versions[snap.Budgets[i].Name]
		e.budget, e.report = snap.Budgets[i], reports[i]
		s.entries[snap.Budgets[i].Name] = e
	}
	return nil
}

// summarize turns a report (one status per subject and period) into the AIBudget's figures. For
// subject "*" spent and remaining are those of the subject that spent most in each period, and
// forecast is the highest forecast of any subject: the figure that tells whether someone will run
// out. A period without any active subject shows nothing spent and the whole limit remaining.
func summarize(b *config.Budget, rep *governor.BudgetReport) BudgetSpend {
	type agg struct {
		spent, remaining, forecast money.Nanos
		seen                       bool
	}
	per := map[string]*agg{}
	for _, l := range b.Limits {
		per[l.Period] = &agg{remaining: l.Limit}
	}
	var warning bool
	for _, st := range rep.Statuses {
		a := per[st.Period]
		if a == nil {
			continue
		}
		if !a.seen || st.Spent > a.spent {
			a.spent, a.remaining, a.seen = st.Spent, st.Remaining, true
		}
		a.forecast = max(a.forecast, st.Forecast)
		if len(b.AlertThresholds) > 0 && reached(st.Spent, st.Limit, b.AlertThresholds[0]) {
			warning = true
		}
	}
	out := BudgetSpend{
		Spent: &aiv1alpha1.PeriodAmounts{}, Remaining: &aiv1alpha1.PeriodAmounts{}, Forecast: &aiv1alpha1.PeriodAmounts{},
		Warning: warning, Exceeded: len(rep.OverBudget) > 0,
		SubjectsOverBudgetCount: int32(min(len(rep.OverBudget), 1<<31-1)),
	}
	for _, l := range b.Limits {
		a := per[l.Period]
		setPeriod(out.Spent, l.Period, usd(a.spent))
		setPeriod(out.Remaining, l.Period, usd(a.remaining))
		setPeriod(out.Forecast, l.Period, usd(roundUp(max(a.forecast, a.spent), forecastDigits)))
	}
	for _, subj := range rep.OverBudget[:min(len(rep.OverBudget), maxSubjectsListed)] {
		if len(subj) > maxSubjectLength {
			subj = strings.ToValidUTF8(subj[:maxSubjectLength], "")
		}
		out.SubjectsOverBudget = append(out.SubjectsOverBudget, subj)
	}
	return out
}

// reached reports whether spent is at least pct percent of limit, exactly (no overflow for any
// amount: spent·100 ≥ pct·limit in big integers).
func reached(spent, limit money.Nanos, pct int32) bool {
	l := new(big.Int).Mul(big.NewInt(int64(limit)), big.NewInt(int64(pct)))
	s := new(big.Int).Mul(big.NewInt(int64(spent)), big.NewInt(100))
	return s.Cmp(l) >= 0
}

func setPeriod(p *aiv1alpha1.PeriodAmounts, period string, v aiv1alpha1.USD) {
	switch period {
	case config.PeriodDaily:
		p.Daily = v
	case config.PeriodWeekly:
		p.Weekly = v
	case config.PeriodMonthly:
		p.Monthly = v
	}
}

// usd renders n as the status's decimal USD string without trailing zeros ("0.05", "1", "0"),
// which `kubectl get` shows in the SPENT and FORECAST columns. Negative amounts (never expected
// from the store) are shown as 0, since the schema admits no sign.
func usd(n money.Nanos) aiv1alpha1.USD {
	s := max(n, 0).String()
	s = strings.TrimRight(s, "0")
	return aiv1alpha1.USD(strings.TrimSuffix(s, "."))
}

// roundUp rounds n up to digits significant digits (never below n, so a forecast never shows
// less than what was already spent).
func roundUp(n money.Nanos, digits int) money.Nanos {
	if n <= 0 {
		return 0
	}
	unit := money.Nanos(1)
	for v := n; v >= pow10(digits); v /= 10 {
		unit *= 10
	}
	if r := n % unit; r != 0 {
		n += unit - r
	}
	return n
}

func pow10(d int) money.Nanos {
	p := money.Nanos(1)
	for range d {
		p *= 10
	}
	return p
}
