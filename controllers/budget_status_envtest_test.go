package controllers_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	aiv1alpha1 "github.com/nself-org/ai-orchestration/api/v1alpha1"
	"github.com/nself-org/ai-orchestration/controllers"
	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/governor"
	"github.com/nself-org/ai-orchestration/dataplane/money"
	"github.com/nself-org/ai-orchestration/dataplane/store"
)

// spendInterval is the manager's AIBudget refresh in the suite (30 s in production).
const spendInterval = time.Second

var (
	// spendStore is the suite's usage store: a real redis-server (hack/with-redis.sh), under a
	// key prefix of its own, shared by the manager and the tests' "data plane" governor.
	spendStore *store.Redis
	// spendClock is the governors' clock, stopped at the start of the suite so that forecasts are
	// the same for the manager and the test.
	spendClock frozenClock
)

type frozenClock struct{ t time.Time }

func (c frozenClock) Now() time.Time { return c.t }

// startSpendReader connects the manager's AIBudget status to the Redis of $REDIS_URL, as
// cmd/manager does with --redis-url.
func startSpendReader(ctx context.Context, mgr ctrl.Manager) (controllers.BudgetSpendReader, func() error, error) {
	url := os.Getenv("REDIS_URL")
	if url == "" {
		return nil, nil, errors.New("REDIS_URL is not set, so there is no usage store for AIBudget status.\n" +
			"Run `make test` (hack/with-redis.sh starts a throw-away redis-server), or\n" +
			"  KUBEBUILDER_ASSETS=$(hack/envtest.sh) hack/with-redis.sh go test ./controllers/")
	}
	st, err := store.DialRedis(ctx, url, store.RedisOptions{Prefix: fmt.Sprintf("controllers%d:", time.Now().UnixNano())})
	if err != nil {
		return nil, nil, fmt.Errorf("failed to connect to the usage store: %w", err)
	}
	spendStore = st
	spendClock = frozenClock{t: time.Now().UTC().Truncate(time.Second)}
	g := governor.New(st, governor.Options{Clock: spendClock})
	reporter, ok := g.(governor.BudgetReporter)
	if !ok {
		_ = st.Close()
		return nil, nil, errors.New("the governor does not implement BudgetReporter")
	}
	return controllers.NewGovernorSpend(reporter, mgr.GetClient(), spendInterval/2), st.Close, nil
}

// budgetRow fetches the AIBudget as `kubectl get aibudgets` does: the server-side Table form,
// with the columns of the CRD's additionalPrinterColumns.
func budgetRow(t *testing.T, ns, name string) map[string]any {
	t.Helper()
	cfg := rest.CopyConfig(adminCfg)
	cfg.GroupVersion = &aiv1alpha1.GroupVersion
	cfg.APIPath = "/apis"
	cfg.NegotiatedSerializer = clientgoscheme.Codecs.WithoutConversion()
	rc, err := rest.RESTClientFor(cfg)
	require.NoError(t, err)
	raw, err := rc.Get().Namespace(ns).Resource("aibudgets").Name(name).
		SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").DoRaw(t.Context())
	require.NoError(t, err)
	var table metav1.Table
	require.NoError(t, json.Unmarshal(raw, &table))
	require.Equal(t, "Table", table.Kind)
	require.Len(t, table.Rows, 1)
	row := map[string]any{}
	for i, c := range table.ColumnDefinitions {
		row[c.Name] = table.Rows[0].Cells[i]
	}
	return row
}

// budgetEvents returns the reasons of the events recorded on the AIBudget ns/name.
func budgetEvents(t *testing.T, ns, name string) []string {
	t.Helper()
	var evs eventsv1.EventList
	require.NoError(t, k8sClient.List(t.Context(), &evs, client.InNamespace(ns)))
	var out []string
	for _, e := range evs.Items {
		if e.Regarding.Kind == "AIBudget" && e.Regarding.Name == name && e.Type == corev1.EventTypeWarning {
			out = append(out, e.Reason)
		}
	}
	slices.Sort(out)
	return out
}

// waitForBudget polls the API until cond holds for the AIBudget, which is left holding it.
func waitForBudget(t *testing.T, b *aiv1alpha1.AIBudget, what string, cond func(*aiv1alpha1.AIBudget) bool) {
	t.Helper()
	require.Eventually(t, func() bool {
		return k8sClient.Get(t.Context(), client.ObjectKeyFromObject(b), b) == nil && cond(b)
	}, waitFor, tick, "AIBudget %s never showed %s; status: %+v", b.Name, what, b.Status)
}

func TestAIBudgetStatusShowsSpendAndForecastFromTheSharedStore(t *testing.T) {
	const ns = "budget-status"
	budget := &aiv1alpha1.AIBudget{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "per-org"},
		Spec: aiv1alpha1.AIBudgetSpec{Scope: aiv1alpha1.BudgetScopeOrg, Subject: "*", Monthly: "0.005",
			AlertThresholds: []int32{50}},
	}
	createAll(t, ns, []client.Object{budget})
	waitForReady(t, budget, metav1.ConditionTrue, aiv1alpha1.ReasonReady)

	// Record spend as a data-plane replica does: its own governor, the published snapshot, the
	// same Redis.
	var snap *config.Snapshot
	require.Eventually(t, func() bool {
		snap = readSnapshot(t)
		return slices.ContainsFunc(snap.Budgets, func(b config.Budget) bool { return b.Name == ns+"/per-org" })
	}, waitFor, tick, "the budget never reached the snapshot")
	dataPlane := governor.New(spendStore, governor.Options{Clock: spendClock})
	spend := func(org string, reserve, cost money.Nanos) error {
		req := &governor.Request{Identity: governor.Identity{User: "u1", Org: org}, WorstCaseCost: reserve}
		d, err := dataPlane.Admit(t.Context(), snap, req)
		if err != nil {
			return err
		}
		return dataPlane.Settle(t.Context(), req, d.Ticket, governor.Charge{Cost: cost})
	}

	t.Run("before any traffic the budget shows nothing spent", func(t *testing.T) {
		waitForBudget(t, budget, "spent 0", func(b *aiv1alpha1.AIBudget) bool {
			return b.Status.Spent != nil && b.Status.Spent.Monthly == "0" && b.Status.Remaining.Monthly == "0.005" &&
				meta.IsStatusConditionFalse(b.Status.Conditions, aiv1alpha1.ConditionExceeded)
		})
	})

	t.Run("after traffic kubectl get shows the spend and the forecast", func(t *testing.T) {
		require.NoError(t, spend("acme", money.MustParseUSD("0.003"), money.MustParseUSD("0.003")))
		require.NoError(t, spend("globex", money.MustParseUSD("0.001"), money.MustParseUSD("0.001")))

		waitForBudget(t, budget, "spent 0.003", func(b *aiv1alpha1.AIBudget) bool {
			return b.Status.Spent != nil && b.Status.Spent.Monthly == "0.003"
		})
		require.Equal(t, aiv1alpha1.USD("0.002"), budget.Status.Remaining.Monthly, "acme, the top spender, has $0.002 left")
		require.NotNil(t, budget.Status.LastUpdated)
		require.True(t, meta.IsStatusConditionTrue(budget.Status.Conditions, aiv1alpha1.ConditionWarning), "60%% ≥ the 50%% threshold")
		require.True(t, meta.IsStatusConditionFalse(budget.Status.Conditions, aiv1alpha1.ConditionExceeded))
		require.Empty(t, budget.Status.SubjectsOverBudget)

		// The forecast is the data plane's own (GET /api/ai/usage for acme), rounded up to three
		// significant digits.
		usage, err := dataPlane.Usage(t.Context(), snap, governor.Query{Org: "acme"})
		require.NoError(t, err)
		var want money.Nanos
		for _, bs := range usage.Budgets {
			if bs.Name == ns+"/per-org" && bs.Period == config.PeriodMonthly {
				want = bs.Forecast
			}
		}
		require.Greater(t, want, money.MustParseUSD("0.003"), "a run rate and time left project more than the spend")
		forecast, err := money.ParseUSD(string(budget.Status.Forecast.Monthly))
		require.NoError(t, err)
		require.GreaterOrEqual(t, forecast, want)
		require.LessOrEqual(t, forecast-want, want/100, "within the rounding to three digits")

		row := budgetRow(t, ns, "per-org")
		t.Logf("kubectl get aibudgets -n %s: %v", ns, row)
		require.Equal(t, "0.003", row["Spent"])
		require.Equal(t, string(budget.Status.Forecast.Monthly), row["Forecast"])
		require.Equal(t, "True", row["Ready"])

		require.Eventually(t, func() bool {
			return slices.Contains(budgetEvents(t, ns, "per-org"), aiv1alpha1.ReasonThresholdReached)
		}, waitFor, tick, "no ThresholdReached event")
	})

	t.Run("crossing the limit turns Exceeded True with one event", func(t *testing.T) {
		// The reservation fits; the real cost ($0.003) takes acme past $0.005, as a call whose
		// usage exceeds its estimate does.
		require.NoError(t, spend("acme", money.MustParseUSD("0.001"), money.MustParseUSD("0.003")))
		waitForBudget(t, budget, "Exceeded", func(b *aiv1alpha1.AIBudget) bool {
			return meta.IsStatusConditionTrue(b.Status.Conditions, aiv1alpha1.ConditionExceeded)
		})
		exc := meta.FindStatusCondition(budget.Status.Conditions, aiv1alpha1.ConditionExceeded)
		require.Equal(t, aiv1alpha1.ReasonBudgetExceeded, exc.Reason)
		require.Equal(t, aiv1alpha1.USD("0.006"), budget.Status.Spent.Monthly)
		require.Equal(t, aiv1alpha1.USD("0"), budget.Status.Remaining.Monthly)
		require.Equal(t, []string{"acme"}, budget.Status.SubjectsOverBudget)
		require.EqualValues(t, 1, budget.Status.SubjectsOverBudgetCount)
		require.Equal(t, "0.006", budgetRow(t, ns, "per-org")["Spent"])

		var denied *governor.DeniedError
		require.ErrorAs(t, spend("acme", 1, 1), &denied, "the data plane refuses acme too")
		require.NoError(t, spend("globex", 1, 1), "globex is still within its own budget")

		require.Eventually(t, func() bool {
			return slices.Contains(budgetEvents(t, ns, "per-org"), aiv1alpha1.ReasonBudgetExceeded)
		}, waitFor, tick, "no BudgetExceeded event")
	})

	t.Run("passes with unchanged figures write nothing and announce nothing", func(t *testing.T) {
		// globex's last $0.000000001 changes no figure shown (they are acme's, the top spender's).
		require.NoError(t, k8sClient.Get(t.Context(), client.ObjectKeyFromObject(budget), budget))
		version := budget.ResourceVersion
		for range 3 {
			_, err := ctrls.Budgets.Reconcile(t.Context(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(budget)})
			require.NoError(t, err)
		}
		require.NoError(t, k8sClient.Get(t.Context(), client.ObjectKeyFromObject(budget), budget))
		require.Equal(t, version, budget.ResourceVersion, "the status was rewritten without a change")
		require.Equal(t, []string{aiv1alpha1.ReasonBudgetExceeded, aiv1alpha1.ReasonThresholdReached},
			budgetEvents(t, ns, "per-org"), "one event per transition")
	})
}
