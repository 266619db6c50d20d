package textmemo

import (
	"strings"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
)

func newTestMemo() *Memo[string, int] {
	return New[string, int](Options[int]{MinText: 8, MaxText: 64, MaxBytes: 1 << 20})
}

func TestATextIsRememberedFromItsSecondSightingPerVariant(t *testing.T) {
	m := newTestMemo()
	text := "a system prompt that recurs"
	m.Offer("a", text, 1)
	_, ok := m.Get("a", text)
	require.False(t, ok, "seen once: not copied")
	m.Offer("a", text, 1)
	v, ok := m.Get("a", text)
	require.True(t, ok)
	require.Equal(t, 1, v)
	_, ok = m.Get("b", text)
	require.False(t, ok, "another variant is another key")
	_, ok = m.Get("a", strings.Replace(text, "s", "S", 1))
	require.False(t, ok, "a text of the same length that differs is a miss")
}

func TestTextsOutsideTheBoundsAreNeverHeld(t *testing.T) {
	m := newTestMemo()
	for _, text := range []string{"short", strings.Repeat("x", 65)} {
		require.False(t, m.Holds(text))
		m.Offer("a", text, 1)
		m.Offer("a", text, 1)
		_, ok := m.Get("a", text)
		require.False(t, ok, "%d bytes", len(text))
	}
}

func TestTheMemoDoesNotKeepTheCallersStringAlive(t *testing.T) {
	m := newTestMemo()
	body := []byte("....a system prompt inside a request body....")
	text := string(body[4:40])
	m.Offer("a", text, 7)
	m.Offer("a", text, 7)
	n := 0
	for k := range m.cache.Keys() {
		require.Equal(t, text, k.text)
		require.NotSame(t, unsafe.StringData(text), unsafe.StringData(k.text), "the memo holds its own copy")
		n++
	}
	require.Equal(t, 1, n)
	v, ok := m.Get("a", text)
	require.True(t, ok)
	require.Equal(t, 7, v)
}
