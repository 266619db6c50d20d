package handlers

import (
	"hash/maphash"
	"sync/atomic"
)

// Requests resend the same long texts (a route's system prompt every time, the conversation
// so far every turn), and each decoded copy of such a text was the largest allocation of the
// request path after the body itself: a KiB or more of garbage per request for the collector.
// The decoder hands out one shared copy of a content it has seen recently instead. A text is
// taken in on its second sighting (a table of hashes keeps watch), so one-off user messages
// cost a hash, not a slot. Strings are immutable, so sharing one changes no value anywhere;
// later look-ups of the same text (token count, guardrail memos) then compare it by pointer.
const (
	// internMin: shorter texts copy for less than the look-up costs.
	internMin = 256
	// internMax bounds what the slots keep alive: at most internSlots × internMax bytes.
	internMax   = 16 << 10
	internSlots = 256
)

type internTable struct {
	seed  maphash.Seed
	seen  [1024]atomic.Uint64
	slots [internSlots]atomic.Pointer[string]
}

var contents = &internTable{seed: maphash.MakeSeed()}

// text returns string(b), the shared copy when b was seen before.
func (t *internTable) text(b []byte) string {
	if len(b) < internMin || len(b) > internMax {
		return string(b)
	}
	h := maphash.Bytes(t.seed, b)
	slot := &t.slots[h%internSlots]
	if p := slot.Load(); p != nil && *p == string(b) {
		return *p
	}
	s := string(b)
	seen := &t.seen[(h>>32)%uint64(len(t.seen))]
	if seen.Load() == h|1 {
		p := new(string)
		*p = s
		slot.Store(p)
	} else {
		seen.Store(h | 1)
	}
	return s
}
