package cache

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"
)

// KV is the byte store under the cache; the store package implements it for memory and Redis.
// Get reports found=false for a missing or expired key; ttl > 0 always.
type KV interface {
	Get(ctx context.Context, key string) (val []byte, found bool, err error)
	Set(ctx context.Context, key string, val []byte, ttl time.Duration) error
}

// Defaults of [Options].
const (
	DefaultMaxEntryBytes = 1 << 20
	DefaultTTL           = time.Hour
	DefaultPrefix        = "ai:cache:"
)

// Options tunes a [Cache]. Zero fields take the Default* constants.
type Options struct {
	// MaxEntryBytes bounds one encoded entry; larger replies are not stored (and larger
	// values read back are ignored).
	MaxEntryBytes int
	// Prefix is prepended to every key in the KV.
	Prefix string
	// Logger receives store failures (keys are hashes; no content is ever logged).
	Logger *slog.Logger
}

// Cache stores served replies in a [KV]. Every failure degrades to a miss or a skipped store:
// the cache never fails a request. Safe for concurrent use.
type Cache struct {
	kv     KV
	max    int
	prefix string
	log    *slog.Logger

	hits, misses, errs, oversize, stores atomic.Uint64
}

// Stats are cumulative counters for metrics.
type Stats struct {
	Hits, Misses uint64
	// Errors counts KV failures and corrupt entries (each also counted as a miss or a skipped
	// store).
	Errors uint64
	// Oversize counts entries not stored or not served because they exceed MaxEntryBytes.
	Oversize uint64
	Stores   uint64
}

// New returns a Cache over kv.
func New(kv KV, opts Options) *Cache {
	c := &Cache{kv: kv, max: opts.MaxEntryBytes, prefix: opts.Prefix, log: opts.Logger}
	if c.max <= 0 {
		c.max = DefaultMaxEntryBytes
	}
	if c.prefix == "" {
		c.prefix = DefaultPrefix
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	return c
}

// Lookup returns the entry stored under key (from [Key]). Any failure is a miss.
func (c *Cache) Lookup(ctx context.Context, key string) (*Entry, bool) {
	val, found, err := c.kv.Get(ctx, c.KVKey(key))
	return c.Decode(ctx, val, found, err)
}

// KVKey is the key under which the KV holds key's entry: for callers that read or write it
// along with other store work in one round trip, then hand the outcome to [Cache.Decode] or
// [Cache.Stored].
func (c *Cache) KVKey(key string) string { return c.prefix + key }

// Decode turns the outcome of a KV read of [Cache.KVKey] into an entry, counting it as
// [Cache.Lookup] does. Any failure is a miss.
func (c *Cache) Decode(ctx context.Context, val []byte, found bool, err error) (*Entry, bool) {
	switch {
	case err != nil:
		c.errs.Add(1)
		c.misses.Add(1)
		c.log.WarnContext(ctx, "response cache read failed; serving without cache", "error", err)
		return nil, false
	case !found:
		c.misses.Add(1)
		return nil, false
	case len(val) > c.max:
		c.oversize.Add(1)
		c.misses.Add(1)
		return nil, false
	}
	var e Entry
	if err := e.UnmarshalBinary(val); err != nil {
		c.errs.Add(1)
		c.misses.Add(1)
		c.log.WarnContext(ctx, "response cache entry unreadable; treated as a miss", "error", err)
		return nil, false
	}
	c.hits.Add(1)
	return &e, true
}

// Store saves e under key for ttl (≤ 0 means [DefaultTTL]). It reports whether the entry was
// stored; an oversize entry or a KV failure is skipped, never an error for the request.
func (c *Cache) Store(ctx context.Context, key string, e *Entry, ttl time.Duration) bool {
	val, ttl, ok := c.Encode(e, ttl)
	if !ok {
		return false
	}
	return c.Stored(ctx, c.kv.Set(ctx, c.KVKey(key), val, ttl))
}

// Encode returns the value to write under [Cache.KVKey] and the TTL to write it with (≤ 0
// means [DefaultTTL]); false when the entry is not to be stored (oversize, unencodable),
// counted as [Cache.Store] counts it.
func (c *Cache) Encode(e *Entry, ttl time.Duration) ([]byte, time.Duration, bool) {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	val, err := e.MarshalBinary()
	if err != nil {
		c.errs.Add(1)
		return nil, 0, false
	}
	if len(val) > c.max {
		c.oversize.Add(1)
		return nil, 0, false
	}
	return val, ttl, true
}

// Stored counts the outcome of a KV write of an [Cache.Encode]d value and reports whether it
// went through.
func (c *Cache) Stored(ctx context.Context, err error) bool {
	if err != nil {
		c.errs.Add(1)
		c.log.WarnContext(ctx, "response cache write failed", "error", err)
		return false
	}
	c.stores.Add(1)
	return true
}

// Stats returns the counters so far.
func (c *Cache) Stats() Stats {
	return Stats{
		Hits: c.hits.Load(), Misses: c.misses.Load(), Errors: c.errs.Load(),
		Oversize: c.oversize.Load(), Stores: c.stores.Load(),
	}
}
