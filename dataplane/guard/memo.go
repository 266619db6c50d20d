package guard

import (
	"slices"

	"github.com/nself-org/ai-orchestration/dataplane/textmemo"
)

// Redact remembers what it found in longer texts (package textmemo): a route's system prompt,
// resent on every request, is scanned once. The memo is keyed by the text and the type mask; the
// detector's region is fixed per Detector, which owns the memo. What a route does with the
// findings (flag, redact, block) is decided by the caller afterwards, so it is not part of the key.
const (
	// memoMinBytes: shorter texts scan in well under a microsecond; a look-up would not pay.
	memoMinBytes = 256
	// memoMaxBytes bounds the texts (and redacted copies) held, per Detector.
	memoMaxBytes = 16 << 20
	// memoMaxText: larger texts are scanned every time rather than evicting many smaller ones.
	memoMaxText = 256 << 10
	// memoEntryOverhead approximates the bookkeeping of one entry.
	memoEntryOverhead = 128
)

// memoVal is what Redact returns for the key's text; redacted is empty when nothing was found
// (the text itself is the answer then).
type memoVal struct {
	redacted string
	spans    []Span
}

func newMemo() *textmemo.Memo[typeMask, memoVal] {
	return textmemo.New[typeMask](textmemo.Options[memoVal]{
		MinText: memoMinBytes, MaxText: memoMaxText, MaxBytes: memoMaxBytes, EntryOverhead: memoEntryOverhead,
		Weigh: func(v memoVal) int { return len(v.redacted) + len(v.spans)*32 },
	})
}

// redactMemo is Redact through the memo.
func (d *Detector) redactMemo(text string, mask typeMask) (string, []Span) {
	if v, ok := d.memo.Get(mask, text); ok {
		if len(v.spans) == 0 {
			return text, nil
		}
		return v.redacted, slices.Clone(v.spans) // callers own what they get
	}
	redacted, spans := d.redact(text, mask)
	if d.memo.Holds(text) {
		v := memoVal{spans: slices.Clone(spans)}
		if len(spans) > 0 {
			v.redacted = redacted
		}
		d.memo.Offer(mask, text, v)
	}
	return redacted, spans
}
