package compiler

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	aiv1alpha1 "github.com/nself-org/ai-orchestration/api/v1alpha1"
	"github.com/nself-org/ai-orchestration/dataplane/config"
)

// duplicateAliases is the check of ambiguous routes as first written: every route against every
// earlier published one. It returns the names of the routes left out, each with its message.
func duplicateAliases(routes []config.Route) map[string]string {
	out := map[string]string{}
	var earlier []config.Route
	for _, r := range routes {
		models := r.Match.Models
		if len(models) == 0 {
			models = []string{"*"}
		}
		msg := ""
	prev:
		for _, prev := range earlier {
			if matchKey(prev.Match) != matchKey(r.Match) {
				continue
			}
			prevModels := prev.Match.Models
			if len(prevModels) == 0 {
				prevModels = []string{"*"}
			}
			for _, m := range models {
				if slices.Contains(prevModels, m) {
					if m == "*" {
						m = "every model (empty match.models)"
					} else {
						m = "model " + strconv.Quote(m)
					}
					msg = fmt.Sprintf("%s with the same match is already routed by AIRoutePolicy %q (which wins by namespace/name order); give this policy a different match or remove the alias", m, prev.Name)
					break prev
				}
			}
		}
		if msg != "" {
			out[r.Name] = msg
			continue
		}
		earlier = append(earlier, r)
	}
	return out
}

// The index of aliases leaves out the same routes, with the same messages, as comparing every
// route with every earlier one.
func TestAmbiguousRoutesAreFoundAsByComparingEveryPair(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 2))
	pick := func(from []string) []string {
		var out []string
		for _, v := range from {
			if rng.IntN(3) == 0 {
				out = append(out, v)
			}
		}
		return out
	}
	left := 0
	for range 200 {
		in := Input{Providers: []aiv1alpha1.AIProvider{{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p"},
			Spec: aiv1alpha1.AIProviderSpec{Type: aiv1alpha1.ProviderTypeMock, Models: []aiv1alpha1.ProviderModel{{Name: "m"}}}}}}
		for r := range 2 + rng.IntN(30) {
			var eps []aiv1alpha1.Endpoint
			for _, e := range pick([]string{"chat", "embed"}) {
				eps = append(eps, aiv1alpha1.Endpoint(e))
			}
			in.Routes = append(in.Routes, aiv1alpha1.AIRoutePolicy{
				ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: fmt.Sprintf("r%02d", r)},
				Spec: aiv1alpha1.AIRoutePolicySpec{
					Match:   aiv1alpha1.RouteMatch{Models: pick([]string{"a", "b", "c", "d"}), Endpoints: eps, Orgs: pick([]string{"o1", "o2"})},
					Targets: []aiv1alpha1.RouteTarget{{Provider: "p", Model: "m"}},
				}})
		}
		// What the routes look like once compiled, all of them, in order.
		all := Compile(Input{Providers: in.Providers})
		var compiled []config.Route
		for i := range in.Routes {
			c := &compilation{declared: map[string]*aiv1alpha1.AIProvider{"ns/p": &in.Providers[0]},
				published: map[string]*config.Provider{"ns/p": &all.Snapshot.Providers[0]}, aliases: map[string]map[string]int{}}
			r, ok := c.compileRoute(&in.Routes[i], nil)
			require.True(t, ok)
			compiled = append(compiled, r)
		}
		want := duplicateAliases(compiled)
		res := Compile(in)
		got := map[string]string{}
		for _, p := range res.Problems {
			require.Equal(t, aiv1alpha1.ReasonDuplicateModel, p.Reason)
			got[key(p.Namespace, p.Name)] = p.Message
		}
		require.Equal(t, want, got)
		require.Len(t, res.Snapshot.Routes, len(compiled)-len(want))
		left += len(want)
	}
	require.Greater(t, left, 100, "the inputs must hold ambiguous routes")
}

// sortByKeyAsFirstWritten is sortByKey as first written: the objects themselves sorted stably,
// then repeated keys compacted away.
func sortByKeyAsFirstWritten[T any](c *compilation, kind string, objs []T, meta func(*T) (string, string)) []T {
	out := slices.Clone(objs)
	slices.SortStableFunc(out, func(a, b T) int {
		an, aname := meta(&a)
		bn, bname := meta(&b)
		return cmp.Or(cmp.Compare(an, bn), cmp.Compare(aname, bname))
	})
	return slices.CompactFunc(out, func(a, b T) bool {
		an, aname := meta(&a)
		bn, bname := meta(&b)
		if an == bn && aname == bname {
			c.report(kind, bn, bname, aiv1alpha1.ReasonInvalidSpec, false,
				"%s %s is declared more than once: only the first declaration is used", kind, key(bn, bname))
			return true
		}
		return false
	})
}

// Sorting the keys keeps the objects, their order, the declaration kept of a repeated key and
// the problems reported of sorting the objects.
func TestSortByKeyKeepsWhatSortingTheObjectsKept(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 1))
	meta := func(b *aiv1alpha1.AIBudget) (string, string) { return b.Namespace, b.Name }
	repeated := 0
	for range 300 {
		var in []aiv1alpha1.AIBudget
		for i := range rng.IntN(40) {
			in = append(in, aiv1alpha1.AIBudget{
				ObjectMeta: metav1.ObjectMeta{Namespace: fmt.Sprintf("ns%d", rng.IntN(3)), Name: fmt.Sprintf("b%d", rng.IntN(15))},
				Spec:       aiv1alpha1.AIBudgetSpec{Subject: strconv.Itoa(i)}, // tells the declarations of one key apart
			})
		}
		want, got := &compilation{}, &compilation{}
		wantOut := sortByKeyAsFirstWritten(want, KindAIBudget, in, meta)
		gotOut := sortByKey(got, KindAIBudget, in, meta)
		require.Equal(t, len(wantOut), len(gotOut))
		for i := range wantOut {
			require.Equal(t, wantOut[i], gotOut[i])
		}
		require.Equal(t, want.problems, got.problems)
		repeated += len(want.problems)
	}
	require.Greater(t, repeated, 100, "the inputs must repeat keys")
}
