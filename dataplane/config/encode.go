package config

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
)

// LogValue implements slog.LogValuer so that a Secret logged through slog is redacted too.
func (Secret) LogValue() slog.Value { return slog.StringValue("[REDACTED]") }

// ComputeHash returns the hex SHA-256 of the snapshot encoded with an empty Hash. Encoding is
// deterministic because every list is sorted by the compiler and struct fields have fixed order.
// The encoding is encoding/json's, written by [appendSnapshot] (see canonical.go).
func (s *Snapshot) ComputeHash() (string, error) {
	buf := getBuffer()
	defer putBuffer(buf)
	*buf = appendSnapshot(slices.Grow((*buf)[:0], int(min(lastEncodedSize.Load(), maxPooledBuffer))), s, "")
	lastEncodedSize.Store(int64(len(*buf)))
	sum := sha256.Sum256(*buf)
	return hex.EncodeToString(sum[:]), nil
}

// Seal sets Version and Hash.
func (s *Snapshot) Seal() error {
	s.Version = SchemaVersion
	h, err := s.ComputeHash()
	if err != nil {
		return err
	}
	s.Hash = h
	return nil
}

// Encode returns the gzip-compressed JSON of the snapshot, as stored in the snapshot Secret.
func Encode(s *Snapshot) ([]byte, error) {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	enc := json.NewEncoder(zw)
	if err := enc.Encode(s); err != nil {
		return nil, fmt.Errorf("failed to encode snapshot: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("failed to compress snapshot: %w", err)
	}
	return buf.Bytes(), nil
}

// maxDecoded bounds decompression so that a corrupted or hostile Secret cannot exhaust memory.
const maxDecoded = 256 << 20

// Decode strictly decodes gzip-compressed (or plain) snapshot JSON, checks the schema version
// and that Hash matches the content.
//
// Its contract is that of decoding with encoding/json (a Decoder that disallows unknown fields,
// reading one value from the decompressed stream and ignoring what follows it) and comparing
// Hash with [Snapshot.ComputeHash]. That costs ~100 ms for 10 000 budgets, most of it in
// encoding/json's reflection, so a snapshot as the controllers write it takes a shorter way with
// the same outcome: [parseSnapshot] reads it, and the value read, encoded again, must be exactly
// the bytes it came from. Those bytes are then what encoding/json writes for that value, which
// it decodes back to the same value, so encoding/json would have decoded the same snapshot; and
// the encoding is the hash input. Anything else (other formatting, unknown fields, a corrupt or
// truncated stream, invalid UTF-8) takes the encoding/json way, whose value or error is
// returned. decode_test.go holds Decode to the encoding/json way on a differential table and by
// fuzzing.
func Decode(b []byte) (*Snapshot, error) {
	data := b
	var readErr error
	if len(b) >= 2 && b[0] == 0x1f && b[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("failed to decompress snapshot: %w", err)
		}
		// The decompressed bytes are not kept (every decoded string is a copy), so their buffer
		// goes back to the pool.
		buf := getBuffer()
		defer putBuffer(buf)
		*buf, readErr = readAll((*buf)[:0], io.LimitReader(zr, maxDecoded), decodedSizeHint(b))
		data = *buf
	} else if len(data) > maxDecoded {
		data = data[:maxDecoded]
	}
	if readErr == nil {
		if s, hash, ok := decodeCanonical(data); ok {
			return s, verify(s, func() (string, error) { return hash, nil })
		}
	}
	// The stream as encoding/json's Decoder saw it when it read the decompressor itself: the
	// bytes, then the decompressor's error, which it reports only if the value needs more bytes.
	var r io.Reader = bytes.NewReader(data)
	if readErr != nil {
		r = io.MultiReader(r, errReader{readErr})
	}
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var s Snapshot
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("failed to decode snapshot: %w", err)
	}
	return &s, verify(&s, s.ComputeHash)
}

// verify checks the version, then that Hash is hash.
func verify(s *Snapshot, hash func() (string, error)) error {
	if s.Version != SchemaVersion {
		return fmt.Errorf("snapshot version %q is not %q: refusing it", s.Version, SchemaVersion)
	}
	want, err := hash()
	if err != nil {
		return err
	}
	if want != s.Hash {
		return fmt.Errorf("snapshot hash %q does not match its content (%q): refusing it", s.Hash, want)
	}
	return nil
}

// decodeCanonical reads data as [parseSnapshot] and reports whether data starts with exactly the
// encoding of the value read (see [Decode]). It also returns the hash of that value.
func decodeCanonical(data []byte) (*Snapshot, string, bool) {
	s, ok := parseSnapshot(data)
	if !ok {
		return nil, "", false
	}
	buf := getBuffer()
	defer putBuffer(buf)
	enc := appendSnapshot(slices.Grow((*buf)[:0], len(data)), s, "")
	*buf = enc
	// enc is data with "" in place of the hash: compare the part before the hash, the hash,
	// then the rest.
	head := len(`{"version":`) + len(appendString(nil, s.Version)) + len(`,"hash":`)
	hash := appendString(nil, s.Hash)
	if len(data) < len(enc)-2+len(hash) || !bytes.Equal(data[:head], enc[:head]) ||
		!bytes.Equal(data[head:head+len(hash)], hash) || !bytes.Equal(data[head+len(hash):len(enc)-2+len(hash)], enc[head+2:]) {
		return nil, "", false
	}
	sum := sha256.Sum256(enc)
	return s, hex.EncodeToString(sum[:]), true
}

// readAll appends r, read to its end, to b, after growing b by about hint bytes.
func readAll(b []byte, r io.Reader, hint int) ([]byte, error) {
	b = slices.Grow(b, hint+1) // one spare byte, so that a read of the stated size then sees EOF
	for {
		if len(b) == cap(b) {
			b = slices.Grow(b, max(len(b), 512))
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// decodedSizeHint is the decompressed size that the gzip trailer states (modulo 2^32, and only
// of the last member), trusted only up to a ratio that our snapshots do not reach: a hostile
// trailer must not make Decode allocate more than a small multiple of its input.
func decodedSizeHint(b []byte) int {
	if len(b) < 18 {
		return 0
	}
	n := int(binary.LittleEndian.Uint32(b[len(b)-4:]))
	return min(n, 64*len(b), maxDecoded)
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// lastEncodedSize is the size of the last encoding hashed, the likely size of the next one: a
// snapshot changes by a few objects at a time.
var lastEncodedSize atomic.Int64

// bufferPool recycles the encodings that hashing needs (about 2 MB for 10 000 budgets).
var bufferPool = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledBuffer keeps the pool from pinning an unusually large encoding.
const maxPooledBuffer = 16 << 20

func getBuffer() *[]byte { return bufferPool.Get().(*[]byte) }

func putBuffer(b *[]byte) {
	if cap(*b) <= maxPooledBuffer {
		bufferPool.Put(b)
	}
}
