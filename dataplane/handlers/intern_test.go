package handlers

import (
	"bytes"
	"encoding/json"
	"hash/maphash"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
)

// A recurring long content is decoded to one shared string from its second sighting on; every
// decoded value stays encoding/json's, nothing refers to the body (which the caller reuses),
// and texts that differ, even by one byte or only in length, never share.
func TestRecurringContentsAreSharedAndNeverConfused(t *testing.T) {
	system := strings.Repeat("You answer in one word. ", 30) // over internMin
	body := func(user string) []byte {
		return []byte(`{"model":"m","messages":[{"role":"system","content":"` + system + `"},{"role":"user","content":"` + user + `"}]}`)
	}
	decode := func(b []byte) OAChatRequest {
		t.Helper()
		var got, want OAChatRequest
		require.True(t, decodeOAChatPlain(b, &got))
		require.NoError(t, json.Unmarshal(b, &want))
		require.Equal(t, want, got)
		return got
	}
	var shared []*byte
	for i := range 4 {
		b := body("question " + strconv.Itoa(i) + strings.Repeat(" and more", 40))
		r := decode(b)
		shared = append(shared, unsafe.StringData(string(r.Messages[0].Content)))
		bytes.ReplaceAll(b, []byte("o"), []byte("0")) // a reused body buffer must not show through
		copy(b, bytes.Repeat([]byte{'x'}, len(b)))
		require.Equal(t, system, string(r.Messages[0].Content))
		require.True(t, strings.HasPrefix(string(r.Messages[1].Content), "question "+strconv.Itoa(i)))
	}
	require.Same(t, shared[1], shared[2], "seen twice: shared")
	require.Same(t, shared[2], shared[3])

	// Same length, one byte apart; a prefix; a longer text: each decodes to itself.
	for _, other := range []string{strings.Replace(system, "one", "two", 1), system[:len(system)-1], system + "!", strings.ToUpper(system)} {
		for range 3 {
			r := decode([]byte(`{"messages":[{"role":"system","content":"` + other + `"}]}`))
			require.Equal(t, other, string(r.Messages[0].Content))
		}
	}
	r := decode(body("x"))
	require.Equal(t, system, string(r.Messages[0].Content))
}

// Contents outside the bounds are plain copies, and many distinct recurring texts (more than
// there are slots) still decode to themselves.
func TestInterningIsBoundedAndExact(t *testing.T) {
	tab := &internTable{seed: maphash.MakeSeed()}
	for _, n := range []int{0, 1, internMin - 1, internMax + 1} {
		b := bytes.Repeat([]byte{'a'}, n)
		s1, s2 := tab.text(b), tab.text(b)
		require.Equal(t, string(b), s1)
		if n > 1 { // one-byte strings are static in Go
			require.NotSame(t, unsafe.StringData(s1), unsafe.StringData(s2), "%d bytes: never kept", n)
		}
	}
	for round := range 3 {
		for i := range 4 * internSlots {
			b := []byte(strings.Repeat(strconv.Itoa(i)+" ", internMin/2))
			require.Equal(t, string(b), tab.text(b), "round %d text %d", round, i)
		}
	}
}
