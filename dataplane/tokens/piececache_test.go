package tokens

import (
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
	"unsafe"

	"github.com/stretchr/testify/require"
	"github.com/tiktoken-go/tokenizer"

	"github.com/nself-org/ai-orchestration/internal/loadtext"
)

// withCache returns the codec of enc counting with a piece cache of the given buckets, and the
// same codec counting without one.
func withCache(t testing.TB, enc tokenizer.Encoding, buckets int) (cached, uncached *fastCodec) {
	_, f := lib(t, enc)
	plain := *f
	plain.pieces = nil
	f.pieces = newPieceCache(buckets)
	return f, &plain
}

// randomText mixes what prompts are made of: prose, the tricky palette, random ASCII words
// (short and long pieces, many of the same length), digits and random runes.
func randomText(r *rand.Rand) string {
	var b strings.Builder
	for k := r.IntN(40); k >= 0; k-- {
		switch r.IntN(5) {
		case 0:
			b.WriteString(loadtext.Prose(1+r.IntN(80), r.IntN(100)))
		case 1:
			b.WriteString(palette[r.IntN(len(palette))])
		case 2:
			if r.IntN(2) == 0 {
				b.WriteByte(" \n'-."[r.IntN(5)])
			}
			for n := 1 + r.IntN(30); n > 0; n-- {
				b.WriteByte("abcdeXYZ"[r.IntN(8)])
			}
		case 3:
			for n := 1 + r.IntN(6); n > 0; n-- {
				b.WriteByte('0' + byte(r.IntN(10)))
			}
		default:
			if c := rune(r.IntN(0x3000)); utf8.ValidRune(c) {
				b.WriteRune(c)
			}
		}
	}
	return b.String()
}

func TestPieceCacheGivesTheCountsOfTheMerge(t *testing.T) {
	for _, enc := range encodings {
		// Two buckets: pieces collide and evict each other all the time, so every hit must
		// be told apart from another piece of the same length by its bytes.
		for _, buckets := range []int{2, 64, pieceCacheBuckets} {
			cached, plain := withCache(t, enc, buckets)
			r := rand.New(rand.NewPCG(uint64(buckets), 7))
			for range 4000 {
				s := randomText(r)
				want, ok := plain.count(s)
				require.True(t, ok)
				got, ok := cached.count(s)
				require.True(t, ok)
				require.Equal(t, want, got, "%s, %d buckets: text %q", enc, buckets, s)
			}
			for seed := range 200 {
				s := loadtext.Prose(512, seed)
				want, _ := plain.count(s)
				got, _ := cached.count(s)
				require.Equal(t, want, got, "%s, %d buckets: prose %d", enc, buckets, seed)
			}
		}
	}
}

// Pieces of the same length differing in one byte, at every position, through a table so
// small that they share buckets: each must get its own count, never its neighbour's.
func TestPieceCacheTellsPiecesOfTheSameLengthApart(t *testing.T) {
	for _, enc := range encodings {
		cached, plain := withCache(t, enc, 2)
		for n := 1; n <= maxCachedPiece; n++ {
			for pos := range n {
				for _, c := range []byte{'a', 'q', 'Z', '!', '0', ' '} {
					p := []byte(strings.Repeat("x", n))
					p[pos] = c
					// Alone (packed near the end of the text) and followed by more text.
					for _, s := range []string{string(p), string(p) + "\n" + strings.Repeat("!", 30)} {
						want, _ := plain.count(s)
						got, _ := cached.count(s)
						require.Equal(t, want, got, "%s: %q", enc, s)
					}
				}
			}
		}
	}
}

func TestPieceKeysPackTheSameWherePiecesLie(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 2000 {
		text := make([]byte, 1+r.IntN(60))
		for i := range text {
			text[i] = byte(r.UintN(256))
		}
		s := string(text)
		for i := range s {
			for n := 1; n <= maxCachedPiece && i+n <= len(s); n++ {
				k := packPiece(s[i : i+n])
				var want [3]uint64
				for b := range n {
					want[b/8] |= uint64(s[i+b]) << (8 * (b % 8))
				}
				require.Equal(t, want, k, "%q", s[i:i+n])
				if i+maxCachedPiece <= len(s) {
					m := &pieceMasks[n]
					within := [3]uint64{le64(s, i) & m[0], le64(s, i+8) & m[1], le64(s, i+16) & m[2]}
					require.Equal(t, want, within, "%q in %q", s[i:i+n], s)
				}
			}
		}
	}
}

func TestPieceCacheRemembersShortPiecesOnly(t *testing.T) {
	cached, _ := withCache(t, tokenizer.O200kBase, 64)
	short := " request"
	long := " " + strings.Repeat("abcdefgh", 4) // 33 bytes: longer than maxCachedPiece
	for _, p := range []string{short, long} {
		_, ok := cached.count(p)
		require.True(t, ok)
	}
	k := packPiece(short)
	n, ok := cached.pieces.get(&k, len(short))
	require.True(t, ok, "a short piece is cached once counted")
	require.Equal(t, 1, n)
	held := 0
	for i := range cached.pieces.buckets {
		for e := range cached.pieces.buckets[i] {
			if h := cached.pieces.buckets[i][e].hdr.Load(); h != 0 {
				held++
				require.LessOrEqual(t, int(h&0xff), maxCachedPiece)
			}
		}
	}
	require.Equal(t, 1, held, "only the short piece is held")
}

func TestPieceCacheIsBoundedAndPointerFree(t *testing.T) {
	require.Equal(t, uintptr(64), unsafe.Sizeof(pieceBucket{}), "a bucket is one cache line")
	require.True(t, pointerFree(reflect.TypeFor[pieceBucket]()), "the garbage collector has nothing to scan in the table")
	f := fastFor(O200kBase)
	require.NotNil(t, f.pieces, "the counters use the cache")
	require.Len(t, f.pieces.buckets, pieceCacheBuckets)
	require.Equal(t, 512<<10, len(f.pieces.buckets)*int(unsafe.Sizeof(pieceBucket{})), "512 KiB per encoding")
	require.Panics(t, func() { newPieceCache(3) })
}

func pointerFree(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Array:
		return t.Len() == 0 || pointerFree(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if !pointerFree(t.Field(i).Type) {
				return false
			}
		}
		return true
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return true
	}
	return false
}

// Many goroutines count through one small table (constant eviction and rewrites of the
// entries others are reading): run with -race. Counts must equal the uncached ones.
func TestPieceCacheUnderConcurrency(t *testing.T) {
	for _, enc := range encodings {
		cached, plain := withCache(t, enc, 4)
		r := rand.New(rand.NewPCG(9, 9))
		texts := make([]string, 300)
		want := make([]int, len(texts))
		for i := range texts {
			texts[i] = randomText(r)
			want[i], _ = plain.count(texts[i])
		}
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				for k := range 3 * len(texts) {
					i := (g*37 + k) % len(texts)
					if got, _ := cached.count(texts[i]); got != want[i] {
						t.Errorf("%s: text %q: got %d want %d", enc, texts[i], got, want[i])
						return
					}
				}
			})
		}
		wg.Wait()
	}
}

// FuzzCountMatchesTheLibrary: for any valid UTF-8 text, both encodings count with the piece
// cache (a small, shared one, and the default) exactly as the library's codec and as the same
// counter without the cache.
func FuzzCountMatchesTheLibrary(f *testing.F) {
	for _, p := range palette {
		f.Add(p + " " + p)
	}
	f.Add(loadtext.Prose(512, 3))
	f.Add("Request bench-12: " + loadtext.Prose(200, 1))
	f.Add("HTTPServer getHTTPResponseCode I'LL don't cafe\u0301 ſ 123456")
	type codecs struct {
		lib           tokenizer.Codec
		small, plain  *fastCodec
		defaultCached *fastCodec
	}
	var all []codecs
	for _, enc := range encodings {
		c, def := lib(f, enc)
		small, plain := withCache(f, enc, 2)
		all = append(all, codecs{c, small, plain, def})
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return
		}
		for _, c := range all {
			want, err := c.lib.Count(s)
			require.NoError(t, err)
			for _, fc := range []*fastCodec{c.plain, c.small, c.defaultCached, c.small} {
				got, ok := fc.count(s)
				require.True(t, ok)
				require.Equal(t, want, got, "%s: text %q", c.lib.GetName(), s)
			}
		}
	})
}

// The parts of the entry protocol that readers rely on: an entry being written is not read,
// a writer does not write an entry another holds, and every write gives a new version.
func TestPieceEntriesAreVersionedAndLocked(t *testing.T) {
	c := newPieceCache(2)
	k := packPiece(" token")
	c.put(&k, 6, 1)
	e := entryOf(t, c, &k, 6)
	h := e.hdr.Load()
	got, ok := c.get(&k, 6)
	require.True(t, ok)
	require.Equal(t, 1, got)

	e.hdr.Store(h | hdrLock) // as a writer holding it leaves it
	_, ok = c.get(&k, 6)
	require.False(t, ok, "an entry being written is a miss")
	other := sameBucket(t, c, " token")
	for range 64 { // whichever entry put picks, the held one keeps its key
		c.put(&other, 6, 2)
	}
	require.Equal(t, k[0], e.key[0].Load(), "a held entry is not written")
	e.hdr.Store(h)

	for range 64 { // rewrite both entries of the bucket, at random
		c.put(&k, 6, 1)
		c.put(&other, 6, 2)
	}
	b := c.bucket(&k, 6)
	for i := range b {
		require.Greater(t, b[i].hdr.Load()>>32, h>>32, "rewrites give new versions")
		require.Zero(t, b[i].hdr.Load()&hdrLock)
	}
}

// sameBucket returns the key of another piece of the same length in the bucket of piece.
func sameBucket(t *testing.T, c *pieceCache, piece string) [3]uint64 {
	k := packPiece(piece)
	for i := range 1000 {
		p := []byte(piece)
		p[len(p)-1] = byte('a' + i%26)
		p[len(p)-2] = byte('a' + i/26%26)
		if o := packPiece(string(p)); o != k && c.bucket(&o, len(p)) == c.bucket(&k, len(p)) {
			return o
		}
	}
	t.Fatal("no piece shares the bucket")
	return k
}

func entryOf(t *testing.T, c *pieceCache, k *[3]uint64, n int) *pieceEntry {
	t.Helper()
	b := c.bucket(k, n)
	for i := range b {
		if h := b[i].hdr.Load(); h&0xff == uint64(n) && b[i].key[0].Load() == k[0] {
			return &b[i]
		}
	}
	t.Fatalf("%x not cached", k)
	return nil
}
