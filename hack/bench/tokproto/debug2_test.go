package tokproto

import (
	"fmt"
	"slices"
	"testing"
	"unicode/utf8"

	"github.com/dlclark/regexp2/v2"
)

func TestDebugRunes(t *testing.T) {
	re := regexp2.MustCompile(pat, regexp2.None)
	pieces := func(s string) []string {
		var lp []string
		m, _ := re.FindStringMatch(s)
		for m != nil {
			lp = append(lp, m.String())
			m, _ = re.FindNextMatch(m)
		}
		return lp
	}
	mine := func(s string) []string {
		var out []string
		for i := 0; i < len(s); {
			e, _ := o200kPiece(s, i)
			out = append(out, s[i:e])
			i = e
		}
		return out
	}
	var bad []rune
	for r := rune(0); r <= 0x10FFFF; r++ {
		if !utf8.ValidRune(r) {
			continue
		}
		ok := true
		for _, s := range []string{string(r), "a" + string(r) + "b ", " " + string(r) + string(r) + "A", "1" + string(r) + "\n", "!" + string(r) + "'s"} {
			if !slices.Equal(pieces(s), mine(s)) {
				ok = false
				break
			}
		}
		if !ok {
			bad = append(bad, r)
		}
	}
	// print ranges
	for i := 0; i < len(bad); {
		j := i
		for j+1 < len(bad) && bad[j+1] == bad[j]+1 {
			j++
		}
		fmt.Printf("%04X-%04X ", bad[i], bad[j])
		i = j + 1
	}
	fmt.Println(len(bad))
}
