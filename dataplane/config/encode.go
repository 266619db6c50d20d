package config

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
)

// LogValue implements slog.LogValuer so that a Secret logged through slog is redacted too.
func (Secret) LogValue() slog.Value { return slog.StringValue("[REDACTED]") }

// ComputeHash returns the hex SHA-256 of the snapshot encoded with an empty Hash. Encoding is
// deterministic because every list is sorted by the compiler and struct fields have fixed order.
func (s *Snapshot) ComputeHash() (string, error) {
	c := *s
	c.Hash = ""
	b, err := json.Marshal(&c)
	if err != nil {
		return "", fmt.Errorf("failed to encode snapshot: %w", err)
	}
	sum := sha256.Sum256(b)
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
func Decode(b []byte) (*Snapshot, error) {
	var r io.Reader = bytes.NewReader(b)
	if len(b) >= 2 && b[0] == 0x1f && b[1] == 0x8b {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("failed to decompress snapshot: %w", err)
		}
		r = zr
	}
	dec := json.NewDecoder(io.LimitReader(r, maxDecoded))
	dec.DisallowUnknownFields()
	var s Snapshot
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("failed to decode snapshot: %w", err)
	}
	if s.Version != SchemaVersion {
		return nil, fmt.Errorf("snapshot version %q is not %q: refusing it", s.Version, SchemaVersion)
	}
	want, err := s.ComputeHash()
	if err != nil {
		return nil, err
	}
	if want != s.Hash {
		return nil, fmt.Errorf("snapshot hash %q does not match its content (%q): refusing it", s.Hash, want)
	}
	return &s, nil
}
