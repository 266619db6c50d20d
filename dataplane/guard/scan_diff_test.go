package guard

import (
	"slices"
	"testing"
)

// runReference is the scanner's main loop as it was before the fast skips (every byte through
// the switch, every key prefix tried): the differential tests check that the fast loop finds
// exactly the same candidates, units and pending offset.
func (sc *scanner) runReference(from int) {
	s, n := sc.s, sc.n
	for i := from; i < n; i++ {
		c := s[i]
		var prev byte
		if i > 0 {
			prev = s[i-1]
		}
		switch {
		case c == '@':
			if sc.mask&maskEmail != 0 {
				sc.email(i)
			}
		case c == '-':
			if sc.mask&maskSecret != 0 && (i == 0 || prev != '-') {
				sc.privateKey(i)
			}
		case c == '+' || c == '(':
			if sc.mask&(maskPhone|maskCard|maskSSN) != 0 && digitRunStart(s, i) {
				if i+1 >= n {
					if !sc.final {
						sc.truncated(i)
					}
				} else if isDigit(s[i+1]) {
					sc.digitRun(i)
				}
			}
		case c == ':':
			if sc.mask&maskIPv6 != 0 && !isV6Context(prev) {
				sc.ipv6(i)
			}
		}
		if isAlnum(c) {
			if isDigit(c) {
				if sc.mask&(maskPhone|maskCard|maskSSN) != 0 && digitRunStart(s, i) {
					sc.digitRun(i)
				}
				if sc.mask&maskIPv4 != 0 && !isWord(prev) && prev != '.' {
					sc.ipv4(i)
				}
			}
			if sc.mask&maskIPv6 != 0 && isHex(c) && !isV6Context(prev) && v6Plausible(s, i) {
				sc.ipv6(i)
			}
			// "://" starts a token too: credentials in a URL (https://ghp_…@github.com).
			if (!isTokenChar(prev) && prev != '.') || (prev == '/' && i >= 3 && s[i-3:i] == "://") {
				if sc.mask&maskSecret != 0 {
					sc.token(i)
				}
				if sc.mask&maskIBAN != 0 && isAlpha(c) {
					sc.iban(i)
				}
			}
		}
	}
}

// scanBoth scans s from from with both loops and fails when they disagree in anything the
// callers see (candidates before resolution, pending, units).
func scanBoth(t *testing.T, d *Detector, s string, from int, final bool, mask typeMask) {
	t.Helper()
	fast := scanner{d: d, s: s, n: len(s), final: final, mask: mask, pending: len(s)}
	fast.run(from)
	ref := scanner{d: d, s: s, n: len(s), final: final, mask: mask, pending: len(s)}
	ref.runReference(from)
	if !slices.Equal(fast.cands, ref.cands) || fast.pending != ref.pending || !slices.Equal(fast.units, ref.units) {
		t.Fatalf("scan of %q from %d (final %v, mask %#x) differs:\nfast %+v pending %d units %v\nref  %+v pending %d units %v",
			s, from, final, mask, fast.cands, fast.pending, fast.units, ref.cands, ref.pending, ref.units)
	}
}

func TestFastScanAgreesWithReferenceOnCorpusAndSeeds(t *testing.T) {
	d := NewDetector(DetectorOptions{})
	texts := append([]string{benchPrompt, streamSample, loadSystem, loadUser(7)}, fuzzSeeds...)
	for _, c := range loadCorpus(t) {
		texts = append(texts, c.Text)
	}
	masks := []typeMask{maskAll, maskEmail, maskSecret, maskPhone | maskCard | maskSSN, maskIPv4 | maskIPv6, maskIBAN, maskAll &^ maskSecret}
	for _, s := range texts {
		for _, m := range masks {
			for _, final := range []bool{true, false} {
				for _, from := range []int{0, len(s) / 3, len(s) / 2} {
					scanBoth(t, d, s, from, final, m)
				}
			}
		}
	}
}

// FuzzFastScanAgreesWithReference compares the fast loop with the reference loop on arbitrary
// text, start offsets, finality and type masks.
func FuzzFastScanAgreesWithReference(f *testing.F) {
	for i, s := range fuzzSeeds {
		f.Add(s, uint16(i), false, uint8(maskAll))
	}
	f.Add("https://ghp_0123456789abcdefABCDEF0123456789abcd@github.com x_1.2.3.4 a-b+1 (415) 555", uint16(0), true, uint8(maskAll))
	d := NewDetector(DetectorOptions{})
	f.Fuzz(func(t *testing.T, text string, from uint16, final bool, mask uint8) {
		scanBoth(t, d, text, int(from)%(len(text)+1), final, typeMask(mask))
	})
}
