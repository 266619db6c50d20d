package controllers

import (
	"cmp"
	"maps"
	"slices"
	"sync"

	"k8s.io/apimachinery/pkg/types"

	"github.com/nself-org/ai-orchestration/internal/compiler"
)

// ObjectRef names one compiled object: a kind of [compiler] (KindAIProvider, …, KindSecret),
// a namespace and a name.
type ObjectRef struct {
	Kind, Namespace, Name string
}

// ObjectResult is what the last published compilation said about one object.
type ObjectResult struct {
	// UID identifies the compiled object, so that a verdict about a deleted object is never
	// applied to a new one of the same name.
	UID types.UID
	// Generation is the object's metadata.generation that was compiled; a reconciler only trusts
	// a result whose generation equals the object's (otherwise the spec changed since).
	Generation int64
	// Problems are the compiler's problems for the object, in the order found.
	Problems []compiler.Problem
	// Count is the number of models (AIProvider) or targets (AIRoutePolicy) in the snapshot.
	Count int32
}

// Results holds the outcome of the last published compilation, per object. The publisher is its
// only writer; the per-kind reconcilers read it to set their status. It lives in memory because
// every controller runs in the one leader process, and the first publish after a start rebuilds it.
type Results struct {
	mu      sync.RWMutex
	objects map[ObjectRef]ObjectResult
}

// NewResults returns an empty store.
func NewResults() *Results { return &Results{objects: map[ObjectRef]ObjectResult{}} }

// Get returns the result for ref; ok is false until a publish has compiled the object.
func (r *Results) Get(ref ObjectRef) (ObjectResult, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	res, ok := r.objects[ref]
	return res, ok
}

// Replace swaps in the results of a new compilation and returns the objects whose result is new
// or differs from the previous one (sorted), which are the objects whose status must be updated.
func (r *Results) Replace(next map[ObjectRef]ObjectResult) []ObjectRef {
	r.mu.Lock()
	defer r.mu.Unlock()
	var changed []ObjectRef
	for ref, res := range next {
		prev, ok := r.objects[ref]
		if !ok || !sameResult(prev, res) {
			changed = append(changed, ref)
		}
	}
	r.objects = maps.Clone(next)
	slices.SortFunc(changed, func(a, b ObjectRef) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return changed
}

func sameResult(a, b ObjectResult) bool {
	return a.UID == b.UID && a.Generation == b.Generation && a.Count == b.Count && slices.Equal(a.Problems, b.Problems)
}
