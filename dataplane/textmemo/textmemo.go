// Package textmemo remembers what was computed from long texts that keep coming back.
//
// Chat requests resend the same texts again and again: a route's fixed system prompt on every
// request, and the whole conversation on every turn. A Memo holds results per (variant, text)
// so that such a text costs one hash and one comparison instead of the work again. The text
// itself is the key and is compared in full on a hit, so a hit is never another text's result.
//
// A text enters the memo only when it comes a second time (a small table of recent hashes keeps
// watch), so a request's one-off user message costs a hash instead of a copy and an insertion
// that would only be evicted again. The memo is bounded by bytes and evicts by frequency and
// recency (W-TinyLFU), so a stream of one-off texts does not push out the ones that recur.
package textmemo

import (
	"hash/maphash"
	"strings"
	"sync/atomic"

	"github.com/maypok86/otter/v2"
)

// Options bound a [Memo].
type Options[V any] struct {
	// MinText: shorter texts are cheap to recompute; a look-up would not pay.
	MinText int
	// MaxText: larger texts are recomputed every time rather than evicting many smaller ones.
	MaxText int
	// MaxBytes bounds what the memo holds: texts, plus Weigh of each value, plus EntryOverhead
	// per entry (so that the bound holds for texts near MinText too).
	MaxBytes      uint64
	EntryOverhead int
	// Weigh is the size of a value beyond its text; nil means 0.
	Weigh func(V) int
}

// Memo maps (variant, text) to a value. Safe for concurrent use.
type Memo[K comparable, V any] struct {
	min, max int
	cache    *otter.Cache[key[K], V]
	seen     doorkeeper
}

type key[K comparable] struct {
	variant K
	text    string
}

// New returns an empty Memo.
func New[K comparable, V any](o Options[V]) *Memo[K, V] {
	weigh := o.Weigh
	if weigh == nil {
		weigh = func(V) int { return 0 }
	}
	overhead := o.EntryOverhead
	return &Memo[K, V]{
		min: o.MinText, max: o.MaxText,
		seen: doorkeeper{seed: maphash.MakeSeed()},
		cache: otter.Must(&otter.Options[key[K], V]{
			MaximumWeight: o.MaxBytes,
			Weigher:       func(k key[K], v V) uint32 { return uint32(len(k.text) + weigh(v) + overhead) },
		}),
	}
}

// Holds reports whether texts of this size are memoised at all.
func (m *Memo[K, V]) Holds(text string) bool { return len(text) >= m.min && len(text) <= m.max }

// Get returns the value remembered for (variant, text).
func (m *Memo[K, V]) Get(variant K, text string) (V, bool) {
	if !m.Holds(text) {
		var zero V
		return zero, false
	}
	return m.cache.GetIfPresent(key[K]{variant, text})
}

// Offer remembers v for (variant, text) when the text comes a second time. The text is copied:
// the caller's string may share memory with a whole request body that the memo must not keep
// alive.
func (m *Memo[K, V]) Offer(variant K, text string, v V) {
	if !m.Holds(text) || !m.seen.again(text) {
		return
	}
	m.cache.Set(key[K]{variant, strings.Clone(text)}, v)
}

// doorkeeper remembers a hash of recent texts. A hash collision merely admits a text early; the
// memo itself compares texts in full.
type doorkeeper struct {
	seed  maphash.Seed
	slots [4096]atomic.Uint64
}

// again reports whether text (probably) came by before, and remembers it when not.
func (d *doorkeeper) again(text string) bool {
	h := maphash.String(d.seed, text) | 1 // 0 is an empty slot
	slot := &d.slots[h%uint64(len(d.slots))]
	if slot.Load() == h {
		return true
	}
	slot.Store(h)
	return false
}
