package tokens

import (
	"math/bits"
	"math/rand/v2"
	"sync/atomic"
)

// pieceCache remembers how many tokens short pieces byte-pair encode to. Prompts are made of a
// few thousand distinct words that recur across requests (" the", " request"), while the
// vocabulary they are looked up in is a map of 100–200k strings spread over megabytes, so that
// nearly every look-up of a new message's pieces missed the CPU caches. This table is small
// enough to stay in the L2 cache and answers with one cache line (the table is allocated as
// a large object, page-aligned, so buckets do not straddle lines).
//
// It is a fixed array of 64-byte buckets of two entries, each entry four atomic words: a
// header (length, count, a write version, a write lock) and the piece's bytes. Nothing in it
// is a pointer, so the garbage collector never scans it, and its size never changes. Readers
// take no lock: they read the header, compare the piece word by word, and read the header
// again; a write in between changes the version, and the reader then counts as on a miss. A
// writer claims the entry with a compare-and-swap on the header and gives up when another
// holds it (an insert is only an optimisation). A hit compares the whole piece and its length,
// never a hash alone, so an answer is always this piece's count.
type pieceCache struct {
	buckets []pieceBucket
	shift   uint // 64 - log2(len(buckets))
	seed    uint64
}

// pieceCacheBuckets is the size of each encoding's table: 8192 buckets × 64 B = 512 KiB
// (16384 pieces), 1 MiB for both encodings, allocated only for an encoding that is used.
const pieceCacheBuckets = 8192

// maxCachedPiece is the longest piece cached: three words of bytes. Longer pieces are rare in
// prose (a long identifier, a run of symbols) and are counted every time.
const maxCachedPiece = 24

type pieceBucket [2]pieceEntry

// pieceEntry: hdr is 0 when empty, else version<<32 | lock<<15 | count<<8 | length; the piece
// is packed little-endian into key, zero-padded (the length tells padding from NUL bytes).
type pieceEntry struct {
	hdr atomic.Uint64
	key [3]atomic.Uint64
}

const (
	hdrLock    = 1 << 15
	hdrVersion = 1 << 32
)

func newPieceCache(buckets int) *pieceCache {
	if buckets&(buckets-1) != 0 || buckets < 2 {
		panic("tokens: piece cache size must be a power of two")
	}
	return &pieceCache{
		buckets: make([]pieceBucket, buckets),
		shift:   uint(64 - bits.TrailingZeros(uint(buckets))),
		// Seeded per process, so that no input can be crafted to make pieces collide
		// everywhere (a collision costs only a miss, but a miss is what the cache avoids).
		seed: rand.Uint64(),
	}
}

// packPiece packs piece (1..maxCachedPiece bytes) into three little-endian words, reading
// each byte once through overlapping loads instead of a byte loop.
func packPiece(p string) (k [3]uint64) {
	n := len(p)
	full := n / 8
	for i := range full {
		k[i] = le64(p, 8*i)
	}
	rest := n - 8*full
	switch {
	case rest == 0:
	case full > 0:
		// The last 8 bytes end with the rest; shift out the bytes already packed.
		k[full] = le64(p, n-8) >> (8 * (8 - rest))
	case rest >= 4:
		k[0] = le32(p, 0) | le32(p, n-4)<<(8*(rest-4)) // the overlapping bytes are the same in both
	default:
		k[0] = uint64(p[0]) | uint64(p[rest/2])<<(8*(rest/2)) | uint64(p[rest-1])<<(8*(rest-1))
	}
	return k
}

// pieceMasks[n] keeps the first n bytes of three little-endian words.
var pieceMasks = func() (t [maxCachedPiece + 1][3]uint64) {
	for n := range t {
		for b := range n {
			t[n][b/8] |= 0xff << (8 * (b % 8))
		}
	}
	return t
}()

// le64 and le32 read s[i:i+8] and s[i:i+4] little-endian (the compiler makes each one load).
func le64(s string, i int) uint64 {
	s = s[i : i+8]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

func le32(s string, i int) uint64 {
	s = s[i : i+4]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24
}

func (c *pieceCache) bucket(k *[3]uint64, n int) *pieceBucket {
	h := (k[0] ^ c.seed) * 0x9e3779b97f4a7c15
	h ^= (k[1] + uint64(n)) * 0xc2b2ae3d27d4eb4f
	h ^= k[2] * 0x165667b19e3779f9
	h ^= h >> 29
	h *= 0xbf58476d1ce4e5b9
	return &c.buckets[h>>c.shift]
}

// get returns the cached count of the piece of n bytes that packs to k.
func (c *pieceCache) get(k *[3]uint64, n int) (int, bool) {
	b := c.bucket(k, n)
	for i := range b {
		e := &b[i]
		h := e.hdr.Load()
		if h&(hdrLock|0xff) != uint64(n) {
			continue // another piece's length, empty, or being written
		}
		// (| and ^ bind equally in Go: the parentheses matter.)
		if (e.key[0].Load()^k[0])|(e.key[1].Load()^k[1])|(e.key[2].Load()^k[2]) != 0 || e.hdr.Load() != h {
			continue // another piece, or rewritten while read (the key may be another's)
		}
		return int(h>>8) & 0x7f, true
	}
	return 0, false
}

// put records count (≤ n ≤ maxCachedPiece) for the piece that packs to k, evicting the other
// piece of an occupied entry.
func (c *pieceCache) put(k *[3]uint64, n, count int) {
	b := c.bucket(k, n)
	e := &b[0]
	if h0 := b[0].hdr.Load(); h0 != 0 && (b[1].hdr.Load() == 0 || rand.Uint32()&1 == 1) {
		e = &b[1] // fill the empty entry first, else evict either at random
	}
	h := e.hdr.Load()
	if h&hdrLock != 0 || !e.hdr.CompareAndSwap(h, h|hdrLock) {
		return // another goroutine is writing this entry
	}
	for i := range k {
		e.key[i].Store(k[i])
	}
	// The next version (wrapping after 2³² writes of this entry, far more than can happen
	// while a reader is between its two loads of the header).
	e.hdr.Store((h&^(hdrVersion-1) + hdrVersion) | uint64(count)<<8 | uint64(n))
}
