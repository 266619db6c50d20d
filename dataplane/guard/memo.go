package guard

import (
	"slices"
	"strings"

	"github.com/maypok86/otter/v2"
)

// Chat requests resend the same texts again and again: a route's fixed system prompt on every
// request, and the whole conversation on every turn. Redact remembers what it found in longer
// texts, so that a text it has seen costs one hash and one comparison instead of a scan.
//
// The entry is keyed by the text itself (compared in full on a hit, so a hit is never a
// different text) and the type mask; the detector's region is fixed per Detector, which owns
// the memo. What a route does with the findings (flag, redact, block) is decided by the caller
// afterwards, so it is not part of the key. A text enters the memo when it comes a second time
// (admit.go), so one-off texts are not copied. The memo is bounded by bytes and evicts by
// frequency and recency (W-TinyLFU), so a stream of one-off user messages does not push out
// the system prompts that keep coming back.
const (
	// memoMinBytes: shorter texts scan in well under a microsecond; a look-up would not pay.
	memoMinBytes = 256
	// memoMaxBytes bounds the texts (and redacted copies) held, per Detector.
	memoMaxBytes = 16 << 20
	// memoMaxText: larger texts are scanned every time rather than evicting many smaller ones.
	memoMaxText = 256 << 10
	// memoEntryOverhead approximates the bookkeeping of one entry, so that the bound holds
	// even for texts near memoMinBytes.
	memoEntryOverhead = 128
)

type memoKey struct {
	mask typeMask
	text string
}

// memoVal is what Redact returns for the key's text; redacted is empty when nothing was found
// (the text itself is the answer then).
type memoVal struct {
	redacted string
	spans    []Span
}

func newMemo() *otter.Cache[memoKey, memoVal] {
	return otter.Must(&otter.Options[memoKey, memoVal]{
		MaximumWeight: memoMaxBytes,
		Weigher: func(k memoKey, v memoVal) uint32 {
			return uint32(len(k.text) + len(v.redacted) + len(v.spans)*32 + memoEntryOverhead)
		},
	})
}

// redactMemo is Redact through the memo.
func (d *Detector) redactMemo(text string, mask typeMask) (string, []Span) {
	if len(text) < memoMinBytes || len(text) > memoMaxText {
		return d.redact(text, mask)
	}
	if v, ok := d.memo.GetIfPresent(memoKey{mask, text}); ok {
		if len(v.spans) == 0 {
			return text, nil
		}
		return v.redacted, slices.Clone(v.spans) // callers own what they get
	}
	redacted, spans := d.redact(text, mask)
	if !d.seen.again(text) {
		return redacted, spans
	}
	v := memoVal{spans: slices.Clone(spans)}
	if len(spans) > 0 {
		v.redacted = redacted
	}
	// The text is copied: the caller's string may share memory with a whole request body that
	// the memo must not keep alive.
	d.memo.Set(memoKey{mask, strings.Clone(text)}, v)
	return redacted, spans
}
