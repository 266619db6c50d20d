package compiler

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	aiv1alpha1 "github.com/nself-org/ai-orchestration/api/v1alpha1"
)

// largeInput is the size the design promises to compile and swap in under 100 ms: 1 000
// AIRoutePolicies over 10 AIProviders and 10 000 AIBudgets, every one of them valid. It mirrors
// the snapshot of BenchmarkSwapLargeSnapshot (dataplane/runtime), which measures the data
// plane's half of the same promise.
func largeInput() Input {
	var in Input
	meta := func(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Namespace: "ns", Name: name} }
	for p := range 10 {
		in.Providers = append(in.Providers, aiv1alpha1.AIProvider{ObjectMeta: meta(fmt.Sprintf("p%02d", p)),
			Spec: aiv1alpha1.AIProviderSpec{Type: aiv1alpha1.ProviderTypeMock, Mock: &aiv1alpha1.MockConfig{Reply: "a"},
				Models: []aiv1alpha1.ProviderModel{{Name: "m", InputPerMillion: "1", OutputPerMillion: "2"}}}})
	}
	for r := range 1000 {
		in.Routes = append(in.Routes, aiv1alpha1.AIRoutePolicy{ObjectMeta: meta(fmt.Sprintf("r%04d", r)),
			Spec: aiv1alpha1.AIRoutePolicySpec{
				Match:   aiv1alpha1.RouteMatch{Models: []string{fmt.Sprintf("alias-%04d", r)}},
				Targets: []aiv1alpha1.RouteTarget{{Provider: fmt.Sprintf("p%02d", r%10), Model: "m"}},
				RateLimits: []aiv1alpha1.RateLimit{{Name: "rpm", Per: aiv1alpha1.RateLimitPerUser,
					Algorithm: aiv1alpha1.RateLimitAlgorithmSlidingWindow, Requests: 60, Window: aiv1alpha1.RateLimitWindowMinute}},
			}})
	}
	for b := range 10000 {
		in.Budgets = append(in.Budgets, aiv1alpha1.AIBudget{ObjectMeta: meta(fmt.Sprintf("b%05d", b)),
			Spec: aiv1alpha1.AIBudgetSpec{Scope: aiv1alpha1.BudgetScopeUser, Subject: fmt.Sprintf("user-%05d", b), Daily: "1"}})
	}
	return in
}

// BenchmarkCompileLarge measures the controller's half of the promise: compile and seal the
// snapshot of [largeInput].
func BenchmarkCompileLarge(b *testing.B) {
	in := largeInput()
	res := Compile(in)
	require.Empty(b, res.Problems)
	require.Len(b, res.Snapshot.Routes, 1000)
	require.Len(b, res.Snapshot.Budgets, 10000)
	for b.Loop() {
		Compile(in)
	}
}
