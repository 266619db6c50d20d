package guard

import (
	"unicode/utf8"
)

// StreamRedactor redacts personal data from a streamed completion chunk by chunk. The
// concatenation of everything Write and Flush return equals [Detector.Redact] of the
// concatenated chunks, whatever the chunk boundaries: a value split across chunks is redacted
// as a whole and never leaks in pieces.
//
// It holds back only the tail that a match could still span: after each chunk the detector
// reports the earliest position that more text could change (an email's local part before its
// '@', a digit run at the end, an open private-key block…), and everything before it is
// released. Plain prose flows through with a lag of at most a word. A StreamRedactor is not
// safe for concurrent use; a stream has one writer.
type StreamRedactor struct {
	d    *Detector
	mask typeMask
	// buf holds context (bytes already released, kept for look-behind) followed by pending
	// bytes, which start at buf[from:].
	buf  []byte
	from int
	// found counts released redactions, for metrics.
	found int
	// scannedLen is len(buf) at the last scan.
	scannedLen int
}

// Redactions returns how many values have been redacted so far.
func (r *StreamRedactor) Redactions() int { return r.found }

// NewStreamRedactor returns a redactor for the given types (every type when none).
func NewStreamRedactor(d *Detector, types []string) *StreamRedactor {
	return &StreamRedactor{d: d, mask: maskOf(types)}
}

// Write adds a chunk and returns the redacted text that is now safe to send (possibly empty).
func (r *StreamRedactor) Write(chunk string) string {
	if chunk == "" {
		return ""
	}
	r.buf = append(r.buf, chunk...)
	// Holding back more than necessary is always safe, so when a long tail is pending (an open
	// private-key block can be 16 KiB) rescan only after it grew by a quarter: without this, a
	// stream of tiny chunks would rescan the whole tail per chunk.
	if held := len(r.buf) - r.from; held > 1024 && len(r.buf)-r.scannedLen < held/4 {
		return ""
	}
	return r.release(false)
}

// Flush ends the stream and returns the redacted rest.
func (r *StreamRedactor) Flush() string {
	out := r.release(true)
	r.buf, r.from, r.scannedLen = r.buf[:0], 0, 0
	return out
}

func (r *StreamRedactor) release(final bool) string {
	s := string(r.buf)
	ms, pending, units := r.d.scan(s, r.from, final, r.mask)
	cut := len(s)
	if !final {
		cut = min(cut, pending)
		// Never release half of a multi-byte character.
		for cut > r.from && cut < len(s) && !utf8.RuneStart(s[cut]) {
			cut--
		}
		if cut == len(s) {
			for k := 1; k <= utf8.UTFMax && k <= len(s)-r.from; k++ {
				if utf8.RuneStart(s[len(s)-k]) {
					if !utf8.FullRuneInString(s[len(s)-k:]) {
						cut = len(s) - k
					}
					break
				}
			}
		}
		// Never cut inside an examined unit or a match: the next window must see them whole.
		for moved := true; moved; {
			moved = false
			for _, u := range units {
				if u.start >= r.from && u.start < cut && u.end > cut {
					cut, moved = u.start, true
				}
			}
			for _, m := range ms {
				if m.start < cut && m.end > cut {
					cut, moved = m.start, true
				}
			}
		}
	}
	// Released bytes cannot be taken back; scan only reports positions before r.from when a
	// match would start in already-released context, which the cut rules above prevent.
	cut = max(cut, r.from)
	var out []byte
	last := r.from
	for _, m := range ms {
		if m.start >= cut {
			break
		}
		out = append(out, s[last:m.start]...)
		out = append(out, Placeholder(m.typ)...)
		last = m.end
		r.found++
	}
	out = append(out, s[last:cut]...)
	// Keep contextBefore bytes of look-behind before the new pending start.
	keepFrom := max(0, cut-contextBefore)
	r.buf = append(r.buf[:0], s[keepFrom:]...)
	r.from = cut - keepFrom
	r.scannedLen = len(r.buf)
	return string(out)
}
