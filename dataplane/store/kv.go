package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// memKV is an LRU cache bounded by bytes (len(key)+len(value) per entry). Its entries are their
// own list elements (root.next is the most recently used), so a write allocates one entry and the
// value's copy, and a lookup needs no type assertion.
type memKV struct {
	mu       sync.Mutex
	clock    Clock
	maxBytes int64
	bytes    int64
	root     memKVEntry // sentinel of the circular recency list
	items    map[string]*memKVEntry
}

type memKVEntry struct {
	prev, next *memKVEntry
	key        string
	value      []byte
	exp        time.Time
}

func newMemKV(clock Clock, maxBytes int64) *memKV {
	c := &memKV{clock: clock, maxBytes: maxBytes, items: map[string]*memKVEntry{}}
	c.root.prev, c.root.next = &c.root, &c.root
	return c
}

// unlink takes e out of the recency list.
func (c *memKV) unlink(e *memKVEntry) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
}

// pushFront makes e the most recently used.
func (c *memKV) pushFront(e *memKVEntry) {
	e.prev, e.next = &c.root, c.root.next
	c.root.next.prev = e
	c.root.next = e
}

// Get implements [KV].
func (c *memKV) Get(_ context.Context, key string) ([]byte, bool, error) {
	v, ok := c.getAt(key, c.clock.Now())
	return v, ok, nil
}

// getAt is Get at now: the store's admission reads the cache at the time it has already read.
func (c *memKV) getAt(key string, now time.Time) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[key]
	if !ok {
		return nil, false
	}
	if !now.Before(e.exp) {
		c.remove(e)
		return nil, false
	}
	if c.root.next != e {
		c.unlink(e)
		c.pushFront(e)
	}
	return e.value, true
}

// Set implements [KV]. The value is copied, so callers may reuse their buffer.
func (c *memKV) Set(_ context.Context, key string, value []byte, ttl time.Duration) error {
	return c.setAt(key, value, ttl, c.clock.Now())
}

// setAt is Set at now: the store's settle writes the cache at the time it has already read.
func (c *memKV) setAt(key string, value []byte, ttl time.Duration, now time.Time) error {
	size := int64(len(key) + len(value))
	if size > c.maxBytes {
		return fmt.Errorf("failed to cache %d bytes (bound %d): %w", size, c.maxBytes, ErrValueTooLarge)
	}
	if ttl <= 0 {
		return nil
	}
	v := append([]byte(nil), value...)
	exp := now.Add(ttl)
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[key]; ok {
		// Rewritten in place: one map lookup, no new entry.
		c.bytes += size - int64(len(e.key)+len(e.value))
		e.value, e.exp = v, exp
		c.unlink(e)
		c.pushFront(e)
	} else {
		// The least recently used entries that the new one pushes out go first (the same ones
		// as once it is in, as it would be the most recent), so that a full cache, where every
		// write evicts, reuses the last of them rather than allocating an entry.
		var e *memKVEntry
		for c.bytes+size > c.maxBytes {
			e = c.root.prev
			c.remove(e)
		}
		if e == nil {
			e = &memKVEntry{}
		}
		*e = memKVEntry{key: key, value: v, exp: exp}
		c.pushFront(e)
		c.items[key] = e
		c.bytes += size
	}
	for c.bytes > c.maxBytes {
		c.remove(c.root.prev)
	}
	return nil
}

func (c *memKV) remove(e *memKVEntry) {
	c.unlink(e)
	delete(c.items, e.key)
	c.bytes -= int64(len(e.key) + len(e.value))
}

// redisKV stores cache entries as plain strings with PX expiry. The memory bound of a Redis cache
// is Redis's own maxmemory with an LRU/LFU eviction policy (documented for operators); this
// type bounds each value.
type redisKV struct {
	c        redis.UniversalClient
	prefix   string
	maxValue int
}

// Get implements [KV].
func (k *redisKV) Get(ctx context.Context, key string) ([]byte, bool, error) {
	v, err := k.c.Get(ctx, k.prefix+key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("failed to read cache entry: %w", err)
	}
	return v, true, nil
}

// Set implements [KV].
func (k *redisKV) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if len(value) > k.maxValue {
		return fmt.Errorf("failed to cache %d bytes (bound %d): %w", len(value), k.maxValue, ErrValueTooLarge)
	}
	if ttl <= 0 {
		return nil
	}
	if err := k.c.Set(ctx, k.prefix+key, value, ttl).Err(); err != nil {
		return fmt.Errorf("failed to write cache entry: %w", err)
	}
	return nil
}
