package cache

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/nself-org/ai-orchestration/dataplane/providers"
)

// Entry is one served reply as stored in the cache.
type Entry struct {
	// Content is the full reply text (for a stream, the concatenated deltas as served).
	Content      string
	Model        string
	Provider     string
	FinishReason string
	// Usage is the original call's usage; a hit reports it but costs nothing.
	Usage providers.Usage
	// Chunks are the deltas of a streamed reply, in order; nil for a reply that was not
	// streamed. See [Entry.StreamChunks].
	Chunks []string
	// Embeddings are the vectors of an embeddings reply, in input order.
	Embeddings [][]float32
	// CreatedAt is when the reply was served (kept to the nanosecond, UTC).
	CreatedAt time.Time
}

// StreamChunks returns the deltas to replay a hit as a stream: the recorded ones, or the whole
// content as one delta when the reply was stored from a non-streamed call (streamed and
// non-streamed requests share keys, so either can answer the other).
func (e *Entry) StreamChunks() []string {
	if len(e.Chunks) > 0 {
		return e.Chunks
	}
	if e.Content == "" {
		return nil
	}
	return []string{e.Content}
}

// ErrCorrupt is returned by [Entry.UnmarshalBinary] for bytes that are not an entry of a known
// version; callers treat it as a miss.
var ErrCorrupt = errors.New("corrupt cache entry")

// Wire format: the 4-byte magic "AIC" + version, then the fields in a fixed order. Strings
// and lists are uvarint-length-prefixed; integers are varints; floats are little-endian
// float32 bits. A new version gets a new magic; an unknown one decodes as ErrCorrupt.
var entryMagic = [4]byte{'A', 'I', 'C', 1}

// MarshalBinary encodes the entry.
func (e *Entry) MarshalBinary() ([]byte, error) {
	size := 64 + len(e.Content) + len(e.Model) + len(e.Provider) + len(e.FinishReason)
	for _, c := range e.Chunks {
		size += len(c) + binary.MaxVarintLen32
	}
	for _, v := range e.Embeddings {
		size += 4*len(v) + binary.MaxVarintLen32
	}
	b := make([]byte, 0, size)
	b = append(b, entryMagic[:]...)
	b = appendString(b, e.Content)
	b = appendString(b, e.Model)
	b = appendString(b, e.Provider)
	b = appendString(b, e.FinishReason)
	b = binary.AppendVarint(b, e.Usage.PromptTokens)
	b = binary.AppendVarint(b, e.Usage.CompletionTokens)
	b = binary.AppendVarint(b, e.Usage.CachedPromptTokens)
	var created int64
	if !e.CreatedAt.IsZero() {
		created = e.CreatedAt.UnixNano()
	}
	b = binary.AppendVarint(b, created)
	b = binary.AppendUvarint(b, uint64(len(e.Chunks)))
	for _, c := range e.Chunks {
		b = appendString(b, c)
	}
	b = binary.AppendUvarint(b, uint64(len(e.Embeddings)))
	for _, v := range e.Embeddings {
		b = binary.AppendUvarint(b, uint64(len(v)))
		for _, f := range v {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(f))
		}
	}
	return b, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// UnmarshalBinary decodes an entry written by [Entry.MarshalBinary]. Every length is checked
// against the bytes left, so corrupt or hostile input cannot make it allocate more than the
// input's size or panic.
func (e *Entry) UnmarshalBinary(data []byte) error {
	// One copy of the input backs every decoded string (a stream has hundreds of chunks), and
	// the entry does not pin the KV's buffer.
	d := decoder{b: data, all: string(data), n: len(data)}
	if len(data) < len(entryMagic) || [4]byte(data[:4]) != entryMagic {
		return fmt.Errorf("%w: unknown magic or version", ErrCorrupt)
	}
	d.b = d.b[4:]
	var out Entry
	out.Content = d.string()
	out.Model = d.string()
	out.Provider = d.string()
	out.FinishReason = d.string()
	out.Usage.PromptTokens = d.varint()
	out.Usage.CompletionTokens = d.varint()
	out.Usage.CachedPromptTokens = d.varint()
	if created := d.varint(); created != 0 {
		out.CreatedAt = time.Unix(0, created).UTC()
	}
	if n := d.count(1); n > 0 {
		out.Chunks = make([]string, n)
		for i := range out.Chunks {
			out.Chunks[i] = d.string()
		}
	}
	if n := d.count(1); n > 0 {
		out.Embeddings = make([][]float32, n)
		for i := range out.Embeddings {
			dims := d.count(4)
			v := make([]float32, dims)
			for j := range v {
				v[j] = math.Float32frombits(d.uint32())
			}
			out.Embeddings[i] = v
		}
	}
	if d.err != nil {
		return d.err
	}
	if len(d.b) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(d.b))
	}
	*e = out
	return nil
}

// decoder reads fields and remembers the first error; after an error every read returns zero.
type decoder struct {
	b   []byte
	all string // a copy of the whole input; strings are sliced from it
	n   int    // len(all)
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: truncated or invalid %s", ErrCorrupt, what)
	}
	d.b = nil
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("length")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("integer")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a list length whose elements take at least minSize bytes each.
func (d *decoder) count(minSize int) int {
	n := d.uvarint()
	if n > uint64(len(d.b)/minSize) {
		d.fail("list length")
		return 0
	}
	return int(n)
}

func (d *decoder) string() string {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail("string")
		return ""
	}
	start := d.n - len(d.b)
	s := d.all[start : start+int(n)]
	d.b = d.b[n:]
	return s
}

func (d *decoder) uint32() uint32 {
	if d.err != nil || len(d.b) < 4 {
		d.fail("float")
		return 0
	}
	v := binary.LittleEndian.Uint32(d.b)
	d.b = d.b[4:]
	return v
}
