package tokens

import (
	"math"
	"math/bits"
	"reflect"
	"unicode"
	"unicode/utf8"
	"unsafe"

	"github.com/tiktoken-go/tokenizer"
)

// fastCodec counts o200k_base and cl100k_base tokens exactly like the tiktoken-go codec, without
// its regexp engine: the encoding's pre-tokenizer pattern is matched by hand (below, alternative
// by alternative, with the same backtracking outcome as the library's engine, quirks included),
// and each piece is byte-pair merged with the codec's own vocabulary. The regexp engine allocated a match object, a rune copy of the input
// and a string per piece, and was most of the gateway's CPU per request; this does no
// allocation for pieces shorter than mergeHeapThreshold.
type fastCodec struct {
	vocab map[string]uint
	piece func(s string, i int) (end int, match bool)
	// pieces remembers the counts of short pieces (piececache.go); nil counts every piece.
	pieces *pieceCache
}

// newFastCodec borrows the vocabulary map of the library's codec (an unexported field: read
// through reflection, checked for its exact type, so a library change disables the fast path
// instead of misreading memory). It returns nil when that is not possible.
func newFastCodec(c tokenizer.Codec) *fastCodec {
	var piece func(string, int) (int, bool)
	switch c.GetName() {
	case "o200k_base":
		piece = o200kPiece
	case "cl100k_base":
		piece = cl100kPiece
	default:
		return nil
	}
	v := reflect.ValueOf(c)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return nil
	}
	f := v.Elem().FieldByName("vocabulary")
	want := reflect.TypeFor[map[string]uint]()
	if !f.IsValid() || f.Kind() != reflect.Map || f.Type().Key() != want.Key() || f.Type().Elem() != want.Elem() {
		return nil
	}
	m := *(*map[string]uint)(unsafe.Pointer(f.UnsafeAddr()))
	if len(m) == 0 {
		return nil
	}
	return &fastCodec{vocab: m, piece: piece, pieces: newPieceCache(pieceCacheBuckets)}
}

// count returns the number of tokens of text; ok is false for text that is not valid UTF-8,
// which the regexp engine reads differently (as U+FFFD runes): the caller falls back to it.
func (f *fastCodec) count(text string) (n int, ok bool) {
	if !utf8.ValidString(text) {
		return 0, false
	}
	for i := 0; i < len(text); {
		end, match := f.piece(text, i)
		if match {
			n += f.countPiece(text, i, end)
		}
		i = end
	}
	return n, true
}

// encode returns the token ids of text (tests compare them with the library's Encode).
func (f *fastCodec) encode(text string) []uint {
	var ids []uint
	for i := 0; i < len(text); {
		end, match := f.piece(text, i)
		if !match {
			i = end
			continue
		}
		piece := text[i:end]
		if id, ok := f.vocab[piece]; ok {
			ids = append(ids, id)
		} else {
			parts := f.mergeParts(piece)
			for k := 0; k+1 < len(parts); k++ {
				ids = append(ids, f.vocab[piece[parts[k]:parts[k+1]]])
			}
		}
		i = end
	}
	return ids
}

// Character classes of the o200k_base pattern.
const (
	clUpper   = 1 << iota // [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]
	clLower               // [\p{Ll}\p{Lm}\p{Lo}\p{M}]
	clLetter              // \p{L}
	clNumber              // \p{N}
	clSpace               // \s (unicode.IsSpace, as regexp2 defines it)
	clNewline             // [\r\n]
	// clNone marks U+007F, which the library's compiled pattern matches with no alternative
	// (it skips it: no token), unlike tiktoken's reference; mirrored so counts stay identical.
	clNone
)

var asciiClass = func() (t [utf8.RuneSelf]uint8) {
	for r := rune(0); r < utf8.RuneSelf; r++ {
		t[r] = classify(r)
	}
	return t
}()

func classify(r rune) uint8 {
	var c uint8
	switch {
	case unicode.IsUpper(r) || unicode.IsTitle(r):
		c |= clUpper | clLetter
	case unicode.IsLower(r):
		c |= clLower | clLetter
	case unicode.In(r, unicode.Lm, unicode.Lo):
		c |= clUpper | clLower | clLetter
	case unicode.IsMark(r):
		c |= clUpper | clLower
	case unicode.IsNumber(r):
		c |= clNumber
	}
	if unicode.IsSpace(r) {
		c |= clSpace
	}
	if r == '\r' || r == '\n' {
		c |= clNewline
	}
	if r == 0x7f {
		c |= clNone
	}
	return c
}

// at returns the class and width of the rune at s[i] (i < len(s)). The call is not inlined
// (the inliner prices the call to atRune too high), so the loops over runs of runes repeat
// its ASCII case themselves: prompts are mostly ASCII and those loops were most of the
// pre-tokenizer's time.
func at(s string, i int) (uint8, int) {
	if b := s[i]; b < utf8.RuneSelf {
		return asciiClass[b], 1
	}
	return atRune(s, i)
}

func atRune(s string, i int) (uint8, int) {
	r, w := utf8.DecodeRuneInString(s[i:])
	return classify(r), w
}

// o200kPiece returns the end of the pre-tokenizer piece starting at s[i] (match false: the
// rune at s[i] starts no piece and is skipped, as the library does), following
//
//	[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?
//	|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?
//	|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+
//
// trying the alternatives in order, as a backtracking engine does. Every rune of valid UTF-8
// starts some alternative, so the pieces tile the text.
func o200kPiece(s string, i int) (end int, match bool) {
	if j := asciiWordStart(s, i); j >= 0 {
		// [U]*[L]+ and [U]+[L]* (whichever matches) both take the ASCII uppers, then the
		// lowers, that follow; then a contraction may follow.
		k := j
		for k < len(s) && 'A' <= s[k] && s[k] <= 'Z' {
			k++
		}
		k = asciiRun(s, k, 0)
		if k == len(s) || s[k] < utf8.RuneSelf {
			if k < len(s) && s[k] == '\'' {
				k = contraction(s, k)
			}
			return k, true
		}
		// A letter or a mark may follow: the general case decides.
	}
	c0, w0 := at(s, i)
	if c0&clNone != 0 {
		return i + w0, false
	}
	prefix := c0&(clNewline|clLetter|clNumber|clNone) == 0
	// Alternatives 1 and 2, with the optional prefix first, then without it.
	if prefix && i+w0 < len(s) {
		if end := letters1(s, i+w0); end >= 0 {
			return contraction(s, end), true
		}
	}
	if end := letters1(s, i); end >= 0 {
		return contraction(s, end), true
	}
	if prefix && i+w0 < len(s) {
		if end := letters2(s, i+w0); end >= 0 {
			return contraction(s, end), true
		}
	}
	if end := letters2(s, i); end >= 0 {
		return contraction(s, end), true
	}
	if c0&clNumber != 0 {
		return numbers(s, i, w0), true
	}
	// ' ?[^\s\p{L}\p{N}]+[\r\n/]*'
	j := i
	if s[i] == ' ' {
		j++
	}
	if end := symbols(s, j); end > j {
		for end < len(s) && (s[end] == '\r' || s[end] == '\n' || s[end] == '/') {
			end++
		}
		return end, true
	}
	return spaces(s, i, w0)
}

// cl100kPiece is [o200kPiece] for cl100k_base's pattern
//
//	(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
func cl100kPiece(s string, i int) (end int, match bool) {
	if j := asciiWordStart(s, i); j >= 0 && s[i] != '\'' {
		// [^\r\n\p{L}\p{N}]?\p{L}+ (a quote could start a contraction: the general case)
		k := asciiRun(s, j, 0x20)
		if k == len(s) || s[k] < utf8.RuneSelf {
			return k, true
		}
	}
	c0, w0 := at(s, i)
	if c0&clNone != 0 {
		return i + w0, false
	}
	if s[i] == '\'' {
		if end := contraction(s, i); end > i {
			return end, true
		}
	}
	// [^\r\n\p{L}\p{N}]?\p{L}+
	if c0&(clNewline|clLetter|clNumber|clNone) == 0 && i+w0 < len(s) {
		if end := letterRun(s, i+w0); end > i+w0 {
			return end, true
		}
	}
	if end := letterRun(s, i); end > i {
		return end, true
	}
	if c0&clNumber != 0 {
		return numbers(s, i, w0), true
	}
	// ' ?[^\s\p{L}\p{N}]+[\r\n]*'
	j := i
	if s[i] == ' ' {
		j++
	}
	if end := symbols(s, j); end > j {
		for end < len(s) && (s[end] == '\r' || s[end] == '\n') {
			end++
		}
		return end, true
	}
	return spaces(s, i, w0)
}

// asciiWordStart is the pre-tokenizers' shortcut for the common case of prose: at s[i], an
// ASCII letter, or an ASCII character that may prefix a word ([^\r\n\p{L}\p{N}], such as a
// space) followed by an ASCII letter. It returns where the letters start, or -1 for anything
// else, which takes the general case. The callers take the letters' run as long as it ends in
// ASCII too: for ASCII, the pattern's letter classes are [A-Z] (upper) and [a-z] (lower).
func asciiWordStart(s string, i int) int {
	c := s[i]
	if c >= utf8.RuneSelf {
		return -1
	}
	if asciiClass[c]&clLetter != 0 {
		return i
	}
	if asciiClass[c]&(clNewline|clNumber|clNone) == 0 && i+1 < len(s) {
		if d := s[i+1]; d < utf8.RuneSelf && asciiClass[d]&clLetter != 0 {
			return i + 1
		}
	}
	return -1
}

// asciiRun returns the end of the run of bytes [a-z] (fold 0), or [A-Za-z] (fold 0x20), that
// starts at s[k]. Eight bytes at a time where the text allows: word lengths vary too much for
// a byte loop's exit to be predicted.
func asciiRun(s string, k int, fold uint64) int {
	const (
		ones = 0x0101010101010101
		high = 0x8080808080808080
	)
	for k+8 <= len(s) {
		x := le64(s, k) | fold*ones
		// Per byte, without carries between bytes: the high bit of geA is set when the byte is
		// ≥ 'a', of leZ when its low seven bits are ≤ 'z', of ^x when it is ASCII.
		geA := (x | high) - 'a'*ones
		leZ := ('z'|0x80)*ones - (x &^ high)
		if out := ^(geA & leZ &^ x) & high; out != 0 {
			return k + bits.TrailingZeros64(out)/8
		}
		k += 8
	}
	for k < len(s) && 'a' <= s[k]|byte(fold) && s[k]|byte(fold) <= 'z' {
		k++
	}
	return k
}

// numbers matches \p{N}{1,3} at s[i:] (the rune at i, of width w0, is a number).
func numbers(s string, i, w0 int) int {
	end := i + w0
	for k := 1; k < 3 && end < len(s); k++ {
		c, w := at(s, end)
		if c&clNumber == 0 {
			break
		}
		end += w
	}
	return end
}

// spaces matches the pattern's last three alternatives at s[i:]: \s*[\r\n]+|\s+(?!\S)|\s+.
func spaces(s string, i, w0 int) (end int, match bool) {
	runEnd, firstNL, lastStart, runes := i, -1, i, 0
	for runEnd < len(s) {
		c, w := at(s, runEnd)
		if c&clSpace == 0 {
			break
		}
		if c&clNewline != 0 && firstNL < 0 {
			firstNL = runEnd
		}
		lastStart = runEnd
		runEnd += w
		runes++
	}
	switch {
	case runes == 0:
		return i + w0, false // unreachable for valid UTF-8; never loop forever
	case firstNL >= 0:
		// \s*[\r\n]+: the library's engine ends this piece with the first run of line
		// breaks (" \n \n" is two pieces), where tiktoken's reference takes the last; mirrored.
		end := firstNL
		for end < len(s) && (s[end] == '\r' || s[end] == '\n') {
			end++
		}
		return end, true
	case runEnd == len(s): // \s+(?!\S) at the end of the text
		return runEnd, true
	case runes >= 2: // \s+(?!\S): leave the last space to the next piece
		return lastStart, true
	}
	return runEnd, true // \s+
}

// runOf returns the end of the run of runes of class mask that starts at s[k:] (k when none).
func runOf(s string, k int, mask uint8) int {
	for k < len(s) {
		c, w := asciiClass[s[k]&(utf8.RuneSelf-1)], 1 // at(s, k), by hand (see at)
		if s[k] >= utf8.RuneSelf {
			c, w = atRune(s, k)
		}
		if c&mask == 0 {
			break
		}
		k += w
	}
	return k
}

// letterRun matches \p{L}+ at s[j:], returning its end (j when nothing matched).
func letterRun(s string, j int) int { return runOf(s, j, clLetter) }

// letters1 matches [U]*[L]+ at s[j:] (U, L: the upper and lower classes), returning its end or -1.
func letters1(s string, j int) int {
	k := j
	lastLower, lastLowerEnd := -1, -1
	for k < len(s) {
		c, w := asciiClass[s[k]&(utf8.RuneSelf-1)], 1 // at(s, k), by hand (see at)
		if s[k] >= utf8.RuneSelf {
			c, w = atRune(s, k)
		}
		if c&clUpper == 0 {
			break
		}
		if c&clLower != 0 {
			lastLower, lastLowerEnd = k, k+w
		}
		k += w
	}
	if k < len(s) {
		if c, _ := at(s, k); c&clLower != 0 {
			return runOf(s, k, clLower) // [L]+ takes the greedy run after the greedy [U]*
		}
	}
	// Backtrack: [U]* gives back runes until one that is also in L can start [L]+; the rune
	// after it is in U but not in L (or the run's end), so [L]+ is that one rune.
	if lastLower < 0 {
		return -1
	}
	return lastLowerEnd
}

// letters2 matches [U]+[L]* at s[j:], returning its end or -1.
func letters2(s string, j int) int {
	k := runOf(s, j, clUpper)
	if k == j {
		return -1
	}
	return runOf(s, k, clLower)
}

// symbols matches [^\s\p{L}\p{N}]+ at s[j:], returning its end (j when nothing matched).
func symbols(s string, j int) int {
	k := j
	for k < len(s) {
		c, w := at(s, k)
		if c&(clSpace|clLetter|clNumber|clNone) != 0 {
			break
		}
		k += w
	}
	return k
}

// contraction extends end over (?i:'s|'t|'re|'ve|'m|'ll|'d) when it follows.
func contraction(s string, end int) int {
	if end >= len(s) || s[end] != '\'' {
		return end
	}
	rest := s[end+1:]
	if rest == "" {
		return end
	}
	lower := func(b byte) byte { return b | 0x20 }
	switch lower(rest[0]) {
	case 's', 't', 'm', 'd':
		return end + 2
	case 'r', 'v':
		if len(rest) >= 2 && lower(rest[1]) == 'e' {
			return end + 3
		}
	case 'l':
		if len(rest) >= 2 && lower(rest[1]) == 'l' {
			return end + 3
		}
	}
	if len(rest) >= 2 && rest[0] == 0xC5 && rest[1] == 0xBF { // ſ (U+017F) folds to s
		return end + 3
	}
	return end
}

// countPiece is the number of tokens byte-pair encoding gives the piece text[i:end], from the
// piece cache when it is short.
func (f *fastCodec) countPiece(text string, i, end int) int {
	piece := text[i:end]
	if n := len(piece); n <= maxCachedPiece && n > 0 && f.pieces != nil {
		var k [3]uint64
		if i+maxCachedPiece <= len(text) {
			// Most pieces are followed by enough text to load three whole words and mask
			// off what follows the piece, without branches on its length.
			m := &pieceMasks[n]
			k = [3]uint64{le64(text, i) & m[0], le64(text, i+8) & m[1], le64(text, i+16) & m[2]}
		} else {
			k = packPiece(piece)
		}
		if c, ok := f.pieces.get(&k, n); ok {
			return c
		}
		c := f.mergeCount(piece)
		f.pieces.put(&k, n, c)
		return c
	}
	return f.mergeCount(piece)
}

// mergeCount is [fastCodec.countPiece] without the cache.
func (f *fastCodec) mergeCount(piece string) int {
	if _, ok := f.vocab[piece]; ok {
		return 1
	}
	if len(piece) >= mergeHeapThreshold {
		return len(f.mergeHeap(piece)) - 1
	}
	var buf [mergeHeapThreshold + 1]int
	return len(f.mergeScan(piece, &buf)) - 1
}

// mergeHeapThreshold matches the library's switch from the quadratic scan to the heap.
const mergeHeapThreshold = 96

// mergeParts returns the boundaries (byte offsets, first 0, last len(piece)) of the tokens
// byte-pair merging gives piece: repeatedly merge the adjacent pair whose concatenation has
// the lowest rank, leftmost first — tiktoken's algorithm, as the library implements it.
func (f *fastCodec) mergeParts(piece string) []int {
	if len(piece) >= mergeHeapThreshold {
		return f.mergeHeap(piece)
	}
	var buf [mergeHeapThreshold + 1]int
	return append([]int(nil), f.mergeScan(piece, &buf)...)
}

// mergeScan is the quadratic merge for short pieces, in a caller-provided buffer (no
// allocation): buf holds the boundaries, ranks the rank of merging each with the next.
func (f *fastCodec) mergeScan(piece string, buf *[mergeHeapThreshold + 1]int) []int {
	var rbuf [mergeHeapThreshold + 1]uint
	parts, ranks := buf[:len(piece)+1], rbuf[:len(piece)+1]
	for i := range parts {
		parts[i], ranks[i] = i, math.MaxUint
	}
	rank := func(i, skip int) uint {
		if i+skip+2 < len(parts) {
			if r, ok := f.vocab[piece[parts[i]:parts[i+skip+2]]]; ok {
				return r
			}
		}
		return math.MaxUint
	}
	for i := 0; i < len(parts)-2; i++ {
		ranks[i] = rank(i, 0)
	}
	for len(parts) > 1 {
		minRank, minIdx := uint(math.MaxUint), 0
		for i, r := range ranks[:len(parts)-1] {
			if r < minRank {
				minRank, minIdx = r, i
			}
		}
		if minRank == math.MaxUint {
			break
		}
		ranks[minIdx] = rank(minIdx, 1)
		if minIdx > 0 {
			ranks[minIdx-1] = rank(minIdx-1, 1)
		}
		parts = append(parts[:minIdx+1], parts[minIdx+2:]...)
		ranks = append(ranks[:minIdx+1], ranks[minIdx+2:]...)
	}
	return parts
}

// mergeHeap is the O(n log n) form of the same merge for long pieces (a linked list of
// boundaries and a min-heap of candidate pairs ordered by rank, then offset).
func (f *fastCodec) mergeHeap(piece string) []int {
	const noRank = math.MaxUint32
	type node struct {
		prev, next int32
		rank       uint32
	}
	type cand struct {
		rank uint32
		off  int32
	}
	n := int32(len(piece))
	nodes := make([]node, n+1)
	for i := range nodes {
		nodes[i] = node{prev: int32(i) - 1, next: int32(i) + 1, rank: noRank}
	}
	nodes[n].next = -1
	rankOf := func(i int32) uint32 {
		j := nodes[i].next
		if j < 0 {
			return noRank
		}
		k := nodes[j].next
		if k < 0 {
			return noRank
		}
		if r, ok := f.vocab[piece[i:k]]; ok {
			return uint32(r)
		}
		return noRank
	}
	less := func(a, b cand) bool { return a.rank < b.rank || a.rank == b.rank && a.off < b.off }
	var h []cand
	up := func(i int) {
		for i > 0 {
			p := (i - 1) / 2
			if !less(h[i], h[p]) {
				break
			}
			h[i], h[p] = h[p], h[i]
			i = p
		}
	}
	down := func(i int) {
		for {
			l, m := 2*i+1, i
			if l < len(h) && less(h[l], h[m]) {
				m = l
			}
			if r := l + 1; r < len(h) && less(h[r], h[m]) {
				m = r
			}
			if m == i {
				return
			}
			h[i], h[m] = h[m], h[i]
			i = m
		}
	}
	for i := int32(0); i+2 <= n; i++ {
		if r := rankOf(i); r != noRank {
			nodes[i].rank = r
			h = append(h, cand{r, i})
		}
	}
	for i := len(h)/2 - 1; i >= 0; i-- {
		down(i)
	}
	for len(h) > 0 {
		top := h[0]
		last := len(h) - 1
		h[0] = h[last]
		h = h[:last]
		if len(h) > 0 {
			down(0)
		}
		i := top.off
		if nodes[i].rank != top.rank {
			continue
		}
		j := nodes[i].next
		k := nodes[j].next
		nodes[j].rank = noRank
		nodes[i].next = k
		if k >= 0 {
			nodes[k].prev = i
		}
		for _, b := range [2]int32{i, nodes[i].prev} {
			if b < 0 {
				continue
			}
			nodes[b].rank = rankOf(b)
			if nodes[b].rank != noRank {
				h = append(h, cand{nodes[b].rank, b})
				up(len(h) - 1)
			}
		}
	}
	var out []int
	for i := int32(0); i >= 0; i = nodes[i].next {
		out = append(out, int(i))
	}
	return out
}
