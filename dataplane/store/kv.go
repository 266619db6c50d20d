package store

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// memKV is an LRU cache bounded by bytes (len(key)+len(value) per entry).
type memKV struct {
	mu       sync.Mutex
	clock    Clock
	maxBytes int64
	bytes    int64
	order    *list.List // front = most recently used
	items    map[string]*list.Element
}

type memKVEntry struct {
	key   string
	value []byte
	exp   time.Time
}

func newMemKV(clock Clock, maxBytes int64) *memKV {
	return &memKV{clock: clock, maxBytes: maxBytes, order: list.New(), items: map[string]*list.Element{}}
}

// Get implements [KV].
func (c *memKV) Get(_ context.Context, key string) ([]byte, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[key]
	if !ok {
		return nil, false, nil
	}
	e := el.Value.(*memKVEntry)
	if !c.clock.Now().Before(e.exp) {
		c.remove(el)
		return nil, false, nil
	}
	c.order.MoveToFront(el)
	return e.value, true, nil
}

// Set implements [KV]. The value is copied, so callers may reuse their buffer.
func (c *memKV) Set(_ context.Context, key string, value []byte, ttl time.Duration) error {
	size := int64(len(key) + len(value))
	if size > c.maxBytes {
		return fmt.Errorf("failed to cache %d bytes (bound %d): %w", size, c.maxBytes, ErrValueTooLarge)
	}
	if ttl <= 0 {
		return nil
	}
	v := append([]byte(nil), value...)
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		c.remove(el)
	}
	el := c.order.PushFront(&memKVEntry{key: key, value: v, exp: c.clock.Now().Add(ttl)})
	c.items[key] = el
	c.bytes += size
	for c.bytes > c.maxBytes {
		c.remove(c.order.Back())
	}
	return nil
}

func (c *memKV) remove(el *list.Element) {
	e := el.Value.(*memKVEntry)
	c.order.Remove(el)
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
