package guard

import (
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/nyaruka/phonenumbers"

	"github.com/nself-org/ai-orchestration/dataplane/textmemo"
)

// PII types, as in the /api/ai/moderate contract and AIRoutePolicy guardrails.pii.types.
const (
	TypeEmail      = "email"
	TypePhone      = "phone"
	TypeCreditCard = "credit_card"
	TypeIBAN       = "iban"
	TypeSSN        = "ssn"
	TypeIPv4       = "ipv4"
	TypeIPv6       = "ipv6"
	TypeSecret     = "secret"
)

// AllTypes lists every PII type the detector knows, in a stable order.
var AllTypes = []string{TypeEmail, TypePhone, TypeCreditCard, TypeIBAN, TypeSSN, TypeIPv4, TypeIPv6, TypeSecret}

// Span is one detected piece of personal data. Start and End count Unicode code points of the
// text (End exclusive), as the /api/ai/moderate contract says, so that clients in any language
// can slice the input they sent.
type Span struct {
	Type  string `json:"type"`
	Start int    `json:"start"`
	End   int    `json:"end"`
}

// typeMask is a set of PII types as bits, so that the scanner can skip disabled extractors.
type typeMask uint16

const (
	maskEmail typeMask = 1 << iota
	maskPhone
	maskCard
	maskIBAN
	maskSSN
	maskIPv4
	maskIPv6
	maskSecret
	maskAll = maskEmail | maskPhone | maskCard | maskIBAN | maskSSN | maskIPv4 | maskIPv6 | maskSecret
)

var typeBits = map[string]typeMask{
	TypeEmail: maskEmail, TypePhone: maskPhone, TypeCreditCard: maskCard, TypeIBAN: maskIBAN,
	TypeSSN: maskSSN, TypeIPv4: maskIPv4, TypeIPv6: maskIPv6, TypeSecret: maskSecret,
}

// maskOf turns a list of type names into a mask; an empty list means every type. Unknown names
// are ignored here; the config compiler is where they are refused.
func maskOf(types []string) typeMask {
	if len(types) == 0 {
		return maskAll
	}
	var m typeMask
	for _, t := range types {
		m |= typeBits[t]
	}
	return m
}

// KnownType reports whether t is a PII type the detector knows.
func KnownType(t string) bool { _, ok := typeBits[t]; return ok }

// Bounds of the scanner. Every extractor looks at most contextBefore bytes before the position
// it starts from and at most its own bound after it; the streaming redactor relies on that
// locality to hold back only what a match can still span.
const (
	contextBefore  = 128       // email local part (64), keyword look-behind (32), run checks
	maxLocalPart   = 64        // RFC 5321
	maxDomain      = 253       // RFC 1035
	maxDigitRun    = 64        // a phone/card/SSN run with separators; longer runs are data
	maxTokenRun    = 512       // API keys and high-entropy tokens; longer runs are data (base64 blobs)
	maxJWT         = 8192      // header.payload.signature
	maxKeyBlock    = 16 * 1024 // a PEM private key block (RSA 4096 is ~3.3 KiB)
	maxIPv6        = 45        // longest textual IPv6 (IPv4-mapped)
	keywordWindow  = 32        // how far back "call", "SSN"… are looked for
	minEntropyLen  = 32        // high-entropy tokens shorter than this are not reported
	minEntropyBits = 4.0       // Shannon bits per character; random base64 of 32+ chars is ~4.7+
	minClassSwitch = 0.30      // share of adjacent characters of different classes (upper/lower/digit)
)

// Placeholder returns the typed redaction placeholder of a PII type, e.g. "[EMAIL]".
func Placeholder(typ string) string {
	return "[" + strings.ToUpper(typ) + "]"
}

// Detector finds personal data and secrets in text. It is safe for concurrent use.
type Detector struct {
	region string
	cc     int    // country calling code of region
	ndd    string // national (trunk) prefix of region, e.g. "0" or "1"

	phones     sync.Map // candidate text → phoneInfo
	phoneCount atomic.Int64

	memo *textmemo.Memo[typeMask, memoVal] // Redact's results for texts seen before (memo.go)
}

// DetectorOptions configures a [Detector].
type DetectorOptions struct {
	// DefaultRegion is the ISO 3166 region assumed for phone numbers written without a
	// country code ("(415) 555-2671"); default "US".
	DefaultRegion string
}

// NewDetector returns a detector.
func NewDetector(opts DetectorOptions) *Detector {
	region := strings.ToUpper(opts.DefaultRegion)
	if region == "" || !phonenumbers.GetSupportedRegions()[region] {
		region = "US"
	}
	return &Detector{
		region: region,
		cc:     phonenumbers.GetCountryCodeForRegion(region),
		ndd:    phonenumbers.GetNddPrefixForRegion(region, true),
		memo:   newMemo(),
	}
}

// Detect returns every piece of personal data of the given types (all types when none are
// given) in text, sorted by Start, never overlapping.
func (d *Detector) Detect(text string, types ...string) []Span {
	ms, _, _ := d.scan(text, 0, true, maskOf(types))
	return toSpans(text, ms)
}

// Redact replaces every piece of personal data of the given types (all when none) with its
// typed placeholder and returns the new text and what was found (offsets in the original text).
// Results for longer texts are remembered (memo.go): a repeated system prompt is scanned once.
func (d *Detector) Redact(text string, types ...string) (string, []Span) {
	return d.redactMemo(text, maskOf(types))
}

// redact is Redact without the memo.
func (d *Detector) redact(text string, mask typeMask) (string, []Span) {
	ms, _, _ := d.scan(text, 0, true, mask)
	if len(ms) == 0 {
		return text, nil
	}
	return redactBytes(text, ms), toSpans(text, ms)
}

// redactBytes writes text with every match replaced by its placeholder.
func redactBytes(text string, ms []match) string {
	var b strings.Builder
	b.Grow(len(text))
	last := 0
	for _, m := range ms {
		b.WriteString(text[last:m.start])
		b.WriteString(Placeholder(m.typ))
		last = m.end
	}
	b.WriteString(text[last:])
	return b.String()
}

// toSpans converts sorted byte matches to code-point spans in one walk over the text.
func toSpans(text string, ms []match) []Span {
	if len(ms) == 0 {
		return nil
	}
	out := make([]Span, len(ms))
	bytePos, runePos := 0, 0
	advance := func(to int) int {
		runePos += utf8.RuneCountInString(text[bytePos:to])
		bytePos = to
		return runePos
	}
	for i, m := range ms {
		out[i] = Span{Type: m.typ, Start: advance(m.start), End: advance(m.end)}
	}
	return out
}

// match is a candidate or accepted detection in byte offsets.
type match struct {
	typ        string
	start, end int
	prio       int
}

// unit is the extent an extractor examined to produce its candidates (a digit run, a token, an
// email). The streaming redactor never cuts inside a unit, so that the next window sees it whole.
type unit struct{ start, end int }

// Priorities break ties between candidates that start at the same byte: specific shapes win
// over generic ones.
const (
	prioEntropy = iota + 1
	prioPhone
	prioIPv4
	prioIPv6
	prioSSN
	prioCard
	prioIBAN
	prioEmail
	prioSecret
)

// scanner holds the state of one scan.
type scanner struct {
	d       *Detector
	s       string
	n       int
	final   bool
	mask    typeMask
	cands   []match
	units   []unit
	pending int
	// [noEndFrom, noEndTo) is known to contain no PEM end line.
	noEndFrom, noEndTo int
}

// scan finds candidates that start at or after from (bytes before from are context only),
// validates them and resolves overlaps. When final is false the text may continue: pending is
// the earliest start of anything that more text could still change (len(s) when nothing), and
// units are the extents examined, for the streaming redactor.
func (d *Detector) scan(s string, from int, final bool, mask typeMask) ([]match, int, []unit) {
	sc := scanner{d: d, s: s, n: len(s), final: final, mask: mask, pending: len(s)}
	sc.run(from)
	if !final {
		sc.trailingLocalPart(from)
	}
	ms := sc.cands[:0]
	for _, c := range sc.cands {
		if c.start >= from {
			ms = append(ms, c)
		}
	}
	return resolve(ms), sc.pending, sc.units
}

// resolve keeps non-overlapping candidates: the earliest start wins, then the higher priority,
// then the longer. Deciding left to right makes the outcome for a region depend only on
// candidates at or before it, which is what lets streamed redaction match one-shot redaction.
func resolve(ms []match) []match {
	if len(ms) < 2 {
		return ms
	}
	slices.SortFunc(ms, func(a, b match) int {
		if a.start != b.start {
			return a.start - b.start
		}
		if a.prio != b.prio {
			return b.prio - a.prio
		}
		return (b.end - b.start) - (a.end - a.start)
	})
	out := ms[:0]
	lastEnd := -1
	for _, m := range ms {
		if m.start >= lastEnd {
			out = append(out, m)
			lastEnd = m.end
		}
	}
	return out
}

func (sc *scanner) add(typ string, start, end, prio int) {
	sc.cands = append(sc.cands, match{typ: typ, start: start, end: end, prio: prio})
}

// truncated records that a unit starting at start ran into the end of a non-final text.
func (sc *scanner) truncated(start int) {
	if start < sc.pending {
		sc.pending = start
	}
}

func (sc *scanner) unit(start, end int) {
	if !sc.final && end > start {
		sc.units = append(sc.units, unit{start, end})
	}
}

// run is the single pass: every byte is looked at once, and an extractor runs only where its
// shape can start (an '@', a digit at a run start, a letter at a token start…). Most bytes of
// prose start nothing: bytes outside cStart are skipped with one table look-up, and so is the
// rest of a word once its first byte is handled, since every extractor that starts at a letter
// or digit needs a non-word byte before it (a word byte after a word byte starts nothing).
func (sc *scanner) run(from int) {
	s, n := sc.s, sc.n
	for i := from; i < n; i++ {
		c := s[i]
		k := classes[c]
		if k&cStart == 0 {
			continue
		}
		var prev byte
		if i > 0 {
			prev = s[i-1]
		}
		if k&cAlnum == 0 {
			switch c {
			case '@':
				if sc.mask&maskEmail != 0 {
					sc.email(i)
				}
			case '-':
				if sc.mask&maskSecret != 0 && (i == 0 || prev != '-') {
					sc.privateKey(i)
				}
			case '+', '(':
				if sc.mask&(maskPhone|maskCard|maskSSN) != 0 && digitRunStart(s, i) {
					if i+1 >= n {
						if !sc.final {
							sc.truncated(i)
						}
					} else if isDigit(s[i+1]) {
						sc.digitRun(i)
					}
				}
			case ':':
				if sc.mask&maskIPv6 != 0 && !isV6Context(prev) {
					sc.ipv6(i)
				}
			}
			continue
		}
		if k&cDigit != 0 {
			if sc.mask&(maskPhone|maskCard|maskSSN) != 0 && digitRunStart(s, i) {
				sc.digitRun(i)
			}
			if sc.mask&maskIPv4 != 0 && !isWord(prev) && prev != '.' {
				sc.ipv4(i)
			}
		}
		wordEnd := 0 // set when token has walked the word already
		if sc.mask&maskIPv6 != 0 && k&cHex != 0 && !isV6Context(prev) && v6Plausible(s, i) {
			sc.ipv6(i)
		}
		// "://" starts a token too: credentials in a URL (https://ghp_…@github.com).
		if (!isTokenChar(prev) && prev != '.') || (prev == '/' && i >= 3 && s[i-3:i] == "://") {
			if sc.mask&maskSecret != 0 {
				wordEnd = sc.token(i)
			}
			// An IBAN has digits in its third and fourth places; iban checks the rest.
			if sc.mask&maskIBAN != 0 && k&(cUpper|cLower) != 0 && (i+4 > n || isDigit(s[i+2])) {
				sc.iban(i)
			}
		}
		i = max(i, wordEnd-1)
		for i+1 < n && classes[s[i+1]]&cWord != 0 {
			i++
		}
	}
}

// ---- character classes ----------------------------------------------------------------------

// Character classes as bits of one lookup table: the scanner asks several of these per byte.
const (
	cDigit uint16 = 1 << iota
	cUpper
	cLower
	cHex
	cToken
	cLocal
	cDomain
	cSep
	cWord  // letters, digits and '_'
	cStart // a byte where some extractor can start: a letter, a digit, '@', '-', '+', '(' or ':'

	cAlnum = cDigit | cUpper | cLower
)

var classes = func() (t [256]uint16) {
	for c := 0; c < 256; c++ {
		b := byte(c)
		var k uint16
		switch {
		case b >= '0' && b <= '9':
			k |= cDigit | cHex
		case b >= 'A' && b <= 'Z':
			k |= cUpper
		case b >= 'a' && b <= 'z':
			k |= cLower
		}
		if (b|0x20) >= 'a' && (b|0x20) <= 'f' {
			k |= cHex
		}
		alnum := k&(cDigit|cUpper|cLower) != 0
		if alnum || b == '_' || b == '-' || b == '+' || b == '/' {
			k |= cToken
		}
		if alnum || b == '.' || b == '_' || b == '%' || b == '+' || b == '-' {
			k |= cLocal
		}
		if alnum || b == '.' || b == '-' {
			k |= cDomain
		}
		if b == ' ' || b == '-' || b == '.' || b == '(' || b == ')' || b == '/' {
			k |= cSep
		}
		if alnum || b == '_' {
			k |= cWord
		}
		if alnum || b == '@' || b == '-' || b == '+' || b == '(' || b == ':' {
			k |= cStart
		}
		t[c] = k
	}
	return t
}()

func isDigit(c byte) bool { return classes[c]&cDigit != 0 }
func isAlpha(c byte) bool { return classes[c]&(cUpper|cLower) != 0 }
func isUpper(c byte) bool { return classes[c]&cUpper != 0 }
func isLower(c byte) bool { return classes[c]&cLower != 0 }
func isAlnum(c byte) bool { return classes[c]&cAlnum != 0 }
func isWord(c byte) bool  { return classes[c]&cWord != 0 }
func isHex(c byte) bool   { return classes[c]&cHex != 0 }

// isTokenChar is the alphabet of API keys and base64/base64url blobs. The '=' of base64
// padding is not in it (it is absorbed at the end of a token), so that "KEY=sk-…" starts a
// token at the key.
func isTokenChar(c byte) bool { return classes[c]&cToken != 0 }

// isLocalChar is the (practical) alphabet of an email local part.
func isLocalChar(c byte) bool { return classes[c]&cLocal != 0 }

func isDomainChar(c byte) bool { return classes[c]&cDomain != 0 }

func isV6Context(prev byte) bool { return isWord(prev) || prev == ':' || prev == '.' }

// isDigitSep separates digit groups of phone numbers, cards and SSNs.
func isDigitSep(c byte) bool { return classes[c]&cSep != 0 }

// ---- email ----------------------------------------------------------------------------------

func (sc *scanner) email(at int) {
	s, n := sc.s, sc.n
	j := at
	for j > 0 && isLocalChar(s[j-1]) && at-j <= maxLocalPart {
		j--
	}
	runStart := j
	if at-j == 0 || at-j > maxLocalPart {
		return
	}
	for j < at && !isAlnum(s[j]) {
		j++ // a local part starts with a letter or digit in practice ("(john@…", "-john@…")
	}
	if j == at || s[at-1] == '.' {
		return
	}
	k := at + 1
	for k < n && isDomainChar(s[k]) && k-at-1 <= maxDomain {
		k++
	}
	sc.unit(runStart, k)
	if k == n && !sc.final {
		sc.truncated(runStart)
		return
	}
	if k-at-1 > maxDomain {
		return
	}
	end := k
	for end > at+1 && (s[end-1] == '.' || s[end-1] == '-') {
		end--
	}
	if validDomain(s[at+1 : end]) {
		sc.add(TypeEmail, j, end, prioEmail)
	}
}

// trailingLocalPart holds back the end of a non-final text that could still become the local
// part of an email once an '@' arrives.
func (sc *scanner) trailingLocalPart(from int) {
	j := sc.n
	for j > 0 && j > sc.n-maxLocalPart-1 && isLocalChar(sc.s[j-1]) {
		j--
	}
	if j < sc.n && sc.n-j <= maxLocalPart && j >= from {
		sc.truncated(j)
	}
}

func validDomain(d string) bool {
	if len(d) < 4 || strings.Contains(d, "..") {
		return false
	}
	labels := strings.Split(d, ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
	}
	tld := labels[len(labels)-1]
	if len(tld) < 2 {
		return false
	}
	for i := 0; i < len(tld); i++ {
		if !isAlpha(tld[i]) {
			return false
		}
	}
	return true
}

// ---- private keys ---------------------------------------------------------------------------

const pemBegin = "-----BEGIN "

func (sc *scanner) privateKey(at int) {
	s, n := sc.s, sc.n
	rest := s[at:]
	if !strings.HasPrefix(rest, pemBegin) {
		if !sc.final && len(rest) < len(pemBegin) && strings.HasPrefix(pemBegin, rest) {
			sc.truncated(at)
		}
		return
	}
	hdrEnd := -1
	limit := min(n, at+len(pemBegin)+64)
	if i := strings.Index(s[at+len(pemBegin):limit], "-----"); i >= 0 {
		hdrEnd = at + len(pemBegin) + i
	}
	if hdrEnd < 0 {
		if limit == n && !sc.final {
			sc.truncated(at)
		}
		return
	}
	label := s[at+len(pemBegin) : hdrEnd]
	if !strings.Contains(label, "PRIVATE KEY") {
		return
	}
	bodyStart := hdrEnd + len("-----")
	window := min(n, at+maxKeyBlock)
	endMarker := "-----END " + label + "-----"
	if i := sc.findPEMEnd(bodyStart, window, endMarker); i >= 0 {
		end := bodyStart + i + len(endMarker)
		sc.unit(at, end)
		sc.add(TypeSecret, at, end, prioSecret)
		return
	}
	if window == n && !sc.final {
		sc.truncated(at)
		return
	}
	// No end marker within reach (a truncated paste): redact the header and the base64 body.
	end := bodyStart
	for end < window && (isAlnum(s[end]) || strings.IndexByte("+/=\r\n\t ", s[end]) >= 0) {
		end++
	}
	for end > bodyStart && strings.IndexByte("\r\n\t ", s[end-1]) >= 0 {
		end--
	}
	sc.unit(at, end)
	sc.add(TypeSecret, at, end, prioSecret)
}

// findPEMEnd returns the offset of endMarker in s[from:to], or -1. It remembers the range it
// has seen to contain no "-----END " at all, so that a text full of BEGIN headers without END
// lines costs one pass rather than one 16 KiB search per header.
func (sc *scanner) findPEMEnd(from, to int, endMarker string) int {
	const anyEnd = "-----END "
	searchFrom := from
	if from >= sc.noEndFrom && from <= sc.noEndTo {
		searchFrom = max(from, sc.noEndTo-len(anyEnd)+1)
	}
	if searchFrom < to && strings.Contains(sc.s[searchFrom:to], anyEnd) {
		return strings.Index(sc.s[from:to], endMarker)
	}
	if !(from >= sc.noEndFrom && from <= sc.noEndTo) {
		sc.noEndFrom = from
	}
	sc.noEndTo = max(sc.noEndTo, to)
	return -1
}

// ---- digit runs: phone numbers, payment cards, SSNs -----------------------------------------

// insideDigitRun reports whether the digit at d continues a run that started earlier: up to
// three separator bytes back there is a digit. It mirrors exactly how digitRun extends a run,
// so that a scan starting mid-text (the streaming redactor's next window) agrees with one
// that started at the beginning.
func insideDigitRun(s string, d int) bool {
	j := d
	for k := 0; k < 3 && j > 0 && isDigitSep(s[j-1]); k++ {
		j--
	}
	return j > 0 && isDigit(s[j-1])
}

// digitRunStart reports whether a run of digits and separators starts at i: a digit, a '+'
// or a '(' followed by a digit, not glued to a word and not inside an earlier run.
func digitRunStart(s string, i int) bool {
	if i > 0 && isWord(s[i-1]) {
		return false
	}
	switch s[i] {
	case '+':
		return true
	case '(':
		return i+1 >= len(s) || !insideDigitRun(s, i+1)
	}
	if i > 0 && (s[i-1] == '+' || s[i-1] == '(') {
		return false // the run started at the '+' or '('
	}
	return !insideDigitRun(s, i)
}

type digitGroup struct{ start, end int }

func (sc *scanner) digitRun(at int) {
	s, n := sc.s, sc.n
	i := at
	plus := false
	if s[i] == '+' {
		plus = true
		i++
	} else if s[i] == '(' {
		i++
	}
	var groups [16]digitGroup
	ng := 0
	end := i
	for {
		gs := i
		for i < n && isDigit(s[i]) {
			i++
		}
		if i > gs {
			if ng == len(groups) {
				ng = len(groups) + 1 // too many groups: data, not a number
				break
			}
			groups[ng] = digitGroup{gs, i}
			ng++
			end = i
		}
		if i-at > maxDigitRun {
			break
		}
		j := i
		for j < n && j-i < 3 && isDigitSep(s[j]) {
			j++
		}
		if j < n && j > i && isDigit(s[j]) {
			i = j
			continue
		}
		if j == n && !sc.final {
			sc.unit(at, n)
			sc.truncated(at)
			return
		}
		break
	}
	// the run includes a closing parenthesis of its last group ("(415)") only for its unit
	sc.unit(at, end)
	if ng > len(groups) || end-at > maxDigitRun || ng == 0 {
		return
	}
	if end < n && (isAlpha(s[end]) || s[end] == '_') {
		return // "4111111111111111abc" is an identifier
	}
	sc.digitCandidates(at, plus, groups[:ng])
}

// digitCandidates tries the whole run, then shorter stretches of consecutive groups (longest
// first, leftmost first), keeping those that validate and do not overlap a better one.
func (sc *scanner) digitCandidates(at int, plus bool, groups []digitGroup) {
	type accepted struct{ a, b int }
	var taken []accepted
	for length := len(groups); length >= 1; length-- {
		for a := 0; a+length <= len(groups); a++ {
			b := a + length - 1
			overlap := false
			for _, t := range taken {
				if a <= t.b && b >= t.a {
					overlap = true
					break
				}
			}
			if overlap {
				continue
			}
			if sc.validateDigits(at, plus && a == 0, groups[a:b+1]) {
				taken = append(taken, accepted{a, b})
			}
		}
	}
}

func (sc *scanner) validateDigits(runStart int, plus bool, groups []digitGroup) bool {
	s := sc.s
	start, end := groups[0].start, groups[len(groups)-1].end
	if plus {
		start = runStart
	} else if start > 0 && s[start-1] == '(' {
		start--
	}
	var digits [maxDigitRun]byte
	nd := 0
	for _, g := range groups {
		nd += copy(digits[nd:], s[g.start:g.end])
	}
	ds := string(digits[:nd])
	if !plus {
		if sc.mask&maskCard != 0 && isCard(s, ds, groups) {
			sc.add(TypeCreditCard, groups[0].start, end, prioCard)
			return true
		}
		if sc.mask&maskSSN != 0 && sc.isSSN(ds, groups) {
			sc.add(TypeSSN, groups[0].start, end, prioSSN)
			return true
		}
	}
	if sc.mask&maskPhone != 0 && nd >= 7 && nd <= 17 && sc.isPhone(start, end, ds, plus, groups) {
		if end < len(s) && s[end] == ')' && s[start] == '(' {
			end++
		}
		sc.add(TypePhone, start, end, prioPhone)
		return true
	}
	return false
}

// separators returns the single separator used between all groups, or 0 when they differ or
// are longer than one byte.
func separator(s string, groups []digitGroup) byte {
	var sep byte
	for k := 1; k < len(groups); k++ {
		between := s[groups[k-1].end:groups[k].start]
		if len(between) != 1 || (sep != 0 && between[0] != sep) {
			return 0
		}
		sep = between[0]
	}
	return sep
}

// isCard: 13–19 digits, Luhn, a known issuer prefix, and a card-like grouping.
func isCard(s, ds string, groups []digitGroup) bool {
	if len(ds) < 13 || len(ds) > 19 || !luhn(ds) || !cardPrefix(ds) {
		return false
	}
	if len(groups) == 1 {
		return true
	}
	sep := separator(s, groups)
	if sep != ' ' && sep != '-' {
		return false
	}
	sizes := make([]int, len(groups))
	for i, g := range groups {
		sizes[i] = g.end - g.start
	}
	switch {
	case slices.Equal(sizes, []int{4, 6, 5}), slices.Equal(sizes, []int{4, 6, 4}):
		return true // American Express, Diners Club
	}
	for i, sz := range sizes {
		if sz != 4 && !(i == len(sizes)-1 && sz >= 1 && sz <= 4) {
			return false
		}
	}
	return true
}

func luhn(ds string) bool {
	sum := 0
	double := false
	for i := len(ds) - 1; i >= 0; i-- {
		d := int(ds[i] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

// cardPrefix recognizes issuer identification numbers of the major networks, so that a random
// 16-digit number that happens to pass Luhn (one in ten do) is not enough.
func cardPrefix(ds string) bool {
	p2, _ := strconv.Atoi(ds[:2])
	p3, _ := strconv.Atoi(ds[:3])
	p4, _ := strconv.Atoi(ds[:4])
	switch {
	case ds[0] == '4': // Visa
		return true
	case p2 >= 51 && p2 <= 55, p4 >= 2221 && p4 <= 2720: // Mastercard
		return len(ds) == 16
	case p2 == 34 || p2 == 37: // American Express
		return len(ds) == 15
	case p4 == 6011, p2 == 65, p3 >= 644 && p3 <= 649: // Discover
		return true
	case p4 >= 3528 && p4 <= 3589: // JCB
		return true
	case p3 >= 300 && p3 <= 305, p2 == 36, p2 == 38: // Diners Club
		return len(ds) >= 14
	case p2 == 62: // UnionPay
		return true
	case p2 == 50, p2 >= 56 && p2 <= 69: // Maestro
		return true
	}
	return false
}

// isSSN: a US Social Security number written AAA-GG-SSSS (or with spaces), or nine bare digits
// right after an "SSN" keyword; never area 000, 666 or 9xx, group 00 or serial 0000.
func (sc *scanner) isSSN(ds string, groups []digitGroup) bool {
	if len(ds) != 9 {
		return false
	}
	switch len(groups) {
	case 3:
		sep := separator(sc.s, groups)
		if (sep != '-' && sep != ' ') || groups[0].end-groups[0].start != 3 || groups[1].end-groups[1].start != 2 {
			return false
		}
	case 1:
		if !keywordBefore(sc.s, groups[0].start, ssnKeywords) {
			return false
		}
	default:
		return false
	}
	area, group, serial := ds[:3], ds[3:5], ds[5:]
	if area == "000" || area == "666" || area[0] == '9' || group == "00" || serial == "0000" {
		return false
	}
	// Numbers printed in advertising and used in examples everywhere.
	return ds != "078051120" && ds != "219099999" && ds != "123456789"
}

var (
	ssnKeywords   = []string{"ssn", "social security", "ss#", "ss #", "tin"}
	phoneKeywords = []string{"phone", "tel", "call", "mobile", "cell", "fax", "whatsapp", "sms", "text me", "reach me", "contact"}
	// versionKeywords precede dotted numbers that are versions, not IPv4 addresses.
	versionKeywords = []string{"version", "ver.", "release", "build", "firmware", "v."}
)

// keywordBefore reports whether one of the (lower-case) keywords occurs in the keywordWindow
// bytes before pos.
func keywordBefore(s string, pos int, keywords []string) bool {
	lo := max(0, pos-keywordWindow)
	var buf [keywordWindow]byte
	w := buf[:0]
	for i := lo; i < pos; i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		w = append(w, c)
	}
	win := string(w)
	for _, k := range keywords {
		if strings.Contains(win, k) {
			return true
		}
	}
	return false
}

// isPhone validates a candidate with libphonenumber, then checks that the candidate is written
// like a phone number: its digit grouping agrees with the number's national or international
// format (so "2024-01-15 10" is not a Washington DC number), and a bare run of digits without a
// '+' counts only after a word such as "call" or "phone".
func (sc *scanner) isPhone(start, end int, ds string, plus bool, groups []digitGroup) bool {
	if !plus && len(groups) == 1 && !keywordBefore(sc.s, start, phoneKeywords) {
		return false
	}
	info := sc.d.phoneLookup(sc.s[start:end], ds, plus)
	if !info.valid {
		return false
	}
	nsn, cc, ndd := info.nsn, info.cc, info.ndd
	prefix := ds[:len(ds)-len(nsn)]
	switch {
	case plus:
		if prefix != cc && prefix != cc+"0" {
			return false
		}
	case prefix == "", prefix == ndd, prefix == "00"+cc, prefix == "011"+cc, prefix == cc && cc == "1":
	default:
		return false
	}
	if len(groups) == 1 {
		return true
	}
	allowed := info.boundaries
	pos := -len(prefix)
	for _, g := range groups[:len(groups)-1] {
		pos += g.end - g.start
		if pos > 0 && pos < len(nsn) && !allowed[pos] {
			return false
		}
	}
	return true
}

// phoneInfo is what libphonenumber says about one candidate string.
type phoneInfo struct {
	valid      bool
	nsn, cc    string
	ndd        string
	boundaries map[int]bool
}

// phoneCacheSize bounds the cache of libphonenumber verdicts. Chat requests resend the whole
// conversation every turn, so the same numbers are validated again and again; the cache is
// simply emptied when full.
const phoneCacheSize = 4096

// phoneLookup runs libphonenumber on a candidate (after a cheap possible-length check), with
// its verdict cached by the candidate text.
func (d *Detector) phoneLookup(raw, ds string, plus bool) phoneInfo {
	if v, ok := d.phones.Load(raw); ok {
		return v.(phoneInfo)
	}
	var info phoneInfo
	if d.phonePossible(ds, plus) {
		if num, err := phonenumbers.Parse(raw, d.region); err == nil && phonenumbers.IsValidNumber(num) {
			nsn := phonenumbers.GetNationalSignificantNumber(num)
			if strings.HasSuffix(ds, nsn) {
				info = phoneInfo{
					valid: true,
					nsn:   nsn,
					cc:    strconv.Itoa(int(num.GetCountryCode())),
					ndd:   phonenumbers.GetNddPrefixForRegion(phonenumbers.GetRegionCodeForNumber(num), true),
				}
				info.boundaries = groupBoundaries(phonenumbers.Format(num, phonenumbers.INTERNATIONAL), len(nsn))
				for k := range groupBoundaries(phonenumbers.Format(num, phonenumbers.NATIONAL), len(nsn)) {
					info.boundaries[k] = true
				}
			}
		}
	}
	if d.phoneCount.Add(1) > phoneCacheSize {
		d.phones.Clear()
		d.phoneCount.Store(1)
	}
	d.phones.Store(raw, info)
	return info
}

// phonePossible is a cheap length check (libphonenumber's possible lengths per country) run
// before Parse and IsValidNumber, which are regexp-heavy (~30 µs): dates, IP addresses and
// order numbers rarely have a possible length for the country they would belong to.
func (d *Detector) phonePossible(ds string, plus bool) bool {
	try := func(cc int, nsn string) bool {
		if len(nsn) < 4 || len(nsn) > 17 {
			return false
		}
		v, err := strconv.ParseUint(nsn, 10, 64)
		if err != nil {
			return false
		}
		cc32 := int32(cc)
		num := &phonenumbers.PhoneNumber{CountryCode: &cc32, NationalNumber: &v}
		return phonenumbers.IsPossibleNumberWithReason(num) == phonenumbers.IS_POSSIBLE
	}
	international := func(rest string) bool {
		for l := 1; l <= 3 && l < len(rest); l++ {
			cc, _ := strconv.Atoi(rest[:l])
			if phonenumbers.GetRegionCodeForCountryCode(cc) == "ZZ" {
				continue
			}
			if try(cc, rest[l:]) || (rest[l] == '0' && try(cc, rest[l+1:])) {
				return true
			}
		}
		return false
	}
	if plus {
		return international(ds)
	}
	if try(d.cc, ds) || (d.ndd != "" && strings.HasPrefix(ds, d.ndd) && try(d.cc, ds[len(d.ndd):])) {
		return true
	}
	for _, idd := range []string{"00", "011"} {
		if strings.HasPrefix(ds, idd) && international(ds[len(idd):]) {
			return true
		}
	}
	return false
}

// groupBoundaries returns where a formatted number's digit groups end, as offsets into its
// national significant number (aligned at the end, since prefixes differ between formats).
func groupBoundaries(formatted string, nsnLen int) map[int]bool {
	var sizes []int
	run := 0
	for i := 0; i < len(formatted); i++ {
		if isDigit(formatted[i]) {
			run++
		} else if run > 0 {
			sizes = append(sizes, run)
			run = 0
		}
	}
	if run > 0 {
		sizes = append(sizes, run)
	}
	total := 0
	for _, sz := range sizes {
		total += sz
	}
	out := make(map[int]bool, len(sizes))
	pos := nsnLen - total
	for _, sz := range sizes {
		pos += sz
		if pos > 0 && pos < nsnLen {
			out[pos] = true
		}
	}
	return out
}

// ---- IP addresses ---------------------------------------------------------------------------

func (sc *scanner) ipv4(at int) {
	s, n := sc.s, sc.n
	i := at
	for part := 0; part < 4; part++ {
		ps := i
		for i < n && isDigit(s[i]) && i-ps < 4 {
			i++
		}
		if i == n && !sc.final {
			sc.unit(at, n)
			sc.truncated(at)
			return
		}
		if i == ps || i-ps > 3 {
			return
		}
		if part < 3 {
			if i >= n || s[i] != '.' {
				return
			}
			i++
		}
	}
	end := i
	sc.unit(at, end)
	// What follows must end the address: not more digits, letters or another ".digit".
	if end < n && (isWord(s[end]) || (s[end] == '.' && end+1 < n && isDigit(s[end+1]))) {
		return
	}
	if end < n && s[end] == '.' && end+1 == n && !sc.final {
		sc.truncated(at)
		return
	}
	addr, err := netip.ParseAddr(s[at:end])
	if err != nil || !addr.Is4() || keywordBefore(s, at, versionKeywords) {
		return
	}
	sc.add(TypeIPv4, at, end, prioIPv4)
}

// v6Plausible is a quick pre-check for words starting with a hex digit: an IPv6 address has a
// ':' after at most four hex digits. Words such as "be" or "decade" stop here.
func v6Plausible(s string, i int) bool {
	j := i
	for j < len(s) && j-i < 5 && isHex(s[j]) {
		j++
	}
	return j == len(s) || s[j] == ':'
}

func (sc *scanner) ipv6(at int) {
	s, n := sc.s, sc.n
	i := at
	colons, hex := 0, 0
	for i < n && i-at <= maxIPv6 && (isHex(s[i]) || s[i] == ':' || s[i] == '.') {
		switch {
		case s[i] == ':':
			colons++
		case isHex(s[i]):
			hex++
		}
		i++
	}
	sc.unit(at, i)
	if i == n && !sc.final {
		sc.truncated(at)
		return
	}
	if colons < 2 || i-at > maxIPv6 || (i < n && isWord(s[i])) {
		return
	}
	end := i
	for try := 0; try < 2; try++ {
		text := s[at:end]
		if addr, err := netip.ParseAddr(text); err == nil && addr.Is6() {
			if hex >= 2 || text == "::1" {
				sc.add(TypeIPv6, at, end, prioIPv6)
			}
			return
		}
		// "…::1." ends a sentence, "…::1:" introduces a list; try once without it.
		if last := s[end-1]; last == '.' || (last == ':' && end-2 >= at && s[end-2] != ':') {
			end--
			if last == ':' {
				colons--
			}
			continue
		}
		return
	}
}

// ---- tokens: API keys, JWTs, high-entropy strings -------------------------------------------

// keyPrefixes are vendor key formats: prefix, alphabet check of the rest, minimum and maximum
// length of the rest (0 = unbounded up to maxTokenRun).
var keyPrefixes = []struct {
	prefix   string
	alphabet func(byte) bool
	min, max int
}{
	{"sk-ant-", isKeyChar, 32, 0},     // Anthropic
	{"sk-proj-", isKeyChar, 20, 0},    // OpenAI project keys
	{"sk-svcacct-", isKeyChar, 20, 0}, // OpenAI service accounts
	{"sk-admin-", isKeyChar, 20, 0},   // OpenAI admin keys
	{"sk-", isKeyChar, 20, 0},         // OpenAI legacy, DeepSeek and friends
	{"AKIA", isUpperDigit, 16, 16},    // AWS access key id
	{"ASIA", isUpperDigit, 16, 16},    // AWS temporary access key id
	{"ghp_", isAlnum, 36, 255},        // GitHub personal token
	{"gho_", isAlnum, 36, 255},        // GitHub OAuth
	{"ghu_", isAlnum, 36, 255},        // GitHub user-to-server
	{"ghs_", isAlnum, 36, 255},        // GitHub server-to-server
	{"ghr_", isAlnum, 36, 255},        // GitHub refresh
	{"github_pat_", isWord, 22, 255},  // GitHub fine-grained token
	{"AIza", isKeyChar, 35, 35},       // Google API key
	{"xoxb-", isSlackChar, 10, 0},     // Slack bot
	{"xoxp-", isSlackChar, 10, 0},     // Slack user
	{"xoxa-", isSlackChar, 10, 0},     // Slack app
	{"xoxr-", isSlackChar, 10, 0},     // Slack refresh
	{"xoxs-", isSlackChar, 10, 0},     // Slack session
	{"xoxe-", isSlackChar, 10, 0},     // Slack config
	{"glpat-", isKeyChar, 20, 0},      // GitLab
	{"sk_live_", isAlnum, 24, 0},      // Stripe secret
	{"rk_live_", isAlnum, 24, 0},      // Stripe restricted
	{"hf_", isAlnum, 30, 0},           // Hugging Face
}

// keyPairs indexes keyPrefixes by their first two bytes, in their order (the first prefix that
// matches decides), so that a word tries only the few prefixes it could have, and most words
// none. Every prefix is at least two bytes long.
var keyPairs = func() map[uint16][]uint8 {
	t := make(map[uint16][]uint8)
	for i, kp := range keyPrefixes {
		k := uint16(kp.prefix[0])<<8 | uint16(kp.prefix[1])
		t[k] = append(t[k], uint8(i))
	}
	return t
}()

// keyPairBits is the set of keyPairs' keys as bits, so that the common case (no prefix) costs
// one table look-up rather than a map access.
var keyPairBits = func() (t [256][4]uint64) {
	for k := range keyPairs {
		a, b := k>>8, k&0xff
		t[a][b>>6] |= 1 << (b & 63)
	}
	return t
}()

func isKeyChar(c byte) bool    { return isWord(c) || c == '-' }
func isUpperDigit(c byte) bool { return isUpper(c) || isDigit(c) }
func isSlackChar(c byte) bool  { return isAlnum(c) || c == '-' }

// token examines the token starting at at. It returns where the run of word bytes at its start
// ends, which the main loop need not look at again.
func (sc *scanner) token(at int) (wordEnd int) {
	s, n := sc.s, sc.n
	i := at
	for i < n && isWord(s[i]) && i-at <= maxTokenRun {
		i++
	}
	wordEnd = i
	for i < n && isTokenChar(s[i]) && i-at <= maxTokenRun {
		i++
	}
	for pad := 0; pad < 2 && i < n && s[i] == '='; pad++ {
		i++
	}
	if s[at] == 'e' && strings.HasPrefix(s[at:], "eyJ") && sc.jwt(at) {
		return wordEnd
	}
	sc.unit(at, i)
	if i == n && !sc.final {
		sc.truncated(at)
		return wordEnd
	}
	if i-at > maxTokenRun {
		return wordEnd
	}
	tok := s[at:i]
	// Most words start with no vendor prefix's two bytes: one table look-up rules them out.
	if len(tok) >= 2 && keyPairBits[tok[0]][tok[1]>>6]&(1<<(tok[1]&63)) != 0 {
		if sc.vendorKey(tok, at, i) {
			return wordEnd
		}
	}
	// A random-looking token glued to an '@' is an email's local part; a vendor key before an
	// '@' (credentials in a URL) was reported above and wins over the email.
	if len(tok) >= minEntropyLen && !(i < n && s[i] == '@') && looksRandom(tok) {
		sc.add(TypeSecret, at, i, prioEntropy)
	}
	return wordEnd
}

// vendorKey checks tok (s[at:end]) against the vendor key formats whose first two bytes it has.
// It reports whether a prefix matched: the first one that matches decides, whether or not the
// rest of the token fits that vendor's format.
func (sc *scanner) vendorKey(tok string, at, end int) bool {
	for _, ki := range keyPairs[uint16(tok[0])<<8|uint16(tok[1])] {
		kp := &keyPrefixes[ki]
		if !strings.HasPrefix(tok, kp.prefix) {
			continue
		}
		rest := tok[len(kp.prefix):]
		if len(rest) < kp.min || (kp.max > 0 && len(rest) > kp.max) {
			return true
		}
		for k := 0; k < len(rest); k++ {
			if !kp.alphabet(rest[k]) {
				return true
			}
		}
		if strings.HasPrefix(kp.prefix, "sk-") && !hasLetterAndDigit(rest) {
			return true
		}
		sc.add(TypeSecret, at, end, prioSecret)
		return true
	}
	return false
}

func hasLetterAndDigit(s string) bool {
	var l, d bool
	for i := 0; i < len(s); i++ {
		l = l || isAlpha(s[i])
		d = d || isDigit(s[i])
	}
	return l && d
}

// jwt recognizes header.payload.signature where header and payload are base64url JSON objects
// ("eyJ" is base64 for `{"`). It reports whether it handled the unit.
func (sc *scanner) jwt(at int) bool {
	s, n := sc.s, sc.n
	i := at
	var parts [3]int
	p := 0
	for p < 3 {
		ps := i
		for i < n && isKeyChar(s[i]) && i-at <= maxJWT {
			i++
		}
		parts[p] = i - ps
		p++
		if i < n && s[i] == '.' && p < 3 {
			i++
			continue
		}
		break
	}
	if i == n && !sc.final {
		sc.unit(at, n)
		sc.truncated(at)
		return true
	}
	if p < 3 || parts[0] < 10 || parts[1] < 10 || i-at > maxJWT || !strings.HasPrefix(s[at+parts[0]+1:], "ey") {
		return false
	}
	end := i
	if i < n && (isTokenChar(s[i]) || s[i] == '.') {
		return false
	}
	sc.unit(at, end)
	sc.add(TypeSecret, at, end, prioSecret)
	return true
}

// looksRandom is the high-entropy heuristic: upper case, lower case and digits all present,
// Shannon entropy of at least minEntropyBits per character, and frequent switches between
// character classes. Hex digests (one case), UUIDs (dashes, hex) and long camelCase
// identifiers (few class switches) do not qualify; base64 key material does.
func looksRandom(tok string) bool {
	var counts [256]int
	var up, lo, dg, switches int
	prevClass := -1
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		counts[c]++
		class := 3
		switch {
		case isUpper(c):
			up++
			class = 0
		case isLower(c):
			lo++
			class = 1
		case isDigit(c):
			dg++
			class = 2
		}
		if prevClass >= 0 && class != prevClass {
			switches++
		}
		prevClass = class
	}
	if up < 2 || lo < 2 || dg < 2 {
		return false
	}
	if float64(switches)/float64(len(tok)-1) < minClassSwitch || wordLike(tok) {
		return false
	}
	var h float64
	total := float64(len(tok))
	for _, c := range counts {
		if c > 0 {
			p := float64(c) / total
			h -= p * math.Log2(p)
		}
	}
	return h >= minEntropyBits
}

// wordLike reports whether more than 40% of tok sits in runs of 4+ letters of one case, as in
// camelCase identifiers ("getUserAccountBalance2023"); random key material rarely has such
// runs (26/64 chance per character of staying lower case).
func wordLike(tok string) bool {
	covered, run, prevClass := 0, 0, 0
	flush := func() {
		if run >= 4 {
			covered += run
		}
		run = 0
	}
	for i := 0; i < len(tok); i++ {
		class := 0
		switch {
		case isUpper(tok[i]):
			class = 1
		case isLower(tok[i]):
			class = 2
		}
		if class == 0 || class != prevClass {
			flush()
		}
		if class != 0 {
			run++
		}
		prevClass = class
	}
	flush()
	return covered*10 > len(tok)*4
}

// ---- IBAN -----------------------------------------------------------------------------------

// ibanLengths is the registered IBAN length per country (SWIFT IBAN registry).
var ibanLengths = map[string]int{
	"AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
	"BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28,
	"EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
	"GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
	"IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
	"LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18,
	"NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24,
	"SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24,
	"TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}

func (sc *scanner) iban(at int) {
	s, n := sc.s, sc.n
	if at+4 > n {
		if !sc.final {
			sc.truncated(at)
		}
		return
	}
	if !isAlpha(s[at+1]) || !isDigit(s[at+2]) || !isDigit(s[at+3]) {
		return
	}
	want, ok := ibanLengths[strings.ToUpper(s[at:at+2])]
	if !ok {
		return
	}
	var buf [34]byte
	got := 0
	i := at
	for got < want {
		if i == n {
			if !sc.final {
				sc.unit(at, n)
				sc.truncated(at)
			}
			return
		}
		c := s[i]
		switch {
		case isAlnum(c):
			buf[got] = c
			got++
			i++
		case c == ' ' && i > at && isAlnum(s[i-1]) && i+1 < n && isAlnum(s[i+1]):
			i++
		case c == ' ' && i+1 == n && !sc.final:
			sc.unit(at, n)
			sc.truncated(at)
			return
		default:
			return
		}
	}
	sc.unit(at, i)
	if i == n && !sc.final {
		sc.truncated(at)
		return
	}
	if i < n && isWord(s[i]) {
		return
	}
	if ibanMod97(buf[:want]) == 1 {
		sc.add(TypeIBAN, at, i, prioIBAN)
	}
}

// ibanMod97 computes ISO 7064 mod 97-10 of the rearranged IBAN without big integers.
func ibanMod97(iban []byte) int {
	rem := 0
	feed := func(c byte) {
		switch {
		case isDigit(c):
			rem = (rem*10 + int(c-'0')) % 97
		default:
			v := int((c | 0x20) - 'a' + 10)
			rem = (rem*100 + v) % 97
		}
	}
	for _, c := range iban[4:] {
		feed(c)
	}
	for _, c := range iban[:4] {
		feed(c)
	}
	return rem
}
