package store

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// flat resolves the pointers scriptArgs passes, to compare with the plain argument list.
func flat(t *testing.T, args []any) []any {
	t.Helper()
	out := make([]any, len(args))
	for i, a := range args {
		switch v := a.(type) {
		case *string:
			out[i] = *v
		case *int64:
			out[i] = *v
		case int:
			out[i] = int64(v)
		default:
			out[i] = v
		}
	}
	return out
}

// TestScriptArgsLaysOutKeysThenArgumentsWhetherOrNotTheyFitTheSlab: the command is "evalsha",
// sha, the key count, the keys, then the arguments, also when fewer keys than reserved were added
// (the arguments move down) and when more keys or arguments than reserved were (they left the
// slab); EVAL replaces the head only.
func TestScriptArgsLaysOutKeysThenArgumentsWhetherOrNotTheyFitTheSlab(t *testing.T) {
	sha, src := "sha", "src"
	for _, tc := range []struct {
		name             string
		keyRoom, argRoom int
		keys             int
		nums             []int64
	}{
		{"exact", 2, 3, 2, []int64{1, 300, -5}},
		{"fewer keys", 6, 4, 2, []int64{7, 1 << 40}},
		{"more keys", 1, 4, 3, []int64{1, 2}},
		{"more args", 2, 1, 2, []int64{1000, 2000, 3000, 4000}},
		{"no args", 2, 2, 2, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newScriptArgs(tc.keyRoom, tc.argRoom)
			want := []any{"evalsha", "sha", int64(tc.keys)}
			for i := range tc.keys {
				k := string(rune('a' + i))
				a.key(k)
				want = append(want, k)
			}
			for _, n := range tc.nums {
				a.args = append(a.args, a.num(n))
				want = append(want, n)
			}
			require.Equal(t, want, flat(t, a.command(false, &sha, &src)))
			want[0], want[1] = "eval", "src"
			require.Equal(t, want, flat(t, a.command(true, &sha, &src)))
		})
	}
}

// TestScriptArgsResetLaysOutTheNextCommandAfresh: a pooled settle call is reset and reused; the
// next command holds only its own keys and arguments, also after the last one outgrew the slab.
func TestScriptArgsResetLaysOutTheNextCommandAfresh(t *testing.T) {
	sha, src := "sha", "src"
	a := newScriptArgs(2, 2)
	for round, n := range []int{5, 1, 2, 4} {
		a.reset()
		want := []any{"evalsha", "sha", int64(n)}
		for i := range n {
			k := string(rune('a'+round)) + string(rune('0'+i))
			a.key(k)
			want = append(want, k)
		}
		for i := range n {
			v := int64(1000*round + i + 300)
			a.args = append(a.args, a.num(v))
			want = append(want, v)
		}
		require.Equal(t, want, flat(t, a.command(false, &sha, &src)), "round %d", round)
	}
}
