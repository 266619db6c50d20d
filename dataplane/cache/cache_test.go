package cache

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/providers"
)

// memKV is a tiny in-memory KV with TTLs against a settable clock.
type memKV struct {
	mu   sync.Mutex
	now  time.Time
	data map[string]memItem
	// fail makes every call return this error.
	fail error
}

type memItem struct {
	val     []byte
	expires time.Time
}

func newMemKV() *memKV { return &memKV{now: time.Unix(1_700_000_000, 0), data: map[string]memItem{}} }

func (m *memKV) Get(_ context.Context, key string) ([]byte, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return nil, false, m.fail
	}
	it, ok := m.data[key]
	if !ok || !m.now.Before(it.expires) {
		return nil, false, nil
	}
	return it.val, true, nil
}

func (m *memKV) Set(_ context.Context, key string, val []byte, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	m.data[key] = memItem{val: append([]byte(nil), val...), expires: m.now.Add(ttl)}
	return nil
}

func (m *memKV) advance(d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.now = m.now.Add(d)
}

func streamedEntry() *Entry {
	return &Entry{
		Content:      "Hello, world! ✓",
		Model:        "gpt-4o-mini",
		Provider:     "ns/openai",
		FinishReason: "stop",
		Usage:        providers.Usage{PromptTokens: 12, CompletionTokens: 5, CachedPromptTokens: 2},
		Chunks:       []string{"Hello", ", ", "world! ", "✓"},
		CreatedAt:    time.Date(2026, 11, 25, 18, 0, 0, 123, time.UTC),
	}
}

func TestEntriesRoundTrip(t *testing.T) {
	cases := map[string]*Entry{
		"a streamed reply keeps its chunks":  streamedEntry(),
		"a plain reply":                      {Content: "ok", Model: "m", Provider: "p", FinishReason: "length", Usage: providers.Usage{PromptTokens: 1}},
		"an embeddings reply":                {Model: "text-embedding-3-small", Provider: "p", Embeddings: [][]float32{{0.25, -1.5, 3e-8}, {}, {42}}},
		"an empty entry":                     {},
		"a reply with an empty chunk kept":   {Content: "ab", Chunks: []string{"a", "", "b"}},
		"large token counts survive varints": {Usage: providers.Usage{PromptTokens: 1 << 40, CompletionTokens: 1<<62 + 1}},
	}
	for name, e := range cases {
		t.Run(name, func(t *testing.T) {
			b, err := e.MarshalBinary()
			require.NoError(t, err)
			var got Entry
			require.NoError(t, got.UnmarshalBinary(b))
			require.Equal(t, *e, got)
		})
	}
}

func TestStreamChunksReplayAStreamOrTheWholeContent(t *testing.T) {
	require.Equal(t, []string{"Hello", ", ", "world! ", "✓"}, streamedEntry().StreamChunks())
	require.Equal(t, []string{"whole"}, (&Entry{Content: "whole"}).StreamChunks())
	require.Empty(t, (&Entry{}).StreamChunks())
}

func TestCorruptEntriesAreRefused(t *testing.T) {
	good, err := streamedEntry().MarshalBinary()
	require.NoError(t, err)
	cases := map[string][]byte{
		"empty":                nil,
		"another version":      append([]byte{'A', 'I', 'C', 2}, good[4:]...),
		"JSON from elsewhere":  []byte(`{"content":"x"}`),
		"trailing bytes":       append(append([]byte(nil), good...), 0),
		"a huge chunk count":   append([]byte{'A', 'I', 'C', 1, 0, 0, 0, 0, 0, 0, 0, 0}, 0xff, 0xff, 0xff, 0xff, 0x0f),
		"a huge string length": {'A', 'I', 'C', 1, 0xff, 0xff, 0xff, 0xff, 0x0f, 'x'},
		"a truncated float":    {'A', 'I', 'C', 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0},
	}
	for i := 4; i < len(good); i += 7 {
		cases[fmt.Sprintf("truncated to %d bytes", i)] = good[:i]
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			var e Entry
			require.ErrorIs(t, e.UnmarshalBinary(b), ErrCorrupt)
		})
	}
}

func FuzzUnmarshalBinaryNeverPanics(f *testing.F) {
	good, _ := streamedEntry().MarshalBinary()
	f.Add(good)
	emb, _ := (&Entry{Embeddings: [][]float32{{1, 2}}}).MarshalBinary()
	f.Add(emb)
	f.Fuzz(func(t *testing.T, b []byte) {
		var e Entry
		if err := e.UnmarshalBinary(b); err == nil {
			// Whatever decodes must survive a re-encoding unchanged (compared as bytes, since
			// NaN != NaN).
			again, err := e.MarshalBinary()
			require.NoError(t, err)
			var e2 Entry
			require.NoError(t, e2.UnmarshalBinary(again))
			twice, err := e2.MarshalBinary()
			require.NoError(t, err)
			require.Equal(t, again, twice)
		}
	})
}

func TestASecondIdenticalRequestIsAHitAndAnotherOrgMisses(t *testing.T) {
	kv := newMemKV()
	c := New(kv, Options{})
	ctx := t.Context()
	acme := mustKey(t, mustScope(t, ScopeOrg, "acme", "alice"), chatRequest())
	globex := mustKey(t, mustScope(t, ScopeOrg, "globex", "alice"), chatRequest())

	_, hit := c.Lookup(ctx, acme)
	require.False(t, hit)
	require.True(t, c.Store(ctx, acme, streamedEntry(), time.Minute))

	got, hit := c.Lookup(ctx, acme)
	require.True(t, hit)
	require.Equal(t, streamedEntry(), got)
	require.Equal(t, streamedEntry().Content, strings.Join(got.StreamChunks(), ""))

	_, hit = c.Lookup(ctx, globex)
	require.False(t, hit)

	kv.advance(time.Minute)
	_, hit = c.Lookup(ctx, acme)
	require.False(t, hit, "expired after the TTL")
	require.Equal(t, Stats{Hits: 1, Misses: 3, Stores: 1}, c.Stats())
}

func TestFailuresDegradeToMisses(t *testing.T) {
	ctx := t.Context()
	t.Run("a failing store misses and skips writes", func(t *testing.T) {
		kv := newMemKV()
		kv.fail = errors.New("redis: connection refused")
		c := New(kv, Options{})
		require.False(t, c.Store(ctx, "k", streamedEntry(), time.Minute))
		_, hit := c.Lookup(ctx, "k")
		require.False(t, hit)
		require.Equal(t, Stats{Misses: 1, Errors: 2}, c.Stats())
	})
	t.Run("a corrupt value misses", func(t *testing.T) {
		kv := newMemKV()
		c := New(kv, Options{Prefix: "p:"})
		require.NoError(t, kv.Set(ctx, "p:k", []byte("garbage"), time.Minute))
		_, hit := c.Lookup(ctx, "k")
		require.False(t, hit)
		require.Equal(t, uint64(1), c.Stats().Errors)
	})
	t.Run("an entry over the size bound is not stored", func(t *testing.T) {
		kv := newMemKV()
		c := New(kv, Options{MaxEntryBytes: 64})
		require.False(t, c.Store(ctx, "k", &Entry{Content: strings.Repeat("x", 100)}, time.Minute))
		require.Empty(t, kv.data)
		require.True(t, c.Store(ctx, "k", &Entry{Content: "small"}, time.Minute))
		require.Equal(t, uint64(1), c.Stats().Oversize)
	})
	t.Run("an oversize value written by another replica is not served", func(t *testing.T) {
		kv := newMemKV()
		big, _ := (&Entry{Content: strings.Repeat("x", 100)}).MarshalBinary()
		require.NoError(t, kv.Set(ctx, DefaultPrefix+"k", big, time.Minute))
		_, hit := New(kv, Options{MaxEntryBytes: 64}).Lookup(ctx, "k")
		require.False(t, hit)
	})
}

func TestStoreWithoutATTLUsesTheDefault(t *testing.T) {
	kv := newMemKV()
	c := New(kv, Options{})
	require.True(t, c.Store(t.Context(), "k", &Entry{Content: "x"}, 0))
	require.Equal(t, kv.now.Add(DefaultTTL), kv.data[DefaultPrefix+"k"].expires)
}

func BenchmarkEntryRoundTrip(b *testing.B) {
	e := streamedEntry()
	e.Content = strings.Repeat("token ", 300)
	e.Chunks = strings.SplitAfter(e.Content, " ")
	b.ReportAllocs()
	for b.Loop() {
		buf, _ := e.MarshalBinary()
		var got Entry
		if err := got.UnmarshalBinary(buf); err != nil {
			b.Fatal(err)
		}
	}
}
