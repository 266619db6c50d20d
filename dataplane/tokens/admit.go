package tokens

import (
	"hash/maphash"
	"sync/atomic"
)

// seenOnce is the count cache's doorkeeper: it remembers a hash of recent texts, so that only a text
// seen a second time is copied into the count cache. A request's one-off user message then costs a
// hash instead of a copy and an insertion that would only be evicted again. A hash collision
// merely admits a text early; the cache itself compares texts in full.
type seenOnce struct {
	seed  maphash.Seed
	slots [4096]atomic.Uint64
}

func newSeenOnce() *seenOnce { return &seenOnce{seed: maphash.MakeSeed()} }

// again reports whether text (probably) came by before, and remembers it when not.
func (f *seenOnce) again(text string) bool {
	h := maphash.String(f.seed, text) | 1 // 0 is an empty slot
	slot := &f.slots[h%uint64(len(f.slots))]
	if slot.Load() == h {
		return true
	}
	slot.Store(h)
	return false
}
