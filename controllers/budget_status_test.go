package controllers

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	aiv1alpha1 "github.com/nself-org/ai-orchestration/api/v1alpha1"
	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/governor"
	"github.com/nself-org/ai-orchestration/dataplane/money"
	"github.com/nself-org/ai-orchestration/dataplane/store"
	"github.com/nself-org/ai-orchestration/internal/compiler"
)

// stillClock is a clock that does not move, so that forecasts are reproducible.
type stillClock struct{ t time.Time }

func (c stillClock) Now() time.Time { return c.t }

// countingReporter counts the store reads of a real governor.
type countingReporter struct {
	governor.BudgetReporter
	calls int
}

func (c *countingReporter) BudgetReports(ctx context.Context, snap *config.Snapshot) ([]governor.BudgetReport, error) {
	c.calls++
	return c.BudgetReporter.BudgetReports(ctx, snap)
}

func spendBudget(name string, scope aiv1alpha1.BudgetScope, subject, monthly string, thresholds ...int32) *aiv1alpha1.AIBudget {
	return &aiv1alpha1.AIBudget{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: name, Generation: 1, UID: types.UID("uid-" + name)},
		Spec: aiv1alpha1.AIBudgetSpec{Scope: scope, Subject: subject, Monthly: aiv1alpha1.USD(monthly),
			AlertThresholds: thresholds},
	}
}

func TestGovernorSpendSummarisesTheStoresReports(t *testing.T) {
	clock := stillClock{t: time.Date(2026, 11, 20, 12, 30, 0, 0, time.UTC)}
	for name, tc := range map[string]struct {
		budget  *aiv1alpha1.AIBudget
		charges map[string]money.Nanos // org → cost
		want    BudgetSpend
	}{
		"a budget nobody spent under shows nothing spent and the whole limit remaining": {
			budget: spendBudget("idle", aiv1alpha1.BudgetScopeOrg, "*", "5"),
			want: BudgetSpend{
				Spent: &aiv1alpha1.PeriodAmounts{Monthly: "0"}, Remaining: &aiv1alpha1.PeriodAmounts{Monthly: "5"},
				Forecast: &aiv1alpha1.PeriodAmounts{Monthly: "0"},
			},
		},
		"an org budget below its threshold is within budget": {
			budget:  spendBudget("acme", aiv1alpha1.BudgetScopeOrg, "acme", "5", 50),
			charges: map[string]money.Nanos{"acme": money.MustParseUSD("1.25")},
			want: BudgetSpend{
				Spent: &aiv1alpha1.PeriodAmounts{Monthly: "1.25"}, Remaining: &aiv1alpha1.PeriodAmounts{Monthly: "3.75"},
			},
		},
		"every org separately reports the top spender, warns at the threshold and lists who is over": {
			budget: spendBudget("per-org", aiv1alpha1.BudgetScopeOrg, "*", "1", 80),
			charges: map[string]money.Nanos{
				"acme": money.MustParseUSD("1.10"), "globex": money.MustParseUSD("0.85"), "initech": money.MustParseUSD("0.1"),
			},
			want: BudgetSpend{
				Spent: &aiv1alpha1.PeriodAmounts{Monthly: "1.1"}, Remaining: &aiv1alpha1.PeriodAmounts{Monthly: "0"},
				SubjectsOverBudget: []string{"acme"}, SubjectsOverBudgetCount: 1, Warning: true, Exceeded: true,
			},
		},
	} {
		t.Run(name, func(t *testing.T) {
			st := store.NewMemory(store.MemoryOptions{Clock: clock})
			g := governor.New(st, governor.Options{Clock: clock})
			snap := compiler.Compile(compiler.Input{Budgets: []aiv1alpha1.AIBudget{*tc.budget}}).Snapshot
			require.Len(t, snap.Budgets, 1)
			for org, cost := range tc.charges {
				// A $0 worst case: the test charges past the limit on purpose (block would refuse).
				req := &governor.Request{Identity: governor.Identity{User: "u", Org: org}}
				d, err := g.Admit(t.Context(), snap, req)
				require.NoError(t, err)
				require.NoError(t, g.Settle(t.Context(), req, d.Ticket, governor.Charge{Cost: cost}))
			}
			s := NewGovernorSpend(g.(governor.BudgetReporter), nil, time.Minute)
			got, err := s.ReadSpend(t.Context(), tc.budget)
			require.NoError(t, err)

			// The forecast is the governor's, rounded up to three digits: at least the spend.
			require.NotNil(t, got.Forecast)
			forecast, err := money.ParseUSD(string(got.Forecast.Monthly))
			require.NoError(t, err)
			spent, err := money.ParseUSD(string(got.Spent.Monthly))
			require.NoError(t, err)
			require.GreaterOrEqual(t, forecast, spent)
			if spent > 0 {
				require.Greater(t, forecast, spent, "recent spend and time left in the month project more spend")
			}
			if tc.want.Forecast == nil {
				got.Forecast = nil
			}
			require.Equal(t, tc.want, got)
		})
	}
}

func TestGovernorSpendReadsTheStoreOncePerRound(t *testing.T) {
	clock := stillClock{t: time.Date(2026, 11, 20, 12, 30, 0, 0, time.UTC)}
	g := governor.New(store.NewMemory(store.MemoryOptions{Clock: clock}), governor.Options{Clock: clock})
	a := spendBudget("a", aiv1alpha1.BudgetScopeGlobal, "", "1")
	b := spendBudget("b", aiv1alpha1.BudgetScopeOrg, "acme", "2")
	c := newFakeClient(t, a.DeepCopy(), b.DeepCopy())
	rep := &countingReporter{BudgetReporter: g.(governor.BudgetReporter)}
	s := NewGovernorSpend(rep, c, time.Minute)
	now := clock.t
	s.now = func() time.Time { return now }

	_, err := s.ReadSpend(t.Context(), a)
	require.NoError(t, err)
	_, err = s.ReadSpend(t.Context(), b)
	require.NoError(t, err)
	require.Equal(t, 1, rep.calls, "one read answered both budgets")

	b.Generation = 2
	b.Spec.Monthly = "3"
	got, err := s.ReadSpend(t.Context(), b)
	require.NoError(t, err)
	require.Equal(t, 2, rep.calls, "a new generation is read again")
	require.Equal(t, aiv1alpha1.USD("3"), got.Remaining.Monthly, "with the spec being reconciled, not the cached one")

	now = now.Add(time.Minute)
	_, err = s.ReadSpend(t.Context(), a)
	require.NoError(t, err)
	require.Equal(t, 3, rep.calls, "figures older than maxAge are read again")
}

func TestGovernorSpendReportsAnUnreachableStoreUntilItAnswers(t *testing.T) {
	// Nothing listens on port 1: the connection is refused at once, as with a Redis that is down.
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: time.Second, MaxRetries: -1,
		DialerRetries: 1, DialerRetryTimeout: 10 * time.Millisecond})
	defer func() { require.NoError(t, c.Close()) }()
	g := governor.New(store.NewRedis(c, store.RedisOptions{}), governor.Options{})
	rep := &countingReporter{BudgetReporter: g.(governor.BudgetReporter)}
	s := NewGovernorSpend(rep, nil, time.Minute)
	now := time.Date(2026, 11, 20, 12, 30, 0, 0, time.UTC)
	s.now = func() time.Time { return now }
	b := spendBudget("a", aiv1alpha1.BudgetScopeGlobal, "", "1")

	_, err := s.ReadSpend(t.Context(), b)
	require.ErrorContains(t, err, "failed to read budget spend from the usage store")
	_, err = s.ReadSpend(t.Context(), spendBudget("b", aiv1alpha1.BudgetScopeGlobal, "", "1"))
	require.Error(t, err)
	require.Equal(t, 1, rep.calls, "the other budgets of the round get the same answer without a store call")

	now = now.Add(time.Minute)
	_, err = s.ReadSpend(t.Context(), b)
	require.Error(t, err)
	require.Equal(t, 2, rep.calls, "the next round tries the store again")
}

func TestSummarizeBoundsTheSubjectsOverBudget(t *testing.T) {
	b := config.Budget{Name: "team/x", Scope: config.ScopeUser, Subject: "*",
		Limits: []config.BudgetLimit{{Period: config.PeriodDaily, Limit: 10}}}
	rep := governor.BudgetReport{Name: b.Name}
	for i := range 150 {
		rep.OverBudget = append(rep.OverBudget, fmt.Sprintf("org/user-%03d", i))
	}
	rep.OverBudget[0] = strings.Repeat("é", 200) // 400 bytes
	got := summarize(&b, &rep)
	require.Len(t, got.SubjectsOverBudget, maxSubjectsListed)
	require.EqualValues(t, 150, got.SubjectsOverBudgetCount)
	require.LessOrEqual(t, len(got.SubjectsOverBudget[0]), maxSubjectLength)
	require.True(t, strings.HasPrefix(got.SubjectsOverBudget[0], "éé"))
	require.True(t, got.Exceeded)
}

func TestAmountsAreWrittenAsShortExactDecimals(t *testing.T) {
	for name, tc := range map[string]struct {
		in   money.Nanos
		want aiv1alpha1.USD
	}{
		"zero is 0":                      {0, "0"},
		"whole dollars have no decimals": {money.MustParseUSD("25"), "25"},
		"cents keep their digits":        {money.MustParseUSD("0.05"), "0.05"},
		"one nano-dollar is exact":       {1, "0.000000001"},
		"a negative amount shows as 0":   {-5, "0"},
	} {
		t.Run(name, func(t *testing.T) { require.Equal(t, tc.want, usd(tc.in)) })
	}
}

func TestForecastsAreRoundedUpToThreeDigits(t *testing.T) {
	for name, tc := range map[string]struct {
		in, want money.Nanos
	}{
		"a small amount is kept":               {999, 999},
		"an amount with more digits rounds up": {123_456_789, 124_000_000},
		"an exact amount stays":                {5_000_000, 5_000_000},
		"zero stays zero":                      {0, 0},
	} {
		t.Run(name, func(t *testing.T) { require.Equal(t, tc.want, roundUp(tc.in, forecastDigits)) })
	}
}
