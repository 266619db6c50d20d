package store_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/store"
	"github.com/nself-org/ai-orchestration/dataplane/store/storetest"
)

func TestMemoryConformance(t *testing.T) {
	storetest.Run(t, storetest.NewMemoryStore)
}

func TestMemoryCacheEvictsLeastRecentlyUsedByBytesAndExpires(t *testing.T) {
	clock := storetest.NewFakeClock(storetest.Start)
	kv := store.NewMemory(store.MemoryOptions{Clock: clock, CacheBytes: 30}).Cache()
	ctx := t.Context()
	require.NoError(t, kv.Set(ctx, "a", []byte("123456789"), time.Minute)) // 10 bytes
	require.NoError(t, kv.Set(ctx, "b", []byte("123456789"), time.Minute))
	require.NoError(t, kv.Set(ctx, "c", []byte("123456789"), time.Minute))
	_, ok, _ := kv.Get(ctx, "a") // a becomes the most recently used
	require.True(t, ok)
	require.NoError(t, kv.Set(ctx, "d", []byte("123456789"), time.Minute))
	_, ok, _ = kv.Get(ctx, "b")
	require.False(t, ok, "b was least recently used")
	for _, k := range []string{"a", "c", "d"} {
		_, ok, _ = kv.Get(ctx, k)
		require.True(t, ok, k)
	}
	clock.Advance(time.Minute)
	_, ok, _ = kv.Get(ctx, "a")
	require.False(t, ok, "expired")
}
