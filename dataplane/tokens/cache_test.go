package tokens

import (
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/providers"

	"github.com/nself-org/ai-orchestration/internal/loadtext"
)

// loadText is the load harness's prose (hack/bench): a fixed 1 KiB system message and a
// 512 B user message made unique per request.
func loadText(n, seed int) string { return loadtext.Prose(n, seed) }

var (
	loadSystem = loadText(1024, 0)
	loadFiller = loadText(512-32, 3)
)

// BenchmarkCountMessagesRepeatedPrefix is the request path: the fixed system message is
// counted once, the user message is new every request.
func BenchmarkCountMessagesRepeatedPrefix(b *testing.B) {
	CountMessages("gpt-4o-mini", []providers.Message{{Role: "system", Content: loadSystem}})
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		msgs := []providers.Message{
			{Role: "system", Content: loadSystem},
			{Role: "user", Content: "Request " + strconv.Itoa(i) + ": " + loadFiller},
		}
		CountMessages("gpt-4o-mini", msgs)
	}
}

// BenchmarkCountMessagesRecurring is a conversation whose every message was counted before
// (the memo answers each): what is left is the per-call work around the memo.
func BenchmarkCountMessagesRecurring(b *testing.B) {
	msgs := []providers.Message{
		{Role: "system", Content: loadSystem},
		{Role: "user", Content: "Request 1: " + loadFiller},
		{Role: "assistant", Content: "Answer 1: " + loadFiller},
		{Role: "user", Content: "Request 2: " + loadFiller},
	}
	for range 2 {
		CountMessages("gpt-4o-mini", msgs)
	}
	b.ReportAllocs()
	for b.Loop() {
		CountMessages("gpt-4o-mini", msgs)
	}
}

// BenchmarkCountMessagesUnique counts both messages from scratch (no memo).
func BenchmarkCountMessagesUnique(b *testing.B) {
	Count("gpt-4o-mini", "warm up")
	user := "Request 1: " + loadFiller
	b.SetBytes(int64(len(loadSystem) + len(user)))
	b.ReportAllocs()
	for b.Loop() {
		countWith(O200kBase, loadSystem)
		countWith(O200kBase, user)
	}
}

// BenchmarkCountRepeated is a message counted before (a system prompt, conversation history).
func BenchmarkCountRepeated(b *testing.B) {
	Count("gpt-4o-mini", loadSystem)
	b.ReportAllocs()
	for b.Loop() {
		Count("gpt-4o-mini", loadSystem)
	}
}

func TestCountCacheComparesTheText(t *testing.T) {
	a := strings.Repeat("alpha beta gamma ", 20)
	b := strings.Repeat("x", len(a)) // same length, different text, different count
	require.Equal(t, countWith(O200kBase, a), Count("gpt-4o", a))
	require.Equal(t, countWith(O200kBase, a), Count("gpt-4o", a))
	require.Equal(t, countWith(O200kBase, b), Count("gpt-4o", b))
	require.NotEqual(t, Count("gpt-4o", a), Count("gpt-4o", b))
}

func TestCountCacheUnderConcurrency(t *testing.T) {
	texts := make([]string, 32)
	want := make([]int64, len(texts))
	for i := range texts {
		texts[i] = loadText(300+40*i, i)
		want[i] = countWith(O200kBase, texts[i])
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for k := range 300 {
				i := (g*13 + k) % len(texts)
				if got := Count("gpt-4o-mini", texts[i]); got != want[i] {
					t.Errorf("text %d: got %d want %d", i, got, want[i])
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestCountCacheAdmitsATextTheSecondTime(t *testing.T) {
	text := loadText(700, 11) + " admission"
	want := countWith(O200kBase, text)
	require.Equal(t, want, Count("gpt-4o", text))
	_, ok := counts.Get(O200kBase, text)
	require.False(t, ok, "a text seen once is not copied into the cache")
	require.Equal(t, want, Count("gpt-4o", text))
	got, ok := counts.Get(O200kBase, text)
	require.True(t, ok, "a text seen twice is cached")
	require.Equal(t, want, got)
	require.Equal(t, want, Count("gpt-4o", text))
}
